// Small helpers the benchmarks share.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import { projectRoot } from "./environment.ts";

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Quantile with linear interpolation between closest ranks; NaN for no values. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  const a = sorted[lower] ?? Number.NaN;
  const b = sorted[upper] ?? Number.NaN;
  return a + (b - a) * (position - lower);
}

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
