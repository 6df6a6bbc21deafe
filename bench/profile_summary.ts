/**
 * Summarises a V8 `.cpuprofile` (from `deno run --cpu-prof` or `node --cpu-prof`): the functions with the most self
 * time, and the most total (self + callees) time, with their share of the profile.
 *
 * ```
 * deno run --allow-read bench/profile_summary.ts <file.cpuprofile> [--top 25]
 * ```
 *
 * @module
 */
import { numberFlag, parseFlags } from "./flags.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** One function's time in a profile, in ms. */
export interface FunctionTime {
  name: string;
  selfMs: number;
  totalMs: number;
}

/** Self and total time per function (named by function, file and line), largest self time first. */
export function summarise(
  profile: CpuProfile,
): { totalMs: number; functions: FunctionTime[] } {
  const self = new Map<number, number>();
  let totalUs = 0;
  profile.samples.forEach((id, i) => {
    const dt = Math.max(0, profile.timeDeltas[i] ?? 0);
    self.set(id, (self.get(id) ?? 0) + dt);
    totalUs += dt;
  });
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const inclusive = new Map<number, number>();
  const visit = (id: number): number => {
    const node = byId.get(id)!;
    let sum = self.get(id) ?? 0;
    for (const child of node.children ?? []) sum += visit(child);
    inclusive.set(id, sum);
    return sum;
  };
  const childIds = new Set(profile.nodes.flatMap((n) => n.children ?? []));
  for (const n of profile.nodes) if (!childIds.has(n.id)) visit(n.id);

  const functions = new Map<string, FunctionTime & { stack: Set<number> }>();
  // Total time counts a function once per stack, so recursion is not double counted.
  const walk = (id: number, onStack: Set<string>) => {
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.replace(/^file:\/\/.*\/(main|bench|lib|handlers)\//, "$1/")
      .replace(/^.*\/node_modules\//, "");
    const name = `${functionName || "(anonymous)"} ${file ? `${file}:${lineNumber + 1}` : ""}`.trim();
    let entry = functions.get(name);
    if (!entry) {
      entry = { name, selfMs: 0, totalMs: 0, stack: new Set() };
      functions.set(name, entry);
    }
    entry.selfMs += (self.get(id) ?? 0) / 1000;
    const fresh = !onStack.has(name);
    if (fresh) entry.totalMs += (inclusive.get(id) ?? 0) / 1000;
    const next = fresh ? new Set(onStack).add(name) : onStack;
    for (const child of node.children ?? []) walk(child, next);
  };
  for (const n of profile.nodes) if (!childIds.has(n.id)) walk(n.id, new Set());
  const list = [...functions.values()].map(({ name, selfMs, totalMs }) => ({
    name,
    selfMs,
    totalMs,
  }));
  list.sort((a, b) => b.selfMs - a.selfMs);
  return { totalMs: totalUs / 1000, functions: list };
}

/** Prints the top self-time and total-time functions of a profile file. */
export async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args);
  const file = flags.positionals[0];
  if (!file) {
    throw new Error("Usage: profile_summary.ts <file.cpuprofile> [--top N]");
  }
  const top = numberFlag(flags, "top", 25);
  const { totalMs, functions } = summarise(
    JSON.parse(await Deno.readTextFile(file)),
  );
  const pct = (ms: number) => `${(100 * ms / totalMs).toFixed(1).padStart(5)} %`;
  console.log(
    `${file}: ${(totalMs / 1000).toFixed(2)} s sampled\n\nself time:`,
  );
  for (const f of functions.slice(0, top)) {
    console.log(`${pct(f.selfMs)}  ${f.name}`);
  }
  console.log("\ntotal time (self + callees):");
  const byTotal = [...functions].sort((a, b) => b.totalMs - a.totalMs);
  for (const f of byTotal.slice(0, top)) {
    console.log(`${pct(f.totalMs)}  ${f.name}`);
  }
}

if (import.meta.main) {
  await main(Deno.args);
}
