/**
 * Small DOM helpers the pages share: the connection-state badge, log lists, time formats, notices, a scroll box
 * that follows its newest line, and Enter to send. Text always goes in through `textContent`, never as HTML.
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
 * A message's `<time class="when">`: `HH:MM`, with the full local date and time as its title. A missing or bad
 * `ts` means now.
 *
 * @param {number} [ts] ms since epoch
 * @returns {HTMLElement}
 */
export function timeElement(ts) {
  const date = new Date(Number.isFinite(ts) ? /** @type {number} */ (ts) : Date.now());
  const when = el("time", "when", shortClock(date));
  when.setAttribute("datetime", date.toISOString());
  when.title = date.toLocaleString();
  return when;
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
 * Keeps the scroll box `scroller` showing its newest line while it is there: as lines arrive in `content`, notices
 * appear or a phone's keyboard resizes the box. Scrolling up unpins it, scrolling back to the bottom pins it again.
 *
 * @param {HTMLElement} scroller
 * @param {HTMLElement} content the list inside it that grows
 * @returns {{stick: () => void, readonly pinned: boolean}} `stick()` scrolls to the bottom and pins; `pinned` says
 *   whether it follows the newest line
 */
export function pinToBottom(scroller, content) {
  let pinned = true;
  /** Where our own last scroll landed: its scroll event must not unpin (the layout may have moved since). */
  let autoTop = -1;
  const stick = () => {
    scroller.scrollTop = scroller.scrollHeight;
    autoTop = scroller.scrollTop;
    pinned = true;
  };
  scroller.addEventListener("scroll", () => {
    if (Math.abs(scroller.scrollTop - autoTop) >= 1) pinned = atBottom(scroller);
  });
  const keepPinned = new ResizeObserver(() => {
    if (pinned) stick();
  });
  keepPinned.observe(scroller);
  keepPinned.observe(content);
  return {
    stick,
    get pinned() {
      return pinned;
    },
  };
}

/**
 * Makes Enter in `box` submit `form`, while Shift+Enter breaks the line; never while an input method is composing
 * (Chinese, Japanese…).
 *
 * @param {HTMLTextAreaElement} box
 * @param {HTMLFormElement} form
 */
export function submitOnEnter(box, form) {
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}

/**
 * Appends a notice to `box` and shows the box: `p.notice.<kind>` with `data-kind`, the text and a × button that
 * removes it. Which older notices go first is up to the page.
 *
 * @param {HTMLElement} box
 * @param {string} kind e.g. `error`, `info`
 * @param {string} text
 * @param {Record<string, string>} [data] more `data-*` attributes, e.g. `{code, testid}`
 * @returns {HTMLElement} the notice
 */
export function addNotice(box, kind, text, data = {}) {
  const item = el("p", `notice ${kind}`);
  item.dataset.kind = kind;
  Object.assign(item.dataset, data);
  const dismiss = el("button", "quiet notice-x", "×");
  dismiss.setAttribute("type", "button");
  dismiss.dataset.i18nAriaLabel = "notice.dismiss";
  dismiss.setAttribute("aria-label", t("notice.dismiss"));
  dismiss.addEventListener("click", () => {
    item.remove();
    box.hidden = box.childElementCount === 0;
  });
  item.append(el("span", "notice-text", text), dismiss);
  box.append(item);
  box.hidden = false;
  return item;
}

/**
 * Removes the notice matching `selector` from `box`, if any, and hides the box when it is left empty.
 *
 * @param {HTMLElement} box
 * @param {string} selector
 */
export function removeNotice(box, selector) {
  box.querySelector(selector)?.remove();
  box.hidden = box.childElementCount === 0;
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
