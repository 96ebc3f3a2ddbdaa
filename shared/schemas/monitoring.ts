import { z } from "@hono/zod-openapi";
import { DriftOverrides } from "../drift";
import { Minimums } from "../monitoring/minimums";

/** A model's monitoring settings: overrides of the drift defaults, per model and per feature. */
export const MonitoringSettings = z
  .object({
    drift: DriftOverrides.optional().openapi({
      description:
        "Overrides of the drift method and thresholds, for the model and per feature (`features.<name>`, or `prediction.<field>` for prediction drift). Omitted fields keep the defaults.",
    }),
    minimums: Minimums.optional().openapi({
      description:
        "Overrides of the minimum counts below which a result is `insufficient_data` instead of a verdict. Omitted fields keep the defaults.",
    }),
  })
  .strict()
  .openapi("MonitoringSettings");
export type MonitoringSettings = z.infer<typeof MonitoringSettings>;
