/**
 * Cloudflare Access assertions: the `Cf-Access-Jwt-Assertion` header that
 * Access adds to every request it lets through to the admin API. This module
 * only answers "who signed in"; what that person or service may do is decided
 * elsewhere.
 *
 * A token is accepted when
 * - it is signed with RS256 (what Access signs with) by a key the team
 *   publishes at `<team domain>/cdn-cgi/access/certs`; `none`, HS* and every
 *   other algorithm are refused before any key is looked up;
 * - `iss` is the team domain and `aud` holds one of the application's AUD tags;
 * - it has an `exp`, is not expired and is already valid (`nbf`), both within
 *   the allowed clock skew;
 * - it names a person (`email`) or an Access service token (`common_name`).
 *
 * Keys: one remote key set per certs URL and isolate, kept in a module-level
 * map, so a warm isolate fetches the keys once. jose refetches them after ten
 * minutes, or when a token names an unknown `kid` (Access rotates its key
 * every six weeks), at most once per 30 s cooldown, so made-up key ids cannot
 * be turned into a flood of fetches.
 *
 * Egress: the certs URL obeys the upstream egress rules (`shared/egress.ts`):
 * https, unless its host is on UPSTREAM_ALLOWED_HOSTS. That is checked once,
 * when the configuration is read (`accessConfigFromEnv` throws on a refused
 * URL), because a wrong URL is the operator's mistake and should stop the
 * Worker's SSO loudly rather than fail every sign-in as a bad token.
 * `verifyAccessJwt` trusts the configuration it is given.
 */
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from "jose";
import { checkEgressUrl, parseEgressAllowlist } from "../egress";

export interface AccessConfig {
  /** e.g. https://acme.cloudflareaccess.com (no trailing slash); the issuer, and where the keys are. */
  teamDomain: string;
  /** The Access application's AUD tag(s). */
  audience: string[];
  /** Allowed clock skew in seconds (default 60). */
  clockSkewSeconds?: number;
  /** Where the JWKS is; default `${teamDomain}/cdn-cgi/access/certs`. */
  certsUrl?: string;
}

export type AccessIdentity =
  | { kind: "person"; email: string; subject: string }
  | { kind: "service"; commonName: string; subject: string };

export type AccessJwtFailure =
  | "malformed"
  | "signature"
  | "expired"
  | "not_yet_valid"
  | "audience"
  | "issuer"
  | "algorithm"
  | "no_identity"
  | "keys_unavailable";

/** Why a token was refused; `message` is written for the operator reading the log. */
export class AccessJwtError extends Error {
  override name = "AccessJwtError";
  constructor(
    readonly reason: AccessJwtFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Access signs with RS256; nothing else is accepted. */
const ALGORITHMS = ["RS256"];
const DEFAULT_CLOCK_SKEW_SECONDS = 60;
/** Access tokens are a few kilobytes; anything far larger is not one. */
const MAX_TOKEN_LENGTH = 16 * 1024;

const keySets = new Map<string, JWTVerifyGetKey>();

/** The certs URL a configuration reads its keys from. */
export function accessCertsUrl(config: AccessConfig): string {
  return config.certsUrl ?? `${config.teamDomain}/cdn-cgi/access/certs`;
}

/**
 * The identity in a valid Access token; throws `AccessJwtError` otherwise.
 * `now` is the time the token is checked at (default: the current time).
 */
export async function verifyAccessJwt(
  token: string,
  config: AccessConfig,
  now: Date = new Date(),
): Promise<AccessIdentity> {
  if (token === "") throw new AccessJwtError("malformed", "The Access token is empty.");
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new AccessJwtError(
      "malformed",
      `The Access token is ${token.length} characters long, more than the ${MAX_TOKEN_LENGTH} a real one could be.`,
    );
  }
  const certsUrl = accessCertsUrl(config);
  const skew = config.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, keySetFor(certsUrl), {
      algorithms: ALGORITHMS,
      issuer: config.teamDomain,
      audience: config.audience,
      clockTolerance: skew,
      currentDate: now,
      requiredClaims: ["exp"],
    }));
  } catch (error) {
    throw explain(error, token, config, certsUrl, skew);
  }
  return identityOf(payload);
}

/**
 * The Access configuration in the Worker's environment, or undefined when
 * Access is not configured (neither ACCESS_TEAM_DOMAIN nor ACCESS_AUD set).
 * ACCESS_AUD may hold several AUD tags, separated by commas. Throws an Error
 * naming the variable to fix when the configuration is half there or invalid,
 * or when the certs URL breaks the egress rules.
 */
export function accessConfigFromEnv(env: {
  ACCESS_TEAM_DOMAIN?: string;
  ACCESS_AUD?: string;
  ACCESS_CERTS_URL?: string;
  UPSTREAM_ALLOWED_HOSTS?: string;
}): AccessConfig | undefined {
  const rawDomain = env.ACCESS_TEAM_DOMAIN?.trim() ?? "";
  const audience = (env.ACCESS_AUD ?? "")
    .split(",")
    .map((tag) => tag.trim())
    .filter((tag) => tag !== "");
  const rawCertsUrl = env.ACCESS_CERTS_URL?.trim() ?? "";
  if (rawDomain === "" && audience.length === 0 && rawCertsUrl === "") return undefined;
  if (rawDomain === "") {
    throw new Error(
      "Cloudflare Access is half configured: ACCESS_AUD or ACCESS_CERTS_URL is set but ACCESS_TEAM_DOMAIN is not (e.g. https://acme.cloudflareaccess.com).",
    );
  }
  if (audience.length === 0) {
    throw new Error(
      "Cloudflare Access is half configured: ACCESS_TEAM_DOMAIN is set but ACCESS_AUD is not (the application's AUD tag, from its Overview page in Zero Trust).",
    );
  }
  const teamDomain = rawDomain.replace(/\/+$/, "");
  let origin: string | undefined;
  try {
    origin = new URL(teamDomain).origin;
  } catch {
    origin = undefined;
  }
  if (origin !== teamDomain) {
    throw new Error(
      `ACCESS_TEAM_DOMAIN must be the team's origin, such as https://acme.cloudflareaccess.com (scheme and host, no path); got '${rawDomain}'.`,
    );
  }
  const config: AccessConfig = { teamDomain, audience };
  if (rawCertsUrl !== "") config.certsUrl = rawCertsUrl;
  const certsUrl = accessCertsUrl(config);
  const verdict = checkEgressUrl(certsUrl, parseEgressAllowlist(env.UPSTREAM_ALLOWED_HOSTS));
  if (!verdict.ok) {
    const source = rawCertsUrl !== "" ? "ACCESS_CERTS_URL" : "ACCESS_TEAM_DOMAIN";
    throw new Error(
      `The Access signing keys' URL ${certsUrl} (from ${source}) is refused: ${verdict.reason}.`,
    );
  }
  return config;
}

function keySetFor(certsUrl: string): JWTVerifyGetKey {
  let keySet = keySets.get(certsUrl);
  if (!keySet) {
    const remote = createRemoteJWKSet(new URL(certsUrl));
    // Whatever goes wrong in the key set, other than not finding the token's
    // key, is a failure to get the keys, not a fault of the token.
    keySet = async (header, token) => {
      try {
        return await remote(header, token);
      } catch (error) {
        if (
          error instanceof errors.JWKSNoMatchingKey ||
          error instanceof errors.JWKSMultipleMatchingKeys
        ) {
          throw error;
        }
        throw new AccessJwtError(
          "keys_unavailable",
          `Could not get the Access signing keys from ${certsUrl}: ${describe(error)}. Check ACCESS_TEAM_DOMAIN (or ACCESS_CERTS_URL) and that the URL answers.`,
          { cause: error },
        );
      }
    };
    keySets.set(certsUrl, keySet);
  }
  return keySet;
}

function identityOf(payload: JWTPayload): AccessIdentity {
  const subject = typeof payload.sub === "string" ? payload.sub : "";
  const email = typeof payload.email === "string" ? payload.email.trim().toLowerCase() : "";
  if (email !== "") return { kind: "person", email, subject };
  const commonName = typeof payload.common_name === "string" ? payload.common_name.trim() : "";
  if (commonName !== "") return { kind: "service", commonName, subject };
  throw new AccessJwtError(
    "no_identity",
    "The Access token names neither a person (email) nor a service token (common_name); the Access policy must identify who is calling.",
  );
}

/** A jose failure as an AccessJwtError with a reason and a message for people. */
function explain(
  error: unknown,
  token: string,
  config: AccessConfig,
  certsUrl: string,
  skew: number,
): unknown {
  if (error instanceof AccessJwtError) return error;
  const fail = (reason: AccessJwtFailure, message: string) =>
    new AccessJwtError(reason, message, { cause: error });
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return fail(
      "algorithm",
      `The Access token is signed with ${quoted(headerAlg(token))}; only ${ALGORITHMS.join(", ")} is accepted.`,
    );
  }
  if (error instanceof errors.JWKSNoMatchingKey) {
    return fail(
      "signature",
      `The Access token is signed with a key (kid ${quoted(headerKid(token))}) that the team does not publish at ${certsUrl}.`,
    );
  }
  if (
    error instanceof errors.JWSSignatureVerificationFailed ||
    error instanceof errors.JWKSMultipleMatchingKeys
  ) {
    return fail(
      "signature",
      `The Access token's signature does not match the team's keys at ${certsUrl}: it was altered, or signed by someone else.`,
    );
  }
  if (error instanceof errors.JWTExpired) {
    return fail(
      "expired",
      `The Access token expired at ${isoTime(error.payload.exp)} (${skew} s of clock skew allowed); sign in through Access again.`,
    );
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    const invalid = error.reason === "invalid" || error.reason === "missing";
    if (error.claim === "iss") {
      return fail(
        "issuer",
        invalid
          ? `The Access token has no valid issuer; expected ${config.teamDomain} (ACCESS_TEAM_DOMAIN).`
          : `The Access token was issued by ${quoted(error.payload.iss)}, not by ${config.teamDomain} (ACCESS_TEAM_DOMAIN).`,
      );
    }
    if (error.claim === "aud") {
      return fail(
        "audience",
        `The Access token is for another Access application: its audience is not among the AUD tags in ACCESS_AUD (${config.audience.length} configured).`,
      );
    }
    if (error.claim === "nbf" && !invalid) {
      return fail(
        "not_yet_valid",
        `The Access token is not valid before ${isoTime(error.payload.nbf)} (${skew} s of clock skew allowed); check the clocks.`,
      );
    }
    return fail(
      "malformed",
      error.reason === "missing"
        ? `The Access token has no "${error.claim}" claim, which Access always sets.`
        : `The Access token's "${error.claim}" claim is not valid.`,
    );
  }
  if (error instanceof errors.JOSEError) {
    return fail("malformed", `The Access token is not a well-formed JWT: ${error.message}.`);
  }
  return error;
}

function headerAlg(token: string): unknown {
  try {
    return decodeProtectedHeader(token).alg;
  } catch {
    return undefined;
  }
}

function headerKid(token: string): unknown {
  try {
    return decodeProtectedHeader(token).kid;
  } catch {
    return undefined;
  }
}

/** A value from the token, shown safely: it is whatever the sender put there. */
function quoted(value: unknown): string {
  if (typeof value !== "string") return "no value";
  const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
  return JSON.stringify(shown);
}

function isoTime(seconds: unknown): string {
  return typeof seconds === "number" && Number.isFinite(seconds)
    ? new Date(seconds * 1000).toISOString()
    : "an unknown time";
}

function describe(error: unknown): string {
  if (error instanceof errors.JWKSTimeout) return "the request timed out";
  if (error instanceof Error) return error.message.replace(/\.$/, "");
  return String(error);
}
