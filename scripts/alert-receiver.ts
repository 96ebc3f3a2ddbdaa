// `npm run demo:alert-receiver`: a local alert receiver on 127.0.0.1:8790 (ALERT_RECEIVER_PORT
// to change it; not PORT, which is npm start's) for trying alert destinations under `npm start`.
// Any path under /hooks/ is a channel: point a Slack or webhook destination at it; each request
// received is printed here.
import { startAlertReceiver } from "./lib/alert-receiver.ts";
import { startOnPort } from "./lib/dev-server.ts";

const receiver = await startOnPort(
  "ALERT_RECEIVER_PORT",
  8790,
  "npm run demo:alert-receiver",
  (port) =>
    startAlertReceiver(port, "127.0.0.1", {
      onRequest: (request) => {
        const status = request.status === null ? "connection reset" : String(request.status);
        console.log(`${request.at} POST ${request.path} -> ${status}`);
        for (const [name, value] of Object.entries(request.headers)) {
          if (name.startsWith("x-airlock-")) console.log(`  ${name}: ${String(value)}`);
        }
        console.log(`  ${prettyBody(request.body)}`);
      },
    }),
);
console.log(`Alert receiver on ${receiver.url}`);
console.log(`  Slack-like channel: ${receiver.url}/hooks/slack/alerts`);
console.log(`  webhook channel:    ${receiver.url}/hooks/webhook/alerts`);
console.log(`  received:           GET ${receiver.url}/__requests?path=/hooks/slack/alerts`);
console.log(`  as one line each:   GET ${receiver.url}/__messages?path=/hooks/slack/alerts`);
console.log(
  `  failures:           POST ${receiver.url}/__control/hooks/slack/alerts {"mode":"rate_limit","retryAfter":5}`,
);

function prettyBody(body: string): string {
  try {
    return JSON.stringify(JSON.parse(body), null, 2).replaceAll("\n", "\n  ");
  } catch {
    return body;
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    void receiver.close().then(() => process.exit(0));
  });
}
