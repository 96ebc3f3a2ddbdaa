/**
 * A version's place in its model's lifecycle, as the registry shows it: the
 * one list the database column, the API schema and the rollout object share.
 */
export const VERSION_STATUSES = ["registered", "shadow", "canary", "champion", "retired"] as const;

export type VersionStatus = (typeof VERSION_STATUSES)[number];
