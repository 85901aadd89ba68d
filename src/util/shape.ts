/**
 * Defensive readers for objects of unknown shape (YAML files, API objects of kinds we do not
 * schema-check). A wrong type reads as absent, never as a crash.
 */
export function asRecord(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export function asArray(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

export function asString(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function asNumber(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** A string map (labels, annotations, selectors): non-string values are dropped. */
export function asStringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(asRecord(v))) if (typeof x === 'string') out[k] = x;
  return out;
}
