import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ReceivedRequest, startAlertReceiver } from "../../scripts/lib/alert-receiver.ts";
import { type DevServer, freePort, startDevServer } from "../../scripts/lib/dev-server.ts";
import { ensureAdminToken, projectRoot } from "../../scripts/lib/environment.ts";
import { adminTokenFile, readAdminToken } from "../../scripts/lib/local-admin.ts";

/**
 * The README's monitoring recipe, as a newcomer runs it, with 20-second windows instead of the
 * recipe's 60 so that it takes minutes: `npm start` with short windows, a local alert receiver,
 * a Slack destination, traffic in which income has drifted, a monitoring run on demand, the
 * drift alert at the receiver; then traffic without drift, another run, and its resolution.
 *
 * It waits on events (the traffic generator's exit, the run's status, messages arriving), each
 * with a generous cap that only keeps a broken server from hanging the test. Windows are wall
 * time by nature: each phase of traffic lasts four windows, so whichever instant it starts at,
 * the run that follows finds ended windows of it; 60 requests a second give a window the 1,000
 * values a drift distance needs for a verdict. Stable traffic is flagged by chance now and then
 * (a drift test at the 5% level): a phase that did not yet show what it should is sent again,
 * at most three times, as a person trying the recipe would.
 */

const WINDOW_SECONDS = 20;
const RATE = "60";
const ROUNDS = 3;
const MODEL = "demo-credit-risk";
const CHANNEL = "/hooks/slack/recipe";
/** Caps on waits; they decide nothing but a hang. */
const RUN_CAP_MS = 300_000;
const NOTICE_CAP_MS = 120_000;

interface Run {
  id: number;
  status: string;
  error: string | null;
  evaluatedAt: string[];
  alerts: { opened: number; insufficient: number } | null;
  versions: { model: string; version: string; computed: Record<string, number> }[];
}

describe("the monitoring recipe under npm start", () => {
  const stateDir = mkdtempSync(join(tmpdir(), "airlock-recipe-"));
  const devVars = join(stateDir, "dev.vars");
  let server: DevServer | undefined;
  let receiver: Awaited<ReturnType<typeof startAlertReceiver>> | undefined;
  const received: ReceivedRequest[] = [];
  let base = "";
  let token = "";

  beforeAll(async () => {
    receiver = await startAlertReceiver(0, "127.0.0.1", {
      onRequest: (request) => received.push(request),
    });
    ensureAdminToken(devVars);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = await startDevServer({
      AIRLOCK_STATE_DIR: stateDir,
      AIRLOCK_DEV_VARS: devVars,
      PORT: String(port),
      AIRLOCK_DB_PORT: String(await freePort()),
      MONITORING_WINDOW_SECONDS: String(WINDOW_SECONDS),
      // The recipe fires runs itself; a cron firing meanwhile would only do the same work.
      AIRLOCK_CRON: "0",
    });
    // npm start's local admin acts here.
    token = readAdminToken(adminTokenFile(stateDir)) ?? "";
  }, 180_000);

  afterAll(async () => {
    await server?.stop();
    await receiver?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const admin = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, json: (await response.json()) as Record<string, unknown> };
  };

  /** `npm run traffic` as the recipe runs it; resolves once the generator has exited. */
  const traffic = (args: string[]) =>
    new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(
        join(projectRoot, "node_modules", ".bin", "node"),
        ["scripts/traffic.ts", "--url", base, "--admin-token", token, ...args],
        { cwd: projectRoot, stdio: ["ignore", "pipe", "pipe"] },
      );
      let output = "";
      child.stdout.on("data", (chunk: Buffer) => {
        output += chunk.toString();
      });
      child.stderr.on("data", (chunk: Buffer) => {
        output += chunk.toString();
      });
      child.on("exit", (code) => resolve({ code, output }));
    });

  /** `POST /admin/monitoring/runs`, then its status until it has ended. */
  async function runMonitoringNow(): Promise<Run> {
    const created = await admin("POST", "/admin/monitoring/runs");
    expect(created.status).toBe(201);
    const id = created.json.id as number;
    const deadline = Date.now() + RUN_CAP_MS;
    while (Date.now() < deadline) {
      const run = (await admin("GET", `/admin/monitoring/runs/${id}`)).json as unknown as Run;
      if (run.status === "succeeded" || run.status === "failed") return run;
      await sleep(250);
    }
    throw new Error(`monitoring run ${id} did not end`);
  }

  /** Slack messages at the channel whose fallback text matches. */
  const messages = (pattern: RegExp) =>
    received
      .filter((r) => r.path === CHANNEL)
      .map((r) => JSON.parse(r.body) as { text: string })
      .filter((m) => pattern.test(m.text));

  /** Waits for a message: the notices of a run's evaluations are all queued by its end. */
  async function arrives(pattern: RegExp): Promise<void> {
    const deadline = Date.now() + NOTICE_CAP_MS;
    while (messages(pattern).length === 0 && Date.now() < deadline) {
      // Nothing more will come once every notice the run created has been delivered.
      if (await noticesSettled()) break;
      await sleep(250);
    }
  }

  /** Whether every notice to the channel's destination has been sent or failed. */
  async function noticesSettled(): Promise<boolean> {
    const alerts = await admin("GET", `/admin/alerts?model=${MODEL}&limit=200`);
    const items = (alerts.json.items ?? []) as { id: number }[];
    for (const { id } of items) {
      const alert = await admin("GET", `/admin/alerts/${id}`);
      const deliveries = (alert.json.deliveries ?? []) as { status: string }[];
      if (deliveries.some((d) => d.status === "pending")) return false;
    }
    return true;
  }

  it("ends with a drift alert at the local receiver, then its resolution", {
    timeout: 600_000,
  }, async () => {
    const destination = await admin("POST", "/admin/alert-destinations", {
      name: "recipe channel",
      kind: "slack",
      url: `${receiver?.url}${CHANNEL}`,
      models: [MODEL],
      includeSystem: false,
    });
    expect(destination.status, JSON.stringify(destination.json)).toBe(201);

    // Traffic in which income has moved up by 1.5 standard deviations, then a run.
    const phase = `${4 * WINDOW_SECONDS}s`;
    const firing = new RegExp(`^\\[WARNING\\] ${MODEL} — drift: .*income`);
    for (let round = 0; round < ROUNDS && messages(firing).length === 0; round++) {
      const drifted = await traffic([
        ...["--rate", RATE, "--duration", phase, "--label-rate", "0", "--seed", String(round + 1)],
        ...["--drift", "income:shift=1.5sd"],
      ]);
      expect(drifted.code, drifted.output).toBe(0);
      const run = await runMonitoringNow();
      expect(run.status, run.error ?? "").toBe("succeeded");
      expect(run.alerts).not.toBeNull();
      // The demo's versions have baselines: drift was computed for the champion.
      const champion = run.versions.find((v) => v.model === MODEL && v.version === "v1-logistic");
      expect(champion?.computed.served ?? 0).toBeGreaterThan(0);
      await arrives(firing);
    }
    const fired = messages(firing);
    expect(fired.length, JSON.stringify(received.map((r) => r.body))).toBeGreaterThan(0);
    // The message names the statistic, its value, its threshold and its direction: the distance
    // and PSI, or PSI alone for a window with fewer values than a distance needs (on a busy
    // machine the traffic generator falls behind its rate).
    expect(fired[0]?.text).toMatch(
      /income: (normalised Wasserstein distance [\d.]+ \(above the threshold 0\.1\)|PSI [\d.]+ \(above the threshold 0\.25\))/,
    );

    // The drift stops: traffic as the training data was, then another run.
    const resolved = new RegExp(`^Resolved: ${MODEL} — drift after `);
    for (let round = 0; round < ROUNDS && messages(resolved).length === 0; round++) {
      const stable = await traffic([
        ...["--rate", RATE, "--duration", phase, "--label-rate", "0", "--seed", String(round + 10)],
      ]);
      expect(stable.code, stable.output).toBe(0);
      const run = await runMonitoringNow();
      expect(run.status, run.error ?? "").toBe("succeeded");
      await arrives(resolved);
    }
    const done = messages(resolved);
    expect(done.length, JSON.stringify(received.map((r) => r.body))).toBeGreaterThan(0);
    // What it says of the values is true: they are back within bounds.
    expect(done[0]?.text).toMatch(/\(not above the threshold 0\.(1|25)\)/);
    expect(done[0]?.text).not.toMatch(/\((above|below) the threshold/);
  });
});
