import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

/**
 * The Worker's runtime for a project of tests: workerd with wrangler.toml's
 * bindings, and a real Postgres (the worker tests' database, or the fuzz
 * suite's own).
 */
function workerRuntime(database: {
  url: "databaseUrl" | "fuzzDatabaseUrl";
  wsProxy: "databaseWsProxy" | "fuzzDatabaseWsProxy";
}) {
  return cloudflareTest(({ inject }) => ({
    wrangler: { configPath: "./wrangler.toml" },
    miniflare: {
      // A deliberately tight limiter, swapped in by the rate-limit test.
      ratelimits: {
        PREDICT_RATE_LIMITER: { namespace_id: "1001", simple: { limit: 6000, period: 60 } },
        TEST_TIGHT_LIMITER: { namespace_id: "9001", simple: { limit: 3, period: 60 } },
      },
      bindings: {
        DATABASE_URL: inject(database.url),
        DATABASE_WS_PROXY: inject(database.wsProxy),
        FUZZ_SEED: process.env.FUZZ_SEED ?? "",
        FUZZ_RUNS: process.env.FUZZ_RUNS ?? "",
        FUZZ_VERBOSE: process.env.FUZZ_VERBOSE ?? "",
        ADMIN_TOKEN: inject("adminToken"),
        AUDIT_SIGNING_KEY: inject("auditSigningKey"),
        TEST_ADMIN_PAT: inject("adminPat"),
        DEAD_DATABASE_WS_PROXY: inject("deadDatabaseWsProxy"),
        TEST_UPSTREAM: inject("upstreamBase"),
        TEST_ALERT_RECEIVER: inject("alertReceiverBase"),
        TEST_ACCESS_TEAM_DOMAIN: inject("accessTeamDomain"),
        TEST_ACCESS_PRIVATE_JWK: inject("accessPrivateJwk"),
        TEST_ACCESS_OTHER_PRIVATE_JWK: inject("accessOtherPrivateJwk"),
        TEST_ACCESS_CLOSED_BASE: inject("accessClosedBase"),
        // A credential that a test version names (only UPSTREAM_ secrets
        // can be); upstreams see it as a bearer token.
        UPSTREAM_FRAUD_MODEL_TOKEN: "upstream-secret-for-tests",
        LOG_HMAC_KEY: "log-hmac-key-for-tests",
        // 32 bytes, base64: the alert destinations' encryption key in tests.
        ALERT_ENCRYPTION_KEY: "YWlybG9jay1hbGVydC1rZXktZm9yLXRlc3RzLTMyYiE=",
        UPSTREAM_ALLOWED_HOSTS: "127.0.0.1,localhost",
        // Where notices' links point.
        ALERT_LINK_BASE: "https://airlock.example.test",
      },
    },
  }));
}

export default defineConfig({
  test: {
    reporters: ["default", ["json", { outputFile: "test-results/vitest.json" }]],
    // Runs in Node, outside the Workers runtime's module resolution: it starts
    // the Postgres that the Worker tests use and provides its coordinates.
    globalSetup: ["./test/global-setup.ts"],
    projects: [
      {
        // Worker code, run inside workerd against a real Postgres.
        plugins: [workerRuntime({ url: "databaseUrl", wsProxy: "databaseWsProxy" })],
        test: {
          name: "worker",
          include: ["test/worker/**/*.test.ts"],
          testTimeout: 20_000,
          hookTimeout: 60_000,
        },
      },
      {
        // Every documented route fuzzed, on a database of its own: what it
        // creates, replays or discards touches no other test's data.
        plugins: [workerRuntime({ url: "fuzzDatabaseUrl", wsProxy: "fuzzDatabaseWsProxy" })],
        test: {
          name: "fuzz",
          include: ["test/fuzz/**/*.test.ts"],
          testTimeout: 600_000,
          hookTimeout: 60_000,
        },
      },
      {
        // Local tooling (database server, bridge, start script), run in Node.
        test: {
          name: "node",
          include: ["test/node/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
