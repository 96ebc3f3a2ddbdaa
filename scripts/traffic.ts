// `npm run traffic`: seeded, realistic prediction traffic for a running Airlock, with known
// feature distributions, drift on demand, segment attributes, and labels and business outcomes
// that arrive later, so that monitoring can be tested against the truth (--manifest).
// `npm run traffic -- --help` lists the options; the pure parts live in scripts/lib/traffic/.
import { randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { readDemo } from "./lib/demo.ts";
import { adminTokenFile, readAdminToken } from "./lib/local-admin.ts";
import { parseOptions, type TrafficOptions, usage } from "./lib/traffic/args.ts";
import { type Clock, realClock } from "./lib/traffic/clock.ts";
import { checkDrift } from "./lib/traffic/drift.ts";
import {
  InputSchemaFormat,
  type ModelInfo,
  type ProfileFile,
  parseProfile,
} from "./lib/traffic/format.ts";
import { createGenerator, type GeneratedRequest } from "./lib/traffic/generate.ts";
import { buildManifest, latencySummary } from "./lib/traffic/manifest.ts";
import {
  ProfileError,
  profileFor,
  type ResolvedProfile,
  resolveProfile,
} from "./lib/traffic/profile.ts";
import { PhaseTally } from "./lib/traffic/summary.ts";
import { UsageError } from "./lib/traffic/usage.ts";

export interface TrafficIo {
  /** Where AIRLOCK_TOKEN is looked up first (default process.env). */
  env?: Record<string, string | undefined>;
  /** Where the admin token is looked up next (default npm start's: the state directory's admin-token). */
  adminTokenFile?: string;
  out?: (line: string) => void;
  err?: (line: string) => void;
  /** Aborting it stops the run as Ctrl-C does. */
  signal?: AbortSignal;
  /** Paces requests, label delays and retries (default the real clock; tests simulate one). */
  clock?: Clock;
}

/** Runs the generator; resolves to the exit code. */
export async function main(argv: readonly string[], io: TrafficIo = {}): Promise<number> {
  const out = io.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const err = io.err ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (argv.includes("--help") || argv.includes("-h")) {
    out(usage);
    return 0;
  }
  try {
    return await run(argv, io, out, err);
  } catch (error) {
    if (
      error instanceof UsageError ||
      error instanceof ProfileError ||
      error instanceof SetupError
    ) {
      err(`traffic: ${error.message}`);
      return 2;
    }
    throw error;
  }
}

/** A problem found before any traffic: the server, the key, the model. */
class SetupError extends Error {}

async function run(
  argv: readonly string[],
  io: TrafficIo,
  out: (line: string) => void,
  err: (line: string) => void,
): Promise<number> {
  const options = parseOptions(argv);
  const env = io.env ?? process.env;
  const adminToken =
    options.adminToken ??
    env.AIRLOCK_TOKEN ??
    readAdminToken(io.adminTokenFile ?? adminTokenFile());

  const profileFile = options.profile ? readProfileFile(options.profile) : undefined;
  const { info, from } = await modelInfo(options, profileFile, adminToken);
  const { profile: merged, source } = profileFor(options.model, profileFile);
  let profileSpec: ProfileFile = merged;
  if (options.customers !== undefined)
    profileSpec = { ...profileSpec, customers: options.customers };
  const profile = resolveProfile(info, profileSpec, {
    source: options.profile ? `${options.profile} (${source})` : source,
    segments: options.segments,
  });
  for (const drift of options.drifts) checkDrift(drift, profile);

  if (options.printProfile) {
    out(JSON.stringify({ inputSchema: info.inputSchema, profile: profile.describe() }, null, 2));
    return 0;
  }
  const total = options.requests ?? (options.dryRun ? 10 : null);
  const generator = createGenerator(profile, {
    seed: options.seed,
    rate: options.rate,
    total,
    batchRate: options.batchRate,
    batchMax: options.batchMax,
    labelRate: options.labelRate,
    labelDelay: options.labelDelay,
    drifts: options.drifts,
  });
  const attributeNames = profile.attributes.map((a) => a.name);
  const tallies = generator.phases.map(
    () => new PhaseTally(info.inputSchema.properties, attributeNames),
  );
  const startedAt = new Date().toISOString();

  if (options.dryRun) {
    for (let i = 0; i < (total ?? 10); i++) {
      const request = generator.request(i);
      tallies[request.phase]?.addSent(request);
      out(JSON.stringify(dryRunLine(request)));
    }
    if (options.manifest) {
      writeManifest(options.manifest, {
        argv,
        options: { ...options, requests: total },
        profile,
        schemaFrom: from,
        phases: generator.phases,
        tallies,
        startedAt,
        finishedAt: new Date().toISOString(),
        dryRun: true,
        interrupted: false,
        latenciesMs: [],
      });
    }
    return 0;
  }

  const apiKey = options.key ?? (adminToken ? await createKey(options, adminToken) : undefined);
  // Without an admin call there has been no contact yet: fail early and clearly when nobody answers.
  if (!adminToken) await reachable(options);
  const labelsOn = options.labelRate > 0 && profile.truth !== null;
  if (labelsOn && !apiKey) {
    err(
      "traffic: no API key (--key, or --admin-token / AIRLOCK_TOKEN to create one): sending predictions only, no labels or outcomes",
    );
  }
  const runner = new Runner(
    options,
    profile,
    tallies,
    apiKey,
    labelsOn && apiKey !== undefined,
    io.clock ?? realClock,
  );
  const result = await runner.run(generator, total, io.signal, out);

  const manifestFacts = {
    argv,
    options,
    profile,
    schemaFrom: from,
    phases: generator.phases,
    tallies,
    startedAt,
    finishedAt: new Date().toISOString(),
    dryRun: false,
    interrupted: result.interrupted,
    latenciesMs: runner.latencies,
  };
  for (const line of runner.summaryLines(generator.phases, result)) out(line);
  if (options.manifest) {
    writeManifest(options.manifest, manifestFacts);
    out(`  manifest: ${options.manifest}`);
  }
  return runner.answered === 0 && runner.sent > 0 ? 1 : 0;
}

function dryRunLine(request: GeneratedRequest) {
  return {
    index: request.index,
    plannedSeconds: Math.round(request.plannedSeconds * 1000) / 1000,
    phase: request.phase,
    body: request.body,
    truth: request.rows.map((row) => ({
      ...(row.truth ?? {}),
      sendLabel: row.label.send,
      labelDelaySeconds: Math.round(row.label.delaySeconds * 1000) / 1000,
      ...(row.outcomes.length > 0 ? { outcomes: row.outcomes } : {}),
      ...(Object.keys(row.corrupted).length > 0 ? { corrupted: row.corrupted } : {}),
    })),
  };
}

function writeManifest(file: string, facts: Parameters<typeof buildManifest>[0]) {
  writeFileSync(file, `${JSON.stringify(buildManifest(facts), null, 2)}\n`);
}

function readProfileFile(file: string): ProfileFile {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new UsageError(`--profile: cannot read ${file}: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`--profile: ${file} is not JSON: ${(error as Error).message}`);
  }
  try {
    return parseProfile(value, `--profile ${file}`);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

// ---------------------------------------------------------------- the model and the key

function networkCause(error: unknown): string {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  return cause instanceof Error ? cause.message : String(cause);
}

async function adminFetch(
  options: TrafficOptions,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<Response> {
  try {
    return await fetch(`${options.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined
          ? {}
          : { "content-type": "application/json", "idempotency-key": randomUUID() }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(options.timeoutSeconds * 1000),
    });
  } catch (error) {
    throw new SetupError(
      `--url: cannot reach Airlock at ${options.url} (${networkCause(error)}); is it running (npm start)?`,
    );
  }
}

async function refusal(response: Response): Promise<string> {
  const text = await response.text().catch(() => "");
  return `${response.status} ${text.slice(0, 300)}`;
}

/**
 * The model's input schema and classes: from the admin API when there is a token (the truth of
 * the running server), else from the profile file, else from the demo file for the demo model.
 * A dry run (or --print-profile) prefers the local sources.
 */
async function modelInfo(
  options: TrafficOptions,
  profile: ProfileFile | undefined,
  adminToken: string | undefined,
): Promise<{ info: ModelInfo; from: string }> {
  const fromProfile = (): { info: ModelInfo; from: string } | undefined =>
    profile?.inputSchema
      ? {
          info: {
            name: options.model,
            inputSchema: profile.inputSchema,
            task: profile.task,
            classes: profile.classes,
            positiveClass: profile.positiveClass,
          },
          from: "profile file",
        }
      : undefined;
  const fromDemo = (): { info: ModelInfo; from: string } | undefined => {
    const demo = readDemo();
    if (demo.model.name !== options.model) return undefined;
    const model = demo.model as Record<string, unknown>;
    return {
      info: {
        name: options.model,
        inputSchema: InputSchemaFormat.parse(model.inputSchema),
        task: model.task as ModelInfo["task"],
        classes: model.classes as string[] | undefined,
        positiveClass: model.positiveClass as string | undefined,
      },
      from: "scripts/demo/demo-credit-risk.json",
    };
  };
  const fromServer = async (token: string): Promise<{ info: ModelInfo; from: string }> => {
    const response = await adminFetch(options, token, "GET", `/admin/models/${options.model}`);
    if (response.status === 401)
      throw new SetupError("--admin-token: Airlock refused the admin token (401)");
    if (response.status === 404)
      throw new SetupError(`--model: Airlock at ${options.url} has no model '${options.model}'`);
    if (response.status !== 200)
      throw new SetupError(
        `--model: GET /admin/models/${options.model} answered ${await refusal(response)}`,
      );
    const model = (await response.json()) as Record<string, unknown>;
    return {
      info: {
        name: options.model,
        inputSchema: InputSchemaFormat.parse(model.inputSchema),
        task: model.task as ModelInfo["task"],
        classes: (model.classes as string[] | null) ?? null,
        positiveClass: (model.positiveClass as string | null) ?? null,
      },
      from: "admin API",
    };
  };
  const local = fromProfile() ?? fromDemo();
  if ((options.dryRun || options.printProfile) && local) return local;
  if (adminToken) return fromServer(adminToken);
  if (local) return local;
  throw new SetupError(
    `--model: cannot read the input schema of '${options.model}': give --admin-token (or AIRLOCK_TOKEN, or run npm start, which keeps one), or a --profile with an inputSchema`,
  );
}

async function reachable(options: TrafficOptions): Promise<void> {
  try {
    const response = await fetch(`${options.url}/v2/health/live`, {
      signal: AbortSignal.timeout(options.timeoutSeconds * 1000),
    });
    await response.body?.cancel();
  } catch (error) {
    throw new SetupError(
      `--url: cannot reach Airlock at ${options.url} (${networkCause(error)}); is it running (npm start)?`,
    );
  }
}

async function createKey(options: TrafficOptions, token: string): Promise<string> {
  const response = await adminFetch(options, token, "POST", "/admin/keys", {
    name: `traffic generator (${options.model})`,
    models: [options.model],
  });
  if (response.status === 401)
    throw new SetupError("--admin-token: Airlock refused the admin token (401)");
  if (response.status !== 201)
    throw new SetupError(`--admin-token: POST /admin/keys answered ${await refusal(response)}`);
  const { key } = (await response.json()) as { key?: string };
  if (!key) throw new SetupError("--admin-token: POST /admin/keys returned no key");
  return key;
}

// ---------------------------------------------------------------- sending

interface PendingLabel {
  /** The clock's now() when it is due. */
  due: number;
  phase: number;
  predictionId: string;
  label: string | number;
  outcomes: { id: string; predictionId: string; key: string; kpi: string; value: number }[];
}

interface RunResult {
  interrupted: boolean;
  seconds: number;
  /** Labels not yet due when the run was stopped. */
  droppedLabels: number;
  droppedOutcomes: number;
}

/** Items per POST /v1/feedback or /v1/outcomes (the route's limit). */
const FEEDBACK_CHUNK = 1000;
/** How often due labels are looked for. */
const LABEL_TICK_MS = 100;
/** After a stop, how long requests in flight may still take. */
const STOP_GRACE_MS = 3000;

class Runner {
  readonly latencies: number[] = [];
  sent = 0;
  answered = 0;
  private readonly pending: PendingLabel[] = [];
  private readonly errors = new Map<string, string>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly requestsAbort = new AbortController();
  private readonly options: TrafficOptions;
  private readonly profile: ResolvedProfile;
  private readonly tallies: PhaseTally[];
  private readonly apiKey: string | undefined;
  private readonly labelsOn: boolean;
  private readonly clock: Clock;

  constructor(
    options: TrafficOptions,
    profile: ResolvedProfile,
    tallies: PhaseTally[],
    apiKey: string | undefined,
    labelsOn: boolean,
    clock: Clock,
  ) {
    this.options = options;
    this.profile = profile;
    this.tallies = tallies;
    this.apiKey = apiKey;
    this.labelsOn = labelsOn;
    this.clock = clock;
  }

  async run(
    generator: ReturnType<typeof createGenerator>,
    total: number | null,
    signal: AbortSignal | undefined,
    out: (line: string) => void,
  ): Promise<RunResult> {
    const { rate, concurrency } = this.options;
    out(
      `traffic: ${total ?? "unlimited"} requests at ${rate}/s to ${this.options.model} at ${this.options.url}, seed ${this.options.seed}, profile ${this.profile.source}${total === null ? " (Ctrl-C stops)" : ""}`,
    );
    const clock = this.clock;
    const started = clock.now();
    let stopped = signal?.aborted ?? false;
    let onStop: () => void = () => {};
    const whenStopped = new Promise<void>((resolve) => {
      onStop = resolve;
    });
    const stop = () => {
      stopped = true;
      onStop();
    };
    if (stopped) stop();
    signal?.addEventListener("abort", stop, { once: true });

    let labelsDone = false;
    const labelLoop = (async () => {
      while (!labelsDone) {
        await this.flushDue(clock.now());
        await clock.sleep(LABEL_TICK_MS);
      }
    })();

    let slotFreed: (() => void) | undefined;
    for (let i = 0; (total === null || i < total) && !stopped; i++) {
      await clock.sleep(started + (i * 1000) / rate - clock.now(), signal);
      while (this.inFlight.size >= concurrency && !stopped) {
        await Promise.race([
          new Promise<void>((resolve) => {
            slotFreed = resolve;
          }),
          whenStopped,
        ]);
      }
      if (stopped) break;
      const request = generator.request(i);
      this.tallies[request.phase]?.addSent(request);
      this.sent++;
      const promise = this.send(request).finally(() => {
        this.inFlight.delete(promise);
        slotFreed?.();
      });
      this.inFlight.add(promise);
    }
    const sendingSeconds = (clock.now() - started) / 1000;

    // Requests in flight finish (after a stop, within a grace period).
    if (stopped) {
      const grace = setTimeout(() => this.requestsAbort.abort(), STOP_GRACE_MS);
      await Promise.allSettled([...this.inFlight]);
      clearTimeout(grace);
    } else {
      await Promise.allSettled([...this.inFlight]);
    }

    // Labels still to come: wait for them unless stopped; a stop sends what is due and drops the rest.
    if (!stopped && this.pending.length > 0) {
      const last = Math.max(...this.pending.map((p) => p.due));
      out(
        `traffic: sent; waiting ${Math.ceil((last - clock.now()) / 1000)} s for ${this.pending.length} labels (Ctrl-C drops those not yet due)`,
      );
      while (this.pending.length > 0 && !stopped) await clock.sleep(LABEL_TICK_MS, signal);
    }
    labelsDone = true;
    await labelLoop;
    await this.flushDue(clock.now());
    let droppedLabels = 0;
    let droppedOutcomes = 0;
    for (const label of this.pending.splice(0)) {
      droppedLabels++;
      droppedOutcomes += label.outcomes.length;
      const tally = this.tallies[label.phase];
      if (tally) tally.labels.dropped++;
    }
    if (droppedLabels > 0)
      out(
        `traffic: stopped; dropped ${droppedLabels} labels and ${droppedOutcomes} outcomes not yet due`,
      );
    signal?.removeEventListener("abort", stop);
    return { interrupted: stopped, seconds: sendingSeconds, droppedLabels, droppedOutcomes };
  }

  private headers(): Record<string, string> {
    return {
      "content-type": "application/json",
      ...(this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}),
    };
  }

  private noteError(key: string, detail: string) {
    if (!this.errors.has(key) && this.errors.size < 10) this.errors.set(key, detail);
  }

  private async send(request: GeneratedRequest): Promise<void> {
    const tally = this.tallies[request.phase];
    const begin = this.clock.now();
    let response: Response;
    let text: string;
    try {
      [response, text] = await this.clock.exchange(
        (async () => {
          const response = await fetch(
            `${this.options.url}/v1/models/${this.options.model}/predict`,
            {
              method: "POST",
              headers: this.headers(),
              body: JSON.stringify(request.body),
              signal: AbortSignal.any([
                this.requestsAbort.signal,
                AbortSignal.timeout(this.options.timeoutSeconds * 1000),
              ]),
            },
          );
          return [response, await response.text()] as const;
        })(),
      );
    } catch (error) {
      tally?.addResponse(request, "error");
      this.noteError(`error ${networkCause(error)}`, "");
      return;
    }
    const answeredAt = this.clock.now();
    this.latencies.push(answeredAt - begin);
    this.answered++;
    tally?.addResponse(request, response.status);
    if (!response.ok) {
      let code = "";
      let message = text.slice(0, 200);
      try {
        const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
        code = body.error?.code ?? "";
        message = body.error?.message ?? message;
      } catch {
        // not JSON: keep the text
      }
      this.noteError(`${response.status} ${code}`.trim(), message);
      return;
    }
    if (!this.labelsOn) return;
    const ids = predictionIds(text, response.headers.get("x-airlock-prediction-id"));
    if (ids.length !== request.rows.length) {
      this.noteError(
        "prediction ids",
        `expected ${request.rows.length}, got ${ids.length}: no labels for that request`,
      );
      return;
    }
    for (const [r, row] of request.rows.entries()) {
      const predictionId = ids[r] as string;
      if (!row.label.send || !row.truth) continue;
      this.pending.push({
        due: answeredAt + row.label.delaySeconds * 1000,
        phase: request.phase,
        predictionId,
        label: row.truth.label,
        outcomes: row.outcomes.map((o) => ({
          // Deterministic: a replayed run's outcome is stored once.
          id: `traffic-${this.options.seed}-${request.index}-${r}-${o.kpi}`,
          predictionId,
          key: request.body.key,
          kpi: o.kpi,
          value: o.value,
        })),
      });
    }
  }

  private flushing: Promise<void> | undefined;

  /** Sends the labels (then their outcomes) that are due; one flush at a time. */
  private flushDue(now: number): Promise<void> {
    const previous = this.flushing ?? Promise.resolve();
    const flush = previous.then(async () => {
      const due: PendingLabel[] = [];
      for (let i = this.pending.length - 1; i >= 0; i--) {
        const label = this.pending[i] as PendingLabel;
        if (label.due <= now) {
          due.push(label);
          this.pending.splice(i, 1);
        }
      }
      due.reverse();
      for (let i = 0; i < due.length; i += FEEDBACK_CHUNK) {
        const chunk = due.slice(i, i + FEEDBACK_CHUNK);
        const status = await this.post(
          "/v1/feedback",
          // Labels and outcomes name their model: a key may cover several.
          chunk.map((l) => ({
            predictionId: l.predictionId,
            model: this.options.model,
            label: l.label,
          })),
        );
        for (const label of chunk) {
          const tally = this.tallies[label.phase];
          if (!tally) continue;
          tally.labels.sent++;
          tally.labels.byLabel[String(label.label)] =
            (tally.labels.byLabel[String(label.label)] ?? 0) + 1;
          if (status === 202) tally.labels.accepted++;
          else tally.labels.failed++;
        }
      }
      const outcomes = due.flatMap((l) => l.outcomes.map((o) => ({ ...o, phase: l.phase })));
      for (let i = 0; i < outcomes.length; i += FEEDBACK_CHUNK) {
        const chunk = outcomes.slice(i, i + FEEDBACK_CHUNK);
        const status = await this.post(
          "/v1/outcomes",
          chunk.map(({ phase: _, ...o }) => ({ ...o, model: this.options.model })),
        );
        for (const outcome of chunk) {
          const tally = this.tallies[outcome.phase];
          if (!tally) continue;
          const kpi = tally.outcomes[outcome.kpi] ?? { sent: 0, accepted: 0, failed: 0, sum: 0 };
          tally.outcomes[outcome.kpi] = kpi;
          kpi.sent++;
          kpi.sum += outcome.value;
          if (status === 202) kpi.accepted++;
          else kpi.failed++;
        }
      }
    });
    this.flushing = flush.catch(() => {});
    return this.flushing;
  }

  /** POSTs labels or outcomes, once more after a second on a network error or a 5xx. */
  private async post(path: string, body: unknown): Promise<number | "error"> {
    for (let attempt = 1; ; attempt++) {
      let status: number | "error";
      try {
        const [response, text] = await this.clock.exchange(
          (async () => {
            const response = await fetch(`${this.options.url}${path}`, {
              method: "POST",
              headers: this.headers(),
              body: JSON.stringify(body),
              signal: AbortSignal.timeout(this.options.timeoutSeconds * 1000),
            });
            return [response, await response.text()] as const;
          })(),
        );
        status = response.status;
        if (status !== 202) this.noteError(`${path} ${status}`, text.slice(0, 200));
      } catch (error) {
        status = "error";
        this.noteError(`${path} error`, networkCause(error));
      }
      if (attempt === 2 || (status !== "error" && status < 500)) return status;
      await this.clock.sleep(1000);
    }
  }

  summaryLines(phases: ReturnType<typeof createGenerator>["phases"], result: RunResult): string[] {
    const sum = (pick: (t: PhaseTally) => number) => this.tallies.reduce((a, t) => a + pick(t), 0);
    const responses: Record<string, number> = {};
    for (const tally of this.tallies)
      for (const [status, n] of Object.entries(tally.responses))
        responses[status] = (responses[status] ?? 0) + n;
    const latency = latencySummary(this.latencies);
    const outcomes: Record<string, { sent: number; accepted: number }> = {};
    for (const tally of this.tallies)
      for (const [kpi, o] of Object.entries(tally.outcomes)) {
        const total = outcomes[kpi] ?? { sent: 0, accepted: 0 };
        outcomes[kpi] = total;
        total.sent += o.sent;
        total.accepted += o.accepted;
      }
    const outcomeSent = Object.values(outcomes).reduce((a, o) => a + o.sent, 0);
    const outcomeAccepted = Object.values(outcomes).reduce((a, o) => a + o.accepted, 0);
    const lines = [
      `traffic: ${result.interrupted ? "stopped after" : "sent"} ${this.sent} requests (${sum((t) => t.rows)} rows) in ${result.seconds.toFixed(1)} s`,
      `  answers: ${
        Object.entries(responses)
          .sort()
          .map(([status, n]) => `${status} x${n}`)
          .join(", ") || "none"
      }`,
      `  latency: p50 ${latency.p50 ?? "-"} ms, p95 ${latency.p95 ?? "-"} ms, max ${latency.max ?? "-"} ms`,
      `  labels: ${sum((t) => t.labels.sent)} sent, ${sum((t) => t.labels.accepted)} accepted, ${sum((t) => t.labels.failed)} failed, ${sum((t) => t.labels.dropped)} dropped`,
      `  outcomes: ${outcomeSent} sent, ${outcomeAccepted} accepted${
        Object.keys(outcomes).length > 0
          ? ` (${Object.entries(outcomes)
              .map(([kpi, o]) => `${kpi} ${o.sent}`)
              .join(", ")})`
          : ""
      }`,
    ];
    for (const [i, phase] of phases.entries()) {
      const tally = this.tallies[i];
      if (!tally || tally.requests === 0) continue;
      const answers = Object.entries(tally.responses)
        .sort()
        .map(([status, n]) => `${status} x${n}`)
        .join(", ");
      lines.push(
        `  phase ${phase.index} ${phase.label}: from ${phase.startSeconds.toFixed(1)} s, ${tally.requests} requests (${answers})`,
      );
    }
    for (const [key, detail] of this.errors)
      lines.push(`  first ${key}${detail ? `: ${detail}` : ""}`);
    return lines;
  }
}

/** Prediction ids in row order, from the body or else the x-airlock-prediction-id header. */
export function predictionIds(body: string, header: string | null): string[] {
  try {
    const parsed = JSON.parse(body) as { predictionId?: unknown; predictionIds?: unknown };
    if (Array.isArray(parsed.predictionIds)) return parsed.predictionIds.map(String);
    if (typeof parsed.predictionId === "string") return [parsed.predictionId];
  } catch {
    // fall through to the header
  }
  return header
    ? header
        .split(",")
        .map((id) => id.trim())
        .filter(Boolean)
    : [];
}

if (import.meta.main) {
  const controller = new AbortController();
  let interrupts = 0;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      interrupts++;
      if (interrupts > 1) process.exit(130);
      process.stderr.write("\ntraffic: stopping (again to quit at once)\n");
      controller.abort();
    });
  }
  const code = await main(process.argv.slice(2), { signal: controller.signal });
  // Exit once stdout has drained: `--dry-run | …` otherwise loses what is still buffered for a pipe.
  process.stdout.write("", () => process.exit(code));
}
