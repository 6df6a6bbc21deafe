/**
 * Password hashing with PBKDF2-SHA256 through WebCrypto (310,000 iterations, 16-byte salt), and random tokens
 * stored only as SHA-256 hashes.
 *
 * Every hash and check goes through one {@linkcode HashGate} per process: a few at once, a bounded line behind
 * them, and {@linkcode HashBusyError} past that.
 *
 * @module
 */

/** PBKDF2 iterations for new hashes (OWASP's PBKDF2-HMAC-SHA256 guidance is at least 210,000; we use more). */
export const PBKDF2_ITERATIONS = 310_000;

/** Thrown when the hashing line is full; the caller should say "busy" and let the client retry. */
export class HashBusyError extends Error {
  constructor(waiting: number) {
    super(`Password hashing is busy (${waiting} waiting); try again shortly`);
    this.name = "HashBusyError";
  }
}

/**
 * A semaphore with a bounded wait line: at most `concurrency` tasks run at once, at most `maxWaiting` wait for a
 * turn, and past that {@linkcode HashGate.run} throws {@linkcode HashBusyError} at once instead of queueing.
 */
export class HashGate {
  #running = 0;
  #waiting: (() => void)[] = [];
  #concurrency: number;
  #maxWaiting: number;

  constructor(concurrency: number, maxWaiting: number) {
    this.#concurrency = Math.max(1, concurrency);
    this.#maxWaiting = Math.max(0, maxWaiting);
  }

  /** Tasks running now. */
  get running(): number {
    return this.#running;
  }

  /** Tasks waiting for a turn. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Runs `task` when a slot is free; throws {@linkcode HashBusyError} when the line is full. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running < this.#concurrency) this.#running++;
    else if (this.#waiting.length >= this.#maxWaiting) throw new HashBusyError(this.#waiting.length);
    // The slot is handed over by the task that finishes (see below), so `#running` already counts us.
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}

/** Hashes at once: half the cores, so the event loop and the sockets keep the other half. */
export const HASH_CONCURRENCY = Math.max(1, Math.floor((navigator.hardwareConcurrency ?? 2) / 2));
/** Hashes that may wait for a turn (about a second of work at ~75 ms each on one core); more get busy. */
export const HASH_MAX_WAITING = 16;

/**
 * The process's hashing gate. PBKDF2 runs on Deno's blocking thread pool, so without a cap a burst of logins
 * starts one CPU-bound thread each and the event loop waits for a core behind all of them (issue #10, finding 8).
 */
export const hashGate = new HashGate(HASH_CONCURRENCY, HASH_MAX_WAITING);

const b64 = (bytes: Uint8Array): string => btoa(String.fromCharCode(...bytes));
const unb64 = (text: string): Uint8Array<ArrayBuffer> => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/** Derives PBKDF2 bits through {@linkcode hashGate}; throws {@linkcode HashBusyError} when it is full. */
function derive(password: string, salt: Uint8Array<ArrayBuffer>, iterations: number): Promise<Uint8Array> {
  return hashGate.run(() => deriveNow(password, salt, iterations));
}

async function deriveNow(
  password: string,
  salt: Uint8Array<ArrayBuffer>,
  iterations: number,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(password), "PBKDF2", false, [
    "deriveBits",
  ]);
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt, iterations },
    key,
    256,
  );
  return new Uint8Array(bits);
}

/**
 * Hashes a password as `pbkdf2-sha256$<iterations>$<salt>$<hash>` (base64). Throws {@linkcode HashBusyError}
 * when the hashing line is full.
 */
export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const hash = await derive(password, salt, PBKDF2_ITERATIONS);
  return `pbkdf2-sha256$${PBKDF2_ITERATIONS}$${b64(salt)}$${b64(hash)}`;
}

/**
 * Checks a password against a stored hash, comparing in constant time. Throws {@linkcode HashBusyError} when the
 * hashing line is full.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, iter, salt, hash] = stored.split("$");
  if (scheme !== "pbkdf2-sha256" || !iter || !salt || !hash) return false;
  const expected = unb64(hash);
  const actual = await derive(password, unb64(salt), Number(iter));
  let diff = expected.length ^ actual.length;
  for (let i = 0; i < expected.length; i++) diff |= expected[i] ^ (actual[i] ?? 0);
  return diff === 0;
}

/** A hash to spend the same time on unknown usernames as on known ones. */
export const DUMMY_HASH = `pbkdf2-sha256$${PBKDF2_ITERATIONS}$AAAAAAAAAAAAAAAAAAAAAA==$` +
  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/** A new random token (256 bits, base64url) with a prefix naming its kind. */
export function newToken(prefix: "a" | "v"): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return `${prefix}_${b64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}`;
}

/** The SHA-256 hex digest under which a token is stored. */
export async function tokenHash(token: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}
