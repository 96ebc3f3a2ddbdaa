// `npm run check`'s migration check: the drizzle schema (shared/db/schema.ts) and the
// migrations in migrations/ describe the same database. It runs `drizzle-kit generate` against
// a copy of migrations/ and fails if that would write a migration: a schema change without
// its migration (`npm run db:generate` makes it).
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { projectRoot } from "./lib/environment.ts";

// drizzle-kit takes its output folder relative to the project (it prefixes "./").
const cache = join(projectRoot, "node_modules", ".cache");
mkdirSync(cache, { recursive: true });
const copy = mkdtempSync(join(cache, "airlock-migrations-"));
/** What is wrong, in words, or null when the migrations hold the schema. */
function problem(): string | null {
  cpSync(join(projectRoot, "migrations"), copy, { recursive: true });
  const before = new Set(readdirSync(copy));
  const result = spawnSync(
    join(projectRoot, "node_modules", ".bin", "drizzle-kit"),
    [
      "generate",
      ...["--dialect", "postgresql", "--casing", "snake_case"],
      ...["--schema", "shared/db/schema.ts", "--out", relative(projectRoot, copy)],
    ],
    { cwd: projectRoot, encoding: "utf8" },
  );
  if (result.status !== 0) return `drizzle-kit generate failed:\n${result.stdout}${result.stderr}`;
  const added = readdirSync(copy).filter((name) => !before.has(name) && name.endsWith(".sql"));
  if (added.length === 0) return null;
  return `shared/db/schema.ts has changes no migration holds (drizzle-kit would write ${added.join(", ")}): run npm run db:generate -- --name <what changed> and commit the migration`;
}

try {
  const found = problem();
  if (found) {
    console.error(found);
    process.exitCode = 1;
  } else {
    console.log("Migrations match shared/db/schema.ts.");
  }
} finally {
  rmSync(copy, { recursive: true, force: true });
}
