// The Worker's cron triggers under `npm start`. `wrangler dev` never fires them by itself, so this
// scheduler reads `[triggers] crons` from wrangler.toml, works out when each fires next (UTC, in
// Cloudflare's cron dialect) and fires it through the Worker's local-only route:
//   POST /__scheduled?cron=<expression>&time=<scheduled epoch ms>
// which answers 200 {"cron","scheduledTime","result"}, 400 {"error":{"code":"UNKNOWN_CRON"}} or
// 500 {"error":{"code","message"}} when the job failed.
import { readFileSync } from "node:fs";
import { Cron } from "croner";
import { parse } from "smol-toml";

/**
 * A cron expression as Cloudflare reads it: five fields (minute to weekday), UTC, weekdays 1-7
 * from Sunday (Quartz's numbering: `0 17 * * 1` is Sunday), and L, W and # where Quartz has them.
 * Throws on an expression Cloudflare would refuse.
 */
export function parseCron(expression: string): Cron {
  return new Cron(expression, {
    timezone: "UTC",
    mode: "5-part",
    alternativeWeekdays: true,
    paused: true,
  });
}

/**
 * The next `count` times (epoch ms) at which `expression` fires strictly after `after`; fewer
 * when it stops firing (e.g. `0 0 30 2 *`, never).
 */
export function nextFireTimes(expression: string, after: number | Date, count = 1): number[] {
  const cron = parseCron(expression);
  const times: number[] = [];
  let previous = new Date(after);
  while (times.length < count) {
    const next = cron.nextRun(previous);
    if (!next) break;
    times.push(next.getTime());
    previous = next;
  }
  return times;
}

/** The next time `expression` fires strictly after `after`, or null if it never does. */
export function nextFireTime(expression: string, after: number | Date): number | null {
  return nextFireTimes(expression, after, 1)[0] ?? null;
}

/** `[triggers] crons` of a wrangler.toml, each checked to be an expression Cloudflare accepts. */
export function readCronTriggers(wranglerToml: string): string[] {
  const config = parse(readFileSync(wranglerToml, "utf8")) as {
    triggers?: { crons?: unknown };
  };
  const crons = config.triggers?.crons ?? [];
  if (!Array.isArray(crons) || !crons.every((c) => typeof c === "string")) {
    throw new Error(`${wranglerToml}: [triggers] crons must be a list of strings`);
  }
  for (const expression of crons) {
    try {
      parseCron(expression);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`${wranglerToml}: cron "${expression}" is not valid: ${reason}`);
    }
  }
  return crons;
}

/** `--no-cron` or `AIRLOCK_CRON=0` (also `false`, `no`, `off`) turn the scheduler off. */
export function cronWanted(argv: readonly string[], env: NodeJS.ProcessEnv): boolean {
  if (argv.includes("--no-cron")) return false;
  return !/^(0|false|no|off)$/i.test(env.AIRLOCK_CRON?.trim() ?? "");
}

/** Time as the scheduler sees it; tests drive a clock of their own. */
export interface SchedulerClock {
  now(): number;
  /** Resolves once `now()` has reached `time` (epoch ms), or as soon as `signal` aborts. */
  sleepUntil(time: number, signal: AbortSignal): Promise<void>;
}

/** A machine may sleep through a timer; waking each minute notices a clock that jumped. */
const LONGEST_NAP_MS = 60_000;

export const systemClock: SchedulerClock = {
  now: () => Date.now(),
  sleepUntil: (time, signal) =>
    new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const check = () => {
        const left = time - Date.now();
        if (left <= 0 || signal.aborted) return done();
        timer = setTimeout(check, Math.min(left, LONGEST_NAP_MS));
      };
      signal.addEventListener("abort", done);
      check();
    }),
};

export interface CronSchedulerOptions {
  crons: readonly string[];
  /** The Worker, e.g. http://127.0.0.1:8787. */
  baseUrl: string;
  /** One line per firing, and per run skipped. */
  log: (line: string) => void;
  clock?: SchedulerClock;
  /** A firing that has not answered by then counts as failed (default 10 minutes). */
  timeoutMs?: number;
  /** Called with the path and query of each request, before it is sent. */
  onRequest?: (pathAndQuery: string) => void;
  /** Called when a request got no HTTP answer (unreachable, timed out, stopped). */
  onNoAnswer?: (pathAndQuery: string) => void;
}

export interface CronScheduler {
  /** Stops waiting, cancels firings under way and resolves once every loop has ended. */
  stop(): Promise<void>;
}

/**
 * Fires each cron at its times, one loop per cron: the next time is worked out only once a
 * firing has ended, so two firings of the same cron never overlap, and times that passed
 * meanwhile (a slow job, a machine asleep) are skipped and logged, not fired late in a burst.
 */
export function startCronScheduler(options: CronSchedulerOptions): CronScheduler {
  const clock = options.clock ?? systemClock;
  const stopping = new AbortController();
  const timeoutMs = options.timeoutMs ?? 600_000;

  async function fire(cron: string, scheduledTime: number): Promise<void> {
    const pathAndQuery = `/__scheduled?cron=${encodeURIComponent(cron)}&time=${scheduledTime}`;
    const label = `[cron] ${cron} ${minuteOf(scheduledTime)}`;
    const started = performance.now();
    const took = () => formatDuration(performance.now() - started);
    try {
      options.onRequest?.(pathAndQuery);
      const response = await fetch(new URL(pathAndQuery, options.baseUrl), {
        method: "POST",
        signal: AbortSignal.any([stopping.signal, AbortSignal.timeout(timeoutMs)]),
      });
      const text = await response.text();
      const body = parseJson(text);
      if (response.ok) {
        const result = isRecord(body) && "result" in body ? body.result : body;
        options.log(`${label} ok in ${took()}: ${summarize(result)}`);
        return;
      }
      const error = isRecord(body) && isRecord(body.error) ? body.error : undefined;
      const reason = error
        ? `${String(error.code ?? "")}: ${String(error.message ?? "")}`
        : oneLine(text).slice(0, 200) || "no body";
      options.log(`${label} failed (${response.status}) after ${took()}: ${reason}`);
    } catch (error) {
      options.onNoAnswer?.(pathAndQuery);
      if (stopping.signal.aborted) return;
      const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
      const reason =
        error instanceof Error && error.name === "TimeoutError"
          ? `no answer within ${formatDuration(timeoutMs)}`
          : cause instanceof Error
            ? cause.message
            : String(cause);
      options.log(`${label} failed after ${took()}: ${reason}`);
    }
  }

  async function loop(expression: string): Promise<void> {
    const cron = parseCron(expression);
    const following = (time: number) => cron.nextRun(new Date(time))?.getTime() ?? null;
    let after = clock.now();
    while (!stopping.signal.aborted) {
      const next = following(after);
      if (next === null) {
        options.log(`[cron] ${expression} never fires again; not scheduled`);
        return;
      }
      await clock.sleepUntil(next, stopping.signal);
      if (stopping.signal.aborted) return;
      await fire(expression, next);
      after = next;
      const now = clock.now();
      let missed = 0;
      let firstMissed: number | undefined;
      for (let time = following(next); time !== null && time <= now; time = following(time)) {
        firstMissed ??= time;
        missed += 1;
        after = time;
      }
      if (firstMissed !== undefined) {
        options.log(
          `[cron] ${expression} skipped ${missed} run${missed === 1 ? "" : "s"} from ${minuteOf(firstMissed)}: due while the last one ran`,
        );
      }
    }
  }

  const loops = options.crons.map((cron) => loop(cron));
  return {
    stop: async () => {
      stopping.abort();
      await Promise.allSettled(loops);
    },
  };
}

/** 2026-12-07T06:15Z: the minute a firing was scheduled for. */
function minuteOf(time: number): string {
  return `${new Date(time).toISOString().slice(0, 16)}Z`;
}

function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

/**
 * A job's report in one short line: numbers as they are, lists by their length, nested objects
 * with dotted names (`alerts.opened=1 computed=2`); zeros, empty lists and nulls are left out
 * ("all zero" when nothing is left); cut at about 200 characters.
 */
export function summarize(result: unknown, limit = 200): string {
  if (result === undefined || result === null) return "done";
  if (!isRecord(result)) return oneLine(JSON.stringify(result)).slice(0, limit);
  const parts: string[] = [];
  const walk = (value: Record<string, unknown>, prefix: string) => {
    for (const [key, item] of Object.entries(value)) {
      const name = `${prefix}${key}`;
      if (item === null || item === undefined || item === 0 || item === false) continue;
      if (Array.isArray(item)) {
        if (item.length > 0) parts.push(`${name}=${item.length}`);
      } else if (isRecord(item)) walk(item, `${name}.`);
      else if (typeof item === "string") parts.push(`${name}=${oneLine(item).slice(0, 40)}`);
      else parts.push(`${name}=${String(item)}`);
    }
  };
  walk(result, "");
  const line = parts.join(" ");
  if (line === "") return "all zero";
  return line.length <= limit ? line : `${line.slice(0, limit - 1)}…`;
}
