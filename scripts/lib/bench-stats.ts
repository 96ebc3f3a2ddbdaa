// Small helpers the benchmarks share.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { join, relative } from "node:path";
import { build } from "esbuild";
import { projectRoot } from "./environment.ts";

/**
 * `BENCH_SMOKE=1`: a smoke run. Every benchmark then runs its whole path at
 * tiny sizes (it starts what it starts and performs a handful of
 * operations), checks that the work was done (rows stored, 2xx answers)
 * instead of measuring, exits non-zero when a check fails, and leaves
 * bench/results/ alone. The test suite runs each benchmark this way
 * (test/node/bench-smoke.test.ts), so one that no longer starts fails CI.
 */
export const smoke = process.env.BENCH_SMOKE === "1";

/** A knob's value: the environment's, or else the full run's or the smoke run's default. */
export function knob(name: string, full: string, smokeDefault: string): string {
  return process.env[name] || (smoke ? smokeDefault : full);
}

/** A numeric knob (see knob). */
export function numberKnob(name: string, full: number, smokeDefault: number): number {
  const value = Number(knob(name, String(full), String(smokeDefault)));
  if (!Number.isFinite(value)) throw new Error(`${name} is not a number`);
  return value;
}

/** What a smoke run checked; its verdict decides the exit code. */
export interface SmokeChecks {
  /** Records and prints one check; returns whether it passed. */
  check(what: string, ok: boolean, detail?: string): boolean;
  /** Prints the verdict; a failed check, or none at all, sets a non-zero exit code. */
  finish(): boolean;
}

export function smokeChecks(benchmark: string): SmokeChecks {
  const failed: string[] = [];
  let passed = 0;
  return {
    check(what, ok, detail) {
      console.log(
        `smoke check ${ok ? "passed" : "FAILED"}: ${what}${detail ? ` (${detail})` : ""}`,
      );
      if (ok) passed += 1;
      else failed.push(what);
      return ok;
    },
    finish() {
      const ok = failed.length === 0 && passed > 0;
      if (ok) console.log(`${benchmark} smoke run passed: ${passed} checks (no timing figures)`);
      else {
        console.error(
          `${benchmark} smoke run FAILED: ${failed.length} of ${failed.length + passed} checks${failed.length ? `: ${failed.join("; ")}` : ""}`,
        );
        process.exitCode = 1;
      }
      return ok;
    },
  };
}

/**
 * Writes a benchmark's report to bench/results/<name>.json and returns the
 * path it wrote, relative to the project; a smoke run writes nothing and
 * returns null.
 */
export function writeResult(name: string, report: unknown): string | null {
  const text = `${JSON.stringify(report, null, 2)}\n`;
  if (smoke) {
    console.log(
      `Smoke run: bench/results/${name}.json left as it is (the report has ${text.length} bytes).`,
    );
    return null;
  }
  const dir = join(projectRoot, "bench", "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  writeFileSync(file, text);
  return relative(projectRoot, file);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Quantile with linear interpolation between closest ranks (one definition for all scripts). */
export { quantile } from "./traffic/summary.ts";

/** A git command's output in the project, or null when git cannot tell. */
export function git(...args: string[]): string | null {
  try {
    return execFileSync("git", args, { cwd: projectRoot, encoding: "utf8" }).trim();
  } catch {
    return null;
  }
}

/** Which code a result came from: the commit and any uncommitted changes to tracked files. */
export function sourceRevision(): { commit: string | null; uncommittedChanges: string[] } {
  return {
    commit: git("rev-parse", "HEAD"),
    uncommittedChanges:
      git("status", "--porcelain", "--untracked-files=no")?.split("\n").filter(Boolean) ?? [],
  };
}

/** The installed wrangler's version. */
export function wranglerVersion(): string {
  const manifest = readFileSync(
    join(projectRoot, "node_modules", "wrangler", "package.json"),
    "utf8",
  );
  return (JSON.parse(manifest) as { version: string }).version;
}

/**
 * Bundles modules of the Worker, as they are, into one ES module Node can
 * import: `contents` re-exports what a benchmark calls. Packages resolve as
 * wrangler resolves them for the Worker; Node's built-in modules (which the
 * Worker has through nodejs_compat, e.g. for a dependency's `debug` logging)
 * stay imports.
 */
export async function bundleWorkerModules(contents: string, outfile: string): Promise<void> {
  await build({
    external: [...builtinModules, ...builtinModules.map((name) => `node:${name}`)],
    // CommonJS dependencies require() those built-ins; an ES module has no require of its own.
    banner: {
      js: 'import { createRequire as __airlockRequire } from "node:module"; const require = __airlockRequire(import.meta.url);',
    },
    stdin: { contents, resolveDir: projectRoot, loader: "ts" },
    bundle: true,
    format: "esm",
    platform: "neutral",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    target: "es2023",
    outfile,
    logLevel: "error",
  });
}

/** Seconds of CPU a process has used (Linux /proc), or NaN. */
export function processCpuSeconds(pid: number | undefined): number {
  if (!pid) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of the whole line, i.e. 11 and 12 after ")".
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/**
 * Seconds of CPU a process tree has used: the process, its children that have
 * ended (counted once it has reaped them: cutime, cstime) and its children
 * still running. For the postmaster, that is Postgres with its backends.
 */
export function processTreeCpuSeconds(pid: number | undefined): number {
  if (!pid) return Number.NaN;
  try {
    const fieldsOf = (stat: string) => stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const own = fieldsOf(readFileSync(`/proc/${pid}/stat`, "utf8"));
    // After ")": state, ppid, ..., utime (11), stime (12), cutime (13), cstime (14).
    let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const fields = fieldsOf(readFileSync(`/proc/${entry}/stat`, "utf8"));
        if (Number(fields[1]) === pid) ticks += Number(fields[11]) + Number(fields[12]);
      } catch {
        // ended meanwhile
      }
    }
    return ticks / 100;
  } catch {
    return Number.NaN;
  }
}
