/**
 * Cloudflare Access assertions: what is accepted, what is refused and why,
 * and how often the team's keys are fetched. Tokens are signed here with
 * private keys from test/global-setup.ts, whose local peer serves the public
 * half of one of them as an Access team's certs endpoint. Times are passed
 * as `now`, never waited for.
 */
import { env } from "cloudflare:workers";
import { base64url, importJWK, type JWTPayload, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import {
  type AccessConfig,
  AccessJwtError,
  accessConfigFromEnv,
  verifyAccessJwt,
} from "../../shared/auth/access-jwt";

const bindings = env as unknown as Record<string, string>;
const teamDomain = bindings.TEST_ACCESS_TEAM_DOMAIN ?? "";
const servedJwk = JSON.parse(bindings.TEST_ACCESS_PRIVATE_JWK ?? "{}") as Record<string, string>;
const otherJwk = JSON.parse(bindings.TEST_ACCESS_OTHER_PRIVATE_JWK ?? "{}") as Record<
  string,
  string
>;
const closedBase = bindings.TEST_ACCESS_CLOSED_BASE ?? "";

const AUD = "5f0b6f1d6a3c4e0b9a7d2c1e8f4a6b3d";
const config: AccessConfig = { teamDomain, audience: ["another-app", AUD] };
/** The moment every token is checked at; tokens are dated relative to it. */
const NOW = new Date("2026-11-20T12:00:00Z");
const nowSeconds = Math.floor(NOW.getTime() / 1000);

const servedKey = importJWK(servedJwk, "RS256");
const otherKey = importJWK(otherJwk, "RS256");

interface TokenOptions {
  claims?: JWTPayload;
  key?: Awaited<typeof servedKey>;
  kid?: string;
  /** Seconds relative to NOW. */
  issuedAt?: number;
  expiresIn?: number;
}

/** A token as Access would issue it for a person, with changes. */
async function accessToken(options: TokenOptions = {}): Promise<string> {
  const issuedAt = nowSeconds + (options.issuedAt ?? -10);
  return new SignJWT({
    aud: [AUD],
    email: "alice@example.com",
    exp: nowSeconds + (options.expiresIn ?? 3600),
    iat: issuedAt,
    nbf: issuedAt,
    iss: teamDomain,
    type: "app",
    identity_nonce: "n0nce",
    sub: "7335d417-61da-459d-899c-0a01c76a2f94",
    country: "GB",
    ...options.claims,
  })
    .setProtectedHeader({ alg: "RS256", kid: options.kid ?? servedJwk.kid, typ: "JWT" })
    .sign(options.key ?? (await servedKey));
}

function encodeJson(value: unknown): string {
  return base64url.encode(JSON.stringify(value));
}

/** The reason a verification was refused with, failing the test if it was accepted. */
async function refusal(promise: Promise<unknown>): Promise<AccessJwtError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!(error instanceof AccessJwtError))
    throw new Error(`expected an AccessJwtError, got ${error}`);
  return error;
}

async function peerCount(counter: string): Promise<number> {
  const response = await fetch(`${teamDomain}/count?counter=${counter}`);
  const body = (await response.json()) as { count: number };
  return body.count;
}

describe("verifyAccessJwt accepts", () => {
  it("returns a person with the email of a person's token", async () => {
    const identity = await verifyAccessJwt(await accessToken(), config, NOW);
    expect(identity).toEqual({
      kind: "person",
      email: "alice@example.com",
      subject: "7335d417-61da-459d-899c-0a01c76a2f94",
    });
  });

  it("lower-cases and trims the email", async () => {
    const token = await accessToken({ claims: { email: "  Alice@Example.COM " } });
    const identity = await verifyAccessJwt(token, config, NOW);
    expect(identity).toMatchObject({ kind: "person", email: "alice@example.com" });
  });

  it("returns a service for a service token (common_name, no email)", async () => {
    const token = await accessToken({
      claims: { email: undefined, common_name: "8a3f2c.access", sub: "" },
    });
    const identity = await verifyAccessJwt(token, config, NOW);
    expect(identity).toEqual({ kind: "service", commonName: "8a3f2c.access", subject: "" });
  });

  it("accepts a token expired less than the clock skew ago", async () => {
    const token = await accessToken({ issuedAt: -600, expiresIn: -30 });
    const identity = await verifyAccessJwt(token, config, NOW);
    expect(identity.kind).toBe("person");
  });

  it("accepts a token whose not-before is within the clock skew ahead", async () => {
    const token = await accessToken({ issuedAt: 30 });
    await expect(verifyAccessJwt(token, config, NOW)).resolves.toMatchObject({ kind: "person" });
  });
});

describe("verifyAccessJwt refuses", () => {
  it("a token expired longer than the clock skew ago, as expired", async () => {
    const token = await accessToken({ issuedAt: -600, expiresIn: -61 });
    const error = await refusal(verifyAccessJwt(token, config, NOW));
    expect(error.reason).toBe("expired");
    expect(error.message).toContain(new Date((nowSeconds - 61) * 1000).toISOString());
  });

  it("an expired token under a tighter configured skew", async () => {
    const token = await accessToken({ issuedAt: -600, expiresIn: -30 });
    const error = await refusal(verifyAccessJwt(token, { ...config, clockSkewSeconds: 10 }, NOW));
    expect(error.reason).toBe("expired");
  });

  it("a token not valid until after the clock skew, as not_yet_valid", async () => {
    const token = await accessToken({ issuedAt: 120 });
    const error = await refusal(verifyAccessJwt(token, config, NOW));
    expect(error.reason).toBe("not_yet_valid");
  });

  it("a token without an expiry, as malformed", async () => {
    const token = await new SignJWT({ email: "alice@example.com" })
      .setProtectedHeader({ alg: "RS256", kid: servedJwk.kid })
      .setIssuer(teamDomain)
      .setAudience(AUD)
      .sign(await servedKey);
    const error = await refusal(verifyAccessJwt(token, config, NOW));
    expect(error.reason).toBe("malformed");
    expect(error.message).toContain('"exp"');
  });

  it("a token for another application, as audience", async () => {
    const error = await refusal(
      verifyAccessJwt(await accessToken(), { ...config, audience: ["mine"] }, NOW),
    );
    expect(error.reason).toBe("audience");
  });

  it("a token from another team, as issuer", async () => {
    const token = await accessToken({
      claims: { iss: "https://someone-else.cloudflareaccess.com" },
    });
    const error = await refusal(verifyAccessJwt(token, config, NOW));
    expect(error.reason).toBe("issuer");
    expect(error.message).toContain("someone-else");
  });

  it("a token signed by a key the team does not publish, as signature", async () => {
    const token = await accessToken({ key: await otherKey, kid: otherJwk.kid });
    const error = await refusal(verifyAccessJwt(token, config, NOW));
    expect(error.reason).toBe("signature");
  });

  it("a token signed by another key under the published key's kid, as signature", async () => {
    const token = await accessToken({ key: await otherKey });
    const error = await refusal(verifyAccessJwt(token, config, NOW));
    expect(error.reason).toBe("signature");
  });

  it("a token whose payload was altered, as signature", async () => {
    const [header, payload, signature] = (await accessToken()).split(".");
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload ?? "")));
    const tampered = `${header}.${encodeJson({ ...claims, email: "mallory@example.com" })}.${signature}`;
    const error = await refusal(verifyAccessJwt(tampered, config, NOW));
    expect(error.reason).toBe("signature");
  });

  it("an unsigned token (alg none), as algorithm", async () => {
    const [, payload] = (await accessToken()).split(".");
    const unsigned = `${encodeJson({ alg: "none", typ: "JWT" })}.${payload}.`;
    const error = await refusal(verifyAccessJwt(unsigned, config, NOW));
    expect(error.reason).toBe("algorithm");
    expect(error.message).toContain('"none"');
  });

  it("a token signed with a shared secret (HS256), as algorithm", async () => {
    const token = await new SignJWT({ email: "alice@example.com" })
      .setProtectedHeader({ alg: "HS256", kid: servedJwk.kid })
      .setIssuer(teamDomain)
      .setAudience(AUD)
      .setExpirationTime(nowSeconds + 3600)
      .sign(new TextEncoder().encode("a secret anyone could have guessed"));
    const error = await refusal(verifyAccessJwt(token, config, NOW));
    expect(error.reason).toBe("algorithm");
  });

  it("a token naming neither a person nor a service, as no_identity", async () => {
    const token = await accessToken({ claims: { email: undefined } });
    const error = await refusal(verifyAccessJwt(token, config, NOW));
    expect(error.reason).toBe("no_identity");
  });

  it.each([
    ["a garbage string", "not a token"],
    ["an empty string", ""],
    ["three segments of nonsense", "a.b.c"],
  ])("%s, as malformed", async (_name, token) => {
    const error = await refusal(verifyAccessJwt(token, config, NOW));
    expect(error.reason).toBe("malformed");
  });
});

describe("the team's keys", () => {
  it("are fetched once across several verifications", async () => {
    const counter = crypto.randomUUID();
    const counted = {
      ...config,
      certsUrl: `${teamDomain}/cdn-cgi/access/certs?counter=${counter}`,
    };
    expect(await peerCount(counter)).toBe(0);
    for (const email of ["a@example.com", "b@example.com", "c@example.com"]) {
      const identity = await verifyAccessJwt(
        await accessToken({ claims: { email } }),
        counted,
        NOW,
      );
      expect(identity).toMatchObject({ email });
    }
    expect(await peerCount(counter)).toBe(1);
  });

  it("unreachable (nothing listening), as keys_unavailable", async () => {
    const unreachable = { ...config, certsUrl: `${closedBase}/cdn-cgi/access/certs` };
    const error = await refusal(verifyAccessJwt(await accessToken(), unreachable, NOW));
    expect(error.reason).toBe("keys_unavailable");
    expect(error.message).toContain(closedBase);
  });

  it("answering an error status, as keys_unavailable", async () => {
    const down = { ...config, certsUrl: `${teamDomain}/down/cdn-cgi/access/certs` };
    const error = await refusal(verifyAccessJwt(await accessToken(), down, NOW));
    expect(error.reason).toBe("keys_unavailable");
  });
});

describe("accessConfigFromEnv", () => {
  const allowed = "127.0.0.1,localhost";

  it("returns undefined when Access is not configured", () => {
    expect(accessConfigFromEnv({})).toBeUndefined();
    expect(accessConfigFromEnv({ ACCESS_TEAM_DOMAIN: " ", ACCESS_AUD: "" })).toBeUndefined();
  });

  it("reads the team domain and comma-separated AUD tags", () => {
    expect(
      accessConfigFromEnv({
        ACCESS_TEAM_DOMAIN: "https://acme.cloudflareaccess.com/",
        ACCESS_AUD: " aud-one, aud-two ,,",
      }),
    ).toEqual({
      teamDomain: "https://acme.cloudflareaccess.com",
      audience: ["aud-one", "aud-two"],
    });
  });

  it("keeps an explicit certs URL on an allowlisted host", () => {
    const config = accessConfigFromEnv({
      ACCESS_TEAM_DOMAIN: "https://acme.cloudflareaccess.com",
      ACCESS_AUD: AUD,
      ACCESS_CERTS_URL: `${teamDomain}/cdn-cgi/access/certs`,
      UPSTREAM_ALLOWED_HOSTS: allowed,
    });
    expect(config?.certsUrl).toBe(`${teamDomain}/cdn-cgi/access/certs`);
  });

  it("refuses an http team domain that is not on UPSTREAM_ALLOWED_HOSTS", () => {
    expect(() =>
      accessConfigFromEnv({
        ACCESS_TEAM_DOMAIN: "http://acme.cloudflareaccess.com",
        ACCESS_AUD: AUD,
      }),
    ).toThrow(/ACCESS_TEAM_DOMAIN.*UPSTREAM_ALLOWED_HOSTS/);
  });

  it("refuses a certs URL on a private address that is not allowlisted", () => {
    expect(() =>
      accessConfigFromEnv({
        ACCESS_TEAM_DOMAIN: "https://acme.cloudflareaccess.com",
        ACCESS_AUD: AUD,
        ACCESS_CERTS_URL: "https://10.0.0.5/cdn-cgi/access/certs",
        UPSTREAM_ALLOWED_HOSTS: allowed,
      }),
    ).toThrow(/ACCESS_CERTS_URL.*private address/);
  });

  it("refuses a half configuration, naming what is missing", () => {
    expect(() =>
      accessConfigFromEnv({ ACCESS_TEAM_DOMAIN: "https://acme.cloudflareaccess.com" }),
    ).toThrow(/ACCESS_AUD/);
    expect(() => accessConfigFromEnv({ ACCESS_AUD: AUD })).toThrow(/ACCESS_TEAM_DOMAIN/);
  });

  it("refuses a team domain with a path", () => {
    expect(() =>
      accessConfigFromEnv({
        ACCESS_TEAM_DOMAIN: "https://acme.cloudflareaccess.com/login",
        ACCESS_AUD: AUD,
      }),
    ).toThrow(/origin/);
  });
});
