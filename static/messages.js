/**
 * The message list the chat page, the widget and the agent console share: confirmed messages kept sorted by
 * numeric id without repeats, and our own messages shown as pending (keyed by the `clientMsgId` we sent) until the
 * server echoes them back, or marked failed with Retry and Discard when it refuses them.
 *
 * ```js
 * const log = { entries: [], byId: new Map(), pending: new Map() };
 * const p = addPending(log.pending, "hi", el("span", "from", "alice"), { send: (p) => sendFrame(p) });
 * list.append(p.el);
 * insertMessages(log, [{ id: "1", text: "hi", clientMsgId: p.clientMsgId }], render, list); // confirms p
 * ```
 *
 * @module
 */
import { setText, t } from "./i18n.js";
import { el, submitOnEnter } from "./ui.js";

/** The most characters a message may have; longer ones are refused before they are sent. */
const TEXT_MAX = 4000;

/** Error codes that can answer a `message` frame. */
const REJECTS_MESSAGE = new Set(["bad_message", "too_large", "rate_limited", "unavailable", "internal"]);

/**
 * Who sent a message; customer service also says in which role.
 *
 * @typedef {{id: string, name: string, role?: "visitor" | "agent" | "system"}} Sender
 */
/**
 * A `message` frame, the same in chat rooms and in customer service (which add `room` or `conversationId`).
 *
 * @typedef {object} MessageFrame
 * @property {"message"} type
 * @property {string} id numeric string, increasing within the room or conversation
 * @property {Sender} from
 * @property {string} text
 * @property {number} ts ms since epoch
 * @property {string} [clientMsgId] ours, echoed back to confirm what we sent
 * @property {{id: string, name: string, type: string, size: number, url: string}[]} [attachments] files sent
 *   with it (customer service)
 */
/**
 * A confirmed message on the list.
 *
 * @typedef {object} Entry
 * @property {number} n the id as a number, the sort key
 * @property {string} id
 * @property {HTMLElement} el
 * @property {Sender | undefined} from who sent it
 */
/**
 * One of our messages the server has not confirmed yet.
 *
 * @typedef {object} Pending
 * @property {string} clientMsgId
 * @property {string} text
 * @property {string[]} attachments the upload ids sent with it
 * @property {HTMLElement} el
 * @property {boolean} failed refused by the server; waits for Retry or Discard
 * @property {boolean} sent whether the current socket carried it
 */
/**
 * A room's or conversation's messages.
 *
 * @typedef {object} MessageLog
 * @property {Entry[]} entries confirmed messages, sorted by number
 * @property {Map<string, Entry>} byId
 * @property {Map<string, Pending>} pending our messages not yet confirmed, in send order
 */

/**
 * Wires the message composer: Enter in `box` submits `form` (Shift+Enter breaks the line), and a submit takes the
 * trimmed text out of the box, hands it to `send` and puts the focus back. Blank text (unless `hasFiles()`: files
 * may go without words), or `canSend()` false, does nothing; text over the limit stays in the box and `tooLong`
 * gets the words to show.
 *
 * @param {HTMLFormElement} form
 * @param {HTMLTextAreaElement} box
 * @param {{canSend?: () => boolean, hasFiles?: () => boolean, tooLong: (message: string) => void,
 *   send: (text: string) => void}} how
 */
export function wireComposer(form, box, { canSend = () => true, hasFiles = () => false, tooLong, send }) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = box.value.trim();
    if ((!text && !hasFiles()) || !canSend()) return;
    if ([...text].length > TEXT_MAX) {
      tooLong(t("chat.tooLong", { n: TEXT_MAX }));
      return;
    }
    box.value = "";
    send(text);
    box.focus();
  });
  submitOnEnter(box, form);
}

/**
 * Adds messages where their ids say, skipping ids already there, and confirms pending ones that carry their
 * `clientMsgId`. Elements go into `list` (before the pending messages when they are the newest); with `list` null
 * they only join `log`, for a list that is not on screen.
 *
 * @template {MessageFrame} M
 * @param {MessageLog} log
 * @param {M[]} messages
 * @param {(m: M) => HTMLElement} render
 * @param {HTMLElement | null} list
 * @returns {M[]} the messages that were new
 */
export function insertMessages(log, messages, render, list) {
  const { entries, byId, pending } = log;
  /** @type {M[]} */
  const added = [];
  for (const m of messages) {
    if (!m || m.id === undefined || m.id === null) continue;
    const id = String(m.id);
    const n = Number(id);
    if (!Number.isFinite(n) || byId.has(id)) continue;
    if (m.clientMsgId && pending.has(m.clientMsgId)) {
      pending.get(m.clientMsgId)?.el.remove();
      pending.delete(m.clientMsgId);
    }
    let lo = 0;
    let hi = entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (entries[mid].n < n) lo = mid + 1;
      else hi = mid;
    }
    /** @type {Entry} */
    const entry = { n, id, el: render(m), from: m.from };
    // After the last message, new ones go after any notice lines but before our pending messages.
    list?.insertBefore(entry.el, entries[lo]?.el ?? firstPending(pending));
    entries.splice(lo, 0, entry);
    byId.set(id, entry);
    added.push(m);
  }
  return added;
}

/**
 * The element of our oldest pending message, or null: new lines go before it.
 *
 * @param {Map<string, Pending>} pending
 * @returns {HTMLElement | null}
 */
export function firstPending(pending) {
  return pending.values().next().value?.el ?? null;
}

/**
 * A line such as "alice joined" (`li.system`), after the newest message and before our pending ones.
 *
 * @param {HTMLElement} list
 * @param {Map<string, Pending>} pending
 * @param {string} key i18n key
 * @param {Record<string, string>} params
 * @param {string} [extraClass]
 * @returns {HTMLElement}
 */
export function addSystemLine(list, pending, key, params, extraClass = "") {
  const li = el("li", `system ${extraClass}`.trim());
  li.dataset.testid = "system";
  setText(li, key, params);
  list.insertBefore(li, firstPending(pending));
  return li;
}

/** A random id; `crypto.randomUUID` exists only on https and localhost. */
function newClientMsgId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
}

/**
 * Creates one of our messages under a new `clientMsgId` and adds it to `pending`: `li.message.mine.pending` with
 * `data-client-msg-id`, the sender, a "sending…" status and hidden Retry and Discard buttons. The caller puts
 * `el` on the list and sends it.
 *
 * @param {Map<string, Pending>} pending
 * @param {string} text
 * @param {HTMLElement} from the `.from` element
 * @param {{className?: string, send: (p: Pending) => void, attachments?: string[], view?: HTMLElement | null}} how
 *   `className`: more classes for the `<li>`; `send`: sends it again after Retry; `attachments`: the upload ids it
 *   carries, and `view` how they show under the text
 * @returns {Pending}
 */
export function addPending(pending, text, from, { className = "", send, attachments = [], view = null }) {
  const clientMsgId = newClientMsgId();
  const li = el("li", `message mine pending ${className}`.trim());
  li.dataset.clientMsgId = clientMsgId;
  li.dataset.testid = "message";
  const status = el("span", "status");
  setText(status, "chat.pending");
  const actions = el("span", "actions");
  actions.hidden = true;
  const retry = el("button", "quiet");
  retry.setAttribute("type", "button");
  setText(retry, "chat.retry");
  const discard = el("button", "quiet");
  discard.setAttribute("type", "button");
  setText(discard, "chat.discard");
  actions.append(retry, discard);
  li.append(from, status, actions);
  if (text || !view) li.append(el("div", "text", text));
  if (view) li.append(view);
  /** @type {Pending} */
  const p = { clientMsgId, text, attachments, el: li, failed: false, sent: false };
  retry.addEventListener("click", () => {
    p.failed = false;
    li.classList.remove("failed");
    setText(status, "chat.pending");
    actions.hidden = true;
    send(p);
  });
  discard.addEventListener("click", () => {
    li.remove();
    pending.delete(clientMsgId);
  });
  pending.set(clientMsgId, p);
  return p;
}

/**
 * Shows a pending message as "not sent", with its Retry and Discard buttons.
 *
 * @param {Pending} p
 */
function markFailed(p) {
  p.failed = true;
  p.el.classList.add("failed");
  setText(/** @type {HTMLElement} */ (p.el.querySelector(".status")), "chat.failed");
  /** @type {HTMLElement} */ (p.el.querySelector(".actions")).hidden = false;
}

/**
 * Marks the pending messages an `error` frame refused as failed: the one its `clientMsgId` names, or, when it
 * names none but its code can answer a message, every one this socket carried. Those the server did take are
 * confirmed a moment later, which replaces them.
 *
 * @param {Map<string, Pending>} pending
 * @param {{code?: unknown, clientMsgId?: string}} frame
 */
export function failPending(pending, frame) {
  if (frame.clientMsgId) {
    const p = pending.get(frame.clientMsgId);
    if (p) markFailed(p);
  } else if (REJECTS_MESSAGE.has(String(frame.code ?? ""))) {
    for (const p of pending.values()) if (p.sent) markFailed(p);
  }
}

/**
 * The words for an `error` frame: the page's own (`<prefix>.err.<code>`) when it has them, else the generic
 * "Error {code}: {message}"; `title` keeps the server's code and message.
 *
 * @param {string} prefix e.g. `chat`
 * @param {{code?: unknown, message?: unknown}} frame
 * @returns {{code: string, text: string, title: string}}
 */
export function describeError(prefix, frame) {
  const code = String(frame.code ?? "");
  const known = `${prefix}.err.${code}`;
  const text = t(known) === known
    ? t("error.frame", { code, message: String(frame.message ?? "") })
    : t(known);
  return { code, text, title: `${code}: ${frame.message ?? ""}` };
}

/**
 * Shows which of our messages the other side has read: `.receipt` elements of entries up to `upTo` say `read`,
 * the others `sent`, and their `<li>` gets the `read` class. Only receipts that change are touched.
 *
 * @param {Entry[]} entries
 * @param {number} upTo
 * @param {{read: string, sent: string, readTitle?: string, sentTitle?: string}} keys i18n keys for the text and,
 *   optionally, the title
 */
export function showReceipts(entries, upTo, keys) {
  for (const e of entries) {
    const receipt = /** @type {HTMLElement | null} */ (e.el.querySelector(".receipt"));
    if (!receipt) continue;
    const read = e.n <= upTo;
    if (receipt.dataset.read === String(read)) continue;
    receipt.dataset.read = String(read);
    e.el.classList.toggle("read", read);
    setText(receipt, read ? keys.read : keys.sent);
    const title = read ? keys.readTitle : keys.sentTitle;
    if (title) {
      receipt.dataset.i18nTitle = title;
      receipt.title = t(title);
    }
  }
}
