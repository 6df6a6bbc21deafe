/**
 * Support reports: conversations, first response time (to the first human reply), resolution time and CSAT, per
 * agent and overall, over whole days in the shop's time zone.
 *
 * Percentiles are nearest-rank: the median of 1, 2, 3, 4 is 2, and p90 is the value at rank ⌈0.9·n⌉. A
 * conversation counts in the day it was created; its first response and resolution count there too.
 *
 * @module
 */
import type { AgentRecord, ReportRow } from "../store/store.ts";
import { dayStart, nextDate, wallClock } from "../calendar.ts";

/** Durations in seconds. */
export interface Durations {
  count: number;
  medianS: number | null;
  p90S: number | null;
}

/** The numbers of one agent or of everyone. */
export interface Stats {
  conversations: number;
  /** Conversations an agent wrote in. */
  answered: number;
  closed: number;
  /** Left through the offline form. */
  offline: number;
  firstResponse: Durations & { averageS: number | null };
  resolution: Durations;
  csat: { count: number; average: number | null; distribution: Record<"1" | "2" | "3" | "4" | "5", number> };
}

/** A whole report. */
export interface Report {
  from: string;
  to: string;
  timeZone: string;
  overall: Stats;
  agents: ({ agent: { id: string; username: string; name: string; role: string } } & Stats)[];
  days: {
    date: string;
    conversations: number;
    firstResponseMedianS: number | null;
    resolutionMedianS: number | null;
    csatAverage: number | null;
  }[];
}

/** The longest range one report covers. */
export const MAX_REPORT_DAYS = 366;

/** Nearest-rank percentile `p` (0–1] of sorted values. */
function rank(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)];
}

const round = (n: number | null, digits = 1): number | null =>
  n === null ? null : Math.round(n * 10 ** digits) / 10 ** digits;

function durations(values: number[]): Durations {
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, medianS: round(rank(sorted, 0.5)), p90S: round(rank(sorted, 0.9)) };
}

function stats(rows: ReportRow[], firstReplies: number[]): Stats {
  const resolutions: number[] = [];
  const ratings: number[] = [];
  const distribution = { "1": 0, "2": 0, "3": 0, "4": 0, "5": 0 };
  let answered = 0, closed = 0, offline = 0;
  for (const r of rows) {
    if (r.firstReplyAt !== null) answered++;
    if (r.source === "offline") offline++;
    if (r.status === "closed" && r.closedAt !== null) {
      closed++;
      resolutions.push((r.closedAt - r.createdAt) / 1000);
    }
    if (r.rating !== null && r.rating >= 1 && r.rating <= 5) {
      ratings.push(r.rating);
      distribution[String(r.rating) as keyof typeof distribution]++;
    }
  }
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  return {
    conversations: rows.length,
    answered,
    closed,
    offline,
    firstResponse: {
      ...durations(firstReplies),
      averageS: firstReplies.length ? round(sum(firstReplies) / firstReplies.length) : null,
    },
    resolution: durations(resolutions),
    csat: {
      count: ratings.length,
      average: ratings.length ? round(sum(ratings) / ratings.length, 2) : null,
      distribution,
    },
  };
}

const firstReply = (r: ReportRow): number | null =>
  r.firstReplyAt === null ? null : Math.max(0, (r.firstReplyAt - r.createdAt) / 1000);

/** The instants `[from, to)` that the days `fromDate`…`toDate` (inclusive) cover in `timeZone`. */
export function reportWindow(fromDate: string, toDate: string, timeZone: string): [number, number] {
  return [dayStart(fromDate, timeZone), dayStart(nextDate(toDate), timeZone)];
}

/**
 * Builds the report of `rows` (conversations created in the window). A first response counts for the agent who
 * wrote it; resolution and CSAT for the agent who held the conversation last.
 */
export function buildReport(
  rows: ReportRow[],
  agents: AgentRecord[],
  range: { from: string; to: string; timeZone: string },
): Report {
  const byAgent = new Map<string, { rows: ReportRow[]; firstReplies: number[] }>();
  const slot = (id: string) => {
    let s = byAgent.get(id);
    if (!s) byAgent.set(id, s = { rows: [], firstReplies: [] });
    return s;
  };
  const byDay = new Map<string, ReportRow[]>();
  for (let d = range.from; d <= range.to; d = nextDate(d)) byDay.set(d, []);
  for (const r of rows) {
    if (r.agentId) slot(r.agentId).rows.push(r);
    const fr = firstReply(r);
    if (fr !== null && r.firstReplyBy) slot(r.firstReplyBy).firstReplies.push(fr);
    byDay.get(wallClock(r.createdAt, range.timeZone).date)?.push(r);
  }
  const known = new Map(agents.map((a) => [a.id, a]));
  const firstReplies = (rs: ReportRow[]) => rs.map(firstReply).filter((x): x is number => x !== null);
  return {
    ...range,
    overall: stats(rows, firstReplies(rows)),
    agents: [...byAgent].map(([id, s]) => {
      const a = known.get(id);
      return {
        agent: { id, username: a?.username ?? "", name: a?.name ?? "", role: a?.role ?? "agent" },
        ...stats(s.rows, s.firstReplies),
      };
    }).sort((x, y) => y.conversations - x.conversations || x.agent.username.localeCompare(y.agent.username)),
    days: [...byDay].map(([date, rs]) => {
      const s = stats(rs, firstReplies(rs));
      return {
        date,
        conversations: s.conversations,
        firstResponseMedianS: s.firstResponse.medianS,
        resolutionMedianS: s.resolution.medianS,
        csatAverage: s.csat.average,
      };
    }),
  };
}

const CSV_COLUMNS = [
  "agent",
  "name",
  "conversations",
  "answered",
  "closed",
  "offline",
  "first_response_median_s",
  "first_response_p90_s",
  "first_response_average_s",
  "resolution_median_s",
  "resolution_p90_s",
  "csat_count",
  "csat_average",
  "csat_1",
  "csat_2",
  "csat_3",
  "csat_4",
  "csat_5",
];

/** A CSV field: quoted when it needs to be, and never read as a formula by a spreadsheet. */
function field(v: unknown): string {
  let s = v === null || v === undefined ? "" : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** The report as CSV: one row per agent, then the overall row (agent `*`). */
export function reportCsv(report: Report): string {
  const line = (agent: string, name: string, s: Stats) =>
    [
      agent,
      name,
      s.conversations,
      s.answered,
      s.closed,
      s.offline,
      s.firstResponse.medianS,
      s.firstResponse.p90S,
      s.firstResponse.averageS,
      s.resolution.medianS,
      s.resolution.p90S,
      s.csat.count,
      s.csat.average,
      ...(["1", "2", "3", "4", "5"] as const).map((k) => s.csat.distribution[k]),
    ].map(field).join(",");
  return [
    CSV_COLUMNS.join(","),
    ...report.agents.map((a) => line(a.agent.username, a.agent.name, a)),
    line("*", "", report.overall),
  ].join("\r\n") + "\r\n";
}
