/**
 * Input backpressure ("admission"). One chat message becomes a frame for every member, so a handler asks to be
 * admitted before it stores and publishes a message, and calls {@linkcode Admission.done} after. Admission waits
 * (in arrival order) while {@linkcode MAX_IN_FLIGHT} messages are between admission and publication, or while the
 * sockets' output queues hold more than the budget. An unprocessed incoming message is small next to its fan-out;
 * and with the own transport a socket whose line of waiting frames grows past `LINE_PAUSE` (`frames.ts`) is not
 * read until it is short again, so the rest waits in the kernel's buffers (Deno's `WebSocket` cannot pause).
 *
 * @module
 */

/** Most incoming messages between admission and publication. */
export const MAX_IN_FLIGHT = 1024;

/** The intake gate shared by every socket and the publish API of one process. */
export class Admission {
  #queuedTotal = 0;
  #inFlight = 0;
  #resuming = 0;
  #waiters: ((() => void) | undefined)[] = [];
  #waitHead = 0;
  /** Bytes queued across all sockets above which new input waits. */
  readonly budget: number;

  constructor(budget: number) {
    this.budget = budget;
  }

  /** Tracks bytes queued in sockets' own queues (not Deno's native buffers). */
  adjustQueued(delta: number): void {
    this.#queuedTotal += delta;
    if (delta < 0 && this.#waiters.length > this.#waitHead) this.#release();
  }

  /** Admits one message now (undefined) or later (a promise); see the module doc. */
  admit(): Promise<void> | undefined {
    // Only when nobody waits and every released waiter has resumed: otherwise a frame that arrives in the same
    // turn as a release could overtake frames of its own socket that were admitted before it.
    if (this.#waiters.length === this.#waitHead && this.#resuming === 0 && this.#canAdmit()) {
      this.#inFlight++;
      return undefined;
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Called by a waiter of {@linkcode admit} as soon as it resumes. */
  resumed(): void {
    this.#resuming--;
  }

  /** Ends an admission (see {@linkcode admit}). */
  done(): void {
    this.#inFlight--;
    if (this.#waiters.length > this.#waitHead) this.#release();
  }

  /** Bytes queued in sockets' own queues now. */
  get queued(): number {
    return this.#queuedTotal;
  }

  /** Messages admitted and not done, and messages waiting. */
  get counts(): { inFlight: number; waiting: number } {
    return { inFlight: this.#inFlight, waiting: this.#waiters.length - this.#waitHead };
  }

  #canAdmit(): boolean {
    return this.#inFlight < MAX_IN_FLIGHT && this.#queuedTotal < this.budget;
  }

  #release(): void {
    while (this.#waitHead < this.#waiters.length && this.#canAdmit()) {
      this.#inFlight++;
      this.#resuming++;
      const resolve = this.#waiters[this.#waitHead];
      this.#waiters[this.#waitHead++] = undefined;
      resolve!();
    }
    if (this.#waitHead === this.#waiters.length) {
      this.#waiters = [];
      this.#waitHead = 0;
    }
  }
}
