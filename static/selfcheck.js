/**
 * The self-check page (`/selfcheck.html`, issue #14): is the path from this browser to the server sound?
 *
 * - WebSocket: an upgrade to `/ws/echo` works and a frame comes back (a proxy without `Upgrade` forwarding fails).
 * - wss: under https the sockets use `wss:`, and the server learns it was https (`X-Forwarded-Proto`).
 * - SSE: `/sse/selfcheck` sends events 300 ms apart; they must arrive spaced, not all at once (a buffering
 *   proxy holds them until the end).
 * - Clock: the server's clock against this browser's, from `/api/selfcheck/time`, allowing for the round trip.
 *
 * @module
 */
import { connect, socketUrl } from "./client.js";
import { extend, initI18n, setText } from "./i18n.js";
import { stateBadge } from "./ui.js";

extend({
  en: {
    "check.title": "Self-check · Switchboard",
    "check.heading": "Self-check",
    "check.intro": "Checks the path from this browser to the server: through every proxy in between.",
    "check.running": "Checking…",
    "check.passed": "All checks passed",
    "check.failed": "{n} check(s) failed",
    "check.rerun": "Run again",
    "check.admin": "Admin console",
    "check.ws": "WebSocket upgrade",
    "check.wss": "Secure sockets (wss)",
    "check.sse": "Server-Sent Events not buffered",
    "check.clock": "Clock skew",
    "verdict.running": "…",
    "verdict.pass": "OK",
    "verdict.fail": "Failed",
    "verdict.warn": "Warning",
    "verdict.skip": "Not needed",
    "check.wsOk": "{url}: the frame came back in {ms} ms.",
    "check.wsClosed":
      "{url}: closed with {code} before the echo. Does the proxy forward Upgrade and Connection?",
    "check.wsTimeout": "{url}: no echo within 5 s.",
    "check.wssOk": "The page is https and sockets use {url}.",
    "check.wssHttp": "The page is plain http, so sockets use ws:. Serve it over https in production.",
    "check.wssNoForward":
      "The page is https but the server saw {proto}: the proxy should send X-Forwarded-Proto: https (or session cookies are not marked Secure).",
    "check.wssWrong": "The page is https but the socket URL is {url}.",
    "check.sseOk": "{n} events arrived over {ms} ms, as sent.",
    "check.sseBuffered": "{n} events arrived within {ms} ms: something between buffers the stream.",
    "check.sseError": "The event stream failed ({n} of 4 events). Does the proxy pass text/event-stream?",
    "check.clockOk": "The server's clock is {skew} ms from this browser's (round trip {rtt} ms).",
    "check.clockOff":
      "The server's clock is {skew} ms from this browser's (round trip {rtt} ms): set NTP on one of them.",
    "check.clockError": "Could not read the server's time ({message}).",
  },
  zh: {
    "check.title": "自检 · Switchboard",
    "check.heading": "自检",
    "check.intro": "检查从本浏览器到服务器的整条路径，包括中间的每一个代理。",
    "check.running": "检查中…",
    "check.passed": "全部检查通过",
    "check.failed": "{n} 项检查未通过",
    "check.rerun": "重新检查",
    "check.admin": "管理控制台",
    "check.ws": "WebSocket 升级",
    "check.wss": "加密连接（wss）",
    "check.sse": "SSE 未被缓冲",
    "check.clock": "时钟偏差",
    "verdict.running": "…",
    "verdict.pass": "正常",
    "verdict.fail": "失败",
    "verdict.warn": "警告",
    "verdict.skip": "无需",
    "check.wsOk": "{url}：帧在 {ms} 毫秒内返回。",
    "check.wsClosed": "{url}：回显前以 {code} 关闭。代理是否转发了 Upgrade 和 Connection 头？",
    "check.wsTimeout": "{url}：5 秒内没有回显。",
    "check.wssOk": "页面使用 https，连接使用 {url}。",
    "check.wssHttp": "页面使用普通 http，因此连接使用 ws:。生产环境请使用 https。",
    "check.wssNoForward":
      "页面使用 https，但服务器看到的是 {proto}：代理应发送 X-Forwarded-Proto: https（否则会话 Cookie 不带 Secure）。",
    "check.wssWrong": "页面使用 https，但连接地址是 {url}。",
    "check.sseOk": "{n} 个事件在 {ms} 毫秒内陆续到达，与发送一致。",
    "check.sseBuffered": "{n} 个事件在 {ms} 毫秒内同时到达：中间有环节缓冲了事件流。",
    "check.sseError": "事件流失败（收到 {n}/4 个事件）。代理是否放行 text/event-stream？",
    "check.clockOk": "服务器时钟与本浏览器相差 {skew} 毫秒（往返 {rtt} 毫秒）。",
    "check.clockOff": "服务器时钟与本浏览器相差 {skew} 毫秒（往返 {rtt} 毫秒）：请在其中一方启用 NTP。",
    "check.clockError": "无法读取服务器时间（{message}）。",
  },
});
initI18n();

/** Events the SSE check asks for, and their spacing in ms. */
const SSE_COUNT = 4;
const SSE_GAP_MS = 300;
/** Skew above this is a warning. */
const SKEW_WARN_MS = 2000;

/** @typedef {"running" | "pass" | "fail" | "warn" | "skip"} Result */

/**
 * Shows one check's result.
 *
 * @param {string} id
 * @param {Result} result
 * @param {string} [key]
 * @param {Record<string, string | number>} [params]
 */
function report(id, result, key = "", params = {}) {
  const row = /** @type {HTMLElement} */ (document.getElementById(`check-${id}`));
  row.dataset.result = result;
  setText(/** @type {HTMLElement} */ (row.querySelector(".verdict")), `verdict.${result}`);
  setText(/** @type {HTMLElement} */ (row.querySelector(".detail")), key, params);
}

/** @returns {Promise<void>} */
function checkWebSocket() {
  const url = socketUrl("/ws/echo");
  return new Promise((resolve) => {
    const token = `selfcheck-${Math.random().toString(36).slice(2)}`;
    const started = performance.now();
    const ws = new WebSocket(url);
    const timer = setTimeout(() => {
      report("ws", "fail", "check.wsTimeout", { url });
      ws.close();
      resolve();
    }, 5000);
    ws.onopen = () => ws.send(token);
    ws.onmessage = (event) => {
      if (event.data !== token) return;
      clearTimeout(timer);
      report("ws", "pass", "check.wsOk", { url, ms: Math.round(performance.now() - started) });
      ws.close();
      resolve();
    };
    ws.onclose = (event) => {
      if (document.getElementById("check-ws")?.dataset.result !== "running") return;
      clearTimeout(timer);
      report("ws", "fail", "check.wsClosed", { url, code: event.code });
      resolve();
    };
  });
}

/** @param {{proto?: string} | undefined} server */
function checkWss(server) {
  const url = socketUrl("/ws/echo");
  if (location.protocol !== "https:") return report("wss", "skip", "check.wssHttp");
  if (!url.startsWith("wss:")) return report("wss", "fail", "check.wssWrong", { url });
  if (server && server.proto !== "https") {
    return report("wss", "warn", "check.wssNoForward", { proto: server.proto ?? "?" });
  }
  report("wss", "pass", "check.wssOk", { url: url.split("/ws/")[0] });
}

/** @returns {Promise<void>} */
function checkSse() {
  return new Promise((resolve) => {
    /** @type {number[]} */
    const arrivals = [];
    const source = new EventSource(`/sse/selfcheck?count=${SSE_COUNT}&gap=${SSE_GAP_MS}`);
    const finish = (/** @type {() => void} */ verdict) => {
      clearTimeout(timer);
      source.close();
      verdict();
      resolve();
    };
    const timer = setTimeout(
      () => finish(() => report("sse", "fail", "check.sseError", { n: arrivals.length })),
      15_000,
    );
    source.addEventListener("tick", () => arrivals.push(performance.now()));
    source.addEventListener("done", () =>
      finish(() => {
        const spread = Math.round((arrivals.at(-1) ?? 0) - (arrivals[0] ?? 0));
        const n = arrivals.length;
        // Sent (n-1)·gap apart; a buffering proxy delivers them in one burst at the end.
        if (n === SSE_COUNT && spread >= ((SSE_COUNT - 1) * SSE_GAP_MS) / 2) {
          report("sse", "pass", "check.sseOk", { n, ms: spread });
        } else report("sse", "fail", "check.sseBuffered", { n, ms: spread });
      }));
    source.onerror = () => finish(() => report("sse", "fail", "check.sseError", { n: arrivals.length }));
  });
}

/** @returns {Promise<{proto?: string} | undefined>} */
async function checkClock() {
  try {
    const sent = Date.now();
    const res = await fetch("/api/selfcheck/time", { cache: "no-store" });
    const received = Date.now();
    const server = await res.json();
    if (!res.ok || typeof server.now !== "number") throw new Error(`HTTP ${res.status}`);
    // The server read its clock somewhere in the round trip; its middle is the best guess.
    const skew = Math.round(server.now - (sent + received) / 2);
    const rtt = received - sent;
    const ok = Math.abs(skew) <= SKEW_WARN_MS + rtt / 2;
    report("clock", ok ? "pass" : "warn", ok ? "check.clockOk" : "check.clockOff", { skew, rtt });
    return server;
  } catch (err) {
    report("clock", "fail", "check.clockError", { message: /** @type {Error} */ (err).message });
    return undefined;
  }
}

const summary = /** @type {HTMLElement} */ (document.getElementById("summary"));

async function run() {
  for (const id of ["ws", "wss", "sse", "clock"]) report(id, "running");
  summary.dataset.result = "running";
  setText(summary, "check.running");
  const [, server] = await Promise.all([checkWebSocket(), checkClock(), checkSse()]);
  checkWss(server);
  const failed = document.querySelectorAll('.checks [data-result="fail"]').length;
  summary.dataset.result = failed ? "fail" : "pass";
  if (failed) setText(summary, "check.failed", { n: failed });
  else setText(summary, "check.passed");
}

// The page's own socket shows whether the server is reachable now.
connect("/ws/echo", { onState: stateBadge(/** @type {HTMLElement} */ (document.getElementById("state"))) });
document.getElementById("rerun")?.addEventListener("click", () => run());
run();
