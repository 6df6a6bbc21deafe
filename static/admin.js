/**
 * The admin console (`/admin.html`, issue #14). Signs in with the agent session (`/api/agent/login`, the same
 * cookie as the agent console), then shows live state from `/api/admin/*` (every instance's connections, rooms,
 * topics, the support queue and agents), acts on it (disconnect, kick, a test publication, delete a schedule,
 * retry a webhook delivery) and lists the audit log. A push socket shows whether the page reaches the server.
 * Every text from the server goes in as text (`textContent`), never as HTML.
 *
 * @module
 */
import { connect } from "./client.js";
import { extend, initI18n, onLangChange, setText, t } from "./i18n.js";
import { addNotice, el, stateBadge } from "./ui.js";

extend({
  en: {
    "admin.title": "Admin console · Switchboard",
    "admin.heading": "Admin console",
    "admin.loading": "Loading…",
    "admin.signIn": "Sign in as an admin",
    "admin.signInHint": "Use your agent account; it must have the admin role.",
    "admin.username": "Username",
    "admin.password": "Password",
    "admin.login": "Sign in",
    "admin.logout": "Log out",
    "admin.loginFailed": "Could not sign in ({status}).",
    "admin.forbidden": "Admins only",
    "admin.forbiddenText":
      "This account is not an admin, so the server answers 403. Ask an admin to give you the admin role, or sign in with another account.",
    "admin.switchAccount": "Sign in with another account",
    "admin.sections": "Sections",
    "admin.connections": "Connections",
    "admin.rooms": "Rooms",
    "admin.topics": "Topics",
    "admin.support": "Support",
    "admin.publish": "Test publication",
    "admin.schedules": "Schedules",
    "admin.webhooks": "Webhooks",
    "admin.audit": "Audit log",
    "admin.selfcheck": "Self-check",
    "admin.auto": "Refresh every 5 s",
    "admin.refresh": "Refresh",
    "admin.refreshed": "Refreshed at {time}",
    "admin.instancesLine": "This page talks to instance {instance}; {n} instance(s) answered.",
    "admin.partial": "Some instances did not answer in time; their connections are missing.",
    "admin.thisInstance": "this instance",
    "admin.instance": "Instance {instance}",
    "admin.connCount": "{n} connection(s)",
    "admin.noConns": "No connections.",
    "admin.inspect": "Inspect",
    "admin.hide": "Hide",
    "admin.disconnect": "Disconnect",
    "admin.disconnected": "Connection {id} disconnected.",
    "admin.kick": "Kick",
    "admin.kicked": "{name} removed from {room}.",
    "admin.members": "{n} member(s)",
    "admin.subscribers": "{n} subscriber(s)",
    "admin.noRooms": "No room has members.",
    "admin.noTopics": "No topic has subscribers.",
    "admin.queue": "Queue",
    "admin.queueEmpty": "Nobody is waiting.",
    "admin.agents": "Agents",
    "admin.online": "online",
    "admin.away": "away",
    "admin.offline": "not connected",
    "admin.disabledAgent": "disabled",
    "admin.topic": "Topic",
    "admin.data": "Data (JSON)",
    "admin.send": "Publish",
    "admin.badJson": "The data is not valid JSON.",
    "admin.badTopic": 'A topic is 1–128 letters, digits, ".", "-", "_" or ":".',
    "admin.published": "Published as {id}; delivered to {n} subscriber(s).",
    "admin.noSchedules": "No schedules.",
    "admin.next": "next {time}",
    "admin.done": "done",
    "admin.every": "every {every}",
    "admin.delete": "Delete",
    "admin.deleted": "Schedule {id} deleted.",
    "admin.status": "Status",
    "admin.all": "All",
    "admin.failed": "Failed",
    "admin.pending": "Pending",
    "admin.delivered": "Delivered",
    "admin.noDeliveries": "No deliveries.",
    "admin.attempts": "{n} attempt(s)",
    "admin.lastStatus": "last answer {status}",
    "admin.retry": "Retry",
    "admin.retried": "Delivery {id} is due again.",
    "admin.noAudit": "No admin actions yet.",
    "admin.older": "Older entries",
    "admin.failedAction": "{what} failed: {message}",
    "admin.offlineNote": "The server cannot be reached; the lists show the last answer.",
    "admin.dataRequests": "Data requests",
    "admin.visitorId": "Visitor id, or user:<id on your site>",
    "admin.export": "Export as JSON",
    "admin.deleteVisitor": "Delete everything",
    "admin.confirmDelete": "Yes, delete it all",
    "admin.needVisitor": "Enter a visitor id first.",
    "admin.exported": "Exported {n} conversations and {files} files.",
    "admin.reallyDelete": "This deletes the visitor's conversations, messages, notes and files for good.",
    "admin.visitorDeleted": "Deleted {c} conversations, {m} messages and {u} files.",
  },
  zh: {
    "admin.title": "管理控制台 · Switchboard",
    "admin.heading": "管理控制台",
    "admin.loading": "加载中…",
    "admin.signIn": "以管理员身份登录",
    "admin.signInHint": "使用您的客服账号；该账号须具有管理员角色。",
    "admin.username": "用户名",
    "admin.password": "密码",
    "admin.login": "登录",
    "admin.logout": "退出",
    "admin.loginFailed": "无法登录（{status}）。",
    "admin.forbidden": "仅限管理员",
    "admin.forbiddenText":
      "此账号不是管理员，服务器返回 403。请让管理员授予您管理员角色，或使用其他账号登录。",
    "admin.switchAccount": "使用其他账号登录",
    "admin.sections": "栏目",
    "admin.connections": "连接",
    "admin.rooms": "聊天室",
    "admin.topics": "主题",
    "admin.support": "客服",
    "admin.publish": "测试推送",
    "admin.schedules": "定时推送",
    "admin.webhooks": "Webhook",
    "admin.audit": "审计日志",
    "admin.selfcheck": "自检",
    "admin.auto": "每 5 秒刷新",
    "admin.refresh": "刷新",
    "admin.refreshed": "刷新于 {time}",
    "admin.instancesLine": "本页连接的实例是 {instance}；{n} 个实例已应答。",
    "admin.partial": "部分实例未及时应答，缺少它们的连接。",
    "admin.thisInstance": "本实例",
    "admin.instance": "实例 {instance}",
    "admin.connCount": "{n} 个连接",
    "admin.noConns": "没有连接。",
    "admin.inspect": "查看",
    "admin.hide": "收起",
    "admin.disconnect": "断开",
    "admin.disconnected": "连接 {id} 已断开。",
    "admin.kick": "踢出",
    "admin.kicked": "已将 {name} 移出 {room}。",
    "admin.members": "{n} 位成员",
    "admin.subscribers": "{n} 个订阅者",
    "admin.noRooms": "没有有成员的聊天室。",
    "admin.noTopics": "没有有订阅者的主题。",
    "admin.queue": "排队",
    "admin.queueEmpty": "没有人在等待。",
    "admin.agents": "客服",
    "admin.online": "在线",
    "admin.away": "离开",
    "admin.offline": "未连接",
    "admin.disabledAgent": "已停用",
    "admin.topic": "主题",
    "admin.data": "数据（JSON）",
    "admin.send": "推送",
    "admin.badJson": "数据不是有效的 JSON。",
    "admin.badTopic": "主题为 1–128 个字母、数字、“.”、“-”、“_”或“:”。",
    "admin.published": "已推送，编号 {id}；送达 {n} 个订阅者。",
    "admin.noSchedules": "没有定时推送。",
    "admin.next": "下次 {time}",
    "admin.done": "已完成",
    "admin.every": "每 {every}",
    "admin.delete": "删除",
    "admin.deleted": "定时推送 {id} 已删除。",
    "admin.status": "状态",
    "admin.all": "全部",
    "admin.failed": "失败",
    "admin.pending": "待发送",
    "admin.delivered": "已送达",
    "admin.noDeliveries": "没有投递记录。",
    "admin.attempts": "尝试 {n} 次",
    "admin.lastStatus": "最后响应 {status}",
    "admin.retry": "重试",
    "admin.retried": "投递 {id} 已重新排期。",
    "admin.noAudit": "还没有管理操作。",
    "admin.older": "更早的记录",
    "admin.failedAction": "{what}失败：{message}",
    "admin.offlineNote": "无法连接服务器；列表显示的是上一次的结果。",
    "admin.dataRequests": "数据请求",
    "admin.visitorId": "访客 ID，或 user:<您网站上的用户 ID>",
    "admin.export": "导出为 JSON",
    "admin.deleteVisitor": "删除全部数据",
    "admin.confirmDelete": "确认删除全部",
    "admin.needVisitor": "请先输入访客 ID。",
    "admin.exported": "已导出 {n} 个会话和 {files} 个文件。",
    "admin.reallyDelete": "这会永久删除该访客的会话、消息、备注和文件。",
    "admin.visitorDeleted": "已删除 {c} 个会话、{m} 条消息和 {u} 个文件。",
  },
});
initI18n();

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const TOPIC_RE = /^[A-Za-z0-9._:-]{1,128}$/;
const AUTO_MS = 5000;

/** An HTTP answer that is not 2xx. */
class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * Calls the API with the session cookie. 401 shows the login, 403 the admins-only view; both throw.
 *
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body === undefined
      ? { accept: "application/json" }
      : { accept: "application/json", "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => null);
  if (res.status === 401) showLogin("");
  if (res.status === 403) showForbidden();
  if (!res.ok) throw new ApiError(res.status, data?.message ?? `HTTP ${res.status}`);
  return data;
}

// ---- views and login ----

/** @param {"loading" | "login" | "forbidden" | "console"} view */
function show(view) {
  for (const v of ["loading", "login", "forbidden", "console"]) $(`${v}-view`).hidden = v !== view;
  const signedIn = view === "console" || view === "forbidden";
  $("logout").hidden = !signedIn;
  $("me").hidden = !signedIn;
  $("state").hidden = view !== "console";
  if (view !== "console") stopLive();
}

/** @param {string} message */
function showLogin(message) {
  show("login");
  const box = $("login-error");
  box.textContent = message;
  box.hidden = message === "";
  /** @type {HTMLInputElement} */ ($("username")).focus();
}

function showForbidden() {
  show("forbidden");
  $("switch-account").focus();
}

/** @param {{username: string, name: string, role: string}} agent */
function signedIn(agent) {
  $("me").textContent = agent.name || agent.username;
  if (agent.role !== "admin") return showForbidden();
  show("console");
  startLive();
}

async function start() {
  try {
    const res = await fetch("/api/agent/me", { headers: { accept: "application/json" } });
    if (res.ok) return signedIn((await res.json()).agent);
    showLogin(res.status === 401 ? "" : t("admin.loginFailed", { status: res.status }));
  } catch {
    showLogin(t("admin.offlineNote"));
  }
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = /** @type {HTMLInputElement} */ ($("username")).value.trim();
  const password = /** @type {HTMLInputElement} */ ($("password")).value;
  const button = /** @type {HTMLButtonElement} */ ($("login"));
  button.disabled = true;
  try {
    const res = await fetch("/api/agent/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    const body = await res.json().catch(() => null);
    if (res.ok) {
      /** @type {HTMLInputElement} */ ($("password")).value = "";
      signedIn(body.agent);
    } else showLogin(body?.message || t("admin.loginFailed", { status: res.status }));
  } catch {
    showLogin(t("admin.offlineNote"));
  } finally {
    button.disabled = false;
  }
});

async function logout() {
  await fetch("/api/agent/logout", { method: "POST" }).catch(() => {});
  showLogin("");
}
$("logout").addEventListener("click", logout);
$("switch-account").addEventListener("click", logout);

// ---- live state ----

const badge = stateBadge($("state"));
/** @type {ReturnType<typeof connect> | undefined} */
let socket;
/** @type {ReturnType<typeof setInterval> | undefined} */
let timer;

function startLive() {
  // The socket says whether the server is reachable; each time it opens, the lists are fetched again.
  socket ??= connect("/ws/push?time=0", { onState: badge, onOpen: () => refreshAll() });
  clearInterval(timer);
  timer = setInterval(() => {
    if (/** @type {HTMLInputElement} */ ($("auto")).checked && !document.hidden) refreshLive();
  }, AUTO_MS);
  refreshAll();
}

function stopLive() {
  clearInterval(timer);
  timer = undefined;
  socket?.close();
  socket = undefined;
}

/**
 * Shows an action's failure (or success) as a notice; keeps the last few.
 *
 * @param {"error" | "info"} kind
 * @param {string} text
 */
function notify(kind, text) {
  const box = $("notices");
  while (box.childElementCount >= 4) box.firstElementChild?.remove();
  addNotice(box, kind, text, { testid: `notice-${kind}` });
}

/**
 * Replaces a list's children, keeping keyboard focus on the button with the same `data-key` when it is still
 * there, so an auto refresh never throws the focus away.
 *
 * @param {HTMLElement} list
 * @param {Node[]} items
 */
function replaceKeepingFocus(list, items) {
  const active = /** @type {HTMLElement | null} */ (document.activeElement);
  const key = active && list.contains(active) ? active.dataset.key : undefined;
  list.replaceChildren(...items);
  if (key) /** @type {HTMLElement | null} */ (list.querySelector(`[data-key="${CSS.escape(key)}"]`))?.focus();
}

/**
 * A button that runs `action` once at a time and reports a failure.
 *
 * @param {string} labelKey
 * @param {string} key unique on the page, for focus keeping
 * @param {() => Promise<void>} action
 * @param {string} testid
 */
function actionButton(labelKey, key, action, testid) {
  const b = /** @type {HTMLButtonElement} */ (el("button", "quiet", t(labelKey)));
  b.type = "button";
  b.dataset.key = key;
  b.dataset.testid = testid;
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await action();
    } catch (err) {
      if (!(err instanceof ApiError && (err.status === 401 || err.status === 403))) {
        notify(
          "error",
          t("admin.failedAction", { what: t(labelKey), message: /** @type {Error} */ (err).message }),
        );
      }
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

/** @param {number | undefined} ms */
function age(ms) {
  if (ms === undefined) return "";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

/** @param {string | number | null | undefined} v */
const when = (v) => v === null || v === undefined ? "" : new Date(v).toLocaleString();

/** What a connection is, in one line: who, where, what it follows. */
function connSummary(/** @type {any} */ c) {
  const parts = [];
  const s = c.state ?? {};
  if (c.user) parts.push(`${c.user.name} (${c.user.sub})`);
  else if (s.name) parts.push(s.name);
  if (s.agent) parts.push(`@${s.agent.username}`);
  if (s.room) parts.push(`#${s.room}`);
  if (s.visitorId) parts.push(`visitor ${s.visitorId}`);
  if (s.topics?.length) parts.push(s.topics.join(", "));
  if (s.status) parts.push(s.status);
  if (c.ip) parts.push(c.ip);
  if (c.openedAt) parts.push(age(c.openedAt));
  return parts.join(" · ");
}

/** Connection ids whose detail is open. @type {Set<string>} */
const inspecting = new Set();

async function refreshConnections() {
  const data = await api("GET", "/api/admin/connections");
  setText($("instances-line"), "admin.instancesLine", { instance: data.instance, n: data.instances.length });
  $("partial").hidden = !data.partial;
  const blocks = data.instances.map((/** @type {any} */ inst) => {
    const box = el("div", "instance");
    box.dataset.testid = "instance";
    box.dataset.instance = inst.instance;
    const head = el("h3", "", t("admin.instance", { instance: inst.instance }));
    if (inst.instance === data.instance) head.append(" ", el("span", "tag", t("admin.thisInstance")));
    /** @type {Map<string, number>} */
    const byEndpoint = new Map();
    for (const c of inst.connections) byEndpoint.set(c.endpoint, (byEndpoint.get(c.endpoint) ?? 0) + 1);
    const counts = el(
      "p",
      "muted",
      [t("admin.connCount", { n: inst.connections.length }), ...[...byEndpoint].map(([e, n]) => `${e} ${n}`)]
        .join(" · "),
    );
    counts.dataset.testid = "endpoint-counts";
    const list = el("ul", "rows");
    for (const c of inst.connections) {
      const li = el("li", "row");
      li.dataset.testid = "conn";
      li.dataset.id = c.id;
      li.dataset.endpoint = c.endpoint;
      const line = el("div", "row-line");
      line.append(
        el("span", "chip endpoint", c.endpoint),
        el("code", "id", c.id),
        el("span", "what", connSummary(c)),
      );
      const actions = el("div", "row-actions");
      const open = inspecting.has(c.id);
      actions.append(
        actionButton(open ? "admin.hide" : "admin.inspect", `inspect:${c.id}`, async () => {
          if (inspecting.has(c.id)) inspecting.delete(c.id);
          else inspecting.add(c.id);
          await refreshConnections();
        }, "inspect"),
        actionButton("admin.disconnect", `disconnect:${c.id}`, async () => {
          await api("POST", `/api/admin/connections/${encodeURIComponent(c.id)}/disconnect`);
          notify("info", t("admin.disconnected", { id: c.id }));
          inspecting.delete(c.id);
          await Promise.all([refreshLive(), refreshAudit()]);
        }, "disconnect"),
      );
      li.append(line, actions);
      if (open) {
        const detail = el("pre", "detail", JSON.stringify(c, null, 2));
        detail.dataset.testid = "conn-detail";
        li.append(detail);
      }
      list.append(li);
    }
    if (inst.connections.length === 0) list.append(el("li", "muted", t("admin.noConns")));
    box.append(head, counts, list);
    return box;
  });
  replaceKeepingFocus($("instances"), blocks);
}

async function refreshRooms() {
  const { rooms } = await api("GET", "/api/admin/rooms");
  replaceKeepingFocus(
    $("room-list"),
    rooms.map((/** @type {any} */ r) => {
      const li = el("li", "row");
      li.dataset.testid = "room";
      li.dataset.room = r.room;
      li.append(
        el("div", "row-line", ""),
      );
      /** @type {HTMLElement} */ (li.firstChild).append(
        el("strong", "", `#${r.room}`),
        el("span", "muted", t("admin.members", { n: r.members.length })),
      );
      const members = el("ul", "sub-rows");
      for (const m of r.members) {
        const item = el("li", "sub-row");
        item.dataset.testid = "member";
        item.dataset.member = m.id;
        item.dataset.name = m.name;
        item.append(
          el("span", "what", `${m.name}${m.verified ? " ✓" : ""} · ${m.sockets.length}`),
          actionButton("admin.kick", `kick:${r.room}:${m.id}`, async () => {
            await api("POST", `/api/admin/rooms/${encodeURIComponent(r.room)}/kick`, { member: m.id });
            notify("info", t("admin.kicked", { name: m.name, room: r.room }));
            await Promise.all([refreshLive(), refreshAudit()]);
          }, "kick"),
        );
        members.append(item);
      }
      li.append(members);
      return li;
    }),
  );
}

async function refreshTopics() {
  const { topics } = await api("GET", "/api/admin/topics");
  replaceKeepingFocus(
    $("topic-list"),
    topics.map((/** @type {any} */ tp) => {
      const li = el("li", "row");
      li.dataset.testid = "topic";
      li.dataset.topic = tp.topic;
      const line = el("div", "row-line");
      line.append(
        el("strong", "", tp.topic),
        el("span", "muted", t("admin.subscribers", { n: tp.subscribers.length })),
      );
      const subs = el(
        "p",
        "muted ids",
        tp.subscribers.map((/** @type {any} */ s) => `${s.endpoint} ${s.connId}`).join(", "),
      );
      li.append(line, subs);
      return li;
    }),
  );
}

async function refreshSupport() {
  const { queue, agents } = await api("GET", "/api/admin/support");
  $("queue-count").textContent = String(queue.length);
  replaceKeepingFocus(
    $("queue"),
    queue.map((/** @type {any} */ c) => {
      const li = el("li", "row");
      li.dataset.testid = "queued";
      const text = c.lastMessage?.text ?? "";
      li.append(
        el("div", "row-line", `${c.visitor?.name ?? ""} · ${age(c.createdAt)}`),
        el("p", "muted", text),
      );
      return li;
    }),
  );
  replaceKeepingFocus(
    $("agents"),
    agents.map((/** @type {any} */ a) => {
      const li = el("li", "row");
      li.dataset.testid = "agent";
      li.dataset.username = a.username;
      const status = a.disabled
        ? t("admin.disabledAgent")
        : a.connected
        ? t(a.status === "online" ? "admin.online" : "admin.away")
        : t("admin.offline");
      li.append(el("div", "row-line", `${a.name} (@${a.username}) · ${a.role} · ${status}`));
      li.dataset.connected = String(a.connected);
      return li;
    }),
  );
}

async function refreshSchedules() {
  const { schedules } = await api("GET", "/api/schedules");
  replaceKeepingFocus(
    $("schedule-list"),
    schedules.map((/** @type {any} */ s) => {
      const li = el("li", "row");
      li.dataset.testid = "schedule";
      li.dataset.id = s.id;
      const every = s.every === null ? "" : t("admin.every", {
        every: typeof s.every === "number" ? `${s.every / 1000} s` : s.every,
      });
      const next = s.done ? t("admin.done") : t("admin.next", { time: when(s.nextAt) });
      const line = el("div", "row-line");
      line.append(el("strong", "", s.topic), el("span", "what", [every, next].filter(Boolean).join(" · ")));
      const actions = el("div", "row-actions");
      actions.append(actionButton("admin.delete", `delete:${s.id}`, async () => {
        await api("DELETE", `/api/schedules/${encodeURIComponent(s.id)}`);
        notify("info", t("admin.deleted", { id: s.id }));
        await Promise.all([refreshSchedules(), refreshAudit()]);
      }, "delete-schedule"));
      li.append(line, el("code", "data", JSON.stringify(s.data)), actions);
      return li;
    }),
  );
}

async function refreshDeliveries() {
  const status = /** @type {HTMLSelectElement} */ ($("delivery-status")).value;
  const { deliveries } = await api(
    "GET",
    `/api/webhooks/deliveries?limit=50${status ? `&status=${status}` : ""}`,
  );
  replaceKeepingFocus(
    $("delivery-list"),
    deliveries.map((/** @type {any} */ d) => {
      const li = el("li", "row");
      li.dataset.testid = "delivery";
      li.dataset.id = d.id;
      li.dataset.status = d.status;
      const line = el("div", "row-line");
      line.append(
        el("span", `chip status-${d.status}`, t(`admin.${d.status}`)),
        el("strong", "", d.event),
        el(
          "span",
          "what",
          [
            d.url,
            t("admin.attempts", { n: d.attempts }),
            d.lastStatus === null ? "" : t("admin.lastStatus", { status: d.lastStatus }),
            d.lastError ?? "",
            when(d.createdAt),
          ].filter(Boolean).join(" · "),
        ),
      );
      li.append(line);
      if (d.status !== "delivered") {
        const actions = el("div", "row-actions");
        actions.append(actionButton("admin.retry", `retry:${d.id}`, async () => {
          await api("POST", `/api/webhooks/deliveries/${encodeURIComponent(d.id)}/retry`);
          notify("info", t("admin.retried", { id: d.id }));
          await Promise.all([refreshDeliveries(), refreshAudit()]);
        }, "retry"));
        li.append(actions);
      }
      return li;
    }),
  );
}
$("delivery-status").addEventListener("change", () => refreshDeliveries().catch(() => {}));

/** The oldest entry shown, for "Older entries". @type {string | undefined} */
let auditOldest;

/** @param {any} e */
function auditItem(e) {
  const li = el("li", "row");
  li.dataset.testid = "audit-entry";
  li.dataset.action = e.action;
  li.dataset.target = e.target;
  const line = el("div", "row-line");
  line.append(
    el("time", "when", when(e.at)),
    el("strong", "", e.action),
    el("code", "id", e.target),
    el("span", "what", `${e.actor} · ${e.instance}`),
  );
  const detail = Object.keys(e.detail ?? {}).length ? el("code", "data", JSON.stringify(e.detail)) : "";
  li.append(line, detail);
  return li;
}

async function refreshAudit() {
  const { entries } = await api("GET", "/api/admin/audit?limit=50");
  $("audit-list").replaceChildren(...entries.map(auditItem));
  auditOldest = entries.at(-1)?.at;
  $("audit-more").hidden = entries.length < 50;
}

$("audit-more").addEventListener("click", async () => {
  if (!auditOldest) return;
  const { entries } = await api("GET", `/api/admin/audit?limit=50&before=${encodeURIComponent(auditOldest)}`);
  $("audit-list").append(...entries.map(auditItem));
  auditOldest = entries.at(-1)?.at ?? auditOldest;
  $("audit-more").hidden = entries.length < 50;
});

let refreshing = false;

/** The live lists: connections, rooms, topics, support. */
async function refreshLive() {
  if (refreshing) return;
  refreshing = true;
  try {
    await Promise.all([refreshConnections(), refreshRooms(), refreshTopics(), refreshSupport()]);
    setText($("refreshed"), "admin.refreshed", { time: new Date().toLocaleTimeString() });
  } catch (err) {
    if (!(err instanceof ApiError)) setText($("refreshed"), "admin.offlineNote");
  } finally {
    refreshing = false;
  }
}

async function refreshAll() {
  await Promise.all([
    refreshLive(),
    refreshSchedules().catch(() => {}),
    refreshDeliveries().catch(() => {}),
    refreshAudit().catch(() => {}),
  ]);
}
$("refresh").addEventListener("click", () => refreshAll());
// Texts built here are in the page's language; rebuild them after a switch.
onLangChange(() => {
  if (!$("console-view").hidden) refreshAll();
});

// ---- test publication ----

$("publish-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const out = $("pub-result");
  const topic = /** @type {HTMLInputElement} */ ($("pub-topic")).value.trim();
  if (!TOPIC_RE.test(topic)) return setText(out, "admin.badTopic");
  let data;
  try {
    data = JSON.parse(/** @type {HTMLTextAreaElement} */ ($("pub-data")).value);
  } catch {
    return setText(out, "admin.badJson");
  }
  const button = /** @type {HTMLButtonElement} */ ($("pub-send"));
  button.disabled = true;
  try {
    const res = await api("POST", "/api/admin/publish", { topic, data });
    setText(out, "admin.published", { id: res.id, n: res.delivered });
    await refreshAudit();
  } catch (err) {
    setText(out, "");
    out.textContent = /** @type {Error} */ (err).message;
  } finally {
    button.disabled = false;
  }
});

// ---- data requests ----

const visitorPath = () =>
  `/api/support/visitors/${
    encodeURIComponent(/** @type {HTMLInputElement} */ ($("data-visitor")).value.trim())
  }`;

$("data-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const out = $("data-result");
  $("data-confirm").hidden = true;
  if (!/** @type {HTMLInputElement} */ ($("data-visitor")).value.trim()) {
    return setText(out, "admin.needVisitor");
  }
  try {
    const res = await fetch(`${visitorPath()}/export`, { headers: { accept: "application/json" } });
    const text = await res.text();
    if (!res.ok) throw new Error(JSON.parse(text)?.message ?? `HTTP ${res.status}`);
    const data = JSON.parse(text);
    // The file the browser saves is the server's answer as it came.
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
    link.download = `visitor-${data.visitor.id}.json`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    setText(out, "admin.exported", { n: data.conversations.length, files: data.uploads.length });
    await refreshAudit();
  } catch (err) {
    setText(out, "");
    out.textContent = /** @type {Error} */ (err).message;
  }
});

$("data-delete").addEventListener("click", () => {
  const out = $("data-result");
  if (!/** @type {HTMLInputElement} */ ($("data-visitor")).value.trim()) {
    return setText(out, "admin.needVisitor");
  }
  setText(out, "admin.reallyDelete");
  $("data-confirm").hidden = false;
  $("data-confirm").focus();
});

$("data-confirm").addEventListener("click", async () => {
  const out = $("data-result");
  $("data-confirm").hidden = true;
  try {
    const res = await api("DELETE", visitorPath());
    setText(out, "admin.visitorDeleted", {
      c: res.deleted.conversations,
      m: res.deleted.messages,
      u: res.deleted.uploads,
    });
    await refreshAudit();
  } catch (err) {
    setText(out, "");
    out.textContent = /** @type {Error} */ (err).message;
  }
});

start();
