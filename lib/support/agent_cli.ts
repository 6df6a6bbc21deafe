/**
 * `deno task agent <command>`: manage support agents in the store.
 *
 *   deno task agent add <username> [--name "Display Name"] [--data-dir D]   (password from stdin)
 *   deno task agent passwd <username> [--data-dir D]                         (password from stdin)
 *   deno task agent remove <username> [--data-dir D]
 *   deno task agent list [--data-dir D]
 *
 * `--database postgres://…` (or DATABASE_URL) works on the cluster store instead. Exit 2 on bad usage.
 *
 * @module
 */
import { saveAgent } from "./agents.ts";
import { openStore } from "../store/open.ts";

const USAGE =
  `Usage: deno task agent <add|passwd|remove|list> [username] [--name "Display Name"] [--admin] [--data-dir D]
  add and passwd read the password from standard input (one line); --admin makes the agent an admin.`;

/** Reads the first line of stdin. */
async function readPassword(): Promise<string> {
  if (Deno.stdin.isTerminal()) console.error("Password: ");
  const chunks: string[] = [];
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    chunks.push(chunk);
    if (chunk.includes("\n")) break;
  }
  return chunks.join("").split(/\r?\n/)[0];
}

/** Runs the CLI; returns the exit code. */
export async function agentCli(args: string[], env: Record<string, string | undefined>): Promise<number> {
  const positional: string[] = [];
  let name: string | undefined;
  let admin = false;
  let dataDir = env.DATA_DIR || "./data";
  let database = env.DATABASE_URL || undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--help" || a === "-h") {
      console.log(USAGE);
      return 0;
    }
    if (a === "--admin") {
      admin = true;
      continue;
    }
    if (a === "--name" || a === "--data-dir" || a === "--database") {
      const v = args[++i];
      if (v === undefined) {
        console.error(`agent: missing value for ${a}`);
        return 2;
      }
      if (a === "--name") name = v;
      else if (a === "--data-dir") dataDir = v;
      else database = v;
    } else if (a.startsWith("--")) {
      console.error(`agent: unknown flag "${a}" (see --help)`);
      return 2;
    } else positional.push(a);
  }
  const [command, username] = positional;
  if (!command || !["add", "passwd", "remove", "list"].includes(command)) {
    console.error(`agent: expected a command: add, passwd, remove or list (see --help)`);
    return 2;
  }
  if (command !== "list" && !username) {
    console.error(`agent: "${command}" needs a username`);
    return 2;
  }
  let store;
  try {
    store = await openStore({ dataDir, databaseUrl: database });
  } catch (err) {
    console.error(`agent: cannot open the store: ${(err as Error).message}`);
    return 1;
  }
  try {
    if (command === "list") {
      for (const a of await store.listAgents()) {
        console.log(
          `${a.username}\t${a.name}\t${a.role}${a.disabled ? " (disabled)" : ""}\t${
            new Date(a.createdAt).toISOString()
          }`,
        );
      }
      return 0;
    }
    if (command === "remove") {
      if (!(await store.removeAgent(username))) {
        console.error(`agent: no agent "${username}"`);
        return 1;
      }
      console.log(`removed ${username}`);
      return 0;
    }
    const existing = await store.agentByUsername(username);
    if (command === "passwd" && !existing) {
      console.error(`agent: no agent "${username}"`);
      return 1;
    }
    const password = await readPassword();
    try {
      await saveAgent(store, username, password, name, admin ? "admin" : undefined);
    } catch (err) {
      console.error(`agent: ${(err as Error).message}`);
      return 2;
    }
    console.log(`${command === "add" && !existing ? "added" : "updated"} ${username}`);
    return 0;
  } finally {
    await store.close();
  }
}

if (import.meta.main) {
  Deno.exit(await agentCli(Deno.args, Deno.env.toObject()));
}
