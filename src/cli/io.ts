/** Output sinks and a small, strict argument parser shared by the subcommands. */

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

export function processIo(): Io {
  return {
    out: (t) => void process.stdout.write(t),
    err: (t) => void process.stderr.write(t),
  };
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface FlagSpec {
  /** Long name without dashes; `short` is an optional one-letter alias. */
  readonly name: string;
  readonly short?: string;
  readonly repeat?: boolean;
  readonly boolean?: boolean;
}

export type Flags = Record<string, string[]>;

/** Parses `--name value`, `--name=value`, `-x value`; no positional arguments are accepted. */
export function parseFlags(args: readonly string[], specs: readonly FlagSpec[]): Flags {
  const out: Flags = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    let name: string | undefined;
    let value: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      name = eq === -1 ? a.slice(2) : a.slice(2, eq);
      if (eq !== -1) value = a.slice(eq + 1);
    } else if (a.startsWith('-') && a.length === 2) {
      name = specs.find((s) => s.short === a[1])?.name ?? a;
    } else {
      throw new UsageError(`unexpected argument "${a}"`);
    }
    const spec = specs.find((s) => s.name === name);
    if (!spec) throw new UsageError(`unknown flag "${a}"`);
    if (spec.boolean) {
      if (value !== undefined) throw new UsageError(`flag --${spec.name} takes no value`);
      value = 'true';
    } else if (value === undefined) {
      value = args[++i];
      if (value === undefined) throw new UsageError(`flag --${spec.name} needs a value`);
    }
    const list = out[spec.name] ?? [];
    if (list.length && !spec.repeat) throw new UsageError(`flag --${spec.name} given twice`);
    list.push(value);
    out[spec.name] = list;
  }
  return out;
}

export function one(flags: Flags, name: string): string | undefined {
  return flags[name]?.[0];
}

/** A port flag: 0-65535 (0 = disabled). */
export function portFlag(text: string | undefined, name: string, dflt: number): number {
  if (text === undefined || text === '') return dflt;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--${name} must be 0-65535`);
  return n;
}
