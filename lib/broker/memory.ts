/**
 * The in-process broker: fan-out and presence in memory, for the embedded single-process mode.
 *
 * @module
 */
import type { Broker, FrameHandler, FrameMeta, PresenceEntry, Subscription } from "./broker.ts";

const NO_META: FrameMeta = {};
const READY = Promise.resolve();

/** A {@linkcode Broker} that lives in this process only. */
export class MemoryBroker implements Broker {
  readonly inline = true;
  #subscribers = new Map<string, Set<FrameHandler>>();
  #presence = new Map<string, Map<string, PresenceEntry>>();

  publish(channel: string, frame: string, meta: FrameMeta = NO_META): Promise<void> {
    const subs = this.#subscribers.get(channel);
    if (subs) { for (const fn of subs) fn(frame, meta); }
    return READY;
  }

  subscribe(channel: string, onFrame: FrameHandler): Subscription {
    let subs = this.#subscribers.get(channel);
    if (!subs) {
      subs = new Set();
      this.#subscribers.set(channel, subs);
    }
    subs.add(onFrame);
    return {
      ready: READY,
      unsubscribe: () => {
        subs.delete(onFrame);
        if (subs.size === 0 && this.#subscribers.get(channel) === subs) this.#subscribers.delete(channel);
      },
    };
  }

  presenceAdd(channel: string, entry: PresenceEntry): Promise<void> {
    let members = this.#presence.get(channel);
    if (!members) {
      members = new Map();
      this.#presence.set(channel, members);
    }
    members.set(entry.connId, entry);
    return Promise.resolve();
  }

  presenceRemove(channel: string, connId: string): Promise<void> {
    const members = this.#presence.get(channel);
    if (members) {
      members.delete(connId);
      if (members.size === 0) this.#presence.delete(channel);
    }
    return Promise.resolve();
  }

  presence(channel: string): Promise<PresenceEntry[]> {
    return Promise.resolve([...(this.#presence.get(channel)?.values() ?? [])]);
  }

  presenceCount(channel: string): Promise<number> {
    return Promise.resolve(this.#presence.get(channel)?.size ?? 0);
  }

  presenceCounts(prefix: string): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const [channel, members] of this.#presence) {
      if (channel.startsWith(prefix)) counts.set(channel, members.size);
    }
    return Promise.resolve(counts);
  }

  ready(): Promise<boolean> {
    return Promise.resolve(true);
  }

  close(): Promise<void> {
    this.#subscribers.clear();
    this.#presence.clear();
    return Promise.resolve();
  }
}
