import type { Authority } from "../shared/auth/permissions";
import type { Database } from "../shared/db/client";
import type { ReportingKey } from "./inference/feedback";
import type { Admitted } from "./inference/serve";

/** How a caller of the admin API proved who it is. */
export type Authentication =
  | { method: "token"; tokenId: string }
  | { method: "sso" }
  | { method: "bootstrap" };

/** Who is calling the admin API (functions/middleware/admin-auth.ts). */
export interface Principal extends Authority {
  /** The principal's id (`prn_…`), or `bootstrap`; scopes idempotency keys. */
  id: string;
  /** Written into the audit trail and the `…By` columns: the id, or `admin:bootstrap`. */
  actor: string;
  auth: Authentication;
}

export interface IdempotencyReservation {
  principal: string;
  key: string;
  /** Set once the response has been stored with the change it made. */
  stored: boolean;
}

export type AppEnv = {
  Bindings: Env;
  Variables: {
    requestId: string;
    /** Opens the request's database pool on first use. */
    database: () => Database;
    principal: Principal;
    idempotency: IdempotencyReservation | undefined;
    /** Inference routes: the request admitted to its model (functions/inference/admission.ts). */
    admitted: Admitted;
    /** /v1/feedback and /v1/outcomes: the reporting API key and the models it covers. */
    reporter: ReportingKey;
  };
};
