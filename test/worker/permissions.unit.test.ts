/// <reference types="vite/client" />
/**
 * The permissions table is one piece of data: the docs print it as it is, every admin
 * operation in the OpenAPI document declares one of its permissions, and the check
 * (`holds`) follows it, ownership included.
 */
import { describe, expect, it } from "vitest";
import doc from "../../docs/people-and-permissions.md?raw";
import { app } from "../../functions/app";
import {
  type Authority,
  GLOBAL_ROLES,
  holds,
  holdsEverywhere,
  modelsWith,
  PERMISSION_NAMES,
  PERMISSIONS,
  permissionsTableMarkdown,
  ROLE_PERMISSIONS,
} from "../../shared/auth/permissions";

/** A Markdown table's rows as trimmed cells, whatever the column widths. */
function tableRows(markdown: string, firstHeader: string): string[][] {
  const lines = markdown.split("\n");
  const start = lines.findIndex((line) => line.startsWith(`| ${firstHeader}`));
  if (start < 0) throw new Error(`no table starting with '${firstHeader}'`);
  const rows: string[][] = [];
  for (const line of lines.slice(start)) {
    if (!line.startsWith("|")) break;
    const cells = line
      .split("|")
      .slice(1, -1)
      .map((cell) => cell.trim());
    if (cells.every((cell) => /^-+$/.test(cell))) continue;
    rows.push(cells);
  }
  return rows;
}

describe("the permissions table", () => {
  it("is printed in the docs exactly as the data says", () => {
    expect(tableRows(doc, "Permission")).toEqual(
      tableRows(permissionsTableMarkdown(), "Permission"),
    );
  });

  it("is declared on every admin operation of the OpenAPI document", () => {
    const document = app.getOpenAPI31Document({
      openapi: "3.1.0",
      info: { title: "Airlock", version: "test" },
    });
    const operations = Object.entries(document.paths ?? {}).flatMap(([path, item]) =>
      Object.entries(item ?? {})
        .filter(([method]) => ["get", "post", "put", "patch", "delete"].includes(method))
        .map(([method, operation]) => ({
          path,
          method,
          operation: operation as Record<string, unknown>,
        })),
    );
    const admin = operations.filter((op) => op.path.startsWith("/admin"));
    expect(admin.length).toBeGreaterThan(50);
    const undeclared = admin.filter((op) => {
      const declared = op.operation["x-airlock-permission"] as
        | { permission?: string; model?: string }
        | undefined;
      return !(
        declared?.permission &&
        (PERMISSION_NAMES as string[]).includes(declared.permission) &&
        ["path", "resource", "none"].includes(declared.model ?? "")
      );
    });
    expect(undeclared.map((op) => `${op.method.toUpperCase()} ${op.path}`)).toEqual([]);
    // A model taken from the path only where the path has one.
    for (const op of admin) {
      const declared = op.operation["x-airlock-permission"] as { model: string };
      if (declared.model === "path") expect(op.path, op.path).toContain("{model}");
    }
    // And never on the client routes, which API keys open.
    const client = operations.filter((op) => !op.path.startsWith("/admin"));
    expect(client.filter((op) => op.operation["x-airlock-permission"])).toEqual([]);
  });
});

describe("holds", () => {
  const person = (...grants: Authority["grants"]): Authority => ({ kind: "person", grants });

  it("gives each global role its permissions on every model", () => {
    for (const role of GLOBAL_ROLES) {
      for (const permission of PERMISSION_NAMES) {
        const expected =
          ROLE_PERMISSIONS[role].includes(permission) || permission.startsWith("self.");
        expect(holds(person({ role }), permission, "any-model"), `${role} ${permission}`).toBe(
          expected,
        );
        expect(holdsEverywhere(person({ role }), permission)).toBe(expected);
      }
    }
  });

  it("gives ownership its model permissions on the owned model only", () => {
    const owner = person({ role: "owner", model: "mine" });
    for (const permission of PERMISSION_NAMES) {
      const modelScoped = PERMISSIONS[permission].scope === "model";
      const owned = modelScoped && ROLE_PERMISSIONS.owner.includes(permission);
      const self = permission.startsWith("self.");
      expect(holds(owner, permission, "mine"), permission).toBe(owned || self);
      expect(holds(owner, permission, "theirs"), permission).toBe(self);
      expect(holdsEverywhere(owner, permission), permission).toBe(self);
    }
    expect(modelsWith(owner, "models.read")).toEqual(["mine"]);
    expect(modelsWith(owner, "audit.read")).toEqual([]);
    expect(modelsWith(person({ role: "viewer" }), "models.read")).toBe("all");
  });

  it("lets the bootstrap token create principals and engage kill switches, nothing else", () => {
    const bootstrap: Authority = { kind: "bootstrap", grants: [] };
    const allowed = PERMISSION_NAMES.filter((permission) => holds(bootstrap, permission, "m"));
    expect(allowed.sort()).toEqual(["killswitch.engage", "principals.manage"]);
  });

  it("lets people, not service accounts, manage their own tokens", () => {
    expect(holds(person(), "self.tokens")).toBe(true);
    expect(holds({ kind: "service", grants: [] }, "self.tokens")).toBe(false);
    expect(holds({ kind: "service", grants: [] }, "self.read")).toBe(true);
    expect(holds(person(), "models.read", "m")).toBe(false);
  });
});
