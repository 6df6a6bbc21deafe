/**
 * Login limits (issue #10, findings 7 and 8): failures count per username and source address, attempts are
 * counted before the slow hash, and hashing has a concurrency cap so a login burst cannot starve the sockets.
 *
 * A second source address has to be real: the server reads it from the TCP connection. Connecting to
 * 127.0.0.2 does not give one (Linux picks the route's preferred source, 127.0.0.1, for all of 127/8), and
 * neither `fetch` nor `Deno.connect` can choose the local address. `node:http` can (`localAddress` binds the
 * socket before it connects), and Linux routes all of 127/8 to the loopback device, so a request bound to
 * 127.0.0.2 reaches the server on 127.0.0.1 and the server sees `remoteAddr` 127.0.0.2. Other systems do not
 * have those addresses, so these tests run on Linux only.
 *
 * @module
 */
import assert from "node:assert/strict";
import http from "node:http";
import { FailureLimiter } from "../lib/support/agents.ts";
import { HashBusyError, HashGate } from "../lib/support/passwords.ts";
import { startTestServer, type TestServer } from "./helpers.ts";

const AGENTS = ["alice:alice-pass-1", "bob:bob-pass-22"];
// Sanitizers are on for every test (deno.json).
const linuxOnly = { ignore: Deno.build.os !== "linux" };

interface LoginResult {
  status: number;
  body: Record<string, unknown>;
  retryAfter: string | undefined;
  /** Milliseconds from sending the request to the end of the answer. */
  ms: number;
}

/** `POST /api/agent/login` from the given local address (127.0.0.1 when not given). */
function loginFrom(
  server: TestServer,
  username: string,
  password: string,
  localAddress = "127.0.0.1",
): Promise<LoginResult> {
  const start = performance.now();
  const body = JSON.stringify({ username, password });
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1",
      port: server.port,
      localAddress,
      method: "POST",
      path: "/api/agent/login",
      agent: false,
      headers: { "content-type": "application/json", "content-length": String(body.length) },
    }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => text += chunk);
      res.on("error", reject);
      res.on("end", () => {
        const header = res.headers["retry-after"];
        resolve({
          status: res.statusCode ?? 0,
          body: JSON.parse(text),
          retryAfter: Array.isArray(header) ? header[0] : header,
          ms: performance.now() - start,
        });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** How many results have each status, as `{401: 5, 429: 25}`. */
function statuses(results: LoginResult[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const r of results) counts[r.status] = (counts[r.status] ?? 0) + 1;
  return counts;
}

Deno.test(
  "login() counts a username's failures per source address, so others cannot lock it out",
  linuxOnly,
  async () => {
    await using server = await startTestServer({ demoAgents: AGENTS });
    for (let i = 0; i < 5; i++) {
      assert.equal((await loginFrom(server, "alice", `wrong-${i}-guess`)).status, 401);
    }
    const here = await loginFrom(server, "alice", "alice-pass-1");
    assert.equal(here.status, 429, "the address that failed 5 times waits, even with the right password");
    assert.ok(Number(here.retryAfter) > 0, `Retry-After is a number of seconds, got ${here.retryAfter}`);
    const there = await loginFrom(server, "alice", "alice-pass-1", "127.0.0.2");
    assert.equal(there.status, 200, `alice logs in from another address; got ${JSON.stringify(there.body)}`);
    assert.equal((there.body.agent as Record<string, unknown>).username, "alice");
  },
);

Deno.test(
  "login() answers a parallel burst of wrong guesses with at most 5 verdicts, then 429",
  linuxOnly,
  async () => {
    await using server = await startTestServer({ demoAgents: AGENTS });
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => loginFrom(server, "alice", `burst-${i}-guess`)),
    );
    const counts = statuses(results);
    assert.ok((counts[401] ?? 0) <= 5, `at most 5 guesses get a verdict; got ${JSON.stringify(counts)}`);
    assert.equal(
      (counts[401] ?? 0) + (counts[429] ?? 0),
      30,
      `only 401 and 429; got ${JSON.stringify(counts)}`,
    );
    for (const r of results.filter((r) => r.status === 429)) {
      assert.equal(r.body.error, "rate_limited");
      assert.ok(Number(r.retryAfter) > 0, `429 carries Retry-After; got ${r.retryAfter}`);
    }
  },
);

Deno.test(
  "login() caps password hashing, so a burst of logins does not starve the sockets",
  linuxOnly,
  async () => {
    await using server = await startTestServer({ demoAgents: AGENTS });
    const echo = new WebSocket(server.ws("/ws/echo"));
    try {
      await new Promise((resolve, reject) => {
        echo.onopen = resolve;
        echo.onerror = () => reject(new Error("The echo socket did not open"));
      });
      const echoOnce = (text: string) =>
        new Promise<number>((resolve) => {
          const start = performance.now();
          echo.onmessage = (e) => {
            if (e.data === text) resolve(performance.now() - start);
          };
          echo.send(text);
        });
      // 200 logins for unknown usernames from 10 addresses, 20 each: no address passes the per-address limit, so
      // every one of them reaches the password hash unless the hashing cap turns it away.
      let done = false;
      const burst = Promise.all(
        Array.from(
          { length: 200 },
          (_, i) => loginFrom(server, `nobody-${i}`, "some-guess-1", `127.0.0.${2 + i % 10}`),
        ),
      ).finally(() => done = true);
      let maxRoundTrip = 0;
      let pings = 0;
      while (!done) {
        maxRoundTrip = Math.max(maxRoundTrip, await echoOnce(`ping ${pings++}`));
      }
      const results = await burst;
      const counts = statuses(results);
      // Generous: a round trip on loopback takes well under a millisecond; this only catches starvation.
      assert.ok(
        maxRoundTrip < 500,
        `echo answers within 500 ms during the burst; the slowest of ${pings} took ${
          Math.round(maxRoundTrip)
        } ms`,
      );
      assert.equal(
        (counts[401] ?? 0) + (counts[503] ?? 0),
        200,
        `only 401 and 503; got ${JSON.stringify(counts)}`,
      );
      const busy = results.filter((r) => r.status === 503);
      assert.ok(busy.length > 0, `the excess is turned away; got ${JSON.stringify(counts)}`);
      for (const r of busy) {
        assert.equal(r.body.error, "busy");
        assert.ok(Number(r.retryAfter) > 0, `503 carries Retry-After; got ${r.retryAfter}`);
      }
      const slowestBusy = Math.max(...busy.map((r) => r.ms));
      assert.ok(
        slowestBusy < 2000,
        `503 comes at once, not after a wait; the slowest took ${slowestBusy} ms`,
      );
      // The cap leaves room for the owner: a login with the right password still works.
      assert.equal((await loginFrom(server, "alice", "alice-pass-1")).status, 200);
    } finally {
      const closed = new Promise((resolve) => echo.onclose = resolve);
      echo.close();
      await closed;
    }
  },
);

Deno.test("FailureLimiter holds at most maxKeys keys and forgets the oldest first", () => {
  const limiter = new FailureLimiter(5, 60_000, 100);
  for (let i = 0; i < 5; i++) limiter.reserve("oldest", 0);
  assert.ok(limiter.blockedFor("oldest", 1) > 0);
  for (let i = 0; i < 1000; i++) limiter.reserve(`key-${i}`, 1 + i);
  assert.ok(limiter.size <= 100, `at most 100 keys; got ${limiter.size}`);
  assert.equal(limiter.blockedFor("oldest", 1001), 0, "the oldest key is the first to go");
  for (let i = 0; i < 5; i++) limiter.reserve("newest", 1001);
  assert.ok(limiter.blockedFor("newest", 1001) > 0, "the newest key is kept and counted");
  limiter.refund("newest", 1001);
  assert.equal(limiter.blockedFor("newest", 1001), 0, "a refund gives an attempt back");
});

Deno.test("HashGate runs a few tasks at once and turns the rest away once its line is full", async () => {
  const gate = new HashGate(1, 2);
  const { promise: release, resolve } = Promise.withResolvers<void>();
  let ran = 0;
  const task = async () => {
    await release;
    return ++ran;
  };
  const admitted = [gate.run(task), gate.run(task), gate.run(task)];
  assert.deepEqual([gate.running, gate.waiting], [1, 2]);
  await assert.rejects(gate.run(task), HashBusyError);
  resolve();
  assert.deepEqual((await Promise.all(admitted)).sort(), [1, 2, 3]);
  assert.deepEqual([gate.running, gate.waiting], [0, 0]);
});
