/**
 * The visitor's side of customer service, inside the widget iframe (or full page at `/widget.html`).
 *
 * The socket is `/ws/support/visitor?token=T&batch=1`; the token from the server's first `session` frame is kept in
 * localStorage, so a reload resumes the same conversation (the server then re-sends `session` and `history`).
 * Messages stay sorted by numeric id and never repeat; our own show as pending until the server echoes their
 * `clientMsgId`, and unconfirmed ones are sent again after a reconnect, once the history has said which arrived.
 *
 * Files go with a message too: the paperclip, a paste or a drop uploads them (`uploads.js`, with the visitor's
 * token, as there is no cookie here), and Send sends their ids; attachments are fetched with the token to show.
 *
 * Right after `session` the server says whether the desk takes chats now (`availability`, with the welcome in the
 * widget's language). When it does not and the visitor has no open conversation, a leave-a-message form replaces
 * the composer; it posts to `/api/support/offline` with the visitor token, and agents answer by email.
 *
 * When framed by `widget.js`, the parent says when the panel opens and closes; agent messages that arrive while it
 * is closed (or the page is hidden) count as unread, and the count goes to the parent for the bubble's badge.
 *
 * @module
 */
import { connect } from "./client.js";
import { extend, initI18n, lang, onLangChange, setLang, setText, t } from "./i18n.js";
import {
  addPending,
  addSystemLine,
  describeError,
  failPending,
  insertMessages,
  showReceipts,
  wireComposer,
} from "./messages.js";
import { sendTypingOnInput, Typers } from "./typing.js";
import { addNotice, el, pinToBottom, removeNotice, stateBadge, timeElement } from "./ui.js";
import { attachmentsElement, blobLoader, UploadTray, wireAttach } from "./uploads.js";

extend({
  en: {
    "widget.title": "Customer service · Switchboard",
    "widget.heading": "Customer service",
    "widget.minimize": "Minimize the chat",
    "widget.welcome": "Hi! Ask us anything; an agent will answer here.",
    "widget.placeholder": "Write a message…",
    "widget.you": "You",
    "widget.queued": "You are #{n} in the queue.",
    "widget.assigned": "You are chatting with {name}.",
    "widget.joined": "{name} joined the chat",
    "widget.ended": "This conversation has ended. Write again to start a new one.",
    "widget.newConversation": "New conversation",
    "widget.typing": "{name} is typing…",
    "widget.sent": "✓",
    "widget.sentTitle": "Sent",
    "widget.read": "✓✓ read",
    "widget.noAgent": "No agent is online right now; leave a message and we'll answer as soon as possible.",
    "widget.rateTitle": "How did we do?",
    "widget.star1": "1 star: bad",
    "widget.star2": "2 stars: poor",
    "widget.star3": "3 stars: okay",
    "widget.star4": "4 stars: good",
    "widget.star5": "5 stars: excellent",
    "widget.rateComment": "Anything to add? (optional)",
    "widget.rateSubmit": "Send rating",
    "widget.rated": "Thanks for your feedback!",
    "widget.profile": "Your name and email (optional)",
    "widget.profileName": "Name",
    "widget.profileEmail": "Email",
    "widget.profileSave": "Save",
    "widget.profileSaved": "Saved",
    "widget.badEmail": "That email address does not look right.",
    "widget.unreadTitle": "({n}) {title}",
    "widget.err.bad_message": "The message was rejected.",
    "widget.err.too_large": "The message is too long.",
    "widget.err.rate_limited": "You are sending too fast; slow down.",
    "widget.err.bad_rating": "The rating was not accepted.",
    "widget.err.bad_profile": "The name or email was not accepted.",
    "widget.offlineClosed": "We are closed right now. Leave a message and we will reply by email.",
    "widget.offlineNoAgents": "No agent is online right now. Leave a message and we will reply by email.",
    "widget.offlineEmail": "Email (we reply there)",
    "widget.offlineText": "Your message",
    "widget.offlineSend": "Send message",
    "widget.offlineSending": "Sending…",
    "widget.offlineThanks": "Thank you! We have your message and will reply by email.",
    "widget.offlineAgain": "Write another message",
    "widget.offlineNoEmail": "Enter your email address, so that we can reply.",
    "widget.offlineNoText": "Write your message.",
    "widget.offlineTooLong": "The message is too long (at most {n} characters).",
    "widget.offlineRejected": "The message was not accepted: {message}",
    "widget.offlineRateLimited": "Too many messages from your address; try again in a minute.",
    "widget.offlineFailed": "The message could not be sent ({status}); try again.",
    "widget.offlineUnreachable": "The server cannot be reached; check your connection and try again.",
  },
  zh: {
    "widget.title": "在线客服 · Switchboard",
    "widget.heading": "在线客服",
    "widget.minimize": "收起聊天窗口",
    "widget.welcome": "你好！有什么问题尽管问，客服会在这里回复你。",
    "widget.placeholder": "输入消息…",
    "widget.you": "我",
    "widget.queued": "你目前排在第 {n} 位。",
    "widget.assigned": "正在与 {name} 对话。",
    "widget.joined": "{name} 加入了对话",
    "widget.ended": "本次对话已结束。再次发送消息即可开始新的对话。",
    "widget.newConversation": "新的对话",
    "widget.typing": "{name} 正在输入…",
    "widget.sent": "✓",
    "widget.sentTitle": "已发送",
    "widget.read": "✓✓ 已读",
    "widget.noAgent": "目前没有客服在线；请留言，我们会尽快回复。",
    "widget.rateTitle": "请为本次服务评分",
    "widget.star1": "1 星：很差",
    "widget.star2": "2 星：较差",
    "widget.star3": "3 星：一般",
    "widget.star4": "4 星：满意",
    "widget.star5": "5 星：非常满意",
    "widget.rateComment": "还有什么想说的吗？（可选）",
    "widget.rateSubmit": "提交评分",
    "widget.rated": "感谢你的反馈！",
    "widget.profile": "你的名字和邮箱（可选）",
    "widget.profileName": "名字",
    "widget.profileEmail": "邮箱",
    "widget.profileSave": "保存",
    "widget.profileSaved": "已保存",
    "widget.badEmail": "邮箱地址格式不正确。",
    "widget.unreadTitle": "（{n}）{title}",
    "widget.err.bad_message": "消息被拒绝。",
    "widget.err.too_large": "消息太长。",
    "widget.err.rate_limited": "发送太快了，请慢一点。",
    "widget.err.bad_rating": "评分未被接受。",
    "widget.err.bad_profile": "名字或邮箱未被接受。",
    "widget.offlineClosed": "我们现在不在营业时间。请留言，我们会通过邮件回复你。",
    "widget.offlineNoAgents": "目前没有客服在线。请留言，我们会通过邮件回复你。",
    "widget.offlineEmail": "邮箱（我们会回复到这里）",
    "widget.offlineText": "留言内容",
    "widget.offlineSend": "发送留言",
    "widget.offlineSending": "发送中…",
    "widget.offlineThanks": "谢谢！我们已收到你的留言，会通过邮件回复你。",
    "widget.offlineAgain": "再写一条留言",
    "widget.offlineNoEmail": "请填写邮箱地址，以便我们回复你。",
    "widget.offlineNoText": "请填写留言内容。",
    "widget.offlineTooLong": "留言太长（最多 {n} 个字符）。",
    "widget.offlineRejected": "留言未被接受：{message}",
    "widget.offlineRateLimited": "来自你的地址的留言太多，请一分钟后再试。",
    "widget.offlineFailed": "留言发送失败（{status}），请重试。",
    "widget.offlineUnreachable": "无法连接服务器，请检查网络后重试。",
  },
});
initI18n();

const TOKEN_KEY = "switchboard.visitorToken";
const READ_KEY = "switchboard.visitorRead";
const PROFILE_KEY = "switchboard.visitorProfile";
const LANG_KEY = "switchboard.lang";
/** How long to wait for `history` after `session` before re-sending unconfirmed messages anyway. */
const RESEND_FALLBACK_MS = 1500;

/** @typedef {import("./messages.js").Sender} Sender */
/** @typedef {import("./messages.js").MessageFrame & {conversationId: string}} Message */
/** @typedef {import("./messages.js").Entry} Entry */
/** @typedef {import("./messages.js").Pending} Pending */

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const textBox = /** @type {HTMLTextAreaElement} */ ($("text"));
const messagesEl = $("messages");
const scroller = $("scroller");
const noticeEl = $("notice");
const queueEl = $("queue");
const ratingForm = /** @type {HTMLFormElement} */ ($("rating-form"));
const ratingSubmit = /** @type {HTMLButtonElement} */ ($("rating-submit"));
const ratingComment = /** @type {HTMLTextAreaElement} */ ($("rating-comment"));
const profileName = /** @type {HTMLInputElement} */ ($("profile-name"));
const profileEmail = /** @type {HTMLInputElement} */ ($("profile-email"));
const showState = stateBadge($("state"));
/** The message list follows its newest line while it shows it. */
const pin = pinToBottom(scroller, messagesEl);

/** Inside widget.js's iframe the parent says whether the panel is open; full page it always is. */
const framed = globalThis.parent !== globalThis;
let panelOpen = !framed;

let token = recall(TOKEN_KEY);
/** A user token from the host page (`data-token`, or `Switchboard.identify()`), in our URL fragment. */
let userToken = new URLSearchParams(location.hash.slice(1)).get("jwt") ?? "";
let conversationId = "";
/** Whether the current socket got its `session` (frames sent before could be answered for a stale session). */
let ready = false;
/**
 * The current conversation's confirmed messages (`entries` and `byId`, emptied when it changes) and our messages
 * not yet confirmed (`pending`, kept across conversations).
 *
 * @type {import("./messages.js").MessageLog}
 */
const log = { entries: [], byId: new Map(), pending: new Map() };
const { pending } = log;
/** The highest id the agent has read (our messages up to it show ✓✓). */
let readByAgent = 0;
/** The highest id the visitor has seen; agent messages above it are unread. */
let lastRead = 0;
/** The highest id we told the server about on this socket. */
let readSent = 0;
/** @type {{id: string, name: string} | null} */
let agent = null;
/** The agent typing (one at a time, under one key). */
const typers = new Typers(renderTyping);
/** @type {ReturnType<typeof setTimeout> | undefined} */
let resendTimer;
let score = 0;
let profileDirty = false;
/** Whether the current conversation was closed (a visitor with a closed one has no open conversation). */
let conversationClosed = false;
/**
 * Whether the desk takes chats now, from the server's `availability` frame (open until it says otherwise).
 *
 * @type {{open: boolean, reason: null | "closed" | "no_agents"}}
 */
let availability = { open: true, reason: null };
/** The admins' welcome in the current language ("" = the built-in one). */
let welcome = "";
/** Whether the server has said (a server without business hours never does, and the chat is always open). */
let gotAvailability = false;
/** "form" once the visitor used the leave-a-message form on this page (it stays), "sent" after a success. */
let offlineStep = "";
let postedUnread = -1;
const baseTitle = () => t("widget.title");
/** Uploads and downloads authenticate as this visitor: the shop's user token when there is one. */
const uploadToken = () => userToken || token;
/** Attachments are fetched with the token (there is no cookie in the widget) and kept as Blobs. */
const loadFile = blobLoader(uploadToken);
const tray = new UploadTray($("uploads"), { token: uploadToken });

// ---- storage ----

/** @param {string} key @returns {string} */
function recall(key) {
  try {
    return localStorage.getItem(key) ?? "";
  } catch {
    return ""; // storage disabled (or blocked in a third-party frame): the conversation lasts as long as the page
  }
}

/** @param {string} key @param {string} value */
function remember(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // not remembered; a reload then starts a new conversation
  }
}

/** @param {string} conversation @returns {number} */
function storedRead(conversation) {
  try {
    const saved = JSON.parse(recall(READ_KEY) || "null");
    return saved?.conversationId === conversation ? Number(saved.upTo) || 0 : 0;
  } catch {
    return 0;
  }
}

// ---- the socket ----

/** Where the visitor is: the host page's URL, title and referrer (from widget.js), and this browser's settings. */
/** @type {Record<string, string>} */
let context = {
  language: navigator.language,
  timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone ?? "",
  browser: navigator.userAgent.slice(0, 300),
};

/** Reports the context on every open and whenever the host page changes (agents see it live). */
function sendContext() {
  if (conn?.state === "open") conn.send({ type: "context", ...context });
}

const conn = connect(socketPath, {
  onOpen: () => sendContext(),
  onState(state, detail) {
    if (state !== "open") {
      ready = false;
      readSent = 0;
      clearTimeout(resendTimer);
      for (const p of pending.values()) p.sent = false;
    }
    showState(state, detail);
  },
  onMessage: (m) => receive(/** @type {Record<string, any>} */ (m)),
}, { queue: false });

function socketPath() {
  const user = userToken ? `jwt=${encodeURIComponent(userToken)}&` : "";
  // The language picks the welcome in the `availability` frame.
  return `/ws/support/visitor?${
    token ? `token=${encodeURIComponent(token)}&` : ""
  }${user}lang=${lang()}&batch=1`;
}

/** @param {Record<string, any>} m */
function receive(m) {
  if (typeof m !== "object" || m === null) return;
  switch (m.type) {
    case "session":
      return session(m);
    case "availability":
      return available(m);
    case "history":
      replaceView(Array.isArray(m.messages) ? m.messages : []);
      return resendPending();
    case "queued":
      setText(queueEl, "widget.queued", { n: Number(m.position) || 1 });
      queueEl.hidden = false;
      conversationClosed = false;
      return renderMode();
    case "assigned":
      return assigned(m.agent);
    case "message":
      return incoming(/** @type {Message} */ (m));
    case "typing":
      return typing(m.from);
    case "read":
      readByAgent = Math.max(readByAgent, Number(m.upTo) || 0);
      return renderReceipts();
    case "closed":
      return closed(m.rated === true);
    case "profile":
      // The server's copy after a save: what it kept (trimmed) is what the form shows.
      if (typeof m.name === "string" && document.activeElement !== profileName) profileName.value = m.name;
      if (typeof m.email === "string" && document.activeElement !== profileEmail) {
        profileEmail.value = m.email;
      }
      return;
    case "notice":
      // The leave-a-message form already says so.
      if (m.code === "no_agent_online" && offlineShown()) return;
      return notice(
        "info",
        m.code === "no_agent_online" ? t("widget.noAgent") : String(m.message ?? ""),
        m.code,
      );
    case "rated":
      ratingForm.hidden = true;
      $("rated").hidden = false;
      return;
    case "error":
      return serverError(m);
  }
}

/** @param {Record<string, any>} m */
function session(m) {
  if (typeof m.token === "string" && m.token) {
    token = m.token;
    remember(TOKEN_KEY, token);
  }
  if (m.conversationId) switchConversation(String(m.conversationId));
  ready = true;
  renderMode();
  if (profileDirty) sendProfile();
  // `history` normally follows and says which of our pending messages arrived before the socket dropped.
  clearTimeout(resendTimer);
  resendTimer = setTimeout(resendPending, RESEND_FALLBACK_MS);
  if (visible()) markRead();
  else postUnread();
}

/**
 * Starts showing conversation `id`. The first one just sets it; a later one (the visitor wrote after a
 * conversation was closed) keeps the old messages above a divider, as plain lines that no longer take part.
 *
 * @param {string} id
 */
function switchConversation(id) {
  if (id === conversationId) return;
  const first = conversationId === "";
  conversationId = id;
  log.entries = [];
  log.byId = new Map();
  readByAgent = 0;
  readSent = 0;
  lastRead = storedRead(id);
  agent = null;
  conversationClosed = false;
  ratingForm.hidden = true;
  $("rated").hidden = true;
  if (!first) {
    for (const item of messagesEl.querySelectorAll(":scope > :not(.pending)")) item.classList.add("earlier");
    systemLine("widget.newConversation", {}, "divider");
    queueEl.hidden = true;
  }
}

/** @param {{id: string, name: string} | undefined} next */
function assigned(next) {
  if (!next) return;
  const changed = agent?.id !== next.id;
  agent = next;
  // After a reload the server says who is here again; announce only an agent who has not written yet.
  const wrote = log.entries.some((e) => String(e.from?.id ?? "") === next.id);
  setText(queueEl, "widget.assigned", { name: next.name });
  queueEl.hidden = false;
  conversationClosed = false;
  renderMode();
  removeNotice(noticeEl, '[data-code="no_agent_online"]');
  if (changed && !wrote) systemLine("widget.joined", { name: next.name });
}

/** @param {Message} m */
function incoming(m) {
  if (m.conversationId && conversationId && String(m.conversationId) !== conversationId) {
    switchConversation(String(m.conversationId));
  } else if (m.conversationId && !conversationId) conversationId = String(m.conversationId);
  addMessages([m]);
  if (m.from?.role === "agent") {
    if (visible()) markRead();
    else postUnread();
  }
}

/** @param {boolean} rated whether the visitor rated it already (the server says so after a reload) */
function closed(rated) {
  agent = null;
  conversationClosed = true;
  renderMode();
  stopTyping();
  setText(queueEl, "widget.ended");
  queueEl.hidden = false;
  if (rated) {
    ratingForm.hidden = true;
    $("rated").hidden = false;
  } else if ($("rated").hidden) {
    ratingForm.hidden = false;
    pickScore(0);
    ratingComment.value = "";
  }
}

/** @param {Sender | undefined} from */
function typing(from) {
  if (!from || from.role === "visitor") return;
  typers.show("agent", from.name ?? "");
}

function stopTyping() {
  typers.clear();
  renderTyping();
}

function renderTyping() {
  const [name] = typers.names();
  if (name === undefined) setText($("typing"), "");
  else setText($("typing"), "widget.typing", { name });
}

/** @param {Record<string, any>} m */
function serverError(m) {
  failPending(pending, m);
  if (!ratingForm.hidden) ratingSubmit.disabled = score === 0;
  const { code, text, title } = describeError("widget", m);
  // `not_found` for a message means one of its files: unsent uploads expire after a day.
  const withFiles = m.clientMsgId && pending.get(String(m.clientMsgId))?.attachments.length;
  notice("error", code === "not_found" && withFiles ? t("upload.gone") : text, code).title = title;
}

/** @param {unknown} list a message's `attachments` */
function attachmentsView(list) {
  return attachmentsElement(list, {
    load: loadFile,
    onError: () => notice("error", t("upload.loadFailed"), "load_failed"),
  });
}

// ---- the message list ----

/** @param {Message} m */
function messageElement(m) {
  const role = m.from?.role ?? "agent";
  const li = el("li", `message from-${role}`);
  li.dataset.id = String(m.id);
  li.dataset.testid = "message";
  const when = timeElement(m.ts);
  if (role === "visitor") {
    li.classList.add("mine");
    const from = el("span", "from");
    setText(from, "widget.you");
    li.append(from, when, el("span", "status receipt"));
  } else if (role === "agent") {
    li.append(el("span", "from", m.from?.name ?? "?"), when);
  }
  const files = attachmentsView(m.attachments);
  if (m.text || !files) li.append(el("div", "text", String(m.text ?? "")));
  if (files) li.append(files);
  return li;
}

/**
 * Replaces what is shown of the current conversation with `list` (the server's history of it); pending messages
 * stay below and are confirmed by any of `list` that carries their `clientMsgId`.
 *
 * @param {Message[]} list
 */
function replaceView(list) {
  for (const child of [...messagesEl.children]) {
    // Earlier conversations (above the divider) stay for as long as the page does.
    if (!child.matches(".pending, .earlier, .divider")) child.remove();
  }
  log.entries = [];
  log.byId = new Map();
  const cid = list.find((m) => m?.conversationId)?.conversationId;
  if (cid && !conversationId) conversationId = String(cid);
  addMessages(list);
  if (visible()) markRead();
  else postUnread();
}

/**
 * Adds messages where their ids say, skipping ids already shown, and confirms our pending ones.
 *
 * @param {Message[]} list
 */
function addMessages(list) {
  for (const m of insertMessages(log, list, messageElement, messagesEl)) {
    if (m.from?.role === "agent") stopTyping();
  }
  renderReceipts();
}

/** @param {Entry} e */
function fromAgent(e) {
  return (e.from?.role ?? "agent") === "agent";
}

/**
 * A line such as "Alice joined the chat", after the newest message.
 *
 * @param {string} key
 * @param {Record<string, string>} params
 * @param {string} [extraClass]
 */
function systemLine(key, params, extraClass = "") {
  addSystemLine(messagesEl, pending, key, params, extraClass);
}

/** Our messages up to what the agent has read show ✓✓ (only visitor messages have a receipt). */
function renderReceipts() {
  showReceipts(log.entries, readByAgent, {
    read: "widget.read",
    sent: "widget.sent",
    readTitle: "widget.read",
    sentTitle: "widget.sentTitle",
  });
}

/**
 * Shows a notice above the messages; one per kind and code at a time.
 *
 * @param {"error" | "info"} kind
 * @param {string} text
 * @param {string} [code]
 * @returns {HTMLElement}
 */
function notice(kind, text, code = "") {
  noticeEl.querySelector(`[data-kind="${kind}"][data-code="${CSS.escape(code)}"]`)?.remove();
  return addNotice(noticeEl, kind, text, { code, testid: "notice-item" });
}

// ---- read state and the unread count ----

function visible() {
  return panelOpen && document.visibilityState === "visible";
}

/** Marks everything shown as read: locally, for the server, and for the parent's badge. */
function markRead() {
  const top = log.entries.at(-1)?.n ?? 0;
  if (log.entries.some((e) => fromAgent(e) && e.n > lastRead)) {
    lastRead = top;
    remember(READ_KEY, JSON.stringify({ conversationId, upTo: String(top) }));
  }
  if (ready && lastRead > readSent && log.byId.has(String(lastRead))) {
    if (conn.send({ type: "read", upTo: String(lastRead) }) === "sent") readSent = lastRead;
  }
  postUnread();
}

function postUnread() {
  const count = visible() ? 0 : log.entries.filter((e) => fromAgent(e) && e.n > lastRead).length;
  if (count === postedUnread) return;
  postedUnread = count;
  if (framed) globalThis.parent.postMessage({ type: "switchboard-unread", count }, "*");
  else document.title = count > 0 ? t("widget.unreadTitle", { n: count, title: baseTitle() }) : baseTitle();
}

globalThis.addEventListener("message", (event) => {
  if (!framed || event.source !== globalThis.parent) return;
  const type = event.data?.type;
  if (type === "switchboard-open") {
    panelOpen = true;
    markRead();
    if (matchMedia("(pointer: fine)").matches) textBox.focus();
  } else if (type === "switchboard-hidden") {
    panelOpen = false;
    postUnread();
  } else if (type === "switchboard-page") {
    const page = /** @type {Record<string, unknown>} */ (event.data);
    const url = typeof page.url === "string" && /^https?:/.test(page.url) ? page.url.slice(0, 2048) : "";
    const referrer = typeof page.referrer === "string" && /^https?:/.test(page.referrer)
      ? page.referrer.slice(0, 2048)
      : "";
    const title = typeof page.title === "string" ? page.title.slice(0, 300) : "";
    context = { ...context, url, title, referrer };
    sendContext();
  } else if (type === "switchboard-identify" && typeof event.data.token === "string") {
    // The host page's customer logged in: connect again as that verified customer (same conversation).
    userToken = event.data.token;
    conn.close();
    location.replace(`#jwt=${encodeURIComponent(userToken)}`);
    location.reload();
  }
});

document.addEventListener("visibilitychange", () => {
  if (visible()) markRead();
  else postUnread();
});

// ---- sending ----

/** @param {string} clientMsgId */
function sendMessage(clientMsgId) {
  const p = pending.get(clientMsgId);
  if (!p || !ready) return;
  const attachments = p.attachments.length ? { attachments: p.attachments } : {};
  p.sent = conn.send({ type: "message", text: p.text, ...attachments, clientMsgId }) === "sent";
}

function resendPending() {
  clearTimeout(resendTimer);
  if (!ready) return;
  // Only what this socket has not carried yet: a message sent just before a new conversation's `session` and
  // `history` is still on its way back.
  for (const [clientMsgId, p] of pending) {
    if (!p.failed && !p.sent) sendMessage(clientMsgId);
  }
}

/** @param {string} text (may be empty when files go with it) */
function queueMessage(text) {
  const from = el("span", "from");
  setText(from, "widget.you");
  const files = tray.uploads;
  tray.clear();
  const p = addPending(pending, text, from, {
    send: (p) => sendMessage(p.clientMsgId),
    attachments: files.map((f) => String(f.id)),
    view: attachmentsView(files),
  });
  messagesEl.append(p.el);
  pin.stick();
  sendMessage(p.clientMsgId);
}

wireComposer(/** @type {HTMLFormElement} */ ($("composer")), textBox, {
  hasFiles: () => tray.busy || tray.ids.length > 0,
  canSend() {
    if (!tray.busy) return true;
    notice("info", t("upload.busy"), "upload_busy");
    return false;
  },
  tooLong: (message) => notice("error", message, "too_long"),
  send(text) {
    removeNotice(noticeEl, '[data-code="upload_busy"]');
    queueMessage(text);
  },
});

wireAttach({
  tray,
  button: $("attach"),
  input: /** @type {HTMLInputElement} */ ($("file-input")),
  box: textBox,
  zone: /** @type {HTMLElement} */ (document.querySelector(".widget-main")),
});

sendTypingOnInput(textBox, () => {
  if (!ready) return false;
  conn.send({ type: "typing" });
  return true;
});

// ---- availability, the welcome and the leave-a-message form ----

const OFFLINE_TEXT_MAX = 4000;
const offlineForm = /** @type {HTMLFormElement} */ ($("offline-form"));
const offlineName = /** @type {HTMLInputElement} */ ($("offline-name"));
const offlineEmail = /** @type {HTMLInputElement} */ ($("offline-email"));
const offlineText = /** @type {HTMLTextAreaElement} */ ($("offline-text"));
const offlineSend = /** @type {HTMLButtonElement} */ ($("offline-send"));
const offlineError = $("offline-error");

/** @param {Record<string, any>} m the `availability` frame (or the API's answer) */
function available(m) {
  gotAvailability = true;
  availability = {
    open: m.open !== false,
    reason: m.reason === "closed" || m.reason === "no_agents" ? m.reason : null,
  };
  welcome = typeof m.welcome === "string" ? m.welcome.trim() : "";
  renderWelcome();
  renderMode();
}

/** The admins' welcome as text; without one, the built-in line (which follows the language switch). */
function renderWelcome() {
  const box = $("welcome");
  if (welcome) {
    delete box.dataset.i18n;
    box.textContent = welcome;
  } else setText(box, "widget.welcome");
}

/** Whether the visitor has a conversation that is not closed. */
function hasOpenConversation() {
  return conversationId !== "" && !conversationClosed;
}

/** The form (or its thank-you) replaces the chat: the desk is closed, and no open conversation, or it was used. */
function offlineShown() {
  return !availability.open && (offlineStep !== "" || !hasOpenConversation());
}

function renderMode() {
  const offline = offlineShown();
  document.body.dataset.mode = offline ? "offline" : "chat";
  offlineForm.hidden = !offline || offlineStep === "sent";
  $("offline-sent").hidden = !offline || offlineStep !== "sent";
  for (const id of ["composer", "profile", "typing"]) $(id).hidden = offline;
  setText(
    $("offline-title"),
    availability.reason === "no_agents" ? "widget.offlineNoAgents" : "widget.offlineClosed",
  );
  if (!offline) return;
  removeNotice(noticeEl, '[data-code="no_agent_online"]');
  // The profile the visitor saved before fills the form once.
  if (!offlineName.value) offlineName.value = profileName.value;
  if (!offlineEmail.value) offlineEmail.value = profileEmail.value;
}

/**
 * Shows why the form was not sent, and puts the cursor in the field to fix.
 *
 * @param {string} text
 * @param {HTMLElement} [field]
 */
function offlineFailed(text, field) {
  offlineError.textContent = text;
  offlineError.hidden = false;
  field?.focus();
}

offlineForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  offlineError.hidden = true;
  const name = offlineName.value.trim();
  const email = offlineEmail.value.trim();
  const text = offlineText.value.trim();
  if (!email) return offlineFailed(t("widget.offlineNoEmail"), offlineEmail);
  if (!offlineEmail.validity.valid) return offlineFailed(t("widget.badEmail"), offlineEmail);
  if (!text) return offlineFailed(t("widget.offlineNoText"), offlineText);
  if ([...text].length > OFFLINE_TEXT_MAX) {
    return offlineFailed(t("widget.offlineTooLong", { n: OFFLINE_TEXT_MAX }), offlineText);
  }
  offlineSend.disabled = true;
  setText(offlineSend, "widget.offlineSending");
  try {
    const res = await fetch("/api/support/offline", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json",
        // A logged-in customer's message joins its verified visitor (the user token), else this browser's.
        ...(uploadToken() ? { authorization: `Bearer ${uploadToken()}` } : {}),
      },
      // The same clientMsgId on a retry of this text stores it once.
      body: JSON.stringify({ name, email, text, clientMsgId: offlineMsgId(text) }),
    });
    const body = await res.json().catch(() => ({}));
    if (res.status === 201) {
      if (typeof body.token === "string" && body.token && !token) {
        token = body.token;
        remember(TOKEN_KEY, token);
      }
      if (typeof body.conversationId === "string" && !conversationId) conversationId = body.conversationId;
      remember(PROFILE_KEY, JSON.stringify({ name, email }));
      offlineText.value = "";
      offlineStep = "sent";
      renderMode();
      $("offline-again").focus();
    } else if (res.status === 429) offlineFailed(t("widget.offlineRateLimited"));
    else if (res.status === 400 && body?.message) {
      offlineFailed(t("widget.offlineRejected", { message: String(body.message) }));
    } else offlineFailed(t("widget.offlineFailed", { status: res.status }));
  } catch {
    offlineFailed(t("widget.offlineUnreachable"));
  } finally {
    offlineSend.disabled = false;
    setText(offlineSend, "widget.offlineSend");
  }
});

/** One id per message text, so a retry after a lost answer is not stored twice. */
let lastOffline = { text: "", id: "" };
/** @param {string} text */
function offlineMsgId(text) {
  if (lastOffline.text !== text) lastOffline = { text, id: crypto.randomUUID() };
  return lastOffline.id;
}

$("offline-again").addEventListener("click", () => {
  offlineStep = "form";
  renderMode();
  offlineText.focus();
});

/** The welcome of the other language comes from the public availability API. */
async function refreshAvailability() {
  try {
    const res = await fetch(`/api/support/availability?lang=${lang()}`, {
      headers: { accept: "application/json" },
    });
    if (res.ok) available(await res.json());
  } catch {
    // the welcome stays as it was; the next socket open brings it again
  }
}

// ---- profile ----

try {
  const saved = JSON.parse(recall(PROFILE_KEY) || "{}");
  profileName.value = typeof saved.name === "string" ? saved.name : "";
  profileEmail.value = typeof saved.email === "string" ? saved.email : "";
} catch {
  // a broken saved profile just leaves the form empty
}

function sendProfile() {
  /** @type {{type: "profile", name?: string, email?: string}} */
  const frame = { type: "profile" };
  const name = profileName.value.trim();
  const email = profileEmail.value.trim();
  if (name) frame.name = name;
  if (email) frame.email = email;
  profileDirty = !(ready && conn.send(frame) === "sent");
}

$("profile-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!profileEmail.validity.valid) {
    notice("error", t("widget.badEmail"), "bad_email");
    return;
  }
  removeNotice(noticeEl, '[data-code="bad_email"]');
  remember(PROFILE_KEY, JSON.stringify({ name: profileName.value.trim(), email: profileEmail.value.trim() }));
  sendProfile();
  $("profile-saved").hidden = false;
  setTimeout(() => {
    $("profile-saved").hidden = true;
    /** @type {HTMLDetailsElement} */ ($("profile")).open = false;
  }, 1500);
});

// ---- rating ----

/** @param {number} n */
function pickScore(n) {
  score = n;
  for (const star of ratingForm.querySelectorAll(".star")) {
    const s = Number(/** @type {HTMLElement} */ (star).dataset.score);
    star.classList.toggle("on", s <= n);
    star.setAttribute("aria-pressed", String(s === n));
  }
  ratingSubmit.disabled = n === 0;
}

for (const star of ratingForm.querySelectorAll(".star")) {
  star.addEventListener("click", () => pickScore(Number(/** @type {HTMLElement} */ (star).dataset.score)));
}

ratingForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (score < 1 || score > 5) return;
  /** @type {{type: "rate", score: number, comment?: string}} */
  const frame = { type: "rate", score };
  const comment = ratingComment.value.trim();
  if (comment) frame.comment = comment;
  if (ready && conn.send(frame) === "sent") ratingSubmit.disabled = true;
});

// ---- page chrome ----

if (framed) {
  $("minimize").hidden = false;
  $("minimize").addEventListener("click", () => {
    globalThis.parent.postMessage({ type: "switchboard-minimize" }, "*");
  });
  // widget.js answers with the panel's state (it may have opened before this page loaded).
  globalThis.parent.postMessage({ type: "switchboard-ready" }, "*");
}

// The demo shop and this frame share an origin: follow the shop's language switch.
globalThis.addEventListener("storage", (event) => {
  if (event.key === LANG_KEY && (event.newValue === "zh" || event.newValue === "en")) setLang(event.newValue);
});
onLangChange(() => {
  postedUnread = -1;
  postUnread();
  if (gotAvailability) void refreshAvailability();
});
