/**
 * Secrets at rest: AES-256-GCM boxes bound to a context, checked against a
 * box sealed independently with Node's crypto module, and URL masking.
 */
import { describe, expect, it } from "vitest";
import { decryptSecret, encryptSecret, maskUrl, parseEncryptionKey } from "../../shared/crypto-box";

// Key bytes 0..31; the box below was sealed once with node:crypto
// (createCipheriv("aes-256-gcm"), IV a0..ab, AAD "destination:7:url") and hard-coded.
const KEY_BASE64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const VECTOR_PLAINTEXT = "https://hooks.slack.com/services/T000/B000/Xy9Z";
const VECTOR_CONTEXT = "destination:7:url";
const VECTOR_BOX =
  "v1.oKGio6Slpqeoqaqr.jmwIXTbxLZAKCui4dFSzshHPMj7x2C9D72tU8BbIEHL9InfPnw0RDW-sK5BwQ9kOXST0qtMuY8BMe9oAX8M5";

function otherKeyBase64(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
}

/** Flips one bit of the character at `index` within base64url text, keeping it base64url. */
function alterPart(box: string, part: 1 | 2, index: number): string {
  const parts = box.split(".");
  const text = parts[part] ?? "";
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const at = alphabet.indexOf(text[index] ?? "A");
  const swapped = alphabet[at ^ 1] ?? "A";
  parts[part] = text.slice(0, index) + swapped + text.slice(index + 1);
  return parts.join(".");
}

describe("parseEncryptionKey", () => {
  it("names ALERT_ENCRYPTION_KEY when the key is missing", async () => {
    await expect(parseEncryptionKey(undefined)).rejects.toThrow(/ALERT_ENCRYPTION_KEY is not set/);
    await expect(parseEncryptionKey("  ")).rejects.toThrow(/ALERT_ENCRYPTION_KEY/);
  });

  it("rejects keys that are not 32 bytes", async () => {
    await expect(parseEncryptionKey(btoa("x".repeat(16)))).rejects.toThrow(
      /ALERT_ENCRYPTION_KEY holds 16 bytes/,
    );
    await expect(parseEncryptionKey(btoa("x".repeat(33)))).rejects.toThrow(/holds 33 bytes/);
  });

  it("rejects text that is not base64", async () => {
    await expect(parseEncryptionKey("not base64 at all!")).rejects.toThrow(
      /ALERT_ENCRYPTION_KEY is not valid base64/,
    );
  });

  it("imports a non-extractable AES-GCM key", async () => {
    const key = await parseEncryptionKey(KEY_BASE64);
    expect(key.algorithm.name).toBe("AES-GCM");
    expect(key.extractable).toBe(false);
  });
});

describe("encryptSecret and decryptSecret", () => {
  it("opens a box sealed independently with the same key, IV and context", async () => {
    const key = await parseEncryptionKey(KEY_BASE64);
    expect(await decryptSecret(key, VECTOR_BOX, VECTOR_CONTEXT)).toBe(VECTOR_PLAINTEXT);
  });

  it("round-trips, with a fresh IV each time", async () => {
    const key = await parseEncryptionKey(KEY_BASE64);
    const secret = "whsec_ünïcødé 🔑";
    const a = await encryptSecret(key, secret, "destination:1:secret");
    const b = await encryptSecret(key, secret, "destination:1:secret");
    expect(a).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    expect(a).not.toBe(b);
    expect(a).not.toContain("whsec");
    expect(await decryptSecret(key, a, "destination:1:secret")).toBe(secret);
    expect(await decryptSecret(key, b, "destination:1:secret")).toBe(secret);
  });

  it("binds the context as additional data (checked with the raw cipher)", async () => {
    const key = await parseEncryptionKey(KEY_BASE64);
    const box = await encryptSecret(key, "hello", "destination:9:url");
    const [, ivText, sealedText] = box.split(".");
    const decode = (text: string) =>
      Uint8Array.from(atob(text.replaceAll("-", "+").replaceAll("_", "/")), (c) => c.charCodeAt(0));
    const plain = await crypto.subtle.decrypt(
      {
        name: "AES-GCM",
        iv: decode(ivText ?? ""),
        additionalData: new TextEncoder().encode("destination:9:url"),
      },
      key,
      decode(`${sealedText}${"=".repeat((4 - ((sealedText ?? "").length % 4)) % 4)}`),
    );
    expect(new TextDecoder().decode(plain)).toBe("hello");
  });

  it("refuses a box moved to another row or field", async () => {
    const key = await parseEncryptionKey(KEY_BASE64);
    const box = await encryptSecret(key, "https://example.com/hook", "destination:1:url");
    await expect(decryptSecret(key, box, "destination:2:url")).rejects.toThrow(/wrong context/);
    await expect(decryptSecret(key, box, "destination:1:secret")).rejects.toThrow(
      /does not decrypt/,
    );
  });

  it("refuses a box under another key", async () => {
    const key = await parseEncryptionKey(KEY_BASE64);
    const other = await parseEncryptionKey(otherKeyBase64());
    await expect(decryptSecret(other, VECTOR_BOX, VECTOR_CONTEXT)).rejects.toThrow(
      /does not decrypt/,
    );
    expect(await decryptSecret(key, VECTOR_BOX, VECTOR_CONTEXT)).toBe(VECTOR_PLAINTEXT);
  });

  it("detects tampering with the ciphertext, the tag or the IV", async () => {
    const key = await parseEncryptionKey(KEY_BASE64);
    const sealed = VECTOR_BOX.split(".")[2] ?? "";
    for (const altered of [
      alterPart(VECTOR_BOX, 2, 0), // ciphertext
      alterPart(VECTOR_BOX, 2, sealed.length - 3), // tag
      alterPart(VECTOR_BOX, 1, 3), // IV
    ]) {
      expect(altered).not.toBe(VECTOR_BOX);
      await expect(decryptSecret(key, altered, VECTOR_CONTEXT)).rejects.toThrow(/does not decrypt/);
    }
    const truncated = VECTOR_BOX.slice(0, -4);
    await expect(decryptSecret(key, truncated, VECTOR_CONTEXT)).rejects.toThrow();
  });

  it("rejects malformed boxes and an empty context", async () => {
    const key = await parseEncryptionKey(KEY_BASE64);
    for (const box of [
      "",
      "v1.abc",
      "v2.oKGio6Slpqeoqaqr.AAAA",
      "v1.oKGio6Sl.AAAAAAAAAAAAAAAAAAAAAA",
      "v1.***.AAAA",
    ]) {
      await expect(decryptSecret(key, box, VECTOR_CONTEXT)).rejects.toThrow(
        /not an encrypted secret/,
      );
    }
    await expect(encryptSecret(key, "x", "")).rejects.toThrow(/context is required/);
    await expect(decryptSecret(key, VECTOR_BOX, "")).rejects.toThrow(/context is required/);
  });
});

describe("maskUrl", () => {
  it("shows the scheme, host and last 4 characters of the path only", () => {
    expect(maskUrl("https://hooks.slack.com/services/T000/B000/Xy9Z")).toBe(
      "https://hooks.slack.com/…/Xy9Z",
    );
  });

  it("never shows credentials, query or fragment", () => {
    const masked = maskUrl(
      "https://user:pa55@example.com:8443/hooks/abcdefghijkl?token=s3cret#frag",
    );
    expect(masked).toBe("https://example.com:8443/…/ijkl");
    for (const hidden of ["user", "pa55", "token", "s3cret", "frag", "hooks"]) {
      expect(masked).not.toContain(hidden);
    }
  });

  it("ignores a trailing slash", () => {
    expect(maskUrl("https://example.com/hooks/abcdefgh1234/")).toBe("https://example.com/…/1234");
  });

  it("hides a short path entirely", () => {
    expect(maskUrl("https://example.com/abc")).toBe("https://example.com/…");
    expect(maskUrl("https://example.com/")).toBe("https://example.com/…");
  });

  it("shows nothing of text that is not a URL", () => {
    expect(maskUrl("hooks.slack.com/services/T000/B000/secret")).toBe("…");
  });
});
