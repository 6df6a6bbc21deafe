/**
 * Customer service: auto assignment (`--support-assign auto`: least-loaded online agent, the previous agent
 * first, re-queued when no answer comes in `--support-answer-timeout`) and re-queueing.
 *
 * @module
 */
import { agentView } from "./agents.ts";
import { convStream, QUEUE_LIMIT, type SupportDesk } from "./desk.ts";

/** Gives queued conversations to online agents, one pass at a time, and puts conversations back in the queue. */
export class Assigner {
  #desk: SupportDesk;
  #assigning: Promise<void> = Promise.resolve();
  /** Agents who let an auto-assigned conversation time out, per conversation (tried others first). */
  #skipped = new Map<string, Set<string>>();

  constructor(desk: SupportDesk) {
    this.#desk = desk;
  }

  /** A conversation was accepted by hand: forget who let it time out. */
  forget(conversationId: string): void {
    this.#skipped.delete(conversationId);
  }

  /** With `--support-assign auto`, gives queued conversations to online agents; runs one pass at a time. */
  autoAssign(): void {
    if (this.#desk.app.config.supportAssign !== "auto") return;
    this.#assigning = this.#assigning.then(() => this.#assignPass()).catch((err) =>
      this.#desk.app.log.error("auto_assign_failed", { error: String(err) })
    );
  }

  /** Resolves when pending auto-assignment passes are done (tests). */
  settled(): Promise<void> {
    return this.#assigning;
  }

  async #assignPass(): Promise<void> {
    const { store, config } = this.#desk.app;
    const online = [...await this.#desk.onlineAgentIds()];
    if (online.length === 0) return;
    // One query for every agent's load and one for their records, whatever the number of agents.
    const [held, agents, queue] = await Promise.all([
      store.assignedCounts(),
      store.agentsByIds(online),
      this.#desk.queue(),
    ]);
    const load = new Map(online.map((id) => [id, held.get(id) ?? 0]));
    for (const c of queue) {
      const skipped = this.#skipped.get(c.id) ?? new Set();
      const open = online.filter((id) => load.get(id)! < config.supportMaxChats);
      const fresh = open.filter((id) => !skipped.has(id));
      const pool = fresh.length > 0 ? fresh : open;
      if (pool.length === 0) return;
      const preferred = c.lastAgentId && pool.includes(c.lastAgentId) ? c.lastAgentId : undefined;
      const pick = preferred ?? pool.reduce((a, b) => (load.get(b)! < load.get(a)! ? b : a));
      const agent = agents.get(pick);
      if (!agent) continue;
      const won = await store.assignConversation(
        c.id,
        pick,
        { status: "queued" },
        this.#desk.conversationEvent("conversation.assigned", { agent: agentView(agent), via: "auto" }),
      );
      if (!won) continue;
      load.set(pick, load.get(pick)! + 1);
      this.#desk.app.log.info("conversation_auto_assigned", { conversation: c.id, agent: pick });
      await this.#desk.notifyAssigned(won, agent, true, { auto: true });
      this.#watchAnswer(won.id, pick, await store.lastSeq(convStream(won.id)));
    }
  }

  /** Re-queues an auto-assigned conversation whose agent has not answered within the timeout. */
  #watchAnswer(id: string, agentId: string, seqAtAssign: number): void {
    const timeout = this.#desk.app.config.supportAnswerTimeoutS;
    if (timeout <= 0) return;
    this.#desk.later(timeout * 1000, async () => {
      const answered = await this.#desk.app.store.countAfter(convStream(id), seqAtAssign, "agent");
      if (answered > 0) return;
      const skipped = this.#skipped.get(id) ?? new Set();
      skipped.add(agentId);
      this.#skipped.set(id, skipped);
      await this.requeue(id, agentId, "no_answer");
    });
  }

  /** Puts every conversation an agent holds back in the queue. */
  async requeueAll(agentId: string, reason: string): Promise<void> {
    const mine = await this.#desk.app.store.conversations({
      status: "assigned",
      agentId,
      limit: QUEUE_LIMIT,
    });
    for (const c of mine) await this.requeue(c.id, agentId, reason);
  }

  async requeue(id: string, agentId: string, reason: string): Promise<boolean> {
    const c = await this.#desk.app.store.requeueConversation(id, agentId);
    if (!c) return false;
    this.#desk.app.log.info("conversation_requeued", { conversation: id, agent: agentId, reason });
    await this.#desk.conversationUpdate(c);
    await this.#desk.positions(c.createdAt);
    this.autoAssign();
    return true;
  }
}
