/**
 * Prometheus-style counters, gauges and histograms, rendered as text for `GET /metrics`.
 *
 * @module
 */

type Labels = Record<string, string>;

const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 2500];

function labelKey(labels: Labels): string {
  const parts = Object.keys(labels).sort().map((k) => `${k}="${String(labels[k]).replace(/["\\\n]/g, "_")}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

/** A registry of named series. */
export class Metrics {
  #counters = new Map<string, Map<string, number>>();
  #gauges = new Map<string, () => number | Map<string, number>>();
  #histograms = new Map<string, Map<string, { buckets: number[]; sum: number; count: number }>>();
  #help = new Map<string, string>();

  /** Adds `by` to a counter. */
  inc(name: string, labels: Labels = {}, by = 1): void {
    let series = this.#counters.get(name);
    if (!series) {
      series = new Map();
      this.#counters.set(name, series);
    }
    const key = labelKey(labels);
    series.set(key, (series.get(key) ?? 0) + by);
  }

  /** A counter handle for a fixed label set, for hot paths (no label key built per increment). */
  counter(name: string, labels: Labels = {}): { inc(by?: number): void } {
    let series = this.#counters.get(name);
    if (!series) {
      series = new Map();
      this.#counters.set(name, series);
    }
    const key = labelKey(labels);
    const s = series;
    return { inc: (by = 1) => s.set(key, (s.get(key) ?? 0) + by) };
  }

  /** Registers a gauge read at scrape time; a map result is rendered as labelled series (key = label string). */
  gauge(name: string, help: string, read: () => number | Map<string, number>): void {
    this.#gauges.set(name, read);
    this.#help.set(name, help);
  }

  /** Records an observation in ms. */
  observe(name: string, valueMs: number, labels: Labels = {}): void {
    let series = this.#histograms.get(name);
    if (!series) {
      series = new Map();
      this.#histograms.set(name, series);
    }
    const key = labelKey(labels);
    let h = series.get(key);
    if (!h) {
      h = { buckets: LATENCY_BUCKETS_MS.map(() => 0), sum: 0, count: 0 };
      series.set(key, h);
    }
    for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++) if (valueMs <= LATENCY_BUCKETS_MS[i]) h.buckets[i]++;
    h.sum += valueMs;
    h.count++;
  }

  /** Formats a label set for {@linkcode gauge} map keys. */
  static labels(labels: Labels): string {
    return labelKey(labels);
  }

  /** The Prometheus text exposition. */
  render(): string {
    const out: string[] = [];
    for (const [name, series] of this.#counters) {
      out.push(`# TYPE ${name} counter`);
      for (const [key, v] of series) out.push(`${name}${key} ${v}`);
    }
    for (const [name, read] of this.#gauges) {
      out.push(`# HELP ${name} ${this.#help.get(name)}`, `# TYPE ${name} gauge`);
      const v = read();
      if (typeof v === "number") out.push(`${name} ${v}`);
      else for (const [key, n] of v) out.push(`${name}${key} ${n}`);
    }
    for (const [name, series] of this.#histograms) {
      out.push(`# TYPE ${name} histogram`);
      for (const [key, h] of series) {
        const inner = key ? key.slice(1, -1) + "," : "";
        LATENCY_BUCKETS_MS.forEach((b, i) => out.push(`${name}_bucket{${inner}le="${b}"} ${h.buckets[i]}`));
        out.push(`${name}_bucket{${inner}le="+Inf"} ${h.count}`);
        out.push(`${name}_sum${key} ${h.sum}`, `${name}_count${key} ${h.count}`);
      }
    }
    return out.join("\n") + "\n";
  }
}
