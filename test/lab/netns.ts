/**
 * Network-namespace topology for the real-router lab: one "switch" namespace holding a bridge, and
 * N host namespaces, each with one veth whose other end is a port of that bridge. Nothing is
 * created in the root namespace. Every name starts with a per-run unique prefix (`il` + 4 hex).
 * Only documentation address ranges are accepted.
 */
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { registerExitCleanup } from './cleanup.js';

// ---------------------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------------------

export interface ExecOptions {
  /** Kill the command (SIGKILL) after this long; default 30 000 ms. */
  timeoutMs?: number;
  /** Written to the command's stdin (stdin is closed otherwise). */
  input?: string;
  /** Throw an ExecError unless the command exits with code 0. */
  check?: boolean;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

export interface ExecResult {
  argv: string[];
  stdout: string;
  stderr: string;
  /** Exit code, or null when killed by a signal (see `signal`, `timedOut`). */
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  durationMs: number;
}

export class ExecError extends Error {
  constructor(readonly result: ExecResult) {
    const how = result.timedOut
      ? `timed out after ${result.durationMs} ms`
      : result.signal
        ? `was killed by ${result.signal}`
        : `exited with code ${result.code}`;
    const out = (result.stderr.trim() || result.stdout.trim()).slice(0, 2000);
    super(`command ${JSON.stringify(result.argv.join(' '))} ${how}${out ? `: ${out}` : ''}`);
    this.name = 'ExecError';
  }
}

/** Runs argv (no shell) in the current namespace. */
export function run(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [cmd, ...args] = argv;
  if (!cmd) return Promise.reject(new Error('run: empty argv'));
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const start = Date.now();
  return new Promise<ExecResult>((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let settled = false;
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
      // A daemonised grandchild may still hold the pipes open: stop waiting for them.
      setTimeout(() => finish(null, 'SIGKILL'), 2000).unref();
    }, timeoutMs);
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.stdout?.destroy();
      child.stderr?.destroy();
      const result: ExecResult = {
        argv,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        code,
        signal,
        timedOut,
        durationMs: Date.now() - start,
      };
      if (opts.check && (code !== 0 || timedOut)) reject(new ExecError(result));
      else resolve(result);
    };
    child.on('error', (e) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => finish(code, signal));
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input);
    }
  });
}

/**
 * Runs argv inside network namespace `ns` (via `ip netns exec`), or in the current namespace when
 * `ns` is null. Resolves with stdout/stderr/code; rejects only when `check` is set and it failed.
 */
export function exec(ns: string | null, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return run(ns ? ['ip', 'netns', 'exec', ns, ...argv] : argv, opts);
}

/** Like exec with check: true; resolves with stdout. */
export async function execOk(ns: string | null, argv: string[], opts: ExecOptions = {}): Promise<string> {
  return (await exec(ns, argv, { ...opts, check: true })).stdout;
}

// ---------------------------------------------------------------------------------------------
// Environment checks and names
// ---------------------------------------------------------------------------------------------

/** Names of all network namespaces (`ip netns list`). */
export async function listNetns(): Promise<string[]> {
  const r = await run(['ip', 'netns', 'list'], { check: true, timeoutMs: 10_000 });
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.length > 0);
}

/** A per-run unique prefix, `il` + 4 hex digits, not used by any existing namespace. */
export async function uniquePrefix(): Promise<string> {
  const existing = await listNetns();
  for (let i = 0; i < 100; i++) {
    const p = `il${randomBytes(2).toString('hex')}`;
    if (!existing.some((n) => n.startsWith(p))) return p;
  }
  throw new Error('could not find an unused namespace prefix');
}

/**
 * Why the lab cannot run here, or null when it can: needs root, and `ip netns add/del` working
 * (checked with a throw-away namespace).
 */
export async function labUnavailableReason(): Promise<string | null> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return 'the real-router lab needs root (network namespaces, FRR daemons)';
  }
  try {
    const probe = `${await uniquePrefix()}-probe`;
    const add = await run(['ip', 'netns', 'add', probe], { timeoutMs: 10_000 });
    if (add.code !== 0) return `'ip netns add' does not work here: ${add.stderr.trim()}`;
    await run(['ip', 'netns', 'del', probe], { timeoutMs: 10_000 });
  } catch (e) {
    return `'ip netns' is unavailable: ${e instanceof Error ? e.message : String(e)}`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Address checks (documentation ranges only)
// ---------------------------------------------------------------------------------------------

const DOC_V4 = ['192.0.2.', '198.51.100.', '203.0.113.'];

function isDocV4(addr: string): boolean {
  return DOC_V4.some((p) => addr.startsWith(p)) && /^\d+\.\d+\.\d+\.\d+$/.test(addr);
}

function isDocV6(addr: string): boolean {
  return /^2001:0?db8:/i.test(addr);
}

/** Throws unless `addr` (without /len) is in 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 or 2001:db8::/32. */
export function assertDocumentationAddress(addr: string): void {
  const a = addr.split('/')[0] ?? '';
  if (!(a.includes(':') ? isDocV6(a) : isDocV4(a))) {
    throw new Error(`lab address ${addr} is outside the documentation ranges`);
  }
}

// ---------------------------------------------------------------------------------------------
// Topology
// ---------------------------------------------------------------------------------------------

export interface HostSpec {
  /** Short name, [a-z0-9]{1,7}; the namespace is `<prefix>-<name>`. */
  name: string;
  /** IPv4 address (documentation range); gets a /v4PrefixLen. */
  v4?: string;
  /** IPv6 address (2001:db8::/32); gets a /v6PrefixLen, added with nodad. */
  v6?: string;
  /** Extra sysctls for this host, e.g. { 'net.ipv4.conf.all.arp_ignore': '1' }. */
  sysctls?: Record<string, string>;
}

export interface TopologyOptions {
  hosts: HostSpec[];
  /** Defaults to uniquePrefix(). */
  prefix?: string;
  v4PrefixLen?: number;
  v6PrefixLen?: number;
}

export interface LabHost {
  /** Short name from the spec. */
  name: string;
  /** Namespace name. */
  ns: string;
  /** Interface inside the host namespace. */
  ifname: string;
  /** Its peer, a port of the bridge in the switch namespace. */
  switchPort: string;
  v4?: string;
  v6?: string;
}

/** Sysctls set in every host namespace (lab notes, section 1). */
export const HOST_SYSCTLS: Record<string, string> = {
  'net.ipv6.conf.all.accept_dad': '0',
  'net.ipv6.conf.default.accept_dad': '0',
  'net.ipv4.ip_forward': '1',
  'net.ipv6.conf.all.forwarding': '1',
};

function sysctlArgs(s: Record<string, string>): string[] {
  return Object.entries(s).map(([k, v]) => `${k}=${v}`);
}

export class Topology {
  readonly switchNs: string;
  readonly bridge: string;
  private readonly hostMap = new Map<string, LabHost>();
  /** Namespaces created so far, in creation order. */
  private readonly created: string[] = [];
  private unregisterExit: (() => void) | null = null;
  private tornDown = false;

  private constructor(readonly prefix: string) {
    this.switchNs = `${prefix}-sw`;
    this.bridge = `${prefix}-br`;
  }

  /** Builds the topology; on any failure removes what it had created and rethrows. */
  static async create(opts: TopologyOptions): Promise<Topology> {
    const prefix = opts.prefix ?? (await uniquePrefix());
    if (!/^[a-z0-9]{2,6}$/.test(prefix)) throw new Error(`bad topology prefix ${prefix}`);
    const names = new Set<string>();
    for (const h of opts.hosts) {
      if (!/^[a-z0-9]{1,7}$/.test(h.name)) throw new Error(`bad host name ${h.name} (want [a-z0-9]{1,7})`);
      if (h.name === 'sw' || names.has(h.name)) throw new Error(`duplicate or reserved host name ${h.name}`);
      names.add(h.name);
      if (h.v4) assertDocumentationAddress(h.v4);
      if (h.v6) assertDocumentationAddress(h.v6);
    }
    const topo = new Topology(prefix);
    topo.unregisterExit = registerExitCleanup(`topology ${prefix}`, () => topo.teardownSync());
    try {
      await topo.build(opts);
    } catch (e) {
      await topo.teardown();
      throw e;
    }
    return topo;
  }

  private async addNs(ns: string): Promise<void> {
    await execOk(null, ['ip', 'netns', 'add', ns]);
    this.created.push(ns);
    await execOk(null, ['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }

  private async build(opts: TopologyOptions): Promise<void> {
    const v4len = opts.v4PrefixLen ?? 24;
    const v6len = opts.v6PrefixLen ?? 64;
    const sw = this.switchNs;
    await this.addNs(sw);
    await execOk(sw, [
      'sysctl',
      '-qw',
      'net.ipv6.conf.all.accept_dad=0',
      'net.ipv6.conf.default.accept_dad=0',
    ]);
    await execOk(null, ['ip', '-n', sw, 'link', 'add', this.bridge, 'type', 'bridge']);
    await execOk(null, ['ip', '-n', sw, 'link', 'set', this.bridge, 'up']);
    for (const spec of opts.hosts) {
      const ns = `${this.prefix}-${spec.name}`;
      const host: LabHost = {
        name: spec.name,
        ns,
        ifname: `${this.prefix}-${spec.name}e`,
        switchPort: `${this.prefix}-${spec.name}s`,
      };
      if (spec.v4) host.v4 = spec.v4;
      if (spec.v6) host.v6 = spec.v6;
      await this.addNs(ns);
      // DAD off before the interface exists, so neither the link-local nor the global address is ever tentative.
      await execOk(ns, ['sysctl', '-qw', ...sysctlArgs({ ...HOST_SYSCTLS, ...(spec.sysctls ?? {}) })]);
      // The veth is created directly with one end in each namespace: nothing touches the root ns.
      await execOk(null, [
        'ip',
        'link',
        'add',
        host.ifname,
        'netns',
        ns,
        'type',
        'veth',
        'peer',
        'name',
        host.switchPort,
        'netns',
        sw,
      ]);
      await execOk(null, ['ip', '-n', sw, 'link', 'set', host.switchPort, 'master', this.bridge, 'up']);
      if (host.v4)
        await execOk(null, ['ip', '-n', ns, 'addr', 'add', `${host.v4}/${v4len}`, 'dev', host.ifname]);
      if (host.v6) {
        await execOk(null, [
          'ip',
          '-n',
          ns,
          'addr',
          'add',
          `${host.v6}/${v6len}`,
          'dev',
          host.ifname,
          'nodad',
        ]);
      }
      await execOk(null, ['ip', '-n', ns, 'link', 'set', host.ifname, 'up']);
      this.hostMap.set(spec.name, host);
    }
  }

  /** The host with this short name (throws if unknown). */
  host(name: string): LabHost {
    const h = this.hostMap.get(name);
    if (!h) throw new Error(`no host ${name} in topology ${this.prefix}`);
    return h;
  }

  get hosts(): LabHost[] {
    return [...this.hostMap.values()];
  }

  /** Namespaces this topology created (and has not deleted yet). */
  get namespaces(): string[] {
    return [...this.created];
  }

  /** Runs argv in a host's namespace (by short name) or in any namespace of this topology (by full name). */
  exec(hostOrNs: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const ns = this.hostMap.get(hostOrNs)?.ns ?? hostOrNs;
    if (!this.created.includes(ns)) {
      return Promise.reject(new Error(`namespace ${ns} is not part of topology ${this.prefix}`));
    }
    return exec(ns, argv, opts);
  }

  /** Cable cut: takes the host's switch port down (the host's own interface stays up). */
  async linkDown(host: string): Promise<void> {
    await execOk(null, ['ip', '-n', this.switchNs, 'link', 'set', this.host(host).switchPort, 'down']);
  }

  /** Reconnects the cable cut by linkDown. */
  async linkUp(host: string): Promise<void> {
    await execOk(null, ['ip', '-n', this.switchNs, 'link', 'set', this.host(host).switchPort, 'up']);
  }

  /**
   * Deletes every namespace this topology created (hosts first, the switch last). Processes still
   * running inside them were started by this run (the names are unique to it); they are killed by
   * PID first, since a namespace lives on as long as a process is in it. Idempotent.
   */
  async teardown(): Promise<void> {
    if (this.tornDown) return;
    const errors: string[] = [];
    for (const ns of [...this.created].reverse()) {
      const pids = await run(['ip', 'netns', 'pids', ns], { timeoutMs: 10_000 });
      for (const p of pids.stdout.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(p), 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      const r = await run(['ip', 'netns', 'del', ns], { timeoutMs: 10_000 });
      if (r.code !== 0 && !/No such file/.test(r.stderr)) errors.push(`${ns}: ${r.stderr.trim()}`);
      else this.created.splice(this.created.indexOf(ns), 1);
    }
    if (errors.length > 0) throw new Error(`topology ${this.prefix} teardown: ${errors.join('; ')}`);
    this.tornDown = true;
    this.unregisterExit?.();
    this.unregisterExit = null;
  }

  /** Synchronous teardown for process-exit handlers. */
  teardownSync(): void {
    for (const ns of [...this.created].reverse()) {
      try {
        const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: 'pipe' });
        for (const p of pids.split(/\s+/).filter(Boolean)) {
          try {
            process.kill(Number(p), 'SIGKILL');
          } catch {
            /* already gone */
          }
        }
      } catch {
        /* namespace gone */
      }
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
    }
    this.created.length = 0;
    this.tornDown = true;
  }
}
