/**
 * The authorization matrix: every admin operation in the OpenAPI document,
 * called by every role (and a service account, a principal without grants,
 * and the bootstrap token), on a model the caller owns and on one it does
 * not, through the real app. What each cell should get comes from the
 * permissions table (each operation's `x-airlock-permission`), and, for the
 * routes that matter most, from expectations written here by hand.
 *
 * A refused cell must get 403. An allowed cell sends a deliberately invalid
 * body (or names a resource that does not exist), so it must get an answer
 * other than 403 that changes nothing: no real change is made and no lease
 * is waited out. A 401 or a 5xx is a failure either way.
 */

import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import type { PermissionModel } from "../../functions/admin/route";
import { app } from "../../functions/app";
import {
  type Authority,
  holds,
  holdsEverywhere,
  type Permission,
} from "../../shared/auth/permissions";
import {
  call,
  classificationModel,
  createModel,
  createVersion,
  database,
  json,
  principalWithToken,
  uniqueName,
} from "./helpers";

interface Caller {
  label: string;
  authority: Authority;
  token: string;
}

interface Operation {
  method: string;
  path: string;
  permission: Permission;
  model: PermissionModel;
  hasBody: boolean;
}

const OWNED = uniqueName("matrix-own");
const OTHER = uniqueName("matrix-other");
const callers: Caller[] = [];
/** Resources of each model that routes find by id. */
const resources: Record<string, { alert: number; prediction: string }> = {};
let victim = "";

async function person(
  label: string,
  grants: Authority["grants"],
  kind: "person" | "service" = "person",
) {
  const { id, token } = await principalWithToken([...grants], kind);
  callers.push({ label, authority: { kind, grants }, token });
  return id;
}

function operations(): Operation[] {
  const document = app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: { title: "m", version: "m" },
  });
  const out: Operation[] = [];
  for (const [path, item] of Object.entries(document.paths ?? {})) {
    if (!path.startsWith("/admin")) continue;
    for (const [method, raw] of Object.entries(item ?? {})) {
      const operation = raw as Record<string, unknown>;
      const declared = operation["x-airlock-permission"] as
        | { permission: Permission; model: PermissionModel }
        | undefined;
      if (!declared) continue;
      out.push({
        method: method.toUpperCase(),
        path,
        permission: declared.permission,
        model: declared.model,
        hasBody: operation.requestBody !== undefined,
      });
    }
  }
  return out;
}

/** The models a cell is tried on: both for a route that names one, none otherwise. */
function modelsFor(operation: Operation): (string | undefined)[] {
  if (operation.model === "path") return [OWNED, OTHER];
  if (operation.model === "resource" && /\{(id|predictionId)\}/.test(operation.path)) {
    // Alerts and predictions are found by id: one of each model's.
    if (
      operation.path.startsWith("/admin/alerts/") ||
      operation.path.startsWith("/admin/predictions/")
    )
      return [OWNED, OTHER];
  }
  return [undefined];
}

function concretePath(operation: Operation, model: string | undefined): string {
  return operation.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    switch (name) {
      case "model":
        return model ?? OWNED;
      case "version":
        return "v1";
      case "predictionId":
        return resources[model ?? OWNED]?.prediction ?? crypto.randomUUID();
      case "sha256":
        return "a".repeat(64);
      case "tokenId":
        return "tok_missing";
      case "role":
        return "review_board";
      case "id":
        if (operation.path.startsWith("/admin/principals/")) return victim;
        if (operation.path.startsWith("/admin/alerts/"))
          return String(resources[model ?? OWNED]?.alert ?? 0);
        if (operation.path.startsWith("/admin/alert-destinations/")) return "dst_missing";
        if (operation.path.startsWith("/admin/keys/")) return "key_missing";
        return "999999999";
      default:
        throw new Error(`no value for {${name}} in ${operation.path}`);
    }
  });
}

/** Whether the permissions table lets this caller through. */
function expected(operation: Operation, caller: Caller, model: string | undefined): boolean {
  const { authority } = caller;
  if (operation.model === "path" || (operation.model === "resource" && model !== undefined))
    return holds(authority, operation.permission, model);
  if (operation.model === "resource") return holds(authority, operation.permission);
  return holdsEverywhere(authority, operation.permission);
}

/** Written by hand: who may call the routes that matter most, on the owned model. */
const byHand: Record<string, { owned: string[]; other?: string[] }> = {
  "POST /admin/models/{model}/kill-switch": {
    owned: ["operator", "risk_officer", "admin", "owner", "service-operator", "bootstrap"],
    other: ["operator", "risk_officer", "admin", "service-operator", "bootstrap"],
  },
  "DELETE /admin/models/{model}/kill-switch": {
    owned: ["operator", "admin", "owner", "service-operator"],
    other: ["operator", "admin", "service-operator"],
  },
  "PUT /admin/models/{model}/rollout": {
    owned: ["operator", "admin", "owner", "service-operator"],
    other: ["operator", "admin", "service-operator"],
  },
  "GET /admin/predictions/{predictionId}": {
    owned: ["risk_officer", "admin", "owner"],
    other: ["risk_officer", "admin"],
  },
  "GET /admin/dead-letters": { owned: ["risk_officer", "admin"] },
  "GET /admin/audit": { owned: ["risk_officer", "review_board", "admin"] },
  "POST /admin/principals": { owned: ["admin", "bootstrap"] },
  "POST /admin/principals/{id}/grants": { owned: ["admin", "bootstrap"] },
  "DELETE /admin/principals/{id}/grants/{role}": { owned: ["admin", "bootstrap"] },
  "POST /admin/principals/{id}/tokens": { owned: ["admin", "bootstrap"] },
  "POST /admin/principals/{id}/disable": { owned: ["admin", "bootstrap"] },
  "PUT /admin/bootstrap": { owned: ["admin"] },
  "POST /admin/me/tokens": {
    owned: ["viewer", "operator", "risk_officer", "review_board", "admin", "owner", "nobody"],
  },
};

describe("the authorization matrix", () => {
  beforeAll(async () => {
    for (const model of [OWNED, OTHER]) {
      await createModel(classificationModel(model));
      await createVersion(model, "v1");
    }
    for (const role of ["viewer", "operator", "risk_officer", "review_board", "admin"] as const)
      await person(role, [{ role }]);
    await person("owner", [{ role: "owner", model: OWNED }]);
    await person("service-operator", [{ role: "operator" }], "service");
    await person("nobody", []);
    callers.push({
      label: "bootstrap",
      authority: { kind: "bootstrap", grants: [] },
      token: env.ADMIN_TOKEN,
    });
    victim = await json<{ id: string }>(
      await call("/admin/principals", {
        method: "POST",
        body: {
          kind: "person",
          displayName: "Victim",
          email: `${uniqueName("victim")}@example.com`,
        },
      }),
    ).then((p) => p.id);
    const { db, close } = database();
    try {
      for (const model of [OWNED, OTHER]) {
        const prediction = crypto.randomUUID();
        await db.execute(
          sql`insert into outcomes (api_key_id, prediction_id, model, kpi, value, at)
              values ('key_matrix', ${prediction}, ${model}, 'revenue', 1, now())`,
        );
        const { rows } = await db.execute<{ id: number }>(sql`
          insert into alerts (fingerprint, rule, severity, state, model, version, role, metric,
            dimension, comparison, summary, first_seen_at, last_seen_at)
          values (${`matrix-${model}`}, 'drift', 'warning', 'firing', ${model}, 'v1', 'champion',
            'psi', 'amount', 'above', 'matrix alert', now(), now())
          returning id`);
        resources[model] = { alert: Number(rows[0]?.id), prediction };
      }
    } finally {
      await close();
    }
  }, 120_000);

  it("refuses every cell the permissions table refuses, and lets every other through", {
    timeout: 600_000,
  }, async () => {
    const cells: { operation: Operation; caller: Caller; model: string | undefined }[] = [];
    for (const operation of operations())
      for (const model of modelsFor(operation))
        for (const caller of callers) cells.push({ operation, caller, model });

    const leaks: string[] = [];
    const wrong: string[] = [];
    const allowedBy = new Map<string, Set<string>>();
    for (let start = 0; start < cells.length; start += 12) {
      await Promise.all(
        cells.slice(start, start + 12).map(async ({ operation, caller, model }) => {
          const path = concretePath(operation, model);
          const response = await call(path, {
            method: operation.method,
            token: caller.token,
            // Invalid for every body schema: an allowed caller gets a 400 and changes nothing.
            ...(operation.hasBody ? { body: JSON.stringify("matrix") } : {}),
          });
          const status = response.status;
          const cell = `${caller.label} ${operation.method} ${path} → ${status}`;
          const allow = expected(operation, caller, model);
          if (allow) {
            if (status === 403) wrong.push(`${cell}: refused, though its role allows it`);
            else if (status === 401 || status >= 500)
              wrong.push(`${cell}: ${await response.text()}`);
            else if (operation.hasBody && (status < 400 || status >= 500))
              wrong.push(`${cell}: an invalid body was accepted`);
          } else if (status !== 403) {
            leaks.push(`${cell}: ${(await response.text()).slice(0, 200)}`);
          }
          if (status !== 403) {
            const key = `${operation.method} ${operation.path}|${model === OTHER ? "other" : "owned"}`;
            if (!allowedBy.has(key)) allowedBy.set(key, new Set());
            allowedBy.get(key)?.add(caller.label);
          }
        }),
      );
    }
    console.log(`authorization matrix: ${cells.length} cells, ${leaks.length} leaks`);
    expect(leaks).toEqual([]);
    expect(wrong).toEqual([]);
    expect(cells.length).toBeGreaterThan(500);

    for (const [route, { owned, other }] of Object.entries(byHand)) {
      expect([...(allowedBy.get(`${route}|owned`) ?? [])].sort(), route).toEqual([...owned].sort());
      if (other)
        expect([...(allowedBy.get(`${route}|other`) ?? [])].sort(), `${route} (not owned)`).toEqual(
          [...other].sort(),
        );
    }
  });
});
