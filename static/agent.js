/**
 * The agent console. Sign in over HTTP (`/api/agent/login`, an HttpOnly cookie), then one socket
 * (`/ws/support/agent?batch=1`) carries everything: the waiting queue, the agent's own conversations as tabs, the
 * other agents (for transfers), and every message.
 *
 * The server's first frame (`state`) is the whole picture, again after every reconnect; `conversation` frames then
 * move a conversation between the queue, my tabs and nowhere. Messages of a tab stay sorted by numeric id and never
 * repeat; my own show as pending until the server echoes their `clientMsgId`. A tab that has no messages yet (after
 * a reload) loads them from the JSON transcript, with the conversation's private notes.
 *
 * Files go with messages (`uploads.js`: the paperclip, a paste or a drop; each tab keeps its own pending files);
 * the session cookie lets `<img>` and download links reach them directly. The active visitor's earlier
 * conversations open read-only, and admins manage the agents (`/api/agents`) in a dialog.
 *
 * @module
 */
import { connect } from "./client.js";
import { extend, initI18n, lang, onLangChange, setText, t } from "./i18n.js";
import {
  addPending,
  describeError,
  failPending,
  insertMessages,
  showReceipts,
  wireComposer,
} from "./messages.js";
import { sendTypingOnInput, Typers } from "./typing.js";
import { addNotice, el, pinToBottom, stateBadge, timeElement } from "./ui.js";
import { attachmentsElement, attachmentSummary, UploadTray, wireAttach } from "./uploads.js";
import { showOps, wireOps } from "./ops.js";

extend({
  en: {
    "agent.title": "Agent console · Switchboard",
    "agent.heading": "Agent console",
    "agent.loading": "Loading…",
    "agent.signIn": "Sign in",
    "agent.username": "Username",
    "agent.password": "Password",
    "agent.login": "Sign in",
    "agent.logout": "Log out",
    "agent.badLogin": "Wrong username or password.",
    "agent.missingLogin": "Enter your username and password.",
    "agent.rateLimited": "Too many attempts; try again later.",
    "agent.retryIn": "Too many attempts; try again in {s} s.",
    "agent.loginFailed": "Could not sign in ({status}).",
    "agent.offline": "The server cannot be reached.",
    "agent.sessionEnded": "Your session has ended; sign in again.",
    "agent.online": "Online",
    "agent.away": "Away",
    "agent.setAway": "You are online; click to go away",
    "agent.setOnline": "You are away; click to go online",
    "agent.queue": "Queue",
    "agent.queueEmpty": "Nobody is waiting.",
    "agent.agents": "Agents",
    "agent.you": "(you)",
    "agent.mine": "My conversations",
    "agent.noConversation": "Accept a conversation from the queue to start.",
    "agent.accept": "Accept",
    "agent.waiting": "waiting {d}",
    "agent.visitor": "Visitor {id}",
    "agent.notes": "Private notes",
    "agent.alertsOn": "Alerts on",
    "agent.alertsOff": "Alerts off",
    "agent.newConversation": "A visitor is waiting",
    "agent.search": "Search conversations",
    "agent.searchFailed": "The search failed; try again.",
    "agent.addNote": "Note",
    "agent.mentioned": "{from} mentioned you in a note.",
    "agent.verified": "✓ verified by the shop",
    "agent.noMessage": "No message yet",
    "agent.transfer": "Transfer",
    "agent.transferTo": "Transfer to",
    "agent.pickAgent": "Transfer to…",
    "agent.noAgents": "No other agent online",
    "agent.transcript": "Transcript",
    "agent.close": "Close",
    "agent.dismiss": "Dismiss",
    "agent.closed": "closed",
    "agent.sent": "✓",
    "agent.read": "✓✓ read",
    "agent.placeholder": "Reply…",
    "agent.typing": "{name} is typing…",
    "agent.taken": "Another agent already took that conversation.",
    "agent.transferredIn": "{from} transferred the conversation with {visitor} to you.",
    "agent.transferredOut": "The conversation with {visitor} is now with {agent}.",
    "agent.movedAway": "The conversation with {visitor} is no longer yours.",
    "agent.assigned": "A conversation with {visitor} was assigned to you.",
    "agent.alertTitle": "({n}) New visitor – {title}",
    "agent.err.not_found": "That conversation does not exist (any more).",
    "agent.err.not_yours": "That conversation is not yours.",
    "agent.err.closed": "That conversation is closed.",
    "agent.err.no_such_agent": "That agent is not online.",
    "agent.err.bad_message": "The message was rejected.",
    "agent.err.too_large": "The message is too long.",
    "agent.err.rate_limited": "You are sending too fast; slow down.",
    "agent.earlier": "Earlier conversations",
    "agent.conversationWith": "Conversation with {visitor}",
    "agent.startedAt": "Started {date} · {status}",
    "agent.status.queued": "waiting",
    "agent.status.assigned": "in progress",
    "agent.status.closed": "closed",
    "agent.transcriptFailed": "The transcript could not be loaded ({status}).",
    "agent.manage": "Manage agents",
    "agent.addAgent": "Add an agent",
    "agent.displayName": "Name",
    "agent.role": "Role",
    "agent.roleAgent": "Agent",
    "agent.roleAdmin": "Admin",
    "agent.add": "Add",
    "agent.active": "active",
    "agent.disabledState": "disabled",
    "agent.disable": "Disable",
    "agent.enable": "Enable",
    "agent.resetPassword": "Reset password",
    "agent.newPassword": "New password (at least 8 characters)",
    "agent.rename": "Rename",
    "agent.newName": "Display name",
    "agent.save": "Save",
    "agent.cancel": "Cancel",
    "agent.added": "Agent {username} added.",
    "agent.updated": "Agent {username} updated.",
    "agent.agentsFailed": "The request failed ({status}).",
  },
  zh: {
    "agent.title": "客服工作台 · Switchboard",
    "agent.heading": "客服工作台",
    "agent.loading": "加载中…",
    "agent.signIn": "登录",
    "agent.username": "用户名",
    "agent.password": "密码",
    "agent.login": "登录",
    "agent.logout": "退出登录",
    "agent.badLogin": "用户名或密码错误。",
    "agent.missingLogin": "请输入用户名和密码。",
    "agent.rateLimited": "尝试次数太多，请稍后再试。",
    "agent.retryIn": "尝试次数太多，请 {s} 秒后再试。",
    "agent.loginFailed": "无法登录（{status}）。",
    "agent.offline": "无法连接服务器。",
    "agent.sessionEnded": "登录已失效，请重新登录。",
    "agent.online": "在线",
    "agent.away": "离开",
    "agent.setAway": "你当前在线；点击设为离开",
    "agent.setOnline": "你当前离开；点击设为在线",
    "agent.queue": "排队中",
    "agent.queueEmpty": "没有访客在等待。",
    "agent.agents": "客服",
    "agent.you": "（你）",
    "agent.mine": "我的对话",
    "agent.noConversation": "从排队列表中接入一个对话开始工作。",
    "agent.accept": "接入",
    "agent.waiting": "已等待 {d}",
    "agent.visitor": "访客 {id}",
    "agent.notes": "内部备注",
    "agent.alertsOn": "提醒：开",
    "agent.alertsOff": "提醒：关",
    "agent.newConversation": "有访客在等待",
    "agent.search": "搜索对话",
    "agent.searchFailed": "搜索失败，请重试。",
    "agent.addNote": "备注",
    "agent.mentioned": "{from} 在备注中提到了你。",
    "agent.verified": "✓ 网站已验证",
    "agent.noMessage": "还没有消息",
    "agent.transfer": "转接",
    "agent.transferTo": "转接给",
    "agent.pickAgent": "转接给…",
    "agent.noAgents": "没有其他在线客服",
    "agent.transcript": "聊天记录",
    "agent.close": "结束对话",
    "agent.dismiss": "移除",
    "agent.closed": "已结束",
    "agent.sent": "✓",
    "agent.read": "✓✓ 已读",
    "agent.placeholder": "回复…",
    "agent.typing": "{name} 正在输入…",
    "agent.taken": "这个对话已被其他客服接入。",
    "agent.transferredIn": "{from} 把与 {visitor} 的对话转接给了你。",
    "agent.transferredOut": "与 {visitor} 的对话已转给 {agent}。",
    "agent.movedAway": "与 {visitor} 的对话已不再由你负责。",
    "agent.assigned": "系统把与 {visitor} 的对话分配给了你。",
    "agent.alertTitle": "（{n}）新访客 – {title}",
    "agent.err.not_found": "该对话不存在（或已被删除）。",
    "agent.err.not_yours": "这不是你的对话。",
    "agent.err.closed": "该对话已结束。",
    "agent.err.no_such_agent": "该客服不在线。",
    "agent.err.bad_message": "消息被拒绝。",
    "agent.err.too_large": "消息太长。",
    "agent.err.rate_limited": "发送太快了，请慢一点。",
    "agent.earlier": "以往对话",
    "agent.conversationWith": "与 {visitor} 的对话",
    "agent.startedAt": "开始于 {date} · {status}",
    "agent.status.queued": "等待中",
    "agent.status.assigned": "进行中",
    "agent.status.closed": "已结束",
    "agent.transcriptFailed": "无法加载聊天记录（{status}）。",
    "agent.manage": "管理客服",
    "agent.addAgent": "添加客服",
    "agent.displayName": "名字",
    "agent.role": "角色",
    "agent.roleAgent": "客服",
    "agent.roleAdmin": "管理员",
    "agent.add": "添加",
    "agent.active": "正常",
    "agent.disabledState": "已停用",
    "agent.disable": "停用",
    "agent.enable": "启用",
    "agent.resetPassword": "重置密码",
    "agent.newPassword": "新密码（至少 8 个字符）",
    "agent.rename": "改名",
    "agent.newName": "显示名称",
    "agent.save": "保存",
    "agent.cancel": "取消",
    "agent.added": "已添加客服 {username}。",
    "agent.updated": "已更新客服 {username}。",
    "agent.agentsFailed": "请求失败（{status}）。",
  },
});
initI18n();
wireOps();

const TOKEN_KEY = "switchboard.agentToken";
/** Failed connects in a row before asking `/api/agent/me` whether the session is still valid. */
const FAILURES_BEFORE_CHECK = 2;
const MAX_NOTICES = 4;
/** Alerts closer together than this make one sound. */
const ALERT_GAP_MS = 2000;

/** @typedef {{id: string, name: string, username?: string, role?: "admin" | "agent"}} Agent */
/** @typedef {Agent & {status: "online" | "away"}} AgentStatus */
/** @typedef {import("./messages.js").Sender} Sender */
/** @typedef {import("./messages.js").MessageFrame & {conversationId: string}} Message */
/**
 * @typedef {object} Conversation
 * @property {string} id
 * @property {"queued" | "assigned" | "closed"} status
 * @property {{id: string, name?: string, email?: string, verified?: boolean, attributes?: Record<string, unknown>, context?: Record<string, string>}} visitor
 * @property {string | null} agentId
 * @property {Message | null} lastMessage
 * @property {number} createdAt ms since epoch
 * @property {"chat" | "offline"} [source] "offline": left through the widget's leave-a-message form
 * @property {number} [unread]
 */
/** @typedef {import("./messages.js").Entry} Entry */
/** @typedef {import("./messages.js").Pending} Pending */
/**
 * One of my conversations.
 *
 * @typedef {object} Tab
 * @property {Conversation} conv
 * @property {Entry[]} entries confirmed messages, sorted by number
 * @property {Map<string, Entry>} byId
 * @property {Map<string, Pending>} pending my messages not yet confirmed, in send order
 * @property {number} unread
 * @property {boolean} closed kept read-only until dismissed
 * @property {boolean} loaded whether its messages came (from `accepted` or the transcript)
 * @property {number} readSent the highest id told to the server as read
 * @property {number} readByVisitor the highest id the visitor has read
 * @property {string} draft
 * @property {import("./uploads.js").TrayItem[]} uploads its pending files while another tab is shown
 * @property {Typers} typing the visitor while typing (one at a time, under one key)
 */

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const textBox = /** @type {HTMLTextAreaElement} */ ($("text"));
const messagesEl = $("messages");
const scroller = $("scroller");
const noticeEl = $("notice");
const queueEl = $("queue");
const tabsEl = $("mine");
const transferSelect = /** @type {HTMLSelectElement} */ ($("transfer-select"));
const statusToggle = $("status-toggle");
const showState = stateBadge($("state"));
/** The message list follows its newest line while it shows it. */
const pin = pinToBottom(scroller, messagesEl);
/** The active tab's pending files (each tab keeps its own: they are swapped with the tab). */
const tray = new UploadTray($("uploads"));

/** @type {Agent | null} */
let me = null;
/** @type {import("./client.js").Connection | null} */
let conn = null;
/** Whether the current socket got its `state` frame. */
let ready = false;
let failures = 0;
/** @type {Map<string, Conversation>} */
const queue = new Map();
/** @type {Map<string, Tab>} */
const tabs = new Map();
let activeId = "";
/** @type {AgentStatus[]} */
let agents = [];
/** @type {"online" | "away"} */
let myStatus = "online";
/** Conversations I asked for: their `accepted` opens the tab. @type {Set<string>} */
const accepting = new Set();
/** @type {ReturnType<typeof setInterval> | undefined} */
let flashTimer;
/** @type {AudioContext | null} */
let audio = null;
let lastAlertAt = 0;

// ---- views ----

/** @param {"loading" | "login" | "console"} view */
function show(view) {
  $("loading-view").hidden = view !== "loading";
  $("login-view").hidden = view !== "login";
  $("console-view").hidden = view !== "console";
  for (const id of ["state", "status-toggle", "logout", "me"]) $(id).hidden = view !== "console";
}

async function start() {
  show("loading");
  try {
    const res = await fetch("/api/agent/me", { headers: { accept: "application/json" } });
    if (res.ok) {
      const body = await res.json();
      if (body?.agent) return enterConsole(body.agent);
    }
    showLogin(res.status === 401 || res.ok ? "" : t("agent.loginFailed", { status: res.status }));
  } catch {
    showLogin(t("agent.offline"));
  }
}

/** @param {string} [error] */
function showLogin(error = "") {
  show("login");
  const box = $("login-error");
  box.textContent = error;
  box.hidden = !error;
  const user = /** @type {HTMLInputElement} */ ($("username"));
  (user.value ? /** @type {HTMLInputElement} */ ($("password")) : user).focus();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = /** @type {HTMLInputElement} */ ($("username")).value.trim();
  const passwordInput = /** @type {HTMLInputElement} */ ($("password"));
  const box = $("login-error");
  if (!username || !passwordInput.value) {
    setText(box, "agent.missingLogin");
    box.hidden = false;
    return;
  }
  const button = /** @type {HTMLButtonElement} */ ($("login"));
  button.disabled = true;
  try {
    const res = await fetch("/api/agent/login", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ username, password: passwordInput.value }),
    });
    const body = await res.json().catch(() => ({}));
    if (res.ok && body?.agent) {
      passwordInput.value = "";
      box.hidden = true;
      storeToken(typeof body.token === "string" ? body.token : "");
      return enterConsole(body.agent);
    }
    let message;
    if (res.status === 401) message = t("agent.badLogin");
    else if (res.status === 429) {
      const wait = Number(res.headers.get("retry-after"));
      message = body?.message || (wait > 0 ? t("agent.retryIn", { s: wait }) : t("agent.rateLimited"));
    } else message = body?.message || t("agent.loginFailed", { status: res.status });
    box.textContent = message;
    box.hidden = false;
    passwordInput.select();
  } catch {
    box.textContent = t("agent.offline");
    box.hidden = false;
  } finally {
    button.disabled = false;
  }
});

$("logout").addEventListener("click", async () => {
  try {
    await fetch("/api/agent/logout", { method: "POST" });
  } catch {
    // signed out here either way; the cookie expires on its own
  }
  leaveConsole();
  showLogin();
});

/** @param {string} token */
function storeToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // the cookie alone authenticates the socket
  }
}

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

/** @param {Agent} agent */
function enterConsole(agent) {
  me = agent;
  renderMe();
  show("console");
  renderAll();
  failures = 0;
  conn = connect(socketPath, {
    onState(state, detail) {
      if (state !== "open") {
        ready = false;
        for (const tab of tabs.values()) for (const p of tab.pending.values()) p.sent = false;
      }
      showState(state, detail);
      // Logged out elsewhere, password changed or agent removed: the server closes with 4001.
      if (state === "closed" && detail?.code === 4001) {
        leaveConsole();
        showLogin(t("agent.sessionEnded"));
        return;
      }
      // An expired session makes the upgrade fail with 401, which a browser only reports as a failed socket.
      if (state === "reconnecting" && ++failures >= FAILURES_BEFORE_CHECK) checkSession();
    },
    onMessage: (m) => receive(/** @type {Record<string, any>} */ (m)),
  }, { queue: false });
}

function socketPath() {
  const token = storedToken();
  return `/ws/support/agent?batch=1${token ? `&token=${encodeURIComponent(token)}` : ""}`;
}

async function checkSession() {
  try {
    const res = await fetch("/api/agent/me", { headers: { accept: "application/json" } });
    if (res.status === 401 && conn) {
      leaveConsole();
      showLogin(t("agent.sessionEnded"));
    }
  } catch {
    // the server is down: keep reconnecting
  }
}

function leaveConsole() {
  conn?.close();
  conn = null;
  ready = false;
  me = null;
  showOps(false);
  storeToken("");
  queue.clear();
  for (const tab of tabs.values()) tab.typing.clear();
  tabs.clear();
  activeId = "";
  agents = [];
  accepting.clear();
  tray.clear();
  earlier = { key: "", list: [] };
  for (const id of ["transcript-dialog", "agents-dialog", "reports-dialog", "hours-dialog"]) {
    /** @type {HTMLDialogElement} */ ($(id)).close();
  }
  noticeEl.replaceChildren();
  noticeEl.hidden = true;
  stopFlash();
  renderAll();
}

// ---- frames from the server ----

/** @param {Record<string, any>} m */
function receive(m) {
  if (typeof m !== "object" || m === null) return;
  switch (m.type) {
    case "state":
      return welcome(m);
    case "conversation":
      if (m.conversation) upsert(m.conversation);
      return;
    case "agents":
      agents = Array.isArray(m.agents) ? m.agents : [];
      return renderAgents();
    case "accepted":
      return accepted(m);
    case "message":
      return incoming(/** @type {Message} */ (m));
    case "note":
      return addNotes([m], true);
    case "typing":
      return typing(m);
    case "read":
      return visitorRead(m);
    case "status":
      if (m.status === "online" || m.status === "away") myStatus = m.status;
      return renderMe();
    case "error":
      return serverError(m);
  }
}

/** @param {Record<string, any>} m */
function welcome(m) {
  failures = 0;
  ready = true;
  if (m.agent && me) me = { ...me, ...m.agent };
  agents = Array.isArray(m.agents) ? m.agents : [];
  queue.clear();
  for (const c of Array.isArray(m.queue) ? m.queue : []) if (c?.id) queue.set(String(c.id), c);
  const mine = new Set();
  for (const c of Array.isArray(m.mine) ? m.mine : []) {
    if (!c?.id) continue;
    mine.add(String(c.id));
    const tab = upsertTab(c);
    // A reconnect may have missed messages: load them (again) and only then send what is still unconfirmed.
    loadTranscript(tab).then(() => resendPending(tab));
  }
  // Transferred away or closed while we were disconnected: closed tabs stay until dismissed, others go.
  for (const [id, tab] of tabs) if (!mine.has(id) && !tab.closed) tabs.delete(id);
  if (!tabs.has(activeId)) {
    activeId = "";
    tray.clear();
  }
  if (!activeId && tabs.size > 0) activeId = tabs.keys().next().value ?? "";
  renderMe();
  renderAll();
  if (activeId) activate(activeId);
}

/**
 * Puts a conversation where its status says: the queue, my tabs, or (taken by someone else, transferred away)
 * nowhere. A closed one of mine stays as a read-only tab.
 *
 * Agents who do not hold a conversation get only `{id, status, agentId}` of it (enough to drop it from the
 * queue, nothing of its content): a frame is merged into what we know, and one without a `visitor` never joins
 * the queue.
 *
 * @param {Partial<Conversation> & {id: string}} frame
 */
function upsert(frame) {
  const id = String(frame.id);
  const tab = tabs.get(id);
  /** @type {Conversation} */
  const c = /** @type {Conversation} */ ({ ...(tab?.conv ?? queue.get(id)), ...frame });
  if (c.status === "queued" && c.visitor) {
    const isNew = !queue.has(id);
    queue.set(id, c);
    if (isNew && ready) newVisitorAlert();
  } else {
    queue.delete(id);
  }
  if (c.status === "assigned" && me && String(c.agentId) === String(me.id)) {
    // What the queue knew of it counts (auto-assignment); an unread count only from this frame.
    const mineTab = upsertTab({ ...c, unread: frame.unread });
    if (!mineTab.loaded) loadTranscript(mineTab);
  } else if (tab) {
    if (c.status === "closed") {
      tab.conv = c;
      tab.closed = true;
      tab.typing.clear();
      if (id === activeId) tray.clear();
      else tab.uploads = [];
    } else {
      removeTab(id);
      const other = agents.find((a) => String(a.id) === String(c.agentId));
      if (other) notice("info", t("agent.transferredOut", { visitor: visitorName(c), agent: other.name }));
      else notice("info", t("agent.movedAway", { visitor: visitorName(c) }));
    }
  }
  renderQueue();
  renderTabs();
  if (id === activeId) renderHead();
}

/**
 * My tab for a conversation, created when new; `c` (possibly only some fields) is merged into what it knew.
 *
 * @param {Partial<Conversation> & {id: string}} c
 * @returns {Tab}
 */
function upsertTab(c) {
  const id = String(c.id);
  let tab = tabs.get(id);
  if (!tab) {
    tab = {
      conv: /** @type {Conversation} */ (c),
      entries: [],
      byId: new Map(),
      pending: new Map(),
      unread: 0,
      closed: false,
      loaded: false,
      readSent: 0,
      readByVisitor: 0,
      draft: "",
      uploads: [],
      typing: new Typers(() => {
        if (id === activeId) renderTyping();
      }),
    };
    tabs.set(id, tab);
  }
  tab.conv = { ...tab.conv, ...c };
  tab.closed = tab.conv.status === "closed";
  if (typeof c.unread === "number" && !(id === activeId && pageVisible())) tab.unread = c.unread;
  return tab;
}

/** @param {string} id */
function removeTab(id) {
  const tab = tabs.get(id);
  if (!tab) return;
  tab.typing.clear();
  tabs.delete(id);
  if (activeId === id) {
    tray.clear();
    activeId = "";
    const next = tabs.keys().next().value;
    if (next) activate(next);
    else renderConversation();
  }
}

/** @param {Record<string, any>} m */
function accepted(m) {
  const c = /** @type {Conversation | undefined} */ (m.conversation);
  if (!c?.id) return;
  const id = String(c.id);
  queue.delete(id);
  const asked = accepting.delete(id);
  const isNew = !tabs.has(id);
  const tab = upsertTab(c);
  addMessages(tab, Array.isArray(m.messages) ? m.messages : []);
  addNotes(Array.isArray(m.notes) ? m.notes : [], false);
  tab.loaded = true;
  if (m.transferredFrom) {
    notice(
      "info",
      t("agent.transferredIn", { from: m.transferredFrom.name ?? "?", visitor: visitorName(c) }),
    );
  } else if (!asked && isNew) {
    notice("info", t("agent.assigned", { visitor: visitorName(c) }));
  }
  if (!asked && isNew) newVisitorAlert();
  if (asked || !activeId) activate(id);
  else if (isNew) tab.unread = Math.max(tab.unread, tab.entries.filter((e) => isVisitorEntry(e)).length);
  renderQueue();
  renderTabs();
}

/** @param {Entry} e */
function isVisitorEntry(e) {
  return e.el.classList.contains("from-visitor");
}

/** @param {Message} m */
function incoming(m) {
  const id = String(m.conversationId ?? "");
  const tab = tabs.get(id);
  if (!tab) {
    const c = queue.get(id);
    if (c) {
      c.lastMessage = m;
      renderQueue();
    }
    return;
  }
  const had = tab.byId.has(String(m.id));
  addMessages(tab, [m]);
  tab.conv.lastMessage = m;
  if (had || isMe(m.from)) return;
  if (m.from?.role !== "system") stopTyping(tab);
  if (id === activeId && pageVisible()) sendRead(tab);
  else {
    tab.unread++;
    renderTabs();
    if (!pageVisible() && alertsOn()) {
      desktopNotice(`${m.from?.name ?? ""}: ${previewOf(m).slice(0, 120)}`);
      beep();
    }
  }
}

/** @param {Record<string, any>} m */
function typing(m) {
  const tab = tabs.get(String(m.conversationId ?? ""));
  if (!tab || !m.from || isMe(m.from)) return;
  tab.typing.show("visitor", String(m.from.name ?? ""));
}

/**
 * The visitor has read up to `upTo`: my messages up to it show ✓✓.
 *
 * @param {Record<string, any>} m
 */
function visitorRead(m) {
  const tab = tabs.get(String(m.conversationId ?? ""));
  if (!tab) return;
  tab.readByVisitor = Math.max(tab.readByVisitor, Number(m.upTo) || 0);
  renderReceipts(tab);
}

/** @param {Tab} tab */
function renderReceipts(tab) {
  showReceipts(tab.entries, tab.readByVisitor, { read: "agent.read", sent: "agent.sent" });
}

/** @param {Tab} tab */
function stopTyping(tab) {
  tab.typing.clear();
  if (String(tab.conv.id) === activeId) renderTyping();
}

/** @param {Record<string, any>} m */
function serverError(m) {
  const code = String(m.code ?? "");
  if (code === "taken") {
    const id = m.conversationId ? String(m.conversationId) : "";
    for (const a of id ? [id] : [...accepting]) accepting.delete(a);
    if (id) queue.delete(id);
    renderQueue();
    notice("error", t("agent.taken"));
    return;
  }
  // `not_found` for a message means one of its files: unsent uploads expire after a day.
  const withFiles = m.clientMsgId &&
    [...tabs.values()].some((tab) => tab.pending.get(String(m.clientMsgId))?.attachments.length);
  for (const tab of tabs.values()) failPending(tab.pending, m);
  accepting.clear();
  renderQueue();
  const { text, title } = describeError("agent", m);
  notice("error", code === "not_found" && withFiles ? t("upload.gone") : text).title = title;
}

// ---- messages ----

/** @param {Sender | undefined} from */
function isMe(from) {
  return Boolean(me && from && String(from.id) === String(me.id));
}

/** @param {Message} m */
function messageElement(m) {
  const role = m.from?.role ?? "visitor";
  const li = el("li", `message from-${role}`);
  li.dataset.id = String(m.id);
  li.dataset.testid = "message";
  if (isMe(m.from)) li.classList.add("mine");
  const when = timeElement(m.ts);
  if (role !== "system") li.append(el("span", "from", m.from?.name || t("agent.visitor", { id: "" })), when);
  if (role === "agent") li.append(el("span", "status receipt"));
  const files = attachmentsElement(m.attachments);
  if (m.text || !files) li.append(el("div", "text", String(m.text ?? "")));
  if (files) li.append(files);
  return li;
}

/**
 * A message in one line, for previews: its text, or what it carries.
 *
 * @param {Partial<Message> | null | undefined} m
 */
function previewOf(m) {
  return String(m?.text || attachmentSummary(m?.attachments));
}

/**
 * Adds messages to a tab where their ids say, skipping ids already there, and confirms my pending ones. Only the
 * active tab's messages are in the document; the others wait in their entries.
 *
 * @param {Tab} tab
 * @param {Message[]} list
 */
function addMessages(tab, list) {
  const shown = String(tab.conv.id) === activeId;
  insertMessages(tab, list, messageElement, shown ? messagesEl : null);
  renderReceipts(tab);
}

/**
 * Loads a tab's messages from the JSON transcript (after a reload or reconnect the socket only says which
 * conversations are mine).
 *
 * @param {Tab} tab
 */
async function loadTranscript(tab) {
  const id = String(tab.conv.id);
  try {
    const res = await fetch(`/api/support/conversations/${encodeURIComponent(id)}/transcript`, {
      headers: { accept: "application/json" },
    });
    if (!res.ok) return;
    const body = await res.json();
    const list = Array.isArray(body) ? body : Array.isArray(body?.messages) ? body.messages : [];
    if (tabs.get(id) !== tab) return;
    // The full view, in case the socket only gave us the conversation's id and status.
    // (Its unread count is not news: the socket keeps that one.)
    if (body?.conversation?.id) upsertTab({ ...body.conversation, unread: undefined });
    addMessages(tab, list);
    // The private notes too: after a reload they are only here.
    addNotes(Array.isArray(body?.notes) ? body.notes : [], false);
    tab.loaded = true;
    renderTabs();
    if (id === activeId) renderHead();
    if (id === activeId && pageVisible()) sendRead(tab);
  } catch {
    // the live frames still arrive; the older ones show after the next reconnect
  }
}

/** @param {Tab} tab */
function sendRead(tab) {
  const top = tab.entries.at(-1);
  tab.unread = 0;
  renderTabs();
  if (!top || !ready || tab.closed || top.n <= tab.readSent) return;
  if (conn?.send({ type: "read", conversationId: String(tab.conv.id), upTo: top.id }) === "sent") {
    tab.readSent = top.n;
  }
}

function pageVisible() {
  return document.visibilityState === "visible";
}

// ---- rendering ----

/** @param {Conversation} c */
function visitorName(c) {
  return c.visitor?.name || t("agent.visitor", { id: String(c.visitor?.id ?? c.id).slice(-4) });
}

function renderAll() {
  renderQueue();
  renderAgents();
  renderTabs();
  renderConversation();
}

function renderMe() {
  $("me").textContent = me ? me.name : "";
  renderAlerts();
  $("manage-agents").hidden = me?.role !== "admin";
  showOps(me?.role === "admin");
  const mine = agents.find((a) => me && String(a.id) === String(me.id));
  if (mine?.status === "online" || mine?.status === "away") myStatus = mine.status;
  statusToggle.dataset.status = myStatus;
  statusToggle.setAttribute("aria-pressed", String(myStatus === "away"));
  setText(statusToggle, myStatus === "online" ? "agent.online" : "agent.away");
  statusToggle.title = t(myStatus === "online" ? "agent.setAway" : "agent.setOnline");
}

/**
 * "2m 10s" in English, "2 分 10 秒" in Chinese.
 *
 * @param {number} ms
 */
function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const zh = lang() === "zh";
  if (h > 0) return zh ? `${h} 小时 ${m} 分` : `${h}h ${m}m`;
  if (m > 0) return zh ? `${m} 分 ${sec} 秒` : `${m}m ${sec}s`;
  return zh ? `${sec} 秒` : `${sec}s`;
}

function renderQueue() {
  const list = [...queue.values()].sort((a, b) => (a.createdAt ?? 0) - (b.createdAt ?? 0));
  queueEl.replaceChildren();
  for (const c of list) {
    const id = String(c.id);
    const li = el("li", "conversation");
    li.dataset.id = id;
    li.dataset.testid = "queue-item";
    const info = el("div", "conv-info");
    const name = el("strong", "conv-name", visitorName(c));
    const waiting = el("span", "waiting muted");
    waiting.dataset.created = String(c.createdAt ?? Date.now());
    const preview = el(
      "span",
      "preview muted",
      c.lastMessage ? previewOf(c.lastMessage) : t("agent.noMessage"),
    );
    info.append(name, waiting, preview);
    if (c.source === "offline") name.after(offlineLabel());
    const accept = /** @type {HTMLButtonElement} */ (el("button", "accept"));
    accept.type = "button";
    accept.dataset.testid = "accept";
    accept.disabled = accepting.has(id);
    setText(accept, "agent.accept");
    accept.addEventListener("click", () => {
      if (!ready || !conn) return;
      accepting.add(id);
      accept.disabled = true;
      if (conn.send({ type: "accept", conversationId: id }) !== "sent") {
        accepting.delete(id);
        accept.disabled = false;
      }
    });
    li.append(info, accept);
    queueEl.append(li);
  }
  $("queue-count").textContent = String(list.length);
  $("queue-empty").hidden = list.length > 0;
  tickWaiting();
}

function tickWaiting() {
  const now = Date.now();
  for (const span of queueEl.querySelectorAll(".waiting")) {
    const created = Number(/** @type {HTMLElement} */ (span).dataset.created);
    span.textContent = t("agent.waiting", { d: duration(now - created) });
  }
}
setInterval(tickWaiting, 1000);

function renderAgents() {
  const list = $("agents");
  list.replaceChildren();
  for (const a of [...agents].sort((x, y) => x.name.localeCompare(y.name))) {
    const li = el("li", "agent");
    li.dataset.id = String(a.id);
    li.dataset.status = a.status;
    li.dataset.testid = "agent";
    li.title = `${a.username ?? ""} · ${t(a.status === "online" ? "agent.online" : "agent.away")}`;
    li.append(el("span", "dot"), el("span", "agent-name", a.name));
    if (me && String(a.id) === String(me.id)) li.append(" ", el("span", "muted", t("agent.you")));
    list.append(li);
  }
  renderMe();
  renderTransfer();
}

function renderTransfer() {
  const previous = transferSelect.value;
  const others = agents.filter((a) => a.status === "online" && !(me && String(a.id) === String(me.id)));
  transferSelect.replaceChildren();
  const placeholder = /** @type {HTMLOptionElement} */ (el(
    "option",
    "",
    t(
      others.length ? "agent.pickAgent" : "agent.noAgents",
    ),
  ));
  placeholder.value = "";
  placeholder.disabled = true;
  transferSelect.append(placeholder);
  for (const a of others) {
    const option = /** @type {HTMLOptionElement} */ (el("option", "", a.name));
    option.value = a.username ?? "";
    transferSelect.append(option);
  }
  transferSelect.value = others.some((a) => a.username === previous) ? previous : "";
  updateActions();
}

/** The label of a conversation left through the widget's leave-a-message form. */
function offlineLabel() {
  const label = el("span", "label offline-label");
  setText(label, "ops.offlineLabel");
  label.dataset.testid = "offline-label";
  return label;
}

function renderTabs() {
  tabsEl.replaceChildren();
  for (const [id, tab] of tabs) {
    const button = el("button", "tab");
    button.setAttribute("type", "button");
    button.setAttribute("role", "tab");
    button.setAttribute("aria-selected", String(id === activeId));
    button.dataset.id = id;
    button.dataset.testid = "tab";
    if (tab.closed) button.classList.add("closed");
    button.append(el("span", "tab-name", visitorName(tab.conv)));
    if (tab.conv.source === "offline") button.append(offlineLabel());
    const badge = el("span", "unread", String(tab.unread));
    badge.hidden = tab.unread === 0;
    button.append(badge);
    if (tab.closed) {
      const label = el("span", "label");
      setText(label, "agent.closed");
      button.append(label);
    }
    button.addEventListener("click", () => activate(id));
    tabsEl.append(button);
  }
  const unread = [...tabs.values()].reduce((sum, tab) => sum + tab.unread, 0);
  if (!flashTimer) document.title = unread > 0 ? `(${unread}) ${t("agent.title")}` : t("agent.title");
}

/** @param {string} id */
function activate(id) {
  const before = tabs.get(activeId);
  const next = tabs.has(id) ? id : "";
  if (before) before.draft = textBox.value;
  // Each tab keeps its own files; the same tab again keeps the tray as it is.
  if (next !== activeId) {
    const put = tray.swap(tabs.get(next)?.uploads ?? []);
    if (before) before.uploads = put;
  }
  activeId = next;
  const tab = tabs.get(activeId);
  if (tab) tab.uploads = [];
  textBox.value = tab?.draft ?? "";
  renderConversation();
  if (tab && pageVisible()) sendRead(tab);
  renderTabs();
}

function renderConversation() {
  const tab = tabs.get(activeId);
  $("conversation").hidden = !tab;
  $("no-conversation").hidden = Boolean(tab) || tabs.size > 0;
  if (!tab) {
    messagesEl.replaceChildren();
    return;
  }
  messagesEl.replaceChildren(...tab.entries.map((e) => e.el), ...[...tab.pending.values()].map((p) => p.el));
  pin.stick();
  renderHead();
  renderTyping();
}

function renderHead() {
  const tab = tabs.get(activeId);
  renderNotes();
  if (!tab) return;
  const c = tab.conv;
  $("visitor-name").textContent = visitorName(c);
  $("visitor-email").textContent = c.visitor?.email ?? "";
  // A visitor the shop identified (a user token): its name, email and attributes are the shop's, not typed in.
  const verified = $("visitor-verified");
  verified.hidden = !c.visitor?.verified;
  setText(verified, "agent.verified");
  const attributes = Object.entries(c.visitor?.attributes ?? {});
  // Where the visitor is now, as the widget reports it (text only: a URL is never made a live link here).
  const ctx = c.visitor?.context ?? {};
  $("visitor-context").textContent = [
    ctx.title && ctx.url ? `${ctx.title} — ${ctx.url}` : ctx.url ?? "",
    ctx.referrer ? `← ${ctx.referrer}` : "",
    [ctx.language, ctx.timeZone].filter(Boolean).join(" · "),
  ].filter(Boolean).join("  |  ");
  $("visitor-attributes").textContent = attributes.map(([k, v]) =>
    `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`
  )
    .join(" · ");
  const status = $("conversation-status");
  setText(status, tab.closed ? "agent.closed" : "");
  status.hidden = !tab.closed;
  // Left through the widget's form: the visitor may be gone, so the answer goes by email too.
  $("conversation-offline").hidden = c.source !== "offline";
  /** @type {HTMLAnchorElement} */ ($("transcript")).href = `/api/support/conversations/${
    encodeURIComponent(String(c.id))
  }/transcript?format=text`;
  $("dismiss").hidden = !tab.closed;
  updateActions();
  renderEarlier();
}

function updateActions() {
  const tab = tabs.get(activeId);
  const open = Boolean(tab && !tab.closed);
  /** @type {HTMLButtonElement} */ ($("close-conversation")).disabled = !open;
  /** @type {HTMLButtonElement} */ ($("transfer")).disabled = !open || !transferSelect.value;
  transferSelect.disabled = !open || transferSelect.options.length <= 1;
  textBox.disabled = !open;
  /** @type {HTMLButtonElement} */ ($("send")).disabled = !open;
  /** @type {HTMLButtonElement} */ ($("attach")).disabled = !open;
}

function renderTyping() {
  const tab = tabs.get(activeId);
  const out = $("typing");
  const name = tab?.typing.names()[0];
  if (name) setText(out, "agent.typing", { name });
  else setText(out, "");
}

/**
 * Shows a notice above the tabs; at most a few stay.
 *
 * @param {"error" | "info"} kind
 * @param {string} text
 * @returns {HTMLElement}
 */
function notice(kind, text) {
  const item = addNotice(noticeEl, kind, text, { testid: "notice-item" });
  while (noticeEl.childElementCount > MAX_NOTICES) noticeEl.firstElementChild?.remove();
  return item;
}

// ---- new visitor alert ----

// Browsers only let a page make sound after the user interacted with it.
for (const type of ["pointerdown", "keydown"]) {
  globalThis.addEventListener(type, () => {
    try {
      audio ??= new AudioContext();
      if (audio.state === "suspended") audio.resume();
    } catch {
      // no WebAudio: the title still flashes
    }
  }, { capture: true });
}

function beep() {
  if (!audio || audio.state !== "running") return;
  const now = audio.currentTime;
  for (const [offset, freq] of [[0, 880], [0.18, 1320]]) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "sine";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, now + offset);
    gain.gain.exponentialRampToValueAtTime(0.2, now + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.15);
    osc.connect(gain).connect(audio.destination);
    osc.start(now + offset);
    osc.stop(now + offset + 0.16);
  }
}

/**
 * Whether this agent wants alerts (sound, desktop notification, flashing title); each agent's choice is kept in
 * this browser. A click on the button also asks for the desktop-notification permission (browsers allow that only
 * from a click).
 */
function alertsOn() {
  return me ? recallSetting(`sb_alerts_${me.username}`) !== "off" : true;
}

/** @param {string} key */
function recallSetting(key) {
  try {
    return localStorage.getItem(key) ?? "";
  } catch {
    return "";
  }
}

function renderAlerts() {
  const button = $("alerts");
  button.hidden = !me;
  button.setAttribute("aria-pressed", String(alertsOn()));
  setText(button, alertsOn() ? "agent.alertsOn" : "agent.alertsOff");
}

$("alerts").addEventListener("click", () => {
  if (!me) return;
  const next = alertsOn() ? "off" : "on";
  try {
    localStorage.setItem(`sb_alerts_${me.username}`, next);
  } catch {
    // not kept; the choice holds for this page
  }
  if (next === "on" && "Notification" in globalThis && Notification.permission === "default") {
    void Notification.requestPermission();
  }
  renderAlerts();
});

/** A desktop notification while the console is hidden, when the agent allowed them. @param {string} body */
function desktopNotice(body) {
  if (!alertsOn() || pageVisible() || !("Notification" in globalThis)) return;
  if (Notification.permission !== "granted") return;
  try {
    const n = new Notification(t("agent.title"), { body, tag: "switchboard" });
    n.onclick = () => {
      globalThis.focus();
      n.close();
    };
  } catch {
    // some browsers only allow notifications from a service worker
  }
}

function newVisitorAlert() {
  if (!alertsOn()) return;
  desktopNotice(t("agent.newConversation"));
  // Auto-assignment sends `conversation` (queued) and `accepted` a moment apart: one alert for both.
  const now = Date.now();
  if (now - lastAlertAt > ALERT_GAP_MS) beep();
  lastAlertAt = now;
  if (document.hasFocus() || flashTimer) return;
  let on = false;
  flashTimer = setInterval(() => {
    on = !on;
    document.title = on ? t("agent.alertTitle", { n: Math.max(1, queue.size), title: t("agent.title") }) : t(
      "agent.title",
    );
  }, 1000);
}

function stopFlash() {
  clearInterval(flashTimer);
  flashTimer = undefined;
  renderTabs();
}

globalThis.addEventListener("focus", stopFlash);
document.addEventListener("visibilitychange", () => {
  const tab = tabs.get(activeId);
  if (tab && pageVisible()) sendRead(tab);
});

// ---- actions ----

/** @param {Tab} tab @param {string} clientMsgId */
function sendMessage(tab, clientMsgId) {
  const p = tab.pending.get(clientMsgId);
  if (!p || !ready || !conn) return;
  const attachments = p.attachments.length ? { attachments: p.attachments } : {};
  p.sent = conn.send({
    type: "message",
    conversationId: String(tab.conv.id),
    text: p.text,
    ...attachments,
    clientMsgId,
  }) === "sent";
}

/** @param {Tab} tab */
function resendPending(tab) {
  for (const [clientMsgId, p] of tab.pending) if (!p.failed && !p.sent) sendMessage(tab, clientMsgId);
}

/**
 * Sends `text` with the files in the tray (the active tab's).
 *
 * @param {Tab} tab
 * @param {string} text may be empty when files go with it
 */
function queueMessage(tab, text) {
  const files = tray.uploads;
  tray.clear();
  const p = addPending(tab.pending, text, el("span", "from", me?.name ?? ""), {
    className: "from-agent",
    send: (p) => sendMessage(tab, p.clientMsgId),
    attachments: files.map((f) => String(f.id)),
    view: attachmentsElement(files),
  });
  if (String(tab.conv.id) === activeId) messagesEl.append(p.el);
  pin.stick();
  sendMessage(tab, p.clientMsgId);
}

/**
 * Private notes (agents only; the visitor never sees them), kept per conversation and shown for the active one.
 * A note that mentions me (`@username`) while it is not my conversation is announced.
 *
 * @param {Record<string, any>[]} list
 * @param {boolean} live
 */
function addNotes(list, live) {
  for (const n of list) {
    const id = String(n.conversationId ?? "");
    const known = notesByConversation.get(id) ?? [];
    if (known.some((k) => k.id === n.id)) continue;
    known.push(n);
    // Live notes and the transcript's may arrive in any order: shown by id.
    known.sort((a, b) => Number(a.id) - Number(b.id));
    notesByConversation.set(id, known);
    if (live && me && Array.isArray(n.mentions) && n.mentions.includes(me.username) && !isMe(n.from)) {
      notice("info", t("agent.mentioned", { from: n.from?.name ?? "?" }));
      newVisitorAlert();
    }
  }
  renderNotes();
}

/** @type {Map<string, Record<string, any>[]>} */
const notesByConversation = new Map();

function renderNotes() {
  const listEl = $("notes");
  listEl.replaceChildren();
  for (const n of notesByConversation.get(activeId) ?? []) {
    const li = el("li", "note");
    li.dataset.testid = "note-item";
    li.append(
      el("span", "from", n.from?.name ?? "?"),
      timeElement(n.ts),
      el("div", "text", String(n.text ?? "")),
    );
    listEl.append(li);
  }
}

/**
 * Canned replies: `/` at the start of the box opens the team's and my replies, filtered as I type; arrows pick,
 * Enter or Tab inserts the reply (its variables filled for this conversation) in place of `/shortcut`.
 */
const cannedEl = $("canned");
/** @type {{shortcut: string, rendered?: string, text: string}[]} */
let cannedShown = [];
let cannedPick = 0;
/** @type {Map<string, Promise<{shortcut: string, rendered?: string, text: string}[]>>} */
const cannedCache = new Map();

function cannedQuery() {
  const before = textBox.value.slice(0, textBox.selectionStart ?? 0);
  const m = /(?:^|\s)\/([A-Za-z0-9._-]*)$/.exec(before);
  return m ? m[1] : undefined;
}

async function updateCanned() {
  const q = cannedQuery();
  if (q === undefined || !activeId) return closeCanned();
  let list = cannedCache.get(activeId);
  if (!list) {
    list = fetch(`/api/canned?conversationId=${encodeURIComponent(activeId)}`)
      .then((res) => res.ok ? res.json() : { replies: [] })
      .then((body) => body.replies ?? []);
    cannedCache.set(activeId, list);
  }
  const replies = await list;
  cannedShown = replies.filter((r) => r.shortcut.startsWith(q)).slice(0, 8);
  cannedPick = Math.min(cannedPick, Math.max(0, cannedShown.length - 1));
  cannedEl.replaceChildren(...cannedShown.map((r, i) => {
    const li = el("li", i === cannedPick ? "picked" : "", `/${r.shortcut}`);
    li.append(el("span", "muted", ` ${r.rendered ?? r.text}`));
    li.setAttribute("role", "option");
    li.setAttribute("aria-selected", String(i === cannedPick));
    li.addEventListener("mousedown", (e) => {
      e.preventDefault();
      cannedPick = i;
      insertCanned();
    });
    return li;
  }));
  cannedEl.hidden = cannedShown.length === 0;
}

function closeCanned() {
  cannedShown = [];
  cannedPick = 0;
  cannedEl.hidden = true;
}

function insertCanned() {
  const reply = cannedShown[cannedPick];
  const q = cannedQuery();
  if (!reply || q === undefined) return closeCanned();
  const end = textBox.selectionStart ?? textBox.value.length;
  const start = end - q.length - 1;
  const text = reply.rendered ?? reply.text;
  textBox.value = textBox.value.slice(0, start) + text + textBox.value.slice(end);
  textBox.selectionStart = textBox.selectionEnd = start + text.length;
  closeCanned();
  textBox.focus();
}

textBox.addEventListener("input", () => void updateCanned());
// Before the composer's own Enter handling: while the list is open, keys choose from it.
textBox.addEventListener("keydown", (event) => {
  if (cannedEl.hidden) return;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    cannedPick = (cannedPick + (event.key === "ArrowDown" ? 1 : cannedShown.length - 1)) % cannedShown.length;
    void updateCanned();
  } else if (event.key === "Enter" || event.key === "Tab") insertCanned();
  else if (event.key === "Escape") closeCanned();
  else return;
  event.preventDefault();
  event.stopImmediatePropagation();
}, { capture: true });

/** Searching conversations (message text, visitor name or email): each result opens its transcript. */
$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const q = /** @type {HTMLInputElement} */ ($("search")).value.trim();
  const results = $("search-results");
  results.replaceChildren();
  if (!q) return;
  try {
    const res = await fetch(`/api/support/conversations?q=${encodeURIComponent(q)}`);
    const body = await res.json();
    for (const c of res.ok ? body.conversations : []) {
      const li = el("li", "conv");
      const link = /** @type {HTMLAnchorElement} */ (el("a", "", visitorName(c)));
      link.href = `/api/support/conversations/${encodeURIComponent(String(c.id))}/transcript?format=text`;
      link.target = "_blank";
      link.rel = "noopener";
      li.append(link, el("span", "muted", ` ${previewOf(c.lastMessage)}`));
      results.append(li);
    }
    if (!res.ok) notice("error", body?.message ?? String(res.status));
  } catch {
    notice("error", t("agent.searchFailed"));
  }
});

$("note").addEventListener("click", () => {
  const text = textBox.value.trim();
  if (!text || !activeId || !ready) return;
  conn?.send({ type: "note", conversationId: activeId, text, clientMsgId: crypto.randomUUID() });
  textBox.value = "";
});

wireComposer(/** @type {HTMLFormElement} */ ($("composer")), textBox, {
  hasFiles: () => tray.busy || tray.ids.length > 0,
  canSend() {
    if (tabs.get(activeId)?.closed !== false) return false;
    if (!tray.busy) return true;
    notice("info", t("upload.busy"));
    return false;
  },
  tooLong: (message) => notice("error", message),
  send(text) {
    const tab = /** @type {Tab} */ (tabs.get(activeId));
    tab.draft = "";
    queueMessage(tab, text);
  },
});

sendTypingOnInput(textBox, () => {
  if (!ready || !activeId) return false;
  conn?.send({ type: "typing", conversationId: activeId });
  return true;
});

transferSelect.addEventListener("change", updateActions);

$("transfer").addEventListener("click", () => {
  const toAgent = transferSelect.value;
  if (!activeId || !toAgent || !ready) return;
  conn?.send({ type: "transfer", conversationId: activeId, toAgent });
});

$("close-conversation").addEventListener("click", () => {
  if (!activeId || !ready) return;
  conn?.send({ type: "close", conversationId: activeId });
});

$("dismiss").addEventListener("click", () => {
  const tab = tabs.get(activeId);
  if (tab?.closed) {
    removeTab(activeId);
    renderTabs();
    renderConversation();
  }
});

statusToggle.addEventListener("click", () => {
  if (!ready) return;
  const next = myStatus === "online" ? "away" : "online";
  if (conn?.send({ type: "status", status: next }) !== "sent") return;
  myStatus = next;
  const mine = agents.find((a) => me && String(a.id) === String(me.id));
  if (mine) mine.status = next;
  renderMe();
});

wireAttach({
  tray,
  button: $("attach"),
  input: /** @type {HTMLInputElement} */ ($("file-input")),
  box: textBox,
  zone: $("conversation"),
  enabled: () => tabs.get(activeId)?.closed === false,
});

// ---- the visitor's earlier conversations, read-only ----

/**
 * The earlier conversations of the active tab's visitor (fetched once per visitor and conversation shown).
 *
 * @type {{key: string, list: Conversation[]}}
 */
let earlier = { key: "", list: [] };

/** Shows the active visitor's other conversations; fetches them when the visitor or conversation changed. */
function renderEarlier() {
  const tab = tabs.get(activeId);
  const visitorId = tab?.conv.visitor?.id ? String(tab.conv.visitor.id) : "";
  const key = visitorId ? `${visitorId} ${activeId}` : "";
  if (key !== earlier.key) {
    earlier = { key, list: [] };
    if (visitorId) void loadEarlier(visitorId, key);
  }
  const list = $("earlier-list");
  list.replaceChildren();
  for (const c of earlier.list) {
    const li = el("li");
    const open = el("button", "quiet earlier-item");
    open.setAttribute("type", "button");
    open.dataset.id = String(c.id);
    open.dataset.testid = "earlier-item";
    const when = el("time", "when", new Date(c.createdAt).toLocaleString(lang() === "zh" ? "zh-CN" : "en"));
    when.setAttribute("datetime", new Date(c.createdAt).toISOString());
    open.append(
      when,
      el("span", "label", t(`agent.status.${c.status}`)),
      el("span", "preview muted", c.lastMessage ? previewOf(c.lastMessage) : t("agent.noMessage")),
    );
    open.addEventListener("click", () => void openTranscript(String(c.id)));
    li.append(open);
    list.append(li);
  }
  $("earlier-count").textContent = String(earlier.list.length);
  $("earlier").hidden = earlier.list.length === 0;
}

/** @param {string} visitorId @param {string} key */
async function loadEarlier(visitorId, key) {
  try {
    const res = await fetch(`/api/support/visitors/${encodeURIComponent(visitorId)}/conversations`, {
      headers: { accept: "application/json" },
    });
    const body = res.ok ? await res.json() : {};
    if (earlier.key !== key) return;
    const current = key.split(" ")[1];
    /** @type {Conversation[]} */
    const list = Array.isArray(body?.conversations) ? body.conversations : [];
    earlier = {
      key,
      list: list.filter((c) => c?.id && String(c.id) !== current).sort((a, b) => b.createdAt - a.createdAt),
    };
    renderEarlier();
  } catch {
    // no list this time; the next conversation shown asks again
  }
}

const transcriptDialog = /** @type {HTMLDialogElement} */ ($("transcript-dialog"));
$("transcript-close").addEventListener("click", () => transcriptDialog.close());

/**
 * Opens conversation `id` read-only in a dialog: its messages (with their files) and private notes.
 *
 * @param {string} id
 */
async function openTranscript(id) {
  const messages = $("transcript-messages");
  const notes = $("transcript-notes");
  const error = $("transcript-error");
  messages.replaceChildren();
  notes.replaceChildren();
  error.hidden = true;
  $("transcript-title").textContent = t("agent.transcript");
  $("transcript-meta").textContent = "";
  $("transcript-notes-box").hidden = true;
  if (!transcriptDialog.open) transcriptDialog.showModal();
  try {
    const res = await fetch(`/api/support/conversations/${encodeURIComponent(id)}/transcript`, {
      headers: { accept: "application/json" },
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      error.textContent = body?.message || t("agent.transcriptFailed", { status: res.status });
      error.hidden = false;
      return;
    }
    const c = body.conversation ?? {};
    $("transcript-title").textContent = t("agent.conversationWith", { visitor: visitorName(c) });
    $("transcript-meta").textContent = t("agent.startedAt", {
      date: new Date(c.createdAt ?? Date.now()).toLocaleString(lang() === "zh" ? "zh-CN" : "en"),
      status: t(`agent.status.${c.status}`),
    });
    for (const m of Array.isArray(body.messages) ? body.messages : []) messages.append(messageElement(m));
    for (const n of Array.isArray(body.notes) ? body.notes : []) {
      const li = el("li", "note");
      li.append(
        el("span", "from", n.from?.name ?? "?"),
        timeElement(n.ts),
        el("div", "text", String(n.text ?? "")),
      );
      notes.append(li);
    }
    $("transcript-notes-box").hidden = notes.childElementCount === 0;
  } catch {
    error.textContent = t("agent.offline");
    error.hidden = false;
  }
}

// ---- managing agents (admins) ----

const agentsDialog = /** @type {HTMLDialogElement} */ ($("agents-dialog"));

/**
 * @typedef {object} ManagedAgent
 * @property {string} id
 * @property {string} username
 * @property {string} name
 * @property {"admin" | "agent"} role
 * @property {boolean} disabled
 */

/**
 * Calls the agents API; a refusal shows the server's words in the dialog.
 *
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<Record<string, any> | null>} the answer, or null when it failed
 */
async function agentsApi(method, path, body) {
  const error = $("agents-error");
  error.hidden = true;
  try {
    const res = await fetch(path, {
      method,
      headers: { accept: "application/json", ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const answer = await res.json().catch(() => ({}));
    if (res.ok) return answer;
    error.textContent = answer?.message || t("agent.agentsFailed", { status: res.status });
  } catch {
    error.textContent = t("agent.offline");
  }
  error.hidden = false;
  return null;
}

async function loadManagedAgents() {
  const body = await agentsApi("GET", "/api/agents");
  if (body) renderManagedAgents(Array.isArray(body.agents) ? body.agents : []);
}

/**
 * Changes one agent and shows the list again.
 *
 * @param {ManagedAgent} a
 * @param {Record<string, unknown>} change
 */
async function updateAgent(a, change) {
  const done = await agentsApi("PATCH", `/api/agents/${encodeURIComponent(a.username)}`, change);
  // The list is shown again first, so "updated" means the change is on screen (and a click after it lands
  // on the new rows, not on rows about to be replaced).
  await loadManagedAgents();
  if (done) $("agents-status").textContent = t("agent.updated", { username: a.username });
  return Boolean(done);
}

/**
 * A button that opens a one-field form under an agent's row (rename, new password); saving sends one PATCH.
 *
 * @param {ManagedAgent} a
 * @param {string} className
 * @param {string} label
 * @param {string} placeholder
 * @param {Partial<HTMLInputElement>} input
 * @param {(value: string) => Record<string, unknown>} change
 * @returns {[HTMLElement, HTMLFormElement]}
 */
function inlineEdit(a, className, label, placeholder, input, change) {
  const button = el("button", `quiet ${className}`, label);
  button.setAttribute("type", "button");
  button.setAttribute("aria-expanded", "false");
  const form = /** @type {HTMLFormElement} */ (el("form", "admin-edit"));
  form.hidden = true;
  const field = /** @type {HTMLInputElement} */ (el("input"));
  Object.assign(field, input);
  field.required = true;
  field.placeholder = placeholder;
  field.setAttribute("aria-label", `${placeholder}: ${a.username}`);
  const save = el("button", "", t("agent.save"));
  save.setAttribute("type", "submit");
  const cancel = el("button", "quiet", t("agent.cancel"));
  cancel.setAttribute("type", "button");
  form.append(field, save, cancel);
  const show = (/** @type {boolean} */ on) => {
    form.hidden = !on;
    button.setAttribute("aria-expanded", String(on));
    if (on) field.focus();
    else button.focus();
  };
  button.addEventListener("click", () => show(form.hidden !== false));
  cancel.addEventListener("click", () => show(false));
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation(); // keep the dialog open
      show(false);
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (field.value.trim()) void updateAgent(a, change(field.value));
  });
  return [button, form];
}

/** @param {ManagedAgent[]} list */
function renderManagedAgents(list) {
  const box = $("admin-agents");
  box.replaceChildren();
  for (const a of list) {
    const self = Boolean(me && String(a.id) === String(me.id));
    const li = el("li", "admin-agent");
    li.dataset.username = a.username;
    li.dataset.testid = "admin-agent";
    if (a.disabled) li.classList.add("disabled");
    const who = el("div", "admin-who");
    who.append(el("strong", "", a.name), el("span", "muted", ` ${a.username}`));
    if (self) who.append(" ", el("span", "muted", t("agent.you")));
    const state = el("span", "label admin-state", t(a.disabled ? "agent.disabledState" : "agent.active"));

    const role = /** @type {HTMLSelectElement} */ (el("select", "admin-role"));
    role.setAttribute("aria-label", `${t("agent.role")}: ${a.username}`);
    for (const [value, key] of [["agent", "agent.roleAgent"], ["admin", "agent.roleAdmin"]]) {
      const option = /** @type {HTMLOptionElement} */ (el("option", "", t(key)));
      option.value = value;
      role.append(option);
    }
    role.value = a.role;
    role.disabled = self; // the server refuses an admin's own demotion
    role.addEventListener("change", () => void updateAgent(a, { role: role.value }));

    const toggle = el("button", "quiet admin-toggle", t(a.disabled ? "agent.enable" : "agent.disable"));
    toggle.setAttribute("type", "button");
    if (!a.disabled) toggle.classList.add("danger");
    /** @type {HTMLButtonElement} */ (toggle).disabled = self;
    toggle.addEventListener("click", () => void updateAgent(a, { disabled: !a.disabled }));

    const [reset, passwordForm] = inlineEdit(
      a,
      "admin-reset",
      t("agent.resetPassword"),
      t("agent.newPassword"),
      {
        type: "password",
        autocomplete: "new-password",
        minLength: 8,
        maxLength: 256,
      },
      (value) => ({ password: value }),
    );
    const [rename, nameForm] = inlineEdit(a, "admin-rename", t("agent.rename"), t("agent.newName"), {
      type: "text",
      autocomplete: "off",
      minLength: 1,
      maxLength: 100,
      value: a.name,
    }, (value) => ({ name: value.trim() }));

    const actions = el("div", "admin-actions");
    actions.append(role, toggle, rename, reset);
    li.append(who, state, actions, nameForm, passwordForm);
    box.append(li);
  }
}

$("manage-agents").addEventListener("click", () => {
  if (me?.role !== "admin") return;
  $("agents-status").textContent = "";
  $("agents-error").hidden = true;
  agentsDialog.showModal();
  void loadManagedAgents();
});
$("agents-close").addEventListener("click", () => agentsDialog.close());

$("add-agent-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = (/** @type {string} */ id) => /** @type {HTMLInputElement} */ ($(id));
  const username = field("new-username").value.trim();
  const name = field("new-name").value.trim();
  const password = field("new-password").value;
  if (!username || !password) {
    $("agents-error").textContent = t("agent.missingLogin");
    $("agents-error").hidden = false;
    return;
  }
  const button = /** @type {HTMLButtonElement} */ ($("add-agent"));
  button.disabled = true;
  const added = await agentsApi("POST", "/api/agents", {
    username,
    password,
    role: /** @type {HTMLSelectElement} */ ($("new-role")).value,
    ...(name ? { name } : {}),
  });
  button.disabled = false;
  if (!added) return;
  for (const id of ["new-username", "new-name", "new-password"]) field(id).value = "";
  $("agents-status").textContent = t("agent.added", { username });
  await loadManagedAgents();
});

onLangChange(() => {
  renderAll();
  renderMe();
  renderEarlier();
  if (agentsDialog.open) void loadManagedAgents();
});

start();
