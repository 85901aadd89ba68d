/**
 * A real Kubernetes control plane for integration tests: etcd and kube-apiserver, built from the Go
 * modules pinned in test/k8s-bin by scripts/build-k8s-bins.sh, on loopback only, in a fresh temp
 * dir per start. No controllers run (no controller-manager, no scheduler, no kubelet): see
 * README.md for what that means. Plain TypeScript, no jest imports.
 *
 *   const cp = await ControlPlane.start();        // installs deploy/crds, waits until served
 *   const r = await cp.request('GET', '/apis/metallb.io/v1beta1/namespaces/x/ipaddresspools');
 *   await cp.restartApiserver();                   // same etcd, same port
 *   await cp.stop();
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { registerExitCleanup } from '../lab/cleanup.js';
import { isAlive, procArgv, signal } from '../lab/proc.js';

// ---------------------------------------------------------------------------------------------
// Finding the binaries (same key and cache roots as scripts/build-k8s-bins.sh)
// ---------------------------------------------------------------------------------------------

/** Files whose bytes, concatenated in this order, are hashed into the cache key. */
export const K8S_PIN_FILES = ['apiserver/go.mod', 'apiserver/go.sum', 'etcd/go.mod', 'etcd/go.sum'] as const;

/** The repository root: the nearest folder above this file with package.json and test/k8s-bin. */
export function repoRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = resolve(from);
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'test', 'k8s-bin'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the ironlb repository root above ${from}`);
    dir = parent;
  }
}

/** First 16 hex digits of SHA-256(apiserver/go.mod ‖ apiserver/go.sum ‖ etcd/go.mod ‖ etcd/go.sum). */
export function k8sBinKey(root: string = repoRoot()): string {
  const h = createHash('sha256');
  for (const f of K8S_PIN_FILES) h.update(readFileSync(join(root, 'test', 'k8s-bin', f)));
  return h.digest('hex').slice(0, 16);
}

/**
 * Cache roots searched, in order: $IRONLB_CACHE alone when set; otherwise /var/cache/ironlb, then
 * ${XDG_CACHE_HOME:-~/.cache}/ironlb (the build script uses the first writable one).
 */
export function k8sCacheRoots(): string[] {
  const env = process.env.IRONLB_CACHE;
  if (env) return [env];
  return ['/var/cache/ironlb', join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ironlb')];
}

export interface K8sBinaries {
  dir: string;
  kubeApiserver: string;
  etcd: string;
}

/**
 * Where the binaries for the current pin are, or null when they are not built.
 * $IRONLB_K8S_BIN_DIR (a folder holding kube-apiserver and etcd) overrides the cache lookup.
 */
export function findK8sBinaries(root: string = repoRoot()): K8sBinaries | null {
  const override = process.env.IRONLB_K8S_BIN_DIR;
  const key = k8sBinKey(root);
  const dirs = override ? [override] : k8sCacheRoots().map((r) => join(r, 'k8s-bin', key));
  for (const dir of dirs) {
    const b = { dir, kubeApiserver: join(dir, 'kube-apiserver'), etcd: join(dir, 'etcd') };
    if (existsSync(b.kubeApiserver) && existsSync(b.etcd) && (override || existsSync(join(dir, '.complete'))))
      return b;
  }
  return null;
}

/** Why the control plane cannot start here (binaries not built), or null when it can. */
export function k8sUnavailableReason(root: string = repoRoot()): string | null {
  if (findK8sBinaries(root)) return null;
  const where =
    process.env.IRONLB_K8S_BIN_DIR ?? k8sCacheRoots().map((r) => join(r, 'k8s-bin', k8sBinKey(root)));
  return `kube-apiserver/etcd not built (looked in ${String(where)}); run: bash scripts/build-k8s-bins.sh`;
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits for `p` or `ms`, whichever comes first, without leaving a timer behind. True if `p` won. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true as const), t]);
  } finally {
    clearTimeout(timer);
  }
}

/** Distinct free TCP ports on 127.0.0.1 (held open together, then released). */
async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise<void>((res, rej) => {
        s.once('error', rej);
        s.listen(0, '127.0.0.1', () => res());
      });
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
  }
}

function tail(path: string, lines = 30): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function which(cmd: string): string | null {
  for (const d of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = join(d || '.', cmd);
    if (existsSync(p)) return p;
  }
  return null;
}

/** The children get the parent's environment without proxies (everything here is loopback). */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(https?|all|no)_proxy$/i.test(k)) delete env[k];
  return env;
}

export interface ApiResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The body parsed as JSON (throws on a non-JSON body). */
  json<T = unknown>(): T;
}

/** One HTTP(S) request; the body (an object is sent as JSON) and the reply are buffered. */
function httpRequest(
  url: string,
  opts: {
    method?: string;
    headers?: Record<string, string>;
    body?: unknown;
    agent?: http.Agent;
    timeoutMs?: number;
  } = {},
): Promise<ApiResponse> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  let payload: string | undefined;
  const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
  if (opts.body !== undefined) {
    payload = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  return new Promise<ApiResponse>((res, rej) => {
    const req = mod.request(
      u,
      { method: opts.method ?? 'GET', headers, agent: opts.agent, timeout: opts.timeoutMs ?? 30_000 },
      (resp) => {
        const chunks: Buffer[] = [];
        resp.on('data', (c: Buffer) => chunks.push(c));
        resp.on('error', rej);
        resp.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          res({
            status: resp.statusCode ?? 0,
            headers: resp.headers,
            body,
            json: <T>() => JSON.parse(body) as T,
          });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${opts.method ?? 'GET'} ${url}: timed out`)));
    req.on('error', rej);
    req.end(payload);
  });
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

const SETPRIV = which('setpriv');

class Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  exitInfo: string | null = null;
  readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    readonly exe: string,
    args: string[],
    readonly logPath: string,
    cwd: string,
  ) {
    const fd = openSync(logPath, 'a');
    // setpriv --pdeathsig: the kernel SIGKILLs the child when this process dies without cleanup
    // (a jest worker killed with SIGKILL), so no apiserver/etcd is ever orphaned. It execs, so the
    // PID is the server's own.
    const [cmd, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'SIGKILL', '--', exe, ...args]] : [exe, args];
    try {
      this.child = spawn(cmd, argv, { stdio: ['ignore', fd, fd], cwd, env: childEnv() });
    } finally {
      closeSync(fd);
    }
    this.exited = new Promise<void>((res) => {
      this.child.once('exit', (code, sig) => {
        this.exitInfo = sig ? `killed by ${sig}` : `exited with code ${code}`;
        res();
      });
      this.child.once('error', (e) => {
        this.exitInfo = `failed to start: ${e.message}`;
        res();
      });
    });
    if (this.child.pid === undefined) throw new Error(`${name}: spawn ${exe} failed`);
    this.pid = this.child.pid;
  }

  get running(): boolean {
    return this.exitInfo === null && isAlive(this.pid);
  }

  /** Our process (still) has this PID: its argv mentions our binary (or setpriv before exec). */
  private isOurs(): boolean {
    const argv = procArgv(this.pid);
    return argv !== null && (argv[0] === this.exe || (argv[0] === SETPRIV && argv.includes(this.exe)));
  }

  killSync(): void {
    if (this.exitInfo === null && this.isOurs()) signal(this.pid, 'SIGKILL');
  }

  /** SIGTERM, then SIGKILL after graceMs. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.exitInfo !== null) return;
    if (!this.isOurs()) {
      await within(this.exited, 1000);
      return;
    }
    signal(this.pid, 'SIGTERM');
    if (!(await within(this.exited, graceMs))) {
      if (this.isOurs()) signal(this.pid, 'SIGKILL');
      await within(this.exited, 5000);
    }
  }

  describeDeath(): string {
    return `${this.name} (pid ${this.pid}) ${this.exitInfo ?? 'died'}; last log lines (${this.logPath}):\n${tail(this.logPath)}`;
  }
}

class StartupError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'ControlPlaneStartupError';
  }
}

/** Polls `check` until it returns true; fails early (with the log tail) when `proc` dies. */
async function waitUntil(
  proc: Proc,
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
  intervalMs = 100,
): Promise<void> {
  const start = Date.now();
  let last = '';
  for (;;) {
    if (!proc.running) {
      await within(proc.exited, 500);
      const log = tail(proc.logPath, 200);
      throw new StartupError(`${what}: ${proc.describeDeath()}`, /address already in use/i.test(log));
    }
    try {
      if (await check()) return;
      last = '';
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() - start > timeoutMs)
      throw new StartupError(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last})` : ''}; ` +
          `last log lines (${proc.logPath}):\n${tail(proc.logPath)}`,
        false,
      );
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------------------------
// The control plane
// ---------------------------------------------------------------------------------------------

export interface ControlPlaneOptions {
  /** CRD manifests (*.yaml, multi-document allowed) to install; default <repo>/deploy/crds; null: none. */
  crdsDir?: string | null;
  /** Binaries to run; default findK8sBinaries(). */
  binaries?: K8sBinaries;
  /** kube-apiserver --authorization-mode (default RBAC; the admin is in system:masters). */
  authorizationMode?: 'RBAC' | 'AlwaysAllow';
  /** Budget for etcd + apiserver readiness (default 120 000 ms; 2 shared cores are slow). */
  startTimeoutMs?: number;
  /** Appended to the kube-apiserver command line. */
  extraApiserverArgs?: string[];
}

export interface ControlPlaneTimings {
  etcdReadyMs: number;
  apiserverReadyMs: number;
  crdsReadyMs: number;
}

const TMP_PREFIX = 'ironlb-k8s-';

/**
 * Removes temp dirs left by test processes that were SIGKILLed (no cleanup could run; their
 * etcd/apiserver died with them through setpriv --pdeathsig). Only dirs with our prefix whose
 * owner.pid names a process that no longer exists.
 */
function removeStaleDirs(): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir()).filter((f) => f.startsWith(TMP_PREFIX));
  } catch {
    return;
  }
  for (const f of entries) {
    const dir = join(tmpdir(), f);
    let pid: number;
    try {
      pid = Number(readFileSync(join(dir, 'owner.pid'), 'utf8').trim());
    } catch {
      continue;
    }
    if (Number.isInteger(pid) && pid > 0 && !existsSync(`/proc/${pid}`))
      rmSync(dir, { recursive: true, force: true });
  }
}

/** Service IP ranges known only to the apiserver's allocator: never routed, no traffic is sent. */
export const SERVICE_CLUSTER_IP_RANGE = '10.96.0.0/16,fd00:10:96::/112';

/** Matches no object: listing with it starts a watch cache without returning (converting) anything. */
const WARMUP_SELECTOR = encodeURIComponent('ironlb.test/warmup=none');

interface CrdRef {
  name: string;
  group: string;
  plural: string;
  /** Served versions. */
  versions: string[];
  storageVersion: string;
  webhookConversion: boolean;
}

export class ControlPlane {
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** Bearer token of the admin user (group system:masters). */
  readonly token: string;
  /** PEM of the self-signed serving certificate (its own CA). */
  readonly ca: string;
  readonly caPath: string;
  readonly kubeconfigPath: string;
  /** http://127.0.0.1:<port> */
  readonly etcdEndpoint: string;
  /** Temp dir holding certs, etcd data and logs (removed by stop()). */
  readonly dir: string;
  readonly logs: { etcd: string; apiserver: string };
  readonly timings: ControlPlaneTimings = { etcdReadyMs: 0, apiserverReadyMs: 0, crdsReadyMs: 0 };
  /** Names of the CRDs installed at start. */
  crds: string[] = [];

  private etcd: Proc | null = null;
  private apiserver: Proc | null = null;
  private apiserverArgs: string[] = [];
  private agent: https.Agent;
  private crdRefs: CrdRef[] = [];
  private unregisterCleanup: () => void;
  private stopped = false;
  private lastEstablishedAt = 0;

  private constructor(
    readonly binaries: K8sBinaries,
    dir: string,
    private readonly opts: ControlPlaneOptions,
    private readonly ports: { etcdClient: number; etcdPeer: number; secure: number },
  ) {
    this.dir = dir;
    this.server = `https://127.0.0.1:${ports.secure}`;
    this.etcdEndpoint = `http://127.0.0.1:${ports.etcdClient}`;
    this.logs = { etcd: join(dir, 'etcd.log'), apiserver: join(dir, 'kube-apiserver.log') };
    this.caPath = join(dir, 'pki', 'serving.crt');
    this.kubeconfigPath = join(dir, 'kubeconfig');
    this.token = randomBytes(24).toString('hex');
    this.ca = writePki(dir, this.token);
    this.agent = new https.Agent({ ca: this.ca, keepAlive: true });
    writeFileSync(this.kubeconfigPath, kubeconfigYaml(this.server, this.ca, this.token), { mode: 0o600 });
    this.unregisterCleanup = registerExitCleanup(`k8s control plane ${dir}`, () => this.cleanupSync());
  }

  /**
   * Starts etcd and kube-apiserver, waits for /readyz, writes the kubeconfig, installs the CRDs
   * and waits until each is Established and served by discovery. Everything is torn down again
   * when any step fails.
   */
  static async start(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const root = repoRoot();
    const binaries = opts.binaries ?? findK8sBinaries(root);
    if (!binaries) throw new Error(k8sUnavailableReason(root) ?? 'kube-apiserver/etcd not found');
    const timeoutMs = opts.startTimeoutMs ?? 120_000;
    const crdsDir = opts.crdsDir === undefined ? join(root, 'deploy', 'crds') : opts.crdsDir;

    removeStaleDirs();
    for (let attempt = 1; ; attempt++) {
      const [etcdClient, etcdPeer, secure] = (await freePorts(3)) as [number, number, number];
      const dir = mkdtempSync(join(tmpdir(), TMP_PREFIX));
      writeFileSync(join(dir, 'owner.pid'), `${process.pid}\n`);
      let cp: ControlPlane | undefined;
      try {
        cp = new ControlPlane(binaries, dir, opts, { etcdClient, etcdPeer, secure });
        await cp.startEtcd(timeoutMs);
        await cp.startApiserver(timeoutMs);
        if (crdsDir) await cp.installCrds(crdsDir, 60_000);
        return cp;
      } catch (e) {
        if (cp) await cp.stop();
        else rmSync(dir, { recursive: true, force: true });
        // A port taken between freePorts() and the server's bind: try again with new ports.
        if (e instanceof StartupError && e.retryable && attempt < 3) continue;
        throw e;
      }
    }
  }

  /** A request to the apiserver as the admin (JSON in and out; `body` objects are JSON-encoded). */
  request(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse> {
    return httpRequest(`${this.server}${path}`, {
      method,
      body,
      agent: this.agent,
      headers: { authorization: `Bearer ${this.token}`, ...headers },
    });
  }

  get apiserverPid(): number | null {
    return this.apiserver?.running ? this.apiserver.pid : null;
  }

  get etcdPid(): number | null {
    return this.etcd?.running ? this.etcd.pid : null;
  }

  /**
   * Stops kube-apiserver (SIGTERM) and starts it again on the same port and etcd, then waits for
   * /readyz and for the CRDs to be served again. Watches open on the old process end.
   */
  async restartApiserver(): Promise<void> {
    if (this.stopped) throw new Error('control plane is stopped');
    await this.apiserver?.stop();
    this.agent.destroy();
    this.agent = new https.Agent({ ca: this.ca, keepAlive: true });
    await this.startApiserver(this.opts.startTimeoutMs ?? 120_000);
    await this.waitCrdsServed(60_000);
  }

  /** Stops kube-apiserver, then etcd (only the PIDs started here), and removes the temp dir. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.agent.destroy();
    try {
      await this.apiserver?.stop();
      await this.etcd?.stop();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
      this.unregisterCleanup();
    }
  }

  // -------------------------------------------------------------------------------------------

  private cleanupSync(): void {
    this.apiserver?.killSync();
    this.etcd?.killSync();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async startEtcd(timeoutMs: number): Promise<void> {
    const { etcdClient, etcdPeer } = this.ports;
    const client = `http://127.0.0.1:${etcdClient}`;
    const peer = `http://127.0.0.1:${etcdPeer}`;
    const args = [
      '--name=default',
      `--data-dir=${join(this.dir, 'etcd')}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=default=${peer}`,
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ];
    const t0 = Date.now();
    this.etcd = new Proc('etcd', this.binaries.etcd, args, this.logs.etcd, this.dir);
    await waitUntil(this.etcd, 'etcd /health', timeoutMs, async () => {
      const r = await httpRequest(`${client}/health`, { timeoutMs: 2000 });
      return r.status === 200 && r.json<{ health?: string }>().health === 'true';
    });
    this.timings.etcdReadyMs = Date.now() - t0;
  }

  private async startApiserver(timeoutMs: number): Promise<void> {
    if (this.apiserverArgs.length === 0) {
      const pki = join(this.dir, 'pki');
      this.apiserverArgs = [
        `--etcd-servers=${this.etcdEndpoint}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${this.ports.secure}`,
        // The apiserver would advertise the default-route address otherwise (and fail to start
        // without a default route); with reconciler "none" nothing writes it to the
        // `kubernetes` Endpoints, so loopback is accepted.
        '--advertise-address=127.0.0.1',
        '--endpoint-reconciler-type=none',
        `--cert-dir=${pki}`,
        `--tls-cert-file=${join(pki, 'serving.crt')}`,
        `--tls-private-key-file=${join(pki, 'serving.key')}`,
        `--token-auth-file=${join(pki, 'tokens.csv')}`,
        '--anonymous-auth=false',
        `--authorization-mode=${this.opts.authorizationMode ?? 'RBAC'}`,
        '--service-account-issuer=https://kubernetes.default.svc',
        `--service-account-key-file=${join(pki, 'sa.pub')}`,
        `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
        `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
        // No controller-manager: nothing creates the `default` ServiceAccount that admission wants.
        '--disable-admission-plugins=ServiceAccount',
        '--allow-privileged=true',
        ...(this.opts.extraApiserverArgs ?? []),
      ];
    }
    const t0 = Date.now();
    this.apiserver = new Proc(
      'kube-apiserver',
      this.binaries.kubeApiserver,
      this.apiserverArgs,
      this.logs.apiserver,
      this.dir,
    );
    await waitUntil(this.apiserver, 'kube-apiserver /readyz', timeoutMs, async () => {
      const r = await this.request('GET', '/readyz');
      return r.status === 200;
    });
    this.timings.apiserverReadyMs = Date.now() - t0;
  }

  private async installCrds(crdsDir: string, timeoutMs: number): Promise<void> {
    const t0 = Date.now();
    const files = readdirSync(crdsDir)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort();
    for (const f of files) {
      for (const doc of parseAllDocuments(readFileSync(join(crdsDir, f), 'utf8'))) {
        if (doc.errors.length) throw new Error(`${f}: ${doc.errors[0]!.message}`);
        const crd = doc.toJS() as {
          kind?: string;
          metadata: { name: string };
          spec: {
            group: string;
            names: { plural: string };
            versions: { name: string; served: boolean; storage: boolean }[];
            conversion?: { strategy?: string };
          };
        } | null;
        if (!crd || crd.kind !== 'CustomResourceDefinition') continue;
        const r = await this.request('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
        if (r.status !== 201 && r.status !== 409)
          throw new Error(`creating CRD ${crd.metadata.name} from ${f}: HTTP ${r.status}: ${r.body}`);
        this.crdRefs.push({
          name: crd.metadata.name,
          group: crd.spec.group,
          plural: crd.spec.names.plural,
          versions: crd.spec.versions.filter((v) => v.served).map((v) => v.name),
          storageVersion: crd.spec.versions.find((v) => v.storage)?.name ?? crd.spec.versions[0]!.name,
          webhookConversion: crd.spec.conversion?.strategy === 'Webhook',
        });
      }
    }
    this.crds = this.crdRefs.map((c) => c.name);
    await this.waitCrdsServed(timeoutMs);
    // For 2 s after a CRD becomes Established, every create of its resources sleeps 2 s first
    // (apiextensions-apiserver customresource_handler.go, "justCreated", meant for HA apiservers).
    // Let that window pass here, so the tests' first creates are as fast as the others.
    const wait = 2000 - (Date.now() - this.lastEstablishedAt);
    if (wait > 0) await sleep(wait + 50);
    this.timings.crdsReadyMs = Date.now() - t0;
  }

  /** Every installed CRD is Established and discovery lists its plural in each served version. */
  private async waitCrdsServed(timeoutMs: number): Promise<void> {
    const proc = this.apiserver!;
    const wait = (what: string, check: () => Promise<boolean>) =>
      waitUntil(proc, what, timeoutMs, check, 100);
    const one = async (c: CrdRef) => {
      await wait(`CRD ${c.name} Established`, async () => {
        const r = await this.request(
          'GET',
          `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${c.name}`,
        );
        if (r.status !== 200) return false;
        const conds =
          r.json<{ status?: { conditions?: { type: string; status: string }[] } }>().status?.conditions ?? [];
        return conds.some((x) => x.type === 'Established' && x.status === 'True');
      });
      this.lastEstablishedAt = Math.max(this.lastEstablishedAt, Date.now());
      for (const v of c.versions) {
        await wait(`discovery of ${c.group}/${v} ${c.plural}`, async () => {
          const r = await this.request('GET', `/apis/${c.group}/${v}`);
          return (
            r.status === 200 &&
            r.json<{ resources: { name: string }[] }>().resources.some((x) => x.name === c.plural)
          );
        });
        // Each served version has its own watch cache, started on first use; until it is filled,
        // requests get 429 "storage is (re)initializing" (client-go retries, plain HTTPS does not).
        // Start them now. The cache of a non-storage version converts every stored object while
        // filling, so with a conversion webhook that is not running (BGPPeer v1beta1 here) it
        // never fills once objects exist: skip those versions.
        if (c.webhookConversion && v !== c.storageVersion) continue;
        await wait(`watch cache of ${c.plural}.${c.group}/${v}`, async () => {
          const r = await this.request(
            'GET',
            `/apis/${c.group}/${v}/${c.plural}?labelSelector=${WARMUP_SELECTOR}`,
          );
          return r.status !== 429;
        });
      }
    };
    await Promise.all(this.crdRefs.map(one));
  }
}

// ---------------------------------------------------------------------------------------------
// Certificates, keys, kubeconfig
// ---------------------------------------------------------------------------------------------

/**
 * Writes <dir>/pki: a self-signed serving certificate for 127.0.0.1/localhost (openssl; node:crypto
 * cannot create certificates), the service-account key pair (node:crypto), and the token file.
 * Returns the certificate's PEM.
 */
function writePki(dir: string, token: string): string {
  const pki = join(dir, 'pki');
  mkdirSync(pki, { recursive: true, mode: 0o700 });
  const cnf = join(pki, 'openssl.cnf');
  writeFileSync(
    cnf,
    [
      '[req]',
      'distinguished_name = dn',
      'x509_extensions = ext',
      'prompt = no',
      '[dn]',
      'CN = ironlb-test-kube-apiserver',
      '[ext]',
      'basicConstraints = critical,CA:TRUE',
      'keyUsage = critical,digitalSignature,keyEncipherment,keyCertSign',
      'extendedKeyUsage = serverAuth',
      'subjectKeyIdentifier = hash',
      'subjectAltName = IP:127.0.0.1,DNS:localhost',
      '',
    ].join('\n'),
  );
  // EC P-256: instant to generate (RSA 2048 takes a noticeable fraction of a second).
  execFileSync(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-days', '7', '-config', cnf,
      '-keyout', join(pki, 'serving.key'), '-out', join(pki, 'serving.crt'),
    ], // prettier-ignore
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const sa = generateKeyPairSync('ec', {
    namedCurve: 'prime256v1',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  writeFileSync(join(pki, 'sa.key'), sa.privateKey, { mode: 0o600 });
  writeFileSync(join(pki, 'sa.pub'), sa.publicKey);
  writeFileSync(join(pki, 'tokens.csv'), `${token},ironlb-admin,ironlb-admin,"system:masters"\n`, {
    mode: 0o600,
  });
  return readFileSync(join(pki, 'serving.crt'), 'utf8');
}

function kubeconfigYaml(server: string, caPem: string, token: string): string {
  const ca = Buffer.from(caPem).toString('base64');
  return `apiVersion: v1
kind: Config
clusters:
  - name: ironlb-test
    cluster:
      server: ${server}
      certificate-authority-data: ${ca}
users:
  - name: ironlb-admin
    user:
      token: ${token}
contexts:
  - name: ironlb-test
    context:
      cluster: ironlb-test
      user: ironlb-admin
current-context: ironlb-test
`;
}
