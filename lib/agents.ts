/**
 * Support agents: accounts (hashed passwords), sessions (tokens stored as hashes), and who is asking.
 *
 * @module
 */
import type { AppContext } from "./context.ts";
import { HttpError } from "./http.ts";
import { DUMMY_HASH, hashPassword, newToken, tokenHash, verifyPassword } from "./passwords.ts";
import type { AgentRecord, Store } from "./store.ts";

/** How long a session lasts. */
export const SESSION_TTL_MS = 12 * 3600_000;
/** The session cookie's name. */
export const SESSION_COOKIE = "sb_agent";
/** Usernames: 1–32 of letters, digits, `.`, `-`, `_`. */
export const USERNAME_RE = /^[A-Za-z0-9._-]{1,32}$/;
/** Shortest password accepted. */
export const MIN_PASSWORD = 8;

/** Creates or updates an agent (the CLI and `--demo-agent`). */
export async function saveAgent(
  store: Store,
  username: string,
  password: string,
  name?: string,
): Promise<AgentRecord> {
  if (!USERNAME_RE.test(username)) {
    throw new Error(`Username "${username}" must be 1–32 letters, digits, ".", "-" or "_"`);
  }
  if (password.length < MIN_PASSWORD) throw new Error(`Password must be at least ${MIN_PASSWORD} characters`);
  const existing = await store.agentByUsername(username);
  return await store.upsertAgent({
    username,
    name: name ?? existing?.name ?? username,
    passwordHash: await hashPassword(password),
  });
}

/** Public view of an agent. */
export function agentView(a: AgentRecord): { id: string; name: string; username: string } {
  return { id: a.id, name: a.name, username: a.username };
}

/** Counts failed logins per key in a fixed window; past the limit the key is blocked until the window ends. */
export class FailureLimiter {
  #failures = new Map<string, { count: number; until: number }>();
  #max: number;
  #windowMs: number;

  constructor(max: number, windowMs: number) {
    this.#max = max;
    this.#windowMs = windowMs;
  }

  /** Seconds until `key` may try again, or 0. */
  blockedFor(key: string, now = Date.now()): number {
    const f = this.#failures.get(key);
    if (!f || f.until <= now) return 0;
    return f.count >= this.#max ? Math.ceil((f.until - now) / 1000) : 0;
  }

  fail(key: string, now = Date.now()): void {
    const f = this.#failures.get(key);
    if (!f || f.until <= now) this.#failures.set(key, { count: 1, until: now + this.#windowMs });
    else f.count++;
    if (this.#failures.size > 10_000) {
      for (const [k, v] of this.#failures) if (v.until <= now) this.#failures.delete(k);
    }
  }

  reset(key: string): void {
    this.#failures.delete(key);
  }
}

const byUser = new WeakMap<AppContext, FailureLimiter>();
const byIp = new WeakMap<AppContext, FailureLimiter>();
const limiter = (map: WeakMap<AppContext, FailureLimiter>, app: AppContext, max: number) => {
  let l = map.get(app);
  if (!l) {
    l = new FailureLimiter(max, 15 * 60_000);
    map.set(app, l);
  }
  return l;
};

/**
 * Checks credentials and opens a session. Wrong user or password → 401 with the same body either way; after 5
 * failures for a username or 20 from an IP within 15 minutes → 429.
 */
export async function login(
  app: AppContext,
  username: string,
  password: string,
  ip: string,
): Promise<{ token: string; agent: AgentRecord }> {
  const users = limiter(byUser, app, 5);
  const ips = limiter(byIp, app, 20);
  const wait = Math.max(users.blockedFor(username), ips.blockedFor(ip));
  if (wait > 0) {
    throw new HttpError(429, "rate_limited", `Too many failed logins; try again in ${wait} s`, {
      "retry-after": String(wait),
    });
  }
  const agent = await app.store.agentByUsername(username);
  // Verify against a dummy hash for unknown users so timing does not reveal which usernames exist.
  const ok = await verifyPassword(password, agent?.passwordHash ?? DUMMY_HASH);
  if (!agent || !ok) {
    users.fail(username);
    ips.fail(ip);
    app.log.warn("login_failed", { ip });
    throw new HttpError(401, "unauthorized", "Wrong username or password");
  }
  users.reset(username);
  const token = newToken("a");
  await app.store.createSession(await tokenHash(token), agent.id, Date.now() + SESSION_TTL_MS);
  app.log.info("login", { agent: agent.id });
  return { token, agent };
}

/** The session token a request carries: cookie, `Authorization: Bearer`, or `?token=`. */
export function requestToken(req: Request, url: URL): string | undefined {
  const auth = /^Bearer\s+(\S+)$/i.exec(req.headers.get("authorization") ?? "");
  if (auth) return auth[1];
  const cookie = req.headers.get("cookie") ?? "";
  for (const part of cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === SESSION_COOKIE) return decodeURIComponent(v.join("="));
  }
  return url.searchParams.get("token") ?? undefined;
}

/** The agent whose live session the request carries, or undefined. Visitor tokens never match. */
export async function sessionAgent(
  app: AppContext,
  req: Request,
  url: URL,
): Promise<AgentRecord | undefined> {
  const token = requestToken(req, url);
  if (!token || !token.startsWith("a_")) return undefined;
  const agentId = await app.store.sessionAgent(await tokenHash(token), Date.now());
  return agentId ? await app.store.agentById(agentId) : undefined;
}

/** Like {@linkcode sessionAgent}, but throws 401 without a session. */
export async function requireAgent(app: AppContext, req: Request, url: URL): Promise<AgentRecord> {
  const agent = await sessionAgent(app, req, url);
  if (!agent) throw new HttpError(401, "unauthorized", "Log in as an agent first (POST /api/agent/login)");
  return agent;
}

/** Ends the session a request carries. */
export async function logout(app: AppContext, req: Request, url: URL): Promise<void> {
  const token = requestToken(req, url);
  if (token) await app.store.deleteSession(await tokenHash(token));
}
