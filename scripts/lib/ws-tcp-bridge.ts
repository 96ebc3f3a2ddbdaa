import { connect, type Socket } from "node:net";
import type { WebSocket } from "ws";
import { rawDataToBuffer } from "./wire-transport.ts";
import { closeWithReason, isLoopbackHost, type TargetAddress } from "./ws-endpoint.ts";

type Log = (message: string) => void;

/** Stop reading from Postgres while this much is waiting to go out on the WebSocket. */
const WS_HIGH_WATER_MARK = 1 << 20;

/**
 * Pipes one WebSocket to a TCP connection to `target`, both ways, as binary
 * frames: the WebSocket proxy that Neon runs in front of its databases, for a
 * Postgres on this machine. Returns the TCP socket (so that shutdown can
 * destroy it), or undefined if the target was refused.
 */
export function bridgeWebSocket(
  ws: WebSocket,
  target: TargetAddress | undefined,
  rawAddress: string,
  log: Log,
): Socket | undefined {
  if (!target || !isLoopbackHost(target.host)) {
    // 1008: policy violation. Only a loopback Postgres may be reached, so the
    // bridge cannot be used to reach other hosts from this machine.
    log(`bridge: refused address ${JSON.stringify(rawAddress)}`);
    closeWithReason(ws, 1008, `address not allowed: ${rawAddress} (loopback only)`);
    return undefined;
  }

  const tcp = connect({ host: target.host, port: target.port });
  tcp.setNoDelay(true);
  let wsClosed = false;

  ws.on("message", (data) => {
    if (!tcp.write(rawDataToBuffer(data))) ws.pause();
  });
  tcp.on("drain", () => ws.resume());

  tcp.on("data", (chunk: Buffer) => {
    if (wsClosed) return;
    ws.send(chunk, { binary: true }, () => {
      if (tcp.isPaused() && !wsClosed && ws.bufferedAmount < WS_HIGH_WATER_MARK) tcp.resume();
    });
    if (ws.bufferedAmount >= WS_HIGH_WATER_MARK) tcp.pause();
  });

  ws.on("close", () => {
    wsClosed = true;
    // Half-close rather than destroy: whatever the client sent last (its
    // Terminate, say) still reaches Postgres, which then closes its side.
    // Reading on makes sure that close is seen even if we had paused.
    tcp.end();
    tcp.resume();
  });
  ws.on("error", (error) => log(`bridge: websocket error: ${error.message}`));

  tcp.on("error", (error) => {
    log(`bridge: ${target.host}:${target.port}: ${error.message}`);
    closeWithReason(ws, 1011, `database connection failed: ${error.message}`);
  });
  tcp.on("close", () => {
    ws.resume(); // the closing handshake needs to read the client's close frame
    closeWithReason(ws, 1000, "");
  });
  return tcp;
}
