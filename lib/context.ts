/**
 * The application context: the few stateful objects every handler reaches through `ctx.app`.
 *
 * @module
 */
import type { Broker } from "./broker.ts";
import type { Config } from "./config.ts";
import type { ConnectionGuard } from "./guard.ts";
import type { Hub } from "./hub.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import type { StaticFiles } from "./static_files.ts";
import type { Store } from "./store.ts";
import type { Support } from "./support.ts";
import type { Ticker } from "./ticker.ts";

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
