// The traffic generator's command line. Pure: argv in, options out, or a UsageError naming
// the flag.
import { MODEL_NAME_PATTERN } from "../../../shared/model-name.ts";
import { type Drift, parseDrift } from "./drift.ts";
import type { SegmentEffect } from "./format.ts";
import { parseDuration, UsageError } from "./usage.ts";

export interface TrafficOptions {
  url: string;
  model: string;
  key: string | undefined;
  adminToken: string | undefined;
  /** Requests per second, open loop. */
  rate: number;
  /** Planned requests; null: until stopped (Ctrl-C). */
  requests: number | null;
  concurrency: number;
  seed: number;
  drifts: Drift[];
  labelDelay: { min: number; max: number };
  labelRate: number;
  batchRate: number;
  batchMax: number;
  customers: number | undefined;
  /** Replaces the truth model's segment effects; undefined: the profile's. */
  segments: SegmentEffect[] | undefined;
  profile: string | undefined;
  manifest: string | undefined;
  dryRun: boolean;
  printProfile: boolean;
  timeoutSeconds: number;
  help: boolean;
}

export const usage = `Usage: npm run traffic -- [options]

Sends seeded, realistic prediction traffic to a running Airlock, with drift on demand,
segment attributes, and labels and outcomes that arrive later.

  --url URL              Airlock's base URL (default http://127.0.0.1:8787)
  --model NAME           model to call (default demo-credit-risk)
  --key KEY              API key for predictions, labels and outcomes
  --admin-token TOKEN    a personal access token that may create keys (default:
                         AIRLOCK_TOKEN, else the local admin's token that npm start
                         keeps); creates a key for the model and reads its input schema
  --rate N               requests per second, open loop (default 10)
  --duration D           how long to send (30s, 2m); or
  --requests N           how many requests to send; neither: until Ctrl-C
  --concurrency N        requests in flight at most (default 64)
  --seed N               seed of every random draw (default 1)
  --drift SPEC           a change to one feature, repeatable:
                         FEATURE:KIND=AMOUNT[@START[..END]], KIND one of shift (1.5sd or
                         units), scale, spread, rate (P, or VALUE:P), missing, omit,
                         out_of_range; START/END 60s, 1.5m or 500req (default @0)
  --label-delay D        label and outcomes this long after the answer (default 30s;
                         a range 20s..40s draws uniformly)
  --label-rate P         share of predictions that get a label (default 0.8)
  --batch-rate P         share of requests that are batches (default 0.05)
  --batch-max N          rows in a batch: 2..N (default 10, at most 100)
  --customers N          simulated customers (bucketing keys); default: the profile's
  --segment-effect S     ATTRIBUTE=VALUE:EFFECT, repeatable, replaces the true model's
                         segment effects (logit for a classifier); "none" removes them
  --profile FILE         traffic profile (JSON); default: the builtin one for the model, or
                         one derived from its input schema
  --manifest FILE        writes what was sent (profile, drift, phases, summaries) as JSON
  --dry-run              prints the requests (10 unless --requests/--duration) as JSON lines
  --print-profile        prints the resolved profile as JSON and exits
  --timeout D            per request (default 30s)
  --help                 this text
`;

const valueFlags = new Set([
  "--url",
  "--model",
  "--key",
  "--admin-token",
  "--rate",
  "--duration",
  "--requests",
  "--concurrency",
  "--seed",
  "--drift",
  "--label-delay",
  "--label-rate",
  "--batch-rate",
  "--batch-max",
  "--customers",
  "--segment-effect",
  "--profile",
  "--manifest",
  "--timeout",
]);
const switchFlags = new Set(["--dry-run", "--print-profile", "--help", "-h"]);
const repeatable = new Set(["--drift", "--segment-effect"]);

function positiveNumber(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value <= 0)
    throw new UsageError(`${flag}: expected a positive number, got '${text}'`);
  return value;
}

function integer(flag: string, text: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < min || value > max)
    throw new UsageError(
      `${flag}: expected an integer ${max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`}, got '${text}'`,
    );
  return value;
}

function fraction(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value < 0 || value > 1)
    throw new UsageError(`${flag}: expected a number from 0 to 1, got '${text}'`);
  return value;
}

function parseSegment(text: string): SegmentEffect {
  const match = /^([A-Za-z0-9_.-]{1,64})=(.+):([+-]?(?:\d+\.?\d*|\.\d+))$/.exec(text);
  if (!match)
    throw new UsageError(
      `--segment-effect: '${text}' is not ATTRIBUTE=VALUE:EFFECT (e.g. region=south:0.5) or none`,
    );
  return { attribute: match[1] as string, value: match[2] as string, effect: Number(match[3]) };
}

/** Parses the command line; `env` supplies ADMIN_TOKEN when --admin-token is absent. */
export function parseOptions(argv: readonly string[]): TrafficOptions {
  const given = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (switchFlags.has(flag)) {
      if (eq > 0) throw new UsageError(`${flag}: takes no value`);
      given.set(flag, ["true"]);
      continue;
    }
    if (!valueFlags.has(flag)) {
      throw new UsageError(
        arg.startsWith("-")
          ? `${flag}: unknown option (see --help)`
          : `unexpected argument '${arg}' (see --help)`,
      );
    }
    let value: string;
    if (eq > 0) value = arg.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith("--") && next.length > 2))
        throw new UsageError(`${flag}: needs a value`);
      value = next;
      i++;
    }
    if (given.has(flag) && !repeatable.has(flag))
      throw new UsageError(`${flag}: given more than once`);
    given.set(flag, [...(given.get(flag) ?? []), value]);
  }
  const one = (flag: string) => given.get(flag)?.[0];
  const all = (flag: string) => given.get(flag) ?? [];

  const urlText = one("--url") ?? "http://127.0.0.1:8787";
  let url: URL;
  try {
    url = new URL(urlText);
  } catch {
    throw new UsageError(`--url: '${urlText}' is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new UsageError(`--url: '${urlText}' is not an http(s) URL`);

  const model = one("--model") ?? "demo-credit-risk";
  if (!MODEL_NAME_PATTERN.test(model))
    throw new UsageError(
      `--model: '${model}' is not a model name (lowercase letters, digits, '-')`,
    );

  const rateText = one("--rate");
  const rate = rateText === undefined ? 10 : positiveNumber("--rate", rateText);
  const durationText = one("--duration");
  const requestsText = one("--requests");
  if (durationText !== undefined && requestsText !== undefined)
    throw new UsageError("--duration and --requests: give one of them");
  let requests: number | null = null;
  if (requestsText !== undefined) requests = integer("--requests", requestsText, 1);
  if (durationText !== undefined) {
    const seconds = parseDuration(durationText, "--duration");
    requests = Math.floor(seconds * rate + 1e-9);
    if (requests < 1)
      throw new UsageError(`--duration: ${durationText} at --rate ${rate} is not even one request`);
  }

  let labelDelay = { min: 30, max: 30 };
  const delayText = one("--label-delay");
  if (delayText !== undefined) {
    const [low, high, ...extra] = delayText.split("..");
    if (extra.length > 0 || low === undefined)
      throw new UsageError(`--label-delay: '${delayText}' is not D or D..D`);
    const min = parseDuration(low, "--label-delay");
    const max = high === undefined ? min : parseDuration(high, "--label-delay");
    if (max < min) throw new UsageError(`--label-delay: '${delayText}' ends before it starts`);
    labelDelay = { min, max };
  }

  const segmentTexts = all("--segment-effect");
  let segments: SegmentEffect[] | undefined;
  if (segmentTexts.length > 0) {
    if (segmentTexts.includes("none")) {
      if (segmentTexts.length > 1)
        throw new UsageError("--segment-effect: 'none' cannot be combined with effects");
      segments = [];
    } else segments = segmentTexts.map(parseSegment);
  }

  const seedText = one("--seed");
  const timeoutText = one("--timeout");
  const timeoutSeconds = timeoutText === undefined ? 30 : parseDuration(timeoutText, "--timeout");
  if (timeoutSeconds <= 0) throw new UsageError("--timeout: must be more than 0");

  return {
    url: url.toString().replace(/\/+$/, ""),
    model,
    key: one("--key"),
    adminToken: one("--admin-token"),
    rate,
    requests,
    concurrency:
      one("--concurrency") === undefined
        ? 64
        : integer("--concurrency", one("--concurrency") as string, 1),
    seed: seedText === undefined ? 1 : integer("--seed", seedText, 0, 0xffffffff),
    drifts: all("--drift").map(parseDrift),
    labelDelay,
    labelRate:
      one("--label-rate") === undefined
        ? 0.8
        : fraction("--label-rate", one("--label-rate") as string),
    batchRate:
      one("--batch-rate") === undefined
        ? 0.05
        : fraction("--batch-rate", one("--batch-rate") as string),
    batchMax:
      one("--batch-max") === undefined
        ? 10
        : integer("--batch-max", one("--batch-max") as string, 2, 100),
    customers:
      one("--customers") === undefined
        ? undefined
        : integer("--customers", one("--customers") as string, 1),
    segments,
    profile: one("--profile"),
    manifest: one("--manifest"),
    dryRun: given.has("--dry-run"),
    printProfile: given.has("--print-profile"),
    timeoutSeconds,
    help: given.has("--help") || given.has("-h"),
  };
}
