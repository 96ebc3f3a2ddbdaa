/**
 * What the docs' walk-through tests share: a local Airlock under npm start
 * with a state directory of its own, the shell block a page marks, run as
 * written, and the statuses its comments promise.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { type DevServer, freePort, startDevServer } from "../../scripts/lib/dev-server.ts";
import { ensureAdminToken } from "../../scripts/lib/environment.ts";
import { adminTokenFile, readAdminToken } from "../../scripts/lib/local-admin.ts";

/** npm start on free ports, in `stateDir`; its base URL and the Local admin's token. */
export async function startLocalAirlock(
  stateDir: string,
  env: Record<string, string> = {},
): Promise<{ server: DevServer; base: string; adminToken: string }> {
  const devVars = join(stateDir, "dev.vars");
  ensureAdminToken(devVars);
  const port = await freePort();
  const server = await startDevServer({
    AIRLOCK_STATE_DIR: stateDir,
    AIRLOCK_DEV_VARS: devVars,
    PORT: String(port),
    AIRLOCK_DB_PORT: String(await freePort()),
    ...env,
  });
  const adminToken = readAdminToken(adminTokenFile(stateDir)) ?? "";
  return { server, base: `http://127.0.0.1:${port}`, adminToken };
}

/** The shell block that follows the page's `<!-- walk-through: … -->` marker. */
export function walkThroughBlock(page: string): string {
  const marker = page.indexOf("<!-- walk-through:");
  const start = page.indexOf("```sh\n", marker);
  const end = page.indexOf("\n```", start + 6);
  if (marker < 0 || start < 0 || end < 0) throw new Error("no walk-through block in the page");
  return page.slice(start + 6, end);
}

/**
 * Runs a script with bash (-euo pipefail), without blocking this process:
 * local receivers the script calls answer from here meanwhile.
 */
export function runBash(
  script: string,
  cwd: string,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "bash",
      ["-euo", "pipefail", "-c", script],
      { cwd, encoding: "utf8", timeout: 120_000 },
      (error, stdout, stderr) =>
        resolve({ status: error ? ((error.code as number | null) ?? 1) : 0, stdout, stderr }),
    );
  });
}

/**
 * What the block's `as TOKEN METHOD PATH …  # NNN` lines promise to print:
 * "NNN METHOD PATH", with the path's shell variables replaced by `vars`.
 */
export function promisedStatuses(block: string, vars: Record<string, string>): string[] {
  return block
    .split("\n")
    .filter((line) => line.startsWith("as "))
    .map((line) => {
      const [, , method, path = ""] = line.split(/\s+/);
      const status = /#\s*(\d{3})\s*$/.exec(line)?.[1];
      let shown = path.replaceAll('"', "");
      for (const [name, value] of Object.entries(vars)) shown = shown.replaceAll(`$${name}`, value);
      return `${status} ${method} ${shown}`;
    });
}

/** The lines a run printed for its `as` calls. */
export const statusLines = (stdout: string) =>
  stdout.split("\n").filter((line) => /^\d{3} [A-Z]+ \//.test(line));
