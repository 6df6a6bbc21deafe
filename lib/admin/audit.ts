/**
 * The audit log of admin actions (issue #14): one helper that every handler doing an operator's action calls
 * after it acted, so each entry says who (`agent:<username>` or `api-key`), what, to what, and on which instance.
 *
 * @module
 */
import type { Services } from "../services.ts";
import { INSTANCE_ID } from "../realtime/hub.ts";
import type { AuditEntry } from "../store/store.ts";

/**
 * Appends one entry to the audit log. The action has already happened, so a store failure is logged (with the
 * whole entry, so it is not lost) rather than turned into an error answer that would say it did not.
 */
export async function audit(
  app: Pick<Services, "store" | "log">,
  actor: string,
  action: string,
  target: string,
  detail: Record<string, unknown> = {},
): Promise<AuditEntry | undefined> {
  try {
    return await app.store.appendAudit({ actor, action, target, detail, instance: INSTANCE_ID });
  } catch (err) {
    app.log.error("audit_failed", {
      actor,
      action,
      target,
      detail: JSON.stringify(detail),
      error: String(err),
    });
    return undefined;
  }
}
