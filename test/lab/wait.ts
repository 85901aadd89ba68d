/** Polling helper for the lab tests. */

export interface WaitOptions {
  /** Give up after this long (default 30 000 ms). */
  timeoutMs?: number;
  /** Pause between two polls (default 200 ms). */
  intervalMs?: number;
  /** What is being waited for; used in the timeout error ("BIRD session n1_4 Established"). */
  what?: string;
  /** Describes the last value in the timeout error (default: JSON, truncated). */
  describe?: (last: unknown) => string;
}

export class WaitTimeoutError extends Error {
  constructor(
    message: string,
    readonly lastValue: unknown,
    readonly lastError: unknown,
  ) {
    super(message);
    this.name = 'WaitTimeoutError';
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function defaultDescribe(v: unknown): string {
  let s: string;
  try {
    s = typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return s.length > 500 ? `${s.slice(0, 500)}…` : s;
}

/**
 * Polls `predicate` until it returns a truthy value, and resolves with that value.
 * A predicate that throws counts as "not yet"; the last error is reported on timeout.
 * The predicate is always called at least once, even with timeoutMs 0.
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  opts: WaitOptions = {},
): Promise<Exclude<T, false | null | undefined | 0 | ''>> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const intervalMs = opts.intervalMs ?? 200;
  const what = opts.what ?? 'condition';
  const describe = opts.describe ?? defaultDescribe;
  const start = Date.now();
  let lastValue: unknown = undefined;
  let lastError: unknown = undefined;
  let polls = 0;
  for (;;) {
    polls++;
    try {
      const v = await predicate();
      if (v) return v as Exclude<T, false | null | undefined | 0 | ''>;
      lastValue = v;
      lastError = undefined;
    } catch (e) {
      lastError = e;
    }
    const elapsed = Date.now() - start;
    if (elapsed >= timeoutMs) {
      const detail =
        lastError !== undefined
          ? `last error: ${lastError instanceof Error ? lastError.message : describe(lastError)}`
          : `last value: ${describe(lastValue)}`;
      throw new WaitTimeoutError(
        `Timed out after ${elapsed} ms (${polls} polls) waiting for ${what}; ${detail}`,
        lastValue,
        lastError,
      );
    }
    await sleep(Math.min(intervalMs, Math.max(0, timeoutMs - elapsed)));
  }
}
