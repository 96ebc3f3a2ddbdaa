/**
 * Notices beyond alerts: an approval asked for, decided and applied reaches
 * the model's destinations that take its type, through the delivery queue,
 * the destination's object and the local receiver (test/global-setup.ts):
 * Slack as Block Kit, webhooks signed. Destinations filter by type, model
 * and severity; a notice is created once, whatever retries happen.
 */
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { createNotice } from "../../functions/alerts/notices";
import { verifyWebhook } from "../../shared/alerts/signing";
import { takesType } from "../../shared/notices/types";
import {
  call,
  classificationModel,
  completeModelCard,
  createModel,
  createVersion,
  database,
  type ErrorJson,
  json,
  principalWithToken,
  query,
  setBaseline,
  setDataPolicy,
  uniqueName,
} from "./helpers";
import { putRollout } from "./rollout-helpers";

const receiverBase = String((env as unknown as Record<string, unknown>).TEST_ALERT_RECEIVER ?? "");
const SECRET = "notices-test-signing-secret-0123456789";

interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
}

interface SlackBody {
  text: string;
  blocks: { type: string; text?: { text: string }; fields?: { text: string }[] }[];
}

async function received(path: string): Promise<Received[]> {
  const response = await fetch(`${receiverBase}/__requests?path=${encodeURIComponent(path)}`);
  expect(response.status).toBe(200);
  return (await response.json()) as Received[];
}

/** What a channel has received once it has `count` requests (the queue delivers in its time). */
async function receivedAtLeast(path: string, count: number): Promise<Received[]> {
  for (let attempt = 0; attempt < 300; attempt++) {
    const got = await received(path);
    if (got.length >= count) return got;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return received(path);
}

async function deliveriesTo(destination: string) {
  return query<{ type: string; model: string; status: string; notice_key: string }>(
    sql`SELECT type, model, status, notice_key FROM alert_deliveries
        WHERE destination_id = ${destination} ORDER BY id`,
  );
}

const model = uniqueName("ntc");
const slackPath = `/hooks/notices-slack-${model}`;
const hookPath = `/hooks/notices-hook-${model}`;
const alertsOnlyPath = `/hooks/notices-alerts-${model}`;
let operator: { id: string; token: string };
let owner: { id: string; token: string };
let risk: { id: string; token: string };
let slack: { id: string };
let hook: { id: string };
let alertsOnly: { id: string };

async function destination(body: Record<string, unknown>) {
  const response = await call("/admin/alert-destinations", {
    method: "POST",
    body: { models: [model], includeSystem: false, ...body },
  });
  expect(response.status).toBe(201);
  return json<{ id: string; types: string[] | null }>(response);
}

describe("notices of approvals", () => {
  beforeAll(async () => {
    expect((await createModel(classificationModel(model))).status).toBe(201);
    await createVersion(model, "v1");
    await createVersion(model, "v2", { modelCard: completeModelCard() });
    expect((await putRollout(model, { champion: "v1" })).status).toBe(200);
    // What v2's canary needs besides its card and the destinations below.
    await setBaseline(model, "v2");
    await setDataPolicy(model);
    operator = await principalWithToken([{ role: "operator" }]);
    owner = await principalWithToken([{ role: "owner", model }]);
    risk = await principalWithToken([{ role: "risk_officer" }]);
    const governed = await call(`/admin/models/${model}/governance`, {
      method: "PUT",
      token: risk.token,
      body: { tier: "medium" },
    });
    expect(governed.status).toBe(200);
    slack = await destination({ name: "channel", kind: "slack", url: receiverBase + slackPath });
    hook = await destination({
      name: "pipeline",
      kind: "webhook",
      url: receiverBase + hookPath,
      secret: SECRET,
      types: ["approval.requested", "approval.applied"],
    });
    alertsOnly = await destination({
      name: "alerts only",
      kind: "slack",
      url: receiverBase + alertsOnlyPath,
      types: ["alert.*"],
    });
  });

  it("tell the model's destinations of each step, with the people's names and a link", async () => {
    const asked = await call(`/admin/models/${model}/approvals`, {
      method: "POST",
      token: operator.token,
      body: {
        action: "canary.raise",
        target: { version: "v2", percent: 25 },
        reason: "a week in shadow, agreement 97%",
      },
    });
    expect(asked.status).toBe(201);
    const { id } = await json<{ id: string }>(asked);
    for (const [who, comment] of [
      [risk, "error rates hold"],
      [owner, "agreed"],
    ] as const) {
      const decided = await call(`/admin/approvals/${id}/approve`, {
        method: "POST",
        token: who.token,
        body: { comment },
      });
      expect(decided.status).toBe(200);
    }
    const applied = await call(`/admin/models/${model}/rollout`, {
      method: "PUT",
      token: operator.token,
      body: { champion: "v1", canary: { version: "v2", percent: 25 }, approvalId: id },
    });
    expect(applied.status).toBe(200);

    // Slack: every step, in order, as Block Kit.
    const messages = (await receivedAtLeast(slackPath, 4)).map(
      (r) => JSON.parse(r.body) as SlackBody,
    );
    expect(messages).toHaveLength(4);
    const headers = messages.map((m) => m.blocks[0]?.text?.text ?? "");
    expect(headers).toEqual([
      `:ballot_box_with_check: Approval requested: ${model} — canary.raise`,
      `:heavy_check_mark: Approval given (more needed): ${model} — canary.raise`,
      `:white_check_mark: Approved: ${model} — canary.raise`,
      `:rocket: Applied: ${model} — canary.raise`,
    ]);
    const nameOf = async (who: { id: string }) =>
      (await json<{ displayName: string }>(await call(`/admin/principals/${who.id}`))).displayName;
    const [opName, riskName, ownerName] = [
      await nameOf(operator),
      await nameOf(risk),
      await nameOf(owner),
    ];
    expect(messages[0]?.text).toContain(`${opName} asks for approval`);
    expect(messages[0]?.text).toContain("sends 25% of traffic to the canary v2");
    expect(messages[0]?.text).toContain("the model's owner and a risk officer");
    expect(messages[1]?.text).toContain(`${riskName} approved as risk officer`);
    expect(messages[1]?.text).toContain("still needs the model's owner");
    expect(messages[2]?.text).toContain(`${ownerName} approved as owner`);
    expect(messages[3]?.text).toContain(`${opName} applied the approved change`);
    const context = JSON.stringify(messages[0]?.blocks.at(-1));
    expect(context).toContain(`/admin/approvals/${id}|Open in Airlock>`);
    expect(JSON.stringify(messages[1]?.blocks)).toContain("error rates hold");

    // The receiver's one-line view is each message's fallback text.
    const lines = await (
      await fetch(`${receiverBase}/__messages?path=${encodeURIComponent(slackPath)}`)
    ).text();
    expect(lines).toBe(messages.map((m) => `${m.text}\n`).join(""));

    // The webhook takes two types only, signed as alerts are.
    const hooks = await receivedAtLeast(hookPath, 2);
    const bodies = hooks.map((r) => JSON.parse(r.body) as Record<string, unknown>);
    expect(bodies.map((b) => b.type)).toEqual(["approval.requested", "approval.applied"]);
    expect(bodies[0]).toMatchObject({
      approval: {
        id,
        model,
        action: "canary.raise",
        target: { version: "v2", percent: 25 },
        requestedBy: { id: operator.id, name: opName },
        rolesStillNeeded: ["owner", "risk_officer"],
        status: "pending",
      },
      decision: null,
    });
    expect(bodies[1]).toMatchObject({
      approval: { id, status: "consumed" },
      applied: { by: { id: operator.id, name: opName } },
    });
    for (const r of hooks) {
      const verdict = await verifyWebhook(
        SECRET,
        r.body,
        {
          timestamp: r.headers["x-airlock-timestamp"],
          signature: r.headers["x-airlock-signature"],
        },
        Date.now() / 1000,
      );
      expect(verdict).toEqual({ ok: true });
    }

    expect((await deliveriesTo(hook.id)).map((d) => [d.type, d.status])).toEqual([
      ["approval.requested", "sent"],
      ["approval.applied", "sent"],
    ]);
    // A destination that takes alerts only was given none of it.
    expect(await deliveriesTo(alertsOnly.id)).toEqual([]);
    expect((await deliveriesTo(slack.id)).map((d) => [d.type, d.model])).toEqual([
      ["approval.requested", model],
      ["approval.decided", model],
      ["approval.decided", model],
      ["approval.applied", model],
    ]);
  });

  it("are created once per destination, whatever retries happen", async () => {
    const { db, close } = database();
    try {
      const draft = {
        type: "approval.requested" as const,
        model,
        severity: null,
        key: `approval.requested:apr_once_${model}`,
        payload: { type: "approval.requested" },
      };
      const first = await createNotice(db, draft);
      // The channel and the webhook take it; the alerts-only destination does not.
      expect(first).toHaveLength(2);
      expect(await createNotice(db, draft)).toEqual([]);
      await db.execute(sql`DELETE FROM alert_deliveries WHERE notice_key = ${draft.key}`);
    } finally {
      await close();
    }
  });
});

describe("destination filters", () => {
  it("refuse unknown types, naming the entry, and are changed by PATCH, audited", async () => {
    const quiet = uniqueName("ntcq");
    expect((await createModel(classificationModel(quiet))).status).toBe(201);
    const bad = await call("/admin/alert-destinations", {
      method: "POST",
      body: {
        name: "x",
        kind: "slack",
        url: `${receiverBase}/hooks/x`,
        models: [quiet],
        types: ["approval.*", "approvals.requested"],
      },
    });
    expect(bad.status).toBe(400);
    const error = await json<ErrorJson>(bad);
    expect(error.error.details?.[0]?.path).toBe("types[1]");
    expect(error.error.details?.[0]?.message).toContain("approval.requested");

    const created = await call("/admin/alert-destinations", {
      method: "POST",
      body: { name: "x", kind: "slack", url: `${receiverBase}/hooks/x`, models: [quiet] },
    });
    const { id, types } = await json<{ id: string; types: string[] | null }>(created);
    expect(types).toBeNull();
    const patched = await call(`/admin/alert-destinations/${id}`, {
      method: "PATCH",
      body: { types: ["approval.*"], minSeverity: "critical" },
    });
    expect(patched.status).toBe(200);
    expect(await json(patched)).toMatchObject({
      types: ["approval.*"],
      minSeverity: "critical",
      models: [quiet],
    });
    const empty = await call(`/admin/alert-destinations/${id}`, { method: "PATCH", body: {} });
    expect(empty.status).toBe(400);
    const trail = await json<{ items: { action: string; before: unknown; after: unknown }[] }>(
      await call(`/admin/audit?target=alert-destinations/${id}`),
    );
    expect(trail.items[0]).toMatchObject({
      action: "alert_destination.update",
      before: { types: null },
      after: { types: ["approval.*"] },
    });
    expect(
      (await call("/admin/alert-destinations/dst_none", { method: "PATCH", body: { name: "y" } }))
        .status,
    ).toBe(404);
  });

  it("match exact types and families, and nothing else", () => {
    expect(takesType(null, "approval.decided")).toBe(true);
    expect(takesType(["approval.*"], "approval.decided")).toBe(true);
    expect(takesType(["approval.requested"], "approval.decided")).toBe(false);
    expect(takesType(["alert.*"], "approval.decided")).toBe(false);
    expect(takesType(["alert.firing"], "alert.firing")).toBe(true);
  });
});
