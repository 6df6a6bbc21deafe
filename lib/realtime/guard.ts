/**
 * Per-IP guards on socket handshakes: open connection counts and a handshake rate.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { KeyedLimiter } from "./rate_limit.ts";

/**
 * Counts open sockets per IP and limits, per IP, the handshake rate and how many chat rooms and support
 * conversations one client may start a minute (so one client cannot grow the store without bound). A limit of 0
 * disables it.
 */
export class ConnectionGuard {
  readonly handshakes: KeyedLimiter;
  /** Rooms started (a first message in an empty room), `--new-rooms-per-ip` a minute. */
  readonly newRooms: KeyedLimiter;
  /** Support conversations started, `--new-conversations-per-ip` a minute. */
  readonly newConversations: KeyedLimiter;
  /** Uploads (attachments), `--uploads-per-ip` a minute. */
  readonly uploads: KeyedLimiter;
  #open = new Map<string, number>();
  #maxPerIp: number;

  constructor(
    limits: Pick<
      Config,
      | "maxConnsPerIp"
      | "handshakeRate"
      | "handshakeBurst"
      | "newRoomsPerIp"
      | "newConversationsPerIp"
      | "uploadsPerIp"
    >,
  ) {
    this.#maxPerIp = limits.maxConnsPerIp;
    this.handshakes = new KeyedLimiter(limits.handshakeRate, limits.handshakeBurst);
    this.newRooms = new KeyedLimiter(limits.newRoomsPerIp / 60, limits.newRoomsPerIp);
    this.newConversations = new KeyedLimiter(limits.newConversationsPerIp / 60, limits.newConversationsPerIp);
    this.uploads = new KeyedLimiter(limits.uploadsPerIp / 60, limits.uploadsPerIp);
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
