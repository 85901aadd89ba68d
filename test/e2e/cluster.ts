/**
 * A whole ironlb cluster on one machine, for the end-to-end test and `make demo`: a real
 * kube-apiserver + etcd (test/k8s/controlplane.ts, on the host's 127.0.0.1) with the metallb.io
 * CRDs and the `metallb-system` namespace; `ironlb controller` as a process; and a network of
 * namespaces (test/lab/netns.ts, all names carry the run's prefix):
 *
 *                       ext 203.0.113.248/29
 *      client  cx ──────────────────────────── rx  router (BIRD, AS 64500)
 *      .10  │                                        │ .1
 *           └──────────── LAN bridge 192.0.2.0/24 ───┴──────┬──────────┐
 *                                                       node1 .11   node2 .12 (AS 64510)
 *
 * Every node namespace runs what a node of a real cluster runs: FRR, `ironlb frr-reloader`,
 * `ironlb speaker --source k8s --frr-dir … --l2` with UDP membership, and a backend (a tiny HTTP
 * server answering with its node name on every port in `backendPorts`). The harness plays
 * kube-proxy in IPVS mode: every LoadBalancer IP in a Service status goes on `lo` of every node
 * (nodes have arp_ignore=1, arp_announce=2, so only ironlb answers ARP for them). The client
 * reaches BGP VIPs through the router (its default route) and L2 VIPs on the LAN.
 *
 * How a process inside a node namespace reaches the apiserver on the host's loopback: network
 * namespaces do not share loopback, and no link may be added to the root namespace. Unix sockets
 * are not network-namespaced, though. The harness listens on a unix socket (in a 0700 temp dir)
 * and forwards each connection to 127.0.0.1:<apiserver port>; inside every node namespace a
 * small relay process listens on that namespace's own 127.0.0.1:<same port> and forwards to the
 * unix socket. So the speaker uses the control plane's kubeconfig unchanged (server
 * https://127.0.0.1:<port>; TLS is end to end and the certificate's 127.0.0.1 SAN matches), and
 * all traffic stays on loopbacks and a unix socket.
 *
 * Everything is stopped by the PIDs this harness started (SIGTERM, then SIGKILL) and registered
 * for the synchronous exit cleanup; the namespaces are deleted. Plain TypeScript, no jest imports:
 * bench/demo.ts is compiled with the product's tsconfig.build.json and uses it too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ApiError, KubeClient, RESOURCES, type KObject, type Resource } from '../../src/k8s/client.js';
import { Informer } from '../../src/k8s/informer.js';
import { silentLogger } from '../../src/util/log.js';
import { ControlPlane, k8sUnavailableReason } from '../k8s/controlplane.js';
import { startBird, type BirdInstance, type BirdRoute } from '../lab/bird.js';
import { registerExitCleanup } from '../lab/cleanup.js';
import { FRR_SBIN, startFrr, type FrrInstance } from '../lab/frr.js';
import { arping, CLIENT_SYSCTLS, neighEntry, NODE_SYSCTLS, type NeighEntry } from '../lab/l2.js';
import { IRONLB_BIN, REPO_ROOT, setVipsOnLo } from '../lab/l2-speakers.js';
import { exec, execOk, labUnavailableReason, run, Topology, type HostSpec } from '../lab/netns.js';
import { waitFor } from '../lab/wait.js';

// ---------------------------------------------------------------------------------------------
// Addresses and numbers (documentation ranges only)
// ---------------------------------------------------------------------------------------------

export const ROUTER_ASN = 64500;
export const NODE_ASN = 64510;
export const MEMBERSHIP_PORT = 7946;
export const METALLB_NS = 'metallb-system';

export const ROUTER_V4 = '192.0.2.1';
export const ROUTER_V6 = '2001:db8::1';
export const CLIENT_V4 = '192.0.2.10';
export const CLIENT_V6 = '2001:db8::10';
/** The router <-> client link ("the internet side"). */
export const EXT = { router: '203.0.113.249', client: '203.0.113.250', prefixLen: 29 };
export const ROUTER_MAC = '02:00:00:00:00:01';
export const CLIENT_MAC = '02:00:00:00:00:10';
export const nodeV4 = (i: number): string => `192.0.2.1${i}`;
export const nodeV6 = (i: number): string => `2001:db8::1${i}`;
export const nodeMac = (i: number): string => `02:00:00:00:00:1${i}`;

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/** The parent's environment without proxies and jest's NODE_OPTIONS. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const k of Object.keys(env)) if (/^(https?|all|no)_proxy$/i.test(k)) delete env[k];
  delete env.NODE_OPTIONS;
  return env;
}

export interface LogLine {
  /** Local receive time (ms since the epoch). */
  at: number;
  stream: 'out' | 'err';
  raw: string;
  /** The line parsed, when it is one of ironlb's JSON log records. */
  json?: Record<string, unknown>;
}

const MAX_LINES = 20_000;

export interface StopResult {
  /** Exited on SIGTERM within the grace period. */
  graceful: boolean;
  ms: number;
  note?: string;
}

/** utime+stime of a process (clock ticks), or null when it is gone. */
function cpuTicks(pid: number): number | null {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}

/** CPU use of a process over `ms` in percent of one core (100 ticks/s, Linux's USER_HZ). */
async function cpuPercent(pid: number, ms: number): Promise<number | null> {
  const a = cpuTicks(pid);
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuTicks(pid);
  return a === null || b === null ? null : (b - a) / (ms / 1000);
}

/**
 * A long-running process started by the harness, optionally inside a network namespace
 * (`ip netns exec NS argv…`, which execs: the PID is the program's own). Under `setpriv
 * --pdeathsig SIGKILL` when available, so nothing outlives a SIGKILLed harness. Every output
 * line is kept (JSON log records parsed).
 */
export class ClusterProcess {
  readonly pid: number;
  readonly lines: LogLine[] = [];
  readonly exited: Promise<void>;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly unregister: () => void;

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
          this.push(buf.slice(0, i), name);
          buf = buf.slice(i + 1);
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

  private push(raw: string, stream: 'out' | 'err'): void {
    const line: LogLine = { at: Date.now(), stream, raw };
    if (raw.startsWith('{')) {
      try {
        line.json = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        /* not JSON after all */
      }
    }
    this.lines.push(line);
    if (this.lines.length > MAX_LINES) this.lines.splice(0, this.lines.length - MAX_LINES);
  }

  /** Starts argv (in `ns` when given); resolves once spawned. */
  static start(
    what: string,
    argv: string[],
    o: { ns?: string; env?: Record<string, string> } = {},
  ): Promise<ClusterProcess> {
    const inner = o.ns ? ['ip', 'netns', 'exec', o.ns, ...argv] : argv;
    const full = SETPRIV ? [SETPRIV, '--pdeathsig', 'SIGKILL', '--', ...inner] : inner;
    return new Promise((res, rej) => {
      const child = spawn(full[0]!, full.slice(1), {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: childEnv(o.env),
      });
      child.once('error', (e) => rej(new Error(`${what}: cannot start: ${e.message}`)));
      child.once('spawn', () => {
        try {
          res(new ClusterProcess(what, child));
        } catch (e) {
          rej(e instanceof Error ? e : new Error(String(e)));
        }
      });
    });
  }

  /** True until the child was reaped (so its PID cannot belong to anyone else). */
  get running(): boolean {
    return this.exitInfo === null && this.child.exitCode === null && this.child.signalCode === null;
  }

  get exit(): { code: number | null; signal: NodeJS.Signals | null } | null {
    return this.exitInfo;
  }

  /** Every line, as received. */
  get output(): string {
    return this.lines.map((l) => l.raw).join('\n');
  }

  /** JSON log records with this `msg` (received at or after `since`). */
  records(msg: string, since = 0): Record<string, unknown>[] {
    return this.lines.filter((l) => l.at >= since && l.json?.msg === msg).map((l) => l.json!);
  }

  /** Waits for a line matching `pred`; fails at once when the process exits. */
  async waitLine(
    pred: (l: LogLine) => boolean,
    o: { timeoutMs?: number; since?: number; what?: string } = {},
  ): Promise<LogLine> {
    return waitFor(
      () => {
        const hit = this.lines.find((l) => l.at >= (o.since ?? 0) && pred(l));
        if (hit) return hit;
        if (!this.running)
          throw new Error(`${this.what} exited (${JSON.stringify(this.exit)}):\n${this.tail(40)}`);
        return undefined;
      },
      { timeoutMs: o.timeoutMs ?? 30_000, intervalMs: 50, what: o.what ?? `${this.what}: log line` },
    );
  }

  /** Waits for a JSON record whose msg is `msg`. */
  waitMsg(msg: string, o: { timeoutMs?: number; since?: number } = {}): Promise<LogLine> {
    return this.waitLine((l) => l.json?.msg === msg, { ...o, what: `${this.what}: "${msg}"` });
  }

  tail(n = 40): string {
    return this.lines
      .slice(-n)
      .map((l) => l.raw)
      .join('\n');
  }

  /** Sends a signal to our own child (only while it has not been reaped). */
  signal(sig: NodeJS.Signals): boolean {
    return this.running ? this.child.kill(sig) : false;
  }

  /**
   * SIGTERM, SIGKILL after `graceMs`; resolves once reaped. Idempotent. `graceful` is false when
   * SIGKILL was needed; `note` then says how busy the process was while it did not exit (a
   * blocked event loop shows as ~100 % CPU).
   */
  async stop(graceMs = 8000): Promise<StopResult> {
    const t0 = Date.now();
    const out: StopResult = { graceful: true, ms: 0 };
    if (this.running) {
      this.signal('SIGTERM');
      const t = new Promise<'t'>((r) => setTimeout(() => r('t'), graceMs).unref());
      if ((await Promise.race([this.exited.then(() => 'e' as const), t])) === 't' && this.running) {
        out.graceful = false;
        const cpu = await cpuPercent(this.pid, 500);
        out.note =
          `${this.what} (pid ${this.pid}) did not exit within ${graceMs} ms of SIGTERM` +
          (cpu === null ? '' : `; CPU ${cpu.toFixed(0)} % over the last 0.5 s`) +
          '; sent SIGKILL';
        this.push(`[harness] ${out.note}`, 'err');
        this.signal('SIGKILL');
        await Promise.race([this.exited, new Promise((r) => setTimeout(r, 5000).unref())]);
      }
    }
    out.ms = Date.now() - t0;
    this.unregister();
    return out;
  }

  killSync(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------------------------------------
// Small programs run inside namespaces (`node -e`, no files to compile)
// ---------------------------------------------------------------------------------------------

/** In a node namespace: 127.0.0.1:RELAY_PORT -> unix socket RELAY_SOCK (-> the host's apiserver). */
const RELAY_JS = `
const net = require('node:net');
const sock = process.env.RELAY_SOCK;
const srv = net.createServer((c) => {
  const u = net.connect({ path: sock });
  const close = () => { c.destroy(); u.destroy(); };
  c.on('error', close); u.on('error', close); c.on('close', close); u.on('close', close);
  c.pipe(u); u.pipe(c);
});
srv.on('error', (e) => { process.stderr.write('relay: ' + e.message + '\\n'); process.exit(1); });
srv.listen(Number(process.env.RELAY_PORT), '127.0.0.1', () => process.stdout.write('listening\\n'));
`;

/** A backend: HTTP on [::]:PORT for every port of BACKEND_PORTS, answering with BACKEND_NAME. */
const BACKEND_JS = `
const http = require('node:http');
const name = process.env.BACKEND_NAME;
const ports = process.env.BACKEND_PORTS.split(',').map(Number);
let up = 0;
for (const port of ports) {
  const srv = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.setHeader('connection', 'close');
    res.end(name + '\\n');
  });
  srv.on('error', (e) => { process.stderr.write('backend: ' + e.message + '\\n'); process.exit(1); });
  srv.listen({ port, host: '::', ipv6Only: false }, () => { if (++up === ports.length) process.stdout.write('listening\\n'); });
}
`;

/** HTTP GET argv[1] argv[2] times (sequentially, new connection each); prints a JSON array. */
const HTTP_CLIENT_JS = `
const http = require('node:http');
const url = process.argv[1];
const n = Number(process.argv[2] || 1);
const timeout = Number(process.argv[3] || 3000);
const one = () => new Promise((resolve) => {
  const t0 = Date.now();
  const req = http.get(url, { agent: false, timeout }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d) => { body += d; });
    res.on('end', () => resolve({ status: res.statusCode, body: body.trim(), ms: Date.now() - t0 }));
    res.on('error', (e) => resolve({ error: e.message, ms: Date.now() - t0 }));
  });
  req.on('timeout', () => req.destroy(new Error('timeout after ' + timeout + ' ms')));
  req.on('error', (e) => resolve({ error: e.message, ms: Date.now() - t0 }));
});
(async () => {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await one());
  process.stdout.write(JSON.stringify(out));
})();
`;

export interface HttpResult {
  status?: number;
  /** The body, trimmed: the answering node's name for the harness's backends. */
  body?: string;
  error?: string;
  ms: number;
}

// ---------------------------------------------------------------------------------------------
// YAML / objects
// ---------------------------------------------------------------------------------------------

const RESOURCE_BY_KIND = new Map<string, Resource>(Object.values(RESOURCES).map((r) => [r.kind, r]));

/** Apply order: namespaces and nodes first, configuration next, Services last. */
const KIND_ORDER: Record<string, number> = {
  Namespace: 0,
  Node: 1,
  Secret: 2,
  ConfigMap: 2,
  BFDProfile: 3,
  Community: 3,
  IPAddressPool: 4,
  BGPPeer: 5,
  BGPAdvertisement: 5,
  L2Advertisement: 5,
  Service: 9,
};

/** The resource of an object, with the group/version its apiVersion names. */
export function resourceOf(obj: KObject & { apiVersion?: string; kind?: string }): Resource {
  const base = obj.kind ? RESOURCE_BY_KIND.get(obj.kind) : undefined;
  if (!base || !obj.apiVersion) throw new Error(`unsupported object ${obj.apiVersion}/${obj.kind}`);
  const slash = obj.apiVersion.indexOf('/');
  const group = slash < 0 ? '' : obj.apiVersion.slice(0, slash);
  const version = slash < 0 ? obj.apiVersion : obj.apiVersion.slice(slash + 1);
  return { ...base, group, version };
}

export type ObjectInput = string | object | readonly object[];

/** YAML text (multi-document) or objects -> objects with apiVersion/kind, in apply order. */
export function toObjects(input: ObjectInput): Array<KObject & { apiVersion: string; kind: string }> {
  let objs: unknown[];
  if (typeof input === 'string') {
    objs = [];
    for (const doc of parseAllDocuments(input)) {
      if (doc.errors.length) throw new Error(`YAML: ${doc.errors[0]!.message}`);
      const v: unknown = doc.toJS();
      if (v !== null && v !== undefined) objs.push(v);
    }
  } else objs = Array.isArray(input) ? [...(input as unknown[])] : [input];
  const out = objs.map((o) => {
    const x = o as KObject & { apiVersion?: string; kind?: string };
    if (!x.apiVersion || !x.kind || !x.metadata?.name) throw new Error(`object without apiVersion/kind/name`);
    return x as KObject & { apiVersion: string; kind: string };
  });
  return out
    .map((o, i) => ({ o, i }))
    .sort((a, b) => (KIND_ORDER[a.o.kind] ?? 6) - (KIND_ORDER[b.o.kind] ?? 6) || a.i - b.i)
    .map(({ o }) => o);
}

/** Every *.yaml / *.yml of a directory, in name order, as one multi-document text. */
export function readYamlDir(dir: string): string {
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('\n---\n');
}

export type Svc = KObject & {
  spec?: { type?: string; ports?: Array<{ port: number; protocol?: string }> } & Record<string, unknown>;
  status?: {
    loadBalancer?: { ingress?: Array<{ ip?: string }> };
    conditions?: Array<Record<string, string>>;
  };
};

/** The LoadBalancer IPs in a Service's status. */
export function ingressIPs(svc: Svc | undefined): string[] {
  return (svc?.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '').filter(Boolean);
}

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

export interface ClusterOptions {
  /** Speaker nodes, 1…9 (default 2): node<i> at 192.0.2.1<i>, MAC 02:00:00:00:00:1<i>. */
  nodes?: number;
  /** Ports every backend listens on (HTTP, answers with the node name; default [80]). */
  backendPorts?: number[];
  /** Run BFD on the router (for BGPPeers with a bfdProfile). */
  routerBfd?: boolean;
  /** Extra arguments for every speaker / the controller. */
  speakerArgs?: string[];
  controllerArgs?: string[];
  /** Progress messages ("control plane up in 6.1 s"). */
  onProgress?: (msg: string) => void;
}

export interface ClusterNode {
  /** Kubernetes node name: node1, node2, … */
  name: string;
  index: number;
  ns: string;
  /** The node's LAN interface. */
  ifname: string;
  v4: string;
  v6: string;
  mac: string;
  /** The speaker's --frr-dir = the reloader's --dir. */
  frrDir: string;
  frr?: FrrInstance;
  reloader?: ClusterProcess;
  speaker?: ClusterProcess;
  /** Every speaker process started on this node (the current one last). */
  speakers: ClusterProcess[];
  backend?: ClusterProcess;
  relay?: ClusterProcess;
}

export interface ClusterHostInfo {
  ns: string;
  /** LAN interface (on the bridge). */
  lanIf: string;
  /** Interface of the router <-> client link. */
  extIf: string;
  v4: string;
  v6: string;
  extV4: string;
  mac: string;
}

const MINIMAL_FRR_CONF = 'frr defaults traditional\nlog stdout informational\n';
const FIELD_MANAGER = 'ironlb-e2e';
export const sleep = (ms: number): Promise<void> => new Promise<void>((r) => setTimeout(r, ms));

/** BIRD: one eBGP session per node (fast timers, no graceful restart), ECMP into the kernel. */
export function routerBirdConf(nodes: readonly { name: string; v4: string }[], bfd: boolean): string {
  const fast =
    'hold time 9; keepalive time 3; connect retry time 2; error wait time 1,5; connect delay time 1;';
  return [
    `router id ${ROUTER_V4};`,
    'protocol device { scan time 10; }',
    'protocol kernel kernel4 { ipv4 { export all; }; merge paths on limit 16; }',
    ...(bfd
      ? ['protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }']
      : []),
    `template bgp nodes { local ${ROUTER_V4} as ${ROUTER_ASN}; ${fast} graceful restart off;${bfd ? ' bfd on;' : ''}`,
    '  ipv4 { import all; export none; }; }',
    ...nodes.map((n) => `protocol bgp ${n.name} from nodes { neighbor ${n.v4} as ${NODE_ASN}; }`),
    '',
  ].join('\n');
}

export class Cluster {
  cp!: ControlPlane;
  /** Admin client (the harness's own connections). */
  api!: KubeClient;
  topo!: Topology;
  bird!: BirdInstance;
  controller!: ClusterProcess;
  readonly nodes: ClusterNode[] = [];
  client!: ClusterHostInfo;
  router!: ClusterHostInfo;
  /** Private temp dir: the relay socket, the nodes' FRR dirs. */
  readonly dir: string;
  readonly timings: Record<string, number> = {};
  private relayServer: net.Server | undefined;
  private readonly relaySockets = new Set<net.Socket>();
  private services: Informer<Svc> | undefined;
  /** IPs the kube-proxy stand-in has put on lo, per node. */
  private readonly vipsOnLo = new Map<string, Set<string>>();
  private vipChain: Promise<void> = Promise.resolve();
  private vipErrors: string[] = [];
  private readonly unregisterExit: () => void;
  private stopped = false;

  private constructor(readonly opts: ClusterOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'ironlb-e2e-'));
    this.unregisterExit = registerExitCleanup(`e2e cluster ${this.dir}`, () => {
      this.relayServer?.close();
      rmSync(this.dir, { recursive: true, force: true });
    });
  }

  /** Why the cluster cannot run here (not root, no netns, binaries missing), or null. */
  static async unavailableReason(): Promise<string | null> {
    const k8s = k8sUnavailableReason();
    if (k8s) return k8s;
    const lab = await labUnavailableReason();
    if (lab) return lab;
    if (!existsSync(join(FRR_SBIN, 'zebra'))) return `FRR is not installed (${FRR_SBIN}/zebra)`;
    const bird = await run(['sh', '-c', 'command -v bird && command -v birdc && command -v arping'], {
      timeoutMs: 5000,
    });
    if (bird.code !== 0) return 'bird/birdc/arping not installed (scripts/install-lab-deps.sh)';
    return null;
  }

  private progress(msg: string): void {
    this.opts.onProgress?.(msg);
  }

  /** Builds and starts everything; on failure stops whatever was started and rethrows. */
  static async start(opts: ClusterOptions = {}): Promise<Cluster> {
    const n = opts.nodes ?? 2;
    if (n < 1 || n > 9) throw new Error('Cluster: 1…9 nodes');
    const c = new Cluster(opts);
    try {
      await c.launch(n);
    } catch (e) {
      const logs = c.dump(30);
      await c.stop().catch(() => undefined);
      if (e instanceof Error) e.message += `\n--- cluster logs ---\n${logs.slice(-6000)}`;
      throw e;
    }
    return c;
  }

  private async timed<T>(what: string, f: () => Promise<T>): Promise<T> {
    const t0 = Date.now();
    const v = await f();
    this.timings[what] = Date.now() - t0;
    this.progress(`${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return v;
  }

  private async launch(n: number): Promise<void> {
    // The control plane and the network come up in parallel (each cleans up after itself).
    const [cp, topo] = await Promise.allSettled([
      this.timed('control plane', () => ControlPlane.start()),
      this.timed('network namespaces', () => this.buildNetwork(n)),
    ]);
    if (cp.status === 'fulfilled') this.cp = cp.value;
    if (topo.status === 'rejected') throw topo.reason;
    if (cp.status === 'rejected') throw cp.reason;
    this.api = await KubeClient.fromKubeConfig(this.cp.kubeconfigPath);

    await this.timed('namespace, Nodes, BIRD', async () => {
      await this.apply([
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: METALLB_NS } },
        ...this.nodes.map((x) => ({
          apiVersion: 'v1',
          kind: 'Node',
          metadata: {
            name: x.name,
            labels: {
              'kubernetes.io/hostname': x.name,
              'kubernetes.io/os': 'linux',
              'topology.kubernetes.io/zone': `zone-${x.index}`,
            },
          },
        })),
      ]);
      this.bird = await startBird({
        ns: this.router.ns,
        config: routerBirdConf(this.nodes, this.opts.routerBfd ?? false),
      });
    });
    await this.startRelayServer();
    await this.timed('nodes (relay, FRR, reloader, speaker, backend)', () =>
      Promise.all(this.nodes.map((x) => this.startNode(x))),
    );
    await this.timed('controller', async () => {
      this.controller = await ClusterProcess.start('controller', [
        process.execPath,
        IRONLB_BIN,
        'controller',
        '--kubeconfig',
        this.cp.kubeconfigPath,
        // No metrics/health/webhook listeners: the controller runs in the host's namespace.
        '--port',
        '0',
        '--health-probe-port',
        '0',
        '--webhook-mode',
        'disabled',
        ...(this.opts.controllerArgs ?? []),
      ]);
      await this.controller.waitMsg('controller started', { timeoutMs: 30_000 });
    });
    // kube-proxy stand-in.
    this.services = new Informer<Svc>(this.api, RESOURCES.services, { log: silentLogger });
    this.services.onEvent(() => this.scheduleVipSync());
    await this.services.start();
    this.scheduleVipSync();
  }

  // -------------------------------------------------------------------------------- network

  private async buildNetwork(n: number): Promise<void> {
    const hosts: HostSpec[] = [
      { name: 'rt', v4: ROUTER_V4, v6: ROUTER_V6, sysctls: { 'net.ipv4.fib_multipath_hash_policy': '1' } },
      { name: 'c', v4: CLIENT_V4, v6: CLIENT_V6, sysctls: CLIENT_SYSCTLS },
    ];
    for (let i = 1; i <= n; i++)
      hosts.push({ name: `n${i}`, v4: nodeV4(i), v6: nodeV6(i), sysctls: NODE_SYSCTLS });
    this.topo = await Topology.create({ hosts });
    const setMac = (ns: string, ifname: string, mac: string) =>
      execOk(null, ['ip', '-n', ns, 'link', 'set', 'dev', ifname, 'address', mac]);
    const rt = this.topo.host('rt');
    const cl = this.topo.host('c');
    const p = this.topo.prefix;
    this.router = {
      ns: rt.ns,
      lanIf: rt.ifname,
      extIf: `${p}-rx`,
      v4: ROUTER_V4,
      v6: ROUTER_V6,
      extV4: EXT.router,
      mac: ROUTER_MAC,
    };
    this.client = {
      ns: cl.ns,
      lanIf: cl.ifname,
      extIf: `${p}-cx`,
      v4: CLIENT_V4,
      v6: CLIENT_V6,
      extV4: EXT.client,
      mac: CLIENT_MAC,
    };
    await setMac(rt.ns, rt.ifname, ROUTER_MAC);
    await setMac(cl.ns, cl.ifname, CLIENT_MAC);
    // The client's NUD: first unicast probe after 1 s instead of 5 s (faster failover view).
    await execOk(cl.ns, ['sysctl', '-qw', `net.ipv4.neigh.${cl.ifname}.delay_first_probe_time=1`]);
    // router <-> client link, both ends created straight into their namespaces.
    await execOk(null, [
      'ip',
      'link',
      'add',
      this.router.extIf,
      'netns',
      rt.ns,
      'type',
      'veth',
      'peer',
      'name',
      this.client.extIf,
      'netns',
      cl.ns,
    ]);
    await execOk(null, [
      'ip',
      '-n',
      rt.ns,
      'addr',
      'add',
      `${EXT.router}/${EXT.prefixLen}`,
      'dev',
      this.router.extIf,
    ]);
    await execOk(null, [
      'ip',
      '-n',
      cl.ns,
      'addr',
      'add',
      `${EXT.client}/${EXT.prefixLen}`,
      'dev',
      this.client.extIf,
    ]);
    await execOk(null, ['ip', '-n', rt.ns, 'link', 'set', this.router.extIf, 'up']);
    await execOk(null, ['ip', '-n', cl.ns, 'link', 'set', this.client.extIf, 'up']);
    // The client is "on the internet": everything not on its LAN goes through the router.
    await execOk(null, ['ip', '-n', cl.ns, 'route', 'add', 'default', 'via', EXT.router]);
    for (let i = 1; i <= n; i++) {
      const h = this.topo.host(`n${i}`);
      await setMac(h.ns, h.ifname, nodeMac(i));
      // Answers to clients off the LAN go through the router.
      await execOk(null, ['ip', '-n', h.ns, 'route', 'add', 'default', 'via', ROUTER_V4]);
      const frrDir = join(this.dir, `node${i}`, 'frr');
      await mkdir(frrDir, { recursive: true, mode: 0o700 });
      this.nodes.push({
        name: `node${i}`,
        index: i,
        ns: h.ns,
        ifname: h.ifname,
        v4: nodeV4(i),
        v6: nodeV6(i),
        mac: nodeMac(i),
        frrDir,
        speakers: [],
      });
      this.vipsOnLo.set(`node${i}`, new Set());
    }
  }

  /** Adds an on-link route on the client's LAN interface (an L2 pool outside 192.0.2.0/24). */
  async clientOnLink(prefix: string): Promise<void> {
    await execOk(null, ['ip', '-n', this.client.ns, 'route', 'replace', prefix, 'dev', this.client.lanIf]);
  }

  // -------------------------------------------------------------------------------- apiserver relay

  private get relaySock(): string {
    return join(this.dir, 'apiserver.sock');
  }

  private get apiPort(): number {
    return Number(new URL(this.cp.server).port);
  }

  /** unix socket -> 127.0.0.1:<apiserver port> in the root namespace (in this process). */
  private async startRelayServer(): Promise<void> {
    const port = this.apiPort;
    const srv = net.createServer((c) => {
      const u = net.connect(port, '127.0.0.1');
      this.relaySockets.add(c).add(u);
      const close = () => {
        c.destroy();
        u.destroy();
        this.relaySockets.delete(c);
        this.relaySockets.delete(u);
      };
      for (const s of [c, u]) {
        s.on('error', close);
        s.on('close', close);
      }
      c.pipe(u);
      u.pipe(c);
    });
    await new Promise<void>((res, rej) => {
      srv.once('error', rej);
      srv.listen(this.relaySock, () => res());
    });
    this.relayServer = srv;
  }

  // -------------------------------------------------------------------------------- nodes

  private async startNode(x: ClusterNode): Promise<void> {
    x.relay = await ClusterProcess.start(`apiserver relay ${x.name}`, [process.execPath, '-e', RELAY_JS], {
      ns: x.ns,
      env: { RELAY_PORT: String(this.apiPort), RELAY_SOCK: this.relaySock },
    });
    x.backend = await ClusterProcess.start(`backend ${x.name}`, [process.execPath, '-e', BACKEND_JS], {
      ns: x.ns,
      env: { BACKEND_NAME: x.name, BACKEND_PORTS: (this.opts.backendPorts ?? [80]).join(',') },
    });
    await x.relay.waitLine((l) => l.raw === 'listening', { timeoutMs: 20_000 });
    await x.backend.waitLine((l) => l.raw === 'listening', { timeoutMs: 20_000 });
    x.frr = await startFrr({ ns: x.ns, name: x.ns, hostname: x.name, config: MINIMAL_FRR_CONF });
    // The reloader's vtysh must see the daemons' UTS hostname (lab gotcha G1).
    x.reloader = await ClusterProcess.start(
      `frr-reloader ${x.name}`,
      [
        'unshare',
        '--uts',
        'sh',
        '-c',
        'hostname "$0" && exec "$@"',
        x.name,
        process.execPath,
        IRONLB_BIN,
        'frr-reloader',
        '--dir',
        x.frrDir,
        '--pathspace',
        x.ns,
      ],
      { ns: x.ns },
    );
    await x.reloader.waitMsg('FRR reloader started', { timeoutMs: 30_000 });
    await this.startSpeaker(x.name);
  }

  node(name: string): ClusterNode {
    const x = this.nodes.find((n) => n.name === name);
    if (!x) throw new Error(`no node ${name}`);
    return x;
  }

  nodeByMac(mac: string | undefined): ClusterNode | undefined {
    return this.nodes.find((n) => n.mac === mac?.toLowerCase());
  }

  /**
   * Starts `ironlb speaker --source k8s` in the node's namespace (a new process; the old one must
   * be stopped); resolves once it logged "speaker started" (its informers have listed).
   */
  async startSpeaker(name: string): Promise<ClusterProcess> {
    const x = this.node(name);
    if (x.speaker?.running) throw new Error(`speaker ${name} is already running (pid ${x.speaker.pid})`);
    const seeds = this.nodes
      .filter((o) => o !== x)
      .map((o) => `${o.v4}:${MEMBERSHIP_PORT}`)
      .join(',');
    const p = await ClusterProcess.start(
      `speaker ${name}#${x.speakers.length}`,
      [
        process.execPath,
        IRONLB_BIN,
        'speaker',
        '--source',
        'k8s',
        '--kubeconfig',
        this.cp.kubeconfigPath,
        '--node',
        name,
        '--hostname',
        name,
        '--frr-dir',
        x.frrDir,
        '--l2',
        '--ml-bind-addr',
        x.v4,
        '--ml-bind-port',
        String(MEMBERSHIP_PORT),
        ...(seeds ? ['--ml-seeds', seeds] : []),
        ...(this.opts.speakerArgs ?? []),
      ],
      { ns: x.ns },
    );
    x.speaker = p;
    x.speakers.push(p);
    await p.waitMsg('speaker started', { timeoutMs: 60_000 });
    return p;
  }

  /** Stops the node's speaker (SIGTERM: membership leave, helper quit; SIGKILL after `graceMs`). */
  async stopSpeaker(name: string, graceMs = 8000): Promise<StopResult> {
    return (await this.node(name).speaker?.stop(graceMs)) ?? { graceful: true, ms: 0 };
  }

  // -------------------------------------------------------------------------------- objects

  /** Server-side apply of every object (YAML text or objects); namespaces first, Services last. */
  async apply(input: ObjectInput): Promise<KObject[]> {
    const out: KObject[] = [];
    for (const obj of toObjects(input)) {
      const r = resourceOf(obj);
      const ns = r.namespaced ? (obj.metadata.namespace ?? 'default') : undefined;
      const body = { ...obj, metadata: { ...obj.metadata, ...(ns ? { namespace: ns } : {}) } };
      out.push(
        await this.api.patch(r, ns, obj.metadata.name, body, {
          apply: { fieldManager: FIELD_MANAGER, force: true },
        }),
      );
    }
    return out;
  }

  /** Deletes every object named in the input (absent ones are fine), Services first. */
  async delete(input: ObjectInput): Promise<void> {
    for (const obj of toObjects(input).reverse()) {
      const r = resourceOf(obj);
      const ns = r.namespaced ? (obj.metadata.namespace ?? 'default') : undefined;
      try {
        await this.api.delete(r, ns, obj.metadata.name);
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 404)) throw e;
      }
    }
  }

  /** A Service from the harness's watch cache. */
  service(namespace: string, name: string): Svc | undefined {
    return this.services?.get(`${namespace}/${name}`);
  }

  /** Every Service in the watch cache. */
  allServices(): Svc[] {
    return this.services?.list() ?? [];
  }

  /** Waits until the Service has `count` (default ≥ 1) IPs in its status; resolves with them. */
  async waitServiceIPs(
    namespace: string,
    name: string,
    o: { timeoutMs?: number; count?: number } = {},
  ): Promise<string[]> {
    return waitFor(
      () => {
        const ips = ingressIPs(this.service(namespace, name));
        return (o.count === undefined ? ips.length > 0 : ips.length === o.count) ? ips : null;
      },
      { timeoutMs: o.timeoutMs ?? 20_000, intervalMs: 20, what: `${namespace}/${name} gets an IP` },
    );
  }

  // -------------------------------------------------------------------------------- kube-proxy stand-in

  private scheduleVipSync(): void {
    this.vipChain = this.vipChain
      .then(() => this.syncVips())
      .catch((e: unknown) => {
        this.vipErrors.push(e instanceof Error ? e.message : String(e));
      });
  }

  /** Every LoadBalancer IP on lo of every node, nothing else (kube-proxy IPVS does this). */
  private async syncVips(): Promise<void> {
    if (this.stopped || !this.services) return;
    const want = new Set<string>();
    for (const s of this.services.list())
      if (s.spec?.type === 'LoadBalancer') for (const ip of ingressIPs(s)) want.add(ip);
    for (const x of this.nodes) {
      const have = this.vipsOnLo.get(x.name)!;
      const add = [...want].filter((ip) => !have.has(ip));
      const del = [...have].filter((ip) => !want.has(ip));
      await setVipsOnLo(x.ns, add, true);
      for (const ip of add) have.add(ip);
      await setVipsOnLo(x.ns, del, false);
      for (const ip of del) have.delete(ip);
    }
  }

  /** Resolves when the kube-proxy stand-in has caught up with the watch cache. */
  async vipsSynced(): Promise<string[]> {
    this.scheduleVipSync();
    await this.vipChain;
    return [...(this.vipsOnLo.get(this.nodes[0]!.name) ?? [])];
  }

  // -------------------------------------------------------------------------------- observations

  /** BIRD's paths for `prefix` (one per BGP session), as { protocol, gateways }. */
  async routerPaths(
    prefix: string,
  ): Promise<Array<{ protocol: string; gateways: string[]; route: BirdRoute }>> {
    const routes = await this.bird.showRoutes(prefix);
    return routes
      .filter((r) => r.prefix === prefix)
      .map((r) => ({
        protocol: r.protocol,
        gateways: r.nextHops.map((h) => h.gateway ?? '').filter(Boolean),
        route: r,
      }));
  }

  /** The router's kernel next hops for `prefix` (ECMP: several), sorted. */
  async routerKernelNextHops(prefix: string): Promise<string[]> {
    const fam = prefix.includes(':') ? '-6' : '-4';
    const out = await execOk(null, ['ip', '-n', this.router.ns, fam, '-j', 'route', 'show', prefix]);
    const routes = JSON.parse(out.trim() || '[]') as Array<{
      gateway?: string;
      nexthops?: Array<{ gateway?: string }>;
    }>;
    return routes
      .flatMap((r) =>
        r.nexthops?.length ? r.nexthops.map((h) => h.gateway ?? '') : r.gateway ? [r.gateway] : [],
      )
      .sort();
  }

  /** Waits until BIRD's session with every node is Established. */
  async waitBgpEstablished(timeoutMs = 60_000): Promise<void> {
    await waitFor(
      async () => {
        const ps = await this.bird.showProtocols();
        return this.nodes.every((x) => ps.find((p) => p.name === x.name)?.bgpState === 'Established');
      },
      { timeoutMs, intervalMs: 250, what: 'BIRD sessions with every node Established' },
    );
  }

  /** arping from the client's LAN interface: the MACs that answered, and whose they are. */
  async arpOwners(ip: string, count = 2): Promise<{ macs: string[]; nodes: string[] }> {
    const r = await arping(this.client.ns, this.client.lanIf, ip, { count, deadlineS: count + 1 });
    const macs = [...new Set(r.macs)];
    return { macs, nodes: macs.map((m) => this.nodeByMac(m)?.name ?? m) };
  }

  /** The client's neighbour entry for an IP on its LAN interface. */
  neighbour(ip: string): Promise<NeighEntry | null> {
    return neighEntry(this.client.ns, ip, this.client.lanIf);
  }

  /** `count` HTTP GETs from the client namespace (sequential, one connection each). */
  async http(url: string, count = 1, timeoutMs = 3000): Promise<HttpResult[]> {
    const r = await exec(
      this.client.ns,
      [process.execPath, '-e', HTTP_CLIENT_JS, url, String(count), String(timeoutMs)],
      { timeoutMs: count * (timeoutMs + 1000) + 10_000 },
    );
    if (r.code !== 0) throw new Error(`HTTP client in ${this.client.ns} failed: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as HttpResult[];
  }

  /** `http://ip:port/` (brackets for IPv6). */
  static url(ip: string, port: number): string {
    return `http://${ip.includes(':') ? `[${ip}]` : ip}:${port}/`;
  }

  /** Speaker log records with this msg on `node` (every process generation). */
  speakerRecords(node: string, msg: string, since = 0): Record<string, unknown>[] {
    return this.node(node).speakers.flatMap((p) => p.records(msg, since));
  }

  /** The last `tail` lines of every process, for failure reports. */
  dump(tail = 40): string {
    const parts: string[] = [];
    const add = (p: ClusterProcess | undefined) => {
      if (p)
        parts.push(
          `==== ${p.what} (pid ${p.pid}, ${p.running ? 'running' : JSON.stringify(p.exit)}) ====`,
          p.tail(tail),
        );
    };
    add(this.controller);
    for (const x of this.nodes) {
      for (const s of x.speakers) add(s);
      add(x.reloader);
      add(x.relay);
      add(x.backend);
    }
    if (this.vipErrors.length)
      parts.push(`==== kube-proxy stand-in errors ====`, ...this.vipErrors.slice(-10));
    return parts.join('\n');
  }

  // -------------------------------------------------------------------------------- teardown

  /** Stops everything this harness started (by PID), deletes the namespaces. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const errors: unknown[] = [];
    const step = async (f: () => unknown) => {
      try {
        await f();
      } catch (e) {
        errors.push(e);
      }
    };
    await step(() => this.services?.stop());
    await step(() => this.vipChain);
    await step(() => this.controller?.stop());
    await Promise.all(this.nodes.map((x) => step(() => x.speaker?.stop())));
    for (const x of this.nodes) {
      await step(() => x.reloader?.stop());
      await step(() => x.frr?.stop());
      await step(() => x.backend?.stop());
      await step(() => x.relay?.stop());
    }
    await step(() => this.bird?.stop());
    await step(() => this.topo?.teardown());
    for (const s of this.relaySockets) s.destroy();
    await step(
      () =>
        new Promise<void>((res) => {
          if (!this.relayServer) return res();
          this.relayServer.close(() => res());
        }),
    );
    await step(() => this.api?.close());
    await step(() => this.cp?.stop());
    rmSync(this.dir, { recursive: true, force: true });
    this.unregisterExit();
    if (errors.length) throw errors[0];
  }
}

export { REPO_ROOT };
