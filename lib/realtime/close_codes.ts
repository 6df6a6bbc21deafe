/**
 * Every close code the server sends, with its reason, in one table (docs/protocol.md lists them for clients).
 * 1000–1015 are the protocol's own (RFC 6455 §7.4.1); 4000–4099 are ours and final: the client module does not
 * reconnect after them.
 *
 * @module
 */

/** Close codes we send; see docs/protocol.md. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  policy: 1008,
  tooLarge: 1009,
  internal: 1011,
  resync: 1012,
  slowConsumer: 1013,
  /** 4000–4099 are final: the client module does not reconnect. The agent's session ended (logout, password). */
  sessionEnded: 4001,
  /** The user token expired and no refresh came in time. */
  tokenExpired: 4002,
  /** The host application disconnected this user (`POST /api/users/:sub/disconnect`). */
  disconnected: 4003,
  /** A refresh carried another user's token. */
  refreshRefused: 4004,
  /** An admin closed this connection or removed this member from its room (the admin console). */
  closedByAdmin: 4005,
} as const;

/** The reason sent with each close code (a socket may send a more precise one). */
const REASONS: Record<keyof typeof CloseCode, string> = {
  normal: "",
  goingAway: "Server shutting down",
  policy: "rate limit exceeded",
  tooLarge: "message too large",
  internal: "internal error",
  resync: "reconnect to resync",
  slowConsumer: "slow consumer",
  sessionEnded: "session ended",
  tokenExpired: "token expired",
  disconnected: "disconnected",
  refreshRefused: "refresh for another user",
  closedByAdmin: "closed by an admin",
};

const byCode = new Map<number, string>(
  Object.entries(CloseCode).map(([name, code]) => [code, REASONS[name as keyof typeof CloseCode]]),
);

/** The reason sent with a close code of ours ("" for others). */
export function closeReason(code: number): string {
  return byCode.get(code) ?? "";
}
