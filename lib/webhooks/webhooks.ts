/**
 * Signed webhooks (`--webhook-url`, `--webhook-secret`), in the Standard Webhooks format
 * (https://www.standardwebhooks.com): each delivery is a POST of a JSON body
 * `{"type","timestamp","data"}` with the headers `webhook-id` (the same on every try), `webhook-timestamp`
 * (seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed by the base64 after
 * `whsec_`.
 *
 * Events are rows of an outbox in the store, written in the same transaction as the change that caused them
 * ({@linkcode Webhooks.emit} makes them), so a crash never loses one. Every instance runs a dispatcher that
 * claims due rows (one instance gets each), posts them, and records the try: a 2xx within `--webhook-timeout`
 * is success; anything else is tried again after 1 s, 2 s, 4 s … (at most an hour apart) up to
 * `--webhook-max-attempts` tries, then marked failed (a retry through the API starts it again). Delivery is at
 * least once: a receiver dedups by `webhook-id`.
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { NewDelivery, Store, WebhookDelivery } from "../store/store.ts";

/** Every event type, with what its `data` holds (docs/webhooks.md has the payloads). */
export type WebhookEvent =
  | "conversation.created"
  | "conversation.assigned"
  | "conversation.closed"
  | "conversation.rated"
  | "message.created"
  | "chat.message.created";

/** How often each instance looks for due deliveries (a local event wakes it at once). */
const POLL_MS = 1000;
/** Deliveries claimed per pass. */
const BATCH = 20;
/** The longest wait between two tries. */
const MAX_BACKOFF_MS = 3600_000;

/** The wait before try `n + 1` after `n` failed ones: 1 s, 2 s, 4 s, … at most an hour. */
export const backoffMs = (failed: number): number => Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (failed - 1));

/** The `webhook-signature` value of a delivery: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`. */
export async function sign(key: CryptoKey, id: string, timestamp: number, body: string): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${id}.${timestamp}.${body}`));
  return `v1,${btoa(String.fromCharCode(...new Uint8Array(mac)))}`;
}

/** The HMAC key of a `whsec_…` secret. */
export function signingKey(secret: string): Promise<CryptoKey> {
  const raw = Uint8Array.from(atob(secret.slice("whsec_".length)), (c) => c.charCodeAt(0));
  return crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
}

/** Webhook events for one app: making outbox rows, and this instance's dispatcher. */
export class Webhooks {
  #config: Pick<Config, "webhookUrls" | "webhookSecret" | "webhookTimeoutS" | "webhookMaxAttempts">;
  #store: Store;
  #log: Logger;
  #metrics: Metrics;
  #key: Promise<CryptoKey> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;
  #stopped = true;
  #passes: Promise<void> = Promise.resolve();
  #inflight = new Set<AbortController>();

  constructor(
    config: Pick<Config, "webhookUrls" | "webhookSecret" | "webhookTimeoutS" | "webhookMaxAttempts">,
    store: Store,
    log: Logger,
    metrics: Metrics,
  ) {
    this.#config = config;
    this.#store = store;
    this.#log = log;
    this.#metrics = metrics;
  }

  /** Whether any receiver is configured (no rows are made otherwise). */
  get enabled(): boolean {
    return this.#config.webhookUrls.length > 0;
  }

  /**
   * The outbox rows of one event, one per receiver, for a store write to commit with its change; undefined
   * when no receiver is configured. `data` is made when the change is stored, from what it stored.
   */
  emit<T>(type: WebhookEvent, data: (record: T) => unknown): ((record: T) => NewDelivery[]) | undefined {
    if (!this.enabled) return undefined;
    return (record) => {
      const now = Date.now();
      const body = JSON.stringify({ type, timestamp: new Date(now).toISOString(), data: data(record) });
      queueMicrotask(() => this.kick());
      return this.#config.webhookUrls.map((url) => ({
        id: `msg_${crypto.randomUUID().replaceAll("-", "")}`,
        url,
        event: type,
        body,
        createdAt: now,
      }));
    };
  }

  /** Starts this instance's dispatcher. */
  start(): void {
    if (!this.enabled) return;
    this.#stopped = false;
    this.#schedule(0);
  }

  /** Runs a pass soon: an event was just written here. */
  kick(): void {
    if (this.#stopped || this.#running) return;
    this.#schedule(50);
  }

  #schedule(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#passes = this.#pass().finally(() => {
        if (!this.#stopped) this.#schedule(POLL_MS);
      });
    }, ms);
  }

  /** Claims due deliveries and tries each; repeats while full batches come. */
  async #pass(): Promise<void> {
    this.#running = true;
    try {
      const lockMs = this.#config.webhookTimeoutS * 1000 + 5000;
      for (;;) {
        const due = await this.#store.claimDeliveries(Date.now(), lockMs, BATCH);
        await Promise.all(due.map((d) => this.#deliver(d)));
        if (due.length < BATCH || this.#stopped) return;
      }
    } catch (err) {
      this.#log.error("webhook_pass_failed", { error: String(err) });
    } finally {
      this.#running = false;
    }
  }

  /** One try of one delivery, recorded. */
  async #deliver(d: WebhookDelivery): Promise<void> {
    this.#key ??= signingKey(this.#config.webhookSecret!);
    const attempt = d.attempts + 1;
    const timestamp = Math.floor(Date.now() / 1000);
    const started = performance.now();
    const abort = new AbortController();
    this.#inflight.add(abort);
    const timer = setTimeout(() => abort.abort(), this.#config.webhookTimeoutS * 1000);
    let status: number | null = null;
    let error: string | null = null;
    try {
      const res = await fetch(d.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "Switchboard-Webhooks/1",
          "webhook-id": d.id,
          "webhook-timestamp": String(timestamp),
          "webhook-signature": await sign(await this.#key, d.id, timestamp, d.body),
        },
        body: d.body,
        signal: abort.signal,
        redirect: "manual",
      });
      status = res.status;
      await res.body?.cancel();
      if (status < 200 || status > 299) error = `HTTP ${status}`;
    } catch (err) {
      error = abort.signal.aborted
        ? `no answer within ${this.#config.webhookTimeoutS} s`
        : String((err as Error).message ?? err).slice(0, 300);
    } finally {
      clearTimeout(timer);
      this.#inflight.delete(abort);
    }
    // Cut short by shutdown: not the receiver's fault; the claim expires and another pass tries again.
    if (this.#stopped && abort.signal.aborted) return;
    const at = Date.now();
    const durationMs = Math.round(performance.now() - started);
    const outcome = error === null
      ? { delivered: true as const }
      : attempt >= this.#config.webhookMaxAttempts
      ? { failed: true as const }
      : { nextAt: at + backoffMs(attempt) };
    this.#metrics.inc("switchboard_webhook_attempts_total", {
      event: d.event,
      result: error === null ? "delivered" : "failed",
    });
    if (error !== null) {
      this.#log.warn("webhook_failed", {
        id: d.id,
        event: d.event,
        attempt,
        error,
        final: "failed" in outcome,
      });
    }
    await this.#store.recordAttempt(d.id, { attempt, at, status, error, durationMs }, outcome);
  }

  /** Stops the dispatcher; tries in flight are cancelled (they stay pending and are tried again). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const abort of this.#inflight) abort.abort();
    await this.#passes.catch(() => {});
  }
}
