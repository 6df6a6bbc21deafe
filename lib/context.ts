/**
 * The application context: the engine's {@linkcode Services} plus the products, as HTTP handlers reach them
 * through `ctx.app`. Products themselves take only the services they use.
 *
 * @module
 */
import type { ControlPlane } from "./admin/control.ts";
import type { RequestContext } from "./http/http.ts";
import type { StaticFiles } from "./http/static_files.ts";
import type { Ticker } from "./push/ticker.ts";
import type { Services } from "./services.ts";
import type { Support } from "./support/support.ts";

/** Everything a handler may use. */
export interface AppContext extends Services {
  ticker: Ticker;
  staticFiles: StaticFiles;
  support: Support;
  /** The admin console's requests to every instance (list, inspect, close connections). */
  admin: ControlPlane;
}

/** What a route handler of this app gets besides the request. */
export type AppRequest = RequestContext<AppContext>;
