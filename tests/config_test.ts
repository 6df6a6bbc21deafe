import assert from "node:assert/strict";
import { type Config, ConfigError, defaultConfig, FLAGS, helpText, parseConfig } from "../lib/config.ts";

/** The documented defaults (README "Configuration"), written out so that a changed default fails here. */
const DOCUMENTED_DEFAULTS: Config = {
  port: 8000,
  host: "0.0.0.0",
  dataDir: "./data",
  pushIntervalMs: 1000,
  tz: undefined,
  logLevel: "info",
  maxMessageBytes: 1048576,
  transport: "own",
  headerTimeoutS: 10,
  idleTimeoutS: 30,
  historySize: 100,
  rateLimit: 20,
  rateBurst: 40,
  allowedOrigins: [],
  maxConnsPerIp: 1000,
  handshakeRate: 200,
  handshakeBurst: 500,
  maxBufferedBytes: 4194304,
  apiKeys: [],
  maxPublishBytes: 1048576,
  topicHistory: 0,
  demoAgents: [],
  supportAssign: "manual",
  supportMaxChats: 5,
  supportAnswerTimeoutS: 60,
  supportGraceS: 30,
  newRoomsPerIp: 30,
  newConversationsPerIp: 10,
  maxUploadBytes: 10 * 1024 * 1024,
  uploadsPerIp: 60,
  roomHistoryMax: 100000,
  historyRetentionDays: 0,
  retentionDays: 0,
  jwtSecrets: [],
  jwtPublicKeys: [],
  jwksUrl: undefined,
  jwtIssuer: undefined,
  jwtAudience: undefined,
  requireAuth: false,
  cert: undefined,
  key: undefined,
  redisUrl: undefined,
  databaseUrl: undefined,
  webhookUrls: [],
  webhookSecret: undefined,
  webhookTimeoutS: 10,
  webhookMaxAttempts: 12,
};

Deno.test("defaultConfig() has the documented default for every field", () => {
  // Typed as Config, the table above names every field; deepEqual also fails on a field without a flag (absent
  // from defaultConfig()) and on a flag that is not a field.
  assert.deepEqual(defaultConfig(), DOCUMENTED_DEFAULTS);
});

Deno.test("defaultConfig() returns fresh lists, so one config's changes never reach another", () => {
  const a = defaultConfig();
  a.apiKeys.push("k");
  a.allowedOrigins.push("*");
  assert.deepEqual(defaultConfig().apiKeys, []);
  assert.deepEqual(defaultConfig().allowedOrigins, []);
});

Deno.test("helpText() has a line for every flag with its environment variable and documented default", () => {
  const lines = helpText().split("\n");
  for (const f of FLAGS) {
    const line = lines.find((l) => l.trimStart().startsWith(`--${f.flag} `));
    assert.ok(line, `--help has a line for --${f.flag}`);
    assert.ok(line.endsWith(`[${f.env}]`), `--${f.flag} names ${f.env}: ${line}`);
    const documented = DOCUMENTED_DEFAULTS[f.key];
    if (documented === undefined || (Array.isArray(documented) && documented.length === 0)) {
      assert.doesNotMatch(line, /\(default /, `--${f.flag} has no default to show`);
    } else {
      assert.ok(
        line.includes(`(default ${documented})`),
        `--${f.flag} shows (default ${documented}): ${line}`,
      );
    }
  }
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

Deno.test("parseConfig() refuses a JWT secret under 32 bytes, from a flag or from JWT_SECRETS", () => {
  assert.throws(() => parseConfig(["--jwt-secret", "short"]), /at least 32/);
  assert.throws(
    () => parseConfig([], { JWT_SECRETS: `${"x".repeat(32)},short` }),
    /JWT_SECRETS.*at least 32/,
  );
  const ok = parseConfig(["--jwt-secret", "x".repeat(32), "--jwt-secret", "y".repeat(40), "--require-auth"]);
  assert.ok(!ok.help);
  if (!ok.help) {
    assert.deepEqual(ok.config.jwtSecrets, ["x".repeat(32), "y".repeat(40)], "repeatable, for rotation");
    assert.equal(ok.config.requireAuth, true);
  }
});

Deno.test("parseConfig() refuses --require-auth without a key, and keeps commas in a secret given as a flag", () => {
  assert.throws(() => parseConfig(["--require-auth"]), /--require-auth needs a key/);
  const parsed = parseConfig(["--jwt-secret", `with,a,comma-${"z".repeat(30)}`]);
  assert.ok(!parsed.help && parsed.config.jwtSecrets.length === 1);
});
