// `npm start`: a database, its migrations, the Worker under `wrangler dev`, and its cron triggers.
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
// AIRLOCK_DEMO=0 skip it), and wrangler.toml's cron triggers fire on their schedule (`--no-cron` or
// AIRLOCK_CRON=0 turn that off). MONITORING_WINDOW_SECONDS (e.g. 60) is passed on to the Worker.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { stripVTControlCharacters } from "node:util";
import {
  type CronScheduler,
  cronWanted,
  nextFireTime,
  readCronTriggers,
  startCronScheduler,
} from "./lib/cron-scheduler.ts";
import {
  demoCurl,
  demoWanted,
  describeDemoOutcome,
  ensureDemoModel,
  readDemo,
} from "./lib/demo.ts";
import {
  exitOnUsageError,
  freePort,
  isAddressInUse,
  nextFreePort,
  portFromEnv,
  portInUseError,
  requirePortFree,
  UsageError,
  WranglerOutput,
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
import { adminTokenFile, ensureLocalAdmin, type LocalAdmin } from "./lib/local-admin.ts";
import { redactUrl } from "./lib/local-db.ts";
import { migrateDatabase } from "./lib/migrate.ts";

const args = process.argv.slice(2);
const host = "127.0.0.1";
const embedded = !process.env.DATABASE_URL;

// Everything that can refuse the start is checked before anything is written, so that a start
// that cannot run leaves the state directory (and a running instance's files in it) as they were.
const { port, dbPort, crons, releaseStateDir } = await (async () => {
  const port = portFromEnv("PORT", 8787);
  const dbPort = portFromEnv("AIRLOCK_DB_PORT", 54329);
  let crons: string[];
  try {
    crons = readCronTriggers(join(projectRoot, "wrangler.toml"));
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
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
  return { port, dbPort, crons, releaseStateDir };
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

let scheduler: CronScheduler | undefined;
let stopping = false;
async function shutdown(code: number) {
  if (stopping) return;
  stopping = true;
  await scheduler?.stop();
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
    "--inspector-port",
    inspectorPort,
    "--show-interactive-dev-session=false",
    // Secrets from the file, not the command line (which any process listing shows). Named even
    // when it is the project's .dev.vars: only then does wrangler also read DATABASE_URL from
    // its environment (below), and count it as present.
    "--env-file",
    devVarsFile,
    "--var",
    `DATABASE_WS_PROXY:${wsProxy}`,
    // Local model servers run on loopback over http.
    "--var",
    `UPSTREAM_ALLOWED_HOSTS:${process.env.UPSTREAM_ALLOWED_HOSTS ?? "127.0.0.1,localhost"}`,
    // Links in notices point at this instance unless told otherwise.
    "--var",
    `ALERT_LINK_BASE:${process.env.ALERT_LINK_BASE ?? `http://127.0.0.1:${port}`}`,
    // The Worker's local-only POST /__scheduled, which the cron scheduler below fires.
    "--var",
    "LOCAL_TRIGGERS:1",
    // Short monitoring windows for a first try, a demo or a test (the Worker checks the value).
    ...(process.env.MONITORING_WINDOW_SECONDS
      ? ["--var", `MONITORING_WINDOW_SECONDS:${process.env.MONITORING_WINDOW_SECONDS}`]
      : []),
    // A state directory of its own holds wrangler's local state too (Durable Objects, KV,
    // queues), so that the objects of one instance are not another's.
    ...(process.env.AIRLOCK_STATE_DIR ? ["--persist-to", join(stateDir, "wrangler")] : []),
  ],
  {
    cwd: projectRoot,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
    env: wranglerEnvironment(process.env),
  },
);

/**
 * wrangler's environment. With --env-file it also takes the Worker's secrets from its
 * environment, and those would win over the file: the file is their one source, except for
 * DATABASE_URL, which is the database started above (passed here rather than on the command
 * line, so that a local Postgres's password stays out of process listings). The rest keeps a
 * local run off the network: no usage metrics, no `Request.cf` download (the Worker gets
 * miniflare's placeholder), no update check (it comes with wrangler's own banner; ours follows).
 * Each can be turned back on by setting it.
 */
function wranglerEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  for (const name of [
    "DATABASE_URL",
    "ADMIN_TOKEN",
    "LOG_HMAC_KEY",
    "ALERT_ENCRYPTION_KEY",
    "AUDIT_SIGNING_KEY",
  ])
    delete copy[name];
  return {
    WRANGLER_SEND_METRICS: "false",
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    WRANGLER_HIDE_BANNER: "true",
    ...copy,
    DATABASE_URL: database.databaseUrl,
  };
}

const cronsOn = cronWanted(args, process.env);
let announced = false;
const output = new WranglerOutput();
relayLines(wrangler.stdout, output, (line) => console.log(line));
// Warnings and errors come on stderr.
relayLines(wrangler.stderr, new WranglerOutput(), (line) => console.error(line));

function relayLines(
  stream: NodeJS.ReadableStream,
  filter: WranglerOutput,
  write: (line: string) => void,
) {
  let partialLine = "";
  const show = (lines: string[]) => {
    for (const line of lines) {
      write(line.replaceAll(database.databaseUrl, redactUrl(database.databaseUrl)));
      if (!announced && stripVTControlCharacters(line).includes("Ready on")) {
        announced = true;
        void announce(`http://${host}:${port}`);
      }
    }
  };
  stream.on("data", (chunk: Buffer) => {
    const lines = (partialLine + chunk.toString()).split("\n");
    partialLine = lines.pop() ?? "";
    for (const line of lines) show(filter.line(line));
  });
  stream.on("end", () => {
    show([...(partialLine ? filter.line(partialLine) : []), ...filter.flush()]);
  });
}

/**
 * The local admin person and their token, then the demo model (so that what
 * the banner offers works), then the banner, then crons.
 */
async function announce(base: string) {
  let admin: LocalAdmin | undefined;
  let adminLine: string;
  try {
    admin = await ensureLocalAdmin(base, token);
    adminLine = `Authorization: Bearer ${admin.token}   (Local admin, ${admin.principalId}; ${admin.issued ? "new token, " : ""}kept in ${shownPath(adminTokenFile())})`;
  } catch (error) {
    adminLine = `could not set up the local admin (the server runs on): ${error instanceof Error ? error.message : String(error)}`;
  }
  const demo = demoWanted(args, process.env) && admin ? await demoLines(base, admin.token) : [];
  console.log(
    [
      "",
      "Airlock is running.",
      `  API:       ${base}`,
      `  Docs:      ${base}/docs  (OpenAPI: ${base}/openapi.json)`,
      `  Database:  ${redactUrl(database.databaseUrl)} (${database.kind})`,
      `  Admin:     ${adminLine}`,
      `  Bootstrap: Authorization: Bearer ${token}   (${created ? `new, written to ${devVarsShown}` : `from ${devVarsShown}`}; manages principals and engages kill switches, nothing else)`,
      `  Crons:     ${cronLine(base)}`,
      `  Windows:   ${windowLine()}`,
      ...demo,
      "",
    ].join("\n"),
  );
  if (cronsOn && !stopping) {
    scheduler = startCronScheduler({
      crons,
      baseUrl: base,
      log: (line) => console.log(line),
      onRequest: () => {
        output.schedulerRequests += 1;
      },
      onNoAnswer: () => {
        output.schedulerRequests = Math.max(0, output.schedulerRequests - 1);
      },
    });
  }
}

/** The monitoring window this instance computes, and how to change it. */
function windowLine(): string {
  const setting = process.env.MONITORING_WINDOW_SECONDS;
  return setting
    ? `monitoring windows of ${setting} s (MONITORING_WINDOW_SECONDS)`
    : "monitoring windows of 900 s; MONITORING_WINDOW_SECONDS=60 npm start for a first try";
}

function cronLine(base: string): string {
  const list = crons.join(", ");
  if (crons.length === 0) return "none in wrangler.toml";
  if (!cronsOn) {
    const why = args.includes("--no-cron")
      ? "--no-cron"
      : `AIRLOCK_CRON=${process.env.AIRLOCK_CRON}`;
    const example = `${base}/__scheduled?cron=${(crons[0] ?? "").replaceAll(" ", "+")}`;
    return `off (${why}); ${list} do not fire. By hand: curl -X POST '${example}'`;
  }
  const now = Date.now();
  const next = Math.min(
    ...crons.map((cron) => nextFireTime(cron, now) ?? Number.POSITIVE_INFINITY),
  );
  const when = Number.isFinite(next)
    ? `, next at ${new Date(next).toISOString().slice(11, 16)} UTC`
    : "";
  return `${list} fire on schedule${when}; --no-cron or AIRLOCK_CRON=0 turns them off`;
}

async function demoLines(base: string, adminToken: string): Promise<string[]> {
  try {
    const demo = readDemo();
    const outcome = await ensureDemoModel(base, adminToken, demo);
    const what = describeDemoOutcome(outcome, demo);
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
    void scheduler?.stop();
    stopWrangler();
    setTimeout(() => shutdown(0), 1500).unref();
  });
}
wrangler.on("exit", (code) => shutdown(code ?? 0));
