/**
 * Provenance: a prediction served by a canary names the version and role,
 * the rollout at its state, the approvals behind that canary with their
 * people, and the audit rows of each, which are rows of the chain; the
 * rollout at any earlier state is exact.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import worker from "../../functions/index";
import {
  call,
  classificationModel,
  completeModelCard,
  createModel,
  createVersion,
  type ErrorJson,
  fillAirlockItems,
  json,
  principalWithToken,
  query,
  recordingQueue,
  scoringVersion,
  uniqueName,
} from "./helpers";
import { deliverLogs } from "./log-helpers";
import { putRollout } from "./rollout-helpers";

interface Provenance {
  stateVersion: number;
  servedBy: { version: string; role: string };
  rollout: {
    stateVersion: number;
    champion: string;
    canary: { version: string; percent: number } | null;
    killSwitch: { engaged: boolean };
    auditSeq: number | null;
    action: string;
  } | null;
  approvals: {
    id: string;
    action: string;
    target: Record<string, unknown>;
    requestedBy: string;
    decisions: { by: string; role: string | null; decision: string }[];
    appliedBy: string | null;
    appliedStateVersion: number;
    audit: { seq: number | null; action: string; actor: string }[];
  }[];
  version: {
    version: string;
    upstreamSha256: string;
    cardRevision: number | null;
    modelCardSha256: string | null;
  } | null;
}

/** Predicts with a key, stores the log it sends, and returns the prediction id and its role. */
async function predict(model: string, key: string) {
  const { messages, queue } = recordingQueue();
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`http://airlock.test/v1/models/${model}/predict`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ inputs: { amount: 12, country: "DE" }, key }),
    }),
    { ...env, PREDICTION_LOGS: queue } as unknown as Env,
    ctx,
  );
  expect(response.status, await response.clone().text()).toBe(200);
  await waitOnExecutionContext(ctx);
  const result = await deliverLogs(messages.map((body) => ({ body })));
  expect(result.retryMessages).toEqual([]);
  return {
    id: response.headers.get("x-airlock-prediction-id") ?? "",
    version: response.headers.get("x-airlock-version") ?? "",
  };
}

describe("provenance", () => {
  it("names the approvals behind the canary that served a prediction, with their audit rows", async () => {
    const model = uniqueName("prov");
    expect(
      (
        await createModel(
          classificationModel(model, {
            public: true,
            fallback: { kind: "static", output: { label: "legit" } },
          }),
        )
      ).status,
    ).toBe(201);
    await createVersion(model, "v1", scoringVersion);
    await createVersion(model, "v2", { ...scoringVersion, modelCard: completeModelCard() });
    expect((await putRollout(model, { champion: "v1", leaseMs: 250 })).status).toBe(200);
    await fillAirlockItems(model, ["v2"]);
    const operator = await principalWithToken([{ role: "operator" }]);
    const owner = await principalWithToken([{ role: "owner", model }]);
    const risk = await principalWithToken([{ role: "risk_officer" }]);
    expect(
      (
        await call(`/admin/models/${model}/governance`, {
          method: "PUT",
          token: risk.token,
          body: { tier: "medium" },
        })
      ).status,
    ).toBe(200);
    const asked = await call(`/admin/models/${model}/approvals`, {
      method: "POST",
      token: operator.token,
      body: {
        action: "canary.raise",
        target: { version: "v2", percent: 50 },
        reason: "a week in shadow",
      },
    });
    expect(asked.status).toBe(201);
    const { id: approvalId } = await json<{ id: string }>(asked);
    for (const who of [owner, risk]) {
      const decided = await call(`/admin/approvals/${approvalId}/approve`, {
        method: "POST",
        token: who.token,
        body: { comment: "agreed" },
      });
      expect(decided.status).toBe(200);
    }
    const applied = await putRollout(
      model,
      { champion: "v1", canary: { version: "v2", percent: 50 }, leaseMs: 250, approvalId },
      { authorization: `Bearer ${operator.token}` },
    );
    expect(applied.status, await applied.clone().text()).toBe(200);
    const { stateVersion } = await json<{ stateVersion: number }>(applied);

    // A key the canary takes.
    let served: { id: string; version: string } | undefined;
    for (let i = 0; i < 40 && served?.version !== "v2"; i++)
      served = await predict(model, `customer-${i}`);
    expect(served?.version).toBe("v2");

    const stored = await call(`/admin/predictions/${served?.id}`);
    expect(stored.status).toBe(200);
    const { provenance } = await json<{ provenance: Provenance }>(stored);
    expect(provenance.stateVersion).toBe(stateVersion);
    expect(provenance.servedBy).toEqual({ version: "v2", role: "canary" });
    expect(provenance.rollout).toMatchObject({
      stateVersion,
      champion: "v1",
      canary: { version: "v2", percent: 50 },
      killSwitch: { engaged: false },
      action: "rollout.update",
    });
    expect(provenance.approvals).toHaveLength(1);
    const [approval] = provenance.approvals;
    expect(approval).toMatchObject({
      id: approvalId,
      action: "canary.raise",
      target: { version: "v2", percent: 50 },
      requestedBy: operator.id,
      appliedBy: operator.id,
      appliedStateVersion: stateVersion,
    });
    expect(approval?.decisions.map((d) => [d.by, d.decision]).sort()).toEqual(
      [
        [owner.id, "approve"],
        [risk.id, "approve"],
      ].sort(),
    );
    expect(approval?.audit.map((a) => a.action)).toEqual([
      "approval.request",
      "approval.approve",
      "approval.approve",
      "approval.consume",
    ]);
    // Each audit row named is that row of the chain.
    const seqs = approval?.audit.map((a) => a.seq) ?? [];
    const chain = await query<{ seq: string; action: string; target: string }>(
      sql`SELECT seq, action, target FROM audit_log
          WHERE seq IN (SELECT jsonb_array_elements_text(${JSON.stringify(seqs)}::jsonb)::bigint)
          ORDER BY seq`,
    );
    expect(chain.map((r) => r.target)).toEqual(
      seqs.map(() => `models/${model}/approvals/${approvalId}`),
    );
    expect(provenance.version?.upstreamSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(provenance.version?.cardRevision).toBe(1);
    expect(provenance.version?.modelCardSha256).toMatch(/^[0-9a-f]{64}$/);

    // The card is edited after the prediction: the prediction keeps the revision it was made under.
    const edited = await call(`/admin/models/${model}/versions/v2`, {
      method: "PATCH",
      body: { modelCard: { intendedUse: "Score card-not-present transactions, EU only" } },
    });
    expect(edited.status).toBe(200);
    expect(await json(edited)).toMatchObject({ cardRevision: 2 });
    const first = await json<{
      revision: number;
      current: boolean;
      sha256: string;
      modelCard: unknown;
    }>(await call(`/admin/models/${model}/versions/v2/card?revision=1`));
    expect(first).toMatchObject({ revision: 1, current: false });
    expect(first.sha256).toBe(provenance.version?.modelCardSha256);
    const now = await json<{
      revision: number;
      current: boolean;
      sha256: string;
      modelCard: unknown;
    }>(await call(`/admin/models/${model}/versions/v2/card`));
    expect(now).toMatchObject({
      revision: 2,
      current: true,
      modelCard: { intendedUse: "Score card-not-present transactions, EU only" },
    });
    expect(now.sha256).not.toBe(first.sha256);
    const again = await json<{ provenance: Provenance }>(
      await call(`/admin/predictions/${served?.id}`),
    );
    expect(again.provenance.version).toMatchObject({
      cardRevision: 1,
      modelCardSha256: first.sha256,
    });
    const none = await call(`/admin/models/${model}/versions/v2/card?revision=3`);
    expect(none.status).toBe(404);
    expect((await json<ErrorJson>(none)).error.code).toBe("CARD_REVISION_NOT_FOUND");

    // The rollout at an earlier state is exact: before the canary, v1 alone.
    const earlier = await call(`/admin/models/${model}/rollout?stateVersion=${stateVersion - 1}`);
    expect(earlier.status).toBe(200);
    expect(await json(earlier)).toMatchObject({
      stateVersion: stateVersion - 1,
      champion: "v1",
      canary: null,
    });
    const missing = await call(`/admin/models/${model}/rollout?stateVersion=99999`);
    expect(missing.status).toBe(404);
    expect((await json<ErrorJson>(missing)).error.code).toBe("STATE_NOT_FOUND");
  });

  it("keeps the state a result was served under in the long-kept references", async () => {
    const model = uniqueName("provr");
    await createModel(classificationModel(model, { public: true }));
    await createVersion(model, "v1", scoringVersion);
    expect((await putRollout(model, { champion: "v1", leaseMs: 250 })).status).toBe(200);
    const { id } = await predict(model, "someone");
    const [ref] = await query<{ state_version: string }>(
      sql`SELECT state_version FROM prediction_refs WHERE prediction_id = ${id}`,
    );
    const [row] = await query<{ state_version: string }>(
      sql`SELECT state_version FROM predictions WHERE prediction_id = ${id}`,
    );
    expect(Number(ref?.state_version)).toBeGreaterThan(0);
    expect(ref?.state_version).toBe(row?.state_version);
  });
});
