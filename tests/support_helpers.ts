/**
 * Helpers for customer-service tests: log in as an agent, open visitor and agent sockets.
 *
 * @module
 */
import { get, ROOT, TestClient } from "./helpers.ts";

/** Logs in and returns the session token. */
export async function loginAgent(server: { http(p: string): string }, username: string, password: string) {
  const res = await get(server.http("/api/agent/login"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  return { status: res.status, body: JSON.parse(res.text), cookie: res.headers.get("set-cookie") ?? "" };
}

/** An agent socket after login; waits for the state frame. */
export async function openAgent(
  server: { http(p: string): string; ws(p: string): string },
  user: string,
  pass: string,
) {
  const login = await loginAgent(server, user, pass);
  if (login.status !== 200) throw new Error(`login ${user} failed: ${JSON.stringify(login.body)}`);
  const client = await TestClient.open(server.ws(`/ws/support/agent?token=${login.body.token}`));
  const state = await client.nextType("state");
  return { client, state, token: login.body.token as string };
}

/** A visitor socket; waits for session and history. */
export async function openVisitor(server: { ws(p: string): string }, token?: string) {
  const client = await TestClient.open(server.ws(`/ws/support/visitor${token ? `?token=${token}` : ""}`));
  const session = await client.nextType("session");
  const history = await client.nextType("history");
  return {
    client,
    session,
    history,
    token: session.token as string,
    conversationId: session.conversationId as string,
  };
}

/** The visitor writes; on its first message the conversation is created and its id is picked up. */
export async function write(v: Awaited<ReturnType<typeof openVisitor>>, text: string) {
  const clientMsgId = crypto.randomUUID();
  v.client.send({ type: "message", text, clientMsgId });
  const own = await v.client.next((f) => f.type === "message" && f.clientMsgId === clientMsgId);
  v.conversationId = own.conversationId as string;
  return own;
}

/** Runs `deno task agent …` as a user would, with `stdin` as its standard input. */
export async function runAgentCli(args: string[], stdin = "") {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "--config", `${ROOT}deno.json`, "agent", ...args],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}
