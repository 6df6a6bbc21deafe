/**
 * The echo page: every frame sent to `/ws/echo` comes back unchanged; both directions are logged.
 *
 * @module
 */
import { connect } from "./client.js";
import { initI18n, t } from "./i18n.js";
import { describeFrame, logLine, stateBadge } from "./ui.js";

initI18n();

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const log = $("log");
const text = /** @type {HTMLInputElement} */ ($("text"));
const binary = /** @type {HTMLInputElement} */ ($("binary"));

const conn = connect("/ws/echo", {
  onState: stateBadge($("state")),
  onMessage(_message, frame) {
    logLine(log, { dir: "in", text: describeFrame(frame) });
  },
});

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = text.value;
  if (value === "") return;
  const frame = binary.checked ? new TextEncoder().encode(value) : value;
  const result = conn.send(frame);
  logLine(log, {
    dir: "out",
    text: describeFrame(frame),
    tag: result === "sent" ? undefined : t("log.queued"),
  });
  text.value = "";
  text.focus();
});

$("clear").addEventListener("click", () => log.replaceChildren());
