/**
 * FrrApplier: brings a running FRR to the latest submitted frr.conf, one apply at a time.
 *
 * - submit() returns at once. While an apply runs, later submissions only replace the pending
 *   one, so a burst of 1000 submissions costs a handful of applies (the first, then the latest).
 * - The first apply after start() is a full reload: the whole config through FRR's parser
 *   (`vtysh -C`, no daemons; a config it rejects is never applied: status lastError,
 *   rejectedGeneration, no retry until a new submission), then `frr-reload.py --test`, `--reload`.
 *   Every full reload first reads `show running-config` and hands frr-reload.py the config with
 *   its set-shaped prefix-lists numbered as FRR has them (alignPrefixLists): otherwise it would
 *   renumber FRR back to the render's numbers, one delete and one add per entry.
 * - Later applies send the diff (config-diff.ts) as ONE `vtysh -f` script. The diff's "from" side
 *   is the last applied config, except for prefix-lists: those are diffed against the entries FRR
 *   actually has (their sequence numbers differ from the rendered ones once lists are diffed as
 *   sets), as read from `show running-config` or predicted by the previous diff. Per apply, the
 *   work that grows with the number of Services stays in this process (parse and diff):
 *     1. only the script goes through `vtysh -C` (it is a valid config snippet with its contexts);
 *     2. `vtysh -f` with the script;
 *     3. when the script holds only prefix-list entries and `network` lines (a Service added or
 *        removed), it is checked with targeted `show … prefix-list NAME seq N json` commands —
 *        one vtysh run, output in proportion to the change — and the whole `show running-config`
 *        check follows lazily, once no apply has come for checkDelayMs (a burst costs one); a
 *        new submission cancels a check that is under way. Any other script is checked against
 *        `show running-config` at once. A full check compares every line of the config (FRR's
 *        known rewrites normalised, prefix-lists as sets) and re-reads FRR's prefix-lists.
 *   The lazy check also waits at least 10 times as long as the previous one took, so that on a
 *   huge config (FRR 8.4 prints 10 000s of prefix-list entries slowly, and answers nothing else
 *   meanwhile) it costs FRR at most about a tenth of its time.
 *   A diff the incremental path cannot do safely, a vtysh error or a failed targeted check falls
 *   back to the full reload. A failed lazy check re-applies the config: incrementally from what
 *   FRR really has when only prefix-list entries differ, otherwise as a full reload.
 * - Withdrawal sweep: FRR 8.4 skips an update-subgroup whose coalesce timer runs (the first
 *   1-10 s after a session comes up) when a route goes, and the coalesce run afterwards only
 *   announces what is in the table: a `network` removed in that window stays in the neighbor's
 *   Adj-RIB-Out and is never withdrawn (seen in bgp-e2e: the router kept the route for good, and
 *   `clear bgp … soft out` does not help). So every `network` an apply removes is, once FRR's
 *   longest coalesce time has surely passed, added and removed again in one `vtysh -f`: with the
 *   prefix gone from every out prefix-list nothing is announced, and a stale Adj-RIB-Out entry
 *   gets its withdrawal. Costs one short vtysh run per burst of removals.
 * - `mode: 'full'` forces every apply through frr-reload.py (upstream MetalLB's behaviour), with
 *   no check afterwards and no withdrawal sweep; for comparisons.
 * - When the full reload fails too, the last good config is applied again (frr-reload --reload),
 *   lastError is recorded and the same config is retried with exponential back-off
 *   (0.5 s doubling to 30 s by default). A different submission is tried at once.
 * - Passwords never reach the log or lastError (`password X` is masked).
 *
 * All FRR access goes through the injected FrrExecutor (vtysh.ts has the real one), so unit tests
 * use a fake.
 */
import {
  alignPrefixLists,
  diffConfigs,
  entryCheckCommands,
  isPrefixListEntryPath,
  prefixListEntries,
  prefixListNames,
  renderVtyshScript,
  splitForDaemons,
  verifyEntryChecks,
  verifyFull,
  type ConfigDiff,
} from './config-diff.js';
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
  /** Syntax check without daemons (`vtysh --config_dir TMP -C -f FILE`): a whole config or a script. */
  dryRun(config: string): Promise<CheckResult>;
  /** `frr-reload.py --test FILE`: shows the delta, changes nothing. */
  reloadTest(config: string): Promise<ExecOutcome>;
  /** `frr-reload.py --reload FILE`. */
  reload(config: string): Promise<ExecOutcome>;
  /** `vtysh -f FILE` with configuration commands (already in config mode); `-d bgpd` when asked. */
  applyScript(script: string, opts?: { daemon?: 'bgpd' }): Promise<ExecOutcome>;
  /** `show running-config` text; rejects when vtysh fails or `signal` aborts it. */
  runningConfig(signal?: AbortSignal): Promise<string>;
  /** Show commands in one vtysh run (`-c` each); resolves with their output, one after another. */
  show(commands: readonly string[]): Promise<string>;
}

export type ApplyMode = 'incremental' | 'full';

export interface ApplyTimings {
  /** Parsing the submitted config. */
  parseMs?: number;
  /** Computing the diff. */
  diffMs?: number;
  /** `vtysh -C` of the script (incremental) or of the whole config (full), both when it fell back. */
  dryRunMs?: number;
  applyMs?: number;
  /** The check right after the apply (targeted entries, or `show running-config`). */
  verifyMs?: number;
  /** Full reload: reading FRR's prefix-list numbers first (`show running-config`). */
  runningMs?: number;
  reloadTestMs?: number;
  reloadMs?: number;
  totalMs: number;
}

export interface FrrApplyStatus {
  /** Generation of the latest submission (1 for the first; 0 before any). */
  readonly desiredGeneration: number;
  /** Generation of the config FRR runs now (0 before the first successful apply). */
  readonly appliedGeneration: number;
  /**
   * Generation whose whole config was last found in `show running-config` (absent before the
   * first check, and in full mode). Lower than appliedGeneration while a lazy check is due.
   */
  readonly verifiedGeneration?: number;
  /** Why the last attempt failed or was rejected (masked); cleared by the next success. */
  readonly lastError?: string;
  /** Unix time (ms) of the last successful apply. */
  readonly lastAppliedAt?: number;
  /** How the last successful apply was done. */
  readonly mode?: ApplyMode;
  /** How the last incremental apply was checked. */
  readonly lastVerify?: 'entries' | 'running-config';
  /** An apply (or a lazy check) is running right now. */
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
  /** The last lazy whole-config check. */
  readonly lastCheck?: { readonly at: number; readonly durationMs: number; readonly ok: boolean };
  /** Attempts by outcome since start. */
  readonly counts: {
    readonly incremental: number;
    readonly full: number;
    readonly unchanged: number;
    readonly failed: number;
    readonly rejected: number;
    /** Withdrawal sweeps run (see FrrApplier) and the `network` lines they bounced. */
    readonly sweeps: number;
    readonly sweptNetworks: number;
  };
  /** Lazy whole-config checks since start: passed, found a difference. */
  readonly checks: { readonly ok: number; readonly failed: number };
}

export interface FrrApplierOptions {
  readonly executor: FrrExecutor;
  readonly log?: Logger;
  /** `full`: every apply through frr-reload.py, no check (default `auto`). */
  readonly mode?: 'auto' | 'full';
  /** First retry delay after a failure (default 500 ms); doubles up to maxBackoffMs. */
  readonly initialBackoffMs?: number;
  /** Longest retry delay (default 30 000 ms). */
  readonly maxBackoffMs?: number;
  /**
   * Quiet time after the last apply before the lazy `show running-config` check (default
   * 1000 ms; negative: never).
   */
  readonly checkDelayMs?: number;
  /** Most prefix-list entries checked one by one; more and `show running-config` is cheaper (64). */
  readonly maxEntryChecks?: number;
  /**
   * Delay of the withdrawal sweep after the apply that removed `network` lines (default: FRR's
   * coalesce time for the config's number of neighbors, 1 000 + 50 per neighbor up to 10 000 ms,
   * plus 1 000 ms; negative: no sweep).
   */
  readonly withdrawSweepMs?: number;
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

/** What the lazy check must also confirm: what went away since the last check. */
interface Unchecked {
  readonly absent: (readonly string[])[];
  readonly goneLists: Set<string>;
}

type Outcome = 'applied' | 'failed' | 'rejected';

const MAX_ERROR_CHARS = 2000;
/** The lazy check waits at least this many times the duration of the previous one. */
const CHECK_SPACING = 10;
/** Beyond this many remembered removals the lazy check only checks what must be there. */
const MAX_ABSENT = 50_000;
const PL_PROBLEM =
  /^(?:missing|still present): (?:ip|ipv6) prefix-list |^(?:missing from|still in) (?:ip|ipv6) prefix-list /;

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

interface SweepItem {
  readonly router: string;
  readonly af: string;
  readonly prefix: string;
  /** Unix time (ms) from which the sweep may bounce it. */
  readonly due: number;
  /** How much earlier it may go along with a sweep that runs anyway (a quarter of its margin). */
  readonly slack: number;
}

const AF_UNICAST = /^address-family (?:ipv4|ipv6) unicast$/;
const NETWORK = /^network (\S+)$/;

/** The `network` lines of a config by router, address-family and prefix. */
export function networksOf(tree: ConfigTree): Map<string, Omit<SweepItem, 'due' | 'slack'>> {
  const out = new Map<string, Omit<SweepItem, 'due' | 'slack'>>();
  for (const router of tree.root.children.values()) {
    if (router.kind !== 'router-bgp') continue;
    for (const af of router.children.values()) {
      if (af.kind !== 'address-family' || !AF_UNICAST.test(af.text)) continue;
      for (const l of af.children.values()) {
        const m = l.kind === 'line' ? NETWORK.exec(l.text) : null;
        if (m)
          out.set(`${router.text}\0${af.text}\0${m[1]}`, { router: router.text, af: af.text, prefix: m[1]! });
      }
    }
  }
  return out;
}

/**
 * FRR 8.4's subgroup coalesce time for this many neighbors (1 000 ms + 50 ms each, at most
 * 10 000 ms), plus a second of margin.
 */
export function sweepDelayFor(tree: ConfigTree): number {
  let neighbors = 0;
  for (const router of tree.root.children.values()) {
    if (router.kind !== 'router-bgp') continue;
    for (const l of router.children.values()) if (/^neighbor \S+ remote-as /.test(l.text)) neighbors++;
  }
  return Math.min(10_000, 1000 + 50 * neighbors) + 1000;
}

const isAbort = (e: unknown) => e instanceof Error && (e.name === 'AbortError' || /aborted/i.test(e.message));

export class FrrApplier {
  private readonly exec: FrrExecutor;
  private readonly log: Logger;
  private readonly forceFull: boolean;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly checkDelayMs: number;
  private readonly maxEntryChecks: number;
  private readonly withdrawSweepMs: number | undefined;
  private readonly now: () => number;
  private readonly onStatus: ((status: FrrApplyStatus) => void) | undefined;

  private desired = 0;
  private pending: Job | undefined;
  private lastGood: Applied | undefined;
  /** FRR's state is unknown (a failed attempt whose restore failed too): next apply is full. */
  private dirty = false;
  /** FRR differs from lastGood in its prefix-lists only: re-apply lastGood even though it is the same text. */
  private resync = false;
  /**
   * FRR's prefix-list entries as far as we know (the "from" side of the next diff's prefix-lists);
   * undefined: the ones of lastGood (right after a full reload).
   */
  private frrLists: readonly string[] | undefined;
  /** Applied but not yet confirmed by a whole `show running-config` check. */
  private unchecked: Unchecked | undefined;
  private verifiedGeneration: number | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private checkAbort: AbortController | undefined;
  private checkFailures = 0;
  private lastCheck: { at: number; durationMs: number; ok: boolean } | undefined;
  private readonly checks = { ok: 0, failed: 0 };
  private started = false;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private retry: { job: Job; timer: NodeJS.Timeout; at: number } | undefined;
  private backoffMs = 0;
  private idleWaiters: (() => void)[] = [];
  /** Removed `network` lines awaiting the withdrawal sweep, by key (see networksOf). */
  private sweep = new Map<string, SweepItem>();
  private sweepTimer: NodeJS.Timeout | undefined;

  private lastError: string | undefined;
  private lastAppliedAt: number | undefined;
  private mode: ApplyMode | undefined;
  private lastVerify: 'entries' | 'running-config' | undefined;
  private failedGeneration: number | undefined;
  private rejectedGeneration: number | undefined;
  private lastAttemptAt: number | undefined;
  private lastTimings: ApplyTimings | undefined;
  private readonly counts = {
    incremental: 0,
    full: 0,
    unchanged: 0,
    failed: 0,
    rejected: 0,
    sweeps: 0,
    sweptNetworks: 0,
  };

  constructor(opts: FrrApplierOptions) {
    this.exec = opts.executor;
    this.log = opts.log ?? silentLogger;
    this.forceFull = opts.mode === 'full';
    this.initialBackoffMs = opts.initialBackoffMs ?? 500;
    this.maxBackoffMs = opts.maxBackoffMs ?? 30_000;
    this.checkDelayMs = opts.checkDelayMs ?? 1000;
    this.maxEntryChecks = opts.maxEntryChecks ?? 64;
    this.withdrawSweepMs = opts.withdrawSweepMs;
    this.now = opts.now ?? Date.now;
    this.onStatus = opts.onStatus;
  }

  /** Starts applying (submissions made before start() wait for it). */
  start(): void {
    if (this.stopped) throw new Error('FrrApplier: start() after stop()');
    this.started = true;
    this.kick();
  }

  /** Stops: no new applies, retries or checks; resolves when the running apply (if any) has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry.timer);
    this.retry = undefined;
    if (this.checkTimer) clearTimeout(this.checkTimer);
    this.checkTimer = undefined;
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    this.checkAbort?.abort();
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
    // A lazy check gives way to a new config (it is due again after that apply).
    this.checkAbort?.abort();
    this.kick();
    this.changed();
    return job.generation;
  }

  /**
   * Resolves when nothing is being applied and nothing is waiting to be, apart from a retry
   * scheduled after a failure (see status().nextRetryAt) and a lazy check not started yet.
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
      checks: { ...this.checks },
      ...(this.verifiedGeneration !== undefined ? { verifiedGeneration: this.verifiedGeneration } : {}),
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      ...(this.lastAppliedAt !== undefined ? { lastAppliedAt: this.lastAppliedAt } : {}),
      ...(this.mode !== undefined ? { mode: this.mode } : {}),
      ...(this.lastVerify !== undefined ? { lastVerify: this.lastVerify } : {}),
      ...(this.failedGeneration !== undefined ? { failedGeneration: this.failedGeneration } : {}),
      ...(this.rejectedGeneration !== undefined ? { rejectedGeneration: this.rejectedGeneration } : {}),
      ...(this.retry ? { nextRetryAt: this.retry.at } : {}),
      ...(this.lastAttemptAt !== undefined ? { lastAttemptAt: this.lastAttemptAt } : {}),
      ...(this.lastTimings ? { lastTimings: { ...this.lastTimings } } : {}),
      ...(this.lastCheck ? { lastCheck: { ...this.lastCheck } } : {}),
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
    if (!this.started || this.stopped || this.loop || this.retry) return;
    if (!this.pending) {
      this.scheduleSweep();
      this.scheduleCheck();
      return;
    }
    if (this.checkTimer) clearTimeout(this.checkTimer);
    this.checkTimer = undefined;
    this.loop = this.run().finally(() => this.loopEnded());
    this.changed();
  }

  private loopEnded(): void {
    this.loop = undefined;
    this.notifyIdle();
    this.changed();
    this.kick();
  }

  /** Arms the lazy whole-config check once nothing else is to be done. */
  private scheduleCheck(): void {
    if (!this.unchecked || this.checkTimer || this.checkDelayMs < 0 || this.forceFull) return;
    const base = this.checkFailures
      ? Math.min(this.checkDelayMs * 2 ** this.checkFailures, Math.max(this.maxBackoffMs, this.checkDelayMs))
      : this.checkDelayMs;
    // FRR answers nothing else while it prints its config (minutes for 10 000s of prefix-list
    // entries on FRR 8.4): keep the checks to about a tenth of its time.
    const delay = Math.max(base, CHECK_SPACING * (this.lastCheck?.durationMs ?? 0));
    this.checkTimer = setTimeout(() => {
      this.checkTimer = undefined;
      if (this.stopped || this.loop || this.retry || this.pending || !this.unchecked) return;
      this.loop = this.fullCheck().finally(() => this.loopEnded());
      this.changed();
    }, delay);
    this.checkTimer.unref();
  }

  /** Arms the withdrawal sweep for the earliest removed `network` still waiting. */
  private scheduleSweep(): void {
    if (this.sweepTimer || this.sweep.size === 0) return;
    let due = Infinity;
    for (const it of this.sweep.values()) due = Math.min(due, it.due);
    this.sweepTimer = setTimeout(
      () => {
        this.sweepTimer = undefined;
        if (this.stopped) return;
        if (this.loop || this.retry || this.pending) return; // kick() re-arms it afterwards
        this.loop = this.runSweep().finally(() => this.loopEnded());
        this.changed();
      },
      Math.max(0, due - this.now()),
    );
    this.sweepTimer.unref();
  }

  /** Adds and removes again, in one `vtysh -f`, every removed `network` whose time has come. */
  private async runSweep(): Promise<void> {
    const good = this.lastGood;
    if (!good || this.dirty) {
      this.sweep.clear();
      return;
    }
    const now = this.now();
    const current = networksOf(good.tree);
    const routers = new Set(
      [...good.tree.root.children.values()].filter((c) => c.kind === 'router-bgp').map((c) => c.text),
    );
    const due: SweepItem[] = [];
    for (const [key, it] of this.sweep) {
      if (it.due - it.slack > now) continue;
      this.sweep.delete(key);
      // Back in the config (nothing to withdraw) or its router is gone (sessions closed).
      if (current.has(key) || !routers.has(it.router)) continue;
      due.push(it);
    }
    if (!due.length) return;
    const changes = due.flatMap((it) => [
      { context: [it.router, it.af], op: 'add' as const, command: `network ${it.prefix}` },
      { context: [it.router, it.af], op: 'delete' as const, command: `no network ${it.prefix}` },
    ]);
    const t0 = this.now();
    try {
      const r = await this.exec.applyScript(renderVtyshScript(changes));
      this.counts.sweeps++;
      this.counts.sweptNetworks += due.length;
      if (r.ok) this.log.debug('FRR withdrawal sweep', { networks: due.length, ms: this.now() - t0 });
      else
        this.log.warn('FRR withdrawal sweep failed', {
          networks: due.length,
          output: summariseOutput(r.output, 4),
        });
    } catch (e) {
      this.log.warn('FRR withdrawal sweep failed', { error: e instanceof Error ? e.message : String(e) });
    }
  }

  /** Queues the `network` lines `next` drops from `prev` for the withdrawal sweep. */
  private queueSweep(prev: ConfigTree, next: ConfigTree): void {
    if (this.forceFull || (this.withdrawSweepMs ?? 0) < 0) return;
    const before = networksOf(prev);
    const after = networksOf(next);
    for (const key of after.keys()) this.sweep.delete(key);
    if ([...before.keys()].every((key) => after.has(key))) return;
    const delay = this.withdrawSweepMs ?? sweepDelayFor(next);
    // The default delay has a second of margin over FRR's coalesce time.
    const slack = this.withdrawSweepMs === undefined ? 250 : Math.floor(delay / 4);
    const due = this.now() + delay;
    for (const [key, it] of before) if (!after.has(key)) this.sweep.set(key, { ...it, due, slack });
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
    const addDryRun = (ms: number) => (timings.dryRunMs = (timings.dryRunMs ?? 0) + ms);
    try {
      if (this.lastGood && !this.dirty && !this.resync && job.text === this.lastGood.text) {
        this.succeed(job, this.lastGood.tree, this.mode ?? 'incremental');
        this.counts.unchanged++;
        return finish('applied');
      }
      const tp = this.now();
      const tree = parseConfig(job.text);
      timings.parseMs = this.now() - tp;

      let fallback: string | undefined;
      if (this.forceFull) {
        fallback = 'full mode';
      } else if (!this.lastGood || this.dirty) {
        fallback = this.lastGood ? 'FRR state unknown after a failed attempt' : 'first apply';
      } else {
        const tdf = this.now();
        const diff = diffConfigs(this.lastGood.tree, tree, this.frrLists ? { running: this.frrLists } : {});
        timings.diffMs = this.now() - tdf;
        if (diff.unsafe.length) {
          fallback = `not incremental: ${diff.unsafe.slice(0, 5).join('; ')}`;
        } else if (diff.changes.length === 0) {
          this.succeed(job, tree, 'incremental');
          this.frrLists = diff.prefixListsAfter;
          this.counts.unchanged++;
          return finish('applied');
        } else {
          const script = renderVtyshScript(diff.changes);
          const td = this.now();
          const dry = await this.exec.dryRun(script);
          addDryRun(this.now() - td);
          if (!dry.ok) return finish(this.reject(job, dry.errors, 'the change script'));
          const ta = this.now();
          let r: ExecOutcome = { ok: true, output: '', durationMs: 0 };
          for (const part of splitForDaemons(diff.changes)) {
            const text = renderVtyshScript(part.changes);
            r = await this.exec.applyScript(text, part.daemon ? { daemon: part.daemon } : undefined);
            if (!r.ok) break;
          }
          timings.applyMs = this.now() - ta;
          if (!r.ok) {
            fallback = `vtysh -f failed: ${summariseOutput(r.output)}`;
          } else {
            const tv = this.now();
            const problems = await this.verifyApplied(job, tree, diff);
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
                verify: this.lastVerify,
                ...timings,
                totalMs: this.now() - t0,
              });
              return finish('applied');
            }
          }
        }
      }

      if (this.lastGood && !this.forceFull) {
        this.log.info('FRR full reload', {
          generation: job.generation,
          reason: maskPasswords(fallback ?? ''),
        });
      }
      const td = this.now();
      const dry = await this.exec.dryRun(job.text);
      addDryRun(this.now() - td);
      if (!dry.ok) return finish(this.reject(job, dry.errors, 'the config'));
      const previous = this.ownedLists();
      let reloadText = job.text;
      if (!this.forceFull) {
        // Only sequence numbers change: what the parser accepted stays acceptable.
        const tr = this.now();
        reloadText = await this.alignedForReload(job.text);
        timings.runningMs = this.now() - tr;
      }
      const failure = await this.fullReload(reloadText, timings);
      if (!failure) {
        this.succeed(job, tree, 'full');
        this.afterFullReload(previous, reloadText);
        this.counts.full++;
        this.log.info('FRR config applied', {
          generation: job.generation,
          mode: 'full',
          ...timings,
          totalMs: this.now() - t0,
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

  /** A config (or the script made from it) that FRR's parser rejects: never applied, not retried. */
  private reject(job: Job, errors: readonly string[], what: string): Outcome {
    this.counts.rejected++;
    this.rejectedGeneration = job.generation;
    this.lastError = maskPasswords(
      `generation ${job.generation} rejected by FRR's parser (not applied): ${errors.slice(0, 10).join('; ')}`,
    ).slice(0, MAX_ERROR_CHARS);
    this.log.error(`FRR config rejected by the dry-run parser (${what}); keeping the running config`, {
      generation: job.generation,
      errors: errors.slice(0, 20).map(maskPasswords),
    });
    return 'rejected';
  }

  /**
   * The check right after an incremental apply. Only prefix-list entries and `network` lines:
   * targeted entry checks, the whole config later. Anything else: `show running-config` now,
   * compared with the whole config (which also covers what earlier applies left unchecked).
   */
  private async verifyApplied(job: Job, tree: ConfigTree, diff: ConfigDiff): Promise<string[]> {
    const unchecked = this.withChanges(this.unchecked, diff);
    const cmds =
      diff.entriesOnly && diff.entryChecks.length <= this.maxEntryChecks
        ? entryCheckCommands(diff.entryChecks)
        : null;
    if (cmds) {
      const problems = cmds.length ? verifyEntryChecks(diff.entryChecks, await this.exec.show(cmds)) : [];
      if (!problems.length) {
        this.lastVerify = 'entries';
        this.frrLists = diff.prefixListsAfter;
        this.unchecked = unchecked;
      }
      return problems;
    }
    const running = parseConfig(await this.exec.runningConfig());
    const problems = verifyFull(tree, running, unchecked);
    if (!problems.length) {
      this.lastVerify = 'running-config';
      this.frrLists = prefixListEntries(running);
      this.unchecked = undefined;
      this.verifiedGeneration = job.generation;
      this.checkFailures = 0;
    }
    return problems;
  }

  /** What a lazy check must confirm once `diff` is applied too. */
  private withChanges(base: Unchecked | undefined, diff: ConfigDiff): Unchecked {
    const absent = [...(base?.absent ?? [])];
    if (absent.length < MAX_ABSENT)
      for (const p of diff.expectAbsent) if (!isPrefixListEntryPath(p)) absent.push(p);
    const goneLists = new Set(base?.goneLists ?? []);
    for (const [name, set] of diff.expectPrefixListSets) if (set.size === 0) goneLists.add(name);
    return { absent, goneLists };
  }

  /** Prefix-lists FRR may have from us: those of the last applied config and those we know of. */
  private ownedLists(): Set<string> {
    const names = this.lastGood ? prefixListNames(this.lastGood.tree) : new Set<string>();
    for (const l of this.frrLists ?? []) names.add(/^(\S+ prefix-list \S+)/.exec(l)?.[1] ?? l);
    return names;
  }

  /**
   * The text for frr-reload.py: set-shaped prefix-lists numbered the way FRR has them (read from
   * `show running-config`; see alignPrefixLists), so that frr-reload.py does not renumber FRR back
   * to the render's numbers entry by entry. Without a running config to read: the text as it is.
   */
  private async alignedForReload(text: string): Promise<string> {
    try {
      const running = parseConfig(await this.exec.runningConfig());
      return alignPrefixLists(text, prefixListEntries(running));
    } catch (e) {
      this.log.warn(
        'reading the running config before a full reload failed; reloading the rendered numbers',
        {
          error: e instanceof Error ? e.message : String(e),
        },
      );
      return text;
    }
  }

  /** frr-reload.py made FRR's lists those of `reloaded`; the lazy check confirms it (not in full mode). */
  private afterFullReload(previous: Set<string>, reloaded: string): void {
    this.resync = false;
    if (this.forceFull) {
      this.frrLists = undefined;
      this.unchecked = undefined;
      return;
    }
    this.frrLists = prefixListEntries(parseConfig(reloaded));
    const now = this.lastGood ? prefixListNames(this.lastGood.tree) : new Set<string>();
    this.unchecked = { absent: [], goneLists: new Set([...previous].filter((n) => !now.has(n))) };
  }

  /**
   * The lazy check: `show running-config`, compared with the whole last applied config. On a
   * difference the config is applied again: incrementally from FRR's real prefix-lists when they
   * are all that differs, otherwise (dirty) as a full reload.
   */
  private async fullCheck(): Promise<void> {
    const good = this.lastGood;
    const unchecked = this.unchecked;
    if (!good || !unchecked) return;
    const ac = new AbortController();
    this.checkAbort = ac;
    const t0 = this.now();
    try {
      const running = parseConfig(await this.exec.runningConfig(ac.signal));
      if (ac.signal.aborted) return;
      const problems = verifyFull(good.tree, running, unchecked);
      this.lastCheck = { at: this.now(), durationMs: this.now() - t0, ok: problems.length === 0 };
      this.frrLists = prefixListEntries(running);
      if (!problems.length) {
        this.checks.ok++;
        this.checkFailures = 0;
        this.unchecked = undefined;
        this.verifiedGeneration = good.generation;
        this.log.debug('FRR running config checked', {
          generation: good.generation,
          ms: this.lastCheck.durationMs,
        });
        return;
      }
      this.checks.failed++;
      this.checkFailures++;
      const onlyLists = problems.every((p) => PL_PROBLEM.test(p));
      if (!onlyLists) this.dirty = true;
      else this.resync = true;
      this.lastError = maskPasswords(
        `running config differs from generation ${good.generation}: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ''}`,
      ).slice(0, MAX_ERROR_CHARS);
      this.log.warn('FRR running config differs from the applied one; applying it again', {
        generation: good.generation,
        how: onlyLists ? 'incremental, from FRR prefix-lists' : 'full reload',
        problems: problems.slice(0, 20),
      });
      if (!this.pending) this.pending = { generation: good.generation, text: good.text };
    } catch (e) {
      if (ac.signal.aborted || isAbort(e)) return;
      this.checkFailures++;
      this.lastCheck = { at: this.now(), durationMs: this.now() - t0, ok: false };
      this.log.warn('FRR running config check could not run', {
        error: e instanceof Error ? e.message : String(e),
      });
    } finally {
      this.checkAbort = undefined;
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
    if (this.lastGood && this.lastGood.tree !== tree) this.queueSweep(this.lastGood.tree, tree);
    this.lastGood = { generation: job.generation, text: job.text, tree };
    this.dirty = false;
    this.resync = false;
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
        const previous = this.ownedLists();
        const text = this.forceFull ? this.lastGood.text : await this.alignedForReload(this.lastGood.text);
        const r = await this.exec.reload(text);
        if (r.ok) {
          this.dirty = false;
          this.afterFullReload(previous, text);
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
