/**
 * The application context: the few stateful objects every handler reaches through `ctx.app`.
 *
 * @module
 */
import type { Broker } from "./broker/broker.ts";
import type { Config } from "./config.ts";
import type { ConnectionGuard } from "./realtime/guard.ts";
import type { Hub } from "./realtime/hub.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import type { StaticFiles } from "./http/static_files.ts";
import type { Store } from "./store/store.ts";
import type { Support } from "./support/support.ts";
import type { Ticker } from "./push/ticker.ts";

/** Everything a handler may use. */
export interface AppContext {
  config: Config;
  log: Logger;
  metrics: Metrics;
  hub: Hub;
  broker: Broker;
  store: Store;
  ticker: Ticker;
  guard: ConnectionGuard;
  staticFiles: StaticFiles;
  support: Support;
}
