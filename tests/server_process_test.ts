import assert from "node:assert/strict";
import { get, ROOT, spawnServer, TestClient } from "./helpers.ts";

async function runCommand(
  args: string[],
  cwd = ROOT,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("deno task start serves echo, push and pages; SIGTERM closes sockets with 1001 and exits 0", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    await using server = await spawnServer(["--data-dir", dataDir]);
    const health = await get(server.http("/healthz"));
    assert.equal(health.status, 200);
    const echo = await TestClient.open(server.ws("/ws/echo"));
    echo.send("hello from a subprocess test");
    assert.equal(await echo.next(), "hello from a subprocess test");
    const push = await TestClient.open(server.ws("/ws/push"));
    assert.ok((await push.next()).time);
    const started = performance.now();
    const status = await server.stop("SIGTERM");
    const [echoClose, pushClose] = await Promise.all([echo.closed, push.closed]);
    assert.equal(echoClose.code, 1001);
    assert.equal(pushClose.code, 1001);
    assert.equal(status.code, 0, `exit code 0, got ${status.code}`);
    assert.ok(performance.now() - started < 2000, "exits within 2 s");
    const events = server.lines.map((l) => JSON.parse(l).event);
    for (const e of ["start", "connect", "disconnect", "signal", "stop"]) {
      assert.ok(events.includes(e), `logs ${e}`);
    }
    // The data dir given by flag is where the database lives.
    assert.ok((await Deno.stat(`${dataDir}/switchboard.db`)).isFile);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("SIGINT also shuts down gracefully with exit 0", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    await using server = await spawnServer(["--data-dir", dataDir], { direct: true });
    await using client = await TestClient.open(server.ws("/ws/echo"));
    const status = await server.stop("SIGINT");
    assert.equal((await client.closed).code, 1001);
    assert.equal(status.code, 0);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("the server started from another working directory still serves its pages", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    await using server = await spawnServer(["--data-dir", `${cwd}/data`], { cwd, direct: true });
    const res = await get(server.http("/echo.html"));
    assert.equal(res.status, 200);
    assert.match(res.text, /<html/i);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("a bad flag exits 2 with one line naming the flag", async () => {
  const cases: [string[], RegExp][] = [
    [["--port", "abc"], /--port.*"abc"/],
    [["--port", "70000"], /--port.*"70000"/],
    [["--push-interval", "-5"], /--push-interval/],
    [["--tz", "Mars/Olympus"], /--tz.*"Mars\/Olympus"/],
    [["--log-level", "loud"], /--log-level.*"loud"/],
    [["--frobnicate"], /Unknown flag.*--frobnicate/],
    [["--port"], /Missing value for --port/],
  ];
  for (const [args, pattern] of cases) {
    const r = await runCommand(["run", "--allow-all", `${ROOT}main.ts`, ...args]);
    assert.equal(r.code, 2, `${args.join(" ")} → exit 2, got ${r.code}`);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `one line, got: ${r.stderr}`);
    assert.match(lines[0], pattern);
    assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/, "no stack trace");
  }
});

Deno.test("a bad environment value exits 2 naming the variable", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", `${ROOT}main.ts`],
    env: { PORT: "eighty", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  assert.match(new TextDecoder().decode(out.stderr), /PORT.*"eighty"/);
});

Deno.test("--help lists every flag and exits 0", async () => {
  const r = await runCommand(["task", "start", "--help"]);
  assert.equal(r.code, 0);
  for (
    const flag of [
      "--port",
      "--host",
      "--data-dir",
      "--push-interval",
      "--tz",
      "--log-level",
      "--max-message-bytes",
      "--idle-timeout",
    ]
  ) assert.match(r.stdout, new RegExp(flag));
});
