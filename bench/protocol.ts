/**
 * How the load generator talks chat to each kind of target: what a client sends, when it is ready, and how many
 * deliveries a frame holds.
 *
 * Every chat text the load generator sends is `~t<µs>`: a marker and the sender's `performance.now()` in whole
 * microseconds (senders and receivers share one process, so one clock). Each delivery carries the text verbatim,
 * so a frame holds as many deliveries as it has markers, whatever else surrounds them: counting and timing a frame
 * is one `indexOf` scan with no `JSON.parse`, which keeps the client cheap at a million deliveries a second.
 * {@linkcode verifyFrame} checks that shortcut against a full parse on sampled frames.
 *
 * @module
 */

/** The chat protocols the load generator speaks. */
export const CLIENT_KINDS = ["switchboard", "plain", "socketio"] as const;
/** One of {@linkcode CLIENT_KINDS}. */
export type ClientKind = typeof CLIENT_KINDS[number];

/** The prefix of every chat text the load generator sends. */
export const MARKER = "~t";

/**
 * A chat text stamped with the current time; with `id`, `~t<µs>_<sender>_<seq>` so that receivers can tell every
 * message apart (the exactly-once check of the cluster workload).
 */
export function stampedText(id?: { sender: number; seq: number }): string {
  const stamp = MARKER + Math.round(performance.now() * 1000);
  return id ? `${stamp}_${id.sender}_${id.seq}` : stamp;
}

/** The frame a client of `kind` sends to post `text` to the room. */
export function encodeChat(kind: ClientKind, text: string): string {
  switch (kind) {
    case "switchboard":
    case "plain":
      // The plain baselines relay frames verbatim; they get Switchboard's client frame so sizes stay comparable.
      return `{"type":"message","text":"${text}"}`;
    case "socketio":
      return `42["msg","${text}"]`;
  }
}

/** What a client does with a frame before counting it. */
export type Control =
  /** An ordinary frame: count its deliveries. */
  | { kind: "data" }
  /** A protocol frame: send `reply` if given, count nothing. */
  | { kind: "control"; reply?: string; ready?: boolean };

/**
 * Handles protocol frames: Switchboard's first frame is `welcome`; Engine.IO (Socket.IO's transport, v4) opens with
 * `0{…}`, wants `40` to join the default namespace, confirms with `40{…}`, and pings with `2`, answered by `3`.
 */
export function control(
  kind: ClientKind,
  frame: string,
  ready: boolean,
): Control {
  switch (kind) {
    case "switchboard":
      if (!ready && isWelcome(frame)) return { kind: "control", ready: true };
      return { kind: "data" };
    case "plain":
      return { kind: "data" };
    case "socketio":
      if (frame.startsWith("42")) return { kind: "data" };
      if (frame === "2") return { kind: "control", reply: "3" };
      if (frame.startsWith("0")) return { kind: "control", reply: "40" };
      if (frame.startsWith("40")) return { kind: "control", ready: true };
      return { kind: "control" };
  }
}

/** Whether a Switchboard frame is the welcome (alone, or first of a batched array); parsed once per client. */
function isWelcome(frame: string): boolean {
  try {
    const parsed = JSON.parse(frame);
    return (Array.isArray(parsed) ? parsed[0] : parsed)?.type === "welcome";
  } catch {
    return false;
  }
}

/** Whether a client of `kind` is ready as soon as its socket opens (no handshake frames). */
export function readyOnOpen(kind: ClientKind): boolean {
  return kind === "plain";
}

/**
 * Counts the deliveries in `frame` and hands each one's age (µs, against `nowMicros`) to `record`, and with `onId`
 * each one's `_<sender>_<seq>` when it carries one (see {@linkcode stampedText}).
 * Returns the number of deliveries.
 */
export function scanDeliveries(
  frame: string,
  nowMicros: number,
  record: (micros: number) => void,
  onId?: (sender: number, seq: number) => void,
): number {
  let n = 0;
  let i = frame.indexOf(MARKER);
  while (i !== -1) {
    let j = i + MARKER.length;
    let sent = 0;
    for (
      let c = frame.charCodeAt(j);
      c >= 48 && c <= 57;
      c = frame.charCodeAt(++j)
    ) sent = sent * 10 + c - 48;
    record(nowMicros - sent);
    n++;
    if (onId && frame.charCodeAt(j) === 95 /* _ */) {
      let sender = 0;
      let seq = 0;
      for (let c = frame.charCodeAt(++j); c >= 48 && c <= 57; c = frame.charCodeAt(++j)) {
        sender = sender * 10 + c - 48;
      }
      if (frame.charCodeAt(j) === 95) {
        for (let c = frame.charCodeAt(++j); c >= 48 && c <= 57; c = frame.charCodeAt(++j)) {
          seq = seq * 10 + c - 48;
        }
        onId(sender, seq);
      } else onId(-1, -1);
    }
    i = frame.indexOf(MARKER, j);
  }
  return n;
}

/**
 * The number of deliveries in `frame` by a full parse of the protocol, for checking {@linkcode scanDeliveries}:
 * a Switchboard `message` (or each `message` in a batched array) with a stamped text, a plain frame with one, or a
 * Socket.IO `msg` event with one.
 */
export function verifyFrame(kind: ClientKind, frame: string): number {
  const stamped = (t: unknown) => typeof t === "string" && t.startsWith(MARKER);
  switch (kind) {
    case "switchboard": {
      const parsed: unknown = JSON.parse(frame);
      const items = Array.isArray(parsed) ? parsed : [parsed];
      return items.filter((m) => m?.type === "message" && stamped(m.text))
        .length;
    }
    case "plain": {
      const parsed = JSON.parse(frame);
      return stamped(parsed?.text) ? 1 : 0;
    }
    case "socketio": {
      if (!frame.startsWith("42")) return 0;
      const event = JSON.parse(frame.slice(2));
      return Array.isArray(event) && event[0] === "msg" && stamped(event[1]) ? 1 : 0;
    }
  }
}
