/// <reference lib="dom" />
import assert from "node:assert/strict";
import { browserTest, launchBrowser } from "./browser_helpers.ts";
import { startTestServer } from "./helpers.ts";

type Page = Awaited<ReturnType<Awaited<ReturnType<typeof launchBrowser>>["newPage"]>>;

/** Opens the widget on the shop page already loaded in `page`, sends `text` as the visitor; returns its frame. */
async function visitorWrites(page: Page, text: string) {
  await page.click("#switchboard-bubble");
  const widget = page.frameLocator("#switchboard-frame");
  await widget.locator('#state[data-state="open"]').waitFor({ state: "attached" });
  await widget.locator("#text").fill(text);
  await widget.locator("#send").click();
  await widget.locator("#messages li.message[data-id]").first().waitFor();
  return widget;
}

/** Logs the agent console on `page` in and waits for its socket. */
async function consoleLogin(page: Page, server: { http(p: string): string }, user: string, password: string) {
  await page.goto(server.http("/agent.html"));
  await page.fill("#username", user);
  await page.fill("#password", password);
  await page.click("#login");
  await page.waitForSelector('#state[data-state="open"]');
}

Deno.test({
  name: "in Chromium, the one-tag widget on the shop page and the agent console talk",
  ...browserTest,
  async fn() {
    await using server = await startTestServer({ demoAgents: ["alice:secret123"] });
    await using browser = await launchBrowser();
    const visitor = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
    const agent = await (await browser.newContext()).newPage();
    const errors: string[] = [];
    for (const p of [visitor, agent]) p.on("pageerror", (e) => errors.push(e.message));

    // The shop embeds the widget with one script tag.
    await visitor.goto(server.http("/support.html"));
    const html = await visitor.content();
    assert.match(html, /<script src="\/widget\.js" async(="")?><\/script>/);
    const widget = await visitorWrites(visitor, "Where is my order? <img src=x onerror=alert(1)>");

    // The agent logs in, sees the visitor waiting, and accepts.
    await consoleLogin(agent, server, "alice", "secret123");
    await agent.waitForSelector("#queue li.conversation");
    await agent.click("#queue li.conversation button.accept");
    await agent.waitForSelector("#messages li.message[data-id]");
    const first = await agent.textContent("#messages li.message");
    assert.ok(first?.includes("<img src=x onerror=alert(1)>"), `shown as text: ${first}`);
    assert.equal(await agent.$$eval("#messages img", (els) => els.length), 0);

    // They talk both ways.
    await agent.fill("#text", "It ships tomorrow.");
    await agent.click("#send");
    await widget.locator("li.message", { hasText: "It ships tomorrow." }).waitFor();
    await widget.locator("#text").fill("Thank you!");
    await widget.locator("#send").click();
    await agent.waitForSelector("#messages li.message:has-text('Thank you!')");

    // The agent closes; the visitor can rate.
    await agent.click("#close-conversation");
    await widget.locator("#rating-form").waitFor({ state: "visible" });
    await widget.locator('.star[data-score="5"]').click();
    await widget.locator("#rating-submit").click();
    await widget.locator("#rated").waitFor({ state: "visible" });
    assert.deepEqual(errors, [], "no page errors");
  },
});

Deno.test({
  name:
    "in Chromium, the console's / opens canned replies, Enter inserts the filled reply, and notes stay private",
  ...browserTest,
  async fn() {
    await using server = await startTestServer({ demoAgents: ["alice:secret123"] });
    await using browser = await launchBrowser();
    const visitor = await (await browser.newContext()).newPage();
    const agent = await (await browser.newContext()).newPage();
    const errors: string[] = [];
    for (const p of [visitor, agent]) p.on("pageerror", (e) => errors.push(e.message));
    await visitor.goto(server.http("/support.html"));
    const widget = await visitorWrites(visitor, "Hello?");
    await consoleLogin(agent, server, "alice", "secret123");
    const saved = await agent.evaluate(async () =>
      (await fetch("/api/canned", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ shortcut: "thanks", text: "Thanks for waiting, I am {{agent.name}}." }),
      })).status
    );
    assert.equal(saved, 201);
    await agent.click("#queue li.conversation button.accept");
    await agent.waitForSelector("#messages li.message[data-id]");
    // The widget told the console which page the visitor is on.
    await agent.waitForSelector("#visitor-context:has-text('support.html')");
    await agent.focus("#text");
    await agent.keyboard.type("/tha");
    await agent.waitForSelector("#canned li.picked");
    await agent.keyboard.press("Enter");
    assert.equal(await agent.inputValue("#text"), "Thanks for waiting, I am alice.");
    await agent.keyboard.press("Enter");
    await widget.locator("li.message", { hasText: "Thanks for waiting, I am alice." }).waitFor();

    // A private note shows in the console only.
    await agent.fill("#text", "VIP customer, be quick");
    await agent.click("#note");
    await agent.waitForSelector("#notes li:has-text('VIP customer')");
    await agent.fill("#text", "One moment please.");
    await agent.click("#send");
    await widget.locator("li.message", { hasText: "One moment please." }).waitFor();
    assert.ok(
      !(await widget.locator("body").textContent())?.includes("VIP customer"),
      "the visitor never sees it",
    );

    // A hidden console shows the unread count in its title.
    await agent.evaluate(() => {
      Object.defineProperty(document, "visibilityState", { get: () => "hidden", configurable: true });
      Object.defineProperty(document, "hidden", { get: () => true, configurable: true });
      document.dispatchEvent(new Event("visibilitychange"));
    });
    await widget.locator("#text").fill("Are you there?");
    await widget.locator("#send").click();
    await agent.waitForFunction(() => document.title.startsWith("(1)"));
    // Each agent can turn alerts off; the choice stays across reloads.
    assert.equal(await agent.getAttribute("#alerts", "aria-pressed"), "true");
    await agent.click("#alerts");
    assert.equal(await agent.getAttribute("#alerts", "aria-pressed"), "false");
    await agent.reload();
    await agent.waitForSelector('#state[data-state="open"]');
    assert.equal(await agent.getAttribute("#alerts", "aria-pressed"), "false");
    assert.deepEqual(errors, [], "no page errors");
  },
});
