/** Airlock's version, as the Open Inference Protocol's server metadata reports it (package.json). */
export const AIRLOCK_VERSION = "0.1.0";
