/**
 * Small DOM helpers the pages share: the connection-state badge, log lists and time formats. Text always goes in
 * through `textContent`, never as HTML.
 *
 * @module
 */
import { onLangChange, t } from "./i18n.js";

/** @typedef {import("./client.js").ConnectionState} ConnectionState */
/** @typedef {import("./client.js").StateDetail} StateDetail */

const pad = (/** @type {number} */ n) => String(n).padStart(2, "0");

/**
 * Local time as `HH:MM:SS`.
 *
 * @param {Date | number} [date]
 * @returns {string}
 */
export function clock(date = new Date()) {
  const d = new Date(date);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/**
 * Local time as `HH:MM`.
 *
 * @param {Date | number} date
 * @returns {string}
 */
export function shortClock(date) {
  const d = new Date(date);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/**
 * Creates an element with a class and text.
 *
 * @param {string} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElement}
 */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Keeps `target` showing the connection state, translated, with a live countdown while reconnecting, and its
 * `data-state` attribute holding the raw state. Returns the function to pass as `onState`.
 *
 * @param {HTMLElement} target
 * @returns {(state: ConnectionState, detail: StateDetail) => void}
 */
export function stateBadge(target) {
  /** @type {ConnectionState} */
  let state = "connecting";
  /** @type {StateDetail} */
  let detail = {};
  /** @type {ReturnType<typeof setInterval> | undefined} */
  let ticker;
  const render = () => {
    const seconds = Math.max(0, Math.ceil(((detail.retryAt ?? 0) - Date.now()) / 1000));
    target.textContent = t(`state.${state}`, { s: seconds });
    target.dataset.state = state;
    const why = detail.code ? `${detail.code}${detail.reason ? ` ${detail.reason}` : ""}` : "";
    target.title = why;
  };
  onLangChange(render);
  return (next, nextDetail) => {
    state = next;
    detail = nextDetail;
    clearInterval(ticker);
    if (state === "reconnecting") ticker = setInterval(render, 250);
    render();
  };
}

/**
 * Whether a scroll box is showing its last line, so new entries should keep it scrolled down.
 *
 * @param {HTMLElement} box
 * @returns {boolean}
 */
export function atBottom(box) {
  return box.scrollHeight - box.scrollTop - box.clientHeight < 40;
}

/**
 * Describes a frame for a log line: text as it is, binary as its size and first bytes in hex.
 *
 * @param {unknown} frame
 * @returns {string}
 */
export function describeFrame(frame) {
  if (typeof frame === "string") return frame;
  if (frame instanceof ArrayBuffer || ArrayBuffer.isView(frame)) {
    const bytes = frame instanceof ArrayBuffer
      ? new Uint8Array(frame)
      : new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength);
    const hex = Array.from(bytes.slice(0, 32), (b) => b.toString(16).padStart(2, "0")).join(" ");
    return `[${t("log.binary", { n: bytes.byteLength })}] ${hex}${bytes.byteLength > 32 ? " …" : ""}`;
  }
  return JSON.stringify(frame);
}

/**
 * Appends one line to a log list: time, direction arrow and text; keeps at most `max` lines and stays scrolled to
 * the bottom when it was there.
 *
 * @param {HTMLElement} list the `<ol>` (it must be its own scroll box)
 * @param {{dir?: "in" | "out" | "info" | "error", text: string, tag?: string}} entry
 * @param {number} [max]
 * @returns {HTMLElement} the `<li>`
 */
export function logLine(list, { dir = "info", text, tag }, max = 300) {
  const follow = atBottom(list);
  const li = el("li", `entry ${dir}`);
  li.dataset.testid = "log-entry";
  const time = el("time", "when", clock());
  const arrow = el("span", "dir", dir === "out" ? "→" : dir === "in" ? "←" : dir === "error" ? "!" : "·");
  li.append(time, arrow, el("span", "text", text));
  if (tag) li.append(el("span", "tag", tag));
  list.append(li);
  while (list.children.length > max) list.firstElementChild?.remove();
  if (follow) list.scrollTop = list.scrollHeight;
  return li;
}
