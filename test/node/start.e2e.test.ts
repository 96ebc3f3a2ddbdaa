import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCronTriggers } from "../../scripts/lib/cron-scheduler.ts";
import { demoWanted, readDemo } from "../../scripts/lib/demo.ts";
import {
  type DevServer,
  freePort,
  runScript,
  startDevServer,
} from "../../scripts/lib/dev-server.ts";
import {
  devVarsPath,
  ensureAdminToken,
  projectRoot,
  readDevVars,
} from "../../scripts/lib/environment.ts";
import { adminTokenFile, readAdminToken } from "../../scripts/lib/local-admin.ts";

/** The developer's own secrets file: what it holds, or null when there is none. */
const projectDevVars = () => {
  const file = join(projectRoot, ".dev.vars");
  return existsSync(file) ? readFileSync(file, "utf8") : null;
};

describe("npm start", () => {
  const stateDirs: string[] = [];
  const running: DevServer[] = [];
  let projectDevVarsBefore: string | null;
  beforeAll(() => {
    projectDevVarsBefore = projectDevVars();
  });
  afterAll(async () => {
    for (const started of running) await started.stop();
    for (const dir of stateDirs) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Ports, a state directory (so a fresh embedded database) and a secrets file of its own for
   * one instance.
   */
  async function instance(extra: Record<string, string> = {}) {
    const stateDir = mkdtempSync(join(tmpdir(), "airlock-start-"));
    stateDirs.push(stateDir);
    const devVars = join(stateDir, "dev.vars");
    const port = await freePort();
    const env = {
      AIRLOCK_STATE_DIR: stateDir,
      AIRLOCK_DEV_VARS: devVars,
      PORT: String(port),
      AIRLOCK_DB_PORT: String(await freePort()),
      ...extra,
    };
    return { env, base: `http://127.0.0.1:${port}`, devVars, stateDir };
  }

  /** The instance used its own secrets file and left the developer's as it was. */
  function expectOwnSecrets(server: DevServer, devVars: string) {
    // (wrangler names the file relative to its working directory, the project.)
    expect(server.output()).toContain(`Using secrets defined in ${relative(projectRoot, devVars)}`);
    expect(server.output()).not.toContain("Using secrets defined in .dev.vars");
    expect(projectDevVars()).toBe(projectDevVarsBefore);
  }

  /** What wrangler says that `npm start` has made unnecessary or false. */
  function expectQuietStart(server: DevServer) {
    const output = server.output();
    // DATABASE_URL reaches wrangler as a secret it sees.
    expect(output).not.toContain("Missing required secrets");
    // Nothing is fetched from the network (Request.cf, update check).
    expect(output).not.toMatch(/ENOTFOUND|Unable to fetch the `Request\.cf`/);
    expect(output.split("Your Worker has access to the following bindings:")).toHaveLength(2);
  }

  const crons = readCronTriggers(join(projectRoot, "wrangler.toml"));
  const demo = readDemo();
  const auditActions = async (base: string, headers: Record<string, string>, target: string) => {
    const audit = await fetch(`${base}/admin/audit?target=${target}&limit=200`, { headers });
    expect(audit.status).toBe(200);
    return ((await audit.json()) as { items: { action: string }[] }).items.map((e) => e.action);
  };

  it("serves the API on an embedded database whose data survives a restart", async () => {
    const { env, base, devVars, stateDir } = await instance();
    expect(devVarsPath(env)).toBe(devVars);

    const first = await startDevServer(env);
    running.push(first);
    // The first start writes the token and the local keys into the file AIRLOCK_DEV_VARS names.
    const secrets = readDevVars(devVars);
    const token = secrets.get("ADMIN_TOKEN") ?? "";
    expect(token.length).toBeGreaterThanOrEqual(32);
    expect(secrets.get("LOG_HMAC_KEY")).toBeTruthy();
    expect(secrets.get("ALERT_ENCRYPTION_KEY")).toBeTruthy();
    expect(first.output()).toContain(
      `Bootstrap: Authorization: Bearer ${token}   (new, written to ${devVars}`,
    );
    expectOwnSecrets(first, devVars);
    // A local admin person, with a token of their own kept in the state directory.
    const personal = readAdminToken(adminTokenFile(stateDir)) ?? "";
    expect(personal).toMatch(/^airlock_pat_/);
    expect(first.output()).toContain(
      `Admin:     Authorization: Bearer ${personal}   (Local admin, prn_`,
    );
    const headers = { authorization: `Bearer ${personal}`, "content-type": "application/json" };
    // The bootstrap token creates principals, and is refused everything else.
    const bootstrapOnly = await fetch(`${base}/admin/models`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(bootstrapOnly.status).toBe(403);
    const me = await fetch(`${base}/admin/me`, { headers });
    const { principal } = (await me.json()) as { principal: { id: string; email: string } };
    expect(principal.email).toBe("admin@airlock.localhost");
    // Once an admin person exists the bootstrap token can be turned off: it then opens nothing.
    const setBootstrap = (enabled: boolean) =>
      fetch(`${base}/admin/bootstrap`, {
        method: "PUT",
        headers,
        body: JSON.stringify({ enabled }),
      });
    expect((await setBootstrap(false)).status).toBe(200);
    const turnedOff = await fetch(`${base}/admin/principals`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ kind: "person", displayName: "Late", email: "late@example.com" }),
    });
    expect(turnedOff.status).toBe(401);
    // Meanwhile the last admin person keeps their role: nobody could grant one again.
    const lastAdmin = await fetch(`${base}/admin/principals/${principal.id}/grants/admin`, {
      method: "DELETE",
      headers,
    });
    expect(lastAdmin.status).toBe(409);
    expect(((await lastAdmin.json()) as { error: { code: string } }).error.code).toBe("LAST_ADMIN");
    expect((await setBootstrap(true)).status).toBe(200);
    expect(first.output()).toContain(`API:       ${base}`);
    expect(first.output()).toContain(`${base}/docs`);
    expect(first.output()).toMatch(
      /Database: +postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/postgres \(embedded\)/,
    );
    // The crons fire on schedule, and the banner says which and how to turn them off.
    expect(first.output()).toContain(`Crons:     ${crons.join(", ")} fire on schedule, next at `);
    expect(first.output()).toContain("--no-cron or AIRLOCK_CRON=0 turns them off");
    expect(first.output()).not.toContain("Scheduled Workers are not automatically triggered");
    expectQuietStart(first);
    // The Worker serves the route the scheduler fires (LOCAL_TRIGGERS), for each of the crons.
    const fire = (cron: string) =>
      fetch(`${base}/__scheduled?cron=${encodeURIComponent(cron)}&time=${Date.now()}`, {
        method: "POST",
      });
    const fired = await fire(crons[0] ?? "");
    expect(fired.status).toBe(200);
    const firedBody = (await fired.json()) as { cron: string; result: { checkpoint?: string } };
    expect(firedBody).toMatchObject({ cron: crons[0] });
    // The hourly job signs a checkpoint of the audit chain with the key npm start generated
    // (unless the scheduler fired it already), and the trail verifies against it.
    expect(["stored", "unchanged"]).toContain(firedBody.result.checkpoint);
    const checkpoints = (await (
      await fetch(`${base}/admin/audit/checkpoints`, { headers })
    ).json()) as { items: { seq: number }[] };
    expect(checkpoints.items.length).toBeGreaterThan(0);
    const verified = (await (await fetch(`${base}/admin/audit/verify`, { headers })).json()) as {
      ok: boolean;
      checkpoint: { seq: number } | null;
    };
    expect(verified.ok).toBe(true);
    expect(verified.checkpoint?.seq).toBeGreaterThanOrEqual(checkpoints.items.at(-1)?.seq ?? 1);
    const unknown = await fire("1 2 3 4 5");
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toMatchObject({ error: { code: "UNKNOWN_CRON" } });

    // A second start on the same state directory refuses and leaves the first one's records be;
    // db:migrate then goes through the running instance's database.
    const records = () =>
      ["instance.json", "database.json"].map((f) => readFileSync(join(stateDir, f), "utf8"));
    const recorded = records();
    const refused = await runScript("scripts/start.ts", env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`npm start is already running on ${stateDir}`);
    expect(refused.stderr).toMatch(/AIRLOCK_STATE_DIR=\S+ PORT=\d+ AIRLOCK_DB_PORT=\d+ npm start/);
    expect(records()).toEqual(recorded);
    const migrated = await runScript("scripts/migrate.ts", { AIRLOCK_STATE_DIR: stateDir });
    expect(migrated.stderr).toBe("");
    expect(migrated.stdout).toMatch(
      /^Migrations applied to postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:/,
    );
    expect(migrated.code).toBe(0);

    // The demo model is registered before the banner, and the banner shows how to call it.
    expect(first.output()).toContain(
      "demo-credit-risk registered (champion v1-logistic, shadow v2-xgboost)",
    );
    expect(first.output()).toContain(`curl -sS -X POST ${base}/v1/models/demo-credit-risk/predict`);
    const demoModel = await fetch(`${base}/admin/models/demo-credit-risk`, { headers });
    expect(demoModel.status).toBe(200);
    const rollout = await fetch(`${base}/admin/models/demo-credit-risk/rollout`, { headers });
    expect(await rollout.json()).toMatchObject({
      champion: "v1-logistic",
      shadows: [{ version: "v2-xgboost", sampleRate: 1 }],
      canary: null,
    });
    const prediction = await fetch(`${base}/v1/models/demo-credit-risk/predict`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ inputs: demo.example }),
    });
    expect(prediction.status).toBe(200);
    expect(prediction.headers.get("x-airlock-version")).toBe("v1-logistic");
    const { outputs } = (await prediction.json()) as { outputs: { label: string; score: number } };
    expect(["repaid", "default"]).toContain(outputs.label);
    expect(outputs.score).toBeGreaterThanOrEqual(0);
    expect(outputs.score).toBeLessThanOrEqual(1);
    // The log pipeline stores it (and the shadow's result) within seconds.
    const predictionId = prediction.headers.get("x-airlock-prediction-id") ?? "";
    // (The limit only keeps a broken pipeline from hanging the test; the rows decide.)
    const loggedBy = Date.now() + 60_000;
    let logged: { results: { role: string; version: string }[] } | undefined;
    while (Date.now() < loggedBy) {
      const stored = await fetch(`${base}/admin/predictions/${predictionId}`, { headers });
      if (stored.status === 200) {
        logged = (await stored.json()) as typeof logged;
        if ((logged?.results.length ?? 0) >= 2) break;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(logged?.results.map((r) => `${r.role}:${r.version}`).sort()).toEqual([
      "served:v1-logistic",
      "shadow:v2-xgboost",
    ]);
    // The same prediction through the Open Inference Protocol route.
    const datatype = (value: unknown) =>
      typeof value === "boolean" ? "BOOL" : Number.isInteger(value) ? "INT64" : "FP64";
    const inferred = await fetch(`${base}/v2/models/demo-credit-risk/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        inputs: Object.entries(demo.example as Record<string, unknown>).map(([name, value]) => ({
          name,
          shape: [1],
          datatype: datatype(value),
          data: [value],
        })),
      }),
    });
    expect(inferred.status).toBe(200);
    const v2 = (await inferred.json()) as {
      model_version: string;
      outputs: { name: string; data: unknown[] }[];
    };
    expect(v2.model_version).toBe("v1-logistic");
    expect(v2.outputs.find((o) => o.name === "score")?.data).toEqual([outputs.score]);
    // An operator's change to the demo model must survive restarts.
    const patched = await fetch(`${base}/admin/models/demo-credit-risk`, {
      method: "PATCH",
      headers,
      body: JSON.stringify({ owner: "someone-else@example.com" }),
    });
    expect(patched.status).toBe(200);

    const model = await fetch(`${base}/admin/models`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        name: "restart-check",
        task: "regression",
        owner: "ops",
        description: "survives restarts",
        inputSchema: { type: "object", properties: { x: { type: "number" } } },
      }),
    });
    expect(model.status).toBe(201);
    const version = await fetch(`${base}/admin/models/restart-check/versions`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        version: "v1",
        upstream: {
          kind: "http",
          url: "http://127.0.0.1:9/predict",
          protocol: "json",
          timeoutMs: 100,
        },
      }),
    });
    expect(version.status).toBe(201);
    await first.stop();

    const second = await startDevServer(env);
    running.push(second);
    expect(second.output()).toContain(`Bearer ${token}   (from ${devVars};`);
    // The restart keeps the local admin's token: it still authenticates.
    expect(second.output()).toContain(
      `Admin:     Authorization: Bearer ${personal}   (Local admin, prn_`,
    );
    expect(second.output()).not.toContain("new token");
    expectOwnSecrets(second, devVars);
    const read = await fetch(`${base}/admin/models/restart-check/versions/v1`, { headers });
    expect(read.status).toBe(200);
    expect(((await read.json()) as { version: string }).version).toBe("v1");
    const audit = await fetch(`${base}/admin/audit?target=models/restart-check`, { headers });
    const actions = ((await audit.json()) as { items: { action: string }[] }).items.map(
      (e) => e.action,
    );
    expect(actions).toEqual(["version.create", "model.create"]);
    const docs = await fetch(`${base}/openapi.json`);
    expect(docs.status).toBe(200);
    // The rollout objects (and the rest of wrangler's local state) live in the state directory.
    expect(existsSync(join(stateDir, "wrangler", "v3", "do"))).toBe(true);

    // The restart found the demo model and left it alone.
    expect(second.output()).toContain("demo-credit-risk already present, left as it is");
    const demoActions = await auditActions(base, headers, "models/demo-credit-risk");
    expect(demoActions.filter((a) => a === "model.create")).toHaveLength(1);
    expect(demoActions.filter((a) => a === "version.create")).toHaveLength(2);
    expect(demoActions).toContain("model.update");
    const kept = await fetch(`${base}/admin/models/demo-credit-risk`, { headers });
    expect(((await kept.json()) as { owner: string }).owner).toBe("someone-else@example.com");
    await second.stop();
  }, 240_000);

  it("registers no demo model with AIRLOCK_DEMO=0, and fires no crons with --no-cron", async () => {
    const { env, base, devVars, stateDir } = await instance({ AIRLOCK_DEMO: "0" });
    const { token } = ensureAdminToken(devVars);
    const server = await startDevServer(env, { args: ["--no-cron"] });
    running.push(server);
    expect(server.output()).toContain(`Bearer ${token}   (from ${devVars};`);
    expectOwnSecrets(server, devVars);
    expect(server.output()).toContain(
      `Crons:     off (--no-cron); ${crons.join(", ")} do not fire. By hand: curl -X POST '${base}/__scheduled?cron=`,
    );
    expect(server.output()).not.toContain("Scheduled Workers are not automatically triggered");
    expect(server.output()).not.toContain("demo-credit-risk");
    const personal = readAdminToken(adminTokenFile(stateDir)) ?? "";
    const headers = { authorization: `Bearer ${personal}` };
    const read = await fetch(`${base}/admin/models/demo-credit-risk`, { headers });
    expect(read.status).toBe(404);
    expect(await auditActions(base, headers, "models/demo-credit-risk")).toEqual([]);
    await server.stop();
  }, 180_000);
});

describe("demoWanted", () => {
  it("is on unless --no-demo or AIRLOCK_DEMO=0 (or false, no, off)", () => {
    expect(demoWanted([], {})).toBe(true);
    expect(demoWanted([], { AIRLOCK_DEMO: "1" })).toBe(true);
    expect(demoWanted(["--no-demo"], {})).toBe(false);
    for (const value of ["0", "false", "No", " off "])
      expect(demoWanted([], { AIRLOCK_DEMO: value })).toBe(false);
  });
});
