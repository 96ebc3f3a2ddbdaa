/**
 * Who may do what: the permissions a route can require, the roles that hold
 * them, and the check. One table, served as data at `GET /admin/permissions`
 * and printed in the docs; each route names its permission where it is
 * defined (functions/admin/route.ts).
 *
 * A permission is model-scoped when the thing it touches belongs to one
 * model: a global role grants it for every model, an `owner` grant for the
 * one model it names. The others are granted by global roles only.
 */

export const PERMISSIONS = {
  "models.read": {
    scope: "model",
    description: "Read models, versions, rollouts, baselines and builtin model files",
  },
  "models.register": { scope: "global", description: "Register a new model" },
  "models.write": {
    scope: "model",
    description: "Change a model, register and change its versions, set baselines",
  },
  "rollout.write": {
    scope: "model",
    description: "Change a model's rollout (champion, canary, shadows) or revert it",
  },
  "killswitch.engage": {
    scope: "model",
    description: "Engage a model's kill switch (taking authority away never waits)",
  },
  "killswitch.release": { scope: "model", description: "Release a model's kill switch" },
  "monitoring.read": {
    scope: "model",
    description: "Read monitoring results, settings, alert rules and runs",
  },
  "monitoring.write": { scope: "model", description: "Change monitoring settings and alert rules" },
  "monitoring.run": { scope: "global", description: "Run monitoring now or backfill a range" },
  "alerts.read": {
    scope: "model",
    description: "Read alerts, their deliveries and the alert destinations",
  },
  "alerts.acknowledge": { scope: "model", description: "Acknowledge an alert" },
  "alerts.manage": {
    scope: "global",
    description: "Add, test and remove alert destinations",
  },
  "approvals.request": {
    scope: "model",
    description: "Ask for an approval of a change that gives a model authority",
  },
  "approvals.decide": {
    scope: "model",
    description:
      "Approve or reject a request, for a role it needs that you hold (people only, never your own)",
  },
  "governance.write": {
    scope: "model",
    description:
      "Set a model's governance policy: its risk tier and whose approvals each change needs",
  },
  "keys.read": { scope: "global", description: "List client API keys (never the keys)" },
  "keys.manage": { scope: "global", description: "Create and revoke client API keys" },
  "data.read": {
    scope: "model",
    description: "Read prediction inputs, outputs, labels and outcomes, and dead letters (audited)",
  },
  "data.erase": {
    scope: "global",
    description:
      "Erase a data subject's records by bucketing key or prediction ids, and follow erasures",
  },
  "deadletters.read": {
    scope: "global",
    description: "Read dead letters, which hold prediction inputs (audited)",
  },
  "deadletters.manage": { scope: "global", description: "Replay or discard dead letters" },
  "audit.read": { scope: "global", description: "Read and export the audit trail" },
  "audit.checkpoint": {
    scope: "global",
    description: "Take a signed checkpoint of the audit trail's head now",
  },
  "principals.read": { scope: "global", description: "List and read people and service accounts" },
  "principals.manage": {
    scope: "global",
    description: "Create and disable principals, grant and revoke roles, issue and revoke tokens",
  },
  "bootstrap.manage": { scope: "global", description: "Turn the bootstrap token off" },
  "self.read": {
    scope: "global",
    description: "Read who you are, your grants and the permissions table (every principal)",
  },
  "self.tokens": {
    scope: "global",
    description: "Issue, list and revoke your own personal access tokens (every person)",
  },
} as const satisfies Record<string, { scope: "model" | "global"; description: string }>;

export type Permission = keyof typeof PERMISSIONS;
export const PERMISSION_NAMES = Object.keys(PERMISSIONS) as Permission[];

export const GLOBAL_ROLES = [
  "viewer",
  "operator",
  "risk_officer",
  "review_board",
  "admin",
] as const;
export type GlobalRole = (typeof GLOBAL_ROLES)[number];

/** A role held by a principal: global, or ownership of one model. */
export type Grant = { role: GlobalRole } | { role: "owner"; model: string };

const read = ["self.read", "models.read", "monitoring.read", "alerts.read"] as const;

/** What each role may do. `owner` applies to the one model its grant names. */
export const ROLE_PERMISSIONS: Record<GlobalRole | "owner", readonly Permission[]> = {
  viewer: [...read],
  operator: [
    ...read,
    "models.register",
    "models.write",
    "rollout.write",
    "killswitch.engage",
    "killswitch.release",
    "monitoring.write",
    "monitoring.run",
    "alerts.acknowledge",
    "alerts.manage",
    "approvals.request",
    "keys.read",
    "keys.manage",
    "deadletters.manage",
  ],
  risk_officer: [
    ...read,
    "killswitch.engage",
    "alerts.acknowledge",
    "approvals.request",
    "approvals.decide",
    "governance.write",
    "data.read",
    "data.erase",
    "deadletters.read",
    "audit.read",
    "audit.checkpoint",
    "principals.read",
  ],
  review_board: [...read, "audit.read", "audit.checkpoint", "principals.read", "approvals.decide"],
  admin: PERMISSION_NAMES,
  owner: [
    "models.read",
    "models.write",
    "rollout.write",
    "killswitch.engage",
    "killswitch.release",
    "monitoring.read",
    "monitoring.write",
    "alerts.read",
    "alerts.acknowledge",
    "approvals.request",
    "approvals.decide",
    "data.read",
  ],
};

/**
 * The bootstrap token's whole reach: create principals, grant roles, issue
 * their first tokens, and engage a kill switch (break-glass, which works
 * while Postgres is down).
 */
export const BOOTSTRAP_PERMISSIONS: readonly Permission[] = [
  "principals.manage",
  "killswitch.engage",
];

/** Every principal may read itself and the permissions table, whatever it holds. */
const EVERYONE: readonly Permission[] = ["self.read"];
/** Every person, whatever they hold, manages their own tokens; service accounts' come from admins. */
const EVERY_PERSON: readonly Permission[] = ["self.tokens"];

function implied(authority: Authority, permission: Permission): boolean {
  return (
    EVERYONE.includes(permission) ||
    (authority.kind === "person" && EVERY_PERSON.includes(permission))
  );
}

export interface Authority {
  kind: "person" | "service" | "bootstrap";
  grants: readonly Grant[];
}

/** Whether the principal holds the permission, for this model when it is model-scoped. */
export function holds(authority: Authority, permission: Permission, model?: string): boolean {
  if (authority.kind === "bootstrap") return BOOTSTRAP_PERMISSIONS.includes(permission);
  if (implied(authority, permission)) return true;
  for (const grant of authority.grants) {
    if (grant.role === "owner") {
      if (
        PERMISSIONS[permission].scope === "model" &&
        (model === undefined || grant.model === model) &&
        ROLE_PERMISSIONS.owner.includes(permission)
      )
        return true;
    } else if (ROLE_PERMISSIONS[grant.role].includes(permission)) {
      return true;
    }
  }
  return false;
}

/** Whether the principal holds the permission for every model (through a global role). */
export function holdsEverywhere(authority: Authority, permission: Permission): boolean {
  if (authority.kind === "bootstrap") return BOOTSTRAP_PERMISSIONS.includes(permission);
  if (implied(authority, permission)) return true;
  return authority.grants.some(
    (grant) => grant.role !== "owner" && ROLE_PERMISSIONS[grant.role].includes(permission),
  );
}

/**
 * The models on which the principal holds a model-scoped permission only
 * through ownership; `"all"` when a global role grants it everywhere. Lists
 * filter by it, so they show only what the principal may see.
 */
export function modelsWith(authority: Authority, permission: Permission): "all" | string[] {
  if (holdsEverywhere(authority, permission)) return "all";
  if (authority.kind === "bootstrap" || !ROLE_PERMISSIONS.owner.includes(permission)) return [];
  return authority.grants.flatMap((grant) => (grant.role === "owner" ? [grant.model] : []));
}

/**
 * The permissions table as Markdown, as docs/people-and-permissions.md
 * prints it (a test keeps the two the same).
 */
export function permissionsTableMarkdown(): string {
  const roles = [...GLOBAL_ROLES, "owner"] as const;
  const header = `| Permission | Scope | ${roles.map((r) => `\`${r}\``).join(" | ")} | bootstrap |`;
  const rule = `| --- | --- | ${roles.map(() => "---").join(" | ")} | --- |`;
  const rows = PERMISSION_NAMES.map((permission) => {
    const cells = roles.map((role) => {
      if (EVERYONE.includes(permission)) return "✓";
      if (EVERY_PERSON.includes(permission)) return "person";
      return ROLE_PERMISSIONS[role].includes(permission) ? "✓" : "";
    });
    const bootstrap = BOOTSTRAP_PERMISSIONS.includes(permission) ? "✓" : "";
    return `| \`${permission}\` | ${PERMISSIONS[permission].scope} | ${cells.join(" | ")} | ${bootstrap} |`;
  });
  return [header, rule, ...rows].join("\n");
}
