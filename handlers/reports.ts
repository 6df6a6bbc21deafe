/**
 * `GET /api/support/reports?from=YYYY-MM-DD&to=YYYY-MM-DD[&tz=Area/City][&format=csv]`: support numbers over
 * whole days (`to` included) in a time zone, for an admin's session or an API key.
 *
 * @module
 */
import type { AppRequest } from "../lib/context.ts";
import { HttpError, json } from "../lib/http/http.ts";
import { requireOperator } from "../lib/support/agents.ts";
import { isDate, isTimeZone, wallClock } from "../lib/calendar.ts";
import { buildReport, MAX_REPORT_DAYS, reportCsv, reportWindow } from "../lib/support/reports.ts";

/** The report as JSON, or as CSV with `format=csv`. */
export async function supportReport(req: Request, ctx: AppRequest): Promise<Response> {
  await requireOperator(ctx.app, req, ctx.url);
  const q = ctx.url.searchParams;
  const timeZone = q.get("tz") ?? ctx.app.config.tz ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!isTimeZone(timeZone)) throw new HttpError(400, "bad_request", `"tz" is not a time zone: ${timeZone}`);
  const today = wallClock(Date.now(), timeZone).date;
  const to = q.get("to") ?? today;
  const from = q.get("from") ??
    new Date(Date.parse(`${to}T00:00:00Z`) - 6 * 86_400_000).toISOString().slice(0, 10);
  if (!isDate(from) || !isDate(to)) {
    throw new HttpError(400, "bad_request", '"from" and "to" must be dates as YYYY-MM-DD');
  }
  const days = (Date.parse(to) - Date.parse(from)) / 86_400_000 + 1;
  if (days < 1 || days > MAX_REPORT_DAYS) {
    throw new HttpError(
      400,
      "bad_request",
      `"from" must not be after "to", and at most ${MAX_REPORT_DAYS} days apart`,
    );
  }
  const format = q.get("format") ?? "json";
  if (format !== "json" && format !== "csv") {
    throw new HttpError(400, "bad_request", '"format" must be json or csv');
  }
  const [start, end] = reportWindow(from, to, timeZone);
  const [rows, agents] = await Promise.all([
    ctx.app.store.reportRows(start, end),
    ctx.app.store.listAgents(),
  ]);
  const report = buildReport(rows, agents, { from, to, timeZone });
  if (format === "json") return json(report);
  return new Response(reportCsv(report), {
    headers: {
      "content-type": "text/csv; charset=utf-8",
      "content-disposition": `attachment; filename="support-report-${from}-${to}.csv"`,
      "cache-control": "no-store",
    },
  });
}
