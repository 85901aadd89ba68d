/**
 * FrrApplier: brings a running FRR to the latest submitted frr.conf, one apply at a time.
 *
 * - submit() returns at once. While an apply runs, later submissions only replace the pending
 *   one, so a burst of 1000 submissions costs a handful of applies (the first, then the latest).
 * - Every config is first checked with FRR's parser (vtysh -C, no daemons); a config it rejects
 *   is never applied (status: lastError, rejectedGeneration; no retry until a new submission).
 * - The first apply after start() is a full reload: `frr-reload.py --test`, then `--reload`.
 * - Later applies send the diff against the last successfully applied config (config-diff.ts)
 *   through ONE `vtysh -f` run, then read `show running-config` once and check that the lines
 *   meant to appear / disappear did (FRR's known rewrites are normalised, see runningForms).
 *   A diff the incremental path cannot do safely, a vtysh error or a failed check falls back to
 *   the full reload.
 * - When the full reload fails too, the last good config is applied again (frr-reload --reload),
 *   lastError is recorded and the same config is retried with exponential back-off
 *   (0.5 s doubling to 30 s by default). A different submission is tried at once.
 * - Passwords never reach the log or lastError (`password X` is masked).
 *
 * All FRR access goes through the injected FrrExecutor (vtysh.ts has the real one), so unit tests
 * use a fake.
 */
import { diffConfigs, renderVtyshScript, verifyRunning } from './config-diff.js';
import { maskPasswords, parseConfig, type ConfigTree } from './config-tree.js';
import { silentLogger, type Logger } from '../util/log.js';

export interface CheckResult {
  readonly ok: boolean;
  /** Rejected lines as FRR reports them (may contain passwords: mask before logging). */
  readonly errors: readonly string[];
}

export interface ExecOutcome {
  readonly ok: boolean;
  /** stdout + stderr of the command (may contain passwords: mask before logging). */
  readonly output: string;
  readonly durationMs: number;
}

/** Everything the applier does to FRR. */
export interface FrrExecutor {
  /** Syntax check of a whole config without daemons (`vtysh --config_dir TMP -C -f FILE`). */
  dryRun(config: string): Promise<CheckResult>;
  /** `frr-reload.py --test FILE`: shows the delta, changes nothing. */
  reloadTest(config: string): Promise<ExecOutcome>;
  /** `frr-reload.py --reload FILE`. */
  reload(config: string): Promise<ExecOutcome>;
  /** `vtysh -f FILE` with configuration commands (already in config mode). */
  applyScript(script: string): Promise<ExecOutcome>;
  /** `show running-config` text; rejects when vtysh fails. */
  runningConfig(): Promise<string>;
}

export type ApplyMode = 'incremental' | 'full';

export interface ApplyTimings {
  dryRunMs?: number;
  applyMs?: number;
  verifyMs?: number;
  reloadTestMs?: number;
  reloadMs?: number;
  totalMs: number;
}

export interface FrrApplyStatus {
  /** Generation of the latest submission (1 for the first; 0 before any). */
  readonly desiredGeneration: number;
  /** Generation of the config FRR runs now (0 before the first successful apply). */
  readonly appliedGeneration: number;
  /** Why the last attempt failed or was rejected (masked); cleared by the next success. */
  readonly lastError?: string;
  /** Unix time (ms) of the last successful apply. */
  readonly lastAppliedAt?: number;
  /** How the last successful apply was done. */
  readonly mode?: ApplyMode;
  /** An apply is running right now. */
  readonly applying: boolean;
  /** Generation whose apply failed and is being retried, if any. */
  readonly failedGeneration?: number;
  /** Generation that FRR's parser rejected (never applied), if that is the latest outcome. */
  readonly rejectedGeneration?: number;
  /** Unix time (ms) of the next retry after a failure. */
  readonly nextRetryAt?: number;
  /** Unix time (ms) the last attempt ended. */
  readonly lastAttemptAt?: number;
  /** Step durations of the last attempt. */
  readonly lastTimings?: ApplyTimings;
  /** Attempts by outcome since start. */
  readonly counts: {
    readonly incremental: number;
    readonly full: number;
    readonly unchanged: number;
    readonly failed: number;
    readonly rejected: number;
  };
}

export interface FrrApplierOptions {
  readonly executor: FrrExecutor;
  readonly log?: Logger;
  /** First retry delay after a failure (default 500 ms); doubles up to maxBackoffMs. */
  readonly initialBackoffMs?: number;
  /** Longest retry delay (default 30 000 ms). */
  readonly maxBackoffMs?: number;
  /** Clock (ms), for tests. */
  readonly now?: () => number;
  /** Called after every change of status() (submission, attempt start/end, retry scheduled). */
  readonly onStatus?: (status: FrrApplyStatus) => void;
}

interface Job {
  readonly generation: number;
  readonly text: string;
}

interface Applied {
  readonly generation: number;
  readonly text: string;
  readonly tree: ConfigTree;
}

type Outcome = 'applied' | 'failed' | 'rejected';

const MAX_ERROR_CHARS = 2000;

/** The interesting part of a command's output for an error message: FRR's error lines first. */
export function summariseOutput(output: string, maxLines = 12): string {
  // frr-reload.py colours its log levels; repeated lines (one per daemon) are said once.
  // eslint-disable-next-line no-control-regex
  const plain = output.replace(/\u001b\[[0-9;]*m/g, '');
  const lines = [...new Set(plain.split('\n').map((l) => l.trimEnd()))];
  const errs = lines.filter((l) => /^line \d+:|%|error|fail|exited with code|timed out|killed/i.test(l));
  const pick = (errs.length ? errs : lines.filter(Boolean).slice(-maxLines)).slice(0, maxLines);
  return maskPasswords(pick.join('\n')).slice(0, MAX_ERROR_CHARS);
}

export class FrrApplier {
  private readonly exec: FrrExecutor;
  private readonly log: Logger;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly now: () => number;
  private readonly onStatus: ((status: FrrApplyStatus) => void) | undefined;

  private desired = 0;
  private pending: Job | undefined;
  private lastGood: Applied | undefined;
  /** FRR's state is unknown (a failed attempt whose restore failed too): next apply is full. */
  private dirty = false;
  private started = false;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private retry: { job: Job; timer: NodeJS.Timeout; at: number } | undefined;
  private backoffMs = 0;
  private idleWaiters: (() => void)[] = [];

  private lastError: string | undefined;
  private lastAppliedAt: number | undefined;
  private mode: ApplyMode | undefined;
  private failedGeneration: number | undefined;
  private rejectedGeneration: number | undefined;
  private lastAttemptAt: number | undefined;
  private lastTimings: ApplyTimings | undefined;
  private readonly counts = { incremental: 0, full: 0, unchanged: 0, failed: 0, rejected: 0 };

  constructor(opts: FrrApplierOptions) {
    this.exec = opts.executor;
    this.log = opts.log ?? silentLogger;
    this.initialBackoffMs = opts.initialBackoffMs ?? 500;
    this.maxBackoffMs = opts.maxBackoffMs ?? 30_000;
    this.now = opts.now ?? Date.now;
    this.onStatus = opts.onStatus;
  }

  /** Starts applying (submissions made before start() wait for it). */
  start(): void {
    if (this.stopped) throw new Error('FrrApplier: start() after stop()');
    this.started = true;
    this.kick();
  }

  /** Stops: no new applies or retries; resolves when the running apply (if any) has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry.timer);
    this.retry = undefined;
    await this.loop;
    this.notifyIdle();
    this.changed();
  }

  /** Queues a config; returns its generation at once. Only the latest pending config is applied. */
  submit(configText: string): number {
    const job: Job = { generation: ++this.desired, text: configText };
    this.pending = job;
    if (this.retry && this.retry.job.text !== configText) {
      // A different config may fix what failed: try it now (the back-off level is kept).
      clearTimeout(this.retry.timer);
      this.retry = undefined;
    }
    this.kick();
    this.changed();
    return job.generation;
  }

  /**
   * Resolves when nothing is being applied and nothing is waiting to be, apart from a retry
   * scheduled after a failure (see status().nextRetryAt).
   */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  status(): FrrApplyStatus {
    return {
      desiredGeneration: this.desired,
      appliedGeneration: this.lastGood?.generation ?? 0,
      applying: this.loop !== undefined,
      counts: { ...this.counts },
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      ...(this.lastAppliedAt !== undefined ? { lastAppliedAt: this.lastAppliedAt } : {}),
      ...(this.mode !== undefined ? { mode: this.mode } : {}),
      ...(this.failedGeneration !== undefined ? { failedGeneration: this.failedGeneration } : {}),
      ...(this.rejectedGeneration !== undefined ? { rejectedGeneration: this.rejectedGeneration } : {}),
      ...(this.retry ? { nextRetryAt: this.retry.at } : {}),
      ...(this.lastAttemptAt !== undefined ? { lastAttemptAt: this.lastAttemptAt } : {}),
      ...(this.lastTimings ? { lastTimings: { ...this.lastTimings } } : {}),
    };
  }

  // ------------------------------------------------------------------------------------------

  private changed(): void {
    if (!this.onStatus) return;
    try {
      this.onStatus(this.status());
    } catch (e) {
      this.log.warn('FRR apply status listener failed', {
        error: e instanceof Error ? e.message : String(e),
      });
    }
  }

  private isIdle(): boolean {
    return (
      this.stopped || (this.loop === undefined && (this.pending === undefined || this.retry !== undefined))
    );
  }

  private notifyIdle(): void {
    if (!this.isIdle()) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const r of w) r();
  }

  private kick(): void {
    if (!this.started || this.stopped || this.loop || this.retry || !this.pending) return;
    this.loop = this.run().finally(() => {
      this.loop = undefined;
      this.notifyIdle();
      this.changed();
    });
    this.changed();
  }

  private async run(): Promise<void> {
    while (this.pending && !this.stopped) {
      const job = this.pending;
      this.pending = undefined;
      const outcome = await this.attempt(job);
      this.changed();
      if (outcome === 'applied') {
        this.backoffMs = 0;
        continue;
      }
      if (outcome === 'rejected') continue;
      // Failed: a different newer config is tried at once, the same one after the back-off.
      // (this.pending may have been set by submit() while attempt() ran.)
      const newer = this.pending as Job | undefined;
      if (newer && newer.text !== job.text) continue;
      const retryJob = newer ?? job;
      this.pending = undefined;
      this.backoffMs = this.backoffMs
        ? Math.min(this.backoffMs * 2, this.maxBackoffMs)
        : Math.min(this.initialBackoffMs, this.maxBackoffMs);
      this.scheduleRetry(retryJob, this.backoffMs);
      return;
    }
  }

  private scheduleRetry(job: Job, delayMs: number): void {
    if (this.stopped) return;
    const timer = setTimeout(() => {
      this.retry = undefined;
      // A newer submission made meanwhile wins over the retried one.
      if (!this.pending) this.pending = job;
      this.kick();
    }, delayMs);
    this.retry = { job, timer, at: this.now() + delayMs };
    this.changed();
    this.log.info('FRR apply will be retried', { generation: job.generation, inMs: delayMs });
  }

  private async attempt(job: Job): Promise<Outcome> {
    const t0 = this.now();
    const timings: ApplyTimings = { totalMs: 0 };
    const finish = (o: Outcome): Outcome => {
      this.lastAttemptAt = this.now();
      timings.totalMs = this.lastAttemptAt - t0;
      this.lastTimings = timings;
      return o;
    };
    try {
      if (this.lastGood && !this.dirty && job.text === this.lastGood.text) {
        this.succeed(job, this.lastGood.tree, this.mode ?? 'incremental');
        this.counts.unchanged++;
        return finish('applied');
      }
      const tree = parseConfig(job.text);

      const td = this.now();
      const dry = await this.exec.dryRun(job.text);
      timings.dryRunMs = this.now() - td;
      if (!dry.ok) {
        this.counts.rejected++;
        this.rejectedGeneration = job.generation;
        this.lastError = maskPasswords(
          `generation ${job.generation} rejected by FRR's parser (not applied): ${dry.errors.slice(0, 10).join('; ')}`,
        ).slice(0, MAX_ERROR_CHARS);
        this.log.error('FRR config rejected by the dry-run parser; keeping the running config', {
          generation: job.generation,
          errors: dry.errors.slice(0, 20).map(maskPasswords),
        });
        return finish('rejected');
      }

      let fallback: string | undefined;
      if (!this.lastGood || this.dirty) {
        fallback = this.lastGood ? 'FRR state unknown after a failed attempt' : 'first apply';
      } else {
        const diff = diffConfigs(this.lastGood.tree, tree);
        if (diff.unsafe.length) {
          fallback = `not incremental: ${diff.unsafe.slice(0, 5).join('; ')}`;
        } else if (diff.changes.length === 0) {
          this.succeed(job, tree, 'incremental');
          this.counts.unchanged++;
          return finish('applied');
        } else {
          const ta = this.now();
          const r = await this.exec.applyScript(renderVtyshScript(diff.changes));
          timings.applyMs = this.now() - ta;
          if (!r.ok) {
            fallback = `vtysh -f failed: ${summariseOutput(r.output)}`;
          } else {
            const tv = this.now();
            const running = parseConfig(await this.exec.runningConfig());
            const problems = verifyRunning(diff, running);
            timings.verifyMs = this.now() - tv;
            if (problems.length) {
              fallback = `running-config check failed: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ''}`;
            } else {
              this.succeed(job, tree, 'incremental');
              this.counts.incremental++;
              this.log.info('FRR config applied', {
                generation: job.generation,
                mode: 'incremental',
                commands: diff.changes.length,
                applyMs: timings.applyMs,
                verifyMs: timings.verifyMs,
              });
              return finish('applied');
            }
          }
        }
      }

      if (this.lastGood) {
        this.log.info('FRR full reload', {
          generation: job.generation,
          reason: maskPasswords(fallback ?? ''),
        });
      }
      const failure = await this.fullReload(job.text, timings);
      if (!failure) {
        this.succeed(job, tree, 'full');
        this.counts.full++;
        this.log.info('FRR config applied', {
          generation: job.generation,
          mode: 'full',
          reloadTestMs: timings.reloadTestMs,
          reloadMs: timings.reloadMs,
        });
        return finish('applied');
      }
      await this.fail(job, failure);
      return finish('failed');
    } catch (e) {
      await this.fail(job, e instanceof Error ? e.message : String(e));
      return finish('failed');
    }
  }

  /** frr-reload.py --test, then --reload. Returns the failure, or undefined on success. */
  private async fullReload(text: string, timings: ApplyTimings): Promise<string | undefined> {
    const tt = this.now();
    const test = await this.exec.reloadTest(text);
    timings.reloadTestMs = this.now() - tt;
    if (!test.ok) return `frr-reload.py --test failed: ${summariseOutput(test.output)}`;
    const tr = this.now();
    const r = await this.exec.reload(text);
    timings.reloadMs = this.now() - tr;
    if (!r.ok) return `frr-reload.py --reload failed: ${summariseOutput(r.output)}`;
    return undefined;
  }

  private succeed(job: Job, tree: ConfigTree, mode: ApplyMode): void {
    this.lastGood = { generation: job.generation, text: job.text, tree };
    this.dirty = false;
    this.mode = mode;
    this.lastAppliedAt = this.now();
    this.lastError = undefined;
    this.failedGeneration = undefined;
    this.rejectedGeneration = undefined;
  }

  /** Records a failure and puts the last good config back (frr-reload undoes a partial apply). */
  private async fail(job: Job, reason: string): Promise<void> {
    this.counts.failed++;
    this.failedGeneration = job.generation;
    let message = `generation ${job.generation} failed: ${reason}`;
    if (this.lastGood) {
      try {
        const r = await this.exec.reload(this.lastGood.text);
        if (r.ok) {
          this.dirty = false;
          message += `; kept generation ${this.lastGood.generation}`;
        } else {
          this.dirty = true;
          message += `; restoring generation ${this.lastGood.generation} failed too: ${summariseOutput(r.output, 4)}`;
        }
      } catch (e) {
        this.dirty = true;
        message += `; restoring generation ${this.lastGood.generation} failed too: ${e instanceof Error ? e.message : String(e)}`;
      }
    } else {
      this.dirty = true;
    }
    this.lastError = maskPasswords(message).slice(0, MAX_ERROR_CHARS);
    this.log.error('FRR apply failed', { generation: job.generation, error: this.lastError });
  }
}
