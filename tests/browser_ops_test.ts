/// <reference lib="dom" />
/**
 * In Chromium, on a phone-sized console: an admin reads the Reports view (numbers, a uPlot chart, CSV) and sets
 * business hours (the server's refusal shown, then a save that closes the desk); an offline message is marked
 * in the queue. Also: the chart library is served from the pinned package.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { browserTest, launchBrowser } from "./browser_helpers.ts";
import { get, startTestServer } from "./helpers.ts";
import { openAgent, openVisitor, runAgentCli, write } from "./support_helpers.ts";

async function consoleLogin(page: Page, server: { http(p: string): string }, user: string, password: string) {
  await page.goto(server.http("/agent.html?lang=en"));
  await page.fill("#username", user);
  await page.fill("#password", password);
  await page.click("#login");
  await page.waitForSelector('#state[data-state="open"]');
}

Deno.test("the chart library is served from its pinned package, as a module the pages may load", async () => {
  await using server = await startTestServer();
  const js = await get(server.http("/vendor/uplot.js"));
  assert.equal(js.status, 200);
  assert.match(js.headers.get("content-type") ?? "", /^text\/javascript/);
  assert.match(js.text, /uPlot\.js \(μPlot\)/);
  assert.match(js.text, /export \{ uPlot as default \}|export default uPlot/);
  assert.match(js.headers.get("content-security-policy") ?? "", /script-src 'self'/);
  const css = await get(server.http("/vendor/uplot.css"));
  assert.match(css.headers.get("content-type") ?? "", /^text\/css/);
  assert.match(css.text, /\.uplot/);
});

Deno.test({
  name: "in Chromium, an admin reads the reports with a chart and CSV, and sets business hours",
  ...browserTest,
  async fn() {
    const dataDir = await Deno.makeTempDir();
    try {
      const added = await runAgentCli(["add", "root", "--admin", "--data-dir", dataDir], "root-pass-123\n");
      assert.equal(added.code, 0, added.stderr);
      await using server = await startTestServer({ dataDir, demoAgents: ["alice:secret123"] });

      // One conversation, answered, closed and rated 4.
      const alice = await openAgent(server, "alice", "secret123");
      const v = await openVisitor(server);
      await write(v, "Where is my parcel?");
      alice.client.send({ type: "accept", conversationId: v.conversationId });
      await alice.client.nextType("accepted");
      alice.client.send({
        type: "message",
        conversationId: v.conversationId,
        text: "On its way",
        clientMsgId: "a1",
      });
      await v.client.next((f) => f.type === "message" && f.text === "On its way");
      alice.client.send({ type: "close", conversationId: v.conversationId });
      await v.client.nextType("closed");
      v.client.send({ type: "rate", score: 4 });
      await v.client.nextType("rated");
      await v.client.close();
      await alice.client.close();

      await using browser = await launchBrowser();
      const page = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await consoleLogin(page, server, "root", "root-pass-123");

      await page.click("#open-reports");
      await page.waitForSelector('#report-overall [data-testid="stat-conversations"] dd:text-is("1")');
      assert.equal(await page.textContent('[data-testid="stat-answered"] dd'), "1");
      assert.equal(await page.textContent('[data-testid="stat-csat"] dd'), "4 / 5 (1 ratings)");
      assert.match((await page.textContent('[data-testid="stat-csat-distribution"] dd')) ?? "", /4★: 1/);
      await page.waitForSelector("#report-chart canvas");
      await page.waitForSelector('#report-agents tbody tr[data-username="alice"]');
      const csv = await page.evaluate(async () => {
        const href = (document.getElementById("report-csv") as HTMLAnchorElement).href;
        const res = await fetch(href);
        return { type: res.headers.get("content-type"), text: await res.text() };
      });
      assert.match(csv.type ?? "", /^text\/csv/);
      assert.match(csv.text, /^agent,name,conversations/);
      assert.match(csv.text, /\r\nalice,alice,1,1,1,0,/);
      // Nothing spills sideways on a phone.
      assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), true);
      await page.click("#reports-close");

      // Business hours: a refusal from the server is shown, then a save that closes the desk today.
      await page.click("#open-hours");
      await page.waitForFunction(() =>
        (document.getElementById("hours-tz") as HTMLInputElement).value !== ""
      );
      await page.fill("#hours-tz", "UTC");
      await page.check("#hours-enabled");
      await page.fill("#hours-mon", "25:00-26:00");
      await page.click("#hours-save");
      await page.waitForSelector("#hours-error:has-text('bad range')");
      await page.fill("#hours-mon", "9:00-12:00, 13:00-18:00");
      const today = new Date().toISOString().slice(0, 10);
      await page.fill("#hours-closed", today);
      await page.fill("#welcome-zh", "您好！今天休息。");
      await page.keyboard.press("Tab");
      await page.click("#hours-save");
      await page.waitForSelector("#hours-status:has-text('Saved')");
      assert.equal(await page.inputValue("#hours-mon"), "09:00-12:00, 13:00-18:00");
      const avail = JSON.parse((await get(server.http("/api/support/availability?lang=zh"))).text);
      assert.deepEqual([avail.open, avail.reason, avail.welcome], [false, "closed", "您好！今天休息。"]);
      await page.click("#hours-close");

      // A message left through the form is marked offline in the queue.
      const left = await get(server.http("/api/support/offline"), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "Li", email: "li@example.com", text: "Please call me" }),
      });
      assert.equal(left.status, 201, left.text);
      await page.waitForSelector(
        "#queue li.conversation:has-text('Please call me') [data-testid=offline-label]",
      );
      assert.deepEqual(errors, [], "no page errors");
    } finally {
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "in Chromium, outside business hours the widget offers a leave-a-message form, and the console marks the message offline",
  ...browserTest,
  async fn() {
    const dataDir = await Deno.makeTempDir();
    try {
      const added = await runAgentCli(["add", "root", "--admin", "--data-dir", dataDir], "root-pass-123\n");
      assert.equal(added.code, 0, added.stderr);
      await using server = await startTestServer({ dataDir });
      await using browser = await launchBrowser();
      const admin = await (await browser.newContext()).newPage();
      const visitorContext = await browser.newContext({ viewport: { width: 390, height: 844 } });
      const visitor = await visitorContext.newPage();
      const errors: string[] = [];
      for (const p of [admin, visitor]) p.on("pageerror", (e) => errors.push(e.message));

      // Without business hours the widget offers the chat, with the built-in welcome.
      await visitor.goto(server.http("/support.html?lang=en"));
      await visitor.click("#switchboard-bubble");
      const widget = visitor.frameLocator("#switchboard-frame");
      await widget.locator('#state[data-state="open"]').waitFor({ state: "attached" });
      await widget.locator("#composer").waitFor({ state: "visible" });
      assert.equal(await widget.locator("#offline-form").isHidden(), true);
      assert.match((await widget.locator("#welcome").textContent()) ?? "", /Ask us anything/);

      // The admin closes the desk today, with a welcome in both languages.
      await consoleLogin(admin, server, "root", "root-pass-123");
      await admin.click("#open-hours");
      await admin.waitForFunction(() =>
        (document.getElementById("hours-tz") as HTMLInputElement).value !== ""
      );
      await admin.fill("#hours-tz", "UTC");
      await admin.check("#hours-enabled");
      await admin.fill("#hours-closed", new Date().toISOString().slice(0, 10));
      await admin.fill("#welcome-en", "Hello from the shop <b>team</b>");
      await admin.fill("#welcome-zh", "您好，这里是小店客服");
      await admin.click("#hours-save");
      await admin.waitForSelector("#hours-status:has-text('Saved')");
      await admin.click("#hours-close");

      // After a reload the visitor sees the welcome as text, and the form instead of the composer.
      await visitor.reload();
      await visitor.click("#switchboard-bubble");
      await widget.locator("#offline-form").waitFor({ state: "visible" });
      assert.equal(await widget.locator("#welcome").textContent(), "Hello from the shop <b>team</b>");
      assert.equal(await widget.locator("#welcome b").count(), 0);
      assert.equal(await widget.locator("#composer").isHidden(), true);
      assert.match((await widget.locator("#offline-title").textContent()) ?? "", /closed/);

      // The other language brings its own welcome and words.
      await widget.locator("#lang").click();
      await widget.locator("#welcome", { hasText: "您好，这里是小店客服" }).waitFor();
      assert.match((await widget.locator("#offline-send").textContent()) ?? "", /发送留言/);
      await widget.locator("#lang").click();
      await widget.locator("#welcome", { hasText: "Hello from the shop" }).waitFor();

      // Mistakes are explained next to the form, by keyboard alone.
      await widget.locator("#offline-name").fill("Li Lei");
      await widget.locator("#offline-email").fill("not an email");
      await widget.locator("#offline-text").fill("Please call me back about order 42");
      await widget.locator("#offline-text").press("Tab");
      await visitor.keyboard.press("Enter"); // the focused Send button
      await widget.locator("#offline-error", { hasText: "does not look right" }).waitFor();
      await widget.locator("#offline-email").fill("li@example.com");
      // The server's 429 is said plainly.
      await visitorContext.route("**/api/support/offline", (route) =>
        route.fulfill({
          status: 429,
          contentType: "application/json",
          body: JSON.stringify({ error: "rate_limited", message: "Too many" }),
        }), { times: 1 });
      await widget.locator("#offline-send").click();
      await widget.locator("#offline-error", { hasText: "try again in a minute" }).waitFor();

      // Sent: the thank-you, and no layout spills sideways on the phone.
      await widget.locator("#offline-send").click();
      await widget.locator("#offline-sent", { hasText: "reply by email" }).waitFor();
      assert.equal(await widget.locator("#offline-form").isHidden(), true);
      const fits = await widget.locator("body").evaluate(() =>
        document.documentElement.scrollWidth <= document.documentElement.clientWidth
      );
      assert.equal(fits, true, "the widget fits its frame");

      // The console lists it as an offline message, in the queue and once accepted.
      await admin.waitForSelector(
        "#queue li.conversation:has-text('Please call me back') [data-testid=offline-label]",
      );
      await admin.click("#queue li.conversation button.accept");
      await admin.waitForSelector("#mine .tab [data-testid=offline-label]");
      await admin.waitForSelector("#conversation-offline:not([hidden])");
      await admin.waitForSelector("#messages li.message:has-text('Please call me back about order 42')");
      assert.equal(await admin.textContent("#visitor-email"), "li@example.com");

      // One message, stored once (the refused try sent nothing).
      const list = await admin.evaluate(async () =>
        (await (await fetch("/api/support/conversations")).json()).conversations
      );
      assert.equal(list.length, 1, JSON.stringify(list));
      assert.equal(list[0].source, "offline");
      assert.deepEqual(errors, [], "no page errors");
    } finally {
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "in Chromium, a visitor still chatting when the desk closes keeps the composer, and gets the form once it is closed",
  ...browserTest,
  async fn() {
    await using server = await startTestServer({ apiKeys: ["test-key"], demoAgents: ["alice:secret123"] });
    await using browser = await launchBrowser();
    const page = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(server.http("/widget.html?lang=zh"));
    await page.locator('#state[data-state="open"]').waitFor({ state: "attached" });
    await page.fill("#text", "我的订单在哪里？");
    await page.click("#send");
    await page.waitForSelector("#messages li.message[data-id]");

    // The desk closes for the whole week (hours on, no day open).
    const saved = await get(server.http("/api/support/settings"), {
      method: "PUT",
      headers: { "content-type": "application/json", authorization: "Bearer test-key" },
      body: JSON.stringify({
        hours: { enabled: true, timeZone: "UTC", days: {} },
        offlineWhenNoAgents: false,
      }),
    });
    assert.equal(saved.status, 200, saved.text);
    await page.reload();
    await page.waitForSelector("#messages li.message[data-id]");
    assert.equal(await page.locator("#composer").isVisible(), true, "the open conversation keeps its chat");
    assert.equal(await page.locator("#offline-form").isHidden(), true);

    // The agent answers and closes it: now the visitor has no open conversation, so the form shows, in Chinese.
    const alice = await openAgent(server, "alice", "secret123");
    try {
      const conversationId = (alice.state.queue as { id: string }[])[0].id;
      alice.client.send({ type: "accept", conversationId });
      await alice.client.nextType("accepted");
      alice.client.send({ type: "close", conversationId });
      await page.locator("#offline-form").waitFor({ state: "visible" });
      assert.equal(await page.locator("#composer").isHidden(), true);
      assert.match((await page.textContent("#offline-title")) ?? "", /不在营业时间/);
      // The rating of the chat that ended is still offered.
      assert.equal(await page.locator("#rating-form").isVisible(), true);
    } finally {
      await alice.client.close();
    }
    assert.deepEqual(errors, [], "no page errors");
  },
});
