/// <reference lib="dom" />
/**
 * The admin console and the self-check page in Chromium (issue #14), on a phone-sized screen: an admin sees live
 * connections and acts on them, and every action shows in the audit log; a non-admin is told no.
 */
import assert from "node:assert/strict";
import { browserTest, launchBrowser } from "./browser_helpers.ts";
import { delay, get, startTestServer, TestClient } from "./helpers.ts";
import { saveAgent } from "../lib/support/agents.ts";
import { openVisitor, write } from "./support_helpers.ts";

type Frame = Record<string, unknown>;

Deno.test({
  name:
    "in Chromium, an admin disconnects, kicks, publishes, deletes a schedule, retries a webhook, sees the audit",
  ...browserTest,
  async fn() {
    // A webhook receiver that always fails.
    let hookRequests = 0;
    const hooks = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
      await req.text();
      hookRequests++;
      return new Response("no", { status: 500 });
    });
    try {
      await using server = await startTestServer({
        apiKeys: ["k"],
        demoAgents: ["alice:alice-pass-1"],
        webhookUrls: [`http://127.0.0.1:${hooks.addr.port}/hooks`],
        webhookSecret: `whsec_${btoa("0123456789abcdef0123456789abcdef")}`,
        webhookMaxAttempts: 1,
      });
      await saveAgent(server.running.app.ctx.store, "root", "root-pass-123", "Root", "admin");
      const key = { authorization: "Bearer k", "content-type": "application/json" };

      // Live state: three chat members (one with markup in its name), a push subscriber, a schedule, and a
      // failed webhook delivery (the chat message's event).
      await using zed = await TestClient.open(
        server.ws(`/ws/chat/lobby?name=${encodeURIComponent("<i>zed</i>")}`),
      );
      await zed.nextType("welcome");
      await using amy = await TestClient.open(server.ws("/ws/chat/lobby?name=amy"));
      await amy.nextType("welcome");
      await using bob = await TestClient.open(server.ws("/ws/chat/lobby?name=bob"));
      await bob.nextType("welcome");
      await using sub = await TestClient.open(server.ws("/ws/push?time=0&topics=news"));
      await sub.nextType("subscribed");
      const sched = await get(server.http("/api/schedules"), {
        method: "POST",
        headers: key,
        body: JSON.stringify({ topic: "news", data: 1, every: 3_600_000 }),
      });
      const scheduleId = JSON.parse(sched.text).id as string;
      bob.send({ type: "message", text: "hello" });
      for (let i = 0; i < 100; i++) {
        const failed = JSON.parse(
          (await get(server.http("/api/webhooks/deliveries?status=failed"), { headers: key })).text,
        ).deliveries;
        if (failed.length) break;
        await delay(100);
      }

      await using browser = await launchBrowser();
      const errors: string[] = [];

      // A non-admin agent is told this page is for admins.
      const agentPage = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
      agentPage.on("pageerror", (e) => errors.push(e.message));
      await agentPage.goto(server.http("/admin.html"));
      await agentPage.fill("#username", "alice");
      await agentPage.fill("#password", "alice-pass-1");
      await agentPage.click("#login");
      await agentPage.waitForSelector("#forbidden-view:not([hidden])");
      assert.match((await agentPage.textContent("#forbidden-text")) ?? "", /403/);

      const page = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(server.http("/admin.html"));
      await page.fill("#username", "root");
      await page.fill("#password", "root-pass-123");
      await page.press("#password", "Enter");
      await page.waitForSelector('#state[data-state="open"]');

      // The connections: markup in a name is shown as text.
      const zedRow = page.locator('li[data-testid="conn"][data-endpoint="chat"]', { hasText: "<i>zed</i>" });
      await zedRow.waitFor();
      assert.equal(await page.locator("#instances i").count(), 0, "no element made from a name");
      await page.locator('li[data-testid="conn"][data-endpoint="push"]', { hasText: "news" }).waitFor();
      await zedRow.locator('[data-testid="inspect"]').click();
      await page.waitForSelector('[data-testid="conn-detail"]:has-text("lobby")');
      assert.ok(
        await page.evaluate(() => document.documentElement.scrollWidth <= 390),
        "no sideways scrolling at 390 px",
      );

      // Disconnect zed: its socket sees the close.
      await zedRow.locator('[data-testid="disconnect"]').click();
      assert.equal((await zed.closedWithin(5000)).code, 4005);
      await zedRow.waitFor({ state: "detached" });

      // Kick amy with the keyboard: bob sees her leave.
      const kick = page.locator('li[data-testid="member"][data-name="amy"] [data-testid="kick"]');
      await kick.focus();
      await page.keyboard.press("Enter");
      assert.equal((await amy.closedWithin(5000)).code, 4005);
      assert.equal(((await bob.nextType("leave")).member as Frame).name, "<i>zed</i>", "zed left first");
      assert.equal(((await bob.nextType("leave")).member as Frame).name, "amy");

      // A test publication reaches the subscriber.
      await page.fill("#pub-topic", "news");
      await page.fill("#pub-data", '{"from": "admin"}');
      await page.click("#pub-send");
      assert.deepEqual((await sub.nextType("publication")).data, { from: "admin" });
      await page.waitForSelector('#pub-result:has-text("1")');

      // Delete the schedule.
      await page.click(`li[data-testid="schedule"][data-id="${scheduleId}"] [data-testid="delete-schedule"]`);
      await page.waitForSelector(`li[data-testid="schedule"][data-id="${scheduleId}"]`, {
        state: "detached",
      });
      const left = JSON.parse((await get(server.http("/api/schedules"), { headers: key })).text).schedules;
      assert.deepEqual(left, []);

      // Retry the failed delivery: the receiver is called again.
      const tried = hookRequests;
      await page.selectOption("#delivery-status", "failed");
      await page.click('li[data-testid="delivery"][data-status="failed"] [data-testid="retry"]');
      for (let i = 0; i < 100 && hookRequests === tried; i++) await delay(50);
      assert.equal(hookRequests, tried + 1, "the receiver got the retried delivery");

      // Every action is in the audit log, newest first.
      for (
        const action of ["connection.disconnect", "room.kick", "publish", "schedule.delete", "webhook.retry"]
      ) {
        await page.waitForSelector(`li[data-testid="audit-entry"][data-action="${action}"]`);
      }
      const actions = await page.$$eval(
        'li[data-testid="audit-entry"]',
        (els) => els.map((e) => (e as HTMLElement).dataset.action),
      );
      assert.deepEqual(actions.slice(0, 6), [
        "webhook.retry",
        "schedule.delete",
        "publish",
        "room.kick",
        "connection.disconnect",
        "schedule.create",
      ]);
      assert.match(
        (await page.textContent('li[data-testid="audit-entry"][data-action="room.kick"]')) ?? "",
        /agent:root.*amy|amy.*agent:root/s,
      );

      // A data request: export a visitor's conversation, then delete it all (after a confirmation).
      const v = await openVisitor(server);
      const own = await write(v, "please delete my data");
      const visitorId = (own.from as Frame).id as string;
      await v.client.close();
      await page.fill("#data-visitor", visitorId);
      const download = page.waitForEvent("download");
      await page.click("#data-export");
      const file = await download;
      assert.match(file.suggestedFilename(), /^visitor-.+\.json$/);
      await page.waitForSelector("#data-result:has-text('1 conversations')");
      await page.click("#data-delete");
      await page.waitForSelector("#data-confirm:visible");
      await page.keyboard.press("Enter");
      await page.waitForSelector("#data-result:has-text('Deleted 1 conversations')");
      const after = await get(server.http(`/api/support/visitors/${visitorId}/export`), { headers: key });
      assert.equal(after.status, 404);
      await page.waitForSelector('li[data-testid="audit-entry"][data-action="visitor.delete"]');

      // Chinese.
      await page.click("#lang");
      assert.equal(await page.textContent("#connections-h"), "连接");
      assert.equal(await page.textContent("h1"), "管理控制台");
      await page.click("#lang");
      assert.deepEqual(errors, [], "no page errors");
    } finally {
      await hooks.shutdown();
    }
  },
});

Deno.test({
  name: "in Chromium, the self-check page passes on plain http",
  ...browserTest,
  async fn() {
    await using server = await startTestServer();
    await using browser = await launchBrowser();
    const page = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(server.http("/selfcheck.html"));
    await page.waitForSelector('#summary:not([data-result="running"])', { timeout: 20_000 });
    const results = await page.$$eval(
      ".checks li",
      (els) => els.map((e) => `${e.id}:${(e as HTMLElement).dataset.result}`),
    );
    assert.deepEqual(results, ["check-ws:pass", "check-wss:skip", "check-sse:pass", "check-clock:pass"]);
    assert.equal(await page.getAttribute("#summary", "data-result"), "pass");
    await page.waitForSelector('#state[data-state="open"]');
    await page.click("#lang");
    assert.equal(await page.textContent("#summary"), "全部检查通过");
    assert.deepEqual(errors, []);
  },
});
