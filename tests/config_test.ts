import assert from "node:assert/strict";
import { ConfigError, defaultConfig, FLAGS, parseConfig } from "../lib/config.ts";

Deno.test("every config field has a flag with a default", () => {
  const config = defaultConfig() as unknown as Record<string, unknown>;
  const keys = new Set(FLAGS.map((f) => f.key));
  for (const key of Object.keys(config)) assert.ok(keys.has(key as never), `${key} has a flag`);
  for (const f of FLAGS) {
    if (f.default !== undefined) assert.notEqual(config[f.key], undefined, `${f.flag} has a default`);
  }
  assert.equal(defaultConfig().supportGraceS, 30);
});

Deno.test("parseConfig() takes flags over env, repeats list flags, and names bad values", () => {
  const parsed = parseConfig(
    ["--port=9000", "--api-key", "a", "--api-key", "b", "--support-grace", "5"],
    { PORT: "7000", API_KEYS: "x,y", HISTORY_SIZE: "7" },
  );
  assert.equal(parsed.help, false);
  if (parsed.help) return;
  assert.equal(parsed.config.port, 9000);
  assert.deepEqual(parsed.config.apiKeys, ["a", "b"]);
  assert.equal(parsed.config.historySize, 7);
  assert.equal(parsed.config.supportGraceS, 5);
  assert.throws(() => parseConfig(["--rate-limit", "1.5"]), ConfigError);
  assert.throws(() => parseConfig(["--cert", "c.pem"]), /--cert and --key/);
  assert.throws(() => parseConfig(["--redis", "not a url"]), /--redis/);
  assert.deepEqual(parseConfig(["-h"]), { help: true });
});
