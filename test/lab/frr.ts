/**
 * FRR instances for the lab: one instance = one network namespace + one FRR pathspace (`-N name`),
 * daemons started directly (no watchfrr, so a test may kill a daemon without it being restarted),
 * as in section 2a of shared/lab/frr-lab.md. Configs live in /etc/frr/<name>/, sockets and pid
 * files in /var/run/frr/<name>/.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registerExitCleanup } from './cleanup.js';
import { exec, ExecError, run, type ExecResult } from './netns.js';
import { isAlive, procArgv, signal } from './proc.js';
import { waitFor } from './wait.js';

export const FRR_SBIN = '/usr/lib/frr';
export const FRR_ETC = '/etc/frr';
export const FRR_RUN = '/var/run/frr';

export type FrrDaemon = 'zebra' | 'mgmtd' | 'bgpd' | 'staticd' | 'bfdd';

/** zebra, mgmtd (only where this FRR has it: 9.0 and later; 8.4 has none), bgpd, staticd, bfdd. */
export function defaultFrrDaemons(): FrrDaemon[] {
  const d: FrrDaemon[] = ['zebra'];
  if (existsSync(join(FRR_SBIN, 'mgmtd'))) d.push('mgmtd');
  d.push('bgpd', 'staticd', 'bfdd');
  return d;
}

export interface FrrOptions {
  /** Network namespace the daemons run in. */
  ns: string;
  /** Pathspace name (`-N`); defaults to the namespace name. */
  name?: string;
  /** Initial integrated frr.conf (pushed with `vtysh -b` after the daemons are up). */
  config: string;
  /** Daemons to start, in this order (default: defaultFrrDaemons()). zebra is always started first. */
  daemons?: FrrDaemon[];
  /**
   * Run every daemon in its own UTS namespace with this hostname, so that `show running-config`
   * shows it instead of the machine's (lab notes, gotcha G1).
   */
  hostname?: string;
  /** Accept an initial config that vtysh -b reports errors for (default: throw). */
  allowConfigErrors?: boolean;
  /** Upper bound for starting everything (default 20 000 ms). */
  timeoutMs?: number;
}

export interface ConfigCheckResult {
  ok: boolean;
  /** Rejected lines as FRR reports them, e.g. "line 10: % Unknown command[28]:   bogus foo". */
  errors: string[];
}

export interface ApplyResult extends ConfigCheckResult {
  result: ExecResult;
}

export class FrrConfigError extends Error {
  constructor(
    message: string,
    readonly errors: string[],
  ) {
    super(`${message}:\n${errors.join('\n')}`);
    this.name = 'FrrConfigError';
  }
}

let frrIds: { uid: number; gid: number } | null = null;

async function frrUser(): Promise<{ uid: number; gid: number }> {
  if (frrIds) return frrIds;
  const passwd = await readFile('/etc/passwd', 'utf8');
  const line = passwd.split('\n').find((l) => l.startsWith('frr:'));
  const f = line?.split(':');
  if (!f || f.length < 4)
    throw new Error('user frr does not exist: install FRR (scripts/install-lab-deps.sh)');
  frrIds = { uid: Number(f[2]), gid: Number(f[3]) };
  return frrIds;
}

/** The production parser of vtysh error lines (one source for the product and the lab). */
export { parseVtyshErrors } from '../../src/frr/vtysh.js';
import { frrDryRun as productDryRun, parseVtyshErrors } from '../../src/frr/vtysh.js';

/** True when /proc/<pid>/cmdline is that of `daemon` of pathspace `name` (guards against PID reuse). */
function isOurDaemon(pid: number, daemon: string, name: string): boolean {
  const argv = procArgv(pid);
  if (!argv) return false;
  const i = argv.indexOf('-N');
  return (argv[0] ?? '').endsWith(`/${daemon}`) && i >= 0 && argv[i + 1] === name;
}

export class FrrInstance {
  readonly ns: string;
  readonly name: string;
  readonly confDir: string;
  readonly runDir: string;
  readonly daemons: FrrDaemon[];
  /** PID of each daemon started by this instance. */
  readonly pids = new Map<FrrDaemon, number>();
  /** stderr of the daemon starts (zebra prints "Disabling MPLS support" here). */
  startOutput = '';
  /** UTS hostname of the daemons (and of vtysh, which adds its own `hostname` line), if set. */
  readonly hostname: string | undefined;
  private unregisterExit: (() => void) | null = null;
  private stopped = false;

  private constructor(opts: FrrOptions) {
    this.ns = opts.ns;
    this.hostname = opts.hostname;
    this.name = opts.name ?? opts.ns;
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(this.name)) throw new Error(`bad FRR pathspace name ${this.name}`);
    this.confDir = join(FRR_ETC, this.name);
    this.runDir = join(FRR_RUN, this.name);
    const d = opts.daemons ?? defaultFrrDaemons();
    this.daemons = ['zebra', ...d.filter((x) => x !== 'zebra')];
  }

  /** Starts the daemons in `ns` and loads `config`. On failure everything started is stopped again. */
  static async start(opts: FrrOptions): Promise<FrrInstance> {
    if (!existsSync(join(FRR_SBIN, 'zebra'))) {
      throw new Error(
        `FRR is not installed (${FRR_SBIN}/zebra missing): run scripts/install-lab-deps.sh as root`,
      );
    }
    const inst = new FrrInstance(opts);
    if (existsSync(inst.confDir) || existsSync(inst.runDir)) {
      throw new Error(`FRR pathspace ${inst.name} already exists (${inst.confDir} / ${inst.runDir})`);
    }
    inst.unregisterExit = registerExitCleanup(`FRR ${inst.name}`, () => inst.stopSync());
    try {
      await inst.launch(opts);
    } catch (e) {
      await inst.stop();
      throw e;
    }
    return inst;
  }

  private async launch(opts: FrrOptions): Promise<void> {
    const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
    const { uid, gid } = await frrUser();
    // The daemons drop to user frr right after start: the directories must belong to it.
    await mkdir(this.confDir, { recursive: true, mode: 0o750 });
    await chown(this.confDir, uid, gid);
    await chmod(this.confDir, 0o750);
    await mkdir(this.runDir, { recursive: true, mode: 0o755 });
    await chown(this.runDir, uid, gid);
    await chmod(this.runDir, 0o755);
    for (const [file, text] of [
      ['vtysh.conf', 'service integrated-vtysh-config\n'],
      ['frr.conf', opts.config],
    ] as const) {
      const p = join(this.confDir, file);
      await writeFile(p, text.endsWith('\n') ? text : `${text}\n`, { mode: 0o640 });
      await chown(p, uid, gid);
      await chmod(p, 0o640);
    }
    for (const d of this.daemons) {
      const args = [join(FRR_SBIN, d), '-N', this.name, '-d', '-F', 'traditional', '-P', '0'];
      if (d === 'zebra') args.push('-s', '90000000');
      const r = await exec(this.ns, this.withHostname(args), {
        timeoutMs: Math.max(1000, deadline - Date.now()),
      });
      this.startOutput += r.stderr;
      if (r.code !== 0) throw new ExecError(r);
      const pidFile = join(this.runDir, `${d}.pid`);
      const pid = await waitFor(
        async () => {
          const t = await readFile(pidFile, 'utf8').catch(() => '');
          const n = Number(t.trim());
          return n > 0 && isAlive(n) ? n : 0;
        },
        { timeoutMs: Math.max(0, deadline - Date.now()), intervalMs: 20, what: `${d} pid file ${pidFile}` },
      );
      this.pids.set(d, pid);
    }
    const boot = await run(this.vtyshArgv(['-b']), {
      timeoutMs: Math.max(1000, deadline - Date.now()),
    });
    const errors = parseVtyshErrors(boot.stderr);
    if ((boot.code !== 0 || errors.length > 0) && !opts.allowConfigErrors) {
      throw new FrrConfigError(`FRR ${this.name}: initial config rejected (vtysh -b rc ${boot.code})`, [
        ...errors,
        ...(errors.length === 0 ? [boot.stdout.trim()] : []),
      ]);
    }
  }

  /** argv run in a private UTS namespace with `hostname` when the instance has one. */
  private withHostname(argv: string[]): string[] {
    if (!this.hostname) return argv;
    return ['unshare', '--uts', 'sh', '-c', 'hostname "$0" && exec "$@"', this.hostname, ...argv];
  }

  /** `vtysh -N name ...args` (vtysh talks to the daemons over unix sockets: no netns needed). */
  private vtyshArgv(args: string[]): string[] {
    return this.withHostname(['vtysh', '-N', this.name, ...args]);
  }

  /**
   * Runs vtysh commands against this instance (`vtysh -N name -c c1 -c c2 ...`); resolves with
   * stdout, throws when vtysh exits non-zero. For config: `vtysh(['conf t', 'router bgp 1', ...])`.
   */
  async vtysh(cmds: string | string[], opts: { daemon?: string; timeoutMs?: number } = {}): Promise<string> {
    const list = typeof cmds === 'string' ? [cmds] : cmds;
    const argv = this.vtyshArgv([]);
    if (opts.daemon) argv.push('-d', opts.daemon);
    for (const c of list) argv.push('-c', c);
    const r = await run(argv, { timeoutMs: opts.timeoutMs ?? 30_000 });
    if (r.code !== 0) throw new ExecError(r);
    return r.stdout;
  }

  /** Runs a show command with ` json` appended (unless already there) and parses the result. */
  async vtyshJson<T = unknown>(showCmd: string, opts: { daemon?: string } = {}): Promise<T> {
    const cmd = /\bjson\s*$/.test(showCmd) ? showCmd : `${showCmd} json`;
    const out = await this.vtysh(cmd, opts);
    try {
      return JSON.parse(out) as T;
    } catch {
      throw new Error(`FRR ${this.name}: '${cmd}' did not return JSON: ${out.slice(0, 500)}`);
    }
  }

  /**
   * Applies a config file with `vtysh -N name -f path` (the file must not start with `conf t`).
   * vtysh applies every line it can, so a failure may leave the config partly applied.
   * Throws FrrConfigError on failure unless `check` is false.
   */
  async applyConfigFile(
    path: string,
    opts: { check?: boolean; timeoutMs?: number } = {},
  ): Promise<ApplyResult> {
    const result = await run(this.vtyshArgv(['-f', path]), { timeoutMs: opts.timeoutMs ?? 60_000 });
    const errors = parseVtyshErrors(result.stderr);
    if (result.code !== 0 && errors.length === 0) errors.push(`vtysh exited with code ${result.code}`);
    const ok = result.code === 0 && errors.length === 0;
    if (!ok && opts.check !== false)
      throw new FrrConfigError(`FRR ${this.name}: vtysh -f ${path} failed`, errors);
    return { ok, errors, result };
  }

  /** applyConfigFile for config text (written to a temp file first). */
  async applyConfig(text: string, opts: { check?: boolean; timeoutMs?: number } = {}): Promise<ApplyResult> {
    const dir = mkdtempSync(join(tmpdir(), 'ilfrr-'));
    try {
      const p = join(dir, 'apply.conf');
      await writeFile(p, text);
      return await this.applyConfigFile(p, opts);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Stops the daemons it started (SIGINT, zebra last, SIGKILL after 5 s) and removes the
   * pathspace directories. Idempotent.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    const order = [...this.pids.keys()].reverse();
    const others = order.filter((d) => d !== 'zebra');
    await this.killAndWait(others);
    if (this.pids.has('zebra')) await this.killAndWait(['zebra']);
    await rm(this.confDir, { recursive: true, force: true });
    await rm(this.runDir, { recursive: true, force: true });
    this.stopped = true;
    this.unregisterExit?.();
    this.unregisterExit = null;
  }

  private async killAndWait(daemons: FrrDaemon[]): Promise<void> {
    const live: number[] = [];
    for (const d of daemons) {
      const pid = this.pids.get(d);
      if (pid === undefined) continue;
      this.pids.delete(d);
      if (!isAlive(pid) || !isOurDaemon(pid, d, this.name)) continue;
      if (signal(pid, 'SIGINT')) live.push(pid);
    }
    if (live.length === 0) return;
    try {
      await waitFor(() => live.every((p) => !isAlive(p)), {
        timeoutMs: 5000,
        intervalMs: 25,
        what: `FRR ${this.name} daemons to exit`,
      });
    } catch {
      for (const p of live) signal(p, 'SIGKILL');
    }
  }

  /** Synchronous, for process-exit handlers: SIGKILL and remove the directories. */
  stopSync(): void {
    for (const [d, pid] of this.pids) {
      if (isAlive(pid) && isOurDaemon(pid, d, this.name)) signal(pid, 'SIGKILL');
    }
    this.pids.clear();
    rmSync(this.confDir, { recursive: true, force: true });
    rmSync(this.runDir, { recursive: true, force: true });
    this.stopped = true;
  }
}

/** Starts an FRR instance (see FrrInstance.start). */
export function startFrr(opts: FrrOptions): Promise<FrrInstance> {
  return FrrInstance.start(opts);
}

/**
 * Checks a whole frr.conf with real FRR's parser, without any running daemon:
 * `vtysh --config_dir <tmp> -C -f <tmp>/frr.conf`. vtysh exits 2 and prints one line per
 * rejected line on stderr: `line N: % Unknown command[..]: <line text>` (or `% Command incomplete`,
 * `% Ambiguous command`). This is a syntax check only: semantic errors (e.g. `neighbor X timers`
 * without `remote-as`) pass.
 */
export async function frrDryRun(confText: string): Promise<ConfigCheckResult> {
  const r = await productDryRun(confText, { timeoutMs: 60_000 });
  return { ok: r.ok, errors: [...r.errors] };
}
