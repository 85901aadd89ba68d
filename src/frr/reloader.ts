/**
 * The FRR reloader of the sidecar layout (MetalLB FRR mode): the speaker writes `frr.conf`
 * (mode 0600, atomically via rename) into a directory shared with the FRR container; this
 * process, running in the FRR container, watches that directory (chokidar) and hands every new
 * version to an FrrApplier. After every change of the applier's state it writes a JSON status file
 * next to the config (atomically, mode 0644; it holds no secrets: errors are masked), so the
 * speaker can see which config FRR runs and why the last one failed. See frr/README.md.
 *
 * For upstream compatibility it also writes its PID to `reloader.pid` in the same directory (the
 * upstream speaker sends SIGHUP to that PID after writing); `rescan()` is what SIGHUP triggers.
 * A periodic re-read (default every 30 s) covers a missed file-system event.
 *
 * Environment (read when the matching option is not given):
 * - IRONLB_FRR_APPLY_MODE=full: every apply through frr-reload.py (upstream's way, for
 *   comparisons); `auto` (default) applies diffs incrementally.
 * - IRONLB_FRR_RELOAD_TIMEOUT_MS: bound of one frr-reload.py run (default 900 000; FRR 8.4 needs
 *   much longer to load prefix-lists of many thousand entries). A `vtysh -f` run gets at least as
 *   long: when it times out the applier falls back to frr-reload.py, which is slower still.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { FrrApplier, type FrrApplyStatus, type FrrExecutor } from './apply.js';
import { VtyshExecutor, type VtyshExecutorOptions } from './vtysh.js';
import type { Logger } from '../util/log.js';

export const DEFAULT_CONFIG_FILE = 'frr.conf';
export const DEFAULT_STATUS_FILE = 'frr-status.json';
export const DEFAULT_PID_FILE = 'reloader.pid';

export interface ReloaderOptions {
  /** The shared directory the speaker writes frr.conf into. */
  readonly dir: string;
  /** FRR pathspace (`-N`), when FRR runs as a named instance (lab); none in the sidecar. */
  readonly pathspace?: string;
  /** vtysh binary (default `vtysh` from PATH). */
  readonly vtysh?: string;
  /** frr-reload.py (default /usr/lib/frr/frr-reload.py). */
  readonly frrReload?: string;
  readonly log: Logger;
  /** Name of the config file in `dir` (default frr.conf). */
  readonly configFile?: string;
  /** Name of the status file in `dir` (default frr-status.json). */
  readonly statusFile?: string;
  /** PID file path (default `<dir>/reloader.pid`); null: none. */
  readonly pidFile?: string | null;
  /** Talks to FRR (default: VtyshExecutor with the options above). For tests. */
  readonly executor?: FrrExecutor;
  /** Poll instead of inotify (for file systems without events). */
  readonly usePolling?: boolean;
  /** Re-read the config this often even without an event (default 30 000 ms; 0: never). */
  readonly resyncMs?: number;
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** `full`: every apply through frr-reload.py (default: env IRONLB_FRR_APPLY_MODE, else `auto`). */
  readonly mode?: 'auto' | 'full';
  /**
   * Bounds of the vtysh / frr-reload.py runs (reloadMs default: env IRONLB_FRR_RELOAD_TIMEOUT_MS;
   * applyMs default: at least reloadMs).
   */
  readonly timeouts?: VtyshExecutorOptions['timeouts'];
  /** Quiet time before the lazy `show running-config` check (see FrrApplierOptions). */
  readonly checkDelayMs?: number;
  /** Delay of the withdrawal sweep (see FrrApplierOptions; negative: none). */
  readonly withdrawSweepMs?: number;
}

/** The apply mode from IRONLB_FRR_APPLY_MODE (`full`, or `auto` / `incremental` / unset). */
export function applyModeFromEnv(env: NodeJS.ProcessEnv = process.env): 'auto' | 'full' {
  const v = (env.IRONLB_FRR_APPLY_MODE ?? '').trim().toLowerCase();
  if (v === 'full') return 'full';
  if (v === '' || v === 'auto' || v === 'incremental') return 'auto';
  throw new Error(`IRONLB_FRR_APPLY_MODE must be auto or full, not ${JSON.stringify(v)}`);
}

function reloadTimeoutFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env.IRONLB_FRR_RELOAD_TIMEOUT_MS;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0)
    throw new Error('IRONLB_FRR_RELOAD_TIMEOUT_MS must be a positive integer');
  return n;
}

/** What the status file holds (JSON). Times are Unix milliseconds. */
export interface ReloaderStatusFile extends FrrApplyStatus {
  /** The config file this status is about. */
  readonly configFile: string;
  /** SHA-256 (hex) of the latest config read from the file, if any. */
  readonly desiredSha256?: string;
  /** SHA-256 (hex) of the config FRR runs now (the speaker compares it with what it wrote). */
  readonly appliedSha256?: string;
  readonly updatedAt: number;
  readonly pid: number;
}

/** Delay of the trailing re-read after the last file-system event. */
const SETTLE_MS = 250;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export class FrrReloader {
  readonly applier: FrrApplier;
  private readonly dir: string;
  private readonly configPath: string;
  private readonly statusPath: string;
  private readonly pidPath: string | null;
  private readonly log: Logger;
  private watcher: FSWatcher | undefined;
  private resync: NodeJS.Timeout | undefined;
  private settle: NodeJS.Timeout | undefined;
  private rescanQueued = false;
  private lastText: string | undefined;
  /** generation -> sha256 of the config submitted under it (pruned as generations are applied). */
  private readonly shaByGeneration = new Map<number, string>();
  private reading: Promise<void> = Promise.resolve();
  private writing: Promise<void> = Promise.resolve();
  private statusDirty = false;
  private stopped = false;

  constructor(private readonly opts: ReloaderOptions) {
    this.dir = opts.dir;
    const file = opts.configFile ?? DEFAULT_CONFIG_FILE;
    if (basename(file) !== file) throw new Error(`configFile must be a plain file name, not ${file}`);
    this.configPath = join(this.dir, file);
    this.statusPath = join(this.dir, opts.statusFile ?? DEFAULT_STATUS_FILE);
    this.pidPath = opts.pidFile === null ? null : (opts.pidFile ?? join(this.dir, DEFAULT_PID_FILE));
    this.log = opts.log;
    const reloadMs = opts.timeouts?.reloadMs ?? reloadTimeoutFromEnv();
    const applyMs =
      opts.timeouts?.applyMs ?? (reloadMs !== undefined ? Math.max(600_000, reloadMs) : undefined);
    const timeouts = {
      ...(opts.timeouts ?? {}),
      ...(reloadMs !== undefined ? { reloadMs } : {}),
      ...(applyMs !== undefined ? { applyMs } : {}),
    };
    const executor =
      opts.executor ??
      new VtyshExecutor({
        ...(opts.pathspace !== undefined ? { pathspace: opts.pathspace } : {}),
        ...(opts.vtysh !== undefined ? { vtysh: opts.vtysh } : {}),
        ...(opts.frrReload !== undefined ? { frrReload: opts.frrReload } : {}),
        timeouts,
      });
    const mode = opts.mode ?? applyModeFromEnv();
    this.applier = new FrrApplier({
      executor,
      log: opts.log,
      mode,
      ...(opts.checkDelayMs !== undefined ? { checkDelayMs: opts.checkDelayMs } : {}),
      ...(opts.withdrawSweepMs !== undefined ? { withdrawSweepMs: opts.withdrawSweepMs } : {}),
      ...(opts.initialBackoffMs !== undefined ? { initialBackoffMs: opts.initialBackoffMs } : {}),
      ...(opts.maxBackoffMs !== undefined ? { maxBackoffMs: opts.maxBackoffMs } : {}),
      onStatus: () => this.scheduleStatusWrite(),
    });
  }

  /** Starts watching; resolves once the watcher is ready and an existing config was submitted. */
  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    if (this.pidPath) await writeFile(this.pidPath, `${process.pid}\n`, { mode: 0o644 });
    this.applier.start();
    const own = basename(this.statusPath);
    const watcher = watch(this.dir, {
      depth: 0,
      // Our own status writes need no re-read.
      ignored: (p: string) => basename(p).startsWith(own),
      ignoreInitial: true,
      usePolling: this.opts.usePolling ?? false,
      interval: 500,
    });
    this.watcher = watcher;
    // Any event in the directory triggers a re-read (the read compares contents): chokidar
    // throttles and merges events around a rename-over (the speaker's temp file appears and
    // vanishes), so a `change` of frr.conf alone can be missed when two writes come close
    // together. A second re-read shortly after the last event catches the tail of a burst.
    watcher.on('all', () => {
      this.rescan();
      if (this.settle) clearTimeout(this.settle);
      this.settle = setTimeout(() => this.rescan(), SETTLE_MS);
      this.settle.unref();
    });
    watcher.on('error', (e) =>
      this.log.warn('watching the FRR config directory failed', { error: String(e) }),
    );
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    this.rescan();
    await this.reading;
    const every = this.opts.resyncMs ?? 30_000;
    if (every > 0) {
      this.resync = setInterval(() => this.rescan(), every);
      this.resync.unref();
    }
    this.scheduleStatusWrite();
    this.log.info('FRR reloader started', {
      config: this.configPath,
      status: this.statusPath,
      mode: this.opts.mode ?? applyModeFromEnv(),
    });
  }

  /** Re-reads the config file and submits it when it changed (SIGHUP, events, periodic). */
  rescan(): void {
    if (this.stopped || this.rescanQueued) return;
    this.rescanQueued = true;
    this.reading = this.reading.then(() => {
      this.rescanQueued = false;
      return this.readOnce();
    });
  }

  /** Resolves when the latest read was submitted and applied (or failed) and the status written. */
  async whenIdle(): Promise<void> {
    await this.reading;
    await this.applier.whenIdle();
    await this.flushStatus();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.resync) clearInterval(this.resync);
    if (this.settle) clearTimeout(this.settle);
    await this.watcher?.close();
    await this.reading;
    await this.applier.stop();
    await this.flushStatus();
    if (this.pidPath) await rm(this.pidPath, { force: true });
    this.log.info('FRR reloader stopped');
  }

  status(): ReloaderStatusFile {
    const s = this.applier.status();
    const desiredSha256 = this.shaByGeneration.get(s.desiredGeneration);
    const appliedSha256 = this.shaByGeneration.get(s.appliedGeneration);
    return {
      ...s,
      configFile: this.configPath,
      ...(desiredSha256 ? { desiredSha256 } : {}),
      ...(appliedSha256 ? { appliedSha256 } : {}),
      updatedAt: Date.now(),
      pid: process.pid,
    };
  }

  private async readOnce(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.configPath, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.log.warn('reading the FRR config failed', { file: this.configPath, error: String(e) });
      }
      return;
    }
    if (text === this.lastText || this.stopped) return;
    this.lastText = text;
    const generation = this.applier.submit(text);
    this.shaByGeneration.set(generation, sha256(text));
    // Keep only what status() can still refer to.
    const applied = this.applier.status().appliedGeneration;
    for (const g of this.shaByGeneration.keys()) if (g < applied) this.shaByGeneration.delete(g);
    this.log.info('FRR config file changed', { generation, bytes: text.length });
  }

  private scheduleStatusWrite(): void {
    if (this.statusDirty) return;
    this.statusDirty = true;
    this.writing = this.writing.then(async () => {
      this.statusDirty = false;
      const tmp = `${this.statusPath}.tmp-${process.pid}`;
      try {
        await writeFile(tmp, `${JSON.stringify(this.status(), null, 2)}\n`, { mode: 0o644 });
        await rename(tmp, this.statusPath);
      } catch (e) {
        this.log.warn('writing the FRR reloader status failed', { file: this.statusPath, error: String(e) });
      }
    });
  }

  private async flushStatus(): Promise<void> {
    this.scheduleStatusWrite();
    await this.writing;
  }
}

/** Creates and starts a reloader (see FrrReloader); stop it with `stop()`. */
export async function runReloader(opts: ReloaderOptions): Promise<FrrReloader> {
  const r = new FrrReloader(opts);
  await r.start();
  return r;
}
