/**
 * Which upstream URLs a Worker may call. The runtime cannot resolve a name
 * before fetching, so a hostname that resolves to a private address cannot be
 * caught here: the allowlist is the real guard. Rules: https to any host
 * except IP literals in private, loopback or link-local ranges; anything else
 * (http, or such an IP literal) only for hosts on the allowlist.
 */
export function parseAllowlist(value: string | undefined): Set<string> {
  return new Set(
    (value ?? "")
      .split(",")
      .map((host) => host.trim().toLowerCase())
      .filter((host) => host !== ""),
  );
}

export function isPrivateAddress(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "").toLowerCase();
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(bare);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return (
      a === 10 ||
      a === 127 ||
      a === 0 ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 100 && b >= 64 && b <= 127)
    );
  }
  if (bare.includes(":")) {
    return (
      bare === "::1" ||
      bare === "::" ||
      bare.startsWith("fc") ||
      bare.startsWith("fd") ||
      bare.startsWith("fe80") ||
      bare.startsWith("::ffff:")
    );
  }
  return bare === "localhost" || bare.endsWith(".localhost");
}

export function checkUpstreamUrl(
  url: string,
  allowlist: Set<string>,
): { ok: true } | { ok: false; reason: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { ok: false, reason: "not a URL" };
  }
  const host = parsed.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (allowlist.has(host)) return { ok: true };
  if (parsed.protocol !== "https:")
    return {
      ok: false,
      reason: `${parsed.protocol} is allowed only for hosts on UPSTREAM_ALLOWED_HOSTS`,
    };
  if (isPrivateAddress(host))
    return { ok: false, reason: `private address ${host} is not on UPSTREAM_ALLOWED_HOSTS` };
  return { ok: true };
}
