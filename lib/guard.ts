/**
 * Per-IP guards on socket handshakes: open connection counts and a handshake rate.
 *
 * @module
 */
import { KeyedLimiter } from "./rate_limit.ts";

/** Counts open sockets per IP and limits handshake rate per IP. A limit of 0 disables it. */
export class ConnectionGuard {
  readonly handshakes: KeyedLimiter;
  #open = new Map<string, number>();
  #maxPerIp: number;

  constructor(maxPerIp: number, handshakeRate: number, handshakeBurst: number) {
    this.#maxPerIp = maxPerIp;
    this.handshakes = new KeyedLimiter(handshakeRate, handshakeBurst);
  }

  /** Counts a new socket from `ip`; false (and not counted) when the IP is at its limit. */
  open(ip: string): boolean {
    const n = this.#open.get(ip) ?? 0;
    if (this.#maxPerIp > 0 && n >= this.#maxPerIp) return false;
    this.#open.set(ip, n + 1);
    return true;
  }

  /** Uncounts a closed socket. */
  close(ip: string): void {
    const n = (this.#open.get(ip) ?? 1) - 1;
    if (n <= 0) this.#open.delete(ip);
    else this.#open.set(ip, n);
  }

  /** Open sockets from `ip`. */
  count(ip: string): number {
    return this.#open.get(ip) ?? 0;
  }
}
