/**
 * Signed checkpoints of the audit chain: its head (sequence number and
 * hash) at a time, signed with Ed25519 under the AUDIT_SIGNING_KEY secret.
 * Anyone holding a checkpoint and the public key can check that a trail
 * reaches that row with that hash, without trusting the server: a trail
 * rewritten from some row to its end cannot match a checkpoint taken after
 * that row. WebCrypto's Ed25519 (workerd and Node alike).
 */

export interface CheckpointBody {
  seq: number;
  hash: string;
  /** When it was taken (ISO 8601). */
  at: string;
  /** Which key signed it: the first 16 hex digits of SHA-256 of the raw public key. */
  keyId: string;
}

export interface Checkpoint extends CheckpointBody {
  /** Ed25519 over `checkpointMessage(body)`, base64url. */
  signature: string;
}

/** The public key as published: a JWK (OKP, Ed25519) and its id. */
export interface PublicKey {
  keyId: string;
  jwk: { kty: "OKP"; crv: "Ed25519"; x: string };
}

const encoder = new TextEncoder();
const ALGORITHM = { name: "Ed25519" } as const;

/** The exact bytes signed: a versioned, line-per-field text, so no JSON spelling matters. */
export function checkpointMessage(body: CheckpointBody): string {
  return `airlock-audit-checkpoint/v1\n${body.seq}\n${body.hash}\n${body.at}\n${body.keyId}`;
}

function base64urlToBytes(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replaceAll("-", "+").replaceAll("_", "/");
  const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
}

function bytesToBase64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Lowercase hex (local, so Node loads this file as is). */
function hex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

async function keyIdOf(x: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", base64urlToBytes(x));
  return hex(new Uint8Array(digest)).slice(0, 16);
}

export interface SigningKey {
  privateKey: CryptoKey;
  publicKey: PublicKey;
}

/**
 * The signing key from its secret: an Ed25519 private key as PKCS#8 DER in
 * base64 (`npm start` and the tests make one; `openssl genpkey -algorithm
 * ed25519 -outform DER | base64 -w0` in production).
 */
export async function importSigningKey(secret: string | undefined): Promise<SigningKey> {
  if (!secret) throw new Error("AUDIT_SIGNING_KEY is not set");
  let der: Uint8Array<ArrayBuffer>;
  try {
    der = base64urlToBytes(secret.trim());
  } catch {
    throw new Error("AUDIT_SIGNING_KEY is not base64");
  }
  let extractable: CryptoKey;
  try {
    extractable = await crypto.subtle.importKey("pkcs8", der, ALGORITHM, true, ["sign"]);
  } catch {
    throw new Error("AUDIT_SIGNING_KEY is not an Ed25519 private key in PKCS#8 form");
  }
  const jwk = (await crypto.subtle.exportKey("jwk", extractable)) as JsonWebKey;
  if (!jwk.x || !jwk.d) throw new Error("AUDIT_SIGNING_KEY has no public part");
  const privateKey = await crypto.subtle.importKey("pkcs8", der, ALGORITHM, false, ["sign"]);
  return {
    privateKey,
    publicKey: { keyId: await keyIdOf(jwk.x), jwk: { kty: "OKP", crv: "Ed25519", x: jwk.x } },
  };
}

export async function signCheckpoint(
  key: SigningKey,
  head: { seq: number; hash: string },
  at: Date,
): Promise<Checkpoint> {
  const body: CheckpointBody = {
    seq: head.seq,
    hash: head.hash,
    at: at.toISOString(),
    keyId: key.publicKey.keyId,
  };
  const signature = await crypto.subtle.sign(
    ALGORITHM,
    key.privateKey,
    encoder.encode(checkpointMessage(body)),
  );
  return { ...body, signature: bytesToBase64url(new Uint8Array(signature)) };
}

/** Whether a checkpoint was signed by this public key, as it reads. */
export async function verifyCheckpoint(
  checkpoint: Checkpoint,
  publicKey: PublicKey,
): Promise<boolean> {
  if (checkpoint.keyId !== publicKey.keyId) return false;
  if ((await keyIdOf(publicKey.jwk.x)) !== publicKey.keyId) return false;
  let signature: Uint8Array<ArrayBuffer>;
  try {
    signature = base64urlToBytes(checkpoint.signature);
  } catch {
    return false;
  }
  const key = await crypto.subtle.importKey("jwk", publicKey.jwk, ALGORITHM, false, ["verify"]);
  return crypto.subtle.verify(
    ALGORITHM,
    key,
    signature,
    encoder.encode(
      checkpointMessage({
        seq: checkpoint.seq,
        hash: checkpoint.hash,
        at: checkpoint.at,
        keyId: checkpoint.keyId,
      }),
    ),
  );
}
