/**
 * Business hours (with a fixed clock), the welcome in both languages, and the leave-a-message form: a
 * conversation agents see as offline, with its webhooks, kept for the visitor's next visit.
 */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { availability, defaultSettings, parseSettings, withinHours } from "../lib/support/hours.ts";
import { get, startTestServer, TestClient } from "./helpers.ts";
import { loginAgent, openAgent } from "./support_helpers.ts";
import { receiver, SECRET } from "./webhook_receiver.ts";

type Frame = Record<string, unknown>;
const JWT_SECRET = "a-test-secret-of-at-least-32-bytes!!";

const shop = parseSettings({
  hours: {
    enabled: true,
    timeZone: "Asia/Shanghai",
    days: {
      mon: [["09:00", "12:00"], ["13:00", "18:00"]],
      tue: [["09:00", "18:00"]],
      wed: [["09:00", "18:00"]],
      thu: [["09:00", "18:00"]],
      fri: [["09:00", "18:00"]],
      sat: [["10:00", "24:00"]],
    },
    closedDates: ["2026-12-25"],
  },
}, defaultSettings());
/** An instant given as Shanghai wall-clock time. */
const sh = (local: string) => Date.parse(`${local}+08:00`);

Deno.test("business hours with a fixed clock: ranges, lunch, midnight, closed dates, another zone", () => {
  const cases: [string, boolean][] = [
    ["2026-11-30T08:59:59", false], // Monday, before opening
    ["2026-11-30T09:00:00", true],
    ["2026-11-30T12:30:00", false], // lunch
    ["2026-11-30T17:59:00", true],
    ["2026-11-30T18:00:00", false],
    ["2026-12-05T23:59:00", true], // Saturday until midnight
    ["2026-12-06T10:00:00", false], // Sunday: no ranges
    ["2026-12-25T10:00:00", false], // a Friday, but closed
    ["2026-12-24T10:00:00", true],
  ];
  for (const [local, open] of cases) assert.equal(withinHours(shop.hours, sh(local)), open, local);
  // 09:00 in Shanghai is 01:00 UTC: the zone decides, not the server's clock.
  assert.equal(withinHours(shop.hours, Date.parse("2026-11-30T01:00:00Z")), true);
  const paris = parseSettings({ hours: { timeZone: "Europe/Paris" } }, shop);
  assert.equal(withinHours(paris.hours, Date.parse("2026-11-30T08:00:00Z")), true, "09:00 in Paris (CET)");
  assert.equal(withinHours(paris.hours, Date.parse("2026-07-06T07:30:00Z")), true, "09:30 in Paris (CEST)");
  assert.equal(withinHours(paris.hours, Date.parse("2026-07-06T06:30:00Z")), false, "08:30 in Paris (CEST)");
  assert.equal(
    withinHours(defaultSettings().hours, sh("2026-12-06T03:00:00")),
    true,
    "hours off: always open",
  );

  const noAgents = { ...shop, offlineWhenNoAgents: true };
  assert.deepEqual(availability(noAgents, sh("2026-11-30T10:00:00"), 0), {
    open: false,
    reason: "no_agents",
  });
  assert.deepEqual(availability(noAgents, sh("2026-11-30T10:00:00"), 2), { open: true, reason: null });
  assert.deepEqual(availability(noAgents, sh("2026-11-30T20:00:00"), 2), { open: false, reason: "closed" });
});

Deno.test("an admin sets hours and welcome; visitors outside hours leave a message agents see as offline", async () => {
  const hooks = receiver(() => 204);
  try {
    await using server = await startTestServer({
      apiKeys: ["ops-key"],
      demoAgents: ["alice:secret123"],
      webhookUrls: [hooks.url],
      webhookSecret: SECRET,
      jwtSecrets: [JWT_SECRET],
    });
    const key = { authorization: "Bearer ops-key", "content-type": "application/json" };
    const put = (body: unknown, headers: Record<string, string> = key) =>
      get(server.http("/api/support/settings"), { method: "PUT", headers, body: JSON.stringify(body) });

    // By default the desk is open and there is no welcome.
    const first = JSON.parse((await get(server.http("/api/support/availability"))).text);
    assert.deepEqual([first.open, first.reason, first.welcome], [true, null, ""]);

    // Only admins and the API key change settings; any agent reads them.
    const alice = await loginAgent(server, "alice", "secret123");
    const asAlice = { authorization: `Bearer ${alice.body.token}`, "content-type": "application/json" };
    assert.equal((await put({ offlineWhenNoAgents: true }, asAlice)).status, 403);
    assert.equal((await get(server.http("/api/support/settings"), { headers: asAlice })).status, 200);
    assert.equal((await get(server.http("/api/support/settings"))).status, 401);
    for (
      const [bad, words] of [
        [{ hours: { timeZone: "Mars/Olympus" } }, /time zone/],
        [{ hours: { days: { mon: [["18:00", "09:00"]] } } }, /bad range/],
        [{ hours: { days: { mon: [["9:00", "18:00"]] } } }, /bad range/],
        [{ hours: { days: { funday: [] } } }, /not a day/],
        [{ hours: { closedDates: ["2026-02-30"] } }, /bad date/],
        [{ welcome: { en: "x".repeat(501) } }, /at most 500/],
        [{ offlineWhenNoAgents: "yes" }, /true or false/],
        [[1, 2], /JSON object/],
      ] as const
    ) {
      const res = await put(bad);
      assert.equal(res.status, 400, JSON.stringify(bad));
      const body = JSON.parse(res.text);
      assert.equal(body.error, "bad_settings");
      assert.match(body.message, words);
    }

    // Closed every day of the week, with a welcome in each language.
    const saved = await put({
      hours: { enabled: true, timeZone: "Asia/Shanghai", days: {} },
      welcome: { en: "Hello! We answer within a day.", zh: "您好！我们会在一天内回复。" },
    });
    assert.equal(saved.status, 200, saved.text);
    assert.deepEqual(JSON.parse(saved.text).hours.days.mon, []);
    const log = JSON.parse((await get(server.http("/api/admin/audit"), { headers: key })).text);
    assert.deepEqual(
      [log.entries[0].action, log.entries[0].actor, log.entries[0].detail],
      ["support.settings", "api-key", { changed: ["hours", "welcome"] }],
    );
    const zh = JSON.parse((await get(server.http("/api/support/availability?lang=zh"))).text);
    assert.deepEqual([zh.open, zh.reason, zh.welcome, zh.timeZone], [
      false,
      "closed",
      "您好！我们会在一天内回复。",
      "Asia/Shanghai",
    ]);
    const en = JSON.parse(
      (await get(server.http("/api/support/availability"), { headers: { "accept-language": "en-GB,en" } }))
        .text,
    );
    assert.equal(en.welcome, "Hello! We answer within a day.");

    // The widget's socket says so right after its session.
    await using visitor = await TestClient.open(server.ws("/ws/support/visitor?lang=zh"));
    const session = await visitor.nextType("session");
    const avail = await visitor.nextType("availability");
    assert.deepEqual([avail.open, avail.reason, avail.welcome], [
      false,
      "closed",
      "您好！我们会在一天内回复。",
    ]);

    // The form: bad fields first.
    const agent = await openAgent(server, "alice", "secret123");
    const offline = (body: unknown, token = session.token as string) =>
      get(server.http("/api/support/offline"), {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    for (
      const bad of [
        { name: "Li", email: "not-an-email", text: "hi" },
        { name: "Li", text: "hi" },
        { name: "Li", email: "li@example.com", text: "   " },
        { name: "x".repeat(65), email: "li@example.com", text: "hi" },
        { name: "Li", email: "li@example.com", text: "x".repeat(5000) },
      ]
    ) {
      const res = await offline(bad);
      assert.equal(res.status, 400, JSON.stringify(bad));
      assert.equal(JSON.parse(res.text).error, "bad_request");
    }
    const form = { name: "李雷", email: "li@example.com", text: "我的订单还没到", clientMsgId: "form-1" };
    const left = await offline(form);
    assert.equal(left.status, 201, left.text);
    const { conversationId, token } = JSON.parse(left.text);
    assert.equal(token, session.token, "the widget's own visitor token");
    // Sent twice (a retry after a lost answer): stored once, same conversation.
    const again = await offline(form);
    assert.equal(JSON.parse(again.text).conversationId, conversationId);

    // Agents see it in the queue, marked offline, with the visitor's name and email.
    const update = await agent.client.next((f) =>
      f.type === "conversation" && (f.conversation as Frame).id === conversationId &&
      (f.conversation as Frame).lastMessage !== null
    );
    const conv = update.conversation as Frame;
    assert.deepEqual([conv.status, conv.source], ["queued", "offline"]);
    assert.deepEqual([(conv.visitor as Frame).name, (conv.visitor as Frame).email], [
      "李雷",
      "li@example.com",
    ]);
    const listed = JSON.parse(
      (await get(server.http("/api/support/conversations?status=queued"), { headers: asAlice })).text,
    );
    assert.equal(listed.conversations.find((c: Frame) => c.id === conversationId)?.source, "offline");

    // The webhooks fire: the conversation (offline) and the message (visitor online or not, for an email).
    await hooks.until((rs) =>
      rs.some((r) => r.event.type === "message.created") &&
      rs.some((r) => r.event.type === "conversation.created")
    );
    const created = hooks.requests.find((r) => r.event.type === "conversation.created")!;
    assert.equal(((created.event.data as Frame).conversation as Frame).source, "offline");
    const messages = hooks.requests.filter((r) => r.event.type === "message.created");
    assert.equal(messages.length, 1, "the resend made no second event");
    assert.equal(((messages[0].event.data as Frame).message as Frame).text, "我的订单还没到");

    // The visitor's next visit shows the message (and the agent's answer, once there is one).
    await using back = await TestClient.open(server.ws(`/ws/support/visitor?token=${token}`));
    assert.equal((await back.nextType("session")).conversationId, conversationId);
    const history = await back.nextType("history");
    assert.deepEqual((history.messages as Frame[]).map((m) => m.text), ["我的订单还没到"]);

    // A form without a token makes a new visitor and gives it a token to keep.
    const fresh = await get(server.http("/api/support/offline"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "Ann", email: "ann@example.com", text: "Call me back" }),
    });
    assert.equal(fresh.status, 201);
    assert.match(JSON.parse(fresh.text).token, /^v_/);

    // A logged-in customer (the host's user token) leaves a message as its verified self: the token's name wins
    // over the form's, the form fills the email the token lacks, and the next socket with the token finds it.
    const jwt = await new SignJWT({ name: "Verified Wang" }).setProtectedHeader({ alg: "HS256" })
      .setSubject("cust-7").setExpirationTime("10m").sign(new TextEncoder().encode(JWT_SECRET));
    const asUser = await offline(
      { name: "Someone Else", email: "wang@example.com", text: "订单 7 呢？" },
      jwt,
    );
    assert.equal(asUser.status, 201, asUser.text);
    const userConv = JSON.parse(asUser.text).conversationId;
    const queued = JSON.parse(
      (await get(server.http("/api/support/conversations?status=queued"), { headers: asAlice })).text,
    ).conversations.find((c: Frame) => c.id === userConv);
    assert.deepEqual(
      [queued.source, queued.visitor.name, queued.visitor.email, queued.visitor.verified],
      ["offline", "Verified Wang", "wang@example.com", true],
    );
    await using user = await TestClient.open(server.ws(`/ws/support/visitor?jwt=${jwt}`));
    assert.equal((await user.nextType("session")).conversationId, userConv);
    assert.deepEqual(((await user.nextType("history")).messages as Frame[]).map((m) => m.text), [
      "订单 7 呢？",
    ]);
    // A forged user token is refused before anything is stored.
    const forged = await offline(
      { name: "X", email: "x@example.com", text: "hi" },
      `${jwt.slice(0, -4)}AAAA`,
    );
    assert.equal(forged.status, 401);

    // Open all week, but only with an agent online.
    const allDay = [["00:00", "24:00"]];
    await put({
      hours: {
        days: { mon: allDay, tue: allDay, wed: allDay, thu: allDay, fri: allDay, sat: allDay, sun: allDay },
      },
      offlineWhenNoAgents: true,
    });
    assert.equal(
      JSON.parse((await get(server.http("/api/support/availability"))).text).open,
      true,
      "alice is on",
    );
    agent.client.send({ type: "status", status: "away" });
    await agent.client.next((f) =>
      f.type === "agents" && (f.agents as Frame[]).some((a) => a.username === "alice" && a.status === "away")
    );
    const away = JSON.parse((await get(server.http("/api/support/availability"))).text);
    assert.deepEqual([away.open, away.reason], [false, "no_agents"]);
    await agent.client.close();
  } finally {
    await hooks.close();
  }
});
