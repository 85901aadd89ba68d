/**
 * Talking to a running FRR: `vtysh -f` for incremental changes, targeted `show` commands and
 * `show running-config` for the checks afterwards, `frr-reload.py --test` / `--reload` for full
 * reloads, and the daemon-less syntax check `vtysh --config_dir TMP -C -f FILE` (production copy of
 * the lab's frrDryRun; it also takes an incremental script, which is a config snippet).
 *
 * Every config text goes through a file in a private temporary directory (mode 0700, file 0600)
 * that is removed right after use; nothing is passed on a command line, where `ps` would show a
 * BGP password. frr-reload.py gets `--rundir` pointing to that directory too, so its own temporary
 * file (written with the default umask) does not land in the shared /var/run/frr, and `--stdout`,
 * so it does not log the config (passwords included) to /var/log/frr/frr-reload.log.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { CheckResult, ExecOutcome, FrrExecutor } from './apply.js';

export interface RunResult {
  readonly argv: readonly string[];
  readonly stdout: string;
  readonly stderr: string;
  /** Exit code; null when killed by a signal. */
  readonly code: number | null;
  readonly timedOut: boolean;
  readonly durationMs: number;
}

/**
 * Runs argv without a shell; never rejects for a non-zero exit (only when it cannot start, or
 * when `signal` aborts it: the child is killed and the promise rejects with an AbortError).
 */
export function runCommand(
  argv: readonly string[],
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (!cmd) return Promise.reject(new Error('runCommand: empty argv'));
  if (signal?.aborted) return Promise.reject(abortError(cmd));
  const start = Date.now();
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let settled = false;
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const onAbort = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(abortError(cmd));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e) => {
      signal?.removeEventListener('abort', onAbort);
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    });
    child.on('close', (code) => {
      signal?.removeEventListener('abort', onAbort);
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({
        argv,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        code,
        timedOut,
        durationMs: Date.now() - start,
      });
    });
  });
}

function abortError(cmd: string): Error {
  const e = new Error(`${cmd} aborted`);
  e.name = 'AbortError';
  return e;
}

/**
 * FRR's error lines in vtysh output. vtysh -f / -C / -b report each rejected line as
 * `line N: % <reason>[code]: <line text>` (or `line N: Failure to communicate[13] to bgpd, …`).
 * The warning about a missing vtysh.conf is not an error.
 */
export function parseVtyshErrors(output: string): string[] {
  const errors: string[] = [];
  for (const raw of output.split('\n')) {
    const l = raw.trimEnd();
    if (!l.trim()) continue;
    if (/Can't open configuration file .*vtysh\.conf/.test(l)) continue;
    errors.push(l);
  }
  return errors;
}

/** A private directory (0700) for config files; removed by the returned cleanup. */
async function privateDir(base: string | undefined): Promise<{ dir: string; done: () => Promise<void> }> {
  const dir = await mkdtemp(join(base ?? tmpdir(), 'ironlb-frr-'));
  return { dir, done: () => rm(dir, { recursive: true, force: true }) };
}

async function writePrivate(dir: string, name: string, text: string): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, text.endsWith('\n') || text === '' ? text : `${text}\n`, { mode: 0o600 });
  return p;
}

function describe(r: RunResult): string {
  if (r.timedOut) return `timed out after ${r.durationMs} ms`;
  return r.code === null ? 'was killed by a signal' : `exited with code ${r.code}`;
}

/**
 * Checks a whole frr.conf with FRR's own parser and no running daemon:
 * `vtysh --config_dir <tmp> -C -f <tmp>/frr.conf` (exit 2 and one `line N: % Unknown command…`
 * per rejected line). A syntax check only: `neighbor X timers 3 9` without `remote-as` passes.
 */
export async function frrDryRun(
  config: string,
  opts: { vtysh?: string; tmpDir?: string; timeoutMs?: number } = {},
): Promise<CheckResult> {
  const { dir, done } = await privateDir(opts.tmpDir);
  try {
    // Its own config dir, so the check neither reads nor depends on /etc/frr.
    await writePrivate(dir, 'vtysh.conf', 'service integrated-vtysh-config\n');
    const file = await writePrivate(dir, 'frr.conf', config);
    const r = await runCommand(
      [opts.vtysh ?? 'vtysh', '--config_dir', dir, '-C', '-f', file],
      opts.timeoutMs ?? 120_000,
    );
    const errors = parseVtyshErrors(r.stderr);
    if (r.code !== 0 && errors.length === 0) errors.push(`vtysh -C ${describe(r)}: ${r.stdout.trim()}`);
    return { ok: r.code === 0 && errors.length === 0, errors };
  } finally {
    await done();
  }
}

export interface VtyshExecutorOptions {
  /** FRR pathspace (`-N NAME`): one FRR instance per name, as in the lab. */
  readonly pathspace?: string;
  /** vtysh binary (default `vtysh` from PATH). */
  readonly vtysh?: string;
  /** frr-reload.py (default /usr/lib/frr/frr-reload.py). */
  readonly frrReload?: string;
  /** Where the private temporary directories go (default: the OS temp dir). */
  readonly tmpDir?: string;
  /** Upper bounds per step. FRR 8.4 needs minutes for configs with 10 000s of prefix-list lines. */
  readonly timeouts?: { dryRunMs?: number; applyMs?: number; showMs?: number; reloadMs?: number };
}

/** The real FrrExecutor: processes against a running FRR. */
export class VtyshExecutor implements FrrExecutor {
  private readonly vtysh: string;
  private readonly frrReload: string;
  private readonly ns: string[];

  constructor(private readonly opts: VtyshExecutorOptions = {}) {
    this.vtysh = opts.vtysh ?? 'vtysh';
    this.frrReload = opts.frrReload ?? '/usr/lib/frr/frr-reload.py';
    if (opts.pathspace !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(opts.pathspace)) {
      throw new Error(`invalid FRR pathspace name ${JSON.stringify(opts.pathspace)}`);
    }
    this.ns = opts.pathspace ? ['-N', opts.pathspace] : [];
  }

  dryRun(config: string): Promise<CheckResult> {
    return frrDryRun(config, {
      vtysh: this.vtysh,
      ...(this.opts.tmpDir ? { tmpDir: this.opts.tmpDir } : {}),
      timeoutMs: this.opts.timeouts?.dryRunMs ?? 120_000,
    });
  }

  async applyScript(script: string, opts: { daemon?: 'bgpd' } = {}): Promise<ExecOutcome> {
    const { dir, done } = await privateDir(this.opts.tmpDir);
    try {
      const file = await writePrivate(dir, 'changes.conf', script);
      const r = await runCommand(
        [this.vtysh, ...this.ns, ...(opts.daemon ? ['-d', opts.daemon] : []), '-f', file],
        this.opts.timeouts?.applyMs ?? 600_000,
      );
      return outcome(r, r.code === 0);
    } finally {
      await done();
    }
  }

  async runningConfig(signal?: AbortSignal): Promise<string> {
    const r = await runCommand(
      [this.vtysh, ...this.ns, '-c', 'show running-config'],
      this.opts.timeouts?.showMs ?? 120_000,
      signal,
    );
    if (r.code !== 0) {
      throw new Error(
        `vtysh show running-config ${describe(r)}: ${(r.stderr || r.stdout).trim().slice(0, 500)}`,
      );
    }
    return r.stdout;
  }

  /** `vtysh -c C1 -c C2 …` (show commands: no secrets on the command line). */
  async show(commands: readonly string[]): Promise<string> {
    if (commands.some((c) => !/^show /.test(c) || /[\r\n]/.test(c))) {
      throw new Error('VtyshExecutor.show: show commands only');
    }
    const r = await runCommand(
      [this.vtysh, ...this.ns, ...commands.flatMap((c) => ['-c', c])],
      this.opts.timeouts?.showMs ?? 120_000,
    );
    if (r.code !== 0) {
      throw new Error(
        `vtysh ${commands[0]} … ${describe(r)}: ${(r.stderr || r.stdout).trim().slice(0, 500)}`,
      );
    }
    return r.stdout;
  }

  reloadTest(config: string): Promise<ExecOutcome> {
    return this.frrReloadRun('--test', config);
  }

  reload(config: string): Promise<ExecOutcome> {
    return this.frrReloadRun('--reload', config);
  }

  private async frrReloadRun(mode: '--test' | '--reload', config: string): Promise<ExecOutcome> {
    const { dir, done } = await privateDir(this.opts.tmpDir);
    try {
      const file = await writePrivate(dir, 'frr.conf', config);
      const argv = [this.frrReload, mode, '--stdout', ...this.ns, '--rundir', dir];
      if (this.opts.vtysh && this.opts.vtysh.includes('/')) argv.push('--bindir', dirname(this.opts.vtysh));
      argv.push(file);
      const r = await runCommand(argv, this.opts.timeouts?.reloadMs ?? 900_000);
      return outcome(r, r.code === 0);
    } finally {
      await done();
    }
  }
}

function outcome(r: RunResult, ok: boolean): ExecOutcome {
  const output = [r.stdout.trim(), r.stderr.trim()].filter(Boolean).join('\n');
  return {
    ok,
    output: ok ? output : `${describe(r)}${output ? `\n${output}` : ''}`,
    durationMs: r.durationMs,
  };
}
