// The Worker on the local workerd runtime, driven programmatically through the
// Miniflare that wrangler itself depends on (Miniflare 5, the runtime `wrangler
// dev` and `wrangler deploy` are tested against). Not through `wrangler dev`
// (its proxy in front of the Worker costs more than the Worker), and not the
// standalone `miniflare` package on the registry (4.x, an older workerd).
//
// The Worker is bundled as deploy bundles it (`wrangler deploy --dry-run`), and
// its bindings are read from wrangler.toml by wrangler's own config reader, so
// what runs here is what would be uploaded, with what it would be bound to.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { unstable_readConfig } from "wrangler";
import { projectRoot } from "./environment.ts";

const projectRequire = createRequire(join(projectRoot, "package.json"));
const wranglerPackage = projectRequire.resolve("wrangler/package.json");
/** Resolves modules the way wrangler does: its own miniflare and workerd, not the project's. */
const wranglerRequire = createRequire(wranglerPackage);

/**
 * The parts of wrangler's resolved config read here, declared locally: the
 * types wrangler ships name a package it does not install, so they resolve
 * to `any`.
 */
export interface WranglerConfig {
  name?: string;
  compatibility_date?: string;
  compatibility_flags: string[];
  vars: Record<string, unknown>;
  secrets?: { required?: string[] };
  durable_objects: { bindings: { name: string; class_name: string; script_name?: string }[] };
  migrations: {
    tag: string;
    new_classes?: string[];
    new_sqlite_classes?: string[];
    deleted_classes?: string[];
    renamed_classes?: unknown[];
    transferred_classes?: unknown[];
  }[];
  queues: {
    producers?: { binding: string; queue: string }[];
    consumers?: {
      queue: string;
      max_batch_size?: number;
      max_batch_timeout?: number;
      max_retries?: number;
      dead_letter_queue?: string;
      retry_delay?: number;
    }[];
  };
  triggers: { crons?: string[] };
  kv_namespaces: { binding: string; id?: string }[];
  ratelimits: { name: string; namespace_id: string; simple: { limit: number; period: number } }[];
}

/** A binding in Miniflare 5's `config.env`; only the kinds built here are spelled out. */
export type Binding =
  | { type: "text"; value: string }
  | { type: "json"; value: unknown }
  | { type: "durable-object"; worker: string; exportName: string }
  | { type: "queue"; name: string }
  | { type: "kv"; id?: string }
  | { type: "rate-limit"; namespace: string; simple: { limit: number; period: 10 | 60 } };

type Trigger =
  | { type: "scheduled"; schedule: string }
  | {
      type: "queue";
      name: string;
      maxBatchSize?: number;
      maxBatchTimeout?: number;
      maxRetries?: number;
      deadLetterQueue?: string;
      retryDelay?: number;
    };

/** One entry of Miniflare 5's `workers` (the parts used here). */
export interface WorkerEntry {
  config: {
    name: string;
    compatibilityDate: string;
    compatibilityFlags?: string[];
    manifest: {
      mainModule: string;
      modules: Record<string, { type: "esm" | "text"; contents: string }>;
    };
    env?: Record<string, Binding>;
    exports?: Record<string, { type: "durable-object"; storage: "sqlite" | "legacy-kv" }>;
    triggers?: Trigger[];
  };
  dev?: { unsafeDirectSockets?: { host?: string; port?: number }[] };
}

export interface MiniflareOptions {
  host?: string;
  port?: number;
  handleStructuredLogs?: (log: { timestamp: number; level: string; message: string }) => void;
  workers: WorkerEntry[];
}

/** The parts of a Miniflare 5 instance used here. */
export interface MiniflareInstance {
  readonly ready: Promise<URL>;
  /** The socket declared in the worker's `dev.unsafeDirectSockets`: no entry worker in front. */
  unsafeGetDirectURL(workerName?: string): Promise<URL>;
  dispose(): Promise<void>;
}

export interface Runtime {
  Miniflare: new (options: MiniflareOptions) => MiniflareInstance;
  versions: { wrangler: string; miniflare: string; workerd: string };
}

function packageVersion(require: NodeJS.Require, name: string): string {
  return (require(`${name}/package.json`) as { version: string }).version;
}

/** wrangler's own Miniflare (5.x) and the workerd it runs. */
export function wranglerRuntime(): Runtime {
  const miniflare = wranglerRequire("miniflare") as { Miniflare: Runtime["Miniflare"] };
  const miniflareRequire = createRequire(wranglerRequire.resolve("miniflare"));
  const versions = {
    wrangler: packageVersion(projectRequire, "wrangler"),
    miniflare: packageVersion(wranglerRequire, "miniflare"),
    workerd: packageVersion(miniflareRequire, "workerd"),
  };
  if (!versions.miniflare.startsWith("5.")) {
    throw new Error(`wrangler's miniflare is ${versions.miniflare}; this expects Miniflare 5`);
  }
  return { Miniflare: miniflare.Miniflare, versions };
}

/** wrangler.toml as wrangler reads it (top-level environment). */
export function readWranglerConfig(): WranglerConfig {
  const config: unknown = unstable_readConfig(
    { config: join(projectRoot, "wrangler.toml") },
    { hideWarnings: true },
  );
  return config as WranglerConfig;
}

/**
 * Bundles the Worker as `wrangler deploy` does, without uploading it
 * (`--dry-run --outdir`). Returns the bundle's code (a single ES module).
 */
export async function bundleWorker(outDir: string): Promise<BundledWorker> {
  const wrangler = join(wranglerPackage, "..", "bin", "wrangler.js");
  const child = spawn(process.execPath, [wrangler, "deploy", "--dry-run", "--outdir", outDir], {
    cwd: projectRoot,
    env: { ...process.env, FORCE_COLOR: "0", WRANGLER_SEND_METRICS: "false" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", resolve);
  });
  if (code !== 0) throw new Error(`wrangler deploy --dry-run failed (${code}):\n${output}`);
  const modules: BundledWorker["modules"] = {};
  for (const name of readdirSync(outDir)) {
    // The files wrangler.toml's Text rule imports as strings (stylesheets and scripts served to
    // browsers) sit beside the bundle under their hashed names.
    if (name === "index.js" || name.endsWith(".map") || name === "README.md") continue;
    modules[name] = { type: "text", contents: readFileSync(join(outDir, name), "utf8") };
  }
  return { code: readFileSync(join(outDir, "index.js"), "utf8"), modules };
}

/** The bundle wrangler deploy --dry-run writes: the Worker's module and its text modules. */
export interface BundledWorker {
  code: string;
  modules: Record<string, { type: "text"; contents: string }>;
}

/** Config keys that hold bindings this module does not map (yet): a non-empty one is an error. */
const unmappedBindingKeys = [
  "services",
  "d1_databases",
  "r2_buckets",
  "hyperdrive",
  "vectorize",
  "analytics_engine_datasets",
  "dispatch_namespaces",
  "mtls_certificates",
  "send_email",
  "workflows",
  "pipelines",
  "secrets_store_secrets",
  "worker_loaders",
  "vpc_services",
  "vpc_networks",
  "ai_search",
  "ai_search_namespaces",
  "agent_memory",
  "artifacts",
  "flagship",
  "k2",
  "connect",
  "ai",
  "browser",
  "images",
  "media",
  "stream",
  "version_metadata",
  "assets",
  "containers",
] as const;

/**
 * Values for every secret that wrangler.toml's `[secrets] required` lists,
 * for a local run: the one `given` where there is one (DATABASE_URL, an
 * admin token the caller uses), otherwise a fresh test value of 32 random
 * bytes in base64, which is what ALERT_ENCRYPTION_KEY must be and serves as
 * a token or HMAC key as well. A secret added to the list later gets a value
 * with no change to the callers. A given name the list lacks is an error.
 */
export function localSecrets(
  config: WranglerConfig,
  given: Record<string, string> = {},
): Record<string, string> {
  const required = config.secrets?.required ?? [];
  for (const name of Object.keys(given)) {
    if (!required.includes(name))
      throw new Error(`wrangler.toml's [secrets] required does not list ${name}`);
  }
  return Object.fromEntries(
    required.map((name) => [name, given[name] ?? randomBytes(32).toString("base64")]),
  );
}

export interface AirlockWorkerOptions {
  config: WranglerConfig;
  /** The bundled modules (bundleWorker). */
  bundle: BundledWorker;
  /**
   * Values for the secrets wrangler.toml requires (localSecrets makes them);
   * each is bound as text, as wrangler dev does.
   */
  secrets: Record<string, string>;
  /** Replaces values of [vars]. */
  vars?: Record<string, string>;
  /** Replaces a rate limiter's limit (by binding name), e.g. so a benchmark is never limited. */
  rateLimits?: Record<string, number>;
  /** Listen on a socket of its own (port 0: a free one), with no entry worker in front. */
  directSocket?: { host: string; port: number };
}

/**
 * The Worker as a Miniflare 5 worker entry, with every binding wrangler.toml
 * declares. Fails on bindings it does not know how to map, rather than
 * running a Worker that is missing one.
 */
export function airlockWorker(options: AirlockWorkerOptions): WorkerEntry {
  const { config } = options;
  const raw = config as unknown as Record<string, unknown>;
  for (const key of unmappedBindingKeys) {
    const value = raw[key];
    const declared = Array.isArray(value)
      ? value.length > 0
      : value !== undefined && value !== null && Object.keys(value as object).length > 0;
    if (declared) throw new Error(`wrangler.toml declares ${key}, which this runner does not map`);
  }
  if (Object.keys(raw.exports ?? {}).length > 0)
    throw new Error("wrangler.toml declares exports, which this runner does not map");
  const name = config.name ?? "airlock";
  const env: Record<string, Binding> = {};

  for (const [key, value] of Object.entries(config.vars ?? {})) {
    const override = options.vars?.[key];
    env[key] =
      override !== undefined
        ? { type: "text", value: override }
        : typeof value === "string"
          ? { type: "text", value }
          : { type: "json", value };
  }
  for (const key of Object.keys(options.vars ?? {})) {
    if (!(key in env)) throw new Error(`[vars] has no ${key}`);
  }
  for (const secret of config.secrets?.required ?? []) {
    const value = options.secrets[secret];
    if (value === undefined) throw new Error(`no value for the secret ${secret}`);
    env[secret] = { type: "text", value };
  }

  for (const binding of config.durable_objects.bindings) {
    if (binding.script_name && binding.script_name !== name)
      throw new Error(`${binding.name}: Durable Objects of other Workers are not mapped`);
    env[binding.name] = { type: "durable-object", worker: name, exportName: binding.class_name };
  }
  const exports: NonNullable<WorkerEntry["config"]["exports"]> = {};
  for (const migration of config.migrations) {
    for (const className of migration.new_sqlite_classes ?? [])
      exports[className] = { type: "durable-object", storage: "sqlite" };
    for (const className of migration.new_classes ?? [])
      exports[className] = { type: "durable-object", storage: "legacy-kv" };
    for (const className of migration.deleted_classes ?? []) delete exports[className];
    if (
      (migration.renamed_classes ?? []).length > 0 ||
      (migration.transferred_classes ?? []).length
    )
      throw new Error("renamed or transferred Durable Object classes are not mapped");
  }

  for (const producer of config.queues.producers ?? []) {
    env[producer.binding] = { type: "queue", name: producer.queue };
  }
  const triggers: Trigger[] = [];
  for (const consumer of config.queues.consumers ?? []) {
    triggers.push({
      type: "queue",
      name: consumer.queue,
      ...(consumer.max_batch_size === undefined ? {} : { maxBatchSize: consumer.max_batch_size }),
      ...(consumer.max_batch_timeout === undefined
        ? {}
        : { maxBatchTimeout: consumer.max_batch_timeout }),
      ...(consumer.max_retries === undefined ? {} : { maxRetries: consumer.max_retries }),
      ...(consumer.dead_letter_queue === undefined
        ? {}
        : { deadLetterQueue: consumer.dead_letter_queue }),
      ...(consumer.retry_delay === undefined ? {} : { retryDelay: consumer.retry_delay }),
    });
  }
  for (const schedule of config.triggers.crons ?? [])
    triggers.push({ type: "scheduled", schedule });

  for (const namespace of config.kv_namespaces) {
    env[namespace.binding] = namespace.id ? { type: "kv", id: namespace.id } : { type: "kv" };
  }
  for (const limiter of config.ratelimits) {
    const period = limiter.simple.period;
    if (period !== 10 && period !== 60)
      throw new Error(`${limiter.name}: period ${period} is not 10 or 60`);
    env[limiter.name] = {
      type: "rate-limit",
      namespace: limiter.namespace_id,
      simple: { limit: options.rateLimits?.[limiter.name] ?? limiter.simple.limit, period },
    };
  }

  return {
    config: {
      name,
      compatibilityDate: config.compatibility_date ?? "",
      compatibilityFlags: config.compatibility_flags,
      manifest: {
        mainModule: "index.js",
        modules: {
          "index.js": { type: "esm", contents: options.bundle.code },
          ...options.bundle.modules,
        },
      },
      env,
      exports,
      ...(triggers.length > 0 ? { triggers } : {}),
    },
    ...(options.directSocket ? { dev: { unsafeDirectSockets: [options.directSocket] } } : {}),
  };
}
