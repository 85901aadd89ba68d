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

export function formatProblem(p: Problem): string {
  return p.path ? `${p.kind}/${p.name}: ${p.path}: ${p.reason}` : `${p.kind}/${p.name}: ${p.reason}`;
}

/** Thrown at boundaries when a configuration is invalid; carries every problem. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly Problem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
  }
}
