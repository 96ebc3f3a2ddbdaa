import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ChainPoint,
  chainHash,
  digestOfLines,
  GENESIS_PREV_HASH,
} from "../../shared/audit/chain.ts";
import {
  type Checkpoint,
  importSigningKey,
  type PublicKey,
  type SigningKey,
  signCheckpoint,
} from "../../shared/audit/checkpoint.ts";
import {
  EXPORT_FORMAT,
  type ExportEnd,
  type ExportHeader,
  type ExportRow,
  verifyExport,
} from "../../shared/audit/export.ts";

const root = join(import.meta.dirname, "..", "..");

/** JSON with sorted keys, as Postgres's jsonb text spells a row's content. */
function canonical(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === "object")
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
      );
    return v;
  };
  return JSON.stringify(sort(value));
}

async function newKey(): Promise<SigningKey> {
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", pair.privateKey);
  return importSigningKey(Buffer.from(pkcs8).toString("base64"));
}

/** What an export holds, before it is written out: edited by the tests as an attacker would. */
interface Trail {
  from: ChainPoint;
  prior: string[];
  rows: ExportRow[];
  checkpoints: Checkpoint[];
  publicKey: PublicKey | null;
}

const at = (seq: number) => new Date(Date.UTC(2026, 11, 7, 13, seq));

function rowContent(seq: number, fields: Record<string, unknown> = {}): string {
  return canonical({
    seq,
    eventId: `evt-${seq}`,
    source: "admin",
    actor: "prn_alice",
    authMethod: "token",
    authTokenId: null,
    action: "model.update",
    targetType: "model",
    target: "models/fraud-detector",
    before: { weight: seq - 1 },
    after: { weight: seq },
    at: `${at(seq).toISOString().slice(0, -1)}000Z`,
    requestId: `req-${seq}`,
    ...fields,
  });
}

/** Recomputes the chain from row index `from` on: what someone with the database could do. */
async function rechain(rows: ExportRow[], from = 0): Promise<void> {
  for (let i = from; i < rows.length; i++) {
    const row = rows[i] as ExportRow;
    row.prevHash = i === 0 ? GENESIS_PREV_HASH : (rows[i - 1] as ExportRow).hash;
    row.hash = await chainHash(row.prevHash, row.content);
  }
}

async function buildTrail(key: SigningKey, count = 30): Promise<Trail> {
  const prior = [1, 2, 3].map((i) =>
    canonical({
      seq: null,
      eventId: `evt-prior-${i}`,
      source: "admin",
      actor: "prn_alice",
      action: "model.create",
      targetType: "model",
      target: `models/m${i}`,
      before: null,
      after: { name: `m${i}` },
      at: `2026-01-0${i}T00:00:00.000000Z`,
    }),
  );
  const rows: ExportRow[] = [];
  for (let seq = 1; seq <= count; seq++) {
    const content =
      seq === 1
        ? rowContent(1, {
            action: "audit.genesis",
            actor: "airlock",
            source: "system",
            targetType: "audit",
            target: "audit",
            before: null,
            after: { priorRows: prior.length, priorDigest: await digestOfLines(prior) },
          })
        : rowContent(seq);
    rows.push({ type: "row", seq, prevHash: "", hash: "", content });
  }
  await rechain(rows);
  const checkpoints: Checkpoint[] = [];
  for (let seq = 10; seq <= count; seq += 10)
    checkpoints.push(await signCheckpoint(key, rows[seq - 1] as ExportRow, at(seq)));
  return {
    from: { seq: 0, hash: GENESIS_PREV_HASH },
    prior,
    rows,
    checkpoints,
    publicKey: key.publicKey,
  };
}

/** The export's lines; the header's head and the end's counts follow the trail unless given. */
function lines(
  trail: Trail,
  edit: { header?: Partial<ExportHeader>; end?: Partial<ExportEnd> | null } = {},
): string[] {
  const last = trail.rows.at(-1);
  const header: ExportHeader = {
    type: "header",
    format: EXPORT_FORMAT,
    exportedAt: "2026-12-07T14:00:00.000Z",
    from: trail.from,
    head: last ? { seq: last.seq, hash: last.hash } : trail.from,
    priorRows: trail.prior.length,
    publicKey: trail.publicKey,
    ...edit.header,
  };
  const out: unknown[] = [
    header,
    ...trail.prior.map((content) => ({ type: "prior", content })),
    ...trail.rows,
    ...trail.checkpoints.map((checkpoint) => ({ type: "checkpoint", ...checkpoint })),
  ];
  if (edit.end !== null)
    out.push({
      type: "end",
      priorRows: trail.prior.length,
      rows: trail.rows.length,
      checkpoints: trail.checkpoints.length,
      ...edit.end,
    });
  return out.map((line) => JSON.stringify(line));
}

let dir: string;
let key: SigningKey;
let otherKey: SigningKey;
let trail: Trail;
let files: { publicKey: string; otherPublicKey: string; checkpoints: string; notice: string };
let counter = 0;

function write(name: string, text: string): string {
  const file = join(dir, `${++counter}-${name}`);
  writeFileSync(file, text);
  return file;
}

const writeExport = (exportLines: string[]) =>
  write("export.ndjson", `${exportLines.join("\n")}\n`);
const copy = (): Trail => structuredClone(trail);
const publicKeyAnswer = (k: SigningKey) => ({ algorithm: "Ed25519", ...k.publicKey });

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["scripts/audit-verify.ts", ...args],
      { cwd: root, encoding: "utf8", timeout: 60_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "airlock-audit-verify-"));
  key = await newKey();
  otherKey = await newKey();
  trail = await buildTrail(key);
  const newestFirst = [...trail.checkpoints].reverse();
  files = {
    publicKey: write("public-key.json", JSON.stringify(publicKeyAnswer(key))),
    otherPublicKey: write("other-public-key.json", JSON.stringify(publicKeyAnswer(otherKey))),
    // GET /admin/audit/checkpoints: newest first.
    checkpoints: write("checkpoints.json", JSON.stringify({ items: newestFirst })),
    // An audit.checkpoint notice's webhook body.
    notice: write(
      "notice.json",
      JSON.stringify({ type: "audit.checkpoint", checkpoint: newestFirst[0], rows: 10 }),
    ),
  };
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The command line for an export held to the checkpoint and public key kept elsewhere. */
function withKept(exportFile: string, checkpoint = files.checkpoints, publicKey = files.publicKey) {
  return [exportFile, "--checkpoint", checkpoint, "--public-key", publicKey];
}

describe("npm run audit:verify", () => {
  it("verifies an intact export against a checkpoint and a public key kept elsewhere", async () => {
    const result = await run(withKept(writeExport(lines(trail))));
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(
      "rows:             1 to 30, 30 checked (from the start of the chain)",
    );
    expect(result.stdout).toContain("before the chain: 3 rows");
    expect(result.stdout).toContain(
      `checkpoints:      3 in the export checked, the latest of row 30, signed ${at(30).toISOString()}`,
    );
    expect(result.stdout).toContain(`public key:       ${key.publicKey.keyId} (--public-key)`);
    expect(result.stdout).toContain(
      `kept elsewhere:   the checkpoint of row 30, signed ${at(30).toISOString()}: the export holds it`,
    );
    expect(result.stdout).not.toContain("warning:");
    expect(result.stdout.trimEnd().split("\n").at(-1)).toBe("The trail verifies.");
  });

  it("names the row whose content was edited", async () => {
    const edited = copy();
    const row = edited.rows[16] as ExportRow;
    row.content = row.content.replace('"weight":17', '"weight":1700');
    expect(row.content).toContain('"weight":1700');
    const result = await run(withKept(writeExport(lines(edited))));
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^BROKEN at row 17 \(hash\): row 17's content does not match/m);
    expect(result.stdout).toContain("rows:             1 to 16, 16 checked");
  });

  it("names a deleted row as a gap", async () => {
    const cut = copy();
    cut.rows.splice(11, 1);
    const result = await run(withKept(writeExport(lines(cut))));
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^BROKEN at row 12 \(gap\): row 12 is missing/m);
  });

  it("names the first of two swapped rows", async () => {
    // Swapped and renumbered, so that the sequence numbers still count up.
    const swapped = copy();
    const [a, b] = [swapped.rows[14] as ExportRow, swapped.rows[15] as ExportRow];
    swapped.rows[14] = { ...b, seq: 15 };
    swapped.rows[15] = { ...a, seq: 16 };
    let result = await run(withKept(writeExport(lines(swapped))));
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^BROKEN at row 15 \(prev_hash\)/m);

    // Swapped and chained again from there: the content still names its own row.
    await rechain(swapped.rows, 14);
    result = await run(withKept(writeExport(lines(swapped))));
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /^BROKEN at row 15 \(content_seq\): row 15's content is that of row 16/m,
    );
  });

  it("finds an edited row from before the chain", async () => {
    const edited = copy();
    edited.prior[1] = (edited.prior[1] as string).replace('"m2"', '"m2-renamed"');
    expect(edited.prior[1]).toContain("m2-renamed");
    const result = await run(withKept(writeExport(lines(edited))));
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^BROKEN at row 1 \(prior_rows\): .*genesis row/m);
  });

  it("finds a tail cut with its checkpoints only by the checkpoint kept elsewhere", async () => {
    const cut = copy();
    cut.rows.splice(25);
    cut.checkpoints = cut.checkpoints.filter((checkpoint) => checkpoint.seq <= 25);
    const file = writeExport(lines(cut));

    // On its own word the export is whole: header, rows, checkpoints and counts agree.
    const alone = await run([file, "--public-key", files.publicKey]);
    expect(alone.code).toBe(0);
    expect(alone.stdout).toContain("warning: no checkpoint kept elsewhere was given");

    // The checkpoint as an audit.checkpoint notice delivered it.
    const held = await run(withKept(file, files.notice));
    expect(held.code).toBe(1);
    expect(held.stdout).toContain(
      `kept elsewhere:   the checkpoint of row 30, signed ${at(30).toISOString()}: not held`,
    );
    expect(held.stdout).toContain(
      `BROKEN at row 26 (checkpoint): the export ends at row 25, before row 30 of the checkpoint signed ${at(30).toISOString()}: rows were cut`,
    );
  });

  it("finds a trail rewritten to its end by the checkpoint kept elsewhere", async () => {
    const rewritten = copy();
    const row = rewritten.rows[21] as ExportRow;
    row.content = row.content.replace('"weight":22', '"weight":0');
    await rechain(rewritten.rows, 21);
    rewritten.checkpoints = rewritten.checkpoints.filter((checkpoint) => checkpoint.seq < 22);
    const result = await run(withKept(writeExport(lines(rewritten))));
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /^BROKEN at row 30 \(checkpoint\): row 30's hash is not the one signed .*: the trail up to it was rewritten/m,
    );
    expect(result.stdout).toContain("rows:             1 to 29, 29 checked");
  });

  it("refuses a checkpoint file whose signature is forged", async () => {
    const real = trail.checkpoints.at(-1) as Checkpoint;
    const forgedBy = await signCheckpoint(otherKey, real, new Date(real.at));
    const forged = write(
      "forged.json",
      JSON.stringify({ ...real, signature: forgedBy.signature }), // the right key id, another key's signature
    );
    const result = await run(withKept(writeExport(lines(trail)), forged));
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /^BROKEN at row 30 \(checkpoint_signature\): the checkpoint of row 30 .* does not verify under public key/m,
    );
  });

  it("refuses an export that names another key than the one kept", async () => {
    const result = await run(
      withKept(writeExport(lines(trail)), files.checkpoints, files.otherPublicKey),
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /^BROKEN \(public_key\): the export says its checkpoints are signed by key/m,
    );
    expect(result.stdout).toContain(otherKey.publicKey.keyId);
  });

  it("tells a cut download from a cut trail", async () => {
    const whole = lines(trail);
    const result = await run(withKept(writeExport(whole.slice(0, 20))));
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /^BROKEN \(format\): the export has no end line: it was cut off after line 20/m,
    );

    // Cut in the middle of a line.
    const half = write(
      "half.ndjson",
      `${whole.slice(0, 12).join("\n")}\n${whole[12]?.slice(0, 40)}`,
    );
    const midLine = await run(withKept(half));
    expect(midLine.code).toBe(1);
    expect(midLine.stdout).toMatch(/^BROKEN \(format\): line 13 is not JSON/m);
  });

  it("prints the result as JSON with --json", async () => {
    const ok = await run([...withKept(writeExport(lines(trail))), "--json"]);
    expect(ok.code).toBe(0);
    const result = JSON.parse(ok.stdout);
    expect(result).toEqual({
      ok: true,
      from: { seq: 0, hash: GENESIS_PREV_HASH },
      head: { seq: 30, hash: trail.rows[29]?.hash },
      rows: 30,
      priorRows: 3,
      publicKey: { keyId: key.publicKey.keyId, source: "given" },
      checkpoints: {
        checked: 3,
        latest: { seq: 30, hash: trail.rows[29]?.hash, at: at(30).toISOString() },
      },
      trusted: {
        seq: 30,
        hash: trail.rows[29]?.hash,
        at: at(30).toISOString(),
        keyId: key.publicKey.keyId,
      },
      broken: null,
      warnings: [],
    });

    const edited = copy();
    (edited.rows[4] as ExportRow).hash = "f".repeat(64);
    const broken = await run([writeExport(lines(edited)), "--json"]);
    expect(broken.code).toBe(1);
    const failed = JSON.parse(broken.stdout);
    expect(failed.ok).toBe(false);
    expect(failed.broken).toMatchObject({ seq: 5, reason: "hash" });
    expect(failed.head).toEqual({ seq: 4, hash: trail.rows[3]?.hash });
    expect(failed.publicKey).toEqual({ keyId: key.publicKey.keyId, source: "export" });
  });

  it("reads the export from standard input with -", async () => {
    const result = await new Promise<{ code: number; stdout: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        ["scripts/audit-verify.ts", "-", "--public-key", files.publicKey],
        { cwd: root, encoding: "utf8", timeout: 60_000 },
        (error, stdout) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout }),
      );
      child.stdin?.end(`${lines(trail).join("\n")}\n`);
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("Audit export (standard input)");
    expect(result.stdout).toContain("The trail verifies.");
  });

  it("exits 2 on usage errors and files it cannot read", async () => {
    const exportFile = writeExport(lines(trail));
    const notJson = write("not-json.json", "{");
    const cases: [string[], string][] = [
      [[], "audit-verify: no export given"],
      [[exportFile, "--verbose"], "audit-verify: --verbose: unknown option"],
      [[exportFile, "--checkpoint"], "audit-verify: --checkpoint: needs a value"],
      [[exportFile, exportFile], "audit-verify: unexpected argument"],
      [[join(dir, "missing.ndjson")], "audit-verify: cannot read the export"],
      [[dir], "audit-verify: cannot read the export"],
      [
        [exportFile, "--checkpoint", join(dir, "missing.json")],
        "audit-verify: --checkpoint: cannot read",
      ],
      [[exportFile, "--checkpoint", notJson], "is not JSON"],
      [[exportFile, "--checkpoint", files.publicKey], "holds no checkpoint"],
      [[exportFile, "--public-key", files.checkpoints], "holds no Ed25519 public key"],
    ];
    for (const [args, message] of cases) {
      const result = await run(args);
      expect({ args, code: result.code }).toEqual({ args, code: 2 });
      expect(result.stderr).toContain(message);
      expect(result.stdout).toBe("");
    }
    const help = await run(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: npm run audit:verify -- FILE");
  });
});

describe("verifyExport", () => {
  async function* streamed(exportLines: string[]): AsyncGenerator<string> {
    for (const line of exportLines) yield line;
  }

  it("verifies lines as they stream in, and says what it took on the export's word", async () => {
    const result = await verifyExport(streamed([...lines(trail), "", ""]), {});
    expect(result.ok).toBe(true);
    expect(result.rows).toBe(30);
    expect(result.checkpoints.checked).toBe(3);
    expect(result.publicKey).toEqual({ keyId: key.publicKey.keyId, source: "export" });
    expect(result.warnings).toEqual([
      expect.stringContaining("came from the export itself: compare it with one kept elsewhere"),
      expect.stringContaining("no checkpoint kept elsewhere was given"),
    ]);
  });

  it("holds the export's checkpoints to its rows", async () => {
    const altered = copy();
    // Signed with the right key, for another hash than row 20's.
    altered.checkpoints[1] = await signCheckpoint(key, { seq: 20, hash: "a".repeat(64) }, at(20));
    const result = await verifyExport(lines(altered), { publicKey: key.publicKey });
    expect(result.broken).toMatchObject({ seq: 20, reason: "checkpoint" });
    expect(result.broken?.message).toContain(
      "row 20's hash is not the one signed in the export's checkpoint",
    );

    // And their signatures to the key.
    const forged = copy();
    forged.checkpoints[0] = { ...(forged.checkpoints[0] as Checkpoint), at: at(11).toISOString() };
    const unsigned = await verifyExport(lines(forged), { publicKey: key.publicKey });
    expect(unsigned.broken).toMatchObject({ seq: 10, reason: "checkpoint_signature" });

    // Without any key they are held to the rows, their signatures unchecked.
    const keyless = await verifyExport(lines({ ...forged, publicKey: null }), {});
    expect(keyless.ok).toBe(true);
    expect(keyless.warnings).toContainEqual(
      expect.stringContaining("the signatures of 3 checkpoints in the export were not checked"),
    );
  });

  it("checks an export from a later row, and cannot check a checkpoint before it", async () => {
    const later = copy();
    const start = later.rows[9] as ExportRow;
    later.from = { seq: 10, hash: start.hash };
    later.prior = [];
    later.rows = later.rows.slice(10);
    const ok = await verifyExport(lines(later), {
      publicKey: key.publicKey,
      checkpoint: trail.checkpoints[2],
    });
    expect(ok.ok).toBe(true);
    expect(ok.rows).toBe(20);
    expect(ok.checkpoints.checked).toBe(2);
    expect(ok.trusted?.seq).toBe(30);
    expect(ok.warnings).toEqual([
      expect.stringContaining(
        "1 checkpoint of rows up to row 10, where the export starts, could not be checked",
      ),
    ]);

    const before = await verifyExport(lines(later), {
      publicKey: key.publicKey,
      checkpoint: trail.checkpoints[0],
    });
    expect(before.broken).toMatchObject({ seq: 10, reason: "checkpoint" });
    expect(before.broken?.message).toContain("the export starts after row 10");
  });

  it("reports lines out of order, miscounted, or a head the rows do not reach", async () => {
    const whole = lines(trail);
    const moved = [...whole];
    moved.splice(35, 0, whole[10] as string); // a row after the checkpoints
    expect((await verifyExport(moved, {})).broken).toMatchObject({
      seq: 0,
      reason: "format",
      message: expect.stringContaining("line 36 is a row line after the checkpoint lines"),
    });

    const miscounted = await verifyExport(lines(trail, { end: { rows: 31 } }), {});
    expect(miscounted.broken).toMatchObject({ seq: 0, reason: "format" });
    expect(miscounted.broken?.message).toContain(
      "the end line counts 3 rows from before the chain, 31 rows",
    );

    const short = copy();
    short.rows.splice(28);
    short.checkpoints.splice(2);
    const head = { seq: 30, hash: trail.rows[29]?.hash as string };
    const tail = await verifyExport(lines(short, { header: { head } }), {});
    expect(tail.broken).toMatchObject({ seq: 29, reason: "tail" });

    const notAnExport = await verifyExport(['{"hello":"world"}'], {});
    expect(notAnExport.broken).toMatchObject({ seq: 0, reason: "format" });
    expect((await verifyExport([], {})).broken?.message).toBe("the export is empty");
  });
});
