// `npm start`: a database, its migrations, and the Worker under `wrangler dev`.
//   DATABASE_URL set: that Postgres (a loopback one through a local WebSocket bridge).
//   otherwise:        an embedded Postgres persisted in .airlock/pgdata.
// PORT (default 8787) and AIRLOCK_DB_PORT (embedded database's TCP port, default 54329) are configurable.
import { spawn } from "node:child_process";
import { join } from "node:path";
import {
  databaseFromEnvironment,
  ensureAdminToken,
  forgetRunningDatabase,
  projectRoot,
  recordRunningDatabase,
} from "./lib/environment.ts";
import { redactUrl } from "./lib/local-db.ts";
import { migrateDatabase } from "./lib/migrate.ts";

const port = Number(process.env.PORT || 8787);
const host = "127.0.0.1";

const { token, created } = ensureAdminToken();
const database = await databaseFromEnvironment({
  tcpPort: Number(process.env.AIRLOCK_DB_PORT || 54329),
});
if (!database.wsProxy) {
  console.error(
    "npm start runs against a local Postgres; DATABASE_URL points elsewhere. Use `wrangler deploy` for Neon.",
  );
  process.exit(1);
}
const wsProxy = database.wsProxy;
if (database.kind === "embedded")
  recordRunningDatabase({ databaseUrl: database.databaseUrl, wsProxy });

let stopping = false;
async function shutdown(code: number) {
  if (stopping) return;
  stopping = true;
  forgetRunningDatabase();
  await database.close().catch(() => {});
  process.exit(code);
}

try {
  await migrateDatabase({ databaseUrl: database.databaseUrl, wsProxy });
} catch (error) {
  console.error("Could not apply migrations:", error instanceof Error ? error.message : error);
  await shutdown(1);
}

// wrangler runs in its own process group so that stopping it also stops workerd.
const wrangler = spawn(
  join(projectRoot, "node_modules", ".bin", "wrangler"),
  [
    "dev",
    "--ip",
    host,
    "--port",
    String(port),
    "--test-scheduled",
    "--show-interactive-dev-session=false",
    "--var",
    `DATABASE_URL:${database.databaseUrl}`,
    "--var",
    `DATABASE_WS_PROXY:${wsProxy}`,
    // Local model servers run on loopback over http.
    "--var",
    `UPSTREAM_ALLOWED_HOSTS:${process.env.UPSTREAM_ALLOWED_HOSTS ?? "127.0.0.1,localhost"}`,
  ],
  {
    cwd: projectRoot,
    stdio: ["ignore", "pipe", "inherit"],
    detached: true,
    env: { ...process.env },
  },
);

let announced = false;
wrangler.stdout.on("data", (chunk: Buffer) => {
  const text = chunk.toString();
  process.stdout.write(text.replaceAll(database.databaseUrl, redactUrl(database.databaseUrl)));
  if (!announced && text.includes("Ready on")) {
    announced = true;
    const base = `http://${host}:${port}`;
    console.log(
      [
        "",
        "Airlock is running.",
        `  API:       ${base}`,
        `  Docs:      ${base}/docs  (OpenAPI: ${base}/openapi.json)`,
        `  Database:  ${redactUrl(database.databaseUrl)} (${database.kind})`,
        `  Admin:     Authorization: Bearer ${token}${created ? "   (new token, written to .dev.vars)" : "   (from .dev.vars)"}`,
        "",
      ].join("\n"),
    );
  }
});

function stopWrangler() {
  if (wrangler.pid && wrangler.exitCode === null) {
    try {
      process.kill(-wrangler.pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    stopWrangler();
    setTimeout(() => shutdown(0), 1500).unref();
  });
}
wrangler.on("exit", (code) => shutdown(code ?? 0));
