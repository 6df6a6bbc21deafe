/**
 * The WebSocket client every page shares: reconnects with exponential backoff and jitter, queues frames sent while
 * disconnected, parses JSON frames and unpacks batches (`?batch=1` lets the server send a JSON array of messages in
 * one frame).
 *
 * ```js
 * const conn = connect("/ws/echo", { onMessage: (msg) => console.log(msg), onState: (s) => console.log(s) });
 * conn.send({ hello: "world" });
 * ```
 *
 * @module
 */

/** @typedef {"connecting" | "open" | "reconnecting" | "closed"} ConnectionState */

/**
 * What `onState` learns besides the state: the URL being tried (`connecting`), the wait before the next try
 * (`reconnecting`: `delay` ms, until `retryAt` = epoch ms) and the close code and reason of the socket that ended.
 *
 * @typedef {object} StateDetail
 * @property {string} [url]
 * @property {number} [attempt] reconnect attempts since the last successful open
 * @property {number} [delay]
 * @property {number} [retryAt]
 * @property {number} [code]
 * @property {string} [reason]
 */

/**
 * @typedef {object} ConnectHandlers
 * @property {(conn: Connection) => void} [onOpen] after every successful open, before queued frames go out
 * @property {(message: unknown, frame: string | ArrayBuffer) => void} [onMessage] once per message: a parsed JSON
 *   value, the text itself when it is not JSON, or an ArrayBuffer; `frame` is the raw frame it came in
 * @property {(state: ConnectionState, detail: StateDetail) => void} [onState] on every state change
 */

/**
 * @typedef {object} ConnectOptions
 * @property {boolean} [queue] keep frames sent while disconnected and send them after the next open (default true)
 * @property {number} [maxQueue] most frames kept; the oldest are dropped first (default 1000)
 * @property {number} [minDelay] ms, the first reconnect waits between this and twice this (default 500)
 * @property {number} [maxDelay] ms, the longest wait between reconnects (default 15000)
 * @property {(event: CloseEvent) => boolean} [shouldReconnect] return false to stop after this close (default:
 *   reconnect unless the server closed with a final code, 4000–4099, such as 4001 "session ended")
 * @property {() => string | Promise<string>} [getToken] a user token from the host application (see
 *   docs/auth.md): called before every connect (sent as `token=`) and before the token expires (sent as a
 *   `refresh` frame, so the socket stays open)
 */

/** How long before a token's expiry it is refreshed, at most (half the token's life when that is shorter). */
export const REFRESH_AHEAD_MS = 30_000;

/**
 * Close codes after which reconnecting cannot help (4000–4099: the session ended, the user was disconnected):
 * see docs/protocol.md.
 *
 * @param {number} code
 */
export function isFinalClose(code) {
  return code >= 4000 && code < 4100;
}

/** The shortest and longest waits before a reconnect, in ms. */
export const MIN_DELAY_MS = 500;
export const MAX_DELAY_MS = 15_000;

/**
 * The absolute WebSocket URL for a path on this page's host (`wss:` under `https:`).
 *
 * @param {string} pathWithQuery e.g. `/ws/chat/lobby?name=alice`
 * @returns {string}
 */
export function socketUrl(pathWithQuery) {
  return (location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host + pathWithQuery;
}

/**
 * The wait before reconnect attempt `attempt` (0 = the first): a random value in the upper half of
 * `min(max, min · 2^(attempt+1))`, never below `min`. The randomness keeps many clients from coming back at once
 * after a server restart.
 *
 * @param {number} attempt
 * @param {number} [min]
 * @param {number} [max]
 * @returns {number} ms
 */
export function backoffDelay(attempt, min = MIN_DELAY_MS, max = MAX_DELAY_MS) {
  const ceiling = Math.min(max, min * 2 ** (attempt + 1));
  return Math.round(Math.max(min, ceiling * (0.5 + Math.random() / 2)));
}

/**
 * Turns a received frame into messages: JSON text is parsed (a JSON array is unpacked when `batched`), other text
 * stays a string, binary stays an ArrayBuffer.
 *
 * @param {string | ArrayBuffer} frame
 * @param {boolean} batched
 * @returns {unknown[]}
 */
export function decodeFrame(frame, batched) {
  if (typeof frame !== "string") return [frame];
  let value;
  try {
    value = JSON.parse(frame);
  } catch {
    return [frame];
  }
  return batched && Array.isArray(value) ? value : [value];
}

/** @typedef {string | Blob | BufferSource} Frame */

/** @param {unknown} data @returns {Frame} */
function encode(data) {
  if (
    typeof data === "string" || data instanceof ArrayBuffer || ArrayBuffer.isView(data) ||
    data instanceof Blob
  ) {
    return /** @type {Frame} */ (data);
  }
  return JSON.stringify(data);
}

/** A socket that keeps itself connected until {@linkcode Connection.close} is called. */
export class Connection {
  /** @type {string | (() => string)} */
  #path;
  /** @type {ConnectHandlers} */
  #handlers;
  #options;
  /** @type {WebSocket | null} */
  #ws = null;
  /** @type {ConnectionState} */
  #state = "connecting";
  #attempt = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #timer;
  /** @type {Frame[]} */
  #queue = [];
  #stopped = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #refreshTimer;
  /** The user token of the current socket (from `getToken`). */
  #token = "";
  #onOnline = () => {
    if (this.#state === "reconnecting") this.reconnectNow();
  };

  /**
   * @param {string | (() => string)} path
   * @param {ConnectHandlers} handlers
   * @param {ConnectOptions} options
   */
  constructor(path, handlers, options) {
    this.#path = path;
    this.#handlers = handlers;
    this.#options = {
      queue: true,
      maxQueue: 1000,
      minDelay: MIN_DELAY_MS,
      maxDelay: MAX_DELAY_MS,
      // A token that expired is no reason to stop when the page can get a fresh one.
      shouldReconnect: (event) => !isFinalClose(event.code) || (event.code === 4002 && !!options.getToken),
      ...options,
    };
    globalThis.addEventListener("online", this.#onOnline);
    this.#open();
  }

  /** The current state. @returns {ConnectionState} */
  get state() {
    return this.#state;
  }

  /** The path (with query) the next connect uses. @returns {string} */
  get path() {
    return typeof this.#path === "function" ? this.#path() : this.#path;
  }

  /** Frames waiting for the next open. @returns {number} */
  get queued() {
    return this.#queue.length;
  }

  /**
   * Changes the path (with query) used from the next connect on, e.g. to add `since=<last id>`. A function is
   * called before every connect.
   *
   * @param {string | (() => string)} pathWithQuery
   */
  setPath(pathWithQuery) {
    this.#path = pathWithQuery;
  }

  /**
   * Sends a frame: objects as JSON, strings and binary as they are. While disconnected the frame is queued (unless
   * the `queue` option is off, or after {@linkcode close}).
   *
   * @param {unknown} data
   * @returns {"sent" | "queued" | "dropped"}
   */
  send(data) {
    const frame = encode(data);
    if (this.#ws?.readyState === WebSocket.OPEN) {
      this.#ws.send(frame);
      return "sent";
    }
    if (this.#stopped || !this.#options.queue) return "dropped";
    this.#queue.push(frame);
    if (this.#queue.length > this.#options.maxQueue) this.#queue.shift();
    return "queued";
  }

  /** Drops every queued frame. */
  clearQueue() {
    this.#queue = [];
  }

  /** Skips the wait while `reconnecting` and connects now (the backoff keeps counting). */
  reconnectNow() {
    if (this.#state !== "reconnecting") return;
    clearTimeout(this.#timer);
    this.#open();
  }

  /**
   * Closes the socket for good: no reconnect, queued frames dropped.
   *
   * @param {number} [code]
   * @param {string} [reason]
   */
  close(code = 1000, reason = "") {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#refreshTimer);
    globalThis.removeEventListener("online", this.#onOnline);
    this.#queue = [];
    const ws = this.#ws;
    this.#ws = null;
    ws?.close(code, reason);
    this.#setState("closed", { code, reason });
  }

  /** @param {ConnectionState} state @param {StateDetail} detail */
  #setState(state, detail) {
    this.#state = state;
    this.#call("onState", state, detail);
  }

  /** @param {keyof ConnectHandlers} name @param {...unknown} args */
  #call(name, ...args) {
    try {
      /** @type {Function | undefined} */ (this.#handlers[name])?.(...args);
    } catch (err) {
      // One failing handler must not stop the frames after it.
      console.error(`client.js: ${name} failed`, err);
    }
  }

  /** Connects, with a fresh token first when the page gave `getToken`. */
  #open() {
    const getToken = this.#options.getToken;
    if (!getToken) return this.#connect(this.path);
    this.#setState("connecting", { url: this.path, attempt: this.#attempt });
    Promise.resolve().then(getToken).then(
      (token) => {
        if (this.#stopped) return;
        this.#token = token;
        const url = new URL(this.path, location.href);
        url.searchParams.set("token", token);
        this.#connect(url.pathname + url.search, this.path);
      },
      (err) => {
        // No token now (the host page's session may be gone): try again later, like a failed connect.
        console.error("client.js: getToken failed", err);
        if (this.#stopped) return;
        const delay = backoffDelay(this.#attempt++, this.#options.minDelay, this.#options.maxDelay);
        this.#timer = setTimeout(() => this.#open(), delay);
        this.#setState("reconnecting", { delay, retryAt: Date.now() + delay, attempt: this.#attempt });
      },
    );
  }

  /**
   * Refreshes the token shortly before `expiresAt` (from the server's `auth` and `refreshed` frames).
   *
   * @param {unknown} expiresAt
   */
  #scheduleRefresh(expiresAt) {
    clearTimeout(this.#refreshTimer);
    const getToken = this.#options.getToken;
    if (!getToken || typeof expiresAt !== "number") return;
    const left = expiresAt - Date.now();
    this.#refreshTimer = setTimeout(async () => {
      try {
        const token = await getToken();
        // The same token again cannot extend the socket (the server wants a later expiry): let it close at
        // expiry and reconnect with whatever getToken() gives then.
        if (token !== this.#token) this.send({ type: "refresh", token });
        this.#token = token;
      } catch (err) {
        console.error("client.js: getToken failed", err);
      }
    }, Math.max(0, left - Math.min(REFRESH_AHEAD_MS, left / 2)));
  }

  /**
   * @param {string} path what to connect to
   * @param {string} [shown] the path shown in state details (without the token)
   */
  #connect(path, shown = path) {
    const batched = new URL(path, location.href).searchParams.get("batch") === "1";
    this.#setState("connecting", { url: shown, attempt: this.#attempt });
    let ws;
    try {
      ws = new WebSocket(socketUrl(path));
    } catch (err) {
      // Only a malformed URL throws; retrying will not fix it.
      console.error("client.js: bad socket URL", err);
      this.#setState("closed", { url: shown, reason: String(err) });
      this.#stopped = true;
      return;
    }
    ws.binaryType = "arraybuffer";
    this.#ws = ws;
    ws.onopen = () => {
      if (ws !== this.#ws) return;
      this.#attempt = 0;
      this.#setState("open", { url: shown });
      this.#call("onOpen", this);
      const queued = this.#queue;
      this.#queue = [];
      for (const frame of queued) this.send(frame);
    };
    ws.onmessage = (event) => {
      if (ws !== this.#ws) return;
      for (const message of decodeFrame(event.data, batched)) {
        const m = /** @type {{type?: unknown, expiresAt?: unknown}} */ (message);
        if (m?.type === "auth" || m?.type === "refreshed") this.#scheduleRefresh(m.expiresAt);
        this.#call("onMessage", message, event.data);
      }
    };
    ws.onclose = (event) => {
      if (ws !== this.#ws) return;
      this.#ws = null;
      clearTimeout(this.#refreshTimer);
      const { code, reason } = event;
      if (this.#stopped || !this.#options.shouldReconnect(event)) {
        this.#stopped = true;
        this.#setState("closed", { code, reason });
        return;
      }
      const delay = backoffDelay(this.#attempt++, this.#options.minDelay, this.#options.maxDelay);
      this.#timer = setTimeout(() => this.#open(), delay);
      this.#setState("reconnecting", {
        delay,
        retryAt: Date.now() + delay,
        attempt: this.#attempt,
        code,
        reason,
      });
    };
    // An error is always followed by a close event, which does the work.
    ws.onerror = () => {};
  }
}

/**
 * Opens a socket to `pathWithQuery` on this host and keeps it open until `close()`.
 *
 * @param {string | (() => string)} pathWithQuery e.g. `/ws/chat/lobby?name=alice&batch=1`, or a function
 *   returning it, called before every connect
 * @param {ConnectHandlers} [handlers]
 * @param {ConnectOptions} [options]
 * @returns {Connection}
 */
export function connect(pathWithQuery, handlers = {}, options = {}) {
  return new Connection(pathWithQuery, handlers, options);
}
