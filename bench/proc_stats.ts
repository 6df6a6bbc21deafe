/**
 * What the benchmark reads about a process from Linux `/proc`: resident memory and CPU time.
 *
 * @module
 */

/** Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 on every Linux we run). */
const CLK_TCK = 100;

/** A process's resident set now (`VmRSS`) and at its peak so far (`VmHWM`), in bytes; null once it is gone. */
export function readMemory(pid: number): { rss: number; hwm: number } | null {
  let status: string;
  try {
    status = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return null;
  }
  const kib = (field: string) => Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"))?.[1] ?? 0);
  return { rss: kib("VmRSS") * 1024, hwm: kib("VmHWM") * 1024 };
}

/** CPU seconds (user + system, all threads) a process has used so far; null once it is gone. */
export function readCpuSeconds(pid: number): number | null {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return null;
  }
  // Fields after the command name, which is in parentheses and may hold spaces; utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Samples a process's RSS on an interval and keeps the largest value. */
export class RssSampler {
  #pid: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Largest sampled RSS in bytes. */
  max = 0;
  /** Number of samples taken. */
  samples = 0;

  constructor(pid: number) {
    this.#pid = pid;
  }

  /** Starts sampling every `intervalMs`. */
  start(intervalMs = 250): void {
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
  }

  /** Takes one sample now; returns the RSS in bytes (0 when the process is gone). */
  sample(): number {
    const rss = readMemory(this.#pid)?.rss ?? 0;
    this.samples++;
    if (rss > this.max) this.max = rss;
    return rss;
  }

  /** Stops sampling after one last sample. */
  stop(): void {
    clearInterval(this.#timer);
    this.sample();
  }
}

/** CPU use of a process over a window, as a share of one core. */
export class CpuMeter {
  #pid: number;
  #cpu0: number;
  #t0: number;

  constructor(pid: number) {
    this.#pid = pid;
    this.#cpu0 = readCpuSeconds(pid) ?? 0;
    this.#t0 = performance.now();
  }

  /** CPU seconds used per elapsed second since construction (1.0 = one core busy). */
  share(): number {
    const cpu = (readCpuSeconds(this.#pid) ?? this.#cpu0) - this.#cpu0;
    const elapsed = (performance.now() - this.#t0) / 1000;
    return elapsed > 0 ? cpu / elapsed : 0;
  }
}

/** Busy CPU seconds of the whole machine so far (all cores, from `/proc/stat`), or null when unreadable. */
export function readMachineBusySeconds(): number | null {
  let stat: string;
  try {
    stat = Deno.readTextFileSync("/proc/stat");
  } catch {
    return null;
  }
  // cpu  user nice system idle iowait irq softirq steal …, in clock ticks.
  const f = stat.slice(0, stat.indexOf("\n")).trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - f[3] - f[4]) / CLK_TCK;
}

/** CPU use of the whole machine over a window, in cores (2 = both cores of a 2-core box busy). */
export class MachineCpuMeter {
  #busy0 = readMachineBusySeconds() ?? 0;
  #t0 = performance.now();

  /** Busy cores averaged since construction. */
  cores(): number {
    const busy = (readMachineBusySeconds() ?? this.#busy0) - this.#busy0;
    const elapsed = (performance.now() - this.#t0) / 1000;
    return elapsed > 0 ? busy / elapsed : 0;
  }
}

/** The parent pid of every process now running, from `/proc/<pid>/stat`. */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const e of Deno.readDirSync("/proc")) {
    const pid = Number(e.name);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      out.set(pid, Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** `pid` and every process below it now running (PostgreSQL is a postmaster with a process per connection). */
export function processTree(pid: number): number[] {
  const ppid = parents();
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of ppid) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}

/**
 * CPU seconds used so far by `pid` and its descendants, reaped ones included (each living process's user + system
 * time and that of its children it has waited for); null once `pid` is gone.
 */
export function readTreeCpuSeconds(pid: number): number | null {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = Deno.readTextFileSync(`/proc/${p}/stat`);
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      total += (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
    } catch {
      if (p === pid) return null;
    }
  }
  return total;
}

/**
 * Proportional set size of `pid` and its descendants, bytes (`Pss` of `/proc/<pid>/smaps_rollup`): shared pages
 * counted once across the tree, unlike a sum of RSS; 0 once `pid` is gone.
 */
export function readTreePss(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      const rollup = Deno.readTextFileSync(`/proc/${p}/smaps_rollup`);
      total += Number(rollup.match(/^Pss:\s+(\d+) kB/m)?.[1] ?? 0) * 1024;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** The pids of processes now running whose command line (arguments joined by spaces) `matches`. */
export function findProcesses(matches: (cmdline: string) => boolean): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    const pid = Number(e.name);
    if (!Number.isInteger(pid)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").join(" ").trim();
      if (matches(cmdline)) out.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
