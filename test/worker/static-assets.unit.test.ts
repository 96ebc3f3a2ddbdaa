import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { contentHash, staticAssets } from "../../functions/static/assets";

describe("static assets", () => {
  it("names each file by a hash of its content: a changed file is a new URL", () => {
    const before = staticAssets({ "app.css": "body { color: black }" });
    const after = staticAssets({ "app.css": "body { color: white }" });
    const same = staticAssets({ "app.css": "body { color: black }" });
    expect(before.path("app.css")).toMatch(/^\/assets\/[0-9a-f]{14}\/app\.css$/);
    expect(after.path("app.css")).not.toBe(before.path("app.css"));
    expect(same.path("app.css")).toBe(before.path("app.css"));
  });

  it("hashes every character, not a sample", () => {
    const text = "x".repeat(100_000);
    const changed = `${text.slice(0, 50_000)}y${text.slice(50_001)}`;
    expect(contentHash(changed)).not.toBe(contentHash(text));
    expect(contentHash("")).toMatch(/^[0-9a-f]{14}$/);
    expect(contentHash("ü")).not.toBe(contentHash("u"));
  });

  it("names a versioned file by its version, and serves it only under that version", async () => {
    const assets = staticAssets({ "lib.js": { text: "lib()", version: "lib-1.2.3" } });
    expect(assets.path("lib.js")).toBe("/assets/lib-1.2.3/lib.js");
    const app = new Hono();
    app.use("/assets/*", assets.serve());
    const served = await app.request("/assets/lib-1.2.3/lib.js");
    expect(served.status).toBe(200);
    expect(served.headers.get("etag")).toBe('"lib-1.2.3"');
    expect(await served.text()).toBe("lib()");
    expect((await app.request("/assets/lib-1.2.4/lib.js")).status).toBe(404);
    expect(() => staticAssets({ "lib.js": { text: "", version: "1/2" } })).toThrow(/URL/);
  });

  it("refuses names it could not serve, and paths to files it does not have", () => {
    expect(() => staticAssets({ "page.html": "" })).toThrow(/\.css or \.js/);
    expect(() => staticAssets({ "dir/app.js": "" })).toThrow(/plain file name/);
    expect(() => staticAssets({ "app.js": "" }).path("other.js")).toThrow(/No static asset/);
  });

  it("serves under the prefix it is given, and lets everything else through", async () => {
    const assets = staticAssets({ "app.js": "console.log(1)" }, { prefix: "/static" });
    const app = new Hono();
    app.use("/static/*", assets.serve());
    app.notFound((c) => c.text("fell through", 404));
    const path = assets.path("app.js");
    expect(path.startsWith("/static/")).toBe(true);
    const served = await app.request(path);
    expect(served.status).toBe(200);
    expect(await served.text()).toBe("console.log(1)");
    const other = await app.request("/static/abc/app.js");
    expect(other.status).toBe(404);
    expect(await other.text()).toBe("fell through");
  });

  it("matches an If-None-Match list, weak tags and * against the ETag", async () => {
    const assets = staticAssets({ "app.js": "1" });
    const app = new Hono();
    app.use("/assets/*", assets.serve());
    const path = assets.path("app.js");
    const etag = (await app.request(path)).headers.get("etag") ?? "";
    for (const header of [etag, `W/${etag}`, `"other", ${etag}`, "*"]) {
      const response = await app.request(path, { headers: { "if-none-match": header } });
      expect(response.status, header).toBe(304);
    }
    const stale = await app.request(path, { headers: { "if-none-match": '"other"' } });
    expect(stale.status).toBe(200);
  });
});
