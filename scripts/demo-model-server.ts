// `npm run demo:model-server`: a local model server on 127.0.0.1:9000 (MODEL_SERVER_PORT to
// change it; not PORT, which is npm start's) for trying predictions under `npm start`. Routes:
// POST /json/score (plain JSON), POST /v2/models/fraud/infer (Open Inference Protocol V2), /fail,
// /slow, /garbage.
import { startUpstreamPeer } from "./lib/demo-model-server.ts";
import {
  exitOnUsageError,
  isAddressInUse,
  portFromEnv,
  portInUseError,
  requirePortFree,
} from "./lib/dev-server.ts";

const command = "npm run demo:model-server";
const server = await (async () => {
  const port = portFromEnv("MODEL_SERVER_PORT", 9000);
  await requirePortFree(port, "MODEL_SERVER_PORT", command);
  return startUpstreamPeer(port).catch(async (error: unknown) => {
    throw isAddressInUse(error) ? await portInUseError(port, "MODEL_SERVER_PORT", command) : error;
  });
})().catch(exitOnUsageError);
console.log(`Demo model server on ${server.url}`);
console.log(`  plain JSON: ${server.url}/json/score`);
console.log(`  V2:         ${server.url}/v2/models/fraud/infer`);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    void server.close().then(() => process.exit(0));
  });
}
