import { describe, expect, it } from "vitest";
import { BASE, call } from "./helpers";

const IMMUTABLE = "public, max-age=31536000, immutable";

/** Every URL an HTML page names: src, href and *url attributes, and url(...) in inline styles. */
function urlsIn(page: string): string[] {
  const attributes = [...page.matchAll(/\s(?:src|href|[\w-]*url)\s*=\s*(?:"([^"]*)"|'([^']*)')/gi)];
  const cssUrls = [...page.matchAll(/url\(\s*['"]?([^'")]+)/gi)];
  return [
    ...attributes.map((match) => match[1] ?? match[2] ?? ""),
    ...cssUrls.map((match) => match[1] ?? ""),
  ];
}

/** Absolute http(s) or protocol-relative URLs in a script or stylesheet. */
function absoluteUrlsIn(text: string): string[] {
  return [...text.matchAll(/(?:https?:)?\/\/[\w.-]+\.[a-z]{2,}[^\s"'`)]*/gi)].map(
    (match) => match[0],
  );
}

/** The directives of a Content-Security-Policy header, by name. */
function directives(csp: string): Map<string, string[]> {
  return new Map(
    csp
      .split(";")
      .map((directive) => directive.trim().split(/\s+/))
      .filter(([name]) => name)
      .map(([name, ...values]) => [name?.toLowerCase() ?? "", values]),
  );
}

async function docsPage(): Promise<{ response: Response; html: string }> {
  const response = await call("/docs", { token: null });
  return { response, html: await response.text() };
}

describe("docs: the page", () => {
  it("names no other host: every src, href and url is a path on this origin", async () => {
    const { response, html } = await docsPage();
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/html");
    const urls = urlsIn(html);
    expect(urls).toContain("/openapi.json");
    for (const url of urls) {
      if (url.startsWith("data:")) continue;
      expect(url, url).toMatch(/^\/(?!\/)/);
      expect(new URL(url, BASE).origin).toBe(BASE);
    }
  });

  it("runs no inline script: every script element has a src", async () => {
    const { html } = await docsPage();
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    expect(scripts.length).toBeGreaterThanOrEqual(2);
    for (const [, attributes, body] of scripts) {
      expect(attributes).toMatch(/\ssrc="\/assets\//);
      expect(body?.trim()).toBe("");
    }
    expect(html).not.toMatch(/\son\w+\s*=/i); // no event-handler attributes
    expect(html).not.toMatch(/javascript:/i);
  });

  it("sends a CSP that allows only this origin's files and forbids inline scripts", async () => {
    const { response } = await docsPage();
    const csp = response.headers.get("content-security-policy");
    expect(csp).toBeTruthy();
    const policy = directives(csp ?? "");
    expect(policy.get("default-src")).toEqual(["'none'"]);
    expect(policy.get("script-src")).toEqual(["'self'"]);
    expect(policy.get("style-src")).toEqual(["'self'"]);
    expect(policy.get("img-src")).toEqual(["'self'", "data:"]);
    expect(policy.get("connect-src")).toEqual(["'self'"]);
    expect(policy.get("font-src")).toEqual(["'self'"]);
    expect(policy.get("base-uri")).toEqual(["'none'"]);
    expect(policy.get("form-action")).toEqual(["'none'"]);
    expect(policy.get("frame-ancestors")).toEqual(["'none'"]);
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|nonce-|sha256-|\*/);
    expect(response.headers.get("referrer-policy")).toBe("no-referrer");
    expect(response.headers.get("x-frame-options")).toBe("DENY");
    expect(response.headers.get("cache-control")).toBe("no-cache");
  });

  it("leaves the security headers of the API alone", async () => {
    const response = await call("/openapi.json", { token: null });
    expect(response.headers.get("content-security-policy")).toBeNull();
  });
});

describe("docs: the assets it references", () => {
  it("serves each with its type, an ETag and a year-long immutable cache", async () => {
    const { html } = await docsPage();
    const assets = urlsIn(html).filter((url) => url.startsWith("/assets/"));
    expect(assets.map((url) => url.split("/").pop()).sort()).toEqual([
      "docs.js",
      "swagger-ui-bundle.js",
      "swagger-ui-page.css",
      "swagger-ui.css",
    ]);
    for (const url of assets) {
      // Swagger UI's files by the pinned package's version, Airlock's own by a hash.
      expect(url).toMatch(/^\/assets\/(swagger-ui-\d+\.\d+\.\d+|[0-9a-f]{14})\/[\w.-]+$/);
      const response = await call(url, { token: null });
      expect(response.status, url).toBe(200);
      expect(response.headers.get("content-type"), url).toBe(
        url.endsWith(".css") ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8",
      );
      expect(response.headers.get("cache-control"), url).toBe(IMMUTABLE);
      expect(response.headers.get("etag"), url).toBe(`"${url.split("/")[2]}"`);
      expect(response.headers.get("x-content-type-options"), url).toBe("nosniff");
      expect((await response.text()).length, url).toBeGreaterThan(100);
    }
  });

  it("starts Swagger UI from a script that names no other host", async () => {
    const { html } = await docsPage();
    const script = urlsIn(html).find((url) => url.endsWith("/docs.js"));
    expect(script).toBeDefined();
    const source = await (await call(script ?? "", { token: null })).text();
    expect(source).toContain("SwaggerUIBundle(");
    expect(source).toMatch(/validatorUrl:\s*null/);
    expect(absoluteUrlsIn(source)).toEqual([]);
  });

  it("serves Swagger UI itself: the bundle defines SwaggerUIBundle, the CSS its classes", async () => {
    const { html } = await docsPage();
    const urls = urlsIn(html);
    const bundle = await call(urls.find((url) => url.endsWith("/swagger-ui-bundle.js")) ?? "", {
      token: null,
    });
    expect(await bundle.text()).toContain("SwaggerUIBundle");
    const css = await call(urls.find((url) => url.endsWith("/swagger-ui.css")) ?? "", {
      token: null,
    });
    expect(await css.text()).toContain(".swagger-ui");
  });

  it("answers 304 to a request that holds the current ETag", async () => {
    const { html } = await docsPage();
    const url = urlsIn(html).find((path) => path.endsWith("/swagger-ui.css")) ?? "";
    const first = await call(url, { token: null });
    const etag = first.headers.get("etag") ?? "";
    await first.body?.cancel();
    const again = await call(url, { token: null, headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
    expect(again.headers.get("etag")).toBe(etag);
    expect(again.headers.get("cache-control")).toBe(IMMUTABLE);
    expect(await again.text()).toBe("");
  });

  it("answers HEAD with the headers and no body", async () => {
    const { html } = await docsPage();
    const url = urlsIn(html).find((path) => path.endsWith("/docs.js")) ?? "";
    const response = await call(url, { token: null, method: "HEAD" });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(response.headers.get("cache-control")).toBe(IMMUTABLE);
    expect(await response.text()).toBe("");
  });

  it("answers 404 for an unknown asset, a stale hash or version, or a path outside the scheme", async () => {
    const { html } = await docsPage();
    const urls = urlsIn(html);
    const version = (urls.find((path) => path.endsWith("/swagger-ui.css")) ?? "").split("/")[2];
    const hash = (urls.find((path) => path.endsWith("/docs.js")) ?? "").split("/")[2];
    for (const path of [
      `/assets/${hash}/nope.js`,
      `/assets/${version}/swagger-ui.css.map`,
      `/assets/${version}/docs.js`,
      `/assets/${hash}/swagger-ui.css`,
      "/assets/00000000000000/docs.js",
      "/assets/swagger-ui-0.0.1/swagger-ui.css",
      "/assets/docs.js",
      `/assets/${hash}/docs.js/extra`,
      `/assets/${hash}/..%2Fopenapi.json`,
    ]) {
      const response = await call(path, { token: null });
      expect(response.status, path).toBe(404);
      expect(response.headers.get("cache-control"), path).not.toBe(IMMUTABLE);
      await response.body?.cancel();
    }
  });

  it("serves assets to GET and HEAD only", async () => {
    const { html } = await docsPage();
    const url = urlsIn(html).find((path) => path.endsWith("/docs.js")) ?? "";
    const response = await call(url, { token: null, method: "POST", body: {} });
    expect(response.status).toBe(404);
    await response.body?.cancel();
  });
});
