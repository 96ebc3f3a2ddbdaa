import type { Database } from "../shared/db/client";
import type { ReportingKey } from "./inference/feedback";
import type { Admitted } from "./inference/serve";

/** Who is calling the admin API. One bootstrap token for now; roles come later. */
export interface Principal {
  /** Stable id, used to scope idempotency keys. */
  id: string;
  /** Written into the audit trail. */
  actor: string;
  roles: readonly string[];
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
