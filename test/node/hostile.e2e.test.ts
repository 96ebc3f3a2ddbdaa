import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readDemo } from "../../scripts/lib/demo.ts";
import { startUpstreamPeer } from "../../scripts/lib/demo-model-server.ts";
import { type DevServer, freePort, startDevServer } from "../../scripts/lib/dev-server.ts";
import { ensureAdminToken } from "../../scripts/lib/environment.ts";
import { adminTokenFile, readAdminToken } from "../../scripts/lib/local-admin.ts";

/**
 * Hostile requests under `npm start`, each sent while valid traffic for other models flows: a
 * deeply nested body, a NUL in an attribute, a lone surrogate in a string feature and a NUL in a
 * kill switch's reason. Each is refused with a 4xx that names its field; none costs a valid
 * prediction its stored row or the audit trail an event.
 *
 * Everything waits on events (answers, rows appearing, the audit outbox draining), each with a
 * generous cap that only keeps a broken server from hanging the test.
 */

const demo = readDemo();
const CREDIT = "hostile-credit";
const FRAUD = "hostile-fraud";
const DEMO = demo.model.name;
/** Valid answers per client before the hostile requests go out, and again after they are back. */
const AROUND_HOSTILE = 4;
/** Caps on waits for rows and events; they decide nothing but a hang. */
const STORED_CAP_MS = 120_000;
const AUDIT_CAP_MS = 60_000;

interface Answer {
  status: number;
  text: string;
  json: unknown;
}

interface ErrorBody {
  error?: { code?: unknown; message?: unknown };
}

describe("hostile input under npm start", () => {
  const stateDir = mkdtempSync(join(tmpdir(), "airlock-hostile-"));
  const devVars = join(stateDir, "dev.vars");
  let server: DevServer | undefined;
  let upstream: Awaited<ReturnType<typeof startUpstreamPeer>> | undefined;
  let base = "";
  let token = "";
  let apiKey = "";

  /** What the valid traffic got: prediction ids per model, and every answer that was not 200. */
  const valid = { ids: new Map<string, string[]>(), failures: [] as string[], answered: 0 };
  /** The hostile requests' answers, by name. */
  const hostile = new Map<string, Answer>();
  let killSwitchAfterHostile: Answer | undefined;

  async function request(
    method: string,
    path: string,
    options: { body?: string; auth?: string } = {},
  ): Promise<Answer & { headers: Headers }> {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(options.auth ? { authorization: `Bearer ${options.auth}` } : {}),
        ...(options.body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(options.body === undefined ? {} : { body: options.body }),
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: response.status, text, json, headers: response.headers };
  }

  const admin = (method: string, path: string, body?: unknown) =>
    request(method, path, {
      auth: token,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  async function expectAdmin(method: string, path: string, body: unknown, status: number) {
    const answer = await admin(method, path, body);
    if (answer.status !== status)
      throw new Error(`${method} ${path}: ${answer.status} ${answer.text.slice(0, 500)}`);
    return answer;
  }

  /** Polls `probe` until it gives a value; undefined once `capMs` has passed without one. */
  async function until<T>(probe: () => Promise<T | undefined>, capMs: number) {
    const deadline = Date.now() + capMs;
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline) return undefined;
      await sleep(250);
    }
  }

  /** A valid prediction body for each model (every third one a batch of two rows). */
  function validBody(model: string, n: number): string {
    const credit = (i: number) => ({
      ...demo.example,
      income: 30_000 + 1_000 * i,
      age: 20 + (i % 60),
    });
    const fraud = (i: number) => ({
      amount: 20 * i,
      country: ["DE", "FR", "US"][i % 3],
      note: `order ${i}`,
    });
    const row = model === FRAUD ? fraud : credit;
    const inputs = n % 3 === 2 ? [row(n), row(n + 1000)] : row(n);
    return JSON.stringify({ inputs, key: `${model}-customer-${n % 7}`, attributes: { seg: "a" } });
  }

  beforeAll(async () => {
    upstream = await startUpstreamPeer();
    ensureAdminToken(devVars);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    let partial = "";
    server = await startDevServer(
      {
        AIRLOCK_STATE_DIR: stateDir,
        AIRLOCK_DEV_VARS: devVars,
        PORT: String(port),
        AIRLOCK_DB_PORT: String(await freePort()),
        // A cron's monitoring run would only add load to what is measured here.
        AIRLOCK_CRON: "0",
      },
      {
        onOutput: (text) => {
          const lines = (partial + text).split("\n");
          partial = lines.pop() ?? "";
          for (const line of lines) if (notable(line)) notes.push(line.slice(0, 600));
          notes.splice(0, Math.max(0, notes.length - 40));
        },
      },
    );

    // npm start's local admin acts here.
    token = readAdminToken(adminTokenFile(stateDir)) ?? "";
    // A copy of the demo model behind a key, with a builtin canary.
    await expectAdmin("POST", "/admin/models", { ...demo.model, name: CREDIT, public: false }, 201);
    for (const { version, upstream: definition } of demo.versions)
      await expectAdmin(
        "POST",
        `/admin/models/${CREDIT}/versions`,
        { version, upstream: definition },
        201,
      );
    const [champion, challenger] = demo.versions.map((v) => v.version);
    await expectAdmin(
      "PUT",
      `/admin/models/${CREDIT}/rollout`,
      { champion, canary: { version: challenger, percent: 50 } },
      200,
    );
    // A model with a free-text feature served over HTTP by a local model server, with a shadow.
    await expectAdmin(
      "POST",
      "/admin/models",
      {
        name: FRAUD,
        task: "classification",
        owner: "hostile-test@example.com",
        description: "Scores transactions; its note is free text",
        inputSchema: {
          type: "object",
          properties: {
            amount: { type: "number", minimum: 0 },
            country: { type: "string", enum: ["DE", "FR", "US"] },
            note: { type: "string", maxLength: 64 },
          },
          required: ["amount", "country"],
        },
        classes: ["legit", "fraud"],
        positiveClass: "fraud",
      },
      201,
    );
    for (const version of ["v1", "v2"])
      await expectAdmin(
        "POST",
        `/admin/models/${FRAUD}/versions`,
        {
          version,
          upstream: {
            kind: "http",
            url: `${upstream.url}/json/score`,
            protocol: "json",
            timeoutMs: 5_000,
          },
        },
        201,
      );
    await expectAdmin(
      "PUT",
      `/admin/models/${FRAUD}/rollout`,
      { champion: "v1", shadows: [{ version: "v2", sampleRate: 1 }] },
      200,
    );
    const key = await expectAdmin(
      "POST",
      "/admin/keys",
      { name: "hostile test", models: [CREDIT, FRAUD] },
      201,
    );
    apiKey = (key.json as { key: string }).key;

    // Valid traffic for every model, one client each; the hostile requests go out once each
    // client has had answers, and the clients go on until each has had more after them.
    let hostileDone = false;
    const warm: Promise<void>[] = [];
    const clients = [DEMO, CREDIT, FRAUD].map((model) => {
      let warmed: () => void = () => {};
      warm.push(
        new Promise<void>((resolve) => {
          warmed = resolve;
        }),
      );
      valid.ids.set(model, []);
      return (async () => {
        let answered = 0;
        let afterHostile = 0;
        for (let n = 0; !(hostileDone && afterHostile >= AROUND_HOSTILE); n++) {
          const answer = await request("POST", `/v1/models/${model}/predict`, {
            body: validBody(model, n),
            ...(model === DEMO ? {} : { auth: apiKey }),
          });
          valid.answered++;
          if (answer.status === 200) {
            const ids = (answer.headers.get("x-airlock-prediction-id") ?? "")
              .split(",")
              .filter(Boolean);
            valid.ids.get(model)?.push(...ids);
          } else
            valid.failures.push(`${model} #${n}: ${answer.status} ${answer.text.slice(0, 300)}`);
          answered++;
          if (answered >= AROUND_HOSTILE) warmed();
          if (hostileDone) afterHostile++;
          // A client that gets nothing but failures still ends.
          if (n > 500) break;
        }
      })();
    });
    await Promise.all(warm);

    const nested = `{"inputs":{"income":${"[".repeat(10_000)}1${"]".repeat(10_000)}}}`;
    const sends: [string, Promise<Answer>][] = [
      ["deeply nested body", request("POST", `/v1/models/${DEMO}/predict`, { body: nested })],
      [
        "NUL in an attribute",
        request("POST", `/v1/models/${CREDIT}/predict`, {
          auth: apiKey,
          body: `{"inputs":${JSON.stringify(demo.example)},"attributes":{"seg":"a\\u0000b"}}`,
        }),
      ],
      [
        "lone surrogate in a string feature",
        request("POST", `/v1/models/${FRAUD}/predict`, {
          auth: apiKey,
          body: '{"inputs":{"amount":5,"country":"DE","note":"\\ud800"}}',
        }),
      ],
      [
        "NUL in a kill switch's reason",
        request("POST", `/admin/models/${FRAUD}/kill-switch`, {
          auth: token,
          body: '{"scope":"challengers","reason":"nul\\u0000reason"}',
        }),
      ],
    ];
    for (const [name, sent] of sends) {
      hostile.set(
        name,
        await sent.catch((error: unknown) => ({
          status: 0,
          text: `no answer: ${String(error)}`,
          json: undefined,
        })),
      );
    }
    hostileDone = true;
    await Promise.all(clients);

    // Then a valid kill switch on the model the NUL reason was sent to: engaged and released.
    killSwitchAfterHostile = await admin("POST", `/admin/models/${FRAUD}/kill-switch`, {
      scope: "challengers",
      reason: "valid, after the hostile one",
    });
    await expectAdmin("DELETE", `/admin/models/${FRAUD}/kill-switch`, undefined, 200);
  }, 240_000);

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  /**
   * What the server logged about errors, the log pipeline and reloads (the last 40 such lines).
   * (wrangler dev reloads when a source file changes; a reload drops the local queue's messages.)
   */
  const notes: string[] = [];
  const notable = (line: string) =>
    !line.startsWith("[wrangler:info]") &&
    /"level":"(error|warn)"|prediction_logs|audit|outbox|rror|Reloading local server/.test(line);
  const tail = () => notes.join("\n");

  it.each([
    ["deeply nested body", /inputs\.income/],
    ["NUL in an attribute", /attributes\.seg/],
    ["lone surrogate in a string feature", /inputs\.note/],
    ["NUL in a kill switch's reason", /\breason\b/],
  ])("refuses a %s with a 4xx JSON error naming the field", (name, field) => {
    const answer = hostile.get(name);
    expect(answer, name).toBeDefined();
    const detail = `${answer?.status} ${answer?.text.slice(0, 500)}`;
    expect(answer?.status, detail).toBeGreaterThanOrEqual(400);
    expect(answer?.status, detail).toBeLessThan(500);
    const error = (answer?.json as ErrorBody | undefined)?.error;
    expect(typeof error?.code, detail).toBe("string");
    expect(String(error?.message), detail).toMatch(field);
  });

  it("answers every valid prediction sent around them", () => {
    expect(valid.failures).toEqual([]);
    for (const [model, ids] of valid.ids) expect(ids.length, model).toBeGreaterThan(AROUND_HOSTILE);
  });

  it(
    "stores every valid prediction",
    async () => {
      const modelOf = new Map(
        [...valid.ids].flatMap(([model, ids]) => ids.map((id) => [id, model] as const)),
      );
      const pending = new Set(modelOf.keys());
      expect(pending.size).toBeGreaterThan(0);
      const lastAnswer = new Map<string, string>();
      await until(async () => {
        for (const id of [...pending]) {
          const answer = await admin("GET", `/admin/predictions/${id}`);
          const results = (answer.json as { results?: { role: string }[] } | undefined)?.results;
          if (answer.status === 200 && results?.some((r) => r.role !== "shadow"))
            pending.delete(id);
          else lastAnswer.set(id, `${answer.status} ${answer.text.slice(0, 200)}`);
        }
        return pending.size === 0 ? true : undefined;
      }, STORED_CAP_MS);
      expect(
        [...pending].map((id) => `${modelOf.get(id)} ${id}: ${lastAnswer.get(id)}`),
        `${pending.size} of ${modelOf.size} valid predictions never stored; server output:\n${tail()}`,
      ).toEqual([]);
    },
    STORED_CAP_MS + 60_000,
  );

  it(
    "keeps the audit trail complete: a valid kill switch after the NUL one, nothing pending",
    async () => {
      expect(killSwitchAfterHostile?.status, killSwitchAfterHostile?.text).toBe(200);
      // The rollout objects' outboxes drain into the trail.
      const pendingByModel = new Map<string, unknown>();
      await until(async () => {
        for (const model of [CREDIT, FRAUD, DEMO]) {
          const view = await admin("GET", `/admin/models/${model}/rollout`);
          pendingByModel.set(
            model,
            (view.json as { pendingAuditEvents?: unknown })?.pendingAuditEvents,
          );
        }
        return [...pendingByModel.values()].every((n) => n === 0) ? true : undefined;
      }, AUDIT_CAP_MS);
      expect(Object.fromEntries(pendingByModel), `server output:\n${tail()}`).toEqual({
        [CREDIT]: 0,
        [FRAUD]: 0,
        [DEMO]: 0,
      });

      const audit = await admin("GET", `/admin/audit?target=models/${FRAUD}&limit=200`);
      expect(audit.status).toBe(200);
      const items = (audit.json as { items: { action: string; after: unknown }[] }).items;
      const actions = items.map((e) => e.action).reverse();
      expect(actions).toEqual([
        "model.create",
        "version.create",
        "version.create",
        "rollout.update",
        // The client key made for the traffic changes the object's registry data.
        "registry.sync",
        "kill_switch.engage",
        "kill_switch.release",
      ]);
      const engaged = items.find((e) => e.action === "kill_switch.engage");
      expect(JSON.stringify(engaged?.after)).toContain("valid, after the hostile one");
      expect(JSON.stringify(items)).not.toContain("nul\\u0000reason");

      const credit = await admin("GET", `/admin/audit?target=models/${CREDIT}&limit=200`);
      expect(
        (credit.json as { items: { action: string }[] }).items.map((e) => e.action).reverse(),
      ).toEqual([
        "model.create",
        "version.create",
        "version.create",
        "rollout.update",
        "registry.sync",
      ]);
    },
    AUDIT_CAP_MS + 60_000,
  );

  it("leaves no dead letter holding valid traffic", async () => {
    const ids = [...valid.ids.values()].flat();
    const holding: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await admin(
        "GET",
        `/admin/dead-letters?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      );
      expect(page.status, page.text.slice(0, 300)).toBe(200);
      const { items, nextCursor } = page.json as {
        items: { id: string; error: string; body: unknown }[];
        nextCursor: string | null;
      };
      for (const item of items) {
        const body = JSON.stringify(item.body);
        if (ids.some((id) => body.includes(id)))
          holding.push(`${item.id}: ${item.error.slice(0, 300)}`);
      }
      cursor = nextCursor;
    } while (cursor);
    expect(holding).toEqual([]);
  });
});
