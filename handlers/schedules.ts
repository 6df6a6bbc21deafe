/**
 * `POST /api/schedules` `{"topic","data","at"?,"every"?}` → the schedule; `GET /api/schedules`;
 * `DELETE /api/schedules/:id`. `at` is an ISO time; `every` is ms (≥ 1000) or a five-field cron spec (UTC).
 * For operators: an API key or an admin's session. Creating and deleting are written to the audit log.
 *
 * @module
 */
import { audit } from "../lib/admin/audit.ts";
import { nextCronTime, parseCron } from "../lib/push/cron.ts";
import { HttpError, json, readJson } from "../lib/http/http.ts";
import type { AppRequest } from "../lib/context.ts";
import type { ScheduleRecord } from "../lib/store/store.ts";
import { requireOperator } from "../lib/support/agents.ts";
import { validPublication } from "./publish.ts";

const MAX_SCHEDULES = 10_000;

function view(s: ScheduleRecord) {
  return {
    id: s.id,
    topic: s.topic,
    data: JSON.parse(s.data),
    nextAt: s.nextAt === null ? null : new Date(s.nextAt).toISOString(),
    every: s.cron ?? s.everyMs,
    createdAt: new Date(s.createdAt).toISOString(),
    lastFiredAt: s.lastFiredAt === null ? null : new Date(s.lastFiredAt).toISOString(),
    done: s.nextAt === null,
  };
}

/** Creates a schedule. */
export async function createSchedule(req: Request, ctx: AppRequest): Promise<Response> {
  const { app } = ctx;
  const actor = await requireOperator(app, req, ctx.url);
  const body = await readJson(req, app.config.maxPublishBytes);
  const { topic, dataJson } = validPublication(body, "The body");
  const { at, every } = body as { at?: unknown; every?: unknown };
  const now = Date.now();
  let atMs: number | undefined;
  if (at !== undefined) {
    atMs = typeof at === "string" ? Date.parse(at) : NaN;
    if (!Number.isFinite(atMs)) {
      throw new HttpError(400, "bad_request", '"at" must be an ISO time like 2026-12-01T09:00:00Z');
    }
  }
  let everyMs: number | null = null;
  let cron: string | null = null;
  if (typeof every === "number") {
    if (!Number.isSafeInteger(every) || every < 1000) {
      throw new HttpError(400, "bad_request", '"every" in ms must be a whole number of at least 1000');
    }
    everyMs = every;
  } else if (typeof every === "string") {
    try {
      parseCron(every);
    } catch (err) {
      throw new HttpError(400, "bad_request", (err as Error).message);
    }
    cron = every;
  } else if (every !== undefined) {
    throw new HttpError(400, "bad_request", '"every" must be ms or a cron spec like "*/5 * * * *"');
  }
  if (atMs === undefined && everyMs === null && cron === null) {
    throw new HttpError(400, "bad_request", 'Give "at" (ISO time), "every" (ms or cron), or both');
  }
  const nextAt = atMs ?? (cron ? nextCronTime(parseCron(cron), now) : now + everyMs!);
  if (nextAt === null) throw new HttpError(400, "bad_request", `Cron spec "${cron}" never fires`);
  if ((await app.store.listSchedules()).length >= MAX_SCHEDULES) {
    throw new HttpError(429, "too_many_schedules", `At most ${MAX_SCHEDULES} schedules`);
  }
  const s = await app.store.createSchedule({ topic, data: dataJson, nextAt, everyMs, cron });
  await audit(app, actor, "schedule.create", s.id, { topic, every: cron ?? everyMs, at: at ?? null });
  return json(view(s), 201);
}

/** Lists schedules. */
export async function listSchedules(req: Request, ctx: AppRequest): Promise<Response> {
  await requireOperator(ctx.app, req, ctx.url);
  return json({ schedules: (await ctx.app.store.listSchedules()).map(view) });
}

/** Deletes a schedule. */
export async function deleteSchedule(req: Request, ctx: AppRequest): Promise<Response> {
  const actor = await requireOperator(ctx.app, req, ctx.url);
  const id = ctx.params.id ?? "";
  if (!(await ctx.app.store.deleteSchedule(id))) {
    throw new HttpError(404, "not_found", `No schedule "${id.slice(0, 64)}"`);
  }
  await audit(ctx.app, actor, "schedule.delete", id);
  return json({ deleted: id });
}
