/**
 * The Postgres mirror of rollout plans (`rollout_plans`), for reading and
 * listing. The model's rollout object owns each plan's state; its changes
 * are written here right after they are made and again by the object's
 * outbox, so a write lost to a Postgres outage is made later. A row only
 * moves forward: an older revision never overwrites a newer one.
 */
import { sql } from "drizzle-orm";
import type { Queryable } from "../db/client";
import { rolloutPlans } from "../db/schema";
import { currentPhase, type PlanState } from "./state";

export async function mirrorPlans(db: Queryable, plans: readonly PlanState[]): Promise<void> {
  for (const plan of plans) {
    const row = {
      id: plan.id,
      model: plan.model,
      challenger: plan.challenger,
      champion: plan.champion,
      status: plan.status,
      phase: currentPhase(plan).id,
      state: plan,
      revision: plan.revision,
      createdBy: plan.createdBy,
      createdAt: new Date(plan.createdAt),
      endedAt: plan.endedAt ? new Date(plan.endedAt) : null,
    };
    await db
      .insert(rolloutPlans)
      .values(row)
      .onConflictDoUpdate({
        target: rolloutPlans.id,
        set: {
          status: row.status,
          phase: row.phase,
          state: row.state,
          revision: row.revision,
          endedAt: row.endedAt,
          updatedAt: sql`now()`,
        },
        setWhere: sql`${rolloutPlans.revision} < ${row.revision}`,
      });
  }
}
