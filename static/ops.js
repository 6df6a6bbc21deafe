/**
 * The console's admin views for running the desk: Reports (`GET /api/support/reports`, with a uPlot chart of
 * conversations and first-response time per day, and a CSV download) and Business hours
 * (`GET`/`PUT /api/support/settings`). Both speak through the agent's session cookie; the server refuses
 * anyone but an admin, and its message is shown as it comes.
 *
 * @module
 */
import { extend, onLangChange, t } from "./i18n.js";
import { el } from "./ui.js";

extend({
  en: {
    "ops.reports": "Reports",
    "ops.hours": "Business hours",
    "ops.from": "From",
    "ops.to": "To",
    "ops.timeZone": "Time zone",
    "ops.show": "Show",
    "ops.csv": "Download CSV",
    "ops.loading": "Loading…",
    "ops.failed": "The request failed ({status}).",
    "ops.offline": "The server cannot be reached.",
    "ops.chartLabel": "Conversations and median first response per day",
    "ops.agent": "Agent",
    "ops.conversations": "Conversations",
    "ops.answered": "Answered",
    "ops.closed": "Closed",
    "ops.offlineCount": "Left offline",
    "ops.offlineLabel": "Offline message",
    "ops.firstResponse": "First response (median / p90)",
    "ops.resolution": "Resolution (median / p90)",
    "ops.csat": "CSAT",
    "ops.csatValue": "{avg} / 5 ({n} ratings)",
    "ops.stars": "{k}★: {n}",
    "ops.none": "—",
    "ops.seriesConversations": "Conversations",
    "ops.seriesFirstResponse": "First response median (min)",
    "ops.noAgents": "No agent handled a conversation in this range.",
    "ops.hoursEnabled": "Use business hours (outside them, visitors leave a message)",
    "ops.week": "Opening hours (e.g. 09:00-12:00, 13:00-18:00; empty = closed)",
    "ops.closedDates": "Closed dates (YYYY-MM-DD, one per line)",
    "ops.welcomeEn": "Welcome (English)",
    "ops.welcomeZh": "Welcome (Chinese)",
    "ops.offlineNoAgents": "Also offer the form when no agent is online",
    "ops.saved": "Saved.",
    "ops.badRanges": "{day}: write ranges as 09:00-18:00, separated by commas.",
    "ops.closedDay": "Closed",
    "ops.day.mon": "Monday",
    "ops.day.tue": "Tuesday",
    "ops.day.wed": "Wednesday",
    "ops.day.thu": "Thursday",
    "ops.day.fri": "Friday",
    "ops.day.sat": "Saturday",
    "ops.day.sun": "Sunday",
    "ops.s": "{s} s",
    "ops.ms": "{m} min {s} s",
    "ops.hm": "{h} h {m} min",
  },
  zh: {
    "ops.reports": "报表",
    "ops.hours": "营业时间",
    "ops.from": "开始",
    "ops.to": "结束",
    "ops.timeZone": "时区",
    "ops.show": "查看",
    "ops.csv": "下载 CSV",
    "ops.loading": "加载中…",
    "ops.failed": "请求失败（{status}）。",
    "ops.offline": "无法连接服务器。",
    "ops.chartLabel": "每天的会话数和首次响应时间中位数",
    "ops.agent": "客服",
    "ops.conversations": "会话",
    "ops.answered": "已回复",
    "ops.closed": "已结束",
    "ops.offlineCount": "离线留言",
    "ops.offlineLabel": "离线留言",
    "ops.firstResponse": "首次响应（中位数 / p90）",
    "ops.resolution": "解决时长（中位数 / p90）",
    "ops.csat": "满意度",
    "ops.csatValue": "{avg} / 5（{n} 个评分）",
    "ops.stars": "{k}★：{n}",
    "ops.none": "—",
    "ops.seriesConversations": "会话",
    "ops.seriesFirstResponse": "首次响应中位数（分钟）",
    "ops.noAgents": "这段时间没有客服处理会话。",
    "ops.hoursEnabled": "启用营业时间（非营业时间访客可以留言）",
    "ops.week": "营业时间（例如 09:00-12:00, 13:00-18:00；留空为休息）",
    "ops.closedDates": "休息日（YYYY-MM-DD，每行一个）",
    "ops.welcomeEn": "欢迎语（英文）",
    "ops.welcomeZh": "欢迎语（中文）",
    "ops.offlineNoAgents": "没有客服在线时也显示留言表单",
    "ops.saved": "已保存。",
    "ops.badRanges": "{day}：请按 09:00-18:00 的格式填写，多个时段用逗号分隔。",
    "ops.closedDay": "休息",
    "ops.day.mon": "星期一",
    "ops.day.tue": "星期二",
    "ops.day.wed": "星期三",
    "ops.day.thu": "星期四",
    "ops.day.fri": "星期五",
    "ops.day.sat": "星期六",
    "ops.day.sun": "星期日",
    "ops.s": "{s}秒",
    "ops.ms": "{m}分{s}秒",
    "ops.hm": "{h}小时{m}分",
  },
});

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
/** @param {string} id */
const input = (id) => /** @type {HTMLInputElement} */ ($(id));

/**
 * Calls an API; a refusal shows the server's words in `errorBox`.
 *
 * @param {HTMLElement} errorBox
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 */
async function api(errorBox, method, path, body) {
  errorBox.hidden = true;
  try {
    const res = await fetch(path, {
      method,
      headers: { accept: "application/json", ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const answer = await res.json().catch(() => ({}));
    if (res.ok) return answer;
    errorBox.textContent = answer?.message || t("ops.failed", { status: res.status });
  } catch {
    errorBox.textContent = t("ops.offline");
  }
  errorBox.hidden = false;
  return null;
}

/**
 * A duration in seconds as people read it: "45 s", "1 min 30 s", "2 h 5 min".
 *
 * @param {number | null | undefined} s
 */
export function duration(s) {
  if (s === null || s === undefined) return t("ops.none");
  const total = Math.round(s);
  if (total < 60) return t("ops.s", { s: total });
  if (total < 3600) return t("ops.ms", { m: Math.floor(total / 60), s: total % 60 });
  return t("ops.hm", { h: Math.floor(total / 3600), m: Math.floor((total % 3600) / 60) });
}

/** @param {{medianS: number | null, p90S: number | null}} d */
const pair = (d) => `${duration(d.medianS)} / ${duration(d.p90S)}`;

/** @param {{count: number, average: number | null}} c */
const csat = (c) => c.average === null ? t("ops.none") : t("ops.csatValue", { avg: c.average, n: c.count });

/** The date `days` before today, as `YYYY-MM-DD` in the browser's zone. */
function dateBefore(days) {
  const d = new Date(Date.now() - days * 86_400_000);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${
    String(d.getDate()).padStart(2, "0")
  }`;
}

// ---- Reports ----

/** @type {any} */
let lastReport = null;
/** @type {any} */
let chart = null;

function reportQuery() {
  const q = new URLSearchParams({
    from: input("report-from").value,
    to: input("report-to").value,
    tz: input("report-tz").value.trim(),
  });
  return q.toString();
}

async function loadReport() {
  const query = reportQuery();
  /** @type {HTMLAnchorElement} */ ($("report-csv")).href = `/api/support/reports?${query}&format=csv`;
  $("reports-status").textContent = t("ops.loading");
  const report = await api($("reports-error"), "GET", `/api/support/reports?${query}`);
  $("reports-status").textContent = "";
  if (!report) return;
  lastReport = report;
  renderReport(report);
}

/** @param {any} r */
function renderReport(r) {
  const o = r.overall;
  const overall = $("report-overall");
  overall.replaceChildren();
  const stat = (/** @type {string} */ key, /** @type {string} */ value, /** @type {string} */ id) => {
    const box = el("div", "ops-stat");
    box.dataset.testid = `stat-${id}`;
    box.append(el("dt", "", t(key)), el("dd", "", value));
    overall.append(box);
  };
  stat("ops.conversations", String(o.conversations), "conversations");
  stat("ops.answered", String(o.answered), "answered");
  stat("ops.closed", String(o.closed), "closed");
  stat("ops.offlineCount", String(o.offline), "offline");
  stat("ops.firstResponse", pair(o.firstResponse), "first-response");
  stat("ops.resolution", pair(o.resolution), "resolution");
  stat("ops.csat", csat(o.csat), "csat");
  const stars = Object.entries(o.csat.distribution).reverse().map(([k, n]) => t("ops.stars", { k, n })).join(
    " · ",
  );
  stat("ops.csat", stars, "csat-distribution");

  const body = /** @type {HTMLTableSectionElement} */ ($("report-agents").querySelector("tbody"));
  body.replaceChildren();
  for (const a of r.agents) {
    const row = el("tr");
    row.dataset.username = a.agent.username;
    const who = el("th", "", a.agent.name || a.agent.username);
    who.setAttribute("scope", "row");
    row.append(
      who,
      el("td", "", String(a.conversations)),
      el("td", "", pair(a.firstResponse)),
      el("td", "", pair(a.resolution)),
      el("td", "", csat(a.csat)),
    );
    body.append(row);
  }
  if (r.agents.length === 0) {
    const row = el("tr");
    const cell = el("td", "muted", t("ops.noAgents"));
    cell.setAttribute("colspan", "5");
    row.append(cell);
    body.append(row);
  }
  void drawChart(r);
}

/** @param {any} r */
async function drawChart(r) {
  const box = $("report-chart");
  const { default: uPlot } = await import("/vendor/uplot.js");
  chart?.destroy();
  box.replaceChildren();
  // x: each day at noon UTC, so the axis shows the right date in any browser zone.
  const xs = r.days.map((/** @type {any} */ d) => Date.parse(`${d.date}T12:00:00Z`) / 1000);
  const conversations = r.days.map((/** @type {any} */ d) => d.conversations);
  const firstResponse = r.days.map((/** @type {any} */ d) =>
    d.firstResponseMedianS === null ? null : Math.round(d.firstResponseMedianS / 6) / 10
  );
  const width = Math.max(260, box.clientWidth || 600);
  chart = new uPlot(
    {
      width,
      height: 220,
      scales: { x: { time: true }, n: { auto: true }, min: { auto: true } },
      axes: [
        {},
        { scale: "n", label: t("ops.seriesConversations") },
        { scale: "min", side: 1, label: t("ops.seriesFirstResponse"), grid: { show: false } },
      ],
      series: [
        {},
        {
          label: t("ops.seriesConversations"),
          scale: "n",
          stroke: "#2f6fdf",
          fill: "rgba(47,111,223,0.12)",
          width: 2,
        },
        { label: t("ops.seriesFirstResponse"), scale: "min", stroke: "#c2410c", width: 2, spanGaps: true },
      ],
    },
    [xs, conversations, firstResponse],
    box,
  );
}

// ---- Business hours ----

/** @type {any} */
let settings = null;

function renderDays() {
  const box = $("hours-days");
  box.replaceChildren();
  for (const day of DAYS) {
    const label = el("label", "ops-day");
    const field = /** @type {HTMLInputElement} */ (el("input"));
    field.type = "text";
    field.id = `hours-${day}`;
    field.dataset.testid = `hours-${day}`;
    field.dataset.day = day;
    field.autocomplete = "off";
    field.spellcheck = false;
    field.maxLength = 100;
    field.placeholder = t("ops.closedDay");
    label.append(el("span", "", t(`ops.day.${day}`)), field);
    box.append(label);
  }
}

/** @param {any} s */
function fillHours(s) {
  settings = s;
  input("hours-enabled").checked = s.hours.enabled;
  input("hours-tz").value = s.hours.timeZone;
  for (const day of DAYS) {
    input(`hours-${day}`).value = (s.hours.days[day] ?? []).map((/** @type {string[]} */ r) => r.join("-"))
      .join(
        ", ",
      );
  }
  /** @type {HTMLTextAreaElement} */ ($("hours-closed")).value = s.hours.closedDates.join("\n");
  /** @type {HTMLTextAreaElement} */ ($("welcome-en")).value = s.welcome.en;
  /** @type {HTMLTextAreaElement} */ ($("welcome-zh")).value = s.welcome.zh;
  input("offline-no-agents").checked = s.offlineWhenNoAgents;
}

/** The form as settings, or a message naming the day whose ranges do not parse. */
function readHours() {
  /** @type {Record<string, string[][]>} */
  const days = {};
  for (const day of DAYS) {
    const raw = input(`hours-${day}`).value.trim();
    if (raw === "") {
      days[day] = [];
      continue;
    }
    const ranges = raw.split(/[,，;；]\s*/).map((part) => part.trim().split(/\s*[-–~～]\s*/));
    if (ranges.some((r) => r.length !== 2 || r.some((x) => !/^\d{1,2}:\d{2}$/.test(x)))) {
      return t("ops.badRanges", { day: t(`ops.day.${day}`) });
    }
    days[day] = ranges.map((r) => r.map((x) => x.padStart(5, "0")));
  }
  const closed = /** @type {HTMLTextAreaElement} */ ($("hours-closed")).value.split(/[\s,，]+/).filter((d) =>
    d
  );
  return {
    hours: {
      enabled: input("hours-enabled").checked,
      timeZone: input("hours-tz").value.trim(),
      days,
      closedDates: closed,
    },
    welcome: {
      en: /** @type {HTMLTextAreaElement} */ ($("welcome-en")).value,
      zh: /** @type {HTMLTextAreaElement} */ ($("welcome-zh")).value,
    },
    offlineWhenNoAgents: input("offline-no-agents").checked,
  };
}

/**
 * Wires the Reports and Business hours buttons and dialogs; {@linkcode showOps} shows the buttons to admins.
 */
export function wireOps() {
  const reports = /** @type {HTMLDialogElement} */ ($("reports-dialog"));
  const hours = /** @type {HTMLDialogElement} */ ($("hours-dialog"));
  input("report-from").value = dateBefore(6);
  input("report-to").value = dateBefore(0);
  input("report-tz").value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  renderDays();

  $("open-reports").addEventListener("click", () => {
    reports.showModal();
    void loadReport();
  });
  $("reports-close").addEventListener("click", () => reports.close());
  $("reports-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void loadReport();
  });

  $("open-hours").addEventListener("click", async () => {
    $("hours-status").textContent = "";
    hours.showModal();
    const s = await api($("hours-error"), "GET", "/api/support/settings");
    if (s) fillHours(s);
  });
  $("hours-close").addEventListener("click", () => hours.close());
  $("hours-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("hours-status").textContent = "";
    const next = readHours();
    if (typeof next === "string") {
      $("hours-error").textContent = next;
      $("hours-error").hidden = false;
      return;
    }
    const button = /** @type {HTMLButtonElement} */ ($("hours-save"));
    button.disabled = true;
    const saved = await api($("hours-error"), "PUT", "/api/support/settings", next);
    button.disabled = false;
    if (saved) {
      fillHours(saved);
      $("hours-status").textContent = t("ops.saved");
    }
  });

  onLangChange(() => {
    renderDays();
    if (settings) fillHours(settings);
    if (lastReport && reports.open) renderReport(lastReport);
  });
}

/**
 * Shows the buttons to admins only (the APIs refuse everyone else anyway).
 *
 * @param {boolean} admin
 */
export function showOps(admin) {
  $("open-reports").hidden = !admin;
  $("open-hours").hidden = !admin;
}
