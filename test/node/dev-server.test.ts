import { once } from "node:events";
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  portFromEnv,
  portInUse,
  requirePortFree,
  UsageError,
  WranglerOutput,
} from "../../scripts/lib/dev-server.ts";

describe("portFromEnv", () => {
  it("reads a port, or gives the default when unset or empty", () => {
    expect(portFromEnv("PORT", 8787, {})).toBe(8787);
    expect(portFromEnv("PORT", 8787, { PORT: "" })).toBe(8787);
    expect(portFromEnv("PORT", 8787, { PORT: " 8788 " })).toBe(8788);
    expect(portFromEnv("MODEL_SERVER_PORT", 9000, { MODEL_SERVER_PORT: "65535" })).toBe(65535);
  });

  it("refuses what is not a port, naming the setting", () => {
    for (const value of ["abc", "0", "65536", "80.5", "-1", "8787x"]) {
      expect(() => portFromEnv("AIRLOCK_DB_PORT", 54329, { AIRLOCK_DB_PORT: value })).toThrow(
        new UsageError(`AIRLOCK_DB_PORT must be a port number (1-65535), not "${value}"`),
      );
    }
  });
});

describe("a port in use", () => {
  let server: Server | undefined;
  afterEach(async () => {
    if (server) await new Promise((resolve) => server?.close(resolve));
    server = undefined;
  });

  async function occupy(): Promise<number> {
    server = createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return (server.address() as { port: number }).port;
  }

  it("is told apart from a free one", async () => {
    const port = await occupy();
    expect(await portInUse(port)).toBe(true);
    await new Promise((resolve) => server?.close(resolve));
    server = undefined;
    expect(await portInUse(port)).toBe(false);
  });

  it("gives one line naming the setting to change and a free port to try", async () => {
    const port = await occupy();
    const error = await requirePortFree(port, "PORT", "npm start").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UsageError);
    const message = (error as Error).message;
    const match =
      /^Port (\d+) is in use: set PORT to another port, e\.g\. PORT=(\d+) npm start$/.exec(message);
    expect(match?.[1]).toBe(String(port));
    expect(Number(match?.[2])).toBeGreaterThan(port);
    expect(await portInUse(Number(match?.[2]))).toBe(false);
  });
});

describe("WranglerOutput", () => {
  const table = [
    "Your Worker has access to the following bindings:",
    "Binding                         Resource            Mode",
    'env.MAX_BODY_BYTES ("1048576")  Environment Variable  local',
    "",
  ];
  const cronWarning = [
    "\u001b[33m▲ \u001b[43;33m[\u001b[43;30mWARNING\u001b[43;33m]\u001b[0m \u001b[1mScheduled Workers are not automatically triggered during local development.\u001b[0m",
    "",
    "  To manually trigger a scheduled event, run:",
    '    curl "http://127.0.0.1:8787/cdn-cgi/local/scheduled"',
    "  For more details, see https://developers.cloudflare.com/workers/configuration/cron-triggers/",
    "",
    "",
  ];
  const run = (output: WranglerOutput, lines: string[]) => [
    ...lines.flatMap((line) => output.line(line)),
    ...output.flush(),
  ];

  it("shows the bindings table once, and again only when it changed", () => {
    const output = new WranglerOutput();
    const changed = [
      ...table.slice(0, 2),
      'env.MAX_BODY_BYTES ("2")  Environment Variable  local',
      "",
    ];
    expect(
      run(output, [
        "Using secrets defined in .dev.vars",
        ...table,
        "⎔ Starting local server...",
        "⎔ Connection status updated",
        ...table,
        "[wrangler:info] Ready on http://127.0.0.1:8787",
        "⎔ Reloading local server...",
        "⎔ Connection status updated",
        ...changed,
        "⎔ Local server updated and ready",
      ]),
    ).toEqual([
      "Using secrets defined in .dev.vars",
      ...table,
      "⎔ Starting local server...",
      "[wrangler:info] Ready on http://127.0.0.1:8787",
      "⎔ Reloading local server...",
      "⎔ Connection status updated",
      ...changed,
      "⎔ Local server updated and ready",
    ]);
  });

  it("leaves out the warning that crons do not fire locally (npm start's banner says how they do)", () => {
    const lines = [...table, ...cronWarning, "⎔ Starting local server..."];
    expect(run(new WranglerOutput(), lines)).toEqual([...table, "⎔ Starting local server..."]);
  });

  it("leaves out wrangler's line for each of the scheduler's requests, and only those", () => {
    const output = new WranglerOutput();
    const fired = "[wrangler:info] POST /__scheduled 200 OK (412ms)";
    const failed =
      "[wrangler:info] POST /__scheduled \u001b[1m500\u001b[0m Internal Server Error (9ms)";
    output.schedulerRequests = 2;
    expect(
      run(output, [fired, "[wrangler:info] GET /admin/models 200 OK (3ms)", failed, fired]),
    ).toEqual(["[wrangler:info] GET /admin/models 200 OK (3ms)", fired]);
    expect(output.schedulerRequests).toBe(0);
  });

  it("hands back what it held when the output ends", () => {
    const output = new WranglerOutput();
    const unfinished = ["⎔ Connection status updated", ...table.slice(0, 2)];
    expect(run(output, unfinished)).toEqual(unfinished);
  });
});
