import { z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { models } from "../../shared/db/schema";
import { validationError } from "../../shared/errors";
import { dataPolicyChangeNeeds } from "../../shared/governance/policy";
import {
  DEAD_LETTER_RETENTION_DAYS,
  effectiveRetentionDays,
  FEEDBACK_RETENTION_DAYS,
  logRetentionDays,
} from "../../shared/logs/retention";
import {
  type DataPolicy,
  DataPolicyBody,
  dataPolicyFingerprint,
} from "../../shared/privacy/data-policy";
import { ModelName } from "../../shared/schemas/common";
import { pushRegistryChange } from "../rollout/sync";
import { apiRouter } from "../router";
import { approvalRequired, consumeApproval, recordConsumption } from "./approval-gate";
import { queueNotices, runChange } from "./change";
import { findModel } from "./models";
import { errorResponses, IdempotencyHeader, jsonBody, jsonContent } from "./openapi";
import { adminRoute } from "./route";

/** A model's data policy: which input fields and attributes are stored, hashed or dropped. */
export const dataPolicyApi = apiRouter();

/** PUT body: the policy, and the approved request a policy keeping more data needs. */
const SetDataPolicyBody = DataPolicyBody.extend({
  approvalId: z.string().min(1).max(64).optional().openapi({
    description:
      "An approved `data_policy.change` request for exactly this policy: needed when it keeps more than the policy in force and the model's governance policy names roles for that.",
  }),
})
  .strict()
  .openapi("SetDataPolicy");

const ModelParams = z.object({
  model: ModelName.openapi({ param: { name: "model", in: "path" } }),
});

const DataPolicyResource = DataPolicyBody.extend({
  model: z.string(),
  set: z.boolean().openapi({ description: "False: no policy, everything is stored." }),
  retention: z.record(z.string(), z.number().int()).openapi({
    description:
      "Days the model's rows are kept, per table: the table's own, or the policy's if shorter.",
    example: { predictions: 30, prediction_refs: 30, dead_letters: 14 },
  }),
}).openapi("DataPolicyResource");

const EMPTY: DataPolicy = { fields: {}, attributes: {} };

/** Days each table keeps the model's rows under its policy. */
function retentionOf(policy: DataPolicy | null): Record<string, number> {
  const days = (global: number) => effectiveRetentionDays(global, policy?.retentionDays);
  return {
    predictions: days(logRetentionDays.predictions),
    rejected_requests: days(logRetentionDays.rejected_requests),
    prediction_refs: days(logRetentionDays.prediction_refs),
    feedback: days(FEEDBACK_RETENTION_DAYS),
    feedback_events: days(FEEDBACK_RETENTION_DAYS),
    outcomes: days(FEEDBACK_RETENTION_DAYS),
    dead_letters: days(DEAD_LETTER_RETENTION_DAYS),
  };
}

const resource = (model: string, policy: DataPolicy | null) => ({
  model,
  set: policy !== null,
  ...(policy ?? EMPTY),
  retention: retentionOf(policy),
});

dataPolicyApi.openapi(
  adminRoute({
    permission: "models.read",
    method: "get",
    path: "/{model}/data-policy",
    tags: ["Privacy"],
    summary: "What of each request is stored",
    request: { params: ModelParams },
    responses: {
      200: jsonContent(DataPolicyResource, "The model's data policy"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { model } = c.req.valid("param");
    const row = await findModel(c.var.database(), model);
    return c.json(resource(model, row.dataPolicy ?? null), 200);
  },
);

dataPolicyApi.openapi(
  adminRoute({
    permission: "governance.write",
    method: "put",
    path: "/{model}/data-policy",
    tags: ["Privacy"],
    summary: "Set which input fields and attributes are stored, hashed or dropped",
    description:
      "Applies to requests from the moment the model's rollout object has it (this call answers once it has): a dropped field is removed in the Worker before the log event is built, a hashed one is kept as its HMAC under the log key. Rows stored before keep what they hold. `retentionDays` shortens how long the model's rows are kept: the hourly upkeep job deletes older ones. A policy that keeps more than the one in force (stores what was hashed or dropped, hashes what was dropped, or keeps rows longer) needs the approvals the governance policy's `data_policy.change` names: send the approved request as `approvalId`. Keeping less never waits. Audited.",
    request: {
      params: ModelParams,
      headers: IdempotencyHeader,
      body: jsonBody(SetDataPolicyBody),
    },
    responses: {
      200: jsonContent(DataPolicyResource, "The model's data policy"),
      ...errorResponses(400, 401, 403, 404, 409, 413, 415, 503),
    },
  }),
  async (c) => {
    const { model } = c.req.valid("param");
    const { approvalId, ...policy } = c.req.valid("json");
    const deliveries: number[] = [];
    const { body } = await runChange(c, async (tx) => {
      const row = await findModel(tx, model, true);
      const known = new Set(Object.keys(row.inputSchema.properties));
      const unknown = Object.keys(policy.fields).filter((name) => !known.has(name));
      if (unknown.length > 0)
        throw validationError(
          unknown.map((name) => ({
            path: ["fields", name],
            message: `is not a field of the model's input schema (${[...known].join(", ")})`,
          })),
          "body",
        );
      const before = row.dataPolicy ?? null;
      const need = dataPolicyChangeNeeds(row.governance ?? null, before, policy);
      if (need) {
        if (!approvalId) throw approvalRequired(model, [need]);
        const consumed = await consumeApproval(
          c,
          tx,
          model,
          approvalId,
          need,
          dataPolicyFingerprint(before),
        );
        deliveries.push(...(await recordConsumption(c, tx, consumed, need.reason, null)));
      }
      await tx.update(models).set({ dataPolicy: policy }).where(eq(models.id, row.id));
      return {
        status: 200,
        body: resource(model, policy),
        audit: [
          {
            action: "data_policy.update",
            targetType: "model",
            target: `models/${model}/data-policy`,
            before: row.dataPolicy ?? null,
            after: policy,
          },
        ],
      };
    });
    queueNotices(c, deliveries);
    // The rollout object carries the policy to every isolate: it holds once this answers.
    await pushRegistryChange(c, model);
    return c.json(body, 200);
  },
);
