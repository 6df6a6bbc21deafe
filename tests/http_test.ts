import assert from "node:assert/strict";
import { get, startTestServer } from "./helpers.ts";

Deno.test("GET /healthz answers 200 ok", async () => {
  await using server = await startTestServer();
  const res = await get(server.http("/healthz"));
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.text), { status: "ok" });
});

Deno.test("GET /readyz reports store and broker", async () => {
  await using server = await startTestServer();
  const res = await get(server.http("/readyz"));
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.text), { status: "ok", store: true, broker: true });
});

Deno.test("pages and the seed's page aliases are served with security headers", async () => {
  await using server = await startTestServer();
  const cases: [string, string][] = [
    ["/", "/index.html"],
    ["/echo.html", "/echo.html"],
    ["/push.html", "/push.html"],
    ["/md_admin/socket_test", "/echo.html"],
    ["/socket_test", "/echo.html"],
    ["/md_admin/websocket_test", "/push.html"],
    ["/websocket_test", "/push.html"],
  ];
  const bodies = new Map<string, string>();
  for (const [path, file] of cases) {
    const res = await get(server.http(path));
    assert.equal(res.status, 200, `${path} → 200`);
    assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(res.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    assert.match(res.headers.get("content-security-policy") ?? "", /frame-ancestors 'none'/);
    if (bodies.has(file)) assert.equal(res.text, bodies.get(file), `${path} serves ${file}`);
    bodies.set(file, res.text);
  }
  assert.match(bodies.get("/index.html")!, /echo\.html/);
  assert.match(bodies.get("/index.html")!, /push\.html/);
});

Deno.test("the shared client module is served as JavaScript", async () => {
  await using server = await startTestServer();
  const res = await get(server.http("/client.js"));
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/javascript/);
  assert.match(res.text, /export/);
});

Deno.test("unknown paths answer 404 with a JSON message", async () => {
  await using server = await startTestServer();
  const res = await get(server.http("/no/such/page"));
  assert.equal(res.status, 404);
  assert.equal(JSON.parse(res.text).error, "not_found");
});

Deno.test("a path that exists with another method answers 405 with Allow (RFC 9110)", async () => {
  await using server = await startTestServer();
  const cases: [string, string, string][] = [
    ["POST", "/healthz", "GET"],
    ["GET", "/api/publish", "POST"],
    ["PUT", "/api/schedules", "GET, POST"],
    ["GET", "/api/schedules/some-id", "DELETE"],
  ];
  for (const [method, path, allow] of cases) {
    const res = await get(server.http(path), { method });
    assert.equal(res.status, 405, `${method} ${path}: ${res.text}`);
    assert.equal(res.headers.get("allow"), allow, `${method} ${path}`);
    assert.equal(JSON.parse(res.text).error, "method_not_allowed");
  }
  // A path only the page fallback matches is a page (or 404), never a 405.
  assert.equal((await get(server.http("/echo.html"), { method: "POST" })).status, 404);
});

Deno.test("a plain GET on every socket path answers 426 with Upgrade: websocket", async () => {
  await using server = await startTestServer();
  for (
    const path of [
      "/ws/echo",
      "/ws/push",
      "/md_admin/test_socket",
      "/test_socket",
      "/md_admin/test_websocket",
      "/test_websocket",
      "/ws/chat/lobby?name=a",
    ]
  ) {
    const res = await get(server.http(path));
    assert.equal(res.status, 426, `${path} → 426`);
    assert.equal(res.headers.get("upgrade"), "websocket");
    assert.match(JSON.parse(res.text).message, /WebSocket/);
  }
});

Deno.test("no request path reads a file outside static/", async () => {
  await using server = await startTestServer();
  const attempts = [
    "/../deno.json",
    "/%2e%2e/deno.json",
    "/%2e%2e%2fdeno.json",
    "/..%2fdeno.json",
    "/static/../deno.json",
    "/..%5cdeno.json",
    "/%5c..%5cdeno.json",
    "/echo.html%00.js",
    "/%00",
    "/....//deno.json",
    "/%252e%252e/deno.json",
    "//etc/passwd",
    "/main.ts",
    "/lib/config.ts",
  ];
  for (const path of attempts) {
    // Raw TCP so no client normalizes the path first.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await conn.write(
      new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
    );
    let text = "";
    const buf = new Uint8Array(65536);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    conn.close();
    assert.doesNotMatch(text, /"tasks"|root:x:0|import /, `${path} must not leak a file`);
    assert.match(text, /^HTTP\/1\.1 (400|404)/, `${path} → 400 or 404, got ${text.slice(0, 20)}`);
  }
});

Deno.test("GET /metrics exposes Prometheus text", async () => {
  await using server = await startTestServer();
  const res = await get(server.http("/metrics"));
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
  // The process's own memory, each kind a positive byte count, RSS the largest.
  const bytes = (kind: string) =>
    Number(new RegExp(`switchboard_process_memory_bytes\\{kind="${kind}"\\} (\\d+)`).exec(res.text)?.[1]);
  for (const kind of ["rss", "heap_total", "heap_used", "external"]) assert.ok(bytes(kind) > 0, kind);
  assert.ok(bytes("rss") > bytes("heap_used"));
});
