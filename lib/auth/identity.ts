/**
 * Verified users from the host application: JWTs checked with `jose` (never by hand), the claims we use, where a
 * token comes from, and who may join which topic or room.
 *
 * Keys: `--jwt-secret` (HS256/384/512), `--jwt-public-key` (PEM: RS, PS, ES, EdDSA), `--jwks-url` (by `kid`). A
 * token is verified only with keys of its own kind, so an HS token is never checked against a public key
 * (algorithm confusion), and `alg: none` never verifies. See docs/auth.md.
 *
 * @module
 */
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  importSPKI,
  type JWTPayload,
  jwtVerify,
  type JWTVerifyGetKey,
} from "jose";
import type { Config } from "../config.ts";
import { bearerToken, HttpError } from "../http/http.ts";

/** A public key as `jose` imports it. */
type PublicKey = Awaited<ReturnType<typeof importSPKI>>;

/** Subjects: 1–128 of letters, digits and `._:@|+=-` (they name the user channel `user:<sub>`). */
export const SUB_RE = /^[A-Za-z0-9._:@|+=-]{1,128}$/;
const HMAC_ALGS = ["HS256", "HS384", "HS512"];
const PUBLIC_ALGS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
];
/** How long an unknown `kid` waits before the JWKS is fetched again. */
const JWKS_COOLDOWN_MS = 30_000;

/** A verified user: the claims of its token that we use. */
export interface Identity {
  sub: string;
  name: string;
  /** A small public object shown to others. */
  info?: Record<string, unknown>;
  /** Protected names this user may join (a trailing `*` matches any suffix). */
  channels: string[];
  /** When the token expires, ms since epoch. */
  expiresAt?: number;
  email?: string;
  attributes?: Record<string, unknown>;
  role?: string;
}

/** A token that does not verify; becomes 401 before an upgrade. */
export class AuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AuthError";
  }
}

/** Whether a string has the shape of a JWT (three base64url parts), as opposed to a session or visitor token. */
export function isJwt(token: string): boolean {
  return /^eyJ[\w-]*\.[\w-]+\.[\w-]*$/.test(token) && token.length <= 8192;
}

const smallObject = (v: unknown, max: number): Record<string, unknown> | undefined =>
  typeof v === "object" && v !== null && !Array.isArray(v) && JSON.stringify(v).length <= max
    ? v as Record<string, unknown>
    : undefined;

/** The claims we use, checked. */
function identityOf(p: JWTPayload): Identity {
  if (typeof p.sub !== "string" || !SUB_RE.test(p.sub)) {
    throw new AuthError('The token\'s "sub" must be 1–128 letters, digits or "._:@|+=-"');
  }
  const channels = Array.isArray(p.channels)
    ? p.channels.filter((c): c is string => typeof c === "string" && c.length <= 200).slice(0, 256)
    : [];
  const name = typeof p.name === "string" && p.name.trim() !== ""
    ? [...p.name.trim()].slice(0, 64).join("")
    : p.sub;
  const id: Identity = { sub: p.sub, name, channels };
  if (typeof p.exp === "number") id.expiresAt = p.exp * 1000;
  const info = smallObject(p.info, 1024);
  if (info) id.info = info;
  if (typeof p.email === "string" && p.email.length <= 254) id.email = p.email;
  const attributes = smallObject(p.attributes, 4096);
  if (attributes) id.attributes = attributes;
  if (typeof p.role === "string") id.role = p.role;
  return id;
}

/** Verifies user tokens with the configured keys. */
export class TokenVerifier {
  #secrets: Uint8Array[];
  #pems: string[];
  #imported = new Map<string, Promise<PublicKey | undefined>>();
  #jwks: JWTVerifyGetKey | undefined;
  #options: { issuer?: string; audience?: string };

  private constructor(
    config: Pick<Config, "jwtSecrets" | "jwksUrl" | "jwtIssuer" | "jwtAudience">,
    pems: string[],
  ) {
    this.#secrets = config.jwtSecrets.map((s) => new TextEncoder().encode(s));
    this.#pems = pems;
    this.#jwks = config.jwksUrl
      ? createRemoteJWKSet(new URL(config.jwksUrl), { cooldownDuration: JWKS_COOLDOWN_MS })
      : undefined;
    this.#options = {};
    if (config.jwtIssuer) this.#options.issuer = config.jwtIssuer;
    if (config.jwtAudience) this.#options.audience = config.jwtAudience;
  }

  /** Reads the public key files; a missing or malformed file is a config error at start. */
  static async create(
    config: Pick<Config, "jwtSecrets" | "jwtPublicKeys" | "jwksUrl" | "jwtIssuer" | "jwtAudience">,
  ): Promise<TokenVerifier> {
    const pems: string[] = [];
    for (const file of config.jwtPublicKeys) {
      let pem: string;
      try {
        pem = await Deno.readTextFile(file);
      } catch (err) {
        throw new Error(`Cannot read --jwt-public-key "${file}": ${(err as Error).message}`);
      }
      if (!pem.includes("-----BEGIN PUBLIC KEY-----")) {
        throw new Error(`--jwt-public-key "${file}" is not a PEM public key (BEGIN PUBLIC KEY)`);
      }
      pems.push(pem);
    }
    return new TokenVerifier(config, pems);
  }

  /** Whether any key is configured (else every token is refused). */
  get enabled(): boolean {
    return this.#secrets.length > 0 || this.#pems.length > 0 || this.#jwks !== undefined;
  }

  /**
   * The identity a token proves.
   *
   * @throws {AuthError} for a malformed, forged, expired or not-yet-valid token, or one with no key of its kind.
   */
  async verify(token: string): Promise<Identity> {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new AuthError("The token is not a JWT");
    }
    if (!alg || alg === "none") throw new AuthError('Tokens with "alg": "none" are never accepted');
    let last: unknown = new AuthError(`No key of this server verifies "${alg}" tokens`);
    if (HMAC_ALGS.includes(alg)) {
      for (const secret of this.#secrets) {
        try {
          return identityOf(
            (await jwtVerify(token, secret, { ...this.#options, algorithms: HMAC_ALGS })).payload,
          );
        } catch (err) {
          last = err;
        }
      }
    } else if (PUBLIC_ALGS.includes(alg)) {
      for (const pem of this.#pems) {
        const key = await this.#import(pem, alg);
        if (!key) continue;
        try {
          return identityOf((await jwtVerify(token, key, { ...this.#options, algorithms: [alg] })).payload);
        } catch (err) {
          last = err;
        }
      }
      if (this.#jwks) {
        try {
          return identityOf(
            (await jwtVerify(token, this.#jwks, { ...this.#options, algorithms: PUBLIC_ALGS }))
              .payload,
          );
        } catch (err) {
          last = err;
        }
      }
    }
    if (last instanceof AuthError) throw last;
    const code = (last as { code?: string }).code;
    throw new AuthError(
      code === "ERR_JWT_EXPIRED"
        ? "The token has expired"
        : code === "ERR_JWT_CLAIM_VALIDATION_FAILED"
        ? `The token's claims are not accepted: ${(last as Error).message}`
        : "The token's signature does not verify",
    );
  }

  /** A PEM imported for one algorithm (a key of another type imports as undefined). */
  #import(pem: string, alg: string): Promise<PublicKey | undefined> {
    const k = `${alg}\n${pem}`;
    const known = this.#imported.get(k);
    if (known) return known;
    const key = importSPKI(pem, alg).catch(() => undefined);
    this.#imported.set(k, key);
    return key;
  }
}

/** The user token a request carries: `Authorization: Bearer <jwt>` or `?token=<jwt>`. */
export function tokenFrom(req: Request, url: URL): string | undefined {
  const bearer = bearerToken(req);
  if (bearer && isJwt(bearer)) return bearer;
  const q = url.searchParams.get("token");
  return q && isJwt(q) ? q : undefined;
}

/**
 * The verified user of a request, or undefined for an anonymous one (refused with 401 when `required`).
 *
 * @throws {HttpError} 401 for a bad, forged or expired token, and for no token when one is required.
 */
export async function identify(
  req: Request,
  url: URL,
  verifier: TokenVerifier,
  required: boolean,
): Promise<Identity | undefined> {
  const token = tokenFrom(req, url);
  if (!token) {
    if (required) {
      throw new HttpError(
        401,
        "unauthorized",
        "This server requires a user token (?token= or Authorization)",
      );
    }
    return undefined;
  }
  try {
    return await verifier.verify(token);
  } catch (err) {
    throw new HttpError(401, "unauthorized", (err as Error).message, {
      "www-authenticate": 'Bearer realm="switchboard", error="invalid_token"',
    });
  }
}

/** The broker channel of a user's own topic `user:<sub>`, which every socket with that user's token joins. */
export const userChannel = (sub: string): string => `topic:user:${sub}`;

/** Protected names: `private-…` and `user:…` topics and rooms. */
export function isProtected(name: string): boolean {
  return name.startsWith("private-") || name.startsWith("user:");
}

/** Whether `identity` may join the topic or room `name`: public names, its own `user:`, or its `channels`. */
export function mayJoin(identity: Identity | undefined, name: string): boolean {
  if (!isProtected(name)) return true;
  if (!identity) return false;
  if (name.startsWith("user:")) return name === `user:${identity.sub}`;
  return identity.channels.some((c) => c.endsWith("*") ? name.startsWith(c.slice(0, -1)) : c === name);
}

/** The first frame of a socket with a user token, and the answer to a `refresh`. */
export function authFrame(identity: Identity, type = "auth"): Record<string, unknown> {
  return { type, user: publicUser(identity), expiresAt: identity.expiresAt ?? null };
}

/** How a verified user is shown to others: its id (the token's `sub`), name and public info. */
export function publicUser(identity: Identity): { id: string; name: string; verified: true; info?: unknown } {
  const user: { id: string; name: string; verified: true; info?: unknown } = {
    id: identity.sub,
    name: identity.name,
    verified: true,
  };
  if (identity.info) user.info = identity.info;
  return user;
}

/** The 403 for a protected name this user may not join. */
export function forbidden(name: string): HttpError {
  return new HttpError(
    403,
    "forbidden",
    `"${name.slice(0, 140)}" is protected: a token with access to it is needed`,
  );
}
