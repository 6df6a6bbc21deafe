/**
 * Managing agents, for admins: `GET /api/agents`, `POST /api/agents` (`{username, password, name?, role?}`),
 * `PATCH /api/agents/:username` (`{role?, disabled?, password?, name?}`). Disabling an agent or setting its
 * password ends its sessions (its sockets close with 4001 within seconds, on every instance). Both are written to the
 * audit log (`agent.add`, `agent.update`).
 *
 * @module
 */
import { audit } from "../lib/admin/audit.ts";
import type { AppRequest } from "../lib/context.ts";
import { HttpError, json, readJson } from "../lib/http/http.ts";
import { agentView, requireAgent, saveAgent } from "../lib/support/agents.ts";
import type { AgentRecord } from "../lib/store/store.ts";
import { validName } from "../lib/realtime/protocol.ts";

/** The admin making the request, or 403. */
async function requireAdmin(req: Request, ctx: AppRequest): Promise<AgentRecord> {
  const agent = await requireAgent(ctx.app, req, ctx.url);
  if (agent.role !== "admin") throw new HttpError(403, "forbidden", "Only admins manage agents");
  return agent;
}

const withState = (a: AgentRecord) => ({ ...agentView(a), disabled: a.disabled, createdAt: a.createdAt });

function roleOf(v: unknown): AgentRecord["role"] | undefined {
  if (v === undefined) return undefined;
  if (v !== "admin" && v !== "agent") {
    throw new HttpError(400, "bad_request", '"role" must be "admin" or "agent"');
  }
  return v;
}

/** Every agent, with role and state. */
export async function listAgentsApi(req: Request, ctx: AppRequest): Promise<Response> {
  await requireAdmin(req, ctx);
  return json({ agents: (await ctx.app.store.listAgents()).map(withState) });
}

/** Adds an agent. */
export async function addAgentApi(req: Request, ctx: AppRequest): Promise<Response> {
  const admin = await requireAdmin(req, ctx);
  const body = await readJson(req, 4096) as Record<string, unknown> | null;
  const { username, password, name } = body ?? {};
  if (
    typeof username !== "string" || typeof password !== "string" ||
    (name !== undefined && typeof name !== "string")
  ) {
    throw new HttpError(400, "bad_request", 'Send {"username", "password", "name"?, "role"?}');
  }
  if (await ctx.app.store.agentByUsername(username)) {
    throw new HttpError(400, "bad_request", `Agent "${username}" exists already; change it with PATCH`);
  }
  let saved: AgentRecord;
  try {
    saved = await saveAgent(
      ctx.app.store,
      username,
      password,
      name as string | undefined,
      roleOf(body?.role),
    );
  } catch (err) {
    throw new HttpError(400, "bad_request", (err as Error).message);
  }
  ctx.app.log.info("agent_added", { by: admin.id, agent: saved.id });
  await audit(ctx.app, `agent:${admin.username}`, "agent.add", saved.username, { role: saved.role });
  return json({ agent: withState(saved) }, 201);
}

/** Changes an agent: role, disabled, password, name. */
export async function updateAgentApi(req: Request, ctx: AppRequest): Promise<Response> {
  const admin = await requireAdmin(req, ctx);
  const { store } = ctx.app;
  const username = ctx.params.username ?? "";
  const existing = await store.agentByUsername(username);
  if (!existing) throw new HttpError(404, "not_found", `No agent "${username.slice(0, 32)}"`);
  const body = await readJson(req, 4096) as Record<string, unknown> | null;
  const role = roleOf(body?.role);
  const disabled = body?.disabled;
  if (disabled !== undefined && typeof disabled !== "boolean") {
    throw new HttpError(400, "bad_request", '"disabled" must be true or false');
  }
  if (existing.id === admin.id && (disabled === true || role === "agent")) {
    throw new HttpError(400, "bad_request", "Admins cannot disable or demote themselves");
  }
  let name: string | undefined;
  if (body?.name !== undefined) {
    const checked = validName(body.name, 64);
    if (!checked.ok) throw new HttpError(400, "bad_request", checked.message);
    name = checked.value;
  }
  if (body?.password !== undefined) {
    if (typeof body.password !== "string") {
      throw new HttpError(400, "bad_request", '"password" must be a string');
    }
    try {
      await saveAgent(store, username, body.password, name);
    } catch (err) {
      throw new HttpError(400, "bad_request", (err as Error).message);
    }
  }
  const updated = await store.updateAgent(username, { role, disabled, name });
  // A disabled agent is out at once: its sessions end, and its sockets close at the next session check.
  if (disabled === true) await store.deleteAgentSessions(existing.id);
  ctx.app.log.info("agent_updated", { by: admin.id, agent: existing.id, role, disabled });
  // What changed, never the password itself.
  const detail: Record<string, unknown> = {};
  if (role !== undefined) detail.role = role;
  if (disabled !== undefined) detail.disabled = disabled;
  if (name !== undefined) detail.name = name;
  if (body?.password !== undefined) detail.password = "changed";
  await audit(ctx.app, `agent:${admin.username}`, "agent.update", username, detail);
  return json({ agent: withState(updated!) });
}
