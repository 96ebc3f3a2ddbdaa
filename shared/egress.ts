/**
 * Egress: what Airlock sends out on an operator's behalf, to model upstreams
 * and to alert destinations. One rule set, applied when a URL or credential
 * is registered and again before every call, so a rule tightened later also
 * stops what was registered before it.
 *
 * - http or https only, and never `user:password@` (a version names a secret
 *   in `credential` instead);
 * - a host on UPSTREAM_ALLOWED_HOSTS (compared exactly, after the URL parser
 *   has normalised it) may use http and any address;
 * - any other host must use https and may be neither an IP literal in a
 *   special-use range (see `specialUseHost`) nor a name that only a local
 *   resolver answers (localhost, single labels, .internal, cloud metadata
 *   names).
 *
 * The runtime cannot resolve a name before fetching, so a public name that
 * resolves to a private address cannot be caught here: the allowlist is the
 * real guard. Redirects are never followed (`redirectCause`), or the first
 * hop's check would be all a hostile upstream had to pass.
 */

export type EgressVerdict = { ok: true } | { ok: false; reason: string };

/** The hosts of UPSTREAM_ALLOWED_HOSTS, in the form `checkEgressUrl` compares. */
export function parseEgressAllowlist(value: string | undefined): Set<string> {
  return new Set(
    (value ?? "")
      .split(",")
      .map((entry) => entry.trim().toLowerCase())
      .filter((entry) => entry !== "")
      .map((entry) => canonicalHost(entry) ?? entry),
  );
}

/** Whether this URL may be called, and if not, why (for the operator: logs, 400s, the admin view). */
export function checkEgressUrl(url: string, allowlist: ReadonlySet<string>): EgressVerdict {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { ok: false, reason: "not a URL" };
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:")
    return { ok: false, reason: `${parsed.protocol} is not http or https` };
  if (parsed.username !== "" || parsed.password !== "")
    return { ok: false, reason: "must not embed credentials (user:password@)" };
  const host = bareHost(parsed.hostname);
  if (allowlist.has(host)) return { ok: true };
  if (parsed.protocol !== "https:")
    return { ok: false, reason: "http is allowed only for hosts on UPSTREAM_ALLOWED_HOSTS" };
  const refused = specialUseHost(host);
  if (refused)
    return {
      ok: false,
      reason: `${host} is ${refused}, allowed only for hosts on UPSTREAM_ALLOWED_HOSTS`,
    };
  return { ok: true };
}

/**
 * Why a host may not be called unless it is on the allowlist (undefined: it
 * may). Takes a URL's host in any form the URL parser accepts: IPv4 in
 * dotted, decimal, octal or hex form, IPv6 compressed or not, with or
 * without brackets.
 */
export function specialUseHost(host: string): string | undefined {
  const canonical = canonicalHost(host);
  if (canonical === undefined) return "not a valid host";
  if (canonical.includes(":")) return refusedIpv6(canonical);
  if (IPV4.test(canonical)) return refusedIpv4(canonical);
  return refusedName(canonical);
}

/**
 * The cause of a 3xx answer, which is never followed: the target would
 * escape the checks made on the URL that was called.
 */
export function redirectCause(response: Response, calledUrl: string): string {
  const location = response.headers.get("location");
  let where = "without a location";
  if (location) {
    try {
      where = `to ${new URL(location, calledUrl).host}`;
    } catch {
      where = "to an invalid location";
    }
  }
  return `redirect (status ${response.status} ${where}) not followed`;
}

export type CappedBody = { ok: true; text: string } | { ok: false; cause: string };

/**
 * A response body as text, read only up to `maxBytes`: a longer body (by its
 * Content-Length or as it streams) is cancelled, never held whole.
 */
export async function readBodyCapped(response: Response, maxBytes: number): Promise<CappedBody> {
  const tooLarge = { ok: false, cause: `body over ${maxBytes} bytes (not read further)` } as const;
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  if (declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    return tooLarge;
  }
  if (!response.body) return { ok: true, text: "" };
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      return tooLarge;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { ok: true, text: new TextDecoder().decode(bytes) };
}

/** Secrets a version may name as its `credential` start with this. */
export const UPSTREAM_SECRET_PREFIX = "UPSTREAM_";
const upstreamSecretName = /^UPSTREAM_[A-Z0-9_]{1,55}$/;

/**
 * Why a version may not send this secret to its upstream (undefined: it may).
 * Only secrets under the prefix: any other name would let whoever registers
 * a version send the Worker's own secrets (ADMIN_TOKEN, ALERT_ENCRYPTION_KEY,
 * DATABASE_URL…) to a host of their choosing.
 */
export function refusedUpstreamSecret(name: string): string | undefined {
  if (upstreamSecretName.test(name)) return undefined;
  return `credential '${name}' does not name an ${UPSTREAM_SECRET_PREFIX}… secret; only those are sent to upstreams`;
}

// ---- addresses and names ----------------------------------------------------

const IPV4 = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

/**
 * A host as the URL parser serialises it (IPv4 dotted, IPv6 compressed and
 * lowercase), without brackets or trailing dots; undefined if it is not one.
 */
function canonicalHost(host: string): string | undefined {
  const bare = host.trim().replace(/^\[(.*)\]$/, "$1");
  if (bare === "" || /[/?#@\\]/.test(bare)) return undefined;
  try {
    const url = new URL(`http://${bare.includes(":") ? `[${bare}]` : bare}/`);
    if (url.port !== "" || url.href !== `http://${url.hostname}/`) return undefined;
    return bareHost(url.hostname);
  } catch {
    return undefined;
  }
}

/** A URL's hostname without IPv6 brackets, and a name without its trailing dots (`localhost.`). */
function bareHost(hostname: string): string {
  if (hostname.startsWith("[")) return hostname.slice(1, -1);
  return hostname.replace(/\.+$/, "");
}

/** Special-use IPv4 ranges (RFC 6890 and its successors), most specific first. */
const IPV4_RANGES: readonly (readonly [string, number, string])[] = [
  ["0.0.0.0", 8, "a 'this network' address (0.0.0.0/8)"],
  ["10.0.0.0", 8, "a private address (10.0.0.0/8)"],
  ["100.64.0.0", 10, "a shared (carrier-grade NAT) address (100.64.0.0/10)"],
  ["127.0.0.0", 8, "a loopback address (127.0.0.0/8)"],
  ["169.254.0.0", 16, "a link-local address (169.254.0.0/16, where cloud metadata answers)"],
  ["172.16.0.0", 12, "a private address (172.16.0.0/12)"],
  ["192.0.0.0", 24, "an IETF protocol assignment (192.0.0.0/24)"],
  ["192.0.2.0", 24, "a documentation address (192.0.2.0/24)"],
  ["192.88.99.0", 24, "a 6to4 relay address (192.88.99.0/24)"],
  ["192.168.0.0", 16, "a private address (192.168.0.0/16)"],
  ["198.18.0.0", 15, "a benchmarking address (198.18.0.0/15)"],
  ["198.51.100.0", 24, "a documentation address (198.51.100.0/24)"],
  ["203.0.113.0", 24, "a documentation address (203.0.113.0/24)"],
  ["224.0.0.0", 4, "a multicast address (224.0.0.0/4)"],
  ["255.255.255.255", 32, "the broadcast address (255.255.255.255)"],
  ["240.0.0.0", 4, "a reserved address (240.0.0.0/4)"],
];

function ipv4Number(address: string): number {
  return address.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
}

function refusedIpv4(address: string): string | undefined {
  const n = ipv4Number(address);
  for (const [base, bits, label] of IPV4_RANGES) {
    const size = 2 ** (32 - bits);
    if (Math.floor(n / size) === Math.floor(ipv4Number(base) / size)) return label;
  }
  return undefined;
}

/** The eight 16-bit groups of a compressed IPv6 address (the URL parser's form). */
function ipv6Groups(address: string): number[] | undefined {
  const halves = address.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const zeros = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const groups = [...head, ...Array<string>(Math.max(zeros, 0)).fill("0"), ...tail].map((g) =>
    /^[0-9a-f]{1,4}$/.test(g) ? Number.parseInt(g, 16) : Number.NaN,
  );
  return groups.length === 8 && groups.every((g) => !Number.isNaN(g)) ? groups : undefined;
}

/** An IPv4 address carried in an IPv6 one: refused as the IPv4 address would be. */
function embedded(form: string, high: number, low: number): string | undefined {
  const v4 = `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  const refused = refusedIpv4(v4);
  return refused ? `${form} of ${v4}, ${refused}` : undefined;
}

function refusedIpv6(address: string): string | undefined {
  const g = ipv6Groups(address);
  if (!g) return "not a valid IPv6 address";
  const [g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0, g6 = 0, g7 = 0] = g;
  const zero = (...groups: number[]) => groups.every((x) => x === 0);
  if (zero(g0, g1, g2, g3, g4, g5, g6, g7)) return "the unspecified address (::)";
  if (zero(g0, g1, g2, g3, g4, g5, g6) && g7 === 1) return "the loopback address (::1)";
  if (zero(g0, g1, g2, g3, g4) && g5 === 0xffff)
    return embedded("an IPv4-mapped address (::ffff:0:0/96)", g6, g7);
  if (zero(g0, g1, g2, g3, g4, g5)) return "an IPv4-compatible address (::/96, deprecated)";
  if (g0 === 0x64 && g1 === 0xff9b && zero(g2, g3, g4, g5))
    return embedded("a NAT64 address (64:ff9b::/96)", g6, g7);
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 1) return "a local-use NAT64 address (64:ff9b:1::/48)";
  if (g0 === 0x100 && zero(g1, g2, g3)) return "a discard-only address (100::/64)";
  if (g0 === 0x2001 && g1 <= 0x01ff)
    return "an IETF protocol assignment (2001::/23, Teredo 2001::/32 among them)";
  if (g0 === 0x2001 && g1 === 0x0db8) return "a documentation address (2001:db8::/32)";
  if (g0 === 0x2002) return embedded("a 6to4 address (2002::/16)", g1, g2);
  if (g0 === 0x3fff && g1 < 0x1000) return "a documentation address (3fff::/20)";
  if ((g0 & 0xfe00) === 0xfc00) return "a unique-local address (fc00::/7)";
  if ((g0 & 0xffc0) === 0xfe80) return "a link-local address (fe80::/10)";
  if ((g0 & 0xffc0) === 0xfec0) return "a site-local address (fec0::/10)";
  if ((g0 & 0xff00) === 0xff00) return "a multicast address (ff00::/8)";
  if ((g0 & 0xe000) !== 0x2000) return "not a global unicast address (2000::/3)";
  return undefined;
}

/**
 * Cloud instance metadata services by name (their addresses, such as
 * 169.254.169.254, are link-local and refused as such).
 */
const METADATA_NAMES = new Set([
  "metadata.google.internal",
  "metadata.goog",
  "metadata.azure.com",
  "metadata.tencentyun.com",
  "metadata.packet.net",
  "metadata.platformequinix.com",
  "instance-data.ec2.internal",
]);

/** Domains only a local resolver answers (RFC 6761, RFC 6762, RFC 8375, ICANN's .internal). */
const LOCAL_DOMAINS = ["internal", "local", "localdomain", "home.arpa"];

function refusedName(name: string): string | undefined {
  if (name === "localhost" || name.endsWith(".localhost")) return "a loopback name (localhost)";
  if (METADATA_NAMES.has(name)) return "a cloud metadata service's name";
  if (!name.includes("."))
    return "a single-label name, which only a local resolver answers (such as metadata or instance-data)";
  const domain = LOCAL_DOMAINS.find((d) => name.endsWith(`.${d}`));
  if (domain) return `a name under .${domain}, which only a local resolver answers`;
  return undefined;
}
