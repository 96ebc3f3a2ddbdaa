import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

/**
 * A local alert receiver: stands in for Slack incoming webhooks and generic
 * webhook endpoints, for trying alerts under `npm start`
 * (`npm run demo:alert-receiver`) and as the tests' peer. Each path under
 * `/hooks/` is a channel that records what it receives and answers 200 "ok",
 * as Slack does, unless told otherwise:
 *
 * - `POST /__control/<channel path>` with `{ "mode": "ok" | "rate_limit" | "down" | "error"
 *   | "redirect" | "flood", "retryAfter"?: seconds, "times"?: n, "location"?: url,
 *   "status"?: 3xx, "bytes"?: n }`: `rate_limit` answers 429 with Retry-After
 *   (default the next request only), `down` resets the connection without
 *   answering, `error` answers 500, `redirect` answers `status` (307) to
 *   `location`, and `flood` answers 200 with a body of `bytes` (32 MiB),
 *   recording `responseCut: true` when the sender stops reading before its end
 *   (all until set back to ok unless `times` is given);
 * - `GET /__requests?path=<channel path>`: what the channel received
 *   (every channel without `path`), oldest first; `DELETE /__requests` clears all;
 * - `GET /__messages?path=<channel path>`: the same as text, one line per
 *   request, as a person would first see it: a Slack message's `text`, or a
 *   webhook's `type` and its `summary` (or `message`).
 */
export interface ReceivedRequest {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** What the channel answered; null when it reset the connection. */
  status: number | null;
  /** When it arrived, ISO 8601. */
  at: string;
  /** `flood` only: whether the sender closed the connection before the body's end. */
  responseCut?: boolean;
}

export type ChannelMode = "ok" | "rate_limit" | "down" | "error" | "redirect" | "flood";

interface ChannelBehaviour {
  mode: ChannelMode;
  retryAfter: number;
  /** Requests left in this mode; undefined for until changed. */
  remaining: number | undefined;
  /** `redirect`: where to, and with which status. */
  location?: string;
  status?: number;
  /** `flood`: the body's size. */
  bytes?: number;
}

const MODES: readonly ChannelMode[] = ["ok", "rate_limit", "down", "error", "redirect", "flood"];
const DEFAULT_FLOOD_BYTES = 32 * 1024 * 1024;
const MAX_RECORDED = 1000;
const DEFAULT_RETRY_AFTER = 1;

async function readText(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function sendJson(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

/** One line for a received body: what a notification shows first. */
export function messageLine(body: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return body.replaceAll("\n", " ");
  }
  const fields = (parsed ?? {}) as Record<string, unknown>;
  if (typeof fields.text === "string") return fields.text.replaceAll("\n", " ");
  const detail = [fields.summary, fields.message].find((v) => typeof v === "string");
  return `${String(fields.type ?? "?")}${detail ? `: ${detail}` : ""}`.replaceAll("\n", " ");
}

function parseBehaviour(text: string): ChannelBehaviour | string {
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch {
    return "the body must be JSON";
  }
  if (typeof input !== "object" || input === null) return "the body must be a JSON object";
  const { mode, retryAfter, times, location, status, bytes } = input as Record<string, unknown>;
  if (!MODES.includes(mode as ChannelMode)) return `mode must be one of ${MODES.join(", ")}`;
  if (retryAfter !== undefined && !(Number.isInteger(retryAfter) && (retryAfter as number) >= 0)) {
    return "retryAfter must be a whole number of seconds";
  }
  if (times !== undefined && !(Number.isInteger(times) && (times as number) > 0)) {
    return "times must be a positive integer";
  }
  if (mode === "redirect" && typeof location !== "string") return "redirect needs a location";
  if (
    status !== undefined &&
    !(Number.isInteger(status) && (status as number) >= 300 && (status as number) < 400)
  ) {
    return "status must be a 3xx status";
  }
  if (bytes !== undefined && !(Number.isInteger(bytes) && (bytes as number) > 0)) {
    return "bytes must be a positive integer";
  }
  return {
    mode: mode as ChannelMode,
    retryAfter: (retryAfter as number | undefined) ?? DEFAULT_RETRY_AFTER,
    remaining:
      mode === "rate_limit" ? ((times as number | undefined) ?? 1) : (times as number | undefined),
    ...(mode === "redirect"
      ? { location: location as string, status: (status as number | undefined) ?? 307 }
      : {}),
    ...(mode === "flood" ? { bytes: (bytes as number | undefined) ?? DEFAULT_FLOOD_BYTES } : {}),
  };
}

export async function startAlertReceiver(
  port = 0,
  host = "127.0.0.1",
  options: { onRequest?: (request: ReceivedRequest) => void } = {},
): Promise<{ url: string; close(): Promise<void> }> {
  const recorded: ReceivedRequest[] = [];
  const channels = new Map<string, ChannelBehaviour>();

  /** The channel's mode for this request, counting it against `times`. */
  const takeMode = (path: string): ChannelBehaviour | undefined => {
    const behaviour = channels.get(path);
    if (!behaviour || behaviour.mode === "ok") return undefined;
    if (behaviour.remaining !== undefined) {
      behaviour.remaining -= 1;
      if (behaviour.remaining <= 0) channels.delete(path);
    }
    return behaviour;
  };

  const record = (request: ReceivedRequest) => {
    recorded.push(request);
    if (recorded.length > MAX_RECORDED) recorded.shift();
    options.onRequest?.(request);
  };

  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? "/", "http://receiver");
      const path = url.pathname;
      const body = await readText(req);
      if (path === "/__requests") {
        if (req.method === "GET") {
          const channel = url.searchParams.get("path");
          return sendJson(
            res,
            200,
            channel === null ? recorded : recorded.filter((r) => r.path === channel),
          );
        }
        if (req.method === "DELETE") {
          recorded.length = 0;
          return sendJson(res, 200, { cleared: true });
        }
        return sendJson(res, 405, { error: "GET or DELETE" });
      }
      if (path === "/__messages") {
        if (req.method !== "GET") return sendJson(res, 405, { error: "GET" });
        const channel = url.searchParams.get("path");
        const lines = recorded
          .filter((r) => channel === null || r.path === channel)
          .map((r) => `${messageLine(r.body)}\n`);
        res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
        return res.end(lines.join(""));
      }
      if (path.startsWith("/__control/")) {
        if (req.method !== "POST") return sendJson(res, 405, { error: "POST" });
        const channel = path.slice("/__control".length);
        if (!channel.startsWith("/hooks/")) {
          return sendJson(res, 400, { error: "channels are paths under /hooks/" });
        }
        const behaviour = parseBehaviour(body);
        if (typeof behaviour === "string") return sendJson(res, 400, { error: behaviour });
        if (behaviour.mode === "ok") channels.delete(channel);
        else channels.set(channel, behaviour);
        return sendJson(res, 200, { path: channel, ...behaviour });
      }
      if (!path.startsWith("/hooks/") || path === "/hooks/") {
        return sendJson(res, 404, { error: "channels are paths under /hooks/" });
      }
      if (req.method !== "POST") return sendJson(res, 405, { error: "POST" });
      const received = { path, headers: req.headers, body, at: new Date().toISOString() };
      const behaviour = takeMode(path);
      switch (behaviour?.mode) {
        case "down":
          record({ ...received, status: null });
          // A receiver that is down: the connection ends without an answer.
          req.socket.resetAndDestroy();
          return;
        case "rate_limit":
          record({ ...received, status: 429 });
          res.writeHead(429, {
            "content-type": "text/plain",
            "retry-after": String(behaviour.retryAfter),
          });
          return res.end("rate_limited");
        case "error":
          record({ ...received, status: 500 });
          res.writeHead(500, { "content-type": "text/plain" });
          return res.end("internal_error");
        case "redirect": {
          const status = behaviour.status ?? 307;
          record({ ...received, status });
          res.writeHead(status, {
            location: behaviour.location ?? "/",
            "content-type": "text/plain",
          });
          return res.end("moved");
        }
        case "flood": {
          const request: ReceivedRequest = { ...received, status: 200, responseCut: false };
          record(request);
          res.writeHead(200, { "content-type": "text/plain" });
          const chunk = Buffer.alloc(64 * 1024, "x");
          for (
            let sent = 0;
            sent < (behaviour.bytes ?? DEFAULT_FLOOD_BYTES);
            sent += chunk.length
          ) {
            if (res.destroyed) {
              request.responseCut = true;
              return;
            }
            if (!res.write(chunk))
              await new Promise((resolve) => {
                res.once("drain", resolve);
                res.once("close", resolve);
              });
          }
          if (res.destroyed) request.responseCut = true;
          return res.end();
        }
        default:
          record({ ...received, status: 200 });
          res.writeHead(200, { "content-type": "text/plain" });
          return res.end("ok");
      }
    } catch (error) {
      if (!res.headersSent) sendJson(res, 500, { error: String(error) });
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
    url: `http://${urlHost(host)}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A host to reach the server at: loopback for a wildcard address, brackets for IPv6. */
function urlHost(host: string): string {
  if (host === "0.0.0.0" || host === "::") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}
