// `npm run audit:verify -- FILE`: checks an export of the audit trail (GET /admin/audit/export)
// offline, trusting nothing in it but the arithmetic: every row's hash, the rows from before the
// chain, the export's signed checkpoints, and a checkpoint and public key kept outside Airlock.
// `npm run audit:verify -- --help` lists the options; the checks live in shared/audit/export.ts.
import { readFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { parseArgs } from "node:util";
import type { Checkpoint, PublicKey } from "../shared/audit/checkpoint.ts";
import {
  type ExportVerification,
  isCheckpoint,
  isPublicKey,
  verifyExport,
} from "../shared/audit/export.ts";

export const usage = `Usage: npm run audit:verify -- FILE [options]

Checks an export of the audit trail (GET /admin/audit/export) without trusting the server:
every row's hash and its link to the row before, the rows from before the chain, the
export's signed checkpoints, and a checkpoint kept outside Airlock.

  FILE                 the export (NDJSON); - reads it from standard input
  --checkpoint FILE    a checkpoint kept outside Airlock: one checkpoint as JSON, the
                       answer of POST /admin/audit/checkpoints or the body of an
                       audit.checkpoint notice (their checkpoint), or the answer of
                       GET /admin/audit/checkpoints (its newest); the export must hold
                       its row with exactly its hash
  --public-key FILE    the public key kept outside Airlock (the answer of GET
                       /admin/audit/public-key); default: the export's own, which
                       proves little
  --json               prints the result as JSON
  --help               this text

Exit status: 0 the trail verifies, 1 it is broken, 2 a usage error or a file that cannot be read.
`;

/** A mistake on the command line, or a file given that cannot be used: exit status 2. */
class UsageError extends Error {}

interface Options {
  file: string;
  checkpoint: string | undefined;
  publicKey: string | undefined;
  json: boolean;
}

/** Node's own parser (strict: an unknown option or a missing value is an error), in our words. */
export function parseOptions(argv: readonly string[]): Options {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const flag = /'(-[^' ]+)/.exec(message)?.[1] ?? "";
    const code = (error as { code?: string }).code;
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION")
      throw new UsageError(`${flag}: unknown option (see --help)`);
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE")
      throw new UsageError(
        message.includes("does not take") ? `${flag}: takes no value` : `${flag}: needs a value`,
      );
    throw new UsageError(`${message} (see --help)`);
  }
  const { values, positionals } = parsed;
  for (const flag of ["checkpoint", "public-key"] as const) {
    const given = values[flag] ?? [];
    if (given.length > 1) throw new UsageError(`--${flag}: given more than once`);
    if (given[0] === "" || given[0]?.startsWith("--"))
      throw new UsageError(`--${flag}: needs a value`);
  }
  if (positionals.length === 0)
    throw new UsageError("no export given: name its file, or - (see --help)");
  if (positionals.length > 1)
    throw new UsageError(
      `unexpected argument '${positionals[1]}': one export at a time (see --help)`,
    );
  return {
    file: positionals[0] as string,
    checkpoint: values.checkpoint?.[0],
    publicKey: values["public-key"]?.[0],
    json: values.json === true,
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      checkpoint: { type: "string", multiple: true },
      "public-key": { type: "string", multiple: true },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}

function reason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EISDIR") return "it is a directory";
  return error instanceof Error ? error.message : String(error);
}

function readJson(flag: string, file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new UsageError(`${flag}: cannot read ${file}: ${reason(error)}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`${flag}: ${file} is not JSON`);
  }
}

/** A checkpoint as kept: one alone, an answer or notice's body holding one, or the list (its newest). */
export function readCheckpoint(file: string): Checkpoint {
  const value = readJson("--checkpoint", file) as Record<string, unknown> | null;
  let found: unknown = value;
  if (value && typeof value === "object" && "checkpoint" in value) found = value.checkpoint;
  else if (value && typeof value === "object" && Array.isArray(value.items)) {
    if (value.items.length === 0)
      throw new UsageError(`--checkpoint: ${file} lists no checkpoints`);
    found = value.items[0];
  }
  if (!isCheckpoint(found))
    throw new UsageError(
      `--checkpoint: ${file} holds no checkpoint (seq, hash, at, keyId and signature): give one, an answer or a notice's body with one, or the answer of GET /admin/audit/checkpoints`,
    );
  const { seq, hash, at, keyId, signature } = found;
  return { seq, hash, at, keyId, signature };
}

/** The public key as GET /admin/audit/public-key answers it: {algorithm, keyId, jwk}. */
export function readPublicKey(file: string): PublicKey {
  const value = readJson("--public-key", file) as Record<string, unknown> | null;
  if (value && typeof value === "object" && "algorithm" in value && value.algorithm !== "Ed25519")
    throw new UsageError(
      `--public-key: ${file} is a key for ${String(value.algorithm)}, and checkpoints are signed with Ed25519`,
    );
  if (!isPublicKey(value))
    throw new UsageError(
      `--public-key: ${file} holds no Ed25519 public key (keyId and jwk): give the answer of GET /admin/audit/public-key`,
    );
  return { keyId: value.keyId, jwk: { kty: "OKP", crv: "Ed25519", x: value.jwk.x } };
}

/** The export's lines, read as they come, so a large one is never held whole. */
async function exportLines(file: string, stdin: Readable): Promise<AsyncIterable<string>> {
  let input: Readable = stdin;
  if (file !== "-") {
    try {
      input = (await open(file)).createReadStream({ encoding: "utf8" });
    } catch (error) {
      throw new UsageError(`cannot read the export ${file}: ${reason(error)}`);
    }
  }
  return createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
}

/** The human report: what was checked, the warnings, and the verdict. */
export function report(
  file: string,
  result: ExportVerification,
  kept: Checkpoint | undefined,
): string[] {
  const field = (label: string, text: string) => `  ${`${label}:`.padEnd(18)}${text}`;
  const lines = [`Audit export ${file === "-" ? "(standard input)" : file}`];
  const start =
    result.from.seq === 0 ? "from the start of the chain" : `after row ${result.from.seq}`;
  lines.push(
    field(
      "rows",
      result.rows === 0
        ? `none checked (${start})`
        : `${result.from.seq + 1} to ${result.head.seq}, ${result.rows} checked (${start})`,
    ),
  );
  if (result.priorRows > 0)
    lines.push(
      field(
        "before the chain",
        `${result.priorRows} ${result.priorRows === 1 ? "row" : "rows"}, held to the genesis row's digest`,
      ),
    );
  const latest = result.checkpoints.latest;
  lines.push(
    field(
      "checkpoints",
      `${result.checkpoints.checked} in the export checked${latest ? `, the latest of row ${latest.seq}, signed ${latest.at}` : ""}`,
    ),
  );
  const key = result.publicKey;
  lines.push(
    field(
      "public key",
      key
        ? `${key.keyId} (${key.source === "given" ? "--public-key" : "the export's own"})`
        : "none",
    ),
  );
  const trusted = result.trusted;
  lines.push(
    field(
      "kept elsewhere",
      trusted
        ? `the checkpoint of row ${trusted.seq}, signed ${trusted.at}: the export holds it`
        : kept
          ? `the checkpoint of row ${kept.seq}, signed ${kept.at}: not held`
          : "none given (--checkpoint)",
    ),
  );
  for (const warning of result.warnings) lines.push(`  warning: ${warning}`);
  const broken = result.broken;
  if (!broken) lines.push("The trail verifies.");
  else if (broken.seq === 0) lines.push(`BROKEN (${broken.reason}): ${broken.message}`);
  else lines.push(`BROKEN at row ${broken.seq} (${broken.reason}): ${broken.message}`);
  return lines;
}

export interface VerifyIo {
  out?: (line: string) => void;
  err?: (line: string) => void;
  /** Where `-` reads the export (default process.stdin). */
  stdin?: Readable;
}

/** Runs the verifier; resolves to the exit code. */
export async function main(argv: readonly string[], io: VerifyIo = {}): Promise<number> {
  const out = io.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const err = io.err ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (argv.includes("--help") || argv.includes("-h")) {
    out(usage);
    return 0;
  }
  try {
    const options = parseOptions(argv);
    const checkpoint = options.checkpoint ? readCheckpoint(options.checkpoint) : undefined;
    const publicKey = options.publicKey ? readPublicKey(options.publicKey) : undefined;
    const lines = await exportLines(options.file, io.stdin ?? process.stdin);
    let result: ExportVerification;
    try {
      result = await verifyExport(lines, { checkpoint, publicKey });
    } catch (error) {
      // The file failed while it was read (a directory, a disk error): not the trail's fault.
      if (typeof (error as NodeJS.ErrnoException).code !== "string") throw error;
      throw new UsageError(`cannot read the export ${options.file}: ${reason(error)}`);
    }
    if (options.json) out(JSON.stringify(result, null, 2));
    else for (const line of report(options.file, result, checkpoint)) out(line);
    return result.ok ? 0 : 1;
  } catch (error) {
    if (error instanceof UsageError) {
      err(`audit-verify: ${error.message}`);
      return 2;
    }
    throw error;
  }
}

if (import.meta.main) {
  const code = await main(process.argv.slice(2));
  // Exit once stdout has drained: `--json | …` otherwise loses what is still buffered for a pipe.
  process.stdout.write("", () => process.exit(code));
}
