/**
 * A keyed work queue with one worker: a key queued several times is processed once; a key being
 * processed and queued again is processed again afterwards; failures are retried per key with
 * exponential back-off. Reconcilers return `ok`, `retry` or `reprocessAll`.
 */
import type { Logger } from '../util/log.js';

export type ReconcileResult = 'ok' | 'retry' | 'reprocessAll';

export interface QueueOptions {
  readonly name: string;
  readonly reconcile: (key: string) => Promise<ReconcileResult>;
  /** Called when a reconcile asks for every key to be processed again. */
  readonly onReprocessAll?: () => void;
  readonly log: Logger;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private processing: string | undefined;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];
  /** Reconciles run, for metrics. */
  readonly stats = { processed: 0, errors: 0, retries: 0 };

  constructor(private readonly opts: QueueOptions) {}

  start(): void {
    if (this.loop) return;
    this.stopped = false;
    this.loop = this.run();
  }

  /**
   * Stops after the running reconcile (if any). Keys still queued, and keys waiting for a retry,
   * stay queued for a later start(); add() is ignored until then.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const [key, t] of this.timers) {
      clearTimeout(t);
      if (!this.queued.has(key)) {
        this.queued.add(key);
        this.queue.push(key);
      }
    }
    this.timers.clear();
    this.wake?.();
    await this.loop;
    this.loop = undefined;
  }

  add(key: string): void {
    if (this.stopped || this.queued.has(key)) return;
    const t = this.timers.get(key);
    if (t) {
      clearTimeout(t);
      this.timers.delete(key);
    }
    this.queued.add(key);
    this.queue.push(key);
    this.wake?.();
  }

  addAfter(key: string, ms: number): void {
    if (this.stopped || this.queued.has(key) || this.timers.has(key)) return;
    const t = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    t.unref();
    this.timers.set(key, t);
  }

  get length(): number {
    return this.queue.length;
  }

  /** Resolves when nothing is queued or running, or once the queue is stopped (tests). */
  idle(): Promise<void> {
    if ((this.queue.length === 0 || this.stopped) && this.processing === undefined) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const key = this.queue.shift();
      if (key === undefined) {
        for (const w of this.idleWaiters.splice(0)) w();
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      this.queued.delete(key);
      this.processing = key;
      let result: ReconcileResult;
      try {
        result = await this.opts.reconcile(key);
      } catch (e) {
        this.stats.errors++;
        this.opts.log.error('reconcile failed', {
          queue: this.opts.name,
          key,
          error: e instanceof Error ? e.message : String(e),
        });
        result = 'retry';
      }
      this.stats.processed++;
      this.processing = undefined;
      if (result === 'retry') {
        const n = (this.failures.get(key) ?? 0) + 1;
        this.failures.set(key, n);
        this.stats.retries++;
        const base = this.opts.backoffInitialMs ?? 100;
        this.addAfter(key, Math.min(base * 2 ** (n - 1), this.opts.backoffMaxMs ?? 30_000));
      } else {
        this.failures.delete(key);
        if (result === 'reprocessAll') {
          try {
            this.opts.onReprocessAll?.();
          } catch (e) {
            // A throw here would end the loop (and reject it, unobserved until stop()).
            this.opts.log.error('onReprocessAll failed', {
              queue: this.opts.name,
              error: e instanceof Error ? e.message : String(e),
            });
          }
        }
      }
    }
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
