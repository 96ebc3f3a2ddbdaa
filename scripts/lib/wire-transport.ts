import type { Socket } from "node:net";
import { WebSocket } from "ws";

export interface TransportEvents {
  data(chunk: Buffer): void;
  /** The connection is gone (peer closed, error, or destroy()); called once. */
  closed(error?: Error): void;
}

/**
 * A client connection carrying the Postgres wire protocol, whether over TCP
 * (psql, migration tools) or a WebSocket (the Neon driver), so the
 * multiplexer does not care which.
 */
export interface WireTransport {
  readonly description: string;
  start(events: TransportEvents): void;
  write(data: Buffer): void;
  /** Resolves once buffered output is small enough to send more (or the connection is gone). */
  drained(): Promise<void>;
  pause(): void;
  resume(): void;
  /** Closes after flushing what was written. */
  end(): void;
  destroy(): void;
}

/** Output above this much buffered makes drained() wait. */
export const OUTPUT_HIGH_WATER_MARK = 1 << 20;

export function socketTransport(socket: Socket): WireTransport {
  socket.setNoDelay(true);
  return {
    description: `tcp ${socket.remoteAddress}:${socket.remotePort}`,
    start(events) {
      let failure: Error | undefined;
      socket.on("data", (chunk: Buffer) => events.data(chunk));
      socket.on("error", (error) => {
        failure = error;
      });
      socket.once("close", () => events.closed(failure));
    },
    write(data) {
      if (socket.writable) socket.write(data);
    },
    drained() {
      if (!socket.writableNeedDrain || socket.destroyed) return Promise.resolve();
      return new Promise((resolve) => {
        const done = () => {
          socket.off("drain", done);
          socket.off("close", done);
          resolve();
        };
        socket.on("drain", done);
        socket.on("close", done);
      });
    },
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    end: () => socket.end(),
    destroy: () => socket.destroy(),
  };
}

export function rawDataToBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export function webSocketTransport(ws: WebSocket, description: string): WireTransport {
  // ws has no 'drain' event; send callbacks tell us when output went out.
  let drainWaiters: Array<() => void> = [];
  const wakeDrainWaiters = () => {
    const waiters = drainWaiters;
    drainWaiters = [];
    for (const wake of waiters) wake();
  };
  return {
    description,
    start(events) {
      let failure: Error | undefined;
      ws.on("message", (data) => events.data(rawDataToBuffer(data)));
      ws.on("error", (error) => {
        failure = error;
      });
      ws.once("close", () => {
        wakeDrainWaiters();
        events.closed(failure);
      });
    },
    write(data) {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(data, { binary: true }, () => {
        if (ws.bufferedAmount < OUTPUT_HIGH_WATER_MARK) wakeDrainWaiters();
      });
    },
    drained() {
      if (ws.readyState !== WebSocket.OPEN || ws.bufferedAmount < OUTPUT_HIGH_WATER_MARK) {
        return Promise.resolve();
      }
      return new Promise((resolve) => drainWaiters.push(resolve));
    },
    pause: () => ws.pause(),
    resume: () => ws.resume(),
    end: () => ws.close(1000),
    destroy: () => ws.terminate(),
  };
}
