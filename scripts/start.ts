// `npm start`: a database, its migrations, and the Worker under `wrangler dev`.
//   DATABASE_URL set: that Postgres (a loopback one through a local WebSocket bridge).
//   otherwise:        an embedded Postgres persisted in .airlock/pgdata.
// PORT (default 8787) and AIRLOCK_DB_PORT (embedded database's TCP port, default 54329) are configurable;
// a port in use stops it before anything starts, naming the setting to change.
// AIRLOCK_STATE_DIR moves the local state (.airlock) elsewhere, wrangler's (.wrangler/state) with it.
// One `npm start` per state directory: a second one on the same directory refuses before it
// writes anything there, and says how to run it alongside.
// Local secrets (ADMIN_TOKEN and the local keys, generated when missing) live in .dev.vars, or in the
// file that AIRLOCK_DEV_VARS names; wrangler dev reads them from there.
// Once the Worker is up, the demo model is registered if it does not exist yet (`--no-demo` or
// AIRLOCK_DEMO=0 skip it).
import { spawn } from "node:child_process";
import { join } from "node:path";
import { demoCurl, demoWanted, ensureDemoModel, readDemo } from "./lib/demo.ts";
import {
  exitOnUsageError,
  freePort,
  isAddressInUse,
  nextFreePort,
  portFromEnv,
  portInUseError,
  requirePortFree,
  UsageError,
} from "./lib/dev-server.ts";
import {
  claimStateDir,
  databaseFromEnvironment,
  devVarsPath,
  ensureAdminToken,
  explainDatabaseError,
  forgetRunningDatabase,
  InstanceRunningError,
  projectRoot,
  type RunningInstance,
  recordRunningDatabase,
  shownPath,
  stateDir,
} from "./lib/environment.ts";
import { redactUrl } from "./lib/local-db.ts";
import { migrateDatabase } from "./lib/migrate.ts";

const host = "127.0.0.1";
const embedded = !process.env.DATABASE_URL;

// Everything that can refuse the start is checked before anything is written, so that a start
// that cannot run leaves the state directory (and a running instance's files in it) as they were.
const { port, dbPort, releaseStateDir } = await (async () => {
  const port = portFromEnv("PORT", 8787);
  const dbPort = portFromEnv("AIRLOCK_DB_PORT", 54329);
  let releaseStateDir: () => void;
  try {
    releaseStateDir = claimStateDir(port);
  } catch (error) {
    if (error instanceof InstanceRunningError) throw await secondInstance(error.running, dbPort);
    throw error;
  }
  try {
    await requirePortFree(port, "PORT", "npm start", host);
    if (embedded) await requirePortFree(dbPort, "AIRLOCK_DB_PORT", "npm start", host);
  } catch (error) {
    releaseStateDir();
    throw error;
  }
  return { port, dbPort, releaseStateDir };
})().catch(exitOnUsageError);

async function secondInstance(running: RunningInstance, dbPort: number): Promise<UsageError> {
  const port = await nextFreePort(running.port, host);
  const databasePort = await nextFreePort(dbPort, host);
  return new UsageError(
    [
      `npm start is already running on ${shownPath(stateDir)} (process ${running.pid}, http://${host}:${running.port}); this one stopped without touching it.`,
      "To run a second instance, give it a state directory and ports of its own:",
      `  AIRLOCK_STATE_DIR=${shownPath(join(stateDir, "second"))} PORT=${port} AIRLOCK_DB_PORT=${databasePort} npm start`,
    ].join("\n"),
  );
}

const devVarsFile = devVarsPath();
const devVarsShown = shownPath(devVarsFile);
const { token, created } = ensureAdminToken(devVarsFile);

type Database = Awaited<ReturnType<typeof databaseFromEnvironment>>;
const database: Database = await databaseFromEnvironment({
  tcpPort: dbPort,
  // This process has the state directory: a database recorded there is no one's to share.
  shareRunning: false,
}).catch(async (error: unknown) => {
  releaseStateDir();
  if (isAddressInUse(error))
    exitOnUsageError(await portInUseError(dbPort, "AIRLOCK_DB_PORT", "npm start", host));
  console.error(`Could not open the database: ${explainDatabaseError(error)}`);
  process.exit(1);
});
if (!database.wsProxy) {
  console.error(
    "npm start runs against a local Postgres; DATABASE_URL points elsewhere. Use `wrangler deploy` for Neon.",
  );
  releaseStateDir();
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
  releaseStateDir();
  process.exit(code);
}

try {
  await migrateDatabase({ databaseUrl: database.databaseUrl, wsProxy });
} catch (error) {
  console.error("Could not apply migrations:", error instanceof Error ? error.message : error);
  await shutdown(1);
}

// wrangler's debugger port: its default (9229) collides when two instances
// start at once, so take a free one unless INSPECTOR_PORT names it.
const inspectorPort = process.env.INSPECTOR_PORT || String(await freePort());

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
    "--inspector-port",
    inspectorPort,
    "--show-interactive-dev-session=false",
    "--var",
    `DATABASE_URL:${database.databaseUrl}`,
    "--var",
    `DATABASE_WS_PROXY:${wsProxy}`,
    // Local model servers run on loopback over http.
    "--var",
    `UPSTREAM_ALLOWED_HOSTS:${process.env.UPSTREAM_ALLOWED_HOSTS ?? "127.0.0.1,localhost"}`,
    // Secrets from the file, not the command line (which any process listing shows). Without
    // this flag wrangler reads the project's .dev.vars; with it, only the named file.
    ...(devVarsFile === join(projectRoot, ".dev.vars") ? [] : ["--env-file", devVarsFile]),
    // A state directory of its own holds wrangler's local state too (Durable Objects, KV,
    // queues), so that the objects of one instance are not another's.
    ...(process.env.AIRLOCK_STATE_DIR ? ["--persist-to", join(stateDir, "wrangler")] : []),
  ],
  {
    cwd: projectRoot,
    stdio: ["ignore", "pipe", "inherit"],
    detached: true,
    // With --env-file wrangler also takes secrets from its environment, and those would win
    // over the file: the file is their one source.
    env: withoutSecrets(process.env),
  },
);

/** The environment without the Worker's secrets (wrangler.toml's `[secrets] required`). */
function withoutSecrets(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  for (const name of ["DATABASE_URL", "ADMIN_TOKEN", "LOG_HMAC_KEY", "ALERT_ENCRYPTION_KEY"])
    delete copy[name];
  return copy;
}

let announced = false;
wrangler.stdout.on("data", (chunk: Buffer) => {
  const text = chunk.toString();
  process.stdout.write(text.replaceAll(database.databaseUrl, redactUrl(database.databaseUrl)));
  if (!announced && text.includes("Ready on")) {
    announced = true;
    void announce(`http://${host}:${port}`);
  }
});

/** The demo model first (so that what the banner offers works), then the banner. */
async function announce(base: string) {
  const demo = demoWanted(process.argv.slice(2), process.env) ? await demoLines(base) : [];
  console.log(
    [
      "",
      "Airlock is running.",
      `  API:       ${base}`,
      `  Docs:      ${base}/docs  (OpenAPI: ${base}/openapi.json)`,
      `  Database:  ${redactUrl(database.databaseUrl)} (${database.kind})`,
      `  Admin:     Authorization: Bearer ${token}${created ? `   (new token, written to ${devVarsShown})` : `   (from ${devVarsShown})`}`,
      ...demo,
      "",
    ].join("\n"),
  );
}

async function demoLines(base: string): Promise<string[]> {
  try {
    const demo = readDemo();
    const outcome = await ensureDemoModel(base, token, demo);
    const role = (name: string) =>
      demo.versions
        .filter((v) => v.role === name)
        .map((v) => v.version)
        .join(", ");
    const what =
      outcome === "registered"
        ? `registered (champion ${role("champion")}, shadow ${role("shadow")})`
        : "already present, left as it is";
    return [
      `  Demo:      ${demo.model.name} ${what}; --no-demo skips it`,
      "",
      "Ask it for a prediction:",
      "",
      demoCurl(base, demo),
    ];
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return [`  Demo:      could not register the demo model (the server runs on): ${reason}`];
  }
}

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
