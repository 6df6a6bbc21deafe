/**
 * A fixed-size latency histogram in whole microseconds: exact below 1,024 µs, then 512 buckets per power of two
 * (error under 0.2 %). Recording is an array increment, so the load generator can record every delivery of a
 * flood without keeping the samples.
 *
 * @module
 */

const EXACT = 1024;
const PER_OCTAVE = 512;
/** Octaves above {@linkcode EXACT}: values up to 2^31 µs (about 35 minutes). */
const OCTAVES = 22;

/** A latency histogram; see the module doc for its resolution. */
export class Histogram {
  #counts = new Float64Array(EXACT + OCTAVES * PER_OCTAVE);
  #count = 0;
  #max = 0;

  /** How many values were recorded. */
  get count(): number {
    return this.#count;
  }

  /** The largest value recorded, in µs. */
  get max(): number {
    return this.#max;
  }

  /** Records one latency in µs; negative values count as 0 and huge ones as the largest bucket. */
  record(micros: number): void {
    const v = micros <= 0 ? 0 : Math.min(Math.floor(micros), 2 ** 31 - 1);
    this.#counts[indexOf(v)]++;
    this.#count++;
    if (v > this.#max) this.#max = v;
  }

  /** Adds every count of `other` to this histogram. */
  merge(other: Histogram): void {
    const theirs = other.#counts;
    for (let i = 0; i < theirs.length; i++) this.#counts[i] += theirs[i];
    this.#count += other.#count;
    if (other.#max > this.#max) this.#max = other.#max;
  }

  /** The value at quantile `q` (0 < q ≤ 1) in µs, or `null` when nothing was recorded. */
  quantile(q: number): number | null {
    if (this.#count === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i];
      if (seen >= rank) return Math.min(valueOf(i), this.#max);
    }
    return this.#max;
  }

  /** p50, p99, p99.9 and max in ms (3 decimals), the shape the reports use. */
  summaryMs(): LatencySummary {
    const ms = (us: number | null) => us === null ? null : Math.round(us) / 1000;
    return {
      count: this.#count,
      p50: ms(this.quantile(0.5)),
      p99: ms(this.quantile(0.99)),
      p999: ms(this.quantile(0.999)),
      max: ms(this.#count === 0 ? null : this.#max),
    };
  }
}

/** Latency percentiles in ms; `null` when there were no samples. */
export interface LatencySummary {
  count: number;
  p50: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
}

function indexOf(v: number): number {
  if (v < EXACT) return v;
  // v is in [2^(9+e), 2^(10+e)) for e ≥ 1, so v >>> e lands in [512, 1024).
  const e = 31 - Math.clz32(v) - 9;
  return EXACT + (e - 1) * PER_OCTAVE + ((v >>> e) - PER_OCTAVE);
}

/** The middle of bucket `i`, in µs. */
function valueOf(i: number): number {
  if (i < EXACT) return i;
  const e = Math.floor((i - EXACT) / PER_OCTAVE) + 1;
  const sub = (i - EXACT) % PER_OCTAVE + PER_OCTAVE;
  return sub * 2 ** e + 2 ** (e - 1);
}
