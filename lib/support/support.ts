/**
 * Customer service (客服): visitors, conversations, the queue, agents, assignment and transfer.
 *
 * All state lives in the store (conversations, messages) and the broker (presence, fan-out), so any instance can
 * serve any visitor or agent. The parts: `desk.ts` (channels, states, views, the queue), `visitors.ts` (visitor
 * sockets), `agent_desk.ts` (agent sockets and sessions), `assignment.ts` (auto assignment, re-queueing).
 *
 * @module
 */
import type { Services } from "../services.ts";
import type { ConversationRecord } from "../store/store.ts";
import { AgentDesk } from "./agent_desk.ts";
import { Assigner } from "./assignment.ts";
import { SupportDesk } from "./desk.ts";
import type { SettingsCache } from "./hours.ts";
import { Uploads } from "./uploads.ts";
import { VisitorDesk } from "./visitors.ts";

export {
  agentChannel,
  AGENTS,
  type AgentState,
  convStream,
  ONLINE,
  SESSION_CHECK_MS,
  type SupportMessage,
  supportMessage,
  visitorChannel,
  type VisitorState,
} from "./desk.ts";

/** Customer service for one app: its visitor and agent sockets, and assignment. */
export class Support {
  readonly visitors: VisitorDesk;
  readonly agents: AgentDesk;
  readonly assigner: Assigner;
  /** Attachments: upload, download, unsent ones pruned. */
  readonly uploads: Uploads;
  #desk: SupportDesk;

  constructor(app: Services) {
    this.#desk = new SupportDesk(app);
    this.assigner = new Assigner(this.#desk);
    this.visitors = new VisitorDesk(this.#desk, this.assigner);
    this.agents = new AgentDesk(this.#desk, this.assigner);
    this.uploads = new Uploads(this.#desk, this.visitors);
    app.metrics.gauge(
      "switchboard_support_queue_length",
      "Conversations waiting for an agent",
      () => this.#desk.queueLength,
    );
  }

  /** Business hours, welcome and the offline form, as admins set them. */
  get settings(): SettingsCache {
    return this.#desk.settings;
  }

  /** Whether visitors can chat now, and the welcome in `lang`. */
  availability(lang: "en" | "zh"): ReturnType<SupportDesk["availability"]> {
    return this.#desk.availability(lang);
  }

  /** The wire form of a conversation for agents. */
  view(c: ConversationRecord): Promise<Record<string, unknown>> {
    return this.#desk.view(c);
  }

  /** The wire forms of conversations, in order (see {@linkcode SupportDesk.views}). */
  views(cs: readonly ConversationRecord[]): Promise<Record<string, unknown>[]> {
    return this.#desk.views(cs);
  }

  /** Queued conversations that have a message, oldest first (the admin console). */
  queue(): Promise<ConversationRecord[]> {
    return this.#desk.queue();
  }

  /** Agents connected now on any instance, with their status (the admin console). */
  connectedAgents(): Promise<{ id: string; name: string; username: string; status: "online" | "away" }[]> {
    return this.#desk.agents();
  }

  /** Resolves when pending auto-assignment passes are done (tests). */
  settled(): Promise<void> {
    return this.assigner.settled();
  }

  /** Stops every timer (shutdown). */
  stop(): void {
    this.#desk.stop();
    this.agents.stop();
    this.uploads.stop();
  }
}
