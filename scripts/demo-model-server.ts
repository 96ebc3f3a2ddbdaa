// `npm run demo:model-server`: a local model server on 127.0.0.1:9000 (MODEL_SERVER_PORT to
// change it; not PORT, which is npm start's) for trying predictions under `npm start`. Routes:
// POST /json/score (plain JSON), POST /v2/models/fraud/infer (Open Inference Protocol V2), /fail,
// /slow, /garbage.
import { startUpstreamPeer } from "./lib/demo-model-server.ts";
import { startOnPort } from "./lib/dev-server.ts";

const server = await startOnPort("MODEL_SERVER_PORT", 9000, "npm run demo:model-server", (port) =>
  startUpstreamPeer(port),
);
console.log(`Demo model server on ${server.url}`);
console.log(`  plain JSON: ${server.url}/json/score`);
console.log(`  V2:         ${server.url}/v2/models/fraud/infer`);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    void server.close().then(() => process.exit(0));
  });
}
