/**
 * One ironlb BGP node in a lab namespace, the way the product runs it: FRR (started with
 * test/lab/frr.ts, or with FRR's netns VRF backend, see startNetnsVrfFrr), `ironlb frr-reloader
 * --dir DIR --pathspace NS` and `ironlb speaker --node NODE --source dir:SRC --frr-dir DIR`,
 * both inside the node's namespace via `ip netns exec`. Objects are YAML files written into SRC
 * (atomically); the speaker renders DIR/frr.conf, the reloader applies it and keeps
 * DIR/frr-status.json. stdout/stderr of both processes are captured. Everything is stopped by the
 * PID this harness started, and registered for the synchronous exit cleanup as well.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerExitCleanup } from './cleanup.js';
import {
  FRR_ETC,
  FRR_RUN,
  FRR_SBIN,
  FrrConfigError,
  parseVtyshErrors,
  startFrr,
  type FrrDaemon,
} from './frr.js';
import { exec, ExecError, run } from './netns.js';
import { isAlive, procArgv, signal } from './proc.js';
import { waitFor } from './wait.js';

/** The repository root (two levels above this file). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The launcher the product ships (`./bin/ironlb`). */
export const IRONLB_BIN = join(REPO_ROOT, 'bin', 'ironlb');

/** `npm run build` in the repository root; throws with the tail of its output on failure. */
export async function buildIronlb(timeoutMs = 240_000): Promise<void> {
  const r = await run(['npm', '--prefix', REPO_ROOT, 'run', 'build'], { timeoutMs });
  if (r.code !== 0) {
    const tail = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-40).join('\n');
    throw new Error(`npm run build failed (code ${r.code}${r.timedOut ? ', timed out' : ''}):\n${tail}`);
  }
}

/** `./bin/ironlb --help` (stdout). */
export async function ironlbHelp(): Promise<string> {
  const r = await run([process.execPath, IRONLB_BIN, '--help'], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new ExecError(r);
  return r.stdout;
}

export const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

// ---------------------------------------------------------------------------------------------
// A long-running process started by the lab (speaker, reloader)
// ---------------------------------------------------------------------------------------------

export class LabProcess {
  readonly pid: number;
  private readonly chunks: string[] = [];
  private readonly errChunks: string[] = [];
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly exited: Promise<void>;
  private readonly unregisterExit: () => void;

  private constructor(
    readonly what: string,
    private readonly child: ChildProcess,
  ) {
    if (child.pid === undefined) throw new Error(`${what}: spawn failed`);
    this.pid = child.pid;
    child.stdout?.on('data', (b: Buffer) => this.chunks.push(b.toString('utf8')));
    child.stderr?.on('data', (b: Buffer) => {
      const s = b.toString('utf8');
      this.chunks.push(s);
      this.errChunks.push(s);
    });
    this.exited = new Promise<void>((res) => {
      child.once('exit', (code, sig) => {
        this.exitInfo = { code, signal: sig };
        res();
      });
    });
    this.unregisterExit = registerExitCleanup(what, () => this.stopSync());
  }

  /** Runs argv inside network namespace `ns` (`ip netns exec`, which execs: the PID stays ours). */
  static start(what: string, ns: string, argv: string[]): Promise<LabProcess> {
    return new Promise((res, rej) => {
      const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.once('error', (e) => rej(new Error(`${what}: cannot start: ${e.message}`)));
      child.once('spawn', () => {
        try {
          res(new LabProcess(what, child));
        } catch (e) {
          rej(e instanceof Error ? e : new Error(String(e)));
        }
      });
    });
  }

  /** stdout and stderr, interleaved as received. */
  get output(): string {
    return this.chunks.join('');
  }

  get stderr(): string {
    return this.errChunks.join('');
  }

  /** Exit code / signal once it has exited, else null. */
  get exit(): { code: number | null; signal: NodeJS.Signals | null } | null {
    return this.exitInfo;
  }

  /** True until the child was reaped (so the PID cannot have been reused). */
  get running(): boolean {
    return this.exitInfo === null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves once it has exited. Idempotent. */
  async stop(timeoutMs = 8000): Promise<void> {
    if (this.running) {
      this.child.kill('SIGTERM');
      const t = new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), timeoutMs).unref());
      if ((await Promise.race([this.exited.then(() => 'exited' as const), t])) === 'timeout') {
        if (this.running) this.child.kill('SIGKILL');
        await Promise.race([this.exited, new Promise((res) => setTimeout(res, 3000).unref())]);
      }
    }
    this.unregisterExit();
  }

  /** For process-exit handlers. */
  stopSync(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------------------------------------
// FRR with the netns VRF backend (lab notes section 7)
// ---------------------------------------------------------------------------------------------

/** What the tests need of an FRR instance (FrrInstance has it; so has NetnsVrfFrr). */
export interface FrrHandle {
  readonly name: string;
  vtysh(cmds: string | string[], opts?: { daemon?: string; timeoutMs?: number }): Promise<string>;
  vtyshJson<T = unknown>(showCmd: string, opts?: { daemon?: string }): Promise<T>;
  stop(): Promise<void>;
}

export interface NetnsVrfFrrOptions {
  /** The node's namespace: FRR's default VRF. */
  ns: string;
  /** Pathspace (default ns). */
  name?: string;
  /** UTS hostname of the daemons and of vtysh (lab gotcha G1). */
  hostname: string;
  /** VRF name -> network namespace (full name) that becomes that VRF. */
  vrfs: Record<string, string>;
  /** Initial integrated config (pushed with `vtysh -b`). */
  config: string;
  daemons?: FrrDaemon[];
  timeoutMs?: number;
}

const NAME_RE = /^[A-Za-z0-9_-]{1,32}$/;

async function frrIds(): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  const f = passwd
    .split('\n')
    .find((l) => l.startsWith('frr:'))
    ?.split(':');
  if (!f || f.length < 4)
    throw new Error('user frr does not exist: install FRR (scripts/install-lab-deps.sh)');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/**
 * An FRR instance whose zebra runs with `-n` (netns VRF backend) in a private mount namespace in
 * which /run/netns holds only the node's own namespace and the VRF namespaces given, under the VRF
 * names (zebra -n would otherwise turn every namespace on the machine into a VRF, G10). All daemons
 * share that mount namespace; vtysh reaches them through /var/run/frr/<name> as usual.
 */
export class NetnsVrfFrr implements FrrHandle {
  readonly name: string;
  readonly confDir: string;
  readonly runDir: string;
  readonly pids = new Map<FrrDaemon, number>();
  startOutput = '';
  private readonly refDir: string;
  private unregisterExit: (() => void) | null = null;
  private stopped = false;

  private constructor(private readonly opts: NetnsVrfFrrOptions) {
    this.name = opts.name ?? opts.ns;
    if (!NAME_RE.test(this.name) || !NAME_RE.test(opts.ns) || !NAME_RE.test(opts.hostname)) {
      throw new Error(`bad FRR pathspace, namespace or hostname: ${this.name} ${opts.ns} ${opts.hostname}`);
    }
    for (const [vrf, ns] of Object.entries(opts.vrfs)) {
      if (!NAME_RE.test(vrf) || !NAME_RE.test(ns) || vrf === opts.ns)
        throw new Error(`bad VRF ${vrf} -> ${ns}`);
    }
    this.confDir = join(FRR_ETC, this.name);
    this.runDir = join(FRR_RUN, this.name);
    this.refDir = mkdtempSync(join(tmpdir(), 'ilvrf-'));
  }

  static async start(opts: NetnsVrfFrrOptions): Promise<NetnsVrfFrr> {
    if (!existsSync(join(FRR_SBIN, 'zebra'))) throw new Error(`FRR is not installed (${FRR_SBIN}/zebra)`);
    const inst = new NetnsVrfFrr(opts);
    if (existsSync(inst.confDir) || existsSync(inst.runDir)) {
      rmSync(inst.refDir, { recursive: true, force: true });
      throw new Error(`FRR pathspace ${inst.name} already exists`);
    }
    inst.unregisterExit = registerExitCleanup(`FRR ${inst.name} (netns VRF)`, () => inst.stopSync());
    try {
      await inst.launch();
    } catch (e) {
      await inst.stop();
      throw e;
    }
    return inst;
  }

  private withHostname(argv: string[]): string[] {
    return ['unshare', '--uts', 'sh', '-c', 'hostname "$0" && exec "$@"', this.opts.hostname, ...argv];
  }

  private async launch(): Promise<void> {
    const deadline = Date.now() + (this.opts.timeoutMs ?? 20_000);
    const { uid, gid } = await frrIds();
    for (const [d, mode] of [
      [this.confDir, 0o750],
      [this.runDir, 0o755],
    ] as const) {
      await mkdir(d, { recursive: true, mode });
      await chown(d, uid, gid);
      await chmod(d, mode);
    }
    for (const [file, text] of [
      ['vtysh.conf', 'service integrated-vtysh-config\n'],
      ['frr.conf', this.opts.config.endsWith('\n') ? this.opts.config : `${this.opts.config}\n`],
    ] as const) {
      const p = join(this.confDir, file);
      await writeFile(p, text, { mode: 0o640 });
      await chown(p, uid, gid);
      await chmod(p, 0o640);
    }
    // /run/netns inside the private mount namespace: the node's own namespace plus one entry per
    // VRF. The namespace files are bound to reference files first, before a tmpfs hides the
    // machine-wide /run/netns (ip netns exec already made the mount namespace a slave; this one is
    // private, so nothing propagates back).
    const entries: [string, string][] = [
      [this.opts.ns, this.opts.ns],
      ...Object.entries(this.opts.vrfs).map(([vrf, ns]): [string, string] => [vrf, ns]),
    ];
    const lines = ['set -e'];
    for (const [entry, ns] of entries) {
      await writeFile(join(this.refDir, entry), '');
      lines.push(`mount --bind /run/netns/${ns} ${this.refDir}/${entry}`);
    }
    lines.push(`mount -t tmpfs ${this.name}-netns /run/netns`);
    for (const [entry] of entries) {
      lines.push(`touch /run/netns/${entry}`, `mount --bind ${this.refDir}/${entry} /run/netns/${entry}`);
    }
    lines.push(`hostname ${this.opts.hostname}`);
    const daemons = this.opts.daemons ?? ['zebra', 'bgpd', 'staticd', 'bfdd'];
    const order: FrrDaemon[] = ['zebra', ...daemons.filter((d) => d !== 'zebra')];
    for (const d of order) {
      const extra = d === 'zebra' ? ' -n -s 90000000' : '';
      lines.push(`${join(FRR_SBIN, d)} -N ${this.name} -d -F traditional -P 0${extra}`);
    }
    const r = await exec(
      this.opts.ns,
      ['unshare', '-m', '--propagation', 'private', '--uts', 'sh', '-c', lines.join('\n')],
      { timeoutMs: Math.max(1000, deadline - Date.now()) },
    );
    this.startOutput += r.stderr;
    // Record whatever started, even when a later step failed, so that stop() can end it.
    for (const d of order) {
      const pidFile = join(this.runDir, `${d}.pid`);
      const pid = await waitFor(
        async () => {
          const n = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
          return n > 0 && isAlive(n) ? n : 0;
        },
        {
          timeoutMs: r.code === 0 ? Math.max(0, deadline - Date.now()) : 0,
          intervalMs: 20,
          what: `${d} pid`,
        },
      ).catch(() => 0);
      if (pid > 0) this.pids.set(d, pid);
      else if (r.code === 0) throw new Error(`FRR ${this.name}: ${d} did not start: ${this.startOutput}`);
    }
    if (r.code !== 0) throw new ExecError(r);
    const boot = await run(this.withHostname(['vtysh', '-N', this.name, '-b']), {
      timeoutMs: Math.max(1000, deadline - Date.now()),
    });
    const errors = parseVtyshErrors(boot.stderr);
    if (boot.code !== 0 || errors.length > 0) {
      throw new FrrConfigError(
        `FRR ${this.name}: initial config rejected (vtysh -b rc ${boot.code})`,
        errors,
      );
    }
  }

  async vtysh(cmds: string | string[], opts: { daemon?: string; timeoutMs?: number } = {}): Promise<string> {
    const argv = this.withHostname(['vtysh', '-N', this.name]);
    if (opts.daemon) argv.push('-d', opts.daemon);
    for (const c of typeof cmds === 'string' ? [cmds] : cmds) argv.push('-c', c);
    const r = await run(argv, { timeoutMs: opts.timeoutMs ?? 30_000 });
    if (r.code !== 0) throw new ExecError(r);
    return r.stdout;
  }

  async vtyshJson<T = unknown>(showCmd: string, opts: { daemon?: string } = {}): Promise<T> {
    const cmd = /\bjson\s*$/.test(showCmd) ? showCmd : `${showCmd} json`;
    const out = await this.vtysh(cmd, opts);
    try {
      return JSON.parse(out) as T;
    } catch {
      throw new Error(`FRR ${this.name}: '${cmd}' did not return JSON: ${out.slice(0, 500)}`);
    }
  }

  private isOurs(pid: number, d: FrrDaemon): boolean {
    const argv = procArgv(pid);
    if (!argv) return false;
    const i = argv.indexOf('-N');
    return (argv[0] ?? '').endsWith(`/${d}`) && i >= 0 && argv[i + 1] === this.name;
  }

  private async killAndWait(daemons: FrrDaemon[]): Promise<void> {
    const live: number[] = [];
    for (const d of daemons) {
      const pid = this.pids.get(d);
      if (pid === undefined) continue;
      this.pids.delete(d);
      if (isAlive(pid) && this.isOurs(pid, d) && signal(pid, 'SIGINT')) live.push(pid);
    }
    if (live.length === 0) return;
    try {
      await waitFor(() => live.every((p) => !isAlive(p)), { timeoutMs: 5000, intervalMs: 25 });
    } catch {
      for (const p of live) signal(p, 'SIGKILL');
    }
  }

  /** SIGINT to every daemon it started (zebra last, SIGKILL after 5 s); removes its directories. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    await this.killAndWait([...this.pids.keys()].filter((d) => d !== 'zebra').reverse());
    await this.killAndWait(['zebra']);
    await rm(this.confDir, { recursive: true, force: true });
    await rm(this.runDir, { recursive: true, force: true });
    await rm(this.refDir, { recursive: true, force: true });
    this.stopped = true;
    this.unregisterExit?.();
    this.unregisterExit = null;
  }

  stopSync(): void {
    for (const [d, pid] of this.pids) if (isAlive(pid) && this.isOurs(pid, d)) signal(pid, 'SIGKILL');
    this.pids.clear();
    for (const d of [this.confDir, this.runDir, this.refDir]) rmSync(d, { recursive: true, force: true });
    this.stopped = true;
  }
}

export function startNetnsVrfFrr(opts: NetnsVrfFrrOptions): Promise<NetnsVrfFrr> {
  return NetnsVrfFrr.start(opts);
}

// ---------------------------------------------------------------------------------------------
// The node
// ---------------------------------------------------------------------------------------------

/** The part of the reloader's DIR/frr-status.json the tests read. */
export interface ReloaderStatus {
  desiredGeneration: number;
  appliedGeneration: number;
  desiredSha256?: string;
  appliedSha256?: string;
  mode?: string;
  lastError?: string;
  failedGeneration?: number;
  rejectedGeneration?: number;
  applying: boolean;
  counts?: Record<string, number>;
  [k: string]: unknown;
}

export interface SpeakerNodeOptions {
  /** The node's network namespace. */
  ns: string;
  /** Kubernetes node name: `--node`, `--hostname` and FRR's UTS hostname. */
  nodeName: string;
  /** FRR pathspace (default: ns). */
  pathspace?: string;
  /** Start FRR with the netns VRF backend: VRF name -> namespace (see NetnsVrfFrr). */
  netnsVrfs?: Record<string, string>;
  /** Files (name -> YAML) written into the source directory before the speaker starts. */
  objects?: Record<string, string>;
  /** Extra flags, e.g. ['--log-level', 'debug']. */
  speakerArgs?: string[];
  reloaderArgs?: string[];
  /** Upper bound for FRR + reloader + speaker start-up (default 30 000 ms). */
  timeoutMs?: number;
}

const MINIMAL_FRR_CONF = 'frr defaults traditional\nlog stdout informational\n';

export class SpeakerNode {
  /** Private directory holding src/ and frr/. */
  readonly dir: string;
  /** The speaker's object source (`--source dir:SRC`). */
  readonly srcDir: string;
  /** `--frr-dir` of the speaker = `--dir` of the reloader. */
  readonly frrDir: string;
  frr: FrrHandle | undefined;
  speaker: LabProcess | undefined;
  reloader: LabProcess | undefined;
  private unregisterExit: (() => void) | null = null;
  private stopped = false;

  private constructor(readonly opts: SpeakerNodeOptions) {
    this.dir = mkdtempSync(join(tmpdir(), `ilspk-${opts.nodeName}-`));
    this.srcDir = join(this.dir, 'src');
    this.frrDir = join(this.dir, 'frr');
  }

  get ns(): string {
    return this.opts.ns;
  }

  get nodeName(): string {
    return this.opts.nodeName;
  }

  get pathspace(): string {
    return this.opts.pathspace ?? this.opts.ns;
  }

  /** Starts FRR (minimal config), the reloader and the speaker; on failure stops what it started. */
  static async start(opts: SpeakerNodeOptions): Promise<SpeakerNode> {
    const node = new SpeakerNode(opts);
    node.unregisterExit = registerExitCleanup(`speaker node ${opts.nodeName}`, () => node.stopSync());
    try {
      await node.launch();
    } catch (e) {
      const logs = node.logs();
      await node.stop().catch(() => undefined);
      if (e instanceof Error && logs) e.message += `\n--- logs of ${opts.nodeName} ---\n${logs.slice(-4000)}`;
      throw e;
    }
    return node;
  }

  private async launch(): Promise<void> {
    const deadline = Date.now() + (this.opts.timeoutMs ?? 30_000);
    const { ns, nodeName } = this.opts;
    await mkdir(this.srcDir, { recursive: true, mode: 0o700 });
    await mkdir(this.frrDir, { recursive: true, mode: 0o700 });
    for (const [file, yaml] of Object.entries(this.opts.objects ?? {})) await this.put(file, yaml);
    this.frr = this.opts.netnsVrfs
      ? await startNetnsVrfFrr({
          ns,
          name: this.pathspace,
          hostname: nodeName,
          vrfs: this.opts.netnsVrfs,
          config: MINIMAL_FRR_CONF,
        })
      : await startFrr({ ns, name: this.pathspace, hostname: nodeName, config: MINIMAL_FRR_CONF });
    // The reloader's vtysh must see the same UTS hostname as the daemons (G1), or every
    // `show running-config` would differ from the rendered `hostname` line.
    this.reloader = await LabProcess.start(`frr-reloader ${nodeName}`, ns, [
      'unshare',
      '--uts',
      'sh',
      '-c',
      'hostname "$0" && exec "$@"',
      nodeName,
      process.execPath,
      IRONLB_BIN,
      'frr-reloader',
      '--dir',
      this.frrDir,
      '--pathspace',
      this.pathspace,
      ...(this.opts.reloaderArgs ?? []),
    ]);
    await this.waitLog(this.reloader, 'FRR reloader started', deadline);
    this.speaker = await LabProcess.start(`speaker ${nodeName}`, ns, [
      process.execPath,
      IRONLB_BIN,
      'speaker',
      '--node',
      nodeName,
      '--source',
      `dir:${this.srcDir}`,
      '--frr-dir',
      this.frrDir,
      '--hostname',
      nodeName,
      ...(this.opts.speakerArgs ?? []),
    ]);
    await this.waitLog(this.speaker, 'speaker started', deadline);
  }

  private async waitLog(p: LabProcess, text: string, deadline: number): Promise<void> {
    await waitFor(
      () => {
        if (p.output.includes(text)) return true;
        if (!p.running)
          throw new Error(`${p.what} exited (${JSON.stringify(p.exit)}): ${p.output.slice(-2000)}`);
        return false;
      },
      { timeoutMs: Math.max(0, deadline - Date.now()), intervalMs: 50, what: `${p.what}: "${text}"` },
    ).catch((e: unknown) => {
      if (!p.running)
        throw new Error(`${p.what} exited (${JSON.stringify(p.exit)}): ${p.output.slice(-2000)}`);
      throw e;
    });
  }

  /** Writes (or replaces) SRC/<file> atomically. */
  async put(file: string, yaml: string): Promise<void> {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*\.ya?ml$/.test(file)) throw new Error(`bad object file name ${file}`);
    const tmp = join(this.srcDir, `.${file}.tmp`);
    await writeFile(tmp, yaml);
    await rename(tmp, join(this.srcDir, file));
  }

  /** Removes SRC/<file>. */
  async remove(file: string): Promise<void> {
    await rm(join(this.srcDir, file));
  }

  /** The speaker's current DIR/frr.conf, or undefined before the first write. */
  async frrConf(): Promise<string | undefined> {
    return readFile(join(this.frrDir, 'frr.conf'), 'utf8').catch(() => undefined);
  }

  /** The reloader's DIR/frr-status.json, or undefined before the first write. */
  async status(): Promise<ReloaderStatus | undefined> {
    const t = await readFile(join(this.frrDir, 'frr-status.json'), 'utf8').catch(() => undefined);
    if (t === undefined) return undefined;
    try {
      return JSON.parse(t) as ReloaderStatus;
    } catch {
      return undefined; // being replaced
    }
  }

  /**
   * Waits until FRR runs the current DIR/frr.conf (the reloader's appliedSha256 equals the file's
   * SHA-256 and nothing is being applied). `contains`: also wait for the file to contain these
   * lines/strings (a change just written into SRC). Resolves with the config text and status.
   */
  async waitApplied(
    opts: { timeoutMs?: number; contains?: string[]; lacks?: string[] } = {},
  ): Promise<{ conf: string; status: ReloaderStatus }> {
    return waitFor(
      async () => {
        const conf = await this.frrConf();
        if (conf === undefined) return null;
        if (opts.contains && !opts.contains.every((c) => conf.includes(c))) return null;
        if (opts.lacks && opts.lacks.some((c) => conf.includes(c))) return null;
        const status = await this.status();
        if (!status || status.applying || status.appliedSha256 !== sha256(conf)) return null;
        return { conf, status };
      },
      {
        timeoutMs: opts.timeoutMs ?? 30_000,
        intervalMs: 100,
        what: `${this.nodeName}: frr.conf applied${opts.contains ? ` (with ${opts.contains.join(', ')})` : ''}`,
      },
    ).catch(async (e: unknown) => {
      const st = await this.status();
      if (e instanceof Error)
        e.message += `\nreloader status: ${JSON.stringify(st)}\n${this.logs().slice(-3000)}`;
      throw e;
    });
  }

  /** Captured output of the speaker and the reloader. */
  logs(): string {
    return [
      this.speaker ? `[speaker ${this.nodeName}]\n${this.speaker.output}` : '',
      this.reloader ? `[frr-reloader ${this.nodeName}]\n${this.reloader.output}` : '',
    ]
      .filter(Boolean)
      .join('\n');
  }

  /** Stops speaker, reloader and FRR (by PID) and removes the private directory. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    const errors: unknown[] = [];
    for (const step of [
      () => this.speaker?.stop(),
      () => this.reloader?.stop(),
      () => this.frr?.stop(),
      () => rm(this.dir, { recursive: true, force: true }),
    ]) {
      try {
        await step();
      } catch (e) {
        errors.push(e);
      }
    }
    this.stopped = true;
    this.unregisterExit?.();
    this.unregisterExit = null;
    if (errors.length > 0) throw errors[0];
  }

  stopSync(): void {
    this.speaker?.stopSync();
    this.reloader?.stopSync();
    rmSync(this.dir, { recursive: true, force: true });
    this.stopped = true;
  }
}

export function startSpeakerNode(opts: SpeakerNodeOptions): Promise<SpeakerNode> {
  return SpeakerNode.start(opts);
}
