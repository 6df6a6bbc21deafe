/**
 * The push page: the server time pushed by `/ws/push`, and a small console for topic subscriptions. Subscribed
 * topics ride in the URL (`?topics=a,b`) so a reconnect subscribes them again.
 *
 * @module
 */
import { connect } from "./client.js";
import { initI18n, onLangChange, t } from "./i18n.js";
import { clock, describeFrame, el, logLine, stateBadge } from "./ui.js";

initI18n();

/** Topic names, as the server checks them. */
const TOPIC_RE = /^[A-Za-z0-9._:-]{1,128}$/;

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const log = $("log");
const topicInput = /** @type {HTMLInputElement} */ ($("topic"));
const notice = $("notice");
const badge = stateBadge($("state"));

/** Subscribed topics, in the order they were added. @type {Set<string>} */
const topics = new Set(
  (new URLSearchParams(location.search).get("topics") ?? "").split(",").filter((s) => TOPIC_RE.test(s)),
);

function socketPath() {
  return topics.size ? `/ws/push?topics=${[...topics].map(encodeURIComponent).join(",")}` : "/ws/push";
}

const conn = connect(socketPath, {
  onState(state, detail) {
    badge(state, detail);
    // The last time shown is only news while the socket is open.
    $("time").classList.toggle("stale", state !== "open");
  },
  onMessage(message, frame) {
    const isError = typeof message === "object" && message !== null && /** @type {any} */
      (message).type === "error";
    logLine(log, { dir: isError ? "error" : "in", text: describeFrame(frame) }, 200);
    if (typeof message !== "object" || message === null) return;
    const m = /** @type {Record<string, unknown>} */ (message);
    if (typeof m.time === "string") $("time").textContent = m.time;
    else if (m.type === "publication") showPublication(m);
    else if (m.type === "error") {
      showNotice(t("error.frame", { code: String(m.code), message: String(m.message) }));
    }
  },
}, { queue: false });

/**
 * Sends a topic frame and logs it. Not queued while disconnected: the reconnect URL carries the topics.
 *
 * @param {Record<string, unknown>} frame
 */
function send(frame) {
  if (conn.send(frame) === "sent") logLine(log, { dir: "out", text: JSON.stringify(frame) }, 200);
}

/** @param {string} text */
function showNotice(text) {
  notice.textContent = text;
  notice.hidden = false;
}

/** @param {Record<string, unknown>} m */
function showPublication(m) {
  const list = $("publications");
  const li = el("li", "entry publication");
  li.dataset.testid = "publication";
  li.dataset.topic = String(m.topic);
  if (m.id !== undefined) li.dataset.id = String(m.id);
  const when = typeof m.ts === "number" ? clock(m.ts) : clock();
  li.append(
    el("time", "when", when),
    el("span", "topic", String(m.topic)),
    el("span", "pub-id", `#${m.id ?? "?"}`),
    el("code", "text", JSON.stringify(m.data)),
  );
  list.append(li);
  while (list.children.length > 200) list.firstElementChild?.remove();
  list.scrollTop = list.scrollHeight;
  $("no-publications").hidden = true;
}

function renderTopics() {
  const list = $("topics");
  list.replaceChildren();
  for (const topic of topics) {
    const li = el("li", "chip");
    li.dataset.topic = topic;
    li.dataset.testid = "topic-item";
    const remove = el("button", "chip-x", "×");
    remove.setAttribute("type", "button");
    remove.setAttribute("aria-label", `${t("push.unsubscribe")} ${topic}`);
    remove.addEventListener("click", () => unsubscribe(topic));
    li.append(el("span", "", topic), remove);
    list.append(li);
  }
  $("no-topics").hidden = topics.size > 0;
}

/** @returns {string | undefined} the topic in the box, when valid */
function readTopic() {
  const topic = topicInput.value.trim();
  if (TOPIC_RE.test(topic)) {
    notice.hidden = true;
    return topic;
  }
  showNotice(t("push.badTopic"));
  return undefined;
}

/** @param {string} topic */
function subscribe(topic) {
  if (!topics.has(topic)) {
    topics.add(topic);
    send({ type: "subscribe", topic });
  }
  renderTopics();
}

/** @param {string} topic */
function unsubscribe(topic) {
  // Sent even for a topic not in the list: the server's answer is then worth seeing.
  topics.delete(topic);
  send({ type: "unsubscribe", topic });
  renderTopics();
}

$("topic-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const topic = readTopic();
  if (topic) {
    subscribe(topic);
    topicInput.value = "";
  }
});
$("unsubscribe").addEventListener("click", () => {
  const topic = readTopic();
  if (topic) {
    unsubscribe(topic);
    topicInput.value = "";
  }
});
$("clear").addEventListener("click", () => log.replaceChildren());

onLangChange(renderTopics);
renderTopics();
