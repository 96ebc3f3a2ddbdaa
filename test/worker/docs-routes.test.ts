/// <reference types="vite/client" />
/**
 * The README and docs/ hold to the app: every route they name (`GET /admin/...` in prose and
 * tables, and the URL of every curl example) is one the app serves under that method, every
 * route the app serves is named somewhere, and every link between them (file and anchor)
 * resolves. The markdown is read as it is in the repository, through Vite's `?raw` imports.
 */
import { describe, expect, it } from "vitest";
import { app } from "../../functions/app";
import readme from "../../README.md?raw";

/** Markdown files by path from the repository root: README.md and everything under docs/. */
const markdown: Record<string, string> = {
  "README.md": readme,
  ...Object.fromEntries(
    Object.entries(
      import.meta.glob<string>("../../docs/**/*.md", {
        query: "?raw",
        import: "default",
        eager: true,
      }),
    ).map(([path, text]) => [fromTestPath(path), text]),
  ),
};

/** Every other file a doc may link to (not loaded: only their names). */
const repositoryFiles = new Set(
  Object.keys(
    import.meta.glob([
      "../../*",
      "../../{.ci,bench,durable-objects,functions,migrations,scripts,shared,test}/**/*",
    ]),
  ).map(fromTestPath),
);

function fromTestPath(path: string): string {
  return path.replace(/^\.\.\/\.\.\//, "");
}

/**
 * Paths served by the demo model server and the demo alert receiver, which the docs name too:
 * they are not the app's.
 */
const FOREIGN_PREFIXES = ["/__control/", "/__requests", "/__messages", "/hooks/", "/json/"];

const METHODS = "GET|POST|PUT|PATCH|DELETE|HEAD";

interface RouteMention {
  method: string;
  path: string;
  /** file:line, for the failure message. */
  where: string;
}

interface Line {
  text: string;
  number: number;
  inCode: boolean;
}

/** Lines of a markdown file, each marked as inside a fenced code block or not. */
function linesOf(text: string): Line[] {
  let inCode = false;
  return text.split("\n").map((text, index) => {
    const fence = /^\s*(```|~~~)/.test(text);
    if (fence) inCode = !inCode;
    return { text, number: index + 1, inCode: inCode || fence };
  });
}

/**
 * `GET /admin/models/{model}` and `GET`/`PUT /admin/...` outside code blocks; a code span may
 * break across lines.
 */
function proseMentions(file: string, text: string): RouteMention[] {
  const mentions: RouteMention[] = [];
  const prose = linesOf(text)
    .map((line) => (line.inCode ? "" : line.text))
    .join("\n");
  const pattern = new RegExp(
    `\\b((?:${METHODS})(?:\`?/\`?(?:${METHODS}))*)\`?\\s+\`?(/[^\\s\`'"),;|<>]*)`,
    "g",
  );
  for (const match of prose.matchAll(pattern)) {
    const line = prose.slice(0, match.index).split("\n").length;
    const methods = (match[1] ?? "").split(/`?\/`?/);
    for (const path of expandOptional((match[2] ?? "").split("](")[0] ?? "")) {
      for (const method of methods) {
        mentions.push({ method, path: cleanPath(path), where: `${file}:${line}` });
      }
    }
  }
  return mentions;
}

/** `/v2/models/{model}/versions/{version}[/ready]`: both paths. */
function expandOptional(path: string): string[] {
  const optional = /\[([^\]]*)\]/.exec(path);
  if (!optional) return [path];
  const before = path.slice(0, optional.index);
  const after = path.slice(optional.index + optional[0].length);
  return [...expandOptional(before + after), ...expandOptional(before + optional[1] + after)];
}

/** Without the query, the fragment and the punctuation that ends a sentence. */
function cleanPath(path: string): string {
  return path.replace(/[?#].*$/, "").replace(/[.:\]]+$/, "");
}

/** Options of curl that take a value (the URL is the first argument that is none of these). */
const CURL_OPTIONS_WITH_VALUE = new Set([
  "-H",
  "--header",
  "-d",
  "--data",
  "--data-raw",
  "--data-binary",
  "--data-urlencode",
  "--json",
  "-X",
  "--request",
  "-o",
  "--output",
  "-w",
  "--write-out",
  "-u",
  "--user",
  "-F",
  "--form",
  "-A",
  "--user-agent",
  "-e",
  "--referer",
  "-m",
  "--max-time",
  "--connect-timeout",
  "-b",
  "--cookie",
  "-c",
  "--cookie-jar",
  "--retry",
  "-T",
  "--upload-file",
]);
const CURL_BODY_OPTIONS = new Set([
  "-d",
  "--data",
  "--data-raw",
  "--data-binary",
  "--data-urlencode",
  "--json",
  "-F",
  "--form",
]);

/** Shell words of a command line: quotes removed, `$(...)` kept whole, stopping at | ; && #. */
function shellWords(command: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  for (let i = 0; i < command.length; i++) {
    const char = command[i] ?? "";
    if (char === "'" || char === '"') {
      const end = command.indexOf(char, i + 1);
      word += command.slice(i + 1, end === -1 ? undefined : end);
      i = end === -1 ? command.length : end;
      inWord = true;
    } else if (char === "$" && command[i + 1] === "(") {
      let depth = 0;
      let j = i;
      for (; j < command.length; j++) {
        if (command[j] === "(") depth++;
        if (command[j] === ")" && --depth === 0) break;
      }
      word += command.slice(i, j + 1);
      i = j;
      inWord = true;
    } else if (/\s/.test(char)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else if ((char === "|" || char === ";" || char === "&" || char === "#") && !inWord) {
      break;
    } else {
      word += char;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** The Airlock path a curl URL names, or null when it names another server. */
function airlockPath(url: string): string | null {
  const shellBase = /^\$(?:\{\w+\}|\w+)(\/.*)?$/.exec(url);
  if (shellBase) return shellBase[1] ?? "/";
  const absolute = /^https?:\/\/([^/]+)(\/.*)?$/.exec(url);
  if (!absolute) return null;
  const host = absolute[1] ?? "";
  const isAirlock = /^(127\.0\.0\.1|localhost):8787$/.test(host) || host.endsWith(".workers.dev");
  return isAirlock ? (absolute[2] ?? "/") : null;
}

/** The method and URL of every curl command in the code blocks. */
function curlMentions(file: string, text: string): RouteMention[] {
  const mentions: RouteMention[] = [];
  const lines = linesOf(text);
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i];
    if (!first?.inCode) continue;
    let command = first.text;
    // A command continues over lines that end in a backslash.
    while (command.endsWith("\\") && lines[i + 1]?.inCode) {
      command = `${command.slice(0, -1)} ${lines[++i]?.text ?? ""}`;
    }
    for (const start of command.matchAll(/(?:^|[\s;|&(])curl\s/g)) {
      const words = shellWords(command.slice((start.index ?? 0) + start[0].length));
      let method: string | undefined;
      let hasBody = false;
      let url: string | undefined;
      for (let w = 0; w < words.length; w++) {
        const current = words[w] ?? "";
        if (current === "-X" || current === "--request") method = words[w + 1];
        if (CURL_BODY_OPTIONS.has(current)) hasBody = true;
        if (current === "-I" || current === "--head") method ??= "HEAD";
        if (CURL_OPTIONS_WITH_VALUE.has(current)) {
          w++;
          continue;
        }
        if (current.startsWith("-")) continue;
        url ??= current;
      }
      const path = url === undefined ? null : airlockPath(url);
      if (path === null) continue;
      mentions.push({
        method: method ?? (hasBody ? "POST" : "GET"),
        path: cleanPath(path),
        where: `${file}:${first.number}`,
      });
    }
  }
  return mentions;
}

function routeMentions(file: string, text: string): RouteMention[] {
  return [...proseMentions(file, text), ...curlMentions(file, text)].filter(
    (mention) => !FOREIGN_PREFIXES.some((prefix) => mention.path.startsWith(prefix)),
  );
}

/** A segment that stands for any value: `{model}`, `:model`, `<id>`, `$MODEL`, `dst_…`, `...`. */
function isPlaceholder(segment: string): boolean {
  return /^\{[^}]+\}$|^:\w+$|^<[^>]+>$|^\$|…|\.\.\./.test(segment);
}

interface ServedRoute {
  method: string;
  path: string;
  segments: string[];
}

const served: ServedRoute[] = [
  ...new Map(
    app.routes
      .filter((route) => route.method !== "ALL")
      .map((route) => [
        `${route.method} ${route.path}`,
        { method: route.method, path: route.path, segments: route.path.split("/") },
      ]),
  ).values(),
];

/** Whether a documented method and path is this served route. */
function matches(mention: Pick<RouteMention, "method" | "path">, route: ServedRoute): boolean {
  const method = mention.method === "HEAD" ? "GET" : mention.method;
  if (method !== route.method) return false;
  const segments = mention.path.split("/");
  if (segments.length !== route.segments.length) return false;
  return segments.every((segment, i) => {
    const expected = route.segments[i] ?? "";
    if (expected.startsWith(":")) return segment !== "";
    return !isPlaceholder(segment) && segment === expected;
  });
}

function unservedMentions(mentions: RouteMention[]): string[] {
  return mentions
    .filter((mention) => !served.some((route) => matches(mention, route)))
    .map((mention) => `${mention.where}: ${mention.method} ${mention.path}`);
}

/** GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens, repeats numbered. */
function headingAnchors(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of linesOf(text)) {
    const heading = line.inCode ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line.text);
    if (!heading) continue;
    const base = (heading[1] ?? "")
      .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
      .replace(/ /g, "-");
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

/** Relative links `[text](target)` outside code, with where they are. */
function relativeLinks(file: string, text: string): { target: string; where: string }[] {
  const links: { target: string; where: string }[] = [];
  for (const line of linesOf(text)) {
    if (line.inCode) continue;
    const withoutCode = line.text.replace(/`[^`]*`/g, "code");
    for (const match of withoutCode.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = match[1] ?? "";
      if (/^[a-z][a-z+.-]*:/i.test(target)) continue;
      links.push({ target, where: `${file}:${line.number}` });
    }
  }
  return links;
}

function resolve(from: string, target: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const part of target.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== "." && part !== "") parts.push(part);
  }
  return parts.join("/");
}

function brokenLinks(files: Record<string, string>): string[] {
  const broken: string[] = [];
  for (const [file, text] of Object.entries(files)) {
    for (const { target, where } of relativeLinks(file, text)) {
      const [pathPart = "", anchor] = target.split("#");
      const path = pathPart === "" ? file : resolve(file, decodeURIComponent(pathPart));
      const linked = files[path];
      if (linked === undefined) {
        const isFile = repositoryFiles.has(path);
        const isFolder = [...repositoryFiles].some((name) => name.startsWith(`${path}/`));
        if (!isFile && !isFolder) broken.push(`${where}: ${target} (no such file: ${path})`);
        continue;
      }
      if (anchor !== undefined && !headingAnchors(linked).has(anchor)) {
        broken.push(`${where}: ${target} (no heading #${anchor} in ${path})`);
      }
    }
  }
  return broken;
}

const allMentions = Object.entries(markdown).flatMap(([file, text]) => routeMentions(file, text));

describe("docs: routes and links", () => {
  it("reads the README and every file under docs/", () => {
    expect(Object.keys(markdown)).toEqual(
      expect.arrayContaining(["README.md", "docs/README.md", "docs/api.md", "docs/monitoring.md"]),
    );
    expect(repositoryFiles).toContain("wrangler.toml");
  });

  it("names only routes the app serves, under the method it serves them", () => {
    // The scan must see the docs' routes, or this test proves nothing.
    expect(allMentions.length).toBeGreaterThan(100);
    expect(allMentions.some((m) => m.where.startsWith("docs/monitoring.md"))).toBe(true);
    expect(unservedMentions(allMentions)).toEqual([]);
  });

  it("names every route the app serves", () => {
    // Served as well as POST, for a person's convenience; documented as POST.
    const undocumentedOnPurpose = new Set(["GET /__scheduled"]);
    const undocumented = served
      .filter((route) => !undocumentedOnPurpose.has(`${route.method} ${route.path}`))
      .filter((route) => !allMentions.some((mention) => matches(mention, route)))
      .map((route) => `${route.method} ${route.path}`);
    expect(undocumented).toEqual([]);
  });

  it("links only to files and headings that exist", () => {
    expect(brokenLinks(markdown)).toEqual([]);
  });
});

describe("docs: the checks themselves", () => {
  const sample = [
    "# A sample",
    "",
    "| `GET /admin/models/{model}` | fine |",
    "| `GET`/`PUT /admin/models/{model}/alert-rules` | fine |",
    "| `POST /admin/models/{model}/promote` | made up |",
    "See `GET /admin/nope?x=1`. And [a link](#a-sample), [a bad one](#no-such-heading).",
    "",
    "```sh",
    'curl -sS -X POST "$AIRLOCK/admin/monitoring/runs" -H "authorization: Bearer $T"',
    "curl -sS $A/admin/models/demo-credit-risk/rollout \\",
    "  -H 'content-type: application/json' -d '{}'",
    "curl -sS http://127.0.0.1:8787/admin/made-up -H 'x: y'",
    "curl -sS http://127.0.0.1:8790/__control/hooks/x -d '{}'",
    "```",
  ].join("\n");

  it("finds routes in tables, prose and curl commands, and flags the made-up ones", () => {
    const mentions = routeMentions("sample.md", sample);
    expect(mentions.map((m) => `${m.method} ${m.path}`)).toEqual([
      "GET /admin/models/{model}",
      "GET /admin/models/{model}/alert-rules",
      "PUT /admin/models/{model}/alert-rules",
      "POST /admin/models/{model}/promote",
      "GET /admin/nope",
      "POST /admin/monitoring/runs",
      "POST /admin/models/demo-credit-risk/rollout",
      "GET /admin/made-up",
    ]);
    expect(unservedMentions(mentions)).toEqual([
      "sample.md:5: POST /admin/models/{model}/promote",
      "sample.md:6: GET /admin/nope",
      // The rollout is read with GET and set with PUT, never POSTed.
      "sample.md:10: POST /admin/models/demo-credit-risk/rollout",
      "sample.md:12: GET /admin/made-up",
    ]);
  });

  it("flags a link to a heading or file that does not exist", () => {
    expect(
      brokenLinks({ "docs/sample.md": `${sample}\n[gone](missing.md) [ok](../README.md#roadmap)` }),
    ).toEqual([
      "docs/sample.md:6: #no-such-heading (no heading #no-such-heading in docs/sample.md)",
      "docs/sample.md:15: missing.md (no such file: docs/missing.md)",
    ]);
  });

  it("makes anchors as GitHub does", () => {
    expect([
      ...headingAnchors(
        "# Egress: what Airlock calls\n## The canary's control\n## `npm start`\n## Tests\n## Tests",
      ),
    ]).toEqual([
      "egress-what-airlock-calls",
      "the-canarys-control",
      "npm-start",
      "tests",
      "tests-1",
    ]);
  });
});
