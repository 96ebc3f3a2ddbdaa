// The demo model's baseline rows: a seeded sample that the traffic generator draws from its
// builtin profile for the model, the population the demo model was trained on. The same code
// draws `npm run traffic`'s requests, so the baseline and the "no drift" traffic are two samples
// of one distribution. Pure: no I/O, so tests inside workerd can import it too.
import type { Value } from "../lib/traffic/expression.ts";
import { InputSchemaFormat, type ModelInfo } from "../lib/traffic/format.ts";
import { createGenerator, type GeneratedRow } from "../lib/traffic/generate.ts";
import { profileFor, resolveProfile } from "../lib/traffic/profile.ts";

/**
 * Rows in each demo version's baseline: as many as one upload takes (MAX_BASELINE_UPLOAD_ROWS),
 * about 760 kB of JSON against the 1 MiB body limit. Above 1,000 reference rows drift is judged by
 * distances (Wasserstein, Jensen-Shannon), which a baseline's own sampling error barely moves.
 */
export const DEMO_BASELINE_ROWS = 5000;

/**
 * Seeds the sample. `npm run traffic` defaults to seed 1: its traffic is another sample of the
 * same population, as a model's live traffic is of its training data.
 */
export const DEMO_BASELINE_SEED = 0x0ba5e1;

/** The demo model as the traffic generator sees it (its input schema, task and classes). */
export function demoModelInfo(model: { name: string } & Record<string, unknown>): ModelInfo {
  return {
    name: model.name,
    inputSchema: InputSchemaFormat.parse(model.inputSchema),
    task: model.task as ModelInfo["task"],
    classes: model.classes as string[] | undefined,
    positiveClass: model.positiveClass as string | undefined,
  };
}

/**
 * `count` rows of features from the traffic generator's profile for the model (its builtin
 * profile, or the generic one `npm run traffic` would use), without drift, as the input schema
 * orders them. The same seed gives the same rows on every machine.
 */
export function demoBaselineRows(
  model: { name: string } & Record<string, unknown>,
  count = DEMO_BASELINE_ROWS,
  seed = DEMO_BASELINE_SEED,
): Record<string, Value>[] {
  const info = demoModelInfo(model);
  const profile = resolveProfile(info, profileFor(info.name, undefined).profile);
  const generator = createGenerator(profile, {
    seed,
    rate: 1,
    total: count,
    // One row per request: a batch's rows are drawn from the same profile, so nothing is lost.
    batchRate: 0,
    batchMax: 1,
    labelRate: 0,
    labelDelay: { min: 0, max: 0 },
    drifts: [],
  });
  return Array.from(
    { length: count },
    (_, i) => (generator.request(i).rows[0] as GeneratedRow).inputs,
  );
}
