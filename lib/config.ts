/**
 * Switchboard configuration: one typed object built from command-line flags with environment fallbacks.
 *
 * Every field has a default and a line in `--help`. A bad value raises {@linkcode ConfigError}, which `main.ts`
 * turns into one line on stderr and exit code 2.
 *
 * @module
 */

/** Log levels, most verbose first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

/** The server's whole configuration. */
export interface Config {
  port: number;
  host: string;
  dataDir: string;
  pushIntervalMs: number;
  tz: string | undefined;
  logLevel: LogLevel;
  maxMessageBytes: number;
  idleTimeoutS: number;
  historySize: number;
  rateLimit: number;
  rateBurst: number;
  allowedOrigins: string[];
  maxConnsPerIp: number;
  handshakeRate: number;
  handshakeBurst: number;
  maxBufferedBytes: number;
  apiKeys: string[];
  maxPublishBytes: number;
  topicHistory: number;
  demoAgents: string[];
  supportAssign: "manual" | "auto";
  transport: "deno" | "own";
  headerTimeoutS: number;
  supportMaxChats: number;
  supportAnswerTimeoutS: number;
  supportGraceS: number;
  newRoomsPerIp: number;
  newConversationsPerIp: number;
  maxUploadBytes: number;
  uploadsPerIp: number;
  roomHistoryMax: number;
  historyRetentionDays: number;
  retentionDays: number;
  jwtSecrets: string[];
  jwtPublicKeys: string[];
  jwksUrl: string | undefined;
  jwtIssuer: string | undefined;
  jwtAudience: string | undefined;
  requireAuth: boolean;
  cert: string | undefined;
  key: string | undefined;
  redisUrl: string | undefined;
  databaseUrl: string | undefined;
  webhookUrls: string[];
  webhookSecret: string | undefined;
  webhookTimeoutS: number;
  webhookMaxAttempts: number;
}

/** A bad flag or environment value; its message names the flag and the value. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

type Kind =
  | "int"
  | "string"
  | "list"
  | "tz"
  | "level"
  | "choice"
  | "url"
  | "bool"
  | "secrets"
  | "urls"
  | "whsec";

interface FlagSpec {
  flag: string;
  env: string;
  key: keyof Config;
  kind: Kind;
  min?: number;
  /** The values a `choice` flag takes. */
  choices?: readonly string[];
  help: string;
  default: Config[keyof Config];
}

const MiB = 1024 * 1024;

/** Every flag, in `--help` order. */
export const FLAGS: readonly FlagSpec[] = [
  {
    flag: "port",
    env: "PORT",
    key: "port",
    kind: "int",
    min: 0,
    default: 8000,
    help: "TCP port (0 = any free port)",
  },
  {
    flag: "host",
    env: "HOST",
    key: "host",
    kind: "string",
    default: "0.0.0.0",
    help: "address to listen on",
  },
  {
    flag: "data-dir",
    env: "DATA_DIR",
    key: "dataDir",
    kind: "string",
    default: "./data",
    help: "directory for the embedded SQLite database",
  },
  {
    flag: "push-interval",
    env: "PUSH_INTERVAL",
    key: "pushIntervalMs",
    kind: "int",
    min: 10,
    default: 1000,
    help: "ms between time frames on /ws/push",
  },
  {
    flag: "tz",
    env: "TZ_NAME",
    key: "tz",
    kind: "tz",
    default: undefined,
    help: "IANA time zone of the pushed time (default: server local time)",
  },
  {
    flag: "log-level",
    env: "LOG_LEVEL",
    key: "logLevel",
    kind: "level",
    default: "info",
    help: "debug | info | warn | error | silent",
  },
  {
    flag: "max-message-bytes",
    env: "MAX_MESSAGE_BYTES",
    key: "maxMessageBytes",
    kind: "int",
    min: 1,
    default: MiB,
    help: "largest incoming frame; larger closes the socket with 1009",
  },
  {
    flag: "transport",
    env: "TRANSPORT",
    key: "transport",
    kind: "choice",
    choices: ["own", "deno"],
    default: "own",
    help: "own | deno: WebSocket framing of our own (corked writes), or Deno.upgradeWebSocket's",
  },
  {
    flag: "header-timeout",
    env: "HEADER_TIMEOUT",
    key: "headerTimeoutS",
    kind: "int",
    min: 1,
    default: 10,
    help: "seconds a new connection has to send its request head (own transport)",
  },
  {
    flag: "idle-timeout",
    env: "IDLE_TIMEOUT",
    key: "idleTimeoutS",
    kind: "int",
    min: 0,
    default: 30,
    help: "seconds without a pong before a peer is dropped (pings at half; 0 = never)",
  },
  {
    flag: "history-size",
    env: "HISTORY_SIZE",
    key: "historySize",
    kind: "int",
    min: 0,
    default: 100,
    help: "chat messages sent on join and the most a recovery returns",
  },
  {
    flag: "rate-limit",
    env: "RATE_LIMIT",
    key: "rateLimit",
    kind: "int",
    min: 0,
    default: 20,
    help: "messages per second per connection (0 = no limit)",
  },
  {
    flag: "rate-burst",
    env: "RATE_BURST",
    key: "rateBurst",
    kind: "int",
    min: 1,
    default: 40,
    help: "message burst per connection",
  },
  {
    flag: "allowed-origins",
    env: "ALLOWED_ORIGINS",
    key: "allowedOrigins",
    kind: "list",
    default: [],
    help: "origins allowed to open sockets, comma separated, or * (default: same host only)",
  },
  {
    flag: "max-conns-per-ip",
    env: "MAX_CONNS_PER_IP",
    key: "maxConnsPerIp",
    kind: "int",
    min: 0,
    default: 1000,
    help: "open sockets per client IP (0 = no limit)",
  },
  {
    flag: "handshake-rate",
    env: "HANDSHAKE_RATE",
    key: "handshakeRate",
    kind: "int",
    min: 0,
    default: 200,
    help: "socket handshakes per second per IP (0 = no limit)",
  },
  {
    flag: "handshake-burst",
    env: "HANDSHAKE_BURST",
    key: "handshakeBurst",
    kind: "int",
    min: 1,
    default: 500,
    help: "socket handshake burst per IP",
  },
  {
    flag: "max-buffered-bytes",
    env: "MAX_BUFFERED_BYTES",
    key: "maxBufferedBytes",
    kind: "int",
    min: 0,
    default: 4 * MiB,
    help: "bytes queued for one slow socket before it is closed with 1013 (0 = no limit)",
  },
  {
    flag: "api-key",
    env: "API_KEYS",
    key: "apiKeys",
    kind: "list",
    default: [],
    help: "key for POST /api/publish and /api/schedules (repeatable; env: comma separated)",
  },
  {
    flag: "max-publish-bytes",
    env: "MAX_PUBLISH_BYTES",
    key: "maxPublishBytes",
    kind: "int",
    min: 1,
    default: MiB,
    help: "largest publish request body",
  },
  {
    flag: "topic-history",
    env: "TOPIC_HISTORY",
    key: "topicHistory",
    kind: "int",
    min: 0,
    default: 0,
    help: "publications kept per topic for ?since= recovery (0 = off)",
  },
  {
    flag: "demo-agent",
    env: "DEMO_AGENTS",
    key: "demoAgents",
    kind: "list",
    default: [],
    help: "user:password of a support agent created at start (repeatable)",
  },
  {
    flag: "support-assign",
    env: "SUPPORT_ASSIGN",
    key: "supportAssign",
    kind: "choice",
    choices: ["manual", "auto"],
    default: "manual",
    help: "manual | auto: how queued conversations reach agents",
  },
  {
    flag: "support-max-chats",
    env: "SUPPORT_MAX_CHATS",
    key: "supportMaxChats",
    kind: "int",
    min: 1,
    default: 5,
    help: "open conversations per agent under auto assignment",
  },
  {
    flag: "support-answer-timeout",
    env: "SUPPORT_ANSWER_TIMEOUT",
    key: "supportAnswerTimeoutS",
    kind: "int",
    min: 0,
    default: 60,
    help: "seconds an auto-assigned agent has to answer before re-queueing (0 = never)",
  },
  {
    flag: "support-grace",
    env: "SUPPORT_GRACE",
    key: "supportGraceS",
    kind: "int",
    min: 0,
    default: 30,
    help: "seconds a disconnected agent keeps its conversations before they are re-queued",
  },
  {
    flag: "new-rooms-per-ip",
    env: "NEW_ROOMS_PER_IP",
    key: "newRoomsPerIp",
    kind: "int",
    min: 0,
    default: 30,
    help: "chat rooms one client IP may start (first message in an empty room) per minute (0 = no limit)",
  },
  {
    flag: "new-conversations-per-ip",
    env: "NEW_CONVERSATIONS_PER_IP",
    key: "newConversationsPerIp",
    kind: "int",
    min: 0,
    default: 10,
    help: "support conversations one client IP may start per minute (0 = no limit)",
  },
  {
    flag: "max-upload-bytes",
    env: "MAX_UPLOAD_BYTES",
    key: "maxUploadBytes",
    kind: "int",
    min: 1,
    default: 10 * MiB,
    help: "largest file a visitor or agent may upload (attachments); larger ones get 413",
  },
  {
    flag: "uploads-per-ip",
    env: "UPLOADS_PER_IP",
    key: "uploadsPerIp",
    kind: "int",
    min: 0,
    default: 60,
    help: "uploads one client IP may make per minute (0 = no limit)",
  },
  {
    flag: "room-history-max",
    env: "ROOM_HISTORY_MAX",
    key: "roomHistoryMax",
    kind: "int",
    min: 0,
    default: 100_000,
    help: "messages kept per chat room; older ones are pruned (0 = keep all)",
  },
  {
    flag: "history-retention-days",
    env: "HISTORY_RETENTION_DAYS",
    key: "historyRetentionDays",
    kind: "int",
    min: 0,
    default: 0,
    help: "days chat room messages are kept (0 = keep forever)",
  },
  {
    flag: "retention-days",
    env: "RETENTION_DAYS",
    key: "retentionDays",
    kind: "int",
    min: 0,
    default: 0,
    help: "days closed support conversations are kept, with their files and notes (0 = keep forever)",
  },

  {
    flag: "jwt-secret",
    env: "JWT_SECRETS",
    key: "jwtSecrets",
    kind: "secrets",
    default: [],
    help:
      "HS256/384/512 key for user tokens, at least 32 bytes (repeatable for rotation; env: comma separated)",
  },
  {
    flag: "jwt-public-key",
    env: "JWT_PUBLIC_KEYS",
    key: "jwtPublicKeys",
    kind: "list",
    default: [],
    help: "PEM file of an RS256/ES256/EdDSA public key for user tokens (repeatable; env: comma separated)",
  },
  {
    flag: "jwks-url",
    env: "JWKS_URL",
    key: "jwksUrl",
    kind: "url",
    default: undefined,
    help: "JWKS with the public keys of user tokens, by kid (cached; refetched at most every 30 s)",
  },
  {
    flag: "jwt-issuer",
    env: "JWT_ISSUER",
    key: "jwtIssuer",
    kind: "string",
    default: undefined,
    help: "required iss of user tokens",
  },
  {
    flag: "jwt-audience",
    env: "JWT_AUDIENCE",
    key: "jwtAudience",
    kind: "string",
    default: undefined,
    help: "required aud of user tokens",
  },
  {
    flag: "require-auth",
    env: "REQUIRE_AUTH",
    key: "requireAuth",
    kind: "bool",
    default: false,
    help: "chat, topic push and SSE refuse clients without a user token (echo and the time push stay open)",
  },
  {
    flag: "cert",
    env: "TLS_CERT",
    key: "cert",
    kind: "string",
    default: undefined,
    help: "TLS certificate file (PEM)",
  },
  {
    flag: "key",
    env: "TLS_KEY",
    key: "key",
    kind: "string",
    default: undefined,
    help: "TLS private key file (PEM)",
  },
  {
    flag: "redis",
    env: "REDIS_URL",
    key: "redisUrl",
    kind: "url",
    default: undefined,
    help: "redis://… : cluster mode broker (default: in-process)",
  },
  {
    flag: "database",
    env: "DATABASE_URL",
    key: "databaseUrl",
    kind: "url",
    default: undefined,
    help: "postgres://… : cluster mode store (default: SQLite in --data-dir)",
  },
  {
    flag: "webhook-url",
    env: "WEBHOOK_URLS",
    key: "webhookUrls",
    kind: "urls",
    default: [],
    help: "URL that receives signed webhook events (repeatable; env: comma separated)",
  },
  {
    flag: "webhook-secret",
    env: "WEBHOOK_SECRET",
    key: "webhookSecret",
    kind: "whsec",
    default: undefined,
    help: "key that signs webhooks, Standard Webhooks form: whsec_ + base64 of 24–64 random bytes",
  },
  {
    flag: "webhook-timeout",
    env: "WEBHOOK_TIMEOUT_S",
    key: "webhookTimeoutS",
    kind: "int",
    min: 1,
    default: 10,
    help: "seconds a webhook receiver has to answer 2xx before the try counts as failed",
  },
  {
    flag: "webhook-max-attempts",
    env: "WEBHOOK_MAX_ATTEMPTS",
    key: "webhookMaxAttempts",
    kind: "int",
    min: 1,
    default: 12,
    help: "tries per webhook delivery (backoff 1 s, 2 s, 4 s … up to 1 h) before it is marked failed",
  },
];

/** Repeatable flags collect every occurrence. */
const REPEATABLE = new Set([
  "api-key",
  "demo-agent",
  "allowed-origins",
  "jwt-secret",
  "jwt-public-key",
  "webhook-url",
]);

/** The defaults, as a complete config. */
export function defaultConfig(): Config {
  const config = {} as Record<string, unknown>;
  for (const spec of FLAGS) {
    config[spec.key] = Array.isArray(spec.default) ? [...spec.default] : spec.default;
  }
  return config as unknown as Config;
}

/** The `--help` text. */
export function helpText(): string {
  const lines = [
    "Switchboard: a real-time server (echo, push, chat rooms, customer service).",
    "",
    "Usage: deno task start [flags]",
    "",
    "Flags (environment variable in brackets):",
  ];
  for (const spec of FLAGS) {
    const def = spec.default === undefined || (Array.isArray(spec.default) && spec.default.length === 0)
      ? ""
      : ` (default ${spec.default})`;
    lines.push(`  --${spec.flag.padEnd(24)} ${spec.help}${def} [${spec.env}]`);
  }
  lines.push(`  --${"help".padEnd(24)} show this text`);
  return lines.join("\n");
}

function parseValue(spec: FlagSpec, raw: string, source: string): Config[keyof Config] {
  const bad = (why: string) => new ConfigError(`Invalid value for ${source}: "${raw}" (${why})`);
  switch (spec.kind) {
    case "int": {
      if (!/^\d+$/.test(raw.trim())) throw bad("expected a whole number");
      const n = Number(raw.trim());
      if (!Number.isSafeInteger(n)) throw bad("number too large");
      if (spec.min !== undefined && n < spec.min) throw bad(`must be at least ${spec.min}`);
      if (spec.key === "port" && n > 65535) throw bad("must be at most 65535");
      return n;
    }
    case "string":
      if (raw === "") throw bad("must not be empty");
      return raw;
    case "list":
      return raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
    case "secrets": {
      // Only the environment variable is a list: a secret on the command line may hold a comma.
      const secrets = source.startsWith("--")
        ? [raw]
        : raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
      // A short HMAC key can be brute-forced offline from one token (RFC 7518 §3.2 asks for the hash size).
      const short = secrets.find((s) => new TextEncoder().encode(s).byteLength < 32);
      if (short !== undefined) {
        throw new ConfigError(`Invalid value for ${source}: a secret of ${short.length} bytes (at least 32)`);
      }
      return secrets;
    }
    case "bool":
      if (!["1", "true", "yes", "on", "0", "false", "no", "off"].includes(raw.toLowerCase())) {
        throw bad("expected true or false");
      }
      return ["1", "true", "yes", "on"].includes(raw.toLowerCase());
    case "tz":
      try {
        new Intl.DateTimeFormat("en-US", { timeZone: raw });
      } catch {
        throw bad("unknown time zone");
      }
      return raw;
    case "level":
      if (!(LOG_LEVELS as readonly string[]).includes(raw)) {
        throw bad(`expected one of ${LOG_LEVELS.join(", ")}`);
      }
      return raw as LogLevel;
    case "choice":
      if (!spec.choices!.includes(raw)) throw bad(`expected ${spec.choices!.join(" or ")}`);
      return raw;
    case "url":
      try {
        new URL(raw);
      } catch {
        throw bad("expected a URL");
      }
      return raw;
    case "urls": {
      const urls = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
      for (const u of urls) {
        if (!URL.canParse(u) || !/^https?:$/.test(new URL(u).protocol)) throw bad("expected http(s) URLs");
      }
      return urls;
    }
    case "whsec": {
      // The Standard Webhooks form: whsec_ and the base64 of 24–64 random bytes.
      const m = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(raw);
      let size = 0;
      try {
        size = m ? atob(m[1]).length : 0;
      } catch {
        size = 0;
      }
      if (size < 24 || size > 64) throw bad("expected whsec_ and the base64 of 24 to 64 random bytes");
      return raw;
    }
  }
}

/** The result of {@linkcode parseConfig}: a config, or a request for help. */
export type ParsedArgs = { help: true } | { help: false; config: Config };

/**
 * Builds the config from `args` (flags win) and `env` (fallback), over the defaults.
 *
 * @throws {ConfigError} on an unknown flag or a bad value.
 */
export function parseConfig(
  args: readonly string[],
  env: Record<string, string | undefined> = {},
): ParsedArgs {
  const config = defaultConfig() as unknown as Record<string, unknown>;
  const byFlag = new Map(FLAGS.map((s) => [s.flag, s]));
  for (const spec of FLAGS) {
    const raw = env[spec.env];
    if (raw !== undefined && raw !== "") config[spec.key] = parseValue(spec, raw, spec.env);
  }
  const seen = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") return { help: true };
    if (!arg.startsWith("--")) throw new ConfigError(`Unexpected argument: "${arg}" (see --help)`);
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const spec = byFlag.get(name);
    if (!spec) throw new ConfigError(`Unknown flag: "--${name}" (see --help)`);
    let raw: string;
    if (eq !== -1) raw = arg.slice(eq + 1);
    else if (spec.kind === "bool") raw = "true";
    else {
      if (i + 1 >= args.length) throw new ConfigError(`Missing value for --${name}`);
      raw = args[++i];
    }
    const value = parseValue(spec, raw, `--${name}`);
    if (REPEATABLE.has(name) && Array.isArray(value)) {
      // A flag given on the command line replaces the env list, and repeats add to it.
      const prior = seen.has(name) ? config[spec.key] as string[] : [];
      config[spec.key] = [...prior, ...value];
    } else config[spec.key] = value;
    seen.add(name);
  }
  const c = config as unknown as Config;
  if ((c.cert === undefined) !== (c.key === undefined)) {
    throw new ConfigError("Flags --cert and --key must be given together");
  }
  if (c.webhookUrls.length > 0 && c.webhookSecret === undefined) {
    throw new ConfigError("Flag --webhook-url needs --webhook-secret (whsec_…) to sign the deliveries");
  }
  if (c.requireAuth && c.jwtSecrets.length === 0 && c.jwtPublicKeys.length === 0 && !c.jwksUrl) {
    throw new ConfigError("Flag --require-auth needs a key: --jwt-secret, --jwt-public-key or --jwks-url");
  }
  return { help: false, config: c };
}
