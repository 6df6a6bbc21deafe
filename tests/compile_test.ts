/**
 * `deno task compile` needs Deno's runtime (`denort`), which `deno compile` downloads from Deno's servers. Where
 * that download is unreachable, set `DENORT_BIN` to a local denort binary. Without one, this test is reported as
 * ignored — loudly, never as a pass.
 */
import assert from "node:assert/strict";
import { get, ROOT, spawnServer } from "./helpers.ts";

const denort = Deno.env.get("DENORT_BIN");
const available = denort !== undefined && (await Deno.stat(denort).then((s) => s.isFile).catch(() => false));
if (!available) {
  console.warn(
    "\n*** SKIPPED: the compiled-binary test needs a Deno runtime: set DENORT_BIN to a denort binary " +
      `(${
        denort ? `"${denort}" does not exist` : "DENORT_BIN is not set"
      }). It is reported as ignored, not passed. ***\n`,
  );
}

Deno.test({
  name: "deno task compile builds one binary that serves embedded pages from any directory",
  ignore: !available,
  async fn() {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "compile"],
      cwd: ROOT,
      env: { DENORT_BIN: denort! },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const cwd = await Deno.makeTempDir();
    try {
      await using server = await spawnServer(["--data-dir", `${cwd}/data`], {
        binary: `${ROOT}dist/switchboard`,
        cwd,
      });
      const res = await get(server.http("/echo.html"));
      assert.equal(res.status, 200);
      assert.match(res.text, /<html/i);
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  },
});
