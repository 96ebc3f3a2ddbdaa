// Small helpers the benchmarks share.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import { projectRoot } from "./environment.ts";

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
 * wrangler resolves them for the Worker.
 */
export async function bundleWorkerModules(contents: string, outfile: string): Promise<void> {
  await build({
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
