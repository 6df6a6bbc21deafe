/**
 * A tiny command-line flag reader for the bench scripts (`--name value`, `--name=value`, bare `--switch`), since
 * `@std/cli` is out of reach here.
 *
 * @module
 */

/** Parsed flags: `--x 3` gives `{ x: "3" }`, a bare `--smoke` gives `{ smoke: "true" }`; `positionals` holds the rest. */
export interface Flags {
  values: Map<string, string>;
  positionals: string[];
}

/** Reads `args`; `switches` name the flags that take no value. */
export function parseFlags(
  args: readonly string[],
  switches: readonly string[] = [],
): Flags {
  const values = new Map<string, string>();
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("--")) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (eq !== -1) values.set(name, arg.slice(eq + 1));
    else if (switches.includes(name)) values.set(name, "true");
    else if (i + 1 < args.length) values.set(name, args[++i]);
    else throw new Error(`Missing value for --${name}`);
  }
  return { values, positionals };
}

/** A non-negative number flag (fractions allowed), or `fallback` when absent. */
export function numberFlag(flags: Flags, name: string, fallback: number): number {
  const raw = flags.values.get(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) {
    throw new Error(
      `Invalid value for --${name}: "${raw}" (expected a number)`,
    );
  }
  return n;
}

/** A string flag, or `fallback` when absent. */
export function stringFlag(
  flags: Flags,
  name: string,
  fallback: string,
): string {
  return flags.values.get(name) ?? fallback;
}

/** A string flag that must be given. */
export function requiredFlag(flags: Flags, name: string): string {
  const raw = flags.values.get(name);
  if (raw === undefined) throw new Error(`Missing flag --${name}`);
  return raw;
}
