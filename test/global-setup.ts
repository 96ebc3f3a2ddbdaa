import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { TestProject } from "vitest/node";
import { WebSocketServer } from "ws";
import { startAlertReceiver } from "../scripts/lib/alert-receiver.ts";
import { startUpstreamPeer } from "../scripts/lib/demo-model-server.ts";
import { newAuditSigningKey } from "../scripts/lib/environment.ts";
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
    /** The bootstrap token (ADMIN_TOKEN). */
    adminToken: string;
    /** The Ed25519 key that signs audit checkpoints (AUDIT_SIGNING_KEY), new each run. */
    auditSigningKey: string;
    /** A personal access token of the tests' admin person (`prn_testadmin`), in both databases. */
    adminPat: string;
    /** A second database, of the API fuzz suite alone (its own project in vitest.config.ts). */
    fuzzDatabaseUrl: string;
    fuzzDatabaseWsProxy: string;
    /** Base URL of a local Cloudflare Access stand-in serving `/cdn-cgi/access/certs` (see `startAccessKeysPeer`). */
    accessTeamDomain: string;
    /** The private JWK (JSON) whose public half that peer serves. */
    accessPrivateJwk: string;
    /** A second private JWK (JSON), with a kid of its own, whose public half is served nowhere. */
    accessOtherPrivateJwk: string;
    /** A base URL on which nothing listens. */
    accessClosedBase: string;
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
  // The person the tests act as: an admin with a personal access token.
  const adminPat = `airlock_pat_${randomBytes(32).toString("base64url")}`;
  for (const target of [{ databaseUrl, wsProxy: local.wsProxy }, fuzz])
    await execute(target, seedAdminStatement(adminPat));
  project.provide("adminPat", adminPat);
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
  project.provide("auditSigningKey", newAuditSigningKey());
  const access = await startAccessKeysPeer();
  project.provide("accessTeamDomain", access.url);
  project.provide("accessPrivateJwk", access.privateJwk);
  project.provide("accessOtherPrivateJwk", access.otherPrivateJwk);
  project.provide("accessClosedBase", access.closedBase);

  return async () => {
    dead.close();
    await upstream.close();
    await alertReceiver.close();
    await access.close();
    await cleanup().catch((error: unknown) =>
      console.error("[tests] could not drop the test database:", error),
    );
    await local.close();
  };
}

/**
 * A stand-in for a Cloudflare Access team's key endpoint: `GET
 * /cdn-cgi/access/certs` answers `{ keys: [<public JWK>] }` and counts the
 * requests per `?counter=` value, read back with `GET /count?counter=...`;
 * `GET /down/cdn-cgi/access/certs` answers 503. The private halves go to the
 * tests, which sign their own tokens.
 */
async function startAccessKeysPeer() {
  const rsaJwks = () => {
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const kid = randomBytes(16).toString("hex");
    return {
      publicJwk: { ...publicKey.export({ format: "jwk" }), kid, alg: "RS256", use: "sig" },
      privateJwk: JSON.stringify({ ...privateKey.export({ format: "jwk" }), kid, alg: "RS256" }),
    };
  };
  const served = rsaJwks();
  const other = rsaJwks();
  const counts = new Map<string, number>();
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://peer");
    const counter = url.searchParams.get("counter") ?? "";
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === "/cdn-cgi/access/certs") {
      counts.set(counter, (counts.get(counter) ?? 0) + 1);
      send(200, { keys: [served.publicJwk] });
    } else if (url.pathname === "/count") {
      send(200, { count: counts.get(counter) ?? 0 });
    } else if (url.pathname === "/down/cdn-cgi/access/certs") {
      send(503, { error: "unavailable" });
    } else {
      send(404, { error: "not found" });
    }
  });
  const listen = (target: ReturnType<typeof createServer>) =>
    new Promise<number>((resolve, reject) => {
      target.once("error", reject);
      target.listen(0, "127.0.0.1", () => {
        const address = target.address();
        if (!address || typeof address === "string") reject(new Error("unexpected address"));
        else resolve(address.port);
      });
    });
  const port = await listen(server);
  // A port that was just free: bound, then released, so nothing answers on it.
  const probe = createServer();
  const closedPort = await listen(probe);
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return {
    url: `http://127.0.0.1:${port}`,
    privateJwk: served.privateJwk,
    otherPrivateJwk: other.privateJwk,
    closedBase: `http://127.0.0.1:${closedPort}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The tests' admin person, its admin role and its token (stored as SHA-256, as Airlock does). */
function seedAdminStatement(token: string): string {
  const hash = createHash("sha256").update(token).digest("hex");
  return `
    INSERT INTO principals (id, kind, display_name, email, created_by)
      VALUES ('prn_testadmin', 'person', 'Test admin', 'test-admin@example.com', 'tests');
    INSERT INTO principal_grants (principal_id, role, granted_by) VALUES ('prn_testadmin', 'admin', 'tests');
    INSERT INTO principal_tokens (id, principal_id, name, prefix, token_hash, created_by, expires_at)
      VALUES ('tok_testadmin', 'prn_testadmin', 'tests', '${token.slice(0, 16)}', '${hash}', 'tests', now() + interval '30 days');`;
}
