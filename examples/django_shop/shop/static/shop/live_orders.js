/**
 * Live order updates on the shop's home page.
 *
 * Opens Switchboard's push socket as the logged-in user: the token comes from the shop's /token/ endpoint
 * before every connect, and again before it expires (sent as a `refresh` frame, so the socket is not closed
 * with 4002). The socket follows `user:<id>` by itself; every publication on it with `data.type === "order"`
 * updates a row. The "Mark paid" buttons post with fetch, so the page stays put and the update arrives over
 * the socket, in every tab of this user.
 *
 * Switchboard's own pages use static/client.js and its getToken() option for the same steps; client.js opens
 * sockets on its page's own host, and this page is on the shop's, so it opens the socket itself. Switchboard
 * must list the shop's origin in --allowed-origins.
 */
(() => {
  const script = /** @type {HTMLScriptElement} */ (document.currentScript);
  const base = new URL(script.dataset.switchboard || "");
  const socketBase = `${base.protocol === "https:" ? "wss:" : "ws:"}//${base.host}`;
  const tokenUrl = script.dataset.tokenUrl || "/token/";
  const status = document.getElementById("live-status");
  const REFRESH_BEFORE_MS = 60_000;
  let attempt = 0;

  /** @param {string} text */
  function say(text) {
    if (status) status.textContent = `Live updates: ${text}`;
  }

  /** @returns {Promise<{token: string, expiresAt: number}>} */
  async function getToken() {
    const response = await fetch(tokenUrl, {
      credentials: "same-origin",
      headers: { accept: "application/json" },
    });
    if (response.status === 401) throw Object.assign(new Error("logged out"), { final: true });
    if (!response.ok) throw new Error(`token endpoint answered ${response.status}`);
    return response.json();
  }

  /** @param {{order: number, status: string}} update */
  function showOrder(update) {
    const row = document.querySelector(`tr[data-order="${Number(update.order)}"]`);
    if (!row) return;
    const cell = row.querySelector(".status");
    if (cell) cell.textContent = update.status === "paid" ? "Paid" : update.status;
    if (update.status === "paid") row.querySelector("form.pay")?.remove();
  }

  function retry() {
    const delay = Math.min(15_000, 500 * 2 ** attempt++) * (0.5 + Math.random() / 2);
    say(`reconnecting in ${Math.round(delay / 1000)} s`);
    setTimeout(open, delay);
  }

  async function open() {
    let current;
    try {
      current = await getToken();
    } catch (err) {
      if (/** @type {any} */ (err).final) return say("log in again");
      return retry();
    }
    const ws = new WebSocket(`${socketBase}/ws/push?time=0&token=${encodeURIComponent(current.token)}`);
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let refreshTimer;
    const scheduleRefresh = (/** @type {number} */ expiresAt) => {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(async () => {
        try {
          current = await getToken();
          ws.send(JSON.stringify({ type: "refresh", token: current.token }));
          scheduleRefresh(current.expiresAt);
        } catch {
          // The server closes the socket at expiry (4002); the page then reconnects with a fresh token.
        }
      }, Math.max(1000, expiresAt - Date.now() - REFRESH_BEFORE_MS));
    };
    ws.onopen = () => {
      attempt = 0;
      say("connected");
      scheduleRefresh(current.expiresAt);
    };
    ws.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "publication" && frame.data?.type === "order") showOrder(frame.data);
    };
    ws.onclose = (event) => {
      clearTimeout(refreshTimer);
      // 4003: disconnected by the shop; 4004: the refresh named another user. Coming back would not help.
      if (event.code === 4003 || event.code === 4004) return say(`closed (${event.code})`);
      // Anything else, 4002 (expired) included, is worth a new try with a fresh token.
      retry();
    };
  }

  document.addEventListener("submit", async (event) => {
    const form = /** @type {HTMLFormElement} */ (event.target);
    if (!form.matches("form.pay")) return;
    event.preventDefault();
    const csrf = /** @type {HTMLInputElement | null} */ (form.querySelector("[name=csrfmiddlewaretoken]"));
    const response = await fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf?.value || "", accept: "application/json" },
    });
    if (!response.ok) say(`paying failed (${response.status})`);
  });

  open();
})();
