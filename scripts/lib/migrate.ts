import { fileURLToPath } from "node:url";
import { neonConfig, Pool } from "@neondatabase/serverless";
import { drizzle } from "drizzle-orm/neon-serverless";
import { migrate } from "drizzle-orm/neon-serverless/migrator";
import { WebSocket } from "ws";

export const migrationsFolder = fileURLToPath(new URL("../../migrations", import.meta.url));

/**
 * Configures the Neon driver for Node. With a local bridge, plain ws:// and no
 * pipelining (see shared/db/client.ts); without one, Neon's defaults.
 */
export function configureNodeDriver(wsProxy: string | undefined) {
  neonConfig.webSocketConstructor = WebSocket;
  if (wsProxy) {
    neonConfig.wsProxy = (host, port) => `${wsProxy}/v1?address=${host}:${port}`;
    neonConfig.useSecureWebSocket = false;
    neonConfig.pipelineTLS = false;
    neonConfig.pipelineConnect = false;
  }
}

/**
 * Applies the drizzle-kit migrations in `migrations/` with the same driver
 * the Worker uses. Idempotent: applied migrations are recorded in
 * drizzle.__drizzle_migrations and skipped.
 */
export async function migrateDatabase(options: {
  databaseUrl: string;
  wsProxy?: string;
}): Promise<void> {
  configureNodeDriver(options.wsProxy);
  const pool = new Pool({ connectionString: options.databaseUrl, max: 1 });
  try {
    await migrate(drizzle({ client: pool }), { migrationsFolder });
  } finally {
    await pool.end();
  }
}

/** Runs one statement outside a transaction (e.g. CREATE DATABASE). */
export async function execute(
  options: { databaseUrl: string; wsProxy?: string },
  statement: string,
): Promise<void> {
  configureNodeDriver(options.wsProxy);
  const pool = new Pool({ connectionString: options.databaseUrl, max: 1 });
  try {
    await pool.query(statement);
  } finally {
    await pool.end();
  }
}
