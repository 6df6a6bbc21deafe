/**
 * `GET /ws/support/agent`: the agent console's socket. Needs a live agent session (cookie, `Authorization:
 * Bearer`, or `?token=`), else HTTP 401 before the upgrade.
 *
 * @module
 */
import { requestToken, requireAgent } from "../lib/support/agents.ts";
import { tokenHash } from "../lib/support/passwords.ts";
import { jsonMessages } from "../lib/realtime/frames.ts";
import { FrameError } from "../lib/realtime/protocol.ts";
import type { AppRequest } from "../lib/context.ts";
import { acceptSocket } from "../lib/realtime/accept.ts";
import type { AgentState } from "../lib/support/support.ts";

/** Upgrades to an agent socket. */
export async function agentSocket(req: Request, ctx: AppRequest): Promise<Response> {
  const { app, url } = ctx;
  const { support } = app;
  const agent = await requireAgent(app, req, url);
  // The session is known to be live here, so the request carries its token.
  const sessionHash = await tokenHash(requestToken(req, url)!);
  const state: AgentState = { agent, sessionHash, status: "online", lastTypingAt: 0 };
  const conversationId = (frame: Record<string, unknown>) => {
    if (typeof frame.conversationId !== "string" || frame.conversationId === "") {
      throw new FrameError("bad_message", '"conversationId" is required');
    }
    return frame.conversationId;
  };
  return acceptSocket(req, ctx, {
    endpoint: "support_agent",
    state,
    handlers: {
      open: (conn) => support.agents.agentOpen(conn),
      message: jsonMessages(app, {
        accept: (conn, frame) => support.agents.accept(conn, conversationId(frame)),
        message: (conn, frame) => (conversationId(frame), support.agents.agentMessage(conn, frame)),
        note: (conn, frame) => (conversationId(frame), support.agents.note(conn, frame)),
        typing: (conn, frame) => (conversationId(frame), support.agents.agentTyping(conn, frame)),
        read: (conn, frame) => (conversationId(frame), support.agents.agentRead(conn, frame)),
        transfer: (conn, frame) => (conversationId(frame), support.agents.transfer(conn, frame)),
        close: (conn, frame) => (conversationId(frame), support.agents.close(conn, frame)),
        status: (conn, frame) => support.agents.status(conn, frame),
      }),
      close: (conn) => support.agents.agentClose(conn),
    },
  });
}
