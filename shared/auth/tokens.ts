/**
 * Secrets Airlock issues: 256 random bits, base64url, behind a prefix that
 * says what the secret is (so a leaked one is recognised by secret
 * scanners and people alike). Only their SHA-256 is stored.
 */

/** Personal access tokens of principals (the admin API). */
export const PERSONAL_TOKEN_PREFIX = "airlock_pat_";
/** Client API keys (the inference routes). */
export const API_KEY_PREFIX = "ak_";

/** A new secret: the prefix and 256 random bits, base64url. */
export function newSecret(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return `${prefix}${btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}`;
}

/** A short random id with a type prefix (`prn_…`, `tok_…`): 80 bits, lower-case base32. */
export function newId(prefix: string): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let id = "";
  for (const byte of bytes) id += alphabet[byte & 31];
  return `${prefix}${id}`;
}

/** The characters of a secret shown in lists, to recognise it: the prefix and four more. */
export function secretHint(secret: string, prefix: string): string {
  return secret.slice(0, prefix.length + 4);
}
