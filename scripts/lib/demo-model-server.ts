import { createServer, type IncomingMessage, type Server } from "node:http";

/**
 * A local model server: the upstream that a version calls over HTTP (plain
 * JSON or Open Inference Protocol V2), for trying Airlock under `npm start`
 * (`npm run demo:model-server`) and as the tests' upstream peer. Its "model"
 * scores a transaction as fraud when `amount` >= 100.
 *
 * Routes for tests of what an upstream may do wrong: `/redirect?to=<url>&status=<3xx>`
 * answers a redirect there (307 by default); `/landing/<id>` answers like `/json/score`,
 * a redirect's target; `/huge?bytes=<n>` answers valid JSON of about n bytes, streamed.
 * `GET /__requests` returns and clears what was received; with `?path=<path>` it
 * returns that path's requests and keeps them.
 */
export interface RecordedRequest {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

function score(amount: unknown): number {
  return typeof amount === "number" && amount >= 100 ? 0.9 : 0.1;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  return text ? JSON.parse(text) : undefined;
}

export async function startUpstreamPeer(
  port = 0,
  host = "127.0.0.1",
): Promise<{ url: string; close: () => Promise<void> }> {
  const recorded: RecordedRequest[] = [];
  const flakySeen = new Set<string>();
  const server: Server = createServer(async (req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    try {
      const url = new URL(req.url ?? "/", "http://peer");
      const path = url.pathname;
      if (req.method === "GET" && path === "/__requests") {
        const only = url.searchParams.get("path");
        if (only !== null)
          return send(
            200,
            recorded.filter((r) => r.path === only),
          );
        return send(200, recorded.splice(0));
      }
      const body = (await readJson(req)) as Record<string, unknown> | undefined;
      recorded.push({ path, headers: req.headers, body });
      if (recorded.length > 200) recorded.shift();
      if (path === "/redirect") {
        res.writeHead(Number(url.searchParams.get("status") ?? 307), {
          location: url.searchParams.get("to") ?? "/json/score",
          "content-type": "application/json",
        });
        return res.end(JSON.stringify({ moved: true }));
      }
      if (path === "/huge") {
        const bytes = Number(url.searchParams.get("bytes") ?? 0);
        res.writeHead(200, { "content-type": "application/json" });
        res.write('{"outputs":{"label":"legit","score":0.2},"pad":"');
        const chunk = "x".repeat(64 * 1024);
        for (let sent = 0; sent < bytes; sent += chunk.length) {
          if (!res.write(chunk))
            await new Promise((resolve) => {
              res.once("drain", resolve);
              res.once("close", resolve);
            });
          if (res.destroyed) return;
        }
        return res.end('"}');
      }
      if (path === "/json/score" || path.startsWith("/landing/")) {
        const inputs = body?.inputs;
        const one = (row: Record<string, unknown>) => {
          const s = score(row.amount);
          return { label: s >= 0.5 ? "fraud" : "legit", score: s };
        };
        return send(200, {
          outputs: Array.isArray(inputs) ? inputs.map(one) : one(inputs as Record<string, unknown>),
        });
      }
      if (path === "/json/mapped") {
        const inputs = body?.inputs;
        const one = (row: Record<string, unknown>) => ({
          result: { fraudProbability: score(row.amount) },
        });
        return send(200, {
          outputs: Array.isArray(inputs) ? inputs.map(one) : one(inputs as Record<string, unknown>),
        });
      }
      if (path === "/v2/models/fraud/infer") {
        const tensors = (body?.inputs ?? []) as { name: string; data: unknown[] }[];
        const amount = tensors.find((t) => t.name === "amount")?.data ?? [];
        const scores = amount.map(score);
        return send(200, {
          model_name: "fraud",
          id: (body?.id as string | undefined) ?? "x",
          outputs: [{ name: "score", datatype: "FP64", shape: [scores.length], data: scores }],
        });
      }
      if (path === "/slow") {
        await new Promise((resolve) => setTimeout(resolve, 3_000));
        return send(200, { outputs: { label: "legit" } });
      }
      if (path === "/fail") return send(500, { error: "model crashed" });
      // Fails the first call for each id, then answers: for retries of idempotent versions.
      if (path.startsWith("/flaky/")) {
        const seen = flakySeen.has(path);
        flakySeen.add(path);
        if (!seen) return send(503, { error: "warming up" });
        return send(200, { outputs: { label: "legit", score: 0.2 } });
      }
      if (path === "/garbage") return send(200, { nope: true });
      return send(404, { error: "no such route" });
    } catch (error) {
      send(500, { error: String(error) });
    }
  });
  // A port in use is an error of the start, not an uncaught one of the server.
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("no address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
