import { once } from "node:events";
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  portFromEnv,
  portInUse,
  requirePortFree,
  UsageError,
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
