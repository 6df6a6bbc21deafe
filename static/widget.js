/**
 * The customer-service widget loader. Any site embeds the chat with one tag:
 *
 * ```html
 * <script src="https://HOST/widget.js" async></script>
 * ```
 *
 * It adds a bubble button (bottom right) to the host page that opens a panel holding
 * `<iframe src="https://HOST/widget.html">`. The chat runs inside the iframe, on our origin, so its socket passes
 * our origin check and the host page's scripts cannot read it. This file runs in the host page: it is a classic
 * script (`document.currentScript` is null in modules), sets every style through `element.style` with `!important`
 * (the host's CSS must neither break nor be broken by it), and touches no global but one guard flag.
 *
 * Messages between the two windows (always checked: source window, origin, `type`):
 * - iframe → host: `{type: "switchboard-unread", count}` (badge), `{type: "switchboard-minimize"}` (close panel),
 *   `{type: "switchboard-ready"}` (loaded: tell me whether the panel is open)
 * - host → iframe: `{type: "switchboard-open"}` (the visitor sees the chat: mark read),
 *   `{type: "switchboard-hidden"}` (panel closed: count unread again), `{type: "switchboard-identify", token}`
 *
 * A site whose customer is logged in passes a user token it signed (docs/auth.md), so agents see the verified
 * customer and the same customer resumes on any device: `<script src=… data-token="…">`, or later (a login
 * without a page load) `Switchboard.identify(token)`. The token travels in the iframe's URL fragment, which is
 * never sent to a server.
 */
(() => {
  const script = /** @type {HTMLScriptElement | null} */ (document.currentScript);
  const flag = "__switchboardWidget";
  if (!script?.src || /** @type {any} */ (globalThis)[flag]) return;
  /** @type {any} */ (globalThis)[flag] = true;

  const origin = new URL(script.src).origin;
  const Z = "2147483000";
  const zh = () => /^zh/i.test(document.documentElement.lang || navigator.language || "");
  const label = (/** @type {boolean} */ open) =>
    open ? (zh() ? "关闭客服窗口" : "Close the chat") : (zh() ? "联系客服" : "Chat with us");

  /**
   * Sets styles (camelCase names) as `!important`, so even a host rule like `button { … !important }` loses.
   *
   * @param {HTMLElement | SVGElement} node
   * @param {Record<string, string>} style
   */
  function css(node, style) {
    for (const [name, value] of Object.entries(style)) {
      node.style.setProperty(name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), value, "important");
    }
  }

  /**
   * @template {keyof HTMLElementTagNameMap} K
   * @param {K} tag
   * @param {Record<string, string>} style
   * @returns {HTMLElementTagNameMap[K]}
   */
  function make(tag, style) {
    const node = document.createElement(tag);
    // Reset what a host stylesheet is most likely to have set on every button, iframe or span.
    css(node, {
      boxSizing: "border-box",
      margin: "0",
      padding: "0",
      border: "0",
      font: "600 12px/1 system-ui, sans-serif",
      ...style,
    });
    return node;
  }

  const NS = "http://www.w3.org/2000/svg";
  /** @param {string} d */
  function icon(d) {
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "28");
    svg.setAttribute("height", "28");
    svg.setAttribute("aria-hidden", "true");
    css(svg, { display: "block", width: "28px", height: "28px", margin: "0", fill: "currentColor" });
    const path = document.createElementNS(NS, "path");
    path.setAttribute("d", d);
    path.setAttribute("fill", "currentColor");
    // Chromium treats `d` as a CSS property too, so a host's `* { all: revert }` would erase the shape.
    css(path, { d: `path("${d}")`, fill: "currentColor" });
    svg.append(path);
    return svg;
  }
  const CHAT = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z";
  const CLOSE = "M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12 19 17.6 17.6 19 12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z";

  const bubble = make("button", {
    position: "fixed",
    right: "20px",
    bottom: "20px",
    width: "56px",
    height: "56px",
    borderRadius: "50%",
    background: "#2f6fde",
    color: "#fff",
    cursor: "pointer",
    boxShadow: "0 4px 14px rgba(0,0,0,.25)",
    display: "flex",
    alignItems: "center",
    justifyContent: "center",
    zIndex: Z,
  });
  bubble.type = "button";
  bubble.id = "switchboard-bubble";
  bubble.dataset.testid = "switchboard-bubble";
  bubble.setAttribute("aria-expanded", "false");

  const badge = make("span", {
    position: "absolute",
    top: "-4px",
    right: "-4px",
    minWidth: "22px",
    height: "22px",
    padding: "5px 6px 0",
    borderRadius: "11px",
    background: "#c62f3b",
    color: "#fff",
    textAlign: "center",
    display: "none",
  });
  badge.id = "switchboard-badge";
  badge.dataset.testid = "switchboard-badge";

  const panel = make("div", {
    position: "fixed",
    display: "none",
    background: "#fff",
    borderRadius: "12px",
    overflow: "hidden",
    boxShadow: "0 8px 32px rgba(0,0,0,.3)",
    zIndex: Z,
  });
  panel.id = "switchboard-panel";
  panel.dataset.testid = "switchboard-panel";

  const iframe = make("iframe", { display: "block", width: "100%", height: "100%" });
  const token = script.dataset.token ?? "";
  iframe.src = `${origin}/widget.html${token ? `#jwt=${encodeURIComponent(token)}` : ""}`;
  iframe.title = zh() ? "在线客服" : "Customer service chat";
  iframe.id = "switchboard-frame";
  iframe.dataset.testid = "switchboard-frame";
  panel.append(iframe);

  // A phone gets the whole width and most of the height; the bubble stays below to close it again.
  const narrow = matchMedia("(max-width: 480px)");
  function place() {
    css(
      panel,
      narrow.matches
        ? { left: "8px", right: "8px", top: "8px", bottom: "88px", width: "auto", height: "auto" }
        : {
          left: "auto",
          top: "auto",
          right: "20px",
          bottom: "88px",
          width: "380px",
          height: "min(600px, calc(100vh - 108px))",
        },
    );
  }
  narrow.addEventListener?.("change", place);
  place();

  let open = false;
  /** @param {number} count */
  function setBadge(count) {
    badge.textContent = count > 99 ? "99+" : String(count);
    css(badge, { display: count > 0 ? "block" : "none" });
    bubble.title = label(open) + (count > 0 ? ` (${count})` : "");
  }
  /** @param {boolean} next */
  function toggle(next) {
    open = next;
    css(panel, { display: open ? "block" : "none" });
    bubble.replaceChildren(icon(open ? CLOSE : CHAT), badge);
    bubble.setAttribute("aria-expanded", String(open));
    bubble.setAttribute("aria-label", label(open));
    bubble.title = label(open);
    iframe.contentWindow?.postMessage({ type: open ? "switchboard-open" : "switchboard-hidden" }, origin);
    if (open) iframe.focus();
  }
  bubble.addEventListener("click", () => toggle(!open));

  /** Tells the chat which page the visitor is on, so agents see it (also after single-page navigation). */
  function sendPage() {
    iframe.contentWindow?.postMessage(
      { type: "switchboard-page", url: location.href, title: document.title, referrer: document.referrer },
      origin,
    );
  }
  for (const method of /** @type {const} */ (["pushState", "replaceState"])) {
    const original = history[method];
    history[method] = function (...args) {
      const result = original.apply(this, /** @type {any} */ (args));
      setTimeout(sendPage, 0);
      return result;
    };
  }
  globalThis.addEventListener("popstate", sendPage);
  globalThis.addEventListener("hashchange", sendPage);

  globalThis.addEventListener("message", (event) => {
    if (event.source !== iframe.contentWindow || event.origin !== origin) return;
    const data = event.data;
    if (data?.type === "switchboard-unread") setBadge(Math.max(0, Number(data.count) || 0));
    else if (data?.type === "switchboard-minimize" && open) toggle(false);
    // The iframe asks after it loads (it may load after a click already opened the panel).
    else if (data?.type === "switchboard-ready") {
      toggle(open);
      sendPage();
    }
  });

  /** @type {any} */ (globalThis).Switchboard = {
    /** Identifies the visitor after the page loaded (a login without a page load). @param {string} t */
    identify(t) {
      iframe.contentWindow?.postMessage({ type: "switchboard-identify", token: String(t) }, origin);
    },
  };

  function mount() {
    toggle(false);
    setBadge(0);
    document.body.append(panel, bubble);
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
