import type { MiddlewareHandler } from "hono";

/** The types of what the Worker serves to browsers, by file extension. */
const contentTypes: Record<string, string> = {
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
};

/** A URL that names the content it serves never goes stale: cache it for a year. */
const IMMUTABLE = "public, max-age=31536000, immutable";

/**
 * A file's text, or its text and a version that names it exactly: a pinned
 * package's version stands in for a hash of its files, which would cost each
 * isolate milliseconds of CPU on a megabyte-sized bundle.
 */
export type StaticFile = string | { text: string; version: string };

export interface StaticAssetsOptions {
  /** Where the files are served: `${prefix}/<hash or version>/<name>`. */
  prefix?: string;
}

export interface StaticAssets {
  /** The path a page links to, e.g. `/assets/3f2a…/docs.js`. Throws for an unknown name. */
  path(name: string): string;
  /**
   * Serves the files under the prefix to GET and HEAD. Anything else, a name
   * it does not have, or a hash or version that is not the file's current one
   * falls through (to the app's 404).
   */
  serve(): MiddlewareHandler;
}

interface Asset {
  text: string;
  /** The URL segment before the name: a content hash, or the file's version. */
  tag: string;
  etag: string;
  contentType: string;
}

/**
 * CSS and JS that the Worker serves itself, so its pages load nothing from
 * another host. Each URL names its content (a hash of it, or a pinned
 * package's version): browsers and caches keep it for a year without asking
 * again, and a changed file is a new URL. The files are text modules
 * (wrangler.toml's `[[rules]]`); hashes are computed on first use, so requests
 * that never render a page do not pay for them.
 */
export function staticAssets(
  files: Record<string, StaticFile>,
  { prefix = "/assets" }: StaticAssetsOptions = {},
): StaticAssets {
  for (const [name, file] of Object.entries(files)) {
    if (!/^[\w.-]+$/.test(name) || contentTypeOf(name) === undefined) {
      throw new Error(`Static asset ${name}: a plain file name ending in .css or .js is required`);
    }
    if (typeof file !== "string" && !/^[\w.+-]+$/.test(file.version)) {
      throw new Error(`Static asset ${name}: version ${file.version} cannot be part of a URL`);
    }
  }
  const prepared = new Map<string, Asset>();

  function asset(name: string): Asset | undefined {
    const cached = prepared.get(name);
    const file = Object.hasOwn(files, name) ? files[name] : undefined;
    if (cached || file === undefined) return cached;
    const text = typeof file === "string" ? file : file.text;
    const tag = typeof file === "string" ? contentHash(text) : file.version;
    const ready: Asset = {
      text,
      tag,
      etag: `"${tag}"`,
      contentType: contentTypeOf(name) ?? "application/octet-stream",
    };
    prepared.set(name, ready);
    return ready;
  }

  return {
    path(name) {
      const found = asset(name);
      if (!found) throw new Error(`No static asset named ${name}`);
      return `${prefix}/${found.tag}/${name}`;
    },
    serve() {
      return async (c, next) => {
        // Hono answers HEAD with the GET response's headers and no body.
        const readable = c.req.method === "GET" || c.req.method === "HEAD";
        const match = readable ? parseAssetPath(c.req.path, prefix) : undefined;
        const found = match ? asset(match.name) : undefined;
        if (!match || !found || found.tag !== match.tag) return next();
        const headers = { "cache-control": IMMUTABLE, etag: found.etag };
        if (etagMatches(c.req.header("if-none-match"), found.etag)) {
          return c.body(null, 304, headers);
        }
        return c.body(found.text, 200, { ...headers, "content-type": found.contentType });
      };
    },
  };
}

/**
 * cyrb53, a public-domain 53-bit string hash, as 14 hex digits. Synchronous,
 * so a page names its asset URLs while it renders. The URL needs to change
 * when the file does, not to resist a forger: the files are fixed at deploy.
 */
export function contentHash(text: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ code, 2654435761);
    h2 = Math.imul(h2 ^ code, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (0x100000000 * (0x1fffff & h2) + (h1 >>> 0)).toString(16).padStart(14, "0");
}

function contentTypeOf(name: string): string | undefined {
  const dot = name.lastIndexOf(".");
  return dot < 0 ? undefined : contentTypes[name.slice(dot)];
}

function parseAssetPath(path: string, prefix: string): { tag: string; name: string } | undefined {
  if (!path.startsWith(`${prefix}/`)) return undefined;
  const [tag, name, ...rest] = path.slice(prefix.length + 1).split("/");
  if (!tag || !name || rest.length > 0) return undefined;
  return { tag, name };
}

function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch
    .split(",")
    .map((tag) => tag.trim().replace(/^W\//, ""))
    .some((tag) => tag === etag || tag === "*");
}
