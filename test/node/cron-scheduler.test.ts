import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type CronScheduler,
  cronWanted,
  nextFireTimes,
  readCronTriggers,
  type SchedulerClock,
  startCronScheduler,
  summarize,
} from "../../scripts/lib/cron-scheduler.ts";
import { projectRoot } from "../../scripts/lib/environment.ts";

const at = (iso: string) => Date.parse(iso);
const iso = (times: number[]) => times.map((t) => new Date(t).toISOString());

describe("nextFireTimes", () => {
  it("gives the next times strictly after the given one, in UTC", () => {
    expect(iso(nextFireTimes("*/15 * * * *", at("2026-12-07T05:47:30Z"), 3))).toEqual([
      "2026-12-07T06:00:00.000Z",
      "2026-12-07T06:15:00.000Z",
      "2026-12-07T06:30:00.000Z",
    ]);
    // A time at which it fires is not "after" itself.
    expect(iso(nextFireTimes("*/15 * * * *", at("2026-12-07T06:00:00Z"), 1))).toEqual([
      "2026-12-07T06:15:00.000Z",
    ]);
    expect(iso(nextFireTimes("*/15 * * * *", at("2026-12-07T05:59:59.999Z"), 1))).toEqual([
      "2026-12-07T06:00:00.000Z",
    ]);
    expect(iso(nextFireTimes("17 * * * *", at("2026-12-07T06:17:00.001Z"), 2))).toEqual([
      "2026-12-07T07:17:00.000Z",
      "2026-12-07T08:17:00.000Z",
    ]);
    expect(iso(nextFireTimes("59 23 31 12 *", at("2026-12-31T23:59:00Z"), 1))).toEqual([
      "2027-12-31T23:59:00.000Z",
    ]);
  });

  it("numbers weekdays as Cloudflare does: 1-7 from Sunday", () => {
    // 2026-12-07 is a Monday.
    const monday = at("2026-12-07T00:00:00Z");
    const sunday = ["2026-12-13T17:00:00.000Z"];
    expect(iso(nextFireTimes("0 17 * * 1", monday))).toEqual(sunday);
    expect(iso(nextFireTimes("0 17 * * sun", monday))).toEqual(sunday);
    expect(iso(nextFireTimes("0 17 * * SUN", monday))).toEqual(sunday);
    const weekdays = iso(nextFireTimes("10 7 * * 2-6", monday, 6));
    expect(iso(nextFireTimes("10 7 * * mon-fri", monday, 6))).toEqual(weekdays);
    expect(weekdays.at(-1)).toBe("2026-12-14T07:10:00.000Z");
  });

  it("reads Cloudflare's L, W and # extensions", () => {
    const from = at("2026-12-07T00:00:00Z");
    // The last Friday of the month, and the last weekday of the month.
    expect(iso(nextFireTimes("0 18 * * 6L", from, 2))).toEqual([
      "2026-12-25T18:00:00.000Z",
      "2027-01-29T18:00:00.000Z",
    ]);
    expect(iso(nextFireTimes("0 18 * * friL", from, 1))).toEqual(["2026-12-25T18:00:00.000Z"]);
    expect(iso(nextFireTimes("59 23 LW * *", from, 2))).toEqual([
      "2026-12-31T23:59:00.000Z",
      "2027-01-29T23:59:00.000Z",
    ]);
    // The second Tuesday.
    expect(iso(nextFireTimes("0 9 * * 3#2", from, 1))).toEqual(["2026-12-08T09:00:00.000Z"]);
  });

  it("gives nothing for a schedule that never comes", () => {
    expect(nextFireTimes("0 0 30 2 *", at("2026-12-07T00:00:00Z"), 3)).toEqual([]);
  });

  it("refuses what Cloudflare refuses", () => {
    expect(() => nextFireTimes("* * * * * *", 0)).toThrow(/5 parts/);
    expect(() => nextFireTimes("61 * * * *", 0)).toThrow();
    expect(() => nextFireTimes("not a cron", 0)).toThrow();
  });
});

describe("readCronTriggers", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "airlock-crons-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const toml = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  it("reads [triggers] crons", () => {
    const file = toml(
      "ok.toml",
      'name = "x"\n[vars]\nA = "1"\n\n[triggers]\n# hourly\ncrons = ["17 * * * *", "*/15 * * * *"]\n',
    );
    expect(readCronTriggers(file)).toEqual(["17 * * * *", "*/15 * * * *"]);
  });

  it("reads the project's wrangler.toml", () => {
    const crons = readCronTriggers(join(projectRoot, "wrangler.toml"));
    expect(crons.length).toBeGreaterThan(0);
  });

  it("gives no crons when there are no triggers", () => {
    expect(readCronTriggers(toml("none.toml", 'name = "x"\n'))).toEqual([]);
  });

  it("names an expression Cloudflare would refuse", () => {
    const file = toml("bad.toml", '[triggers]\ncrons = ["*/15 * * * *", "0 0 * *"]\n');
    expect(() => readCronTriggers(file)).toThrow(/cron "0 0 \* \*" is not valid/);
    expect(() => readCronTriggers(toml("str.toml", '[triggers]\ncrons = "* * * * *"\n'))).toThrow(
      /must be a list of strings/,
    );
  });
});

describe("cronWanted", () => {
  it("is on unless --no-cron or AIRLOCK_CRON=0 (or false, no, off)", () => {
    expect(cronWanted([], {})).toBe(true);
    expect(cronWanted([], { AIRLOCK_CRON: "1" })).toBe(true);
    expect(cronWanted(["--no-demo"], {})).toBe(true);
    expect(cronWanted(["--no-cron"], {})).toBe(false);
    for (const value of ["0", "false", "No", " off "])
      expect(cronWanted([], { AIRLOCK_CRON: value })).toBe(false);
  });
});

describe("summarize", () => {
  it("puts a job's report on one short line, leaving out what is zero or empty", () => {
    expect(
      summarize({
        runId: 3,
        kind: "scheduled",
        windows: 2,
        results: 0,
        computed: [{ model: "m" }, { model: "n" }],
        redone: [],
        missed: null,
        marked: { labels: 0, outcomes: 1 },
        alerts: { opened: 1, notices: [7] },
      }),
    ).toBe(
      "runId=3 kind=scheduled windows=2 computed=2 marked.outcomes=1 alerts.opened=1 alerts.notices=1",
    );
    expect(summarize({ moved: { predictions: 0 }, dropped: [], deleted: 0 })).toBe("all zero");
    expect(summarize(undefined)).toBe("done");
    expect(summarize("text")).toBe('"text"');
    const long = summarize(
      Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, i + 1])),
    );
    expect(long).toHaveLength(200);
    expect(long.endsWith("…")).toBe(true);
  });
});

/** A clock the test moves; it tells when the scheduler has gone to sleep, and until when. */
class TestClock implements SchedulerClock {
  private sleepers: { time: number; wake: () => void }[] = [];
  private watchers: { time: number; notice: () => void }[] = [];
  private time: number;
  constructor(time: number) {
    this.time = time;
  }
  now() {
    return this.time;
  }
  sleepUntil(time: number, signal: AbortSignal): Promise<void> {
    if (time <= this.time || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const sleeper = { time, wake: resolve };
      this.sleepers.push(sleeper);
      signal.addEventListener("abort", () => resolve());
      for (const watcher of this.watchers.filter((w) => w.time === time)) watcher.notice();
      this.watchers = this.watchers.filter((w) => w.time !== time);
    });
  }
  /** Resolves once some loop sleeps until exactly `time`. */
  sleepingUntil(time: number): Promise<void> {
    if (this.sleepers.some((s) => s.time === time)) return Promise.resolve();
    return new Promise((notice) => this.watchers.push({ time, notice }));
  }
  advanceTo(time: number) {
    this.time = time;
    const due = this.sleepers.filter((s) => s.time <= time);
    this.sleepers = this.sleepers.filter((s) => s.time > time);
    for (const sleeper of due) sleeper.wake();
  }
}

interface Received {
  method: string;
  url: URL;
  res: ServerResponse;
  closed: Promise<void>;
}

/** Stands in for the Worker: hands each request to the test, which answers when it likes. */
class WorkerStandIn {
  private server: Server;
  private queue: Received[] = [];
  private waiting: ((request: Received) => void)[] = [];
  received = 0;
  constructor() {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      this.received += 1;
      const request: Received = {
        method: req.method ?? "",
        url: new URL(req.url ?? "/", "http://worker"),
        res,
        closed: once(res, "close").then(() => {}),
      };
      const waiter = this.waiting.shift();
      if (waiter) waiter(request);
      else this.queue.push(request);
    });
  }
  async listen(): Promise<string> {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    const address = this.server.address();
    if (!address || typeof address === "string") throw new Error("no address");
    return `http://127.0.0.1:${address.port}`;
  }
  nextRequest(): Promise<Received> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function answer(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

/** Log lines, and a way to wait for the next one. */
function logRecorder() {
  const lines: string[] = [];
  let waiting: ((line: string) => void)[] = [];
  return {
    lines,
    log: (line: string) => {
      lines.push(line);
      const waiters = waiting;
      waiting = [];
      for (const waiter of waiters) waiter(line);
    },
    next: () => new Promise<string>((resolve) => waiting.push(resolve)),
  };
}

describe("the cron scheduler", () => {
  let worker: WorkerStandIn;
  let baseUrl: string;
  let scheduler: CronScheduler | undefined;
  beforeAll(async () => {
    worker = new WorkerStandIn();
    baseUrl = await worker.listen();
  });
  afterEach(async () => {
    await scheduler?.stop();
    scheduler = undefined;
  });
  afterAll(() => worker.close());

  it("fires each cron at its time through POST /__scheduled and logs the outcome", async () => {
    const clock = new TestClock(at("2026-12-07T05:59:30Z"));
    const logs = logRecorder();
    scheduler = startCronScheduler({
      crons: ["17 * * * *", "*/15 * * * *"],
      baseUrl,
      clock,
      log: logs.log,
    });
    await clock.sleepingUntil(at("2026-12-07T06:00:00Z"));
    await clock.sleepingUntil(at("2026-12-07T06:17:00Z"));

    clock.advanceTo(at("2026-12-07T06:00:00Z"));
    const first = await worker.nextRequest();
    expect(first.method).toBe("POST");
    expect(first.url.pathname).toBe("/__scheduled");
    expect(first.url.searchParams.get("cron")).toBe("*/15 * * * *");
    expect(first.url.searchParams.get("time")).toBe(String(at("2026-12-07T06:00:00Z")));
    const logged = logs.next();
    answer(first.res, 200, {
      cron: "*/15 * * * *",
      scheduledTime: at("2026-12-07T06:00:00Z"),
      result: { windows: 3, computed: [{}, {}], alerts: { opened: 1, folded: 0 } },
    });
    expect(await logged).toMatch(
      /^\[cron\] \*\/15 \* \* \* \* 2026-12-07T06:00Z ok in \d+ ms: windows=3 computed=2 alerts\.opened=1$/,
    );
    // The next one is worked out from the one that fired.
    await clock.sleepingUntil(at("2026-12-07T06:15:00Z"));

    clock.advanceTo(at("2026-12-07T06:15:00Z"));
    const second = await worker.nextRequest();
    expect(second.url.searchParams.get("time")).toBe(String(at("2026-12-07T06:15:00Z")));
    answer(second.res, 200, { cron: "*/15 * * * *", result: null });
    await clock.sleepingUntil(at("2026-12-07T06:30:00Z"));

    clock.advanceTo(at("2026-12-07T06:17:00Z"));
    const hourly = await worker.nextRequest();
    expect(hourly.url.searchParams.get("cron")).toBe("17 * * * *");
    expect(hourly.url.searchParams.get("time")).toBe(String(at("2026-12-07T06:17:00Z")));
    answer(hourly.res, 200, { cron: "17 * * * *", result: { partitions: { dropped: ["p1"] } } });
    await clock.sleepingUntil(at("2026-12-07T07:17:00Z"));
    expect(logs.lines).toHaveLength(3);
    expect(logs.lines[2]).toMatch(
      /^\[cron\] 17 \* \* \* \* 2026-12-07T06:17Z ok .*partitions\.dropped=1$/,
    );
  });

  it("logs a failed job with its error, and an unknown cron", async () => {
    const clock = new TestClock(at("2026-12-07T05:59:30Z"));
    const logs = logRecorder();
    scheduler = startCronScheduler({ crons: ["*/15 * * * *"], baseUrl, clock, log: logs.log });
    await clock.sleepingUntil(at("2026-12-07T06:00:00Z"));
    clock.advanceTo(at("2026-12-07T06:00:00Z"));
    let logged = logs.next();
    answer((await worker.nextRequest()).res, 500, {
      error: { code: "JOB_FAILED", message: 'relation "prediction_results" does not exist' },
    });
    expect(await logged).toMatch(
      /^\[cron\] \*\/15 \* \* \* \* 2026-12-07T06:00Z failed \(500\) after \d+ ms: JOB_FAILED: relation "prediction_results" does not exist$/,
    );
    // It goes on to the next time.
    await clock.sleepingUntil(at("2026-12-07T06:15:00Z"));
    clock.advanceTo(at("2026-12-07T06:15:00Z"));
    logged = logs.next();
    answer((await worker.nextRequest()).res, 400, {
      error: { code: "UNKNOWN_CRON", message: "No job for cron '*/15 * * * *'" },
    });
    expect(await logged).toMatch(/failed \(400\) .*UNKNOWN_CRON: No job for cron/);
    await clock.sleepingUntil(at("2026-12-07T06:30:00Z"));
  });

  it("logs a Worker that cannot be reached", async () => {
    const closed = new WorkerStandIn();
    const closedUrl = await closed.listen();
    await closed.close();
    const clock = new TestClock(at("2026-12-07T05:59:30Z"));
    const logs = logRecorder();
    scheduler = startCronScheduler({
      crons: ["*/15 * * * *"],
      baseUrl: closedUrl,
      clock,
      log: logs.log,
    });
    await clock.sleepingUntil(at("2026-12-07T06:00:00Z"));
    const logged = logs.next();
    clock.advanceTo(at("2026-12-07T06:00:00Z"));
    expect(await logged).toMatch(/2026-12-07T06:00Z failed after \d+ ms: .*ECONNREFUSED/);
    await clock.sleepingUntil(at("2026-12-07T06:15:00Z"));
  });

  it("never overlaps two firings of a cron: times that pass meanwhile are skipped", async () => {
    const clock = new TestClock(at("2026-12-07T05:59:30Z"));
    const logs = logRecorder();
    scheduler = startCronScheduler({ crons: ["*/15 * * * *"], baseUrl, clock, log: logs.log });
    await clock.sleepingUntil(at("2026-12-07T06:00:00Z"));
    const receivedBefore = worker.received;
    clock.advanceTo(at("2026-12-07T06:00:00Z"));
    const slow = await worker.nextRequest();
    // 06:15 and 06:30 come while the 06:00 run is still going.
    clock.advanceTo(at("2026-12-07T06:31:00Z"));
    const done = logs.next();
    answer(slow.res, 200, { result: { windows: 1 } });
    expect(await done).toMatch(/06:00Z ok/);
    // Waiting for 06:45 means the missed ones were passed over: nothing else was sent.
    await clock.sleepingUntil(at("2026-12-07T06:45:00Z"));
    expect(logs.lines[1]).toBe(
      "[cron] */15 * * * * skipped 2 runs from 2026-12-07T06:15Z: due while the last one ran",
    );
    expect(worker.received - receivedBefore).toBe(1);
  });

  it("stops cleanly, cancelling a firing under way", async () => {
    const clock = new TestClock(at("2026-12-07T05:59:30Z"));
    const logs = logRecorder();
    scheduler = startCronScheduler({
      crons: ["*/15 * * * *", "17 * * * *"],
      baseUrl,
      clock,
      log: logs.log,
    });
    await clock.sleepingUntil(at("2026-12-07T06:17:00Z"));
    await clock.sleepingUntil(at("2026-12-07T06:00:00Z"));
    clock.advanceTo(at("2026-12-07T06:00:00Z"));
    const hanging = await worker.nextRequest();
    // One loop waits on the Worker, the other on the clock: stop ends both.
    await scheduler.stop();
    await hanging.closed;
    expect(logs.lines).toEqual([]);
    clock.advanceTo(at("2026-12-07T07:00:00Z"));
  });

  it("counts a firing with no answer in time as failed", async () => {
    const clock = new TestClock(at("2026-12-07T05:59:30Z"));
    const logs = logRecorder();
    scheduler = startCronScheduler({
      crons: ["*/15 * * * *"],
      baseUrl,
      clock,
      log: logs.log,
      timeoutMs: 50,
    });
    await clock.sleepingUntil(at("2026-12-07T06:00:00Z"));
    const logged = logs.next();
    clock.advanceTo(at("2026-12-07T06:00:00Z"));
    const unanswered = await worker.nextRequest();
    expect(await logged).toMatch(/06:00Z failed after \d+ ms: no answer within 50 ms$/);
    await unanswered.closed;
  });
});
