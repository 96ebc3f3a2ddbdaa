import { randomBytes } from "node:crypto";
import type { TestProject } from "vitest/node";
import { WebSocketServer } from "ws";
import { startAlertReceiver } from "../scripts/lib/alert-receiver.ts";
import { startUpstreamPeer } from "../scripts/lib/demo-model-server.ts";
import {
  type LocalDatabase,
  redactUrl,
  startBridge,
  startEmbeddedDatabase,
} from "../scripts/lib/local-db.ts";
import { execute, migrateDatabase } from "../scripts/lib/migrate.ts";

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
    databaseWsProxy: string;
    /** A bridge whose Postgres is down: it accepts WebSockets and closes them at once. */
    deadDatabaseWsProxy: string;
    /** Base URL of a local model server (scripts/lib/demo-model-server.ts). */
    upstreamBase: string;
    /** Base URL of a local alert receiver (scripts/lib/alert-receiver.ts). */
    alertReceiverBase: string;
    adminToken: string;
    /** A second database, of the API fuzz suite alone (its own project in vitest.config.ts). */
    fuzzDatabaseUrl: string;
    fuzzDatabaseWsProxy: string;
  }
}

/**
 * Gives the Worker tests a migrated, empty Postgres. With TEST_DATABASE_URL
 * (or DATABASE_URL) it creates a throwaway database on that server and drops
 * it afterwards, so an existing database is never touched; otherwise it runs
 * an embedded one in memory.
 */
export default async function setup(project: TestProject) {
  const server = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
  let local: LocalDatabase;
  let databaseUrl: string;
  let fuzz: { databaseUrl: string; wsProxy: string };
  let cleanup = async () => {};
  if (server) {
    local = await startBridge({ databaseUrl: server });
    const bridge = local;
    const name = `airlock_test_${Date.now()}_${process.pid}`;
    const names = [name, `${name}_fuzz`];
    const at = (database: string) => {
      const url = new URL(server);
      url.pathname = `/${database}`;
      return url.toString();
    };
    for (const database of names) {
      await execute(
        { databaseUrl: server, wsProxy: bridge.wsProxy },
        `CREATE DATABASE ${database}`,
      );
    }
    databaseUrl = at(name);
    fuzz = { databaseUrl: at(`${name}_fuzz`), wsProxy: bridge.wsProxy };
    cleanup = async () => {
      for (const database of names) {
        await execute(
          { databaseUrl: server, wsProxy: bridge.wsProxy },
          `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`,
        );
      }
    };
  } else {
    local = await startEmbeddedDatabase({});
    databaseUrl = local.databaseUrl;
    // PGlite serves one database: the fuzz suite gets an embedded server of its own.
    const second = await startEmbeddedDatabase({});
    fuzz = { databaseUrl: second.databaseUrl, wsProxy: second.wsProxy };
    cleanup = () => second.close();
  }
  await migrateDatabase({ databaseUrl, wsProxy: local.wsProxy });
  await migrateDatabase(fuzz);
  console.log(`[tests] Postgres (${local.kind}): ${redactUrl(databaseUrl)}`);
  project.provide("fuzzDatabaseUrl", fuzz.databaseUrl);
  project.provide("fuzzDatabaseWsProxy", fuzz.wsProxy);

  project.provide("databaseUrl", databaseUrl);
  project.provide("databaseWsProxy", local.wsProxy);
  const dead = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  dead.on("connection", (socket) => socket.close(1011, "connect ECONNREFUSED"));
  await new Promise<void>((resolve) => dead.once("listening", () => resolve()));
  const deadAddress = dead.address();
  if (!deadAddress || typeof deadAddress === "string") throw new Error("unexpected address");
  project.provide("deadDatabaseWsProxy", `127.0.0.1:${deadAddress.port}`);
  const upstream = await startUpstreamPeer();
  project.provide("upstreamBase", upstream.url);
  const alertReceiver = await startAlertReceiver();
  project.provide("alertReceiverBase", alertReceiver.url);
  project.provide("adminToken", randomBytes(32).toString("base64url"));

  return async () => {
    dead.close();
    await upstream.close();
    await alertReceiver.close();
    await cleanup().catch((error: unknown) =>
      console.error("[tests] could not drop the test database:", error),
    );
    await local.close();
  };
}
