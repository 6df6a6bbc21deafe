import assert from "node:assert/strict";
import { ROOT } from "./helpers.ts";

Deno.test("deno task bench --smoke runs every workload against every target and prints the tables", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      `${ROOT}bench/run.ts`,
      "--smoke",
      "--out",
      `${await Deno.makeTempDir()}/smoke.json`,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr).slice(-2000));
  for (const title of ["Chat flood", "Echo", "Idle connections", "Publish fan-out"]) {
    assert.ok(stdout.includes(title), `prints the ${title} table`);
  }
  for (const target of ["raw Deno chat", "Node ws chat", "Socket.IO chat", "Switchboard chat, batch=1"]) {
    assert.ok(stdout.includes(target), `measures ${target}`);
  }
});
