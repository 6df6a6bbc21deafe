/**
 * The route table: rows of `{method, pattern, handler}`, the first match wins. A path that exists with another
 * method answers 405 with `Allow` (RFC 9110 §15.5.6); an unknown path answers 404.
 *
 * @module
 */
import { HttpError, type RequestContext } from "./http.ts";

/** A route handler. */
export type RouteHandler<A> = (req: Request, ctx: RequestContext<A>) => Response | Promise<Response>;

/** One row of the route table; the first match wins. */
export interface Route<A> {
  /** An HTTP method, or `"*"` for any. */
  method: string;
  pattern: URLPattern;
  handler: RouteHandler<A>;
}

/** Builds a route. */
export function route<A>(method: string, pathname: string, handler: RouteHandler<A>): Route<A> {
  return { method, pattern: new URLPattern({ pathname }), handler };
}

/** The catch-all pattern of pages: a path only it matches is a page, never a 405. */
const FALLBACK = "/*";

/** Matches requests against a route table. */
export class Router<A> {
  readonly routes: readonly Route<A>[];
  /** Each route's literal part: the whole path (exact), or the part before its first parameter or wildcard. */
  #literals: { exact: boolean; path: string }[];

  constructor(routes: readonly Route<A>[]) {
    this.routes = routes;
    this.#literals = routes.map((r) => {
      const cut = r.pattern.pathname.search(/[:*(]/);
      return cut === -1
        ? { exact: true, path: r.pattern.pathname }
        : { exact: false, path: r.pattern.pathname.slice(0, cut) };
    });
  }

  /**
   * The first route for `method` and `url`, with its path parameters.
   *
   * @throws {HttpError} 405 with `Allow` when the path exists with other methods, else 404.
   */
  match(method: string, url: URL): { route: Route<A>; params: Record<string, string | undefined> } {
    const allowed = new Set<string>();
    for (let i = 0; i < this.routes.length; i++) {
      const r = this.routes[i];
      // A literal prefix check first: URLPattern.exec is costly and most routes cannot match.
      const literal = this.#literals[i];
      if (literal.exact ? url.pathname !== literal.path : !url.pathname.startsWith(literal.path)) continue;
      // An exact path has no parameters, so it needs no URLPattern match at all.
      const params = literal.exact ? {} : r.pattern.exec(url)?.pathname.groups;
      if (!params) continue;
      if (r.method === "*" || r.method === method) {
        if (allowed.size > 0 && r.pattern.pathname === FALLBACK) break;
        return { route: r, params };
      }
      // A path that exists with another method is a 405, unless only the page fallback matched.
      if (r.pattern.pathname !== FALLBACK) allowed.add(r.method);
    }
    if (allowed.size > 0) {
      const allow = [...allowed].sort().join(", ");
      throw new HttpError(405, "method_not_allowed", `Method ${method} is not allowed here; use ${allow}`, {
        allow,
      });
    }
    throw new HttpError(404, "not_found", `No route for "${url.pathname}"`);
  }
}
