/**
 * Accept errors (EMFILE and the like) must not stop the listener (issue #10, finding 3). The real command
 * runs under `ulimit -n`, and the test opens loopback sockets until the server has no descriptor left.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ACCEPT_ERROR_WINDOW_MS, acceptErrorCode, BACKOFF_MAX_MS } from "../lib/http/listener.ts";
import { delay, get, spawnServer, TestClient } from "./helpers.ts";

/** Descriptors for the server: it uses about 30 idle, so a few dozen sockets exhaust them. */
const FD_LIMIT = 100;
/** The most sockets the test opens; all on loopback. */
const MAX_SOCKETS = 300;

/** Polls `fn` every 50 ms until it returns a value (not `undefined`) or `timeoutMs` passes. */
async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = "nothing";
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
      last = "no match";
    } catch (err) {
      last = String(err);
    }
    await delay(50);
  }
  throw new Error(`Expected ${what} within ${timeoutMs} ms; last attempt: ${last}`);
}

Deno.test({
  name:
    "the server serves again after running out of file descriptors, and reports it in /readyz and /metrics",
  ignore: Deno.build.os === "windows",
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "switchboard-test-" });
    const sockets: Deno.TcpConn[] = [];
    try {
      await using server = await spawnServer(["--data-dir", dataDir], {
        direct: true,
        wrapper: ["bash", "-c", `ulimit -n ${FD_LIMIT} && exec "$@"`, "bash"],
      });
      const events = () => server.lines.map((l) => JSON.parse(l).event as string);
      // A socket from before the exhaustion: it must live on.
      await using before = await TestClient.open(server.ws("/ws/echo"));

      // Open sockets until the server has logged two accept errors: the second one comes from a listener
      // opened again while descriptors were still short. Refusals and resets (no listener while it backs off)
      // are expected.
      const acceptErrors = () => events().filter((e) => e === "accept_failed").length;
      let refused = 0;
      for (let i = 0; i < MAX_SOCKETS && acceptErrors() < 2; i++) {
        try {
          sockets.push(await Deno.connect({ hostname: "127.0.0.1", port: server.port }));
        } catch (err) {
          // A closing listener resets the connections still in its backlog (seen as a reset, or as
          // "not connected" when the reset lands while the connect completes).
          if (
            !(err instanceof Deno.errors.ConnectionRefused || err instanceof Deno.errors.ConnectionReset ||
              err instanceof Deno.errors.NotConnected)
          ) {
            throw err;
          }
          refused++;
          await delay(5);
        }
      }
      const opened = sockets.length;
      for (const s of sockets.splice(0)) s.close();

      // Descriptors are free again: within the longest back-off, new connections are served.
      const health = await waitFor("GET /healthz to answer 200", BACKOFF_MAX_MS + 3000, async () => {
        const res = await get(server.http("/healthz"));
        return res.status === 200 ? res : undefined;
      });
      assert.deepEqual(JSON.parse(health.text), { status: "ok" });
      await using after = await TestClient.open(server.ws("/ws/echo"));
      after.send("echo after EMFILE");
      assert.equal(await after.next(), "echo after EMFILE");
      before.send("still here");
      assert.equal(await before.next(), "still here", "a socket opened before the exhaustion still echoes");

      assert.ok(
        acceptErrors() >= 2,
        `two accept_failed lines after ${opened} sockets (${refused} refused or reset); got ${events()}`,
      );
      const metrics = await get(server.http("/metrics"));
      const count = Number(
        /^switchboard_accept_errors_total\{code="EMFILE"\} (\d+)$/m.exec(metrics.text)?.[1],
      );
      assert.ok(count >= 2, `switchboard_accept_errors_total{code="EMFILE"} ≥ 2, got ${count}`);

      // /readyz reports the recent error, then recovers once the errors are older than the window.
      const ready = await get(server.http("/readyz"));
      assert.equal(ready.status, 503, `/readyz answers 503 right after the errors, got ${ready.text}`);
      const body = JSON.parse(ready.text);
      assert.equal(body.status, "unavailable");
      assert.equal(body.store, true);
      assert.equal(body.broker, true);
      assert.match(body.accept, /^EMFILE /);
      const recovered = await waitFor(
        "GET /readyz to answer 200",
        ACCEPT_ERROR_WINDOW_MS + 2000,
        async () => {
          const res = await get(server.http("/readyz"));
          return res.status === 200 ? res : undefined;
        },
      );
      assert.deepEqual(JSON.parse(recovered.text), { status: "ok", store: true, broker: true });

      // Shutdown covers the current server and the dead ones: both sockets get 1001, and it completes.
      const status = await server.stop("SIGTERM");
      assert.equal((await before.closed).code, 1001);
      assert.equal((await after.closed).code, 1001);
      assert.equal(status.code, 0);
      assert.ok(events().includes("stop"), `a stop log line; got events ${events()}`);
      assert.ok(!events().includes("unhandled_rejection"), "no unhandled rejection was logged");
    } finally {
      for (const s of sockets) s.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "acceptErrorCode() names EMFILE, ENFILE and ECONNABORTED from Deno's error messages",
  ignore: Deno.build.os !== "linux",
  fn() {
    assert.equal(acceptErrorCode(new Deno.errors.Http("Too many open files (os error 24)")), "EMFILE");
    assert.equal(acceptErrorCode(new Error("Too many open files in system (os error 23)")), "ENFILE");
    assert.equal(
      acceptErrorCode(new Error("Software caused connection abort (os error 103)")),
      "ECONNABORTED",
    );
    assert.equal(acceptErrorCode(Object.assign(new Error("x"), { code: "EMFILE" })), "EMFILE");
    assert.equal(acceptErrorCode(new Error("something else")), "other");
  },
});
