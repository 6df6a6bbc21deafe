/**
 * One token-bucket helper for every rate limit (messages per connection, handshakes and logins per IP).
 *
 * @module
 */

/** A token bucket: `rate` tokens per second up to `burst`. A rate of 0 means unlimited. */
export class TokenBucket {
  #rate: number;
  #burst: number;
  #tokens: number;
  #last: number;

  constructor(rate: number, burst: number) {
    this.#rate = rate;
    this.#burst = Math.max(1, burst);
    this.#tokens = this.#burst;
    this.#last = performance.now();
  }

  /** Takes one token; false when the bucket is empty. */
  take(): boolean {
    if (this.#rate <= 0) return true;
    const now = performance.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.#rate);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Whether the bucket is full again (so a keyed bucket can be forgotten). */
  get full(): boolean {
    const now = performance.now();
    return this.#tokens + ((now - this.#last) / 1000) * this.#rate >= this.#burst;
  }
}

/** Token buckets by key (an IP, a username); idle full buckets are swept so the map stays bounded. */
export class KeyedLimiter {
  #buckets = new Map<string, TokenBucket>();
  #rate: number;
  #burst: number;
  #lastSweep = performance.now();

  constructor(rate: number, burst: number) {
    this.#rate = rate;
    this.#burst = burst;
  }

  /** Takes one token from `key`'s bucket. */
  take(key: string): boolean {
    if (this.#rate <= 0) return true;
    this.#sweep();
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      bucket = new TokenBucket(this.#rate, this.#burst);
      this.#buckets.set(key, bucket);
    }
    return bucket.take();
  }

  #sweep(): void {
    const now = performance.now();
    if (now - this.#lastSweep < 10_000 && this.#buckets.size < 10_000) return;
    this.#lastSweep = now;
    for (const [key, bucket] of this.#buckets) if (bucket.full) this.#buckets.delete(key);
  }
}

/** The verdict on one incoming message. */
export type LimitVerdict = "ok" | "limited" | "abuse";

/**
 * A per-connection message limiter: over the rate, messages are refused (`limited`); when refusals keep coming
 * (more than twice the burst within {@linkcode ABUSE_WINDOW_MS}) the sender is abusive and should be disconnected
 * (`abuse`, close 1008).
 */
export class MessageLimiter {
  #bucket: TokenBucket;
  #refused = 0;
  #windowStart = 0;
  #abuseAfter: number;

  constructor(rate: number, burst: number) {
    this.#bucket = new TokenBucket(rate, burst);
    this.#abuseAfter = Math.max(10, burst * 2);
  }

  /** Judges one message. */
  check(): LimitVerdict {
    if (this.#bucket.take()) return "ok";
    const now = performance.now();
    if (now - this.#windowStart > ABUSE_WINDOW_MS) {
      this.#windowStart = now;
      this.#refused = 0;
    }
    this.#refused++;
    return this.#refused > this.#abuseAfter ? "abuse" : "limited";
  }
}

/** The window in which refused messages are counted towards abuse. */
export const ABUSE_WINDOW_MS = 10_000;
