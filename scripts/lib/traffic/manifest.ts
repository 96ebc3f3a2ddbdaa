// The manifest of a run: everything needed to know what the monitoring should find. Pure.
import type { TrafficOptions } from "./args.ts";
import { type Drift, type Phase, requestIndexAt } from "./drift.ts";
import type { ResolvedProfile } from "./profile.ts";
import { type PhaseTally, quantile } from "./summary.ts";

export const MANIFEST_FORMAT = "airlock-traffic-manifest/1";

export interface RunFacts {
  argv: readonly string[];
  options: TrafficOptions;
  profile: ResolvedProfile;
  /** Where the input schema came from. */
  schemaFrom: string;
  phases: readonly Phase[];
  tallies: readonly PhaseTally[];
  startedAt: string;
  finishedAt: string;
  dryRun: boolean;
  interrupted: boolean;
  /** Latencies of answered predictions, in milliseconds. */
  latenciesMs: readonly number[];
}

function describeDrift(drift: Drift, rate: number) {
  return {
    spec: drift.spec,
    feature: drift.feature,
    kind: drift.kind,
    amount: drift.amount,
    ...(drift.unit ? { unit: drift.unit } : {}),
    ...(drift.value !== undefined ? { value: drift.value } : {}),
    start: drift.start,
    ...(drift.end ? { end: drift.end } : {}),
    startRequest: requestIndexAt(drift.start, rate),
    endRequest: drift.end ? requestIndexAt(drift.end, rate) : null,
  };
}

export function latencySummary(latenciesMs: readonly number[]) {
  const sorted = Float64Array.from(latenciesMs).sort();
  const r = (x: number) => (Number.isFinite(x) ? Math.round(x * 100) / 100 : null);
  return {
    count: sorted.length,
    p50: r(quantile(sorted, 0.5)),
    p95: r(quantile(sorted, 0.95)),
    p99: r(quantile(sorted, 0.99)),
    max: r(quantile(sorted, 1)),
  };
}

const secretFlags = new Set(["--key", "--admin-token"]);

/** The command line without the values of --key and --admin-token. */
export function redactArgv(argv: readonly string[]): string[] {
  return argv.map((arg, i) => {
    const eq = arg.indexOf("=");
    if (eq > 0 && secretFlags.has(arg.slice(0, eq))) return `${arg.slice(0, eq)}=***`;
    return secretFlags.has(argv[i - 1] ?? "") ? "***" : arg;
  });
}

export function buildManifest(facts: RunFacts) {
  const { options, profile, phases, tallies } = facts;
  const sum = (pick: (t: PhaseTally) => number) => tallies.reduce((a, t) => a + pick(t), 0);
  const responses: Record<string, number> = {};
  for (const tally of tallies)
    for (const [status, n] of Object.entries(tally.responses))
      responses[status] = (responses[status] ?? 0) + n;
  const outcomes: Record<string, { sent: number; accepted: number; failed: number; sum: number }> =
    {};
  for (const tally of tallies) {
    for (const [kpi, o] of Object.entries(tally.outcomes)) {
      const total = outcomes[kpi] ?? { sent: 0, accepted: 0, failed: 0, sum: 0 };
      outcomes[kpi] = total;
      total.sent += o.sent;
      total.accepted += o.accepted;
      total.failed += o.failed;
      total.sum = Math.round((total.sum + o.sum) * 100) / 100;
    }
  }
  return {
    format: MANIFEST_FORMAT,
    run: {
      startedAt: facts.startedAt,
      finishedAt: facts.finishedAt,
      dryRun: facts.dryRun,
      interrupted: facts.interrupted,
      argv: redactArgv(facts.argv),
    },
    target: { url: options.url, model: options.model, schemaFrom: facts.schemaFrom },
    settings: {
      seed: options.seed,
      rate: options.rate,
      plannedRequests: options.requests,
      concurrency: options.concurrency,
      batchRate: options.batchRate,
      batchMax: options.batchMax,
      labelRate: options.labelRate,
      labelDelaySeconds: options.labelDelay,
      customers: profile.customers,
      timeoutSeconds: options.timeoutSeconds,
    },
    inputSchema: profile.schema,
    profile: profile.describe(),
    drift: options.drifts.map((d) => describeDrift(d, options.rate)),
    phases: phases.map((phase, i) => ({
      index: phase.index,
      label: phase.label,
      drifts: phase.drifts.map((d) => options.drifts[d]?.spec),
      firstRequest: phase.firstRequest,
      endRequest: phase.endRequest,
      startSeconds: phase.startSeconds,
      endSeconds: phase.endSeconds,
      ...(tallies[i]?.summary({ accepted: !facts.dryRun }) ?? {}),
    })),
    totals: {
      requests: sum((t) => t.requests),
      rows: sum((t) => t.rows),
      ...(facts.dryRun
        ? {}
        : {
            responses,
            acceptedRows: sum((t) => t.acceptedRows),
            labels: {
              sent: sum((t) => t.labels.sent),
              accepted: sum((t) => t.labels.accepted),
              failed: sum((t) => t.labels.failed),
              dropped: sum((t) => t.labels.dropped),
            },
            outcomes,
            latencyMs: latencySummary(facts.latenciesMs),
          }),
    },
  };
}
