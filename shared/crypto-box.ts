/**
 * Secrets at rest (webhook URLs, signing secrets): AES-256-GCM under a key
 * held as the Wrangler secret ALERT_ENCRYPTION_KEY. Each box binds a context
 * (e.g. the destination id and the field name) as additional data, so a box
 * copied to another row or field does not decrypt.
 */

export const ENCRYPTION_KEY_VARIABLE = "ALERT_ENCRYPTION_KEY";
const BOX_VERSION = "v1";
const IV_BYTES = 12;
const KEY_BYTES = 32;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** Imports the base64 key (32 bytes, e.g. `openssl rand -base64 32`). */
export async function parseEncryptionKey(base64: string | undefined): Promise<CryptoKey> {
  if (!base64?.trim()) {
    throw new Error(
      `${ENCRYPTION_KEY_VARIABLE} is not set: it must hold 32 random bytes in base64`,
    );
  }
  let raw: Uint8Array;
  try {
    raw = fromBase64(base64.trim().replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    throw new Error(`${ENCRYPTION_KEY_VARIABLE} is not valid base64: it must hold 32 random bytes`);
  }
  if (raw.length !== KEY_BYTES) {
    throw new Error(
      `${ENCRYPTION_KEY_VARIABLE} holds ${raw.length} bytes: it must hold 32 random bytes in base64`,
    );
  }
  return crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

/** `v1.<iv>.<ciphertext and tag>`, both base64url; a fresh random IV each time. */
export async function encryptSecret(
  key: CryptoKey,
  plaintext: string,
  context: string,
): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: contextBytes(context) },
    key,
    encoder.encode(plaintext),
  );
  return `${BOX_VERSION}.${toBase64Url(iv)}.${toBase64Url(new Uint8Array(sealed))}`;
}

/** Throws when the box is malformed, tampered with, or sealed for another context or key. */
export async function decryptSecret(key: CryptoKey, box: string, context: string): Promise<string> {
  const parts = box.split(".");
  const [version, ivText, sealedText] = parts;
  if (parts.length !== 3 || version !== BOX_VERSION || !ivText || !sealedText) {
    throw new Error("not an encrypted secret (expected v1.<iv>.<ciphertext>)");
  }
  let iv: Uint8Array;
  let sealed: Uint8Array;
  try {
    iv = fromBase64Url(ivText);
    sealed = fromBase64Url(sealedText);
  } catch {
    throw new Error("not an encrypted secret (bad base64url)");
  }
  if (iv.length !== IV_BYTES) throw new Error("not an encrypted secret (bad IV length)");
  const additionalData = contextBytes(context);
  let plain: ArrayBuffer;
  try {
    plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData }, key, sealed);
  } catch {
    throw new Error("the secret does not decrypt: wrong key, wrong context, or altered");
  }
  return decoder.decode(plain);
}

/** Paths shorter than this would give away too much of themselves in the last 4 characters. */
const MASK_MIN_PATH = 12;

/**
 * A URL that is safe to show: scheme, host and the last 4 characters of the
 * path (`https://hooks.slack.com/…/Xy9Z`). Credentials, query and fragment are
 * never shown, and a path too short to keep most of it hidden shows nothing.
 */
export function maskUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "…";
  }
  const path = parsed.pathname.replace(/\/+$/, "");
  const origin = `${parsed.protocol}//${parsed.host}`;
  if (path.length < MASK_MIN_PATH) return `${origin}/…`;
  return `${origin}/…/${path.slice(-4)}`;
}

function contextBytes(context: string): Uint8Array {
  // An empty context would bind nothing: every box could then move anywhere.
  if (!context) throw new Error("an encryption context is required");
  return encoder.encode(context);
}

function toBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function fromBase64Url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]+$/.test(text)) throw new Error("bad base64url");
  return fromBase64(text.replaceAll("-", "+").replaceAll("_", "/"));
}

function fromBase64(text: string): Uint8Array {
  const padded = text.padEnd(Math.ceil(text.length / 4) * 4, "=");
  const binary = atob(padded);
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}
