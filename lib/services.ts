/**
 * The engine's shared services, built once per app: what products (chat, push, support) and the socket layer
 * may use. Nothing here knows a product; `lib/context.ts` adds the products on top for the HTTP handlers.
 *
 * @module
 */
import type { TokenVerifier } from "./auth/identity.ts";
import type { Broker } from "./broker/broker.ts";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import type { ConnectionGuard } from "./realtime/guard.ts";
import type { Hub } from "./realtime/hub.ts";
import type { Store } from "./store/store.ts";
import type { Webhooks } from "./webhooks/webhooks.ts";

/** The engine: configuration, logging and metrics, this process's sockets, fan-out, and durable state. */
export interface Services {
  config: Config;
  log: Logger;
  metrics: Metrics;
  hub: Hub;
  broker: Broker;
  store: Store;
  guard: ConnectionGuard;
  /** Verifies the host application's user tokens (`--jwt-secret`, `--jwt-public-key`, `--jwks-url`). */
  verifier: TokenVerifier;
  /** Signed webhook events (`--webhook-url`): outbox rows for store writes, and the dispatcher. */
  webhooks: Webhooks;
}
