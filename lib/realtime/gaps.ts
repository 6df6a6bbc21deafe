/**
 * Gap detection on stream positions. A channel that carries every frame of a stream (a room, a topic, a visitor's
 * conversation) publishes each frame with its seq; the hub tells this watch what it delivered. A seq that never
 * arrives within {@linkcode GAP_GRACE_MS} means a publication was lost between store and broker (a failed
 * publish, a broker hiccup): the channel's subscribers are resynced (close 1012, then they recover with `since`).
 * In a cluster, two instances can publish seqs 5 and 6 in either order, so a hole only counts once it has stayed
 * open for the grace time.
 *
 * @module
 */
import type { Position } from "../broker/broker.ts";
import { MAX_IN_FLIGHT } from "./admission.ts";

/** How long a missing seq may stay missing before the channel resyncs. */
export const GAP_GRACE_MS = 2000;
/**
 * A jump this large is a gap at once (holding that many missing seqs would cost memory for nothing). Another
 * instance may hold up to {@linkcode MAX_IN_FLIGHT} numbered messages of a stream not yet published, so a jump
 * that size is normal in a cluster; this allows for 16 instances.
 */
const MAX_HOLES = 16 * MAX_IN_FLIGHT;

interface Track {
  high: number;
  /** Missing seq → when it counts as lost. */
  holes: Map<number, number>;
}

/** Watches the positions delivered on channels and reports the channels that lost a frame. */
export class GapWatch {
  #tracks = new Map<string, Map<string, Track>>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #onGap: (channel: string, stream: string, seq: number) => void;
  #holes = 0;

  constructor(onGap: (channel: string, stream: string, seq: number) => void) {
    this.#onGap = onGap;
  }

  /** A frame at `at` was delivered on `channel`. */
  observe(channel: string, at: Position, now = performance.now()): void {
    let streams = this.#tracks.get(channel);
    if (!streams) {
      streams = new Map();
      this.#tracks.set(channel, streams);
    }
    const track = streams.get(at.stream);
    if (!track) {
      // The first frame seen on this channel: the position starts here (earlier ones came before we listened).
      streams.set(at.stream, { high: at.seq, holes: new Map() });
      return;
    }
    if (at.seq <= track.high) {
      if (track.holes.delete(at.seq) && --this.#holes === 0) this.#stop();
      return;
    }
    if (at.seq - track.high - 1 > MAX_HOLES) {
      this.forget(channel);
      this.#onGap(channel, at.stream, track.high + 1);
      return;
    }
    for (let s = track.high + 1; s < at.seq; s++) {
      track.holes.set(s, now + GAP_GRACE_MS);
      this.#holes++;
    }
    track.high = at.seq;
    if (this.#holes > 0) this.#schedule();
  }

  /** Forgets a channel (its last local member left, or it resynced). */
  forget(channel: string): void {
    const streams = this.#tracks.get(channel);
    if (!streams) return;
    for (const t of streams.values()) this.#holes -= t.holes.size;
    this.#tracks.delete(channel);
    if (this.#holes === 0) this.#stop();
  }

  /** Missing seqs being waited for, across channels. */
  get pending(): number {
    return this.#holes;
  }

  #schedule(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.check();
    }, GAP_GRACE_MS / 2);
  }

  #stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Reports every channel with a hole past its grace time; runs on a timer while holes are open. */
  check(now = performance.now()): void {
    for (const [channel, streams] of [...this.#tracks]) {
      let lost: { stream: string; seq: number } | undefined;
      for (const [stream, t] of streams) {
        for (const [seq, deadline] of t.holes) if (deadline <= now) lost ??= { stream, seq };
      }
      if (lost) {
        this.forget(channel);
        this.#onGap(channel, lost.stream, lost.seq);
      }
    }
    if (this.#holes > 0) this.#schedule();
  }
}
