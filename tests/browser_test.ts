/// <reference lib="dom" />
import assert from "node:assert/strict";
import { browserTest, launchBrowser } from "./browser_helpers.ts";
import { startTestServer } from "./helpers.ts";

Deno.test({
  name: "in Chromium, the echo page echoes and the push page shows the ticking time",
  ...browserTest,
  async fn() {
    await using server = await startTestServer();
    await using browser = await launchBrowser();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    await page.goto(server.http("/md_admin/socket_test"));
    await page.waitForSelector('#state[data-state="open"]');
    await page.fill("#text", "hello <b>echo</b>");
    await page.click("#send");
    await page.waitForFunction(() => document.querySelectorAll("#log .entry.in").length >= 1);
    const echoed = await page.textContent("#log .entry.in");
    assert.ok(echoed?.includes("hello <b>echo</b>"), `echo shown as text: ${echoed}`);
    assert.equal(await page.$$eval("#log b", (els) => els.length), 0, "no markup injected");
    await page.goto(server.http("/push.html"));
    await page.waitForSelector('#state[data-state="open"]');
    const t1 = await page.textContent("#time");
    assert.match(t1 ?? "", /^\d{4}\.\d{2}\.\d{2} \d{2}:\d{2}:\d{2}$/);
    await page.waitForFunction((t) => document.querySelector("#time")?.textContent !== t, t1, {
      timeout: 3000,
    });
    assert.deepEqual(errors, [], "no page errors or CSP violations");
  },
});

Deno.test({
  name: "in Chromium, two people chat; one reloads and catches up; an XSS payload renders as text",
  ...browserTest,
  async fn() {
    await using server = await startTestServer();
    await using browser = await launchBrowser();
    const alice = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
    const bob = await (await browser.newContext()).newPage();
    const errors: string[] = [];
    for (const p of [alice, bob]) p.on("pageerror", (e) => errors.push(e.message));
    await alice.goto(server.http("/chat.html#room=lobby&name=alice"));
    await alice.waitForSelector('#state[data-state="open"]');
    // Bob joins through the form.
    await bob.goto(server.http("/chat.html"));
    await bob.fill("#room-input", "lobby");
    await bob.fill("#name-input", "bob");
    await bob.click("#join");
    await bob.waitForSelector('#state[data-state="open"]');
    await alice.waitForFunction(() => document.querySelector("#members")?.textContent?.includes("bob"));
    const xss = `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`;
    await alice.fill("#text", xss);
    await alice.click("#send");
    await bob.waitForFunction(() =>
      document.querySelectorAll("#messages .message:not(.pending)").length === 1
    );
    const shown = await bob.textContent("#messages .message");
    assert.ok(shown?.includes(xss), `the payload is shown as text: ${shown}`);
    assert.equal(await bob.evaluate(() => (globalThis as unknown as { __xss?: number }).__xss), undefined);
    assert.equal(await bob.$$eval("#messages img, #messages script", (els) => els.length), 0);
    // Bob reloads while alice keeps writing; he catches up without gaps or doubles.
    const reload = bob.reload();
    for (let i = 0; i < 5; i++) {
      await alice.fill("#text", `while away ${i}`);
      await alice.click("#send");
    }
    await reload;
    await bob.waitForSelector('#state[data-state="open"]');
    await alice.waitForFunction(() =>
      document.querySelectorAll("#messages .message:not(.pending)").length === 6
    );
    await bob.waitForFunction(() => document.querySelectorAll("#messages .message").length >= 6);
    const ids = await bob.$$eval(
      "#messages .message",
      (els) => els.map((e) => (e as HTMLElement).dataset.id),
    );
    assert.equal(new Set(ids).size, ids.length, "no duplicates");
    const texts = await bob.$$eval("#messages .message", (els) => els.map((e) => e.textContent ?? ""));
    for (let i = 0; i < 5; i++) {
      assert.ok(texts.some((t) => t.includes(`while away ${i}`)), `has while away ${i}`);
    }
    // Bob answers and alice sees it.
    await bob.fill("#text", "back again");
    await bob.click("#send");
    await alice.waitForFunction(() =>
      document.querySelector("#messages")?.textContent?.includes("back again")
    );
    assert.deepEqual(errors, []);
  },
});
