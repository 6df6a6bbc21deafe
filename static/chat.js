/**
 * The chat page. `#room=lobby&name=alice` joins at once; otherwise a form asks. Messages stay sorted by numeric
 * id and never repeat; our own messages show as pending until the server echoes their `clientMsgId`, and are sent
 * again after a reconnect (which asks for `since=` the newest id with nothing missing before it).
 *
 * @module
 */
import { connect } from "./client.js";
import { initI18n, setText, t } from "./i18n.js";
import {
  addPending,
  addSystemLine,
  describeError,
  failPending,
  insertMessages,
  wireComposer,
} from "./messages.js";
import { sendTypingOnInput, Typers } from "./typing.js";
import { addNotice, el, pinToBottom, removeNotice, stateBadge, timeElement } from "./ui.js";

initI18n();

const ROOM_RE = /^[A-Za-z0-9._-]{1,64}$/;
const NAME_MAX = 32;
const PAGE_SIZE = 50;
const STORE_ROOM = "switchboard.chat.room";
const STORE_NAME = "switchboard.chat.name";

/** @typedef {{id: string, name: string, verified?: boolean}} Member */
/** @typedef {import("./messages.js").MessageFrame & {room: string}} Message */
/** @typedef {import("./messages.js").Entry} Entry */
/** @typedef {import("./messages.js").Pending} Pending */

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const roomInput = /** @type {HTMLInputElement} */ ($("room-input"));
const nameInput = /** @type {HTMLInputElement} */ ($("name-input"));
const textBox = /** @type {HTMLTextAreaElement} */ ($("text"));
const messagesEl = $("messages");
const scroller = $("scroller");
const noticeEl = $("notice");
const onState = stateBadge($("state"));
/** The message list follows its newest line while it shows it. */
const pin = pinToBottom(scroller, messagesEl);

/** Everything about the room we are in; replaced on every join. */
let chat = newChat("", "");

/**
 * @param {string} room
 * @param {string} name
 */
function newChat(room, name) {
  return {
    room,
    name,
    /** @type {import("./client.js").Connection | null} */
    conn: null,
    /** Whether the current socket got its welcome (frames sent before it could be sent twice). */
    ready: false,
    /** @type {Member | null} */
    me: null,
    /** Our member ids across reconnects, to tell our own messages. @type {Set<string>} */
    myIds: new Set(),
    /** @type {Map<string, Member>} */
    members: new Map(),
    /** Confirmed messages, sorted by number. @type {Entry[]} */
    entries: [],
    /** @type {Map<string, Entry>} */
    byId: new Map(),
    /** Our messages not yet confirmed, in send order. @type {Map<string, Pending>} */
    pending: new Map(),
    /** Other members typing, by member id. */
    typers: new Typers(renderTyping),
    /**
     * Where a truncated recovery left a hole: fetch pages going `dir` from id `from` until the hole is closed
     * (reaching `stop` going down, or an id already shown going up).
     *
     * @type {{dir: "before" | "after", from: number, stop: number} | null}
     */
    gap: null,
  };
}

// ---- joining and leaving ----

/**
 * A user token from the host application (`#room=…&token=…`, see docs/auth.md): the member is then that verified
 * user and needs no name. Kept in memory only, and taken out of the address bar.
 */
let userToken = "";

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  return { room: p.get("room") ?? "", name: p.get("name") ?? "", token: p.get("token") ?? "" };
}

/** @param {string} room @param {string} name @returns {string | null} an i18n key when invalid */
function invalid(room, name) {
  if (!ROOM_RE.test(room)) return "chat.badRoom";
  if (userToken) return null;
  const length = [...name.trim()].length;
  if (length < 1 || length > NAME_MAX) return "chat.badName";
  return null;
}

/** @param {string} key @returns {string} the value saved under `key`, or "" */
function recall(key) {
  try {
    return localStorage.getItem(key) ?? "";
  } catch {
    return ""; // storage disabled: the form just starts empty
  }
}

/** @param {string} key @param {string} value */
function remember(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // not remembered; nothing else depends on it
  }
}

function route() {
  const { room, name, token } = readHash();
  if (token) userToken = token;
  if (chat.conn && room === chat.room && name.trim() === chat.name) return;
  leave(false);
  roomInput.value = room || recall(STORE_ROOM);
  nameInput.value = name || recall(STORE_NAME);
  if (room || name || userToken) {
    const error = invalid(room, name);
    if (!error) return enter(room, name.trim());
    showFormError(error);
  }
  showForm();
}

/** @param {string} key */
function showFormError(key) {
  setText($("form-error"), key);
  $("form-error").hidden = false;
}

function showForm() {
  $("join-view").hidden = false;
  $("chat-view").hidden = true;
  $("state").hidden = true;
  $("leave").hidden = true;
  $("room-name").textContent = "";
  (roomInput.value ? nameInput : roomInput).focus();
  loadRooms();
}

/** @param {string} room @param {string} name */
function enter(room, name) {
  remember(STORE_ROOM, room);
  remember(STORE_NAME, name);
  const hash = `#room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);
  $("form-error").hidden = true;
  $("join-view").hidden = true;
  $("chat-view").hidden = false;
  $("state").hidden = false;
  $("leave").hidden = false;
  $("room-name").textContent = `#${room}`;
  messagesEl.replaceChildren();
  noticeEl.replaceChildren();
  noticeEl.hidden = true;
  $("load-older").hidden = true;
  $("no-older").hidden = true;
  chat = newChat(room, name);
  resetTyping();
  pin.stick();
  renderMembers();
  renderTyping();
  const c = chat;
  c.conn = connect(() => socketPath(c), {
    onState(state, detail) {
      if (state !== "open") c.ready = false;
      onState(state, detail);
    },
    onMessage: (m) => {
      if (c === chat) receive(/** @type {Record<string, any>} */ (m));
    },
  }, { queue: false, ...(userToken ? { getToken: () => userToken } : {}) });
  textBox.focus();
}

/**
 * The id to resume after: the newest one with nothing missing before it among the recent messages. With several
 * server instances, message 6 can arrive just before 5; resuming after 4 then brings 5 (and 6 again, dropped as a
 * duplicate) instead of losing 5.
 * @param {ReturnType<typeof newChat>} c
 */
function resumeId(c) {
  const recent = c.entries.slice(-100);
  for (let i = 0; i + 1 < recent.length; i++) {
    if (recent[i + 1].n !== recent[i].n + 1) return recent[i].id;
  }
  return recent.at(-1)?.id;
}

/** @param {ReturnType<typeof newChat>} c */
function socketPath(c) {
  const last = resumeId(c);
  const since = last ? `&since=${encodeURIComponent(last)}` : "";
  return `/ws/chat/${encodeURIComponent(c.room)}?name=${encodeURIComponent(c.name)}&batch=1${since}`;
}

/** @param {boolean} clearHash */
function leave(clearHash) {
  chat.conn?.close();
  chat.typers.clear();
  chat = newChat("", "");
  if (clearHash) history.replaceState(null, "", location.pathname + location.search);
}

// ---- frames from the server ----

/** @param {Record<string, any>} m */
function receive(m) {
  if (typeof m !== "object" || m === null) return;
  switch (m.type) {
    case "welcome":
      return welcome(m);
    case "message":
      return addMessages([/** @type {Message} */ (m)]);
    case "join":
      if (!m.member || chat.members.has(m.member.id)) return;
      chat.members.set(m.member.id, m.member);
      renderMembers();
      if (!chat.myIds.has(m.member.id)) systemLine("chat.joined", { name: m.member.name });
      return;
    case "leave":
      if (!m.member) return;
      chat.members.delete(m.member.id);
      chat.typers.stop(m.member.id);
      renderMembers();
      // Our own earlier socket leaves after a reconnect: not news for us.
      if (!chat.myIds.has(m.member.id)) systemLine("chat.left", { name: m.member.name });
      return;
    case "typing":
      return typing(m.from);
    case "error":
      return serverError(m);
  }
}

/** @param {Record<string, any>} m */
function welcome(m) {
  const c = chat;
  if (!m.you) return;
  const lastBefore = c.entries.at(-1)?.n;
  c.me = m.you;
  c.myIds.add(m.you.id);
  c.members = new Map((m.members ?? []).map((/** @type {Member} */ x) => [x.id, x]));
  if (!c.members.has(m.you.id)) c.members.set(m.you.id, m.you);
  c.typers.clear();
  renderTyping();
  renderMembers();
  /** @type {Message[]} */
  const history = Array.isArray(m.history) ? m.history : [];
  addMessages(history);
  if (m.truncated) {
    c.gap = lastBefore === undefined ? null : findGap(lastBefore, history);
    truncatedNotice();
  }
  if (lastBefore === undefined) $("load-older").hidden = c.entries.length === 0;
  c.ready = true;
  for (const [clientMsgId, p] of c.pending) {
    p.sent = false;
    if (!p.failed) sendMessage(clientMsgId);
  }
}

/**
 * Where the hole is after a truncated recovery from `since`: below the recovered history if it does not start
 * right after `since` (the server sent the newest), else above it (the server sent the oldest after `since`).
 *
 * @param {number} since
 * @param {Message[]} history
 */
function findGap(since, history) {
  const ids = history.map((h) => Number(h.id)).filter(Number.isFinite);
  if (ids.length === 0) return /** @type {const} */ ({ dir: "after", from: since, stop: Infinity });
  const lowest = Math.min(...ids);
  if (lowest > since + 1) return /** @type {const} */ ({ dir: "before", from: lowest, stop: since });
  return /** @type {const} */ ({ dir: "after", from: Math.max(...ids), stop: Infinity });
}

/** @param {Member | undefined} from */
function typing(from) {
  if (!from || chat.myIds.has(from.id)) return;
  chat.typers.show(from.id, from.name);
}

/** @param {Record<string, any>} m */
function serverError(m) {
  failPending(chat.pending, m);
  const { text, title } = describeError("chat", m);
  notice("error", text).title = title;
}

// ---- the message list ----

/** @param {Message} m */
function messageElement(m) {
  const li = el("li", "message");
  li.dataset.id = String(m.id);
  li.dataset.testid = "message";
  if (chat.myIds.has(m.from?.id)) li.classList.add("mine");
  const from = el("span", "from", m.from?.name ?? "?");
  if (m.from?.verified) from.append(verifiedBadge());
  li.append(from, timeElement(m.ts), el("div", "text", String(m.text)));
  return li;
}

/**
 * Adds messages where their ids say, skipping ids already shown, and confirms our pending ones.
 *
 * @param {Message[]} list
 * @param {{keepView?: boolean}} [how] keepView: keep what is on screen in place (for older messages above)
 */
function addMessages(list, { keepView = false } = {}) {
  const heightBefore = scroller.scrollHeight;
  for (const m of insertMessages(chat, list, messageElement, messagesEl)) {
    if (m.from) chat.typers.stop(m.from.id);
  }
  // Otherwise `pin` follows the newest line when it was in view.
  if (keepView) scroller.scrollTop += scroller.scrollHeight - heightBefore;
}

/**
 * A line such as "alice joined", after the newest message.
 *
 * @param {string} key
 * @param {Record<string, string>} params
 */
function systemLine(key, params) {
  addSystemLine(messagesEl, chat.pending, key, params);
}

/** A mark for members whose identity the host application verified (a token), as opposed to a chosen name. */
function verifiedBadge() {
  const badge = el("span", "verified", "✓");
  badge.dataset.testid = "verified";
  setText(badge, "chat.verifiedMark");
  badge.title = t("chat.verified");
  return badge;
}

function renderMembers() {
  const list = $("members");
  list.replaceChildren();
  const members = [...chat.members.values()].sort((a, b) =>
    a.name.localeCompare(b.name) || a.id.localeCompare(b.id)
  );
  for (const m of members) {
    const li = el("li", "member", m.name);
    if (m.verified) li.append(verifiedBadge());
    li.dataset.id = m.id;
    li.dataset.testid = "member";
    li.title = m.id;
    if (chat.me?.id === m.id) {
      li.classList.add("me");
      const you = el("span", "you");
      setText(you, "chat.you");
      li.append(" ", you);
    }
    list.append(li);
  }
  setText($("members-title"), "chat.members", { n: members.length });
}

function renderTyping() {
  const names = chat.typers.names();
  const out = $("typing");
  if (names.length === 0) setText(out, "");
  else if (names.length === 1) setText(out, "chat.typing1", { a: names[0] });
  else if (names.length === 2) setText(out, "chat.typing2", { a: names[0], b: names[1] });
  else setText(out, "chat.typingMany");
}

/**
 * Shows a notice above the messages. One error notice at a time: a new one replaces the last.
 *
 * @param {"error" | "truncated" | "info"} kind
 * @param {string} text
 * @returns {HTMLElement}
 */
function notice(kind, text) {
  if (kind !== "info") noticeEl.querySelector(`[data-kind="${kind}"]`)?.remove();
  return addNotice(noticeEl, kind, text);
}

function truncatedNotice() {
  const item = notice("truncated", "");
  setText(/** @type {HTMLElement} */ (item.querySelector(".notice-text")), "chat.truncated");
  const button = el("button", "quiet");
  button.id = "load-missing";
  button.dataset.testid = "load-missing";
  button.setAttribute("type", "button");
  setText(button, chat.gap ? "chat.loadMissing" : "chat.loadOlder");
  button.addEventListener("click", () => (chat.gap ? loadMissing() : loadOlder()));
  item.insertBefore(button, item.lastElementChild);
  $("load-older").hidden = false;
}

// ---- history over HTTP ----

/**
 * A page of a room's history next to a message id, oldest first.
 *
 * @param {string} room
 * @param {"before" | "after"} dir
 * @param {string} id
 * @returns {Promise<{messages: Message[], hasMore: boolean}>}
 */
async function fetchPage(room, dir, id) {
  const res = await fetch(
    `/api/rooms/${encodeURIComponent(room)}/messages?${dir}=${encodeURIComponent(id)}&limit=${PAGE_SIZE}`,
  );
  if (!res.ok) throw new Error(String(res.status));
  const body = await res.json();
  return { messages: Array.isArray(body.messages) ? body.messages : [], hasMore: Boolean(body.hasMore) };
}

async function loadOlder() {
  const c = chat;
  const lowest = c.entries[0];
  const button = /** @type {HTMLButtonElement} */ ($("load-older"));
  if (!lowest) return;
  button.disabled = true;
  try {
    const { messages, hasMore } = await fetchPage(c.room, "before", lowest.id);
    if (c !== chat) return;
    addMessages(messages, { keepView: true });
    if (!hasMore) {
      button.hidden = true;
      $("no-older").hidden = false;
    }
  } catch (err) {
    if (c === chat) notice("error", t("chat.loadFailed", { status: /** @type {Error} */ (err).message }));
  } finally {
    button.disabled = false;
  }
}

/** Fills the hole a truncated recovery left, a few pages per click. */
async function loadMissing() {
  const c = chat;
  const gap = c.gap;
  if (!gap) return;
  try {
    for (let page = 0; page < 4 && c.gap; page++) {
      const { messages, hasMore } = await fetchPage(c.room, gap.dir, String(gap.from));
      if (c !== chat) return;
      const ids = messages.map((m) => Number(m.id));
      const reachedKnown = messages.some((m) => c.byId.has(String(m.id)));
      addMessages(messages, { keepView: gap.dir === "before" && !pin.pinned });
      gap.from = gap.dir === "before" ? Math.min(...ids) : Math.max(...ids);
      const closed = !hasMore || ids.length === 0 || reachedKnown ||
        (gap.dir === "before" && gap.from <= gap.stop + 1);
      if (closed) {
        c.gap = null;
        removeNotice(noticeEl, '[data-kind="truncated"]');
      }
    }
  } catch (err) {
    if (c === chat) notice("error", t("chat.loadFailed", { status: /** @type {Error} */ (err).message }));
  }
}

async function loadRooms() {
  try {
    const res = await fetch("/api/rooms");
    if (!res.ok) return;
    const body = await res.json();
    /** @type {{room: string, online: number, lastId?: string}[]} */
    const rooms = Array.isArray(body.rooms) ? body.rooms : [];
    const list = $("rooms");
    list.replaceChildren();
    for (const r of rooms) {
      const li = el("li");
      const button = el("button", "room");
      button.setAttribute("type", "button");
      button.dataset.room = r.room;
      button.dataset.testid = "room";
      const online = el("span", "muted");
      setText(online, "chat.roomOnline", { n: r.online ?? 0 });
      button.append(el("span", "", `#${r.room}`), online);
      button.addEventListener("click", () => {
        roomInput.value = r.room;
        if (!invalid(r.room, nameInput.value)) join();
        else nameInput.focus();
      });
      li.append(button);
      list.append(li);
    }
    $("no-rooms").hidden = rooms.length > 0;
    $("room-list").hidden = false;
  } catch {
    // The room list is a convenience; the form works without it.
  }
}

// ---- sending ----

/** @param {string} clientMsgId */
function sendMessage(clientMsgId) {
  const p = chat.pending.get(clientMsgId);
  if (!p || !chat.ready || !chat.conn) return;
  p.sent = chat.conn.send({ type: "message", text: p.text, clientMsgId }) === "sent";
}

/** @param {string} text */
function queueMessage(text) {
  const p = addPending(chat.pending, text, el("span", "from", chat.name), {
    send: (p) => sendMessage(p.clientMsgId),
  });
  messagesEl.append(p.el);
  pin.stick();
  sendMessage(p.clientMsgId);
}

function join() {
  const room = roomInput.value.trim();
  const name = nameInput.value.trim();
  const error = invalid(room, name);
  if (error) return showFormError(error);
  enter(room, name);
}

$("room-form").addEventListener("submit", (event) => {
  event.preventDefault();
  join();
});

wireComposer(/** @type {HTMLFormElement} */ ($("composer")), textBox, {
  canSend: () => Boolean(chat.conn),
  tooLong: (message) => notice("error", message),
  send: queueMessage,
});

/** Lets the first keystroke in a new room say we are typing at once. */
const resetTyping = sendTypingOnInput(textBox, () => {
  if (!chat.ready) return false;
  chat.conn?.send({ type: "typing" });
  return true;
});

$("load-older").addEventListener("click", loadOlder);
$("leave").addEventListener("click", () => {
  leave(true);
  showForm();
});
globalThis.addEventListener("hashchange", route);

route();
