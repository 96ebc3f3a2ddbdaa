import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { WebSocket, WebSocketServer } from "ws";

/** What the Neon driver asks for: `ws://<wsProxy>/v1?address=<host>:<port>`. */
export interface TargetAddress {
  host: string;
  port: number;
}

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "::1", "localhost"]);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(stripBrackets(host).toLowerCase());
}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/**
 * Parses `host:port`. The driver does not bracket IPv6 hosts (`::1:5432`), so
 * the port is whatever follows the last colon; `[::1]:5432` works as well.
 */
export function parseTargetAddress(address: string): TargetAddress | undefined {
  const colon = address.lastIndexOf(":");
  if (colon <= 0) return undefined;
  const host = stripBrackets(address.slice(0, colon));
  const portText = address.slice(colon + 1);
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535 || host === "") return undefined;
  return { host, port };
}

/** `host:port` with IPv6 hosts bracketed, as in URLs and neonConfig.wsProxy. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The address to connect to for a server bound to `host` (wildcards mean loopback here). */
export function connectHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "::1";
  return host;
}

// Any web page the developer visits may open a WebSocket to 127.0.0.1, and
// browsers always say where from. The Worker (workerd) and Node clients do
// not send an Origin, and local pages have a loopback one.
function originAllowed(origin: string | undefined): boolean {
  if (origin === undefined) return true;
  try {
    return isLoopbackHost(new URL(origin).hostname);
  } catch {
    return false;
  }
}

export interface WebSocketEndpoint {
  port: number;
  close(): Promise<void>;
}

/**
 * Listens for WebSocket upgrades on `/v1` and hands each accepted socket,
 * with the `address` it asked for (undefined if absent or malformed), to
 * `onConnection`. Plain HTTP requests get 426, other paths 404.
 */
export async function listenWebSocket(options: {
  host: string;
  port: number;
  onConnection: (ws: WebSocket, target: TargetAddress | undefined, rawAddress: string) => void;
}): Promise<WebSocketEndpoint> {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  const server = createServer((_request, response) => {
    response.writeHead(426, { "content-type": "text/plain", upgrade: "websocket" });
    response.end("This endpoint speaks the Postgres protocol over WebSocket (/v1?address=...).\n");
  });
  server.on("upgrade", (request: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on("error", () => {}); // a client vanishing mid-handshake is not our problem
    const url = new URL(request.url ?? "/", "ws://localhost");
    const refusal =
      url.pathname !== "/v1"
        ? "404 Not Found"
        : !originAllowed(request.headers.origin)
          ? "403 Forbidden"
          : undefined;
    if (refusal) {
      socket.end(`HTTP/1.1 ${refusal}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      const rawAddress = url.searchParams.get("address") ?? "";
      options.onConnection(ws, parseTargetAddress(rawAddress), rawAddress);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    port,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const ws of wss.clients) ws.terminate();
      server.closeAllConnections();
      await closed;
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** Closes a WebSocket with a reason, trimmed to what a close frame can carry. */
export function closeWithReason(ws: WebSocket, code: number, reason: string): void {
  let text = reason;
  while (Buffer.byteLength(text) > 123) text = text.slice(0, -1);
  if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
    ws.close(code, text);
  }
}
