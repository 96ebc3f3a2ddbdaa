import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DEMO_BASELINE_ROWS, demoBaselineRows } from "../../scripts/demo/baseline.ts";
import { describeDemoOutcome, ensureDemoModel, readDemo } from "../../scripts/lib/demo.ts";
import type { DevServer } from "../../scripts/lib/dev-server.ts";
import { startLocalAirlock } from "./walkthrough-helpers.ts";

const demo = readDemo();
const name = demo.model.name;
const inputSchema = demo.model.inputSchema as { properties: Record<string, { type: string }> };

interface Summary {
  kind: "numeric" | "categorical";
  n: number;
  missing: number;
  min?: number;
  max?: number;
  mean?: number;
  counts?: Record<string, number>;
}

interface BaselineBody {
  model: string;
  version: string;
  source: { kind: string };
  rows: number;
  createdBy: string;
  features: Record<string, Summary>;
  predictions: Record<string, unknown>;
}

describe("the demo model under npm start", () => {
  const stateDir = mkdtempSync(join(tmpdir(), "airlock-demo-"));
  let server: DevServer | undefined;
  afterAll(async () => {
    await server?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it("gives both versions a baseline drawn from the traffic profile, once", async () => {
    const started = await startLocalAirlock(stateDir);
    server = started.server;
    const { base, adminToken: token } = started;
    expect(server.output()).toContain(`${name} registered (champion v1-logistic`);
    const headers = { authorization: `Bearer ${token}` };
    const admin = async (path: string) => {
      const response = await fetch(`${base}${path}`, { headers });
      expect(response.status, path).toBe(200);
      return response.json();
    };

    // What the rows say, feature by feature, to hold each baseline against.
    const rows = demoBaselineRows(demo.model);
    const column = (feature: string) => rows.map((row) => row[feature]);

    const baselines: BaselineBody[] = [];
    for (const { version } of demo.versions) {
      const baseline = (await admin(
        `/admin/models/${name}/versions/${version}/baseline`,
      )) as BaselineBody;
      baselines.push(baseline);
      expect(baseline).toMatchObject({ model: name, version, source: { kind: "upload" } });
      expect(baseline.rows).toBe(DEMO_BASELINE_ROWS);
      expect(baseline.predictions).toEqual({});
      expect(Object.keys(baseline.features).sort()).toEqual(
        Object.keys(inputSchema.properties).sort(),
      );
      for (const [feature, summary] of Object.entries(baseline.features)) {
        expect([feature, summary.n, summary.missing]).toEqual([feature, DEMO_BASELINE_ROWS, 0]);
        const values = column(feature);
        if (inputSchema.properties[feature]?.type === "boolean") {
          const trues = values.filter((v) => v === true).length;
          expect([feature, summary.counts]).toEqual([
            feature,
            { true: trues, false: DEMO_BASELINE_ROWS - trues },
          ]);
        } else {
          // Every numeric feature of the profile has more than 5 distinct values in 5,000 rows.
          const numbers = values as number[];
          expect([feature, summary.kind]).toEqual([feature, "numeric"]);
          expect([feature, summary.min, summary.max]).toEqual([
            feature,
            Math.min(...numbers),
            Math.max(...numbers),
          ]);
          const mean = numbers.reduce((a, b) => a + b, 0) / numbers.length;
          expect(summary.mean).toBeCloseTo(mean, 6);
        }
      }
    }
    // Champion and challenger were trained on the same population: the same reference.
    expect(baselines[0]?.features).toEqual(baselines[1]?.features);

    // Audited as an operator's baselines are, once per version.
    const audit = async () =>
      (
        (await admin(`/admin/audit?target=models/${name}&limit=200`)) as {
          items: { action: string; target: string }[];
        }
      ).items;
    const set = (await audit()).filter((e) => e.action === "version.baseline.set");
    expect(set.map((e) => e.target).sort()).toEqual(
      demo.versions.map((v) => `models/${name}/versions/${v.version}`).sort(),
    );

    // Again (a later start, or a retry): found, and nothing changes.
    const before = await audit();
    expect(await ensureDemoModel(base, token, demo)).toBe("present");
    expect(await audit()).toEqual(before);
  }, 240_000);
});

describe("describeDemoOutcome", () => {
  it("names the versions and their baselines, or says the model was left alone", () => {
    expect(describeDemoOutcome("registered", demo)).toBe(
      "registered (champion v1-logistic, shadow v2-xgboost), each with a baseline of 5,000 rows",
    );
    expect(describeDemoOutcome("present", demo)).toBe("already present, left as it is");
  });
});
