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
