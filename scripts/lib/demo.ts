// The demo model `npm start` registers on a fresh database: a logistic champion and an XGBoost
// challenger in shadow, both builtin, each with a baseline drawn from the traffic generator's
// profile of its training population (scripts/demo/baseline.ts). It goes through the admin API,
// so the audit trail records it like any operator's change, and it is never touched again once
// it exists.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DEMO_BASELINE_ROWS, demoBaselineRows } from "../demo/baseline.ts";
import { projectRoot } from "./environment.ts";

export interface DemoFile {
  model: { name: string } & Record<string, unknown>;
  versions: {
    version: string;
    role: "champion" | "shadow";
    upstream: unknown;
    modelCard?: unknown;
  }[];
  example: Record<string, unknown>;
}

export const demoFile = join(projectRoot, "scripts", "demo", "demo-credit-risk.json");

export function readDemo(file = demoFile): DemoFile {
  return JSON.parse(readFileSync(file, "utf8")) as DemoFile;
}

/** `--no-demo` or `AIRLOCK_DEMO=0` (also `false`, `no`, `off`) turn the demo off. */
export function demoWanted(argv: readonly string[], env: NodeJS.ProcessEnv): boolean {
  if (argv.includes("--no-demo")) return false;
  return !/^(0|false|no|off)$/i.test(env.AIRLOCK_DEMO?.trim() ?? "");
}

export type DemoOutcome = "registered" | "present";

/**
 * Registers the demo model unless a model of that name exists, then sets each version's baseline
 * to the same DEMO_BASELINE_ROWS rows of its training population (`POST .../baseline`, audited
 * as version.baseline.set), so drift is measured from the first window of traffic. Baselines come
 * after the rollout: should an upload be refused (a smaller MAX_BODY_BYTES), the demo still
 * answers. Each POST carries an Idempotency-Key derived from its path and body, so a retried
 * request replays instead of repeating.
 */
export async function ensureDemoModel(
  base: string,
  token: string,
  demo: DemoFile = readDemo(),
): Promise<DemoOutcome> {
  const name = demo.model.name;
  const models = `${base}/admin/models`;
  const existing = await call("GET", `${models}/${name}`, token);
  if (existing.status === 200) return "present";
  if (existing.status !== 404) throw await failure("GET", `/admin/models/${name}`, existing);
  // Drawn before the first change: a profile that cannot be drawn leaves nothing half registered.
  const baselineRows = demoBaselineRows(demo.model);

  const created = await post(models, token, demo.model);
  if (created.status === 409) return "present"; // registered meanwhile by someone else
  if (created.status !== 201) throw await failure("POST", "/admin/models", created);
  for (const { version, upstream, modelCard } of demo.versions) {
    const response = await post(`${models}/${name}/versions`, token, {
      version,
      upstream,
      modelCard,
    });
    if (response.status !== 201)
      throw await failure("POST", `/admin/models/${name}/versions (${version})`, response);
  }
  const champion = demo.versions.find((v) => v.role === "champion")?.version;
  if (!champion) throw new Error("the demo file names no champion version");
  const shadows = demo.versions
    .filter((v) => v.role === "shadow")
    .map((v) => ({ version: v.version, sampleRate: 1 }));
  const rollout = await call("PUT", `${models}/${name}/rollout`, token, { champion, shadows });
  if (rollout.status !== 200) throw await failure("PUT", `/admin/models/${name}/rollout`, rollout);
  for (const { version } of demo.versions) {
    const path = `/admin/models/${name}/versions/${version}/baseline`;
    const response = await post(`${base}${path}`, token, { rows: baselineRows });
    if (response.status !== 200) throw await failure("POST", path, response);
    await response.body?.cancel();
  }
  return "registered";
}

/**
 * What `npm start` says of the demo model: "registered (champion v1-logistic, shadow
 * v2-xgboost), each with a baseline of 5,000 rows", or that it was left as it was.
 */
export function describeDemoOutcome(outcome: DemoOutcome, demo: DemoFile = readDemo()): string {
  if (outcome === "present") return "already present, left as it is";
  const role = (name: string) =>
    demo.versions
      .filter((v) => v.role === name)
      .map((v) => v.version)
      .join(", ");
  return `registered (champion ${role("champion")}, shadow ${role("shadow")}), each with a baseline of ${DEMO_BASELINE_ROWS.toLocaleString("en-US")} rows`;
}

/** A copy-pasteable curl asking the demo model for a prediction on its example row. */
export function demoCurl(base: string, demo: DemoFile = readDemo()): string {
  const body = JSON.stringify({ inputs: demo.example }).replaceAll("'", "'\\''");
  return [
    `curl -sS -X POST ${base}/v1/models/${demo.model.name}/predict \\`,
    "  -H 'content-type: application/json' \\",
    `  -d '${body}'`,
  ].join("\n");
}

async function post(url: string, token: string, body: unknown): Promise<Response> {
  // The path too: the same rows go to each version's baseline, and a key names one request.
  const digest = createHash("sha256")
    .update(`${new URL(url).pathname}\n${JSON.stringify(body)}`)
    .digest("hex")
    .slice(0, 32);
  return call("POST", url, token, body, { "idempotency-key": `airlock-demo-${digest}` });
}

/** One request, tried again (same headers, so the same Idempotency-Key) on network or 5xx errors. */
async function call(
  method: string,
  url: string,
  token: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  const init: RequestInit = {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  };
  for (let attempt = 1; ; attempt++) {
    const last = attempt === 3;
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) }).catch(
      (error: unknown) => {
        if (!last) return undefined;
        const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
        throw new Error(
          `${method} ${url} failed: ${cause instanceof Error ? cause.message : cause}`,
        );
      },
    );
    if (response && (last || !(await worthRetrying(response)))) return response;
    await response?.body?.cancel();
    await new Promise((resolve) => setTimeout(resolve, 1000 * attempt));
  }
}

/** A server error, or a 409 saying the same idempotent request is still running. */
async function worthRetrying(response: Response): Promise<boolean> {
  if (response.status >= 500) return true;
  if (response.status !== 409) return false;
  const body = (await response
    .clone()
    .json()
    .catch(() => undefined)) as { error?: { code?: string } } | undefined;
  return body?.error?.code === "IDEMPOTENCY_KEY_IN_USE";
}

async function failure(method: string, path: string, response: Response): Promise<Error> {
  const text = await response.text().catch(() => "");
  return new Error(`${method} ${path} answered ${response.status}: ${text.slice(0, 500)}`);
}
