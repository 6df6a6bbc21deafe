import assert from "node:assert/strict";
import { delay, get, spawnServer, startTestServer, TestClient } from "./helpers.ts";

const SOCKET_PATHS = [
  "/ws/echo",
  "/ws/push",
  "/md_admin/test_socket",
  "/test_websocket",
  "/ws/chat/lobby?name=a",
];

Deno.test("a foreign Origin is refused with 403 on every socket path; same origin and no origin work", async () => {
  await using server = await startTestServer();
  for (const path of SOCKET_PATHS) {
    const foreign = await get(server.http(path), {
      headers: { upgrade: "websocket", origin: "https://evil.example", connection: "upgrade" },
    });
    assert.equal(foreign.status, 403, `${path} with a foreign origin → 403`);
    assert.equal(JSON.parse(foreign.text).error, "forbidden_origin");
    await using same = await TestClient.open(server.ws(path), {
      headers: { origin: `http://127.0.0.1:${server.port}` },
    });
    await using none = await TestClient.open(server.ws(path));
    assert.equal(same.ws.readyState, WebSocket.OPEN);
    assert.equal(none.ws.readyState, WebSocket.OPEN);
  }
});

Deno.test("--allowed-origins admits the listed origins only", async () => {
  await using server = await startTestServer({ allowedOrigins: ["https://app.example.com"] });
  await using ok = await TestClient.open(server.ws("/ws/echo"), {
    headers: { origin: "https://app.example.com" },
  });
  assert.equal(ok.ws.readyState, WebSocket.OPEN);
  const other = await get(server.http("/ws/echo"), {
    headers: { upgrade: "websocket", origin: "https://other.example.com" },
  });
  assert.equal(other.status, 403);
});

Deno.test("the per-IP connection limit refuses the next socket with 429 and frees on close", async () => {
  await using server = await startTestServer({ maxConnsPerIp: 3 });
  const clients = await Promise.all([1, 2, 3].map(() => TestClient.open(server.ws("/ws/echo"))));
  const refused = await get(server.http("/ws/echo"), { headers: { upgrade: "websocket" } });
  assert.equal(refused.status, 429);
  assert.equal(JSON.parse(refused.text).error, "too_many_connections");
  await clients[0].close();
  for (let i = 0; i < 50 && server.running.app.ctx.guard.count("127.0.0.1") > 2; i++) await delay(10);
  await using again = await TestClient.open(server.ws("/ws/echo"));
  assert.equal(again.ws.readyState, WebSocket.OPEN);
  await Promise.all(clients.slice(1).map((c) => c.close()));
});

Deno.test("the per-IP handshake rate limit answers 429 past the burst; 0 disables it", async () => {
  await using server = await startTestServer({ handshakeRate: 1, handshakeBurst: 5 });
  const statuses: number[] = [];
  for (let i = 0; i < 8; i++) {
    // A plain GET with an upgrade header counts as a handshake attempt without opening a socket.
    statuses.push(
      (await get(server.http("/ws/chat/x?name=a"), { headers: { upgrade: "websocket" } })).status,
    );
  }
  assert.ok(statuses.slice(5).every((s) => s === 429), `after 5, 429s: ${statuses}`);
  await using open = await startTestServer({ handshakeRate: 0, maxConnsPerIp: 0 });
  const many = await Promise.all(Array.from({ length: 30 }, () => TestClient.open(open.ws("/ws/echo"))));
  // Every one of them is served: each gets its own frame back.
  many.forEach((c, i) => c.send(`hello ${i}`));
  assert.deepEqual(await Promise.all(many.map((c) => c.next())), many.map((_, i) => `hello ${i}`));
  await Promise.all(many.map((c) => c.close()));
});

Deno.test("a client that stops reading is cut off while a healthy one gets every message; RSS stays bounded", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    await using server = await spawnServer(
      [
        "--data-dir",
        dataDir,
        "--api-key",
        "k",
        "--max-publish-bytes",
        "16777216",
        "--max-buffered-bytes",
        "1048576",
        "--log-level",
        "warn",
      ],
      { direct: true },
    );
    const rss = () =>
      Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${server.child.pid}/status`))![1]) * 1024;
    const healthy = await TestClient.open(server.ws("/ws/push?time=0&topics=flood"));
    await healthy.nextType("subscribed");
    const payload = "p".repeat(20_000);
    let received = 0;
    // Publishes 8 × 250 × 20 kB = 40 MB and returns the peak RSS seen meanwhile.
    const flood = async (round: number) => {
      let peak = 0;
      for (let b = 0; b < 8; b++) {
        const res = await get(server.http("/api/publish"), {
          method: "POST",
          headers: { authorization: "Bearer k", "content-type": "application/json" },
          body: JSON.stringify({
            messages: Array.from(
              { length: 250 },
              (_, i) => ({ topic: "flood", data: `${round}-${b}-${i}-${payload}` }),
            ),
          }),
        });
        assert.equal(res.status, 200, res.text);
        peak = Math.max(peak, rss());
        const target = received + 250;
        while (received < target) {
          await healthy.nextType("publication", 10_000);
          received++;
        }
        peak = Math.max(peak, rss());
      }
      return peak;
    };
    // Rounds 1 and 2 bring the heap to its steady size with only the healthy client; the higher of their peaks
    // is what the heap reaches without a slow consumer (garbage collection moves each one by ±15 MiB).
    const warm = Math.max(await flood(1), await flood(2));
    // Round 2 adds a slow consumer: a raw socket that completes the handshake and never reads again. Unbounded,
    // Deno would keep all 40 MB for it; bounded, it is cut at --max-buffered-bytes (1 MiB here).
    const slow = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await slow.write(
      new TextEncoder().encode(
        "GET /ws/push?time=0&topics=flood HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      ),
    );
    await slow.read(new Uint8Array(1024));
    const withSlow = await flood(3);
    assert.equal(received, 6000, "the healthy client got every publication");
    const metrics = (await get(server.http("/metrics"))).text;
    assert.match(metrics, /switchboard_slow_consumer_disconnects_total\{endpoint="push"\} 1/);
    const grew = withSlow - warm;
    console.log(
      `slow consumer: peak RSS ${Math.round(warm / 1048576)} MiB warm, ${
        Math.round(withSlow / 1048576)
      } MiB with it`,
    );
    assert.ok(
      grew < 20 * 1024 * 1024,
      `RSS grew by ${Math.round(grew / 1048576)} MiB with a slow consumer (bounded)`,
    );
    slow.close();
    await healthy.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("pages carry CSP, nosniff, referrer and framing headers", async () => {
  await using server = await startTestServer();
  for (const path of ["/", "/echo.html", "/chat.html", "/push.html"]) {
    const res = await get(server.http(path));
    const csp = res.headers.get("content-security-policy") ?? "";
    assert.match(csp, /script-src 'self'/, path);
    assert.doesNotMatch(csp, /unsafe-inline/, path);
    assert.match(csp, /frame-ancestors 'none'/, path);
    assert.equal(res.headers.get("x-frame-options"), "DENY");
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    assert.equal(res.headers.get("referrer-policy"), "no-referrer");
    assert.doesNotMatch(res.text, /<script(?![^>]*\bsrc=)[^>]*>/i, `${path} has no inline script`);
    assert.doesNotMatch(res.text, /\sstyle=|<style/i, `${path} has no inline style`);
  }
});

Deno.test("/metrics parses as Prometheus text and moves with traffic", async () => {
  await using server = await startTestServer();
  const parse = (text: string) => {
    const values = new Map<string, number>();
    for (const line of text.split("\n")) {
      if (line === "" || line.startsWith("#")) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.e+]+|\+Inf|NaN)$/.exec(line);
      assert.ok(m, `a valid sample line: ${line}`);
      values.set(m[1], Number(m[2]));
    }
    return values;
  };
  const before = parse((await get(server.http("/metrics"))).text);
  await using c = await TestClient.open(server.ws("/ws/echo"));
  c.send("one");
  await c.next();
  const after = parse((await get(server.http("/metrics"))).text);
  assert.equal(after.get('switchboard_connections{endpoint="echo"}'), 1);
  assert.equal(after.get('switchboard_messages_in_total{endpoint="echo"}'), 1);
  assert.ok((after.get('switchboard_messages_out_total{endpoint="echo"}') ?? 0) >= 1);
  assert.equal(before.get('switchboard_connections{endpoint="echo"}'), undefined);
});

Deno.test("logs redact tokens and never carry message bodies", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    await using server = await spawnServer(["--data-dir", dataDir], { direct: true });
    await using c = await TestClient.open(server.ws("/ws/echo?token=supersecret&x=1"));
    c.send("private body text");
    await c.next();
    await c.close();
    await server.stop("SIGTERM");
    const log = server.lines.join("\n");
    assert.match(log, /token=\*\*\*/);
    assert.doesNotMatch(log, /supersecret/);
    assert.doesNotMatch(log, /private body text/);
    const socketLines = server.lines.map((line) => JSON.parse(line)).filter((rec) =>
      ["connect", "disconnect"].includes(rec.event)
    );
    assert.deepEqual(socketLines.map((rec) => rec.event), ["connect", "disconnect"], "the socket was logged");
    for (const rec of socketLines) assert.match(rec.conn, /^[0-9a-f]{8}-[0-9a-z]+$/, "with its conn id");
    assert.equal(socketLines[0].conn, socketLines[1].conn);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
