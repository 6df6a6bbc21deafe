/**
 * The broker carries every publication and keeps presence. `memory.ts` serves one process;
 * `redis.ts` serves a cluster. Nothing above this interface may assume a single process.
 *
 * @module
 */

/** One present member of a channel: a socket (`connId`) and who it is. */
export interface PresenceEntry {
  connId: string;
  id: string;
  name: string;
  /** Set for a verified user (a token's `sub`); all its sockets share the id. */
  verified?: boolean;
}

/** Where a frame stands in a stream: its store stream and seq (a chat message, a publication). */
export interface Position {
  stream: string;
  seq: number;
}

/**
 * What travels beside an encoded frame: the socket (by conn id) that must not get it, such as the sender of a
 * `join` or `typing` notice; and the frame's stream position, for channels that carry every frame of that stream
 * (so a subscriber can tell a gap, and recovery can skip what it sent, without parsing the frame).
 */
export interface FrameMeta {
  except?: string;
  at?: Position;
  /** Instead of delivering the frame, close every subscriber with this code (disconnecting a user). */
  close?: number;
}

/** Receives a published frame and its meta. */
export type FrameHandler = (frame: string, meta: FrameMeta) => void;

/** A live subscription: `ready` resolves once publications reach it (in a cluster, once Redis confirmed). */
export interface Subscription {
  ready: Promise<void>;
  unsubscribe(): void;
}

/** Fan-out and presence. */
export interface Broker {
  /** Delivers an encoded frame, with its meta, to every subscriber of `channel` in every process. */
  publish(channel: string, frame: string, meta?: FrameMeta): Promise<void>;
  /**
   * True when `publish()` runs this process's subscribers before it returns and cannot fail (the memory
   * broker). A caller that answers an HTTP request may then publish in a later turn, after its answer is
   * written, so the answer does not wait behind thousands of socket writes. A cluster broker hands the frame
   * to Redis and delivers locally when Redis sends it back: its `publish()` is awaited as it is.
   */
  readonly inline?: boolean;
  /** Subscribes this process to `channel`. */
  subscribe(channel: string, onFrame: FrameHandler): Subscription;
  /** Marks a socket present in a channel. */
  presenceAdd(channel: string, entry: PresenceEntry): Promise<void>;
  /** Removes a socket from a channel's presence. */
  presenceRemove(channel: string, connId: string): Promise<void>;
  /** The sockets present in a channel, in join order. */
  presence(channel: string): Promise<PresenceEntry[]>;
  /** How many sockets are present in a channel. */
  presenceCount(channel: string): Promise<number>;
  /** Channels with a name starting with `prefix` that have someone present, with how many sockets. */
  presenceCounts(prefix: string): Promise<Map<string, number>>;
  /** Cluster brokers: called with a dead instance's entries once removed from a channel's presence. */
  onExpired?(fn: (channel: string, entries: PresenceEntry[]) => void): void;
  /** Cluster brokers: called when the broker connection came back (live publications may have been missed). */
  onReconnect?(fn: () => void): void;
  /** Cluster brokers: whether the connection is up now (no round trip), so handshakes can be refused early. */
  connected?(): boolean;
  /** Whether the broker can carry messages now. */
  ready(): Promise<boolean>;
  /** Releases connections and timers. */
  close(): Promise<void>;
}
