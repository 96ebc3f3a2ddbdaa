/**
 * The local alert receiver as the Worker sees it: a channel that answers "ok"
 * and records, then rate limits and goes down when told to through its
 * control API.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

const receiverBase = String((env as unknown as Record<string, unknown>).TEST_ALERT_RECEIVER ?? "");

interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
  status: number | null;
  at: string;
}

/** A channel of its own for each test, so tests never see each other's requests. */
function channel(name: string): string {
  return `/hooks/${name}/${crypto.randomUUID()}`;
}

function post(path: string, body: string) {
  return fetch(`${receiverBase}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-airlock-signature": "v1=test" },
    body,
  });
}

async function control(path: string, behaviour: Record<string, unknown>) {
  const response = await fetch(`${receiverBase}/__control${path}`, {
    method: "POST",
    body: JSON.stringify(behaviour),
  });
  expect(response.status).toBe(200);
  await response.body?.cancel();
}

async function received(path: string): Promise<Received[]> {
  const response = await fetch(`${receiverBase}/__requests?path=${encodeURIComponent(path)}`);
  return (await response.json()) as Received[];
}

describe("alert receiver", () => {
  it("is bound for the Worker tests", () => {
    expect(receiverBase).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it("answers 200 ok and records the path, headers and body", async () => {
    const path = channel("slack");
    const response = await post(path, '{"text":"hello"}');
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("ok");
    const [request, ...rest] = await received(path);
    expect(rest).toEqual([]);
    expect(request).toMatchObject({ path, body: '{"text":"hello"}', status: 200 });
    expect(request?.headers["x-airlock-signature"]).toBe("v1=test");
    expect(Date.parse(request?.at ?? "")).not.toBeNaN();
  });

  it("rate limits with 429 and Retry-After for the requests asked, then answers again", async () => {
    const path = channel("slack");
    await control(path, { mode: "rate_limit", retryAfter: 7, times: 2 });
    for (let i = 0; i < 2; i++) {
      const limited = await post(path, `{"n":${i}}`);
      expect(limited.status).toBe(429);
      expect(limited.headers.get("retry-after")).toBe("7");
      await limited.body?.cancel();
    }
    const after = await post(path, '{"n":2}');
    expect(after.status).toBe(200);
    await after.body?.cancel();
    expect((await received(path)).map((r) => [r.body, r.status])).toEqual([
      ['{"n":0}', 429],
      ['{"n":1}', 429],
      ['{"n":2}', 200],
    ]);
  });

  it("resets the connection while down, still recording, until set back to ok", async () => {
    const path = channel("webhook");
    await control(path, { mode: "down" });
    await expect(post(path, '{"n":0}')).rejects.toThrow();
    await expect(post(path, '{"n":1}')).rejects.toThrow();
    await control(path, { mode: "ok" });
    const back = await post(path, '{"n":2}');
    expect(back.status).toBe(200);
    await back.body?.cancel();
    expect((await received(path)).map((r) => [r.body, r.status])).toEqual([
      ['{"n":0}', null],
      ['{"n":1}', null],
      ['{"n":2}', 200],
    ]);
  });

  it("answers 500 in error mode for the requests asked", async () => {
    const path = channel("webhook");
    await control(path, { mode: "error", times: 1 });
    const failed = await post(path, "{}");
    expect(failed.status).toBe(500);
    await failed.body?.cancel();
    const ok = await post(path, "{}");
    expect(ok.status).toBe(200);
    await ok.body?.cancel();
    expect((await received(path)).map((r) => r.status)).toEqual([500, 200]);
  });

  it("refuses an unknown mode and paths outside /hooks/", async () => {
    const bad = await fetch(`${receiverBase}/__control/hooks/x`, {
      method: "POST",
      body: JSON.stringify({ mode: "sometimes" }),
    });
    expect(bad.status).toBe(400);
    await bad.body?.cancel();
    const outside = await post("/elsewhere", "{}");
    expect(outside.status).toBe(404);
    await outside.body?.cancel();
  });
});
