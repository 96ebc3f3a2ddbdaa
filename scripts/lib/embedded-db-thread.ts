// The embedded Postgres (scripts/lib/local-db.ts) on a thread of its own, for
// programs whose own event loop must stay free, such as a load generator
// timing requests: PGlite runs queries synchronously on the thread that owns
// it, so a burst of writes (the prediction-log consumer storing a batch) would
// otherwise stall the clients' timers. The database lives in memory and ends
// with the thread.
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { type LocalDatabase, startEmbeddedDatabase } from "./local-db.ts";

const role = "airlock-embedded-database";

interface Ready {
  databaseUrl: string;
  wsProxy: string;
}

if (!isMainThread && workerData === role && parentPort) {
  const port = parentPort;
  const db = await startEmbeddedDatabase({});
  port.once("message", () => {
    void db.close().finally(() => port.close());
  });
  port.postMessage({ databaseUrl: db.databaseUrl, wsProxy: db.wsProxy } satisfies Ready);
}

/** An in-memory embedded Postgres served from a worker thread (TCP and WebSocket). */
export function startEmbeddedDatabaseThread(): Promise<LocalDatabase> {
  const worker = new Worker(new URL(import.meta.url), { workerData: role });
  const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      worker.postMessage("close");
      const timeout = new Promise<"timeout">((resolve) =>
        setTimeout(() => resolve("timeout"), 10_000).unref(),
      );
      if ((await Promise.race([exited, timeout])) === "timeout") await worker.terminate();
    })();
    return closing;
  };
  return new Promise((resolve, reject) => {
    const failed = (error: unknown) => {
      void worker.terminate();
      reject(error);
    };
    worker.once("error", failed);
    void exited.then(() =>
      failed(new Error("the embedded database thread ended before it was ready")),
    );
    worker.once("message", (ready: Ready) => {
      worker.off("error", failed);
      resolve({ kind: "embedded", databaseUrl: ready.databaseUrl, wsProxy: ready.wsProxy, close });
    });
  });
}
