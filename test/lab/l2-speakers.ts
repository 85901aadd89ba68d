/**
 * A layer-2 cluster lab: a client, N speaker nodes and (optionally) a foreign host on one bridge
 * (netns.ts Topology, fixed MACs, the l2-lab sysctls), and one `ironlb speaker --l2` per node,
 * started inside the node's namespace with `ip netns exec` (which execs: the PID is the speaker's),
 * with UDP membership on the node's own address. Every node gets its own SRC directory; objects are
 * written into all of them (like one cluster's API server). stderr (JSON log lines) of every
 * speaker generation is captured. Speakers are stopped by the PID this harness started.
 *
 * Also here: a neighbour-table monitor (`ip -ts monitor neigh`), a tiny TCP "who am I" server per
 * node and its client, and small statistics helpers shared by the e2e test and bench/l2.ts.
 * Plain TypeScript, no jest imports (the bench is compiled with the product's tsconfig.build.json).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRootFrom } from '../../src/l2/helper.js';
import { registerExitCleanup } from './cleanup.js';
import { addSecondLink, CLIENT_SYSCTLS, NODE_SYSCTLS, tuneClientLink, type SecondLink } from './l2.js';
import { exec, execOk, Topology, type HostSpec, type LabHost } from './netns.js';
import { isAlive, procArgv } from './proc.js';
import { waitFor } from './wait.js';

/** The repository root (nearest package.json above this module, in test/ or dist/test/). */
export const REPO_ROOT = packageRootFrom(dirname(fileURLToPath(import.meta.url)));
/** The launcher the product ships. */
export const IRONLB_BIN = join(REPO_ROOT, 'bin', 'ironlb');

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Topology: client + N nodes (+ foreign host), optional second link client <-> node1
// ---------------------------------------------------------------------------------------------

export const CLIENT_MAC = '02:00:00:00:00:10';
export const FOREIGN_MAC = '02:00:00:00:00:1f';
/** MACs of the optional second link: node1's end, the client's end. */
export { CLIENT_B_MAC, NODE1_B_MAC } from './l2.js';

export interface ClusterHost extends LabHost {
  v4: string;
  v6: string;
  mac: string;
}

export interface ClusterNode extends ClusterHost {
  /** Kubernetes node name (`node1`, …). */
  node: string;
}

export interface ClusterLab {
  topo: Topology;
  client: ClusterHost;
  nodes: ClusterNode[];
  foreign?: ClusterHost;
  second?: SecondLink;
  node(name: string): ClusterNode;
  byMac(mac: string): ClusterNode | undefined;
  teardown(): Promise<void>;
}

export interface ClusterLabOptions {
  /** Speaker nodes, 1…9 (default 3): node<i> at 192.0.2.1<i> / 2001:db8::1<i>, MAC 02:00:00:00:00:1<i>. */
  nodes?: number;
  /** A plain host `fx` (192.0.2.31, arp_ignore=0) that can play a foreign responder. */
  foreign?: boolean;
  /** A veth node1 <-> client outside the bridge (198.51.100.0/24, 2001:db8:1::/64). */
  secondLink?: boolean;
}

async function setMac(ns: string, ifname: string, mac: string): Promise<void> {
  await execOk(null, ['ip', '-n', ns, 'link', 'set', 'dev', ifname, 'address', mac]);
}

/** Client NUD: first unicast probe after 1 s instead of 5 s (as l2.ts does). */

export async function createClusterLab(opts: ClusterLabOptions = {}): Promise<ClusterLab> {
  const n = opts.nodes ?? 3;
  if (n < 1 || n > 9) throw new Error('createClusterLab: 1…9 nodes');
  const specs: HostSpec[] = [{ name: 'c', v4: '192.0.2.10', v6: '2001:db8::10', sysctls: CLIENT_SYSCTLS }];
  for (let i = 1; i <= n; i++) {
    specs.push({ name: `n${i}`, v4: `192.0.2.1${i}`, v6: `2001:db8::1${i}`, sysctls: NODE_SYSCTLS });
  }
  if (opts.foreign) specs.push({ name: 'fx', v4: '192.0.2.31', v6: '2001:db8::31', sysctls: CLIENT_SYSCTLS });
  const topo = await Topology.create({ hosts: specs });
  try {
    const full = async (name: string, mac: string): Promise<ClusterHost> => {
      const h = topo.host(name);
      await setMac(h.ns, h.ifname, mac); // veth allows a live MAC change
      return { ...h, v4: h.v4!, v6: h.v6!, mac };
    };
    const client = await full('c', CLIENT_MAC);
    await tuneClientLink(client.ns, client.ifname);
    const nodes: ClusterNode[] = [];
    for (let i = 1; i <= n; i++)
      nodes.push({ ...(await full(`n${i}`, `02:00:00:00:00:1${i}`)), node: `node${i}` });
    const lab: ClusterLab = {
      topo,
      client,
      nodes,
      node(name) {
        const x = nodes.find((h) => h.node === name);
        if (!x) throw new Error(`no node ${name}`);
        return x;
      },
      byMac: (mac) => nodes.find((h) => h.mac === mac.toLowerCase()),
      teardown: () => topo.teardown(),
    };
    if (opts.foreign) lab.foreign = await full('fx', FOREIGN_MAC);
    if (opts.secondLink) lab.second = await addSecondLink(topo.prefix, nodes[0]!.ns, client.ns);
    return lab;
  } catch (e) {
    await topo.teardown();
    throw e;
  }
}

/** `ip addr add|del ip/32|128 dev lo`: kube-proxy IPVS puts every LB IP on every node like this. */
export async function setVipsOnLo(ns: string, ips: readonly string[], present: boolean): Promise<void> {
  for (const ip of ips) {
    const len = ip.includes(':') ? 128 : 32;
    const r = await exec(ns, ['ip', 'addr', present ? 'add' : 'del', `${ip}/${len}`, 'dev', 'lo']);
    if (r.code !== 0 && !/File exists|already assigned|address not found|Cannot assign/i.test(r.stderr)) {
      throw new Error(`ip addr ${present ? 'add' : 'del'} ${ip} dev lo in ${ns}: ${r.stderr.trim()}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Long-running processes started by the lab
// ---------------------------------------------------------------------------------------------

/** A process started with `ip netns exec NS argv…` (exec in place: `pid` is argv[0]'s PID). */
export class NsProcess {
  readonly pid: number;
  readonly startedAt = Date.now();
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  readonly exited: Promise<void>;
  private readonly unregister: () => void;
  private readonly lineListeners = new Set<(line: string, stream: 'out' | 'err') => void>();

  private constructor(
    readonly what: string,
    private readonly child: ChildProcess,
  ) {
    if (child.pid === undefined) throw new Error(`${what}: spawn failed`);
    this.pid = child.pid;
    for (const [stream, name] of [
      [child.stdout, 'out'],
      [child.stderr, 'err'],
    ] as const) {
      let buf = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (s: string) => {
        buf += s;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          for (const l of this.lineListeners) l(line, name);
        }
      });
    }
    this.exited = new Promise<void>((res) => {
      child.once('exit', (code, sig) => {
        this.exitInfo = { code, signal: sig };
        res();
      });
    });
    this.unregister = registerExitCleanup(what, () => this.killSync());
  }

  static start(what: string, ns: string, argv: string[], env?: Record<string, string>): Promise<NsProcess> {
    return new Promise((res, rej) => {
      const child = spawn('ip', ['netns', 'exec', ns, ...argv], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: env ? { ...process.env, ...env } : process.env,
      });
      child.once('error', (e) => rej(new Error(`${what}: cannot start: ${e.message}`)));
      child.once('spawn', () => {
        try {
          res(new NsProcess(what, child));
        } catch (e) {
          rej(e instanceof Error ? e : new Error(String(e)));
        }
      });
    });
  }

  onLine(fn: (line: string, stream: 'out' | 'err') => void): void {
    this.lineListeners.add(fn);
  }

  get exit(): { code: number | null; signal: NodeJS.Signals | null } | null {
    return this.exitInfo;
  }

  /** True until the child was reaped (so its PID cannot have been reused by someone else). */
  get running(): boolean {
    return this.exitInfo === null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends a signal to our PID (only while we have not reaped it). */
  signal(sig: NodeJS.Signals): boolean {
    if (!this.running) return false;
    return this.child.kill(sig);
  }

  /** SIGKILL; resolves once reaped. */
  async kill(): Promise<void> {
    this.signal('SIGKILL');
    await this.exited;
    this.unregister();
  }

  /** SIGTERM, SIGKILL after `graceMs`; resolves once reaped. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.running) {
      this.signal('SIGTERM');
      const timer = new Promise<'t'>((r) => setTimeout(() => r('t'), graceMs).unref());
      if ((await Promise.race([this.exited.then(() => 'e' as const), timer])) === 't') this.signal('SIGKILL');
      await this.exited;
    }
    this.unregister();
  }

  killSync(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------------------------------------
// Speakers
// ---------------------------------------------------------------------------------------------

export interface SpeakerLogLine {
  /** Which start of this node's speaker (0, 1, …). */
  gen: number;
  /** Local receive time (ms). */
  at: number;
  level?: string;
  msg?: string;
  fields: Record<string, unknown>;
  raw: string;
}

export interface L2SpeakersOptions {
  lab: ClusterLab;
  /** Membership UDP port inside every node namespace (default 7946). */
  port?: number;
  /** Use a shared membership secret file (default true). */
  secret?: boolean;
  /** Extra speaker arguments, e.g. ['--log-level', 'debug']. */
  extraArgs?: string[];
}

interface SpeakerState {
  node: ClusterNode;
  src: string;
  proc: NsProcess | null;
  gen: number;
  logs: SpeakerLogLine[];
}

/** One `ironlb speaker --l2` per node; see the file header. */
export class L2Speakers {
  readonly dir: string;
  private readonly state = new Map<string, SpeakerState>();
  private readonly port: number;
  private readonly secretFile: string | undefined;
  private readonly unregister: () => void;

  constructor(private readonly opts: L2SpeakersOptions) {
    this.dir = mkdtempSync(join(tmpdir(), `ironlb-l2-${opts.lab.topo.prefix}-`));
    this.port = opts.port ?? 7946;
    this.secretFile = opts.secret === false ? undefined : join(this.dir, 'memberlist.key');
    for (const n of opts.lab.nodes) {
      this.state.set(n.node, { node: n, src: join(this.dir, n.node, 'src'), proc: null, gen: -1, logs: [] });
    }
    this.unregister = registerExitCleanup(`l2 speakers ${this.dir}`, () => {
      for (const s of this.state.values()) s.proc?.killSync();
      rmSync(this.dir, { recursive: true, force: true });
    });
  }

  private st(node: string): SpeakerState {
    const s = this.state.get(node);
    if (!s) throw new Error(`no speaker node ${node}`);
    return s;
  }

  get nodes(): string[] {
    return [...this.state.keys()];
  }

  /** Writes (atomically: dot-file + rename) `file` with `yaml` into every node's SRC. */
  async write(file: string, yaml: string): Promise<void> {
    if (!/^[\w.-]+\.ya?ml$/.test(file) || file.startsWith('.'))
      throw new Error(`bad object file name ${file}`);
    for (const s of this.state.values()) {
      await mkdir(s.src, { recursive: true });
      const tmp = join(s.src, `.${file}.tmp`);
      await writeFile(tmp, yaml);
      await rename(tmp, join(s.src, file));
    }
  }

  async remove(file: string): Promise<void> {
    for (const s of this.state.values()) await rm(join(s.src, file), { force: true });
  }

  /** Starts the speaker of `node` (a new generation); resolves once it runs (not when it answers). */
  async start(node: string): Promise<NsProcess> {
    const s = this.st(node);
    if (s.proc?.running) throw new Error(`speaker ${node} is already running (pid ${s.proc.pid})`);
    await mkdir(s.src, { recursive: true });
    if (this.secretFile) await writeFile(this.secretFile, '0123456789abcdef', { mode: 0o600 });
    const seeds = [...this.state.values()]
      .filter((o) => o !== s)
      .map((o) => `${o.node.v4}:${this.port}`)
      .join(',');
    const argv = [
      process.execPath,
      IRONLB_BIN,
      'speaker',
      '--node',
      node,
      '--source',
      `dir:${s.src}`,
      '--l2',
      '--ml-bind-addr',
      s.node.v4,
      '--ml-bind-port',
      String(this.port),
      ...(seeds ? ['--ml-seeds', seeds] : []),
      ...(this.secretFile ? ['--ml-secret-file', this.secretFile] : []),
      ...(this.opts.extraArgs ?? []),
    ];
    const gen = ++s.gen;
    const proc = await NsProcess.start(`speaker ${node}#${gen}`, s.node.ns, argv);
    s.proc = proc;
    proc.onLine((raw, stream) => {
      const line: SpeakerLogLine = { gen, at: Date.now(), fields: {}, raw };
      if (stream === 'err' && raw.startsWith('{')) {
        try {
          const o = JSON.parse(raw) as Record<string, unknown>;
          line.level = String(o.level);
          line.msg = String(o.msg);
          line.fields = o;
        } catch {
          /* keep raw */
        }
      }
      s.logs.push(line);
    });
    return proc;
  }

  async startAll(): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.start(n)));
  }

  /** The running speaker process of `node` (throws if none). */
  proc(node: string): NsProcess {
    const p = this.st(node).proc;
    if (!p?.running) throw new Error(`speaker ${node} is not running`);
    return p;
  }

  running(node: string): boolean {
    return !!this.st(node).proc?.running;
  }

  /**
   * SIGKILL the speaker of `node` after checking that our PID still is an ironlb speaker. Returns
   * the wall-clock time (ms, fractional) just before the signal was sent. Resolves once reaped.
   */
  async kill(node: string): Promise<number> {
    const p = this.proc(node);
    const argv = procArgv(p.pid) ?? [];
    if (!argv.includes('speaker') || !argv.includes(node)) {
      throw new Error(`pid ${p.pid} is not the speaker of ${node}: ${argv.join(' ')}`);
    }
    const t = performance.timeOrigin + performance.now();
    await p.kill();
    return t;
  }

  /** Graceful stop (SIGTERM: membership leave, helper quit). */
  async stop(node: string): Promise<void> {
    await this.st(node).proc?.stop();
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.stop(n)));
  }

  /** Stops everything still running and removes the temporary directory. */
  async cleanup(): Promise<void> {
    for (const s of this.state.values()) await s.proc?.kill();
    rmSync(this.dir, { recursive: true, force: true });
    this.unregister();
  }

  /** Log lines of `node` (all generations, or one). */
  logs(node: string, gen?: number): SpeakerLogLine[] {
    const all = this.st(node).logs;
    return gen === undefined ? all : all.filter((l) => l.gen === gen);
  }

  generation(node: string): number {
    return this.st(node).gen;
  }

  /** Waits for a log line of `node` (current generation by default) matching `pred`. */
  async waitLog(
    node: string,
    pred: (l: SpeakerLogLine) => boolean,
    o: { timeoutMs?: number; gen?: number; since?: number; what?: string } = {},
  ): Promise<SpeakerLogLine> {
    const gen = o.gen ?? this.generation(node);
    return waitFor(() => this.logs(node, gen).find((l) => l.at >= (o.since ?? 0) && pred(l)), {
      timeoutMs: o.timeoutMs ?? 15_000,
      intervalMs: 50,
      what: o.what ?? `log line of ${node}`,
    });
  }

  /** PID of the native helper the current speaker of `node` reported ready (checked in /proc). */
  helperPid(node: string): number | undefined {
    const ready = this.logs(node, this.generation(node)).filter((l) => l.msg === 'l2 helper ready');
    const pid = Number(ready[ready.length - 1]?.fields.pid);
    if (!pid) return undefined;
    const argv = procArgv(pid);
    return argv && argv.some((a) => a.endsWith('ironlb-l2')) && isAlive(pid) ? pid : undefined;
  }

  /**
   * Which IPs the node's speaker answers for, from its log ('answering' / 'stopped answering',
   * current generation).
   */
  answering(node: string): Set<string> {
    const out = new Set<string>();
    for (const l of this.logs(node, this.generation(node))) {
      const ip = typeof l.fields.ip === 'string' ? l.fields.ip : undefined;
      if (!ip) continue;
      if (l.msg === 'answering') out.add(ip);
      else if (l.msg === 'stopped answering') out.delete(ip);
    }
    return out;
  }

  /** Every log line of every node, for failure reports (last `tail` per node). */
  dump(tail = 60): string {
    const parts: string[] = [];
    for (const [node, s] of this.state) {
      parts.push(`==== ${node} (${s.logs.length} lines, gen ${s.gen}) ====`);
      for (const l of s.logs.slice(-tail)) parts.push(`[#${l.gen}] ${l.raw}`);
    }
    return parts.join('\n');
  }
}

// ---------------------------------------------------------------------------------------------
// Client neighbour table monitor
// ---------------------------------------------------------------------------------------------

export interface NeighEvent {
  /** Wall-clock time printed by `ip -ts` (ms since the epoch, fractional: µs precision). */
  ts: number;
  deleted: boolean;
  dst: string;
  dev: string;
  lladdr?: string;
  state: string;
}

/** Parses one `ip -ts monitor neigh` line (iproute2 6.1 prints local time with µs). */
export function parseNeighMonitorLine(line: string): NeighEvent | null {
  const m =
    /^\[(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{6})\]\s+(Deleted\s+)?(\S+)\s+dev\s+(\S+)(?:\s+lladdr\s+([0-9a-fA-F:]{17}))?.*?\s([A-Z]+)\s*$/.exec(
      line.trim(),
    );
  if (!m) return null;
  const [, y, mo, d, h, mi, s, us] = m;
  const ts = new Date(+y!, +mo! - 1, +d!, +h!, +mi!, +s!).getTime() + Number(us) / 1000;
  const ev: NeighEvent = { ts, deleted: !!m[8], dst: m[9]!, dev: m[10]!, state: m[12]! };
  if (m[11]) ev.lladdr = m[11].toLowerCase();
  return ev;
}

/** `ip -ts monitor neigh` in a namespace; keeps every parsed event. */
export class NeighMonitor {
  readonly events: NeighEvent[] = [];
  private constructor(private readonly proc: NsProcess) {}

  static async start(ns: string): Promise<NeighMonitor> {
    const proc = await NsProcess.start(`ip monitor neigh in ${ns}`, ns, ['ip', '-ts', 'monitor', 'neigh']);
    const mon = new NeighMonitor(proc);
    proc.onLine((line, stream) => {
      if (stream !== 'out') return;
      const ev = parseNeighMonitorLine(line);
      if (ev) mon.events.push(ev);
    });
    await sleep(200); // let it subscribe before anything happens
    return mon;
  }

  /** First event after `sinceMs` (wall clock) for dst with lladdr `mac`. */
  find(dst: string, mac: string, sinceMs: number): NeighEvent | undefined {
    return this.events.find((e) => e.ts >= sinceMs && e.dst === dst && e.lladdr === mac && !e.deleted);
  }

  /** Waits for that event; resolves with it. */
  wait(dst: string, mac: string, sinceMs: number, timeoutMs = 15_000): Promise<NeighEvent> {
    return waitFor(() => this.find(dst, mac, sinceMs), {
      timeoutMs,
      intervalMs: 20,
      what: `client neighbour entry ${dst} -> ${mac}`,
    });
  }

  /** The lladdr values an entry went through after `sinceMs`, consecutive duplicates collapsed. */
  macSequence(dst: string, sinceMs: number): string[] {
    const out: string[] = [];
    for (const e of this.events) {
      if (e.ts < sinceMs || e.dst !== dst || !e.lladdr || e.deleted) continue;
      if (out[out.length - 1] !== e.lladdr) out.push(e.lladdr);
    }
    return out;
  }

  async stop(): Promise<void> {
    await this.proc.kill();
  }
}

// ---------------------------------------------------------------------------------------------
// ARP / NA capture on the client (tcpdump), to tell solicited answers from announcements
// ---------------------------------------------------------------------------------------------

export interface Frame {
  /** Kernel receive time, ms since the epoch (fractional). */
  ts: number;
  iface: string;
  srcMac: string;
  dstMac: string;
  kind: 'arp-reply' | 'arp-request' | 'na' | 'other';
  /** ARP reply: the IP that "is-at"; ARP request: who-has; NA: the target. */
  ip?: string;
  /** IPv6 source / destination of an NA. */
  ipSrc?: string;
  ipDst?: string;
  raw: string;
}

/** Parses one `tcpdump -l -n -e -tt` line (tcpdump 4.99) of an Ethernet interface. */
export function parseTcpdumpLine(line: string, iface: string): Frame | null {
  const m =
    /^(\d+)\.(\d{6}) ([0-9a-f:]{17}) > ([0-9a-f:]{17}), ethertype \S+ \(0x[0-9a-f]+\), length \d+: (.*)$/.exec(
      line.trim(),
    );
  if (!m) return null;
  const f: Frame = {
    ts: Number(m[1]) * 1000 + Number(m[2]) / 1000,
    iface,
    srcMac: m[3]!,
    dstMac: m[4]!,
    kind: 'other',
    raw: line,
  };
  const rest = m[5]!;
  let x: RegExpExecArray | null;
  if ((x = /^Reply (\S+) is-at ([0-9a-f:]{17})/.exec(rest))) {
    f.kind = 'arp-reply';
    f.ip = x[1]!;
  } else if ((x = /^Request who-has (\S+)/.exec(rest))) {
    f.kind = 'arp-request';
    f.ip = x[1]!;
  } else if ((x = /^(\S+) > (\S+): ICMP6, neighbor advertisement, tgt is ([0-9a-f:.]+)/.exec(rest))) {
    f.kind = 'na';
    f.ipSrc = x[1]!;
    f.ipDst = x[2]!;
    f.ip = x[3]!;
  }
  return f;
}

/**
 * tcpdump on some interfaces of a namespace, keeping every ARP and NA frame. ndisc6 -m prints
 * every NA for the target that arrives while it waits, on any interface, gratuitous ones
 * included; the capture tells which of them answered its solicitation (unicast to the
 * link-local address it solicited from).
 */
export class FrameCapture {
  readonly frames: Frame[] = [];
  private constructor(private readonly procs: NsProcess[]) {}

  /** Whether tcpdump is installed (an optional lab dependency). */
  static async available(): Promise<boolean> {
    const r = await exec(null, ['sh', '-c', 'command -v tcpdump'], { timeoutMs: 5000 }).catch(() => null);
    return r?.code === 0;
  }

  static async start(ns: string, ifaces: readonly string[]): Promise<FrameCapture> {
    const procs: NsProcess[] = [];
    const cap = new FrameCapture(procs);
    try {
      for (const iface of ifaces) {
        const p = await NsProcess.start(`tcpdump ${ns} ${iface}`, ns, [
          'tcpdump',
          '-l',
          '-n',
          '-e',
          '-tt',
          '--immediate-mode',
          '-i',
          iface,
          'arp or (icmp6 and ip6[40] == 136)',
        ]);
        procs.push(p);
        let listening = false;
        p.onLine((line, stream) => {
          if (stream === 'err') {
            if (line.includes('listening on')) listening = true;
            return;
          }
          const f = parseTcpdumpLine(line, iface);
          if (f) cap.frames.push(f);
        });
        await waitFor(() => listening || !p.running, { timeoutMs: 10_000, intervalMs: 20, what: 'tcpdump' });
        if (!p.running) throw new Error(`tcpdump on ${iface} exited: ${JSON.stringify(p.exit)}`);
      }
    } catch (e) {
      for (const p of procs) await p.kill();
      throw e;
    }
    return cap;
  }

  /** NAs for `target` received on `iface` between `from` and `to` (ms). */
  nas(iface: string, target: string, from: number, to: number): Frame[] {
    return this.frames.filter(
      (f) => f.kind === 'na' && f.iface === iface && f.ip === target && f.ts >= from && f.ts <= to,
    );
  }

  /** Solicited answers to ndisc6 (NA unicast to a link-local address) in that window. */
  solicitedNas(iface: string, target: string, from: number, to: number): Frame[] {
    return this.nas(iface, target, from, to).filter((f) => !!f.ipDst && /^fe80:/i.test(f.ipDst));
  }

  async stop(): Promise<void> {
    for (const p of this.procs) await p.kill();
  }
}

// ---------------------------------------------------------------------------------------------
// "Who am I" TCP server per node, and its client
// ---------------------------------------------------------------------------------------------

export const WHOAMI_PORT = 8080;

const SERVER_JS = `
const net = require('node:net');
const name = process.env.WHOAMI_NAME;
const srv = net.createServer((s) => { s.on('error', () => {}); s.end(name + '\\n'); });
srv.listen({ port: Number(process.env.WHOAMI_PORT), host: '::', ipv6Only: false }, () => process.stdout.write('listening\\n'));
`;

const CLIENT_JS = `
const net = require('node:net');
const s = net.connect({ host: process.argv[1], port: Number(process.argv[2]), timeout: 2000 });
let data = '';
s.setEncoding('utf8');
s.on('data', (d) => { data += d; });
s.on('end', () => { process.stdout.write(data); process.exit(0); });
s.on('timeout', () => { process.stderr.write('timeout\\n'); process.exit(2); });
s.on('error', (e) => { process.stderr.write(String(e.message) + '\\n'); process.exit(1); });
`;

/** Starts a TCP server on [::]:8080 in `ns` that answers every connection with `name`. */
export async function startWhoami(ns: string, name: string): Promise<NsProcess> {
  const p = await NsProcess.start(`whoami ${name}`, ns, [process.execPath, '-e', SERVER_JS], {
    WHOAMI_NAME: name,
    WHOAMI_PORT: String(WHOAMI_PORT),
  });
  let up = false;
  p.onLine((l) => {
    if (l === 'listening') up = true;
  });
  await waitFor(() => up || !p.running, { timeoutMs: 15_000, intervalMs: 50, what: `whoami ${name}` });
  if (!p.running) throw new Error(`whoami ${name} exited: ${JSON.stringify(p.exit)}`);
  return p;
}

/** Connects from `ns` to ip:8080; resolves with the node name the server sent, or null. */
export async function whoami(ns: string, ip: string): Promise<string | null> {
  const r = await exec(ns, [process.execPath, '-e', CLIENT_JS, ip, String(WHOAMI_PORT)], {
    timeoutMs: 15_000,
  });
  return r.code === 0 ? r.stdout.trim() : null;
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

/** Nearest-rank percentile (p in 0…100) of unsorted values; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1]!;
}

/** Round-trip times (µs) from Habets arping output lines `… time=39.304 usec` / `msec`. */
export function parseArpingTimesUs(stdout: string): number[] {
  const out: number[] = [];
  for (const m of stdout.matchAll(/time=([\d.]+) (usec|msec|sec)/g)) {
    const v = Number(m[1]);
    out.push(m[2] === 'usec' ? v : m[2] === 'msec' ? v * 1000 : v * 1e6);
  }
  return out;
}
