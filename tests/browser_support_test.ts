/// <reference lib="dom" />
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { browserTest, launchBrowser } from "./browser_helpers.ts";
import { startTestServer } from "./helpers.ts";
import { runAgentCli } from "./support_helpers.ts";

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

/** A real 1×1 PNG. */
const PIXEL_PNG =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

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

Deno.test({
  name:
    "in Chromium, a pasted image reaches the console as a thumbnail, an agent's PDF reaches the widget as a file chip, a refused type says why, and notes survive a console reload",
  ...browserTest,
  async fn() {
    await using server = await startTestServer({ demoAgents: ["alice:secret123"] });
    await using browser = await launchBrowser();
    const visitor = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
    const agent = await (await browser.newContext()).newPage();
    const errors: string[] = [];
    for (const p of [visitor, agent]) p.on("pageerror", (e) => errors.push(e.message));
    await visitor.goto(server.http("/support.html?lang=en"));
    const widget = await visitorWrites(visitor, "My parcel arrived broken");
    await consoleLogin(agent, server, "alice", "secret123");
    await agent.click("#queue li.conversation button.accept");
    await agent.waitForSelector("#messages li.message[data-id]");

    // The visitor pastes an image into the text box: it uploads, then goes with Send (no text needed).
    await widget.locator("#text").evaluate((box, png) => {
      const data = new DataTransfer();
      const bytes = Uint8Array.from(atob(png), (c) => c.charCodeAt(0));
      data.items.add(new File([bytes], "parcel.png", { type: "image/png" }));
      box.dispatchEvent(
        new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }),
      );
    }, PIXEL_PNG);
    await widget.locator('#uploads li.upload[data-state="done"]', { hasText: "parcel.png" }).waitFor();
    await widget.locator("#send").click();
    await widget.locator("#uploads li").waitFor({ state: "detached" });
    const thumb = "#messages li.message[data-id] .attachments button.thumb img";
    await agent.waitForSelector(thumb);
    await agent.waitForFunction(
      (sel) => document.querySelector<HTMLImageElement>(sel)?.naturalWidth === 1,
      thumb,
    );
    assert.equal(await agent.getAttribute(thumb, "alt"), "parcel.png");
    // The widget has no cookie: its own copy is fetched with the visitor's token, and decodes too.
    const widgetFrame = visitor.frame({ url: /\/widget\.html/ });
    assert.ok(widgetFrame, "the widget's frame");
    await widgetFrame.waitForFunction(
      (sel) => document.querySelector<HTMLImageElement>(sel)?.naturalWidth === 1,
      thumb,
      { timeout: 10_000 },
    );

    // The agent notes something privately, then sends a PDF through the file picker.
    await agent.fill("#text", "Photo shows a dented box");
    await agent.click("#note");
    await agent.waitForSelector("#notes li:has-text('Photo shows a dented box')");
    await agent.setInputFiles("#file-input", {
      name: "return-label.pdf",
      mimeType: "application/pdf",
      buffer: Buffer.from("%PDF-1.4\n%switchboard test\n"),
    });
    await agent.waitForSelector('#uploads li.upload[data-state="done"]:has-text("return-label.pdf")');
    await agent.click("#send");
    const chip = widget.locator("#messages li.message[data-id] .file-chip", { hasText: "return-label.pdf" });
    await chip.waitFor();
    assert.match((await chip.textContent()) ?? "", /return-label\.pdf.*\d+ B/);
    // A click downloads it under its name (fetched with the token, saved from a blob).
    const [download] = await Promise.all([visitor.waitForEvent("download"), chip.click()]);
    assert.equal(download.suggestedFilename(), "return-label.pdf");

    // A file the server refuses (not a PNG, whatever its name says) shows why, in the visitor's language.
    await widget.locator("#file-input").setInputFiles({
      name: "x.png",
      mimeType: "image/png",
      buffer: Buffer.from([0x4d, 0x5a, 0x90, 0x00]),
    });
    const failed = widget.locator('#uploads li.upload[data-state="failed"]');
    await failed.waitFor();
    assert.match((await failed.textContent()) ?? "", /This type of file cannot be sent/);
    await widget.locator("#lang").click();
    assert.match((await failed.textContent()) ?? "", /不能发送这种类型的文件/);
    await failed.locator(".upload-remove").click();
    assert.equal(await widget.locator("#uploads li").count(), 0, "the failed file can be removed");

    // After a reload the console shows the conversation again: the thumbnail and the private note.
    await agent.reload();
    await agent.waitForSelector('#state[data-state="open"]');
    await agent.waitForSelector("#notes li:has-text('Photo shows a dented box')");
    await agent.waitForSelector(thumb);
    await agent.waitForSelector("#messages .file-chip:has-text('return-label.pdf')");
    assert.deepEqual(errors, [], "no page errors");
  },
});

Deno.test({
  name:
    "in Chromium, an admin adds an agent, disables and renames it and sees the visitor's earlier conversation",
  ...browserTest,
  async fn() {
    const dataDir = await Deno.makeTempDir();
    try {
      const added = await runAgentCli(["add", "root", "--admin", "--data-dir", dataDir], "root-pass-123\n");
      assert.equal(added.code, 0, added.stderr);
      await using server = await startTestServer({ dataDir, demoAgents: ["alice:secret123"] });
      await using browser = await launchBrowser();
      const visitor = await (await browser.newContext()).newPage();
      const admin = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
      const errors: string[] = [];
      for (const p of [visitor, admin]) p.on("pageerror", (e) => errors.push(e.message));

      // Only admins see the button.
      await consoleLogin(admin, server, "alice", "secret123");
      assert.equal(await admin.isVisible("#manage-agents"), false, "not for alice");
      await admin.click("#logout");
      await consoleLogin(admin, server, "root", "root-pass-123");
      await admin.click("#manage-agents");
      await admin.waitForSelector('#admin-agents li[data-username="alice"]');
      await admin.fill("#new-username", "carol");
      await admin.fill("#new-name", "Carol");
      await admin.fill("#new-password", "short");
      await admin.click("#add-agent");
      await admin.waitForSelector("#agents-error:has-text('at least 8')");
      await admin.fill("#new-password", "carol-pass-1");
      await admin.click("#add-agent");
      const carol = '#admin-agents li[data-username="carol"]';
      await admin.waitForSelector(carol);
      await admin.click(`${carol} .admin-toggle`);
      await admin.waitForSelector(`${carol}.disabled`);
      await admin.selectOption(`${carol} .admin-role`, "admin");
      await admin.waitForSelector("#agents-status:has-text('carol')");
      // A rename alone, from the keyboard.
      await admin.click(`${carol} .admin-rename`);
      await admin.keyboard.press("Control+A");
      await admin.keyboard.type("Carol Wu");
      await admin.keyboard.press("Enter");
      await admin.waitForSelector(`${carol} .admin-who strong:text-is("Carol Wu")`);
      await admin.keyboard.press("Escape");
      const login = await admin.evaluate(async () =>
        (await fetch("/api/agent/login", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ username: "carol", password: "carol-pass-1" }),
        })).status
      );
      assert.notEqual(login, 200, "a disabled agent cannot sign in");

      // A visitor's closed conversation shows, read-only, beside the next one.
      await visitor.goto(server.http("/support.html?lang=en"));
      const widget = await visitorWrites(visitor, "First question");
      await admin.click("#queue li.conversation button.accept");
      await admin.waitForSelector("#messages li.message:has-text('First question')");
      await admin.click("#close-conversation");
      await admin.waitForSelector("#dismiss:visible");
      await admin.click("#dismiss");
      await widget.locator("#rating-form").waitFor({ state: "visible" });
      await widget.locator("#text").fill("Second question");
      await widget.locator("#send").click();
      await admin.click("#queue li.conversation button.accept");
      await admin.waitForSelector("#messages li.message:has-text('Second question')");
      await admin.click("#earlier summary");
      await admin.click("#earlier-list button.earlier-item:has-text('First question')");
      await admin.waitForSelector(
        "#transcript-dialog[open] #transcript-messages li:has-text('First question')",
      );
      await admin.click("#transcript-close");
      assert.deepEqual(errors, [], "no page errors");
    } finally {
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
