// Applies the migrations in migrations/ (idempotent).
//   DATABASE_URL on a loopback host: a local Postgres, reached through a WebSocket bridge.
//   DATABASE_URL elsewhere (Neon):    directly, with the Neon driver's defaults.
//   no DATABASE_URL:                  the embedded database that `npm start` uses, through
//                                     npm start's server while it runs (AIRLOCK_STATE_DIR: whose).
import { databaseFromEnvironment, explainDatabaseError } from "./lib/environment.ts";
import { redactUrl } from "./lib/local-db.ts";
import { migrateDatabase } from "./lib/migrate.ts";

const database = await databaseFromEnvironment().catch((error: unknown) => {
  console.error(`Could not open the database: ${explainDatabaseError(error)}`);
  process.exit(1);
});
try {
  await migrateDatabase({ databaseUrl: database.databaseUrl, wsProxy: database.wsProxy });
  console.log(`Migrations applied to ${redactUrl(database.databaseUrl)}`);
} catch (error) {
  console.error(
    `Migration failed on ${redactUrl(database.databaseUrl)}:`,
    error instanceof Error ? error.message : error,
  );
  process.exitCode = 1;
} finally {
  await database.close();
}
