/**
 * WorkQueue (src/k8s/queue.ts) on its own: dedupe, requeue while processing, per-key exponential
 * back-off (fake timers), reprocessAll, errors, stop/start.
 */
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { WorkQueue, type QueueOptions, type ReconcileResult } from '../../src/k8s/queue.js';
import { silentLogger } from '../../src/util/log.js';

/** A promise with its resolve function. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Lets the queue's loop run (a few microtask turns). */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

function queue(
  reconcile: (key: string) => Promise<ReconcileResult>,
  extra: Partial<QueueOptions> = {},
): WorkQueue {
  return new WorkQueue({ name: 'test', log: silentLogger, reconcile, ...extra });
}

describe('WorkQueue', () => {
  let q: WorkQueue | undefined;

  afterEach(async () => {
    await q?.stop();
    q = undefined;
    jest.useRealTimers();
  });

  it('dedupes a key queued several times before it runs, and keeps FIFO order', async () => {
    const seen: string[] = [];
    q = queue((k) => {
      seen.push(k);
      return Promise.resolve('ok');
    });
    for (const k of ['a', 'b', 'a', 'c', 'b', 'a']) q.add(k);
    expect(q.length).toBe(3);
    q.start();
    await q.idle();
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(q.stats).toEqual({ processed: 3, errors: 0, retries: 0 });
  });

  it('processes a key again when it is queued while being processed (once, however often)', async () => {
    const seen: string[] = [];
    const gate = deferred();
    q = queue(async (k) => {
      seen.push(k);
      if (seen.length === 1) await gate.promise;
      return 'ok';
    });
    q.start();
    q.add('a');
    await flush();
    expect(seen).toEqual(['a']); // running, blocked on the gate
    q.add('a');
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.length).toBe(2);
    gate.resolve();
    await q.idle();
    expect(seen).toEqual(['a', 'a', 'b']);
  });

  it('retries with per-key exponential back-off, capped, and resets after success', async () => {
    jest.useFakeTimers({ now: 0 });
    const runs: Array<[string, number]> = [];
    let failA = 6;
    q = queue(
      (k) => {
        runs.push([k, Date.now()]);
        if (k === 'a' && failA-- > 0) return Promise.resolve('retry');
        return Promise.resolve('ok');
      },
      { backoffInitialMs: 100, backoffMaxMs: 1000 },
    );
    q.start();
    q.add('a');
    q.add('b');
    await jest.advanceTimersByTimeAsync(10_000);
    const times = runs.filter(([k]) => k === 'a').map(([, t]) => t);
    // 100, 200, 400, 800, then the 1000 cap twice.
    expect(times).toEqual([0, 100, 300, 700, 1500, 2500, 3500]);
    expect(runs.filter(([k]) => k === 'b')).toEqual([['b', 0]]);
    expect(q.stats.retries).toBe(6);

    // After the success the next failure starts at the initial delay again.
    failA = 1;
    const t0 = Date.now();
    q.add('a');
    await jest.advanceTimersByTimeAsync(1000);
    expect(
      runs
        .filter(([k]) => k === 'a')
        .map(([, t]) => t - t0)
        .slice(-2),
    ).toEqual([0, 100]);
  });

  it('treats a thrown error (or rejected promise) like retry', async () => {
    jest.useFakeTimers({ now: 0 });
    const runs: number[] = [];
    q = queue(
      () => {
        runs.push(Date.now());
        if (runs.length === 1) throw new Error('sync boom');
        if (runs.length === 2) return Promise.reject(new Error('async boom'));
        return Promise.resolve('ok');
      },
      { backoffInitialMs: 50 },
    );
    q.start();
    q.add('k');
    await jest.advanceTimersByTimeAsync(1000);
    expect(runs).toEqual([0, 50, 150]);
    expect(q.stats).toEqual({ processed: 3, errors: 2, retries: 2 });
  });

  it('an add() while a key waits for its retry runs it at once (no second timer)', async () => {
    jest.useFakeTimers({ now: 0 });
    const runs: number[] = [];
    q = queue(
      () => {
        runs.push(Date.now());
        return Promise.resolve(runs.length === 1 ? 'retry' : 'ok');
      },
      { backoffInitialMs: 1000 },
    );
    q.start();
    q.add('k');
    await jest.advanceTimersByTimeAsync(200);
    q.add('k');
    await jest.advanceTimersByTimeAsync(5000);
    expect(runs).toEqual([0, 200]);
  });

  it('calls onReprocessAll for reprocessAll, and survives it throwing', async () => {
    const seen: string[] = [];
    let calls = 0;
    const qq = queue(
      (k) => {
        seen.push(k);
        return Promise.resolve(k === 'all' ? 'reprocessAll' : 'ok');
      },
      {
        onReprocessAll: () => {
          calls++;
          if (calls === 1) {
            for (const k of ['x', 'y']) qq.add(k);
            return;
          }
          throw new Error('handler bug');
        },
      },
    );
    q = qq;
    q.start();
    q.add('all');
    await q.idle();
    expect(seen).toEqual(['all', 'x', 'y']);
    q.add('all');
    await q.idle();
    q.add('z'); // the loop is still alive
    await q.idle();
    expect(seen).toEqual(['all', 'x', 'y', 'all', 'z']);
    expect(calls).toBe(2);
  });

  it('stop() waits for the running reconcile, then ignores add() and fires no retries', async () => {
    jest.useFakeTimers({ now: 0 });
    const seen: string[] = [];
    const gate = deferred();
    q = queue(
      async (k) => {
        seen.push(k);
        if (k === 'slow') await gate.promise;
        return k === 'bad' ? 'retry' : 'ok';
      },
      { backoffInitialMs: 100 },
    );
    q.start();
    q.add('bad');
    q.add('slow');
    await jest.advanceTimersByTimeAsync(10);
    expect(seen).toEqual(['bad', 'slow']); // 'bad' waits for its retry timer, 'slow' runs
    let stopped = false;
    const stopping = q.stop().then(() => (stopped = true));
    await jest.advanceTimersByTimeAsync(10);
    expect(stopped).toBe(false);
    gate.resolve();
    await stopping;
    q.add('late');
    await jest.advanceTimersByTimeAsync(5000);
    expect(seen).toEqual(['bad', 'slow']);

    // A later start() runs the retry that was pending at stop (the post-stop add() was dropped).
    q.start();
    await jest.advanceTimersByTimeAsync(10);
    await q.idle();
    expect(seen).toEqual(['bad', 'slow', 'bad']);
  });

  it('idle() resolves at once when empty, and after the last key otherwise', async () => {
    q = queue(() => new Promise((r) => setTimeout(() => r('ok'), 20)));
    await q.idle();
    q.start();
    q.add('a');
    q.add('b');
    const t0 = Date.now();
    await q.idle();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(35);
    expect(q.stats.processed).toBe(2);
  });
});
