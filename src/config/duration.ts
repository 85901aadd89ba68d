/**
 * Go `time.Duration` text ("90s", "1m30s", "1.5s", "500ms"), as metav1.Duration fields carry it.
 * Returns nanoseconds, or a reason.
 */
const UNITS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  µs: 1e3,
  μs: 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

export function parseDuration(text: unknown): { ok: true; ns: number } | { ok: false; reason: string } {
  if (typeof text !== 'string' || text === '')
    return { ok: false, reason: 'duration must be a non-empty string' };
  let s = text;
  let sign = 1;
  if (s[0] === '-' || s[0] === '+') {
    sign = s[0] === '-' ? -1 : 1;
    s = s.slice(1);
  }
  if (s === '0') return { ok: true, ns: 0 };
  const re = /^([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)/;
  let total = 0;
  if (s === '') return { ok: false, reason: `"${text}" is not a duration` };
  while (s.length > 0) {
    const m = re.exec(s);
    if (!m || m[1] === '' || m[1] === '.') {
      return { ok: false, reason: `"${text}" is not a duration (use e.g. 90s, 1m30s, 500ms)` };
    }
    total += Number(m[1]) * UNITS[m[2]!]!;
    s = s.slice(m[0].length);
  }
  return { ok: true, ns: sign * total };
}

export const NS_PER_SECOND = 1e9;
