/** One configuration problem, reported as `<Kind>/<name>: <field.path>: <reason>`. */
export interface Problem {
  readonly kind: string;
  readonly name: string;
  /** Dotted field path (`spec.addresses[1]`); empty for the whole object. */
  readonly path: string;
  readonly reason: string;
  /** A referenced object may still appear (spec a.12 "T"). */
  readonly transient?: boolean;
}

/** Control characters (newlines above all) are escaped so each problem stays on one line. */
function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]/g, (c) =>
    c === '\n' ? '\\n' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

export function formatProblem(p: Problem): string {
  const head = `${oneLine(p.kind)}/${oneLine(p.name)}`;
  return p.path ? `${head}: ${oneLine(p.path)}: ${oneLine(p.reason)}` : `${head}: ${oneLine(p.reason)}`;
}

/** Thrown at boundaries when a configuration is invalid; carries every problem. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly Problem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
  }
}
