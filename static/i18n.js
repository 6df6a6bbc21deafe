/**
 * Chinese and English for every page: one dictionary, a `t()` lookup, and `data-i18n*` attributes that
 * {@linkcode applyI18n} fills. The language comes from `?lang=`, then localStorage, then the browser.
 *
 * @module
 */

/** @typedef {"en" | "zh"} Lang */

const STORAGE_KEY = "switchboard.lang";

/** @type {Record<Lang, Record<string, string>>} */
export const dict = {
  en: {
    "lang.toggle": "中文",
    "lang.toggleTitle": "切换到中文",
    "app.name": "Switchboard",
    "nav.home": "Home",
    "state.connecting": "Connecting…",
    "state.open": "Connected",
    "state.reconnecting": "Reconnecting in {s}s",
    "state.closed": "Closed",
    "log.title": "Frames",
    "log.clear": "Clear",
    "log.queued": "queued",
    "log.binary": "binary, {n} bytes",
    "send": "Send",
    "error.frame": "Error {code}: {message}",
    "notice.dismiss": "Dismiss",

    "index.title": "Switchboard",
    "index.intro":
      "A real-time server: WebSocket echo, server push, chat rooms and customer service on one port.",
    "index.echo": "Echo",
    "index.echoDesc": "Send frames and see every one come back unchanged.",
    "index.push": "Push",
    "index.pushDesc": "The server time, pushed every second, and topic subscriptions.",
    "index.chat": "Chat",
    "index.chatDesc": "Chat rooms with history, presence and typing indicators.",
    "index.support": "Support",
    "index.supportDesc": "A demo shop with a customer-service chat.",
    "index.agent": "Agent console",
    "index.agentDesc": "Where customer-service agents answer the shop's visitors.",
    "index.admin": "Admin console",
    "index.adminDesc": "For admins: live connections, rooms, topics, schedules, webhooks and the audit log.",
    "index.selfcheck": "Self-check",
    "index.selfcheckDesc": "Checks WebSocket, SSE, wss and the clock through your proxy.",

    "echo.title": "Echo · Switchboard",
    "echo.heading": "Echo",
    "echo.placeholder": "Type a message",
    "echo.binary": "Send as binary",

    "push.title": "Push · Switchboard",
    "push.heading": "Push",
    "push.time": "Server time",
    "push.topics": "Topics",
    "push.topicPlaceholder": "topic, e.g. news.sports",
    "push.subscribe": "Subscribe",
    "push.unsubscribe": "Unsubscribe",
    "push.noTopics": "No subscriptions yet.",
    "push.badTopic": "A topic is 1–128 letters, digits, “.”, “-”, “_” or “:”.",
    "push.publications": "Publications",
    "push.noPublications": "Nothing published yet.",

    "chat.title": "Chat · Switchboard",
    "chat.heading": "Chat",
    "chat.room": "Room",
    "chat.name": "Your name",
    "chat.join": "Join",
    "chat.leave": "Leave",
    "chat.rooms": "Rooms",
    "chat.noRooms": "No rooms yet: pick any name.",
    "chat.roomOnline": "{n} online",
    "chat.badRoom": "A room name is 1–64 letters, digits, “-”, “_” or “.”.",
    "chat.badName": "A name is 1–32 characters.",
    "chat.members": "Online ({n})",
    "chat.verified": "Verified by the site",
    "chat.verifiedMark": " ✓",
    "chat.you": "(you)",
    "chat.placeholder": "Message…",
    "chat.loadOlder": "Load older messages",
    "chat.noOlder": "This is the beginning of the room.",
    "chat.loadFailed": "Could not load messages ({status}).",
    "chat.truncated": "Some messages could not be recovered.",
    "chat.loadMissing": "Load missing messages",
    "chat.joined": "{name} joined",
    "chat.left": "{name} left",
    "chat.typing1": "{a} is typing…",
    "chat.typing2": "{a} and {b} are typing…",
    "chat.typingMany": "Several people are typing…",
    "chat.pending": "sending…",
    "chat.failed": "not sent",
    "chat.retry": "Retry",
    "chat.discard": "Discard",
    "chat.tooLong": "A message is at most {n} characters.",
    "chat.err.bad_json": "The server could not read a frame.",
    "chat.err.unknown_type": "The server does not know that frame type.",
    "chat.err.bad_message": "The message was rejected.",
    "chat.err.too_large": "The message is too long.",
    "chat.err.rate_limited": "You are sending too fast; slow down.",

    "upload.attach": "Attach files",
    "upload.dropHint": "Drop files here to attach them",
    "upload.remove": "Remove this file",
    "upload.progress": "Upload progress",
    "upload.busy": "Wait until the files have finished uploading.",
    "upload.download": "Download",
    "upload.close": "Close",
    "upload.one": "📎 {name}",
    "upload.many": "📎 {n} files",
    "upload.gone": "An attached file is missing or expired; remove it and attach it again.",
    "upload.loadFailed": "The file could not be loaded; try again.",
    "upload.err.too_large": "The file is too large: the limit is {max}.",
    "upload.err.unsupported_type":
      "This type of file cannot be sent. Allowed: images (PNG, JPEG, GIF, WebP), PDF, plain text or CSV, and Word, Excel, PowerPoint or OpenDocument files.",
    "upload.err.rate_limited": "Too many uploads; try again in a minute.",
    "upload.err.unauthorized": "Not allowed to upload; reload the page and try again.",
    "upload.err.empty": "The file is empty.",
    "upload.err.too_many": "At most {n} files per message.",
    "upload.err.network": "The upload failed; check the connection and try again.",
    "upload.err.other": "The upload failed: {message}",
  },
  zh: {
    "lang.toggle": "EN",
    "lang.toggleTitle": "Switch to English",
    "app.name": "Switchboard",
    "nav.home": "首页",
    "state.connecting": "连接中…",
    "state.open": "已连接",
    "state.reconnecting": "{s} 秒后重连",
    "state.closed": "已关闭",
    "log.title": "帧记录",
    "log.clear": "清空",
    "log.queued": "排队中",
    "log.binary": "二进制，{n} 字节",
    "send": "发送",
    "error.frame": "错误 {code}：{message}",
    "notice.dismiss": "关闭",

    "index.title": "Switchboard",
    "index.intro": "一个实时服务器：WebSocket 回显、服务器推送、聊天室和客服，全部在同一个端口。",
    "index.echo": "回显",
    "index.echoDesc": "发送消息帧，每一帧都会原样返回。",
    "index.push": "推送",
    "index.pushDesc": "服务器每秒推送当前时间，并支持主题订阅。",
    "index.chat": "聊天室",
    "index.chatDesc": "带历史记录、在线成员和输入提示的聊天室。",
    "index.support": "客服",
    "index.supportDesc": "带在线客服聊天的演示商店。",
    "index.agent": "客服工作台",
    "index.agentDesc": "客服人员在这里回复商店访客。",
    "index.admin": "管理控制台",
    "index.adminDesc": "管理员专用：实时连接、聊天室、主题、定时推送、Webhook 与审计日志。",
    "index.selfcheck": "自检",
    "index.selfcheckDesc": "经由代理检查 WebSocket、SSE、wss 与时钟。",

    "echo.title": "回显 · Switchboard",
    "echo.heading": "回显",
    "echo.placeholder": "输入消息",
    "echo.binary": "以二进制发送",

    "push.title": "推送 · Switchboard",
    "push.heading": "推送",
    "push.time": "服务器时间",
    "push.topics": "主题",
    "push.topicPlaceholder": "主题，例如 news.sports",
    "push.subscribe": "订阅",
    "push.unsubscribe": "取消订阅",
    "push.noTopics": "尚未订阅任何主题。",
    "push.badTopic": "主题由 1–128 个字母、数字、“.”、“-”、“_”或“:”组成。",
    "push.publications": "收到的发布",
    "push.noPublications": "还没有收到发布。",

    "chat.title": "聊天室 · Switchboard",
    "chat.heading": "聊天室",
    "chat.room": "房间",
    "chat.name": "你的名字",
    "chat.join": "加入",
    "chat.leave": "离开",
    "chat.rooms": "房间列表",
    "chat.noRooms": "还没有房间：随便起个名字吧。",
    "chat.roomOnline": "{n} 人在线",
    "chat.badRoom": "房间名由 1–64 个字母、数字、“-”、“_”或“.”组成。",
    "chat.badName": "名字为 1–32 个字符。",
    "chat.members": "在线（{n}）",
    "chat.verified": "网站已验证身份",
    "chat.verifiedMark": " ✓",
    "chat.you": "（你）",
    "chat.placeholder": "输入消息…",
    "chat.loadOlder": "加载更早的消息",
    "chat.noOlder": "已经到房间的最开始了。",
    "chat.loadFailed": "无法加载消息（{status}）。",
    "chat.truncated": "部分消息未能恢复。",
    "chat.loadMissing": "加载缺失的消息",
    "chat.joined": "{name} 加入了",
    "chat.left": "{name} 离开了",
    "chat.typing1": "{a} 正在输入…",
    "chat.typing2": "{a} 和 {b} 正在输入…",
    "chat.typingMany": "好几个人正在输入…",
    "chat.pending": "发送中…",
    "chat.failed": "未发送",
    "chat.retry": "重试",
    "chat.discard": "放弃",
    "chat.tooLong": "消息最多 {n} 个字符。",
    "chat.err.bad_json": "服务器无法解析消息帧。",
    "chat.err.unknown_type": "服务器不认识这种消息类型。",
    "chat.err.bad_message": "消息被拒绝。",
    "chat.err.too_large": "消息太长。",
    "chat.err.rate_limited": "发送太快了，请慢一点。",

    "upload.attach": "添加附件",
    "upload.dropHint": "把文件拖到这里即可添加为附件",
    "upload.remove": "移除这个文件",
    "upload.progress": "上传进度",
    "upload.busy": "请等文件上传完成后再发送。",
    "upload.download": "下载",
    "upload.close": "关闭",
    "upload.one": "📎 {name}",
    "upload.many": "📎 {n} 个文件",
    "upload.gone": "有附件已丢失或过期；请移除后重新添加。",
    "upload.loadFailed": "文件无法加载，请重试。",
    "upload.err.too_large": "文件太大：最大 {max}。",
    "upload.err.unsupported_type":
      "不能发送这种类型的文件。支持：图片（PNG、JPEG、GIF、WebP）、PDF、纯文本或 CSV，以及 Word、Excel、PowerPoint 或 OpenDocument 文件。",
    "upload.err.rate_limited": "上传次数太多，请一分钟后再试。",
    "upload.err.unauthorized": "无权上传；请刷新页面后重试。",
    "upload.err.empty": "文件是空的。",
    "upload.err.too_many": "每条消息最多 {n} 个文件。",
    "upload.err.network": "上传失败，请检查网络后重试。",
    "upload.err.other": "上传失败：{message}",
  },
};

/** @type {Lang} */
let current = "en";
/** @type {Set<(lang: Lang) => void>} */
const listeners = new Set();

/** @param {unknown} v @returns {Lang | undefined} */
function normalize(v) {
  if (typeof v !== "string") return undefined;
  const s = v.toLowerCase();
  if (s.startsWith("zh")) return "zh";
  if (s.startsWith("en")) return "en";
  return undefined;
}

function stored() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage can be disabled; the language just is not remembered
  }
}

/**
 * The language to use: `?lang=` in the page URL, else the one saved in localStorage, else the first of
 * `navigator.languages` that is Chinese or English, else English.
 *
 * @returns {Lang}
 */
export function pickLang() {
  const fromQuery = normalize(new URLSearchParams(location.search).get("lang"));
  if (fromQuery) return fromQuery;
  const fromStorage = normalize(stored());
  if (fromStorage) return fromStorage;
  for (const l of navigator.languages ?? [navigator.language]) {
    const n = normalize(l);
    if (n) return n;
  }
  return "en";
}

/**
 * The current language.
 *
 * @returns {Lang}
 */
export function lang() {
  return current;
}

/**
 * Translates `key`, replacing `{name}` placeholders with `params.name`. An unknown key falls back to English,
 * then to the key itself, so a missing string is visible but never breaks the page.
 *
 * @param {string} key
 * @param {Record<string, string | number>} [params]
 * @returns {string}
 */
export function t(key, params = {}) {
  const text = dict[current][key] ?? dict.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/**
 * Adds page-specific strings, so later pages can keep their words next to their code.
 *
 * @param {Partial<Record<Lang, Record<string, string>>>} more
 */
export function extend(more) {
  for (const l of /** @type {Lang[]} */ (["en", "zh"])) Object.assign(dict[l], more[l] ?? {});
}

/**
 * Fills every element below `root` that names a key: `data-i18n` (text, with the JSON `data-i18n-args` as
 * parameters), `data-i18n-placeholder`,
 * `data-i18n-title` and `data-i18n-aria-label`. Also sets `<html lang>` and the document title.
 *
 * @param {ParentNode} [root]
 */
export function applyI18n(root = document) {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) {
    const { i18n = "", i18nArgs } = /** @type {HTMLElement} */ (el).dataset;
    el.textContent = t(i18n, i18nArgs ? JSON.parse(i18nArgs) : {});
  }
  for (
    const [attr, data] of [["placeholder", "i18nPlaceholder"], ["title", "i18nTitle"], [
      "aria-label",
      "i18nAriaLabel",
    ]]
  ) {
    for (const el of root.querySelectorAll(`[data-i18n-${attr}]`)) {
      el.setAttribute(attr, t(/** @type {HTMLElement} */ (el).dataset[data] ?? ""));
    }
  }
  const title = document.querySelector("title[data-i18n]");
  if (title) document.title = title.textContent ?? "";
}

/**
 * Sets an element's text to a translation and remembers the key and parameters, so a language switch rewrites
 * it. An empty `key` clears the text.
 *
 * @param {HTMLElement} el
 * @param {string} key
 * @param {Record<string, string | number>} [params]
 */
export function setText(el, key, params) {
  if (!key) {
    delete el.dataset.i18n;
    delete el.dataset.i18nArgs;
    el.textContent = "";
    return;
  }
  el.dataset.i18n = key;
  if (params) el.dataset.i18nArgs = JSON.stringify(params);
  else delete el.dataset.i18nArgs;
  el.textContent = t(key, params);
}

/**
 * Switches the language: saves it, rewrites a `?lang=` already in the URL, re-applies the page's strings and
 * tells every {@linkcode onLangChange} listener.
 *
 * @param {Lang} next
 */
export function setLang(next) {
  current = normalize(next) ?? "en";
  try {
    localStorage.setItem(STORAGE_KEY, current);
  } catch {
    // not remembered, still switched
  }
  const url = new URL(location.href);
  if (url.searchParams.has("lang")) {
    url.searchParams.set("lang", current);
    history.replaceState(history.state, "", url);
  }
  applyI18n();
  for (const fn of listeners) fn(current);
}

/**
 * Calls `fn` after every language switch (for text the page builds itself).
 *
 * @param {(lang: Lang) => void} fn
 * @returns {() => void} a function that removes the listener
 */
export function onLangChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/**
 * Picks the language, applies it, and makes `button` (default `#lang`) toggle between Chinese and English.
 *
 * @param {HTMLElement | null} [button]
 */
export function initI18n(button = document.getElementById("lang")) {
  current = pickLang();
  applyI18n();
  button?.addEventListener("click", () => setLang(current === "zh" ? "en" : "zh"));
}
