import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { storeLogs } from "../../functions/queue/prediction-logs";
import demo from "../../scripts/demo/demo-credit-risk.json";
import { call, createModel, type ErrorJson, httpUpstream, json, uniqueName } from "./helpers";
import { events, type ResultRow, rowsFrom } from "./traffic-helpers";

interface Run {
  id: number;
  kind: string | null;
  status: string;
  windows: number;
  error: string | null;
  range: { from: string; to: string } | null;
  progress: { windowsDone: number; windowsTotal: number } | null;
  versions: {
    model: string;
    version: string;
    computed: Record<string, number>;
    skipped: Record<string, number>;
  }[];
  evaluatedAt: string[];
  windowSeconds: number | null;
  alerts: { insufficient: number } | null;
}

/** Follows a run until its consumer has ended it: each poll is a read of its row. */
async function ended(id: number): Promise<Run> {
  for (let poll = 0; poll < 2000; poll++) {
    const run = await json<Run>(await call(`/admin/monitoring/runs/${id}`));
    if (run.status === "succeeded" || run.status === "failed") return run;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`monitoring run ${id} did not end`);
}

// A day no other test writes results in.
const DAY = Date.parse("2026-11-17T00:00:00.000Z");
const W1 = DAY + 4 * 3_600_000;

async function modelWithTraffic() {
  const model = uniqueName("runs");
  await createModel({ ...demo.model, name: model, public: false });
  const baseline = { rows: rowsFrom(model, 21, 600) };
  for (const [version, body] of [
    ["v1", { baseline }],
    ["v2", {}],
    ["v3", { baseline }],
  ] as const) {
    const created = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version, upstream: httpUpstream, ...body },
    });
    expect(created.status).toBe(201);
  }
  // v1 (a baseline) and v2 (none) answer in each of four windows; v3 has a
  // baseline and no traffic.
  const logged = [0, 1, 2, 3].flatMap((i) => {
    const rows = rowsFrom(model, 30 + i, 200);
    return [
      ...events(model, rows, W1 + i * 900_000),
      ...events(model, rows, W1 + i * 900_000).map((e) => ({ ...e, version: "v2" })),
    ];
  });
  await storeLogs(env, logged, []);
  return model;
}

describe("monitoring runs on demand", () => {
  it("backfills a past range through its queue, saying per version what it computed and skipped", {
    timeout: 120_000,
  }, async () => {
    const model = await modelWithTraffic();
    const from = new Date(W1).toISOString();
    const to = new Date(W1 + 3_600_000).toISOString();
    const response = await call("/admin/monitoring/runs", { method: "POST", body: { from, to } });
    expect(response.status).toBe(201);
    const queued = await json<Run>(response);
    expect(queued).toMatchObject({ kind: "backfill", status: "queued", range: { from, to } });

    const run = await ended(queued.id);
    expect(run.status, run.error ?? "").toBe("succeeded");
    // Four 15-minute windows and the hour that holds them; no alert is evaluated for the past.
    expect(run.progress).toEqual({ windowsDone: 5, windowsTotal: 5 });
    expect(run.evaluatedAt).toEqual([]);
    expect(run.alerts).toBeNull();
    const mine = run.versions.filter((v) => v.model === model);
    expect(mine).toEqual([
      { model, version: "v1", computed: { served: 5 }, skipped: {} },
      { model, version: "v2", computed: {}, skipped: { "no baseline": 5 } },
      { model, version: "v3", computed: {}, skipped: { "no traffic": 5 } },
    ]);

    const results = await call(
      `/admin/models/${model}/monitoring?from=${from}&to=${to}&metric=drift&version=v1`,
    );
    const rows = (await json<{ items: ResultRow[] }>(results)).items;
    const windows = new Set(rows.map((r) => `${r.windowSeconds}:${r.windowStart}`));
    expect(windows.size).toBe(5);
    expect(rows.every((r) => r.runId === run.id || r.runId === undefined)).toBe(true);

    const audit = await call(`/admin/audit?target=monitoring/runs/${run.id}`);
    const trail = (await json<{ items: { action: string; after: unknown }[] }>(audit)).items;
    expect(trail.map((e) => e.action)).toEqual(["monitoring.run.request"]);
    expect(trail[0]?.after).toMatchObject({ kind: "backfill", from, to, windowSeconds: 900 });
  });

  it("backfills a long range in chunks, each carrying on from the last", {
    timeout: 300_000,
  }, async () => {
    // Two days: 192 base windows, 48 hours and 2 days, over two messages.
    const from = new Date(DAY - 2 * 86_400_000).toISOString();
    const to = new Date(DAY).toISOString();
    const response = await call("/admin/monitoring/runs", { method: "POST", body: { from, to } });
    expect(response.status).toBe(201);
    const run = await ended((await json<Run>(response)).id);
    expect(run.status, run.error ?? "").toBe("succeeded");
    expect(run.progress).toEqual({ windowsDone: 242, windowsTotal: 242 });
  });

  it("refuses a range it cannot compute, naming the field", async () => {
    const post = (body: unknown) => call("/admin/monitoring/runs", { method: "POST", body });
    const cases: [unknown, string, RegExp][] = [
      [{ from: new Date(W1).toISOString() }, "to", /is required with the other end/],
      [{ to: new Date(W1).toISOString() }, "from", /is required with the other end/],
      [{ from: new Date(W1).toISOString(), to: new Date(W1).toISOString() }, "to", /after from/],
      [
        { from: new Date(W1 - 40 * 86_400_000).toISOString(), to: new Date(W1).toISOString() },
        "from",
        /windows of 15 minutes; a backfill takes at most 2976/,
      ],
      [
        {
          from: new Date(Date.now() + 3_600_000).toISOString(),
          to: new Date(Date.now() + 7_200_000).toISOString(),
        },
        "to",
        /no window of 15 minutes lies inside the range and has ended/,
      ],
      [{ from: "yesterday", to: new Date(W1).toISOString() }, "from", /./],
      [{ window: 60 }, "(body)", /window/],
    ];
    for (const [body, field, message] of cases) {
      const response = await post(body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      const error = (await json<ErrorJson>(response)).error;
      expect(error.code).toBe("VALIDATION_FAILED");
      expect(error.message, JSON.stringify(body)).toMatch(message);
      expect(error.details?.map((d) => d.path) ?? [error.message.split(":")[0]]).toContain(field);
    }
  });

  it("answers 404 for a run that does not exist and 400 for an id that is not one", async () => {
    const missing = await call("/admin/monitoring/runs/900719925474099");
    expect(missing.status).toBe(404);
    expect((await json<ErrorJson>(missing)).error.code).toBe("RUN_NOT_FOUND");
    const bad = await call("/admin/monitoring/runs/latest");
    expect(bad.status).toBe(400);
    expect((await json<ErrorJson>(bad)).error.message).toMatch(/id/);
  });

  it("refuses a window length the monitoring does not use", async () => {
    const model = uniqueName("runs");
    await createModel({ ...demo.model, name: model, public: false });
    const response = await call(`/admin/models/${model}/monitoring?window=60`);
    expect(response.status).toBe(400);
    expect((await json<ErrorJson>(response)).error.message).toMatch(
      /^window: must be one of the monitoring windows, 900, 3600, 86400/,
    );
  });
});
