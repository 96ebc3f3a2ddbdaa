import { describe, expect, it } from "vitest";
import {
  checkEgressUrl,
  parseEgressAllowlist,
  readBodyCapped,
  redirectCause,
  refusedUpstreamSecret,
  specialUseHost,
} from "../../shared/egress";

const none = parseEgressAllowlist("");

describe("egress: address forms", () => {
  // Every form of a host the URL parser accepts, with https and an empty
  // allowlist: what is refused, and by which rule.
  it.each([
    // IPv4: loopback in the forms the URL parser normalises
    ["https://127.0.0.1/x", /loopback address \(127\.0\.0\.0\/8\)/],
    ["https://127.1/x", /loopback/],
    ["https://2130706433/x", /loopback/],
    ["https://0x7f.0.0.1/x", /loopback/],
    ["https://0177.0.0.1/x", /loopback/],
    ["https://127.0.0.1./x", /loopback/],
    ["https://127.255.255.254/x", /loopback/],
    // IPv4: the other special-use ranges
    ["https://0.0.0.0/x", /this network/],
    ["https://10.1.2.3/x", /private address \(10\.0\.0\.0\/8\)/],
    ["https://172.16.0.1/x", /private address \(172\.16\.0\.0\/12\)/],
    ["https://172.31.255.255/x", /private/],
    ["https://192.168.1.1/x", /private address \(192\.168\.0\.0\/16\)/],
    ["https://169.254.169.254/latest/meta-data/", /link-local/],
    ["https://100.64.0.1/x", /shared/],
    ["https://100.127.255.255/x", /shared/],
    ["https://192.0.0.8/x", /IETF protocol assignment/],
    ["https://192.0.2.10/x", /documentation address \(192\.0\.2\.0\/24\)/],
    ["https://198.51.100.7/x", /documentation address \(198\.51\.100\.0\/24\)/],
    ["https://203.0.113.9/x", /documentation address \(203\.0\.113\.0\/24\)/],
    ["https://198.18.0.1/x", /benchmarking address \(198\.18\.0\.0\/15\)/],
    ["https://198.19.255.255/x", /benchmarking/],
    ["https://192.88.99.1/x", /6to4 relay/],
    ["https://224.0.0.251/x", /multicast address \(224\.0\.0\.0\/4\)/],
    ["https://239.255.255.250/x", /multicast/],
    ["https://240.0.0.1/x", /reserved address \(240\.0\.0\.0\/4\)/],
    ["https://255.255.255.255/x", /broadcast/],
    // IPv6: loopback and unspecified, compressed or not
    ["https://[::1]/x", /loopback address \(::1\)/],
    ["https://[0:0:0:0:0:0:0:1]/x", /loopback address \(::1\)/],
    ["https://[::]/x", /unspecified/],
    // IPv6 forms that carry a private IPv4 address
    ["https://[::ffff:127.0.0.1]/x", /IPv4-mapped .* of 127\.0\.0\.1, a loopback/],
    ["https://[::ffff:7f00:1]/x", /IPv4-mapped .* of 127\.0\.0\.1/],
    ["https://[::ffff:a9fe:a9fe]/x", /IPv4-mapped .* of 169\.254\.169\.254, a link-local/],
    ["https://[64:ff9b::127.0.0.1]/x", /NAT64 .* of 127\.0\.0\.1/],
    ["https://[64:ff9b::a00:1]/x", /NAT64 .* of 10\.0\.0\.1/],
    ["https://[2002:7f00:1::]/x", /6to4 .* of 127\.0\.0\.1/],
    ["https://[::127.0.0.1]/x", /IPv4-compatible/],
    ["https://[64:ff9b:1::1]/x", /local-use NAT64/],
    // IPv6: the special-use prefixes, as real prefixes
    ["https://[fe80::1]/x", /link-local address \(fe80::\/10\)/],
    ["https://[FE80::1]/x", /link-local/],
    ["https://[fe9a::1]/x", /link-local/],
    ["https://[febf:ffff::1]/x", /link-local/],
    ["https://[fec0::1]/x", /site-local address \(fec0::\/10\)/],
    ["https://[feff::1]/x", /site-local/],
    ["https://[fc00::1]/x", /unique-local address \(fc00::\/7\)/],
    ["https://[fd12:3456::1]/x", /unique-local/],
    ["https://[ff02::1]/x", /multicast address \(ff00::\/8\)/],
    ["https://[100::1]/x", /discard-only/],
    ["https://[2001::1]/x", /IETF protocol assignment \(2001::\/23/],
    ["https://[2001:db8::1]/x", /documentation address \(2001:db8::\/32\)/],
    ["https://[3fff::1]/x", /documentation address \(3fff::\/20\)/],
    ["https://[4000::1]/x", /not a global unicast/],
    // Names that only a local resolver answers
    ["https://localhost/x", /loopback name/],
    ["https://LOCALHOST/x", /loopback name/],
    ["https://localhost./x", /loopback name/],
    ["https://localhost../x", /loopback name/],
    ["https://%6c%6fcalhost/x", /loopback name/],
    ["https://api.localhost/x", /loopback name/],
    ["https://metadata.google.internal/computeMetadata/v1/", /cloud metadata/],
    ["https://metadata.google.internal./computeMetadata/v1/", /cloud metadata/],
    ["https://metadata.goog/x", /cloud metadata/],
    ["https://metadata.azure.com/x", /cloud metadata/],
    ["https://instance-data.ec2.internal/x", /cloud metadata/],
    ["https://metadata/x", /single-label/],
    ["https://instance-data/x", /single-label/],
    ["https://models.corp.internal/x", /under \.internal/],
    ["https://printer.local/x", /under \.local/],
    ["https://nas.home.arpa/x", /under \.home\.arpa/],
    ["https://box.localdomain/x", /under \.localdomain/],
  ])("refuses %s", (url, reason) => {
    const verdict = checkEgressUrl(url, none);
    expect(verdict.ok, url).toBe(false);
    if (!verdict.ok) {
      expect(verdict.reason).toMatch(reason);
      expect(verdict.reason).toContain("UPSTREAM_ALLOWED_HOSTS");
    }
  });

  it.each([
    "https://models.example.com/v2/models/m/infer",
    "https://models.example.com:8443/predict",
    "https://8.8.8.8/predict",
    "https://172.32.0.1/x",
    "https://192.169.0.1/x",
    "https://100.128.0.1/x",
    "https://198.20.0.1/x",
    "https://223.255.255.255/x",
    "https://[2606:4700:4700::1111]/predict",
    "https://[2a00:1450:4001:80b::200e]/x",
    "https://[::ffff:8.8.8.8]/x",
    "https://[64:ff9b::808:808]/x",
    "https://localhost.example.com/x",
    "https://metadata.example.com/x",
    "https://internal.example.com/x",
  ])("allows %s", (url) => {
    expect(checkEgressUrl(url, none)).toEqual({ ok: true });
  });

  it("refuses credentials in the URL, whatever the host", () => {
    const local = parseEgressAllowlist("127.0.0.1");
    for (const url of [
      "https://user:pw@models.example.com/x",
      "https://user@models.example.com/x",
      "https://:pw@models.example.com/x",
      "http://user:pw@127.0.0.1:9000/x",
    ]) {
      expect(checkEgressUrl(url, local), url).toEqual({
        ok: false,
        reason: "must not embed credentials (user:password@)",
      });
    }
  });

  it("refuses schemes other than http and https, and what is not a URL", () => {
    expect(checkEgressUrl("ftp://models.example.com/x", none)).toEqual({
      ok: false,
      reason: "ftp: is not http or https",
    });
    expect(checkEgressUrl("file:///etc/passwd", none).ok).toBe(false);
    expect(checkEgressUrl("not a url", none)).toEqual({ ok: false, reason: "not a URL" });
  });
});

describe("egress: the allowlist", () => {
  it("allows http and private addresses for listed hosts only, compared exactly", () => {
    const local = parseEgressAllowlist(" 127.0.0.1, Localhost ,[::1], 0x7f.0.0.2,");
    expect([...local]).toEqual(["127.0.0.1", "localhost", "::1", "127.0.0.2"]);
    expect(checkEgressUrl("http://127.0.0.1:9000/predict", local)).toEqual({ ok: true });
    expect(checkEgressUrl("http://localhost:9000/predict", local)).toEqual({ ok: true });
    expect(checkEgressUrl("http://localhost.:9000/predict", local)).toEqual({ ok: true });
    expect(checkEgressUrl("http://[::1]:9000/predict", local)).toEqual({ ok: true });
    expect(checkEgressUrl("http://127.0.0.2:9000/predict", local)).toEqual({ ok: true });
    // Another form of a listed address is another host: not listed.
    expect(checkEgressUrl("http://127.0.0.3:9000/predict", local).ok).toBe(false);
    expect(checkEgressUrl("http://[::ffff:127.0.0.1]:9000/predict", local).ok).toBe(false);
    expect(checkEgressUrl("http://models.example.com/predict", local)).toEqual({
      ok: false,
      reason: "http is allowed only for hosts on UPSTREAM_ALLOWED_HOSTS",
    });
  });

  it("treats names that only a local resolver answers like private addresses", () => {
    const listed = parseEgressAllowlist("models.internal");
    expect(checkEgressUrl("http://models.internal:8080/x", listed)).toEqual({ ok: true });
    expect(checkEgressUrl("https://other.internal/x", listed).ok).toBe(false);
  });

  it("names each host's rule on its own", () => {
    expect(specialUseHost("::ffff:10.0.0.1")).toMatch(/IPv4-mapped/);
    expect(specialUseHost("[fe80::1]")).toMatch(/link-local/);
    expect(specialUseHost("2606:4700::1111")).toBeUndefined();
    expect(specialUseHost("models.example.com")).toBeUndefined();
    expect(specialUseHost("a/b")).toBe("not a valid host");
  });
});

describe("egress: credentials", () => {
  it("lets a version name only UPSTREAM_ secrets", () => {
    expect(refusedUpstreamSecret("UPSTREAM_FRAUD_MODEL_TOKEN")).toBeUndefined();
    for (const name of [
      "ADMIN_TOKEN",
      "ALERT_ENCRYPTION_KEY",
      "DATABASE_URL",
      "LOG_HMAC_KEY",
      "FRAUD_MODEL_TOKEN",
      "UPSTREAM_",
      "upstream_token",
      "XUPSTREAM_TOKEN",
    ]) {
      expect(refusedUpstreamSecret(name), name).toMatch(/UPSTREAM_/);
    }
  });
});

describe("egress: answers", () => {
  it("describes a redirect by its status and target host, never following it", () => {
    const at = "https://models.example.com/v2/models/m/infer";
    const redirect = (status: number, location?: string) =>
      new Response(null, { status, headers: location ? { location } : {} });
    expect(redirectCause(redirect(307, "http://[::1]:9000/x"), at)).toBe(
      "redirect (status 307 to [::1]:9000) not followed",
    );
    expect(redirectCause(redirect(302, "/elsewhere"), at)).toBe(
      "redirect (status 302 to models.example.com) not followed",
    );
    expect(redirectCause(redirect(301), at)).toBe(
      "redirect (status 301 without a location) not followed",
    );
  });

  it("reads a body up to the cap and stops reading past it", async () => {
    expect(await readBodyCapped(new Response("x".repeat(10)), 10)).toEqual({
      ok: true,
      text: "xxxxxxxxxx",
    });
    expect(await readBodyCapped(new Response("é".repeat(5)), 10)).toEqual({
      ok: true,
      text: "ééééé",
    });
    expect(await readBodyCapped(new Response("x".repeat(11)), 10)).toEqual({
      ok: false,
      cause: "body over 10 bytes (not read further)",
    });
    // A body that never ends: read until the cap, then cancelled.
    let pulled = 0;
    let cancelled = false;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(new Uint8Array(1024));
      },
      cancel() {
        cancelled = true;
      },
    });
    const capped = await readBodyCapped(new Response(endless), 64 * 1024);
    expect(capped.ok).toBe(false);
    expect(cancelled).toBe(true);
    expect(pulled).toBeLessThan(70);
  });
});
