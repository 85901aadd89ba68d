/**
 * The real ironlb pipeline inside a lab namespace, for benchmarks and end-to-end tests:
 *
 * - `startPipelineProcess` runs `bin/ironlb <command> …` (speaker, frr-reloader) as a child of
 *   this process under `ip netns exec`, optionally in its own UTS namespace with a hostname (lab
 *   gotcha G1: then every vtysh / frr-reload.py the reloader runs shows that hostname too). Its
 *   JSON log lines are parsed as they come. It is stopped by its PID (SIGTERM, then SIGKILL to
 *   its own process group after a bound, which also ends a frr-reload.py it is waiting for).
 * - `BirdControl` talks to BIRD's control socket directly (what birdc does), so a route can be
 *   polled every 10 ms without starting a birdc process each time.
 * - Helpers to write Service objects (one per file or many per file) atomically.
 *
 * Plain TypeScript, no jest imports. Nothing here creates namespaces or addresses: use Topology.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerExitCleanup } from './cleanup.js';
import { assertDocumentationAddress } from './netns.js';
import { isAlive, procArgv, signal } from './proc.js';
import { waitFor } from './wait.js';

// ---------------------------------------------------------------------------------------------
// ironlb processes
// ---------------------------------------------------------------------------------------------

/** The repository root, found from this file (works from test/lab and from dist/test/lab). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'ironlb') return dir;
    } catch {
      /* not here */
    }
    dir = dirname(dir);
  }
  throw new Error('cannot find the ironlb repository root (package.json)');
}

/** One JSON log record of an ironlb process, with its time as Unix ms. */
export interface LogRecord {
  readonly t: number;
  readonly level: string;
  readonly msg: string;
  readonly [field: string]: unknown;
}

export interface PipelineProcessOptions {
  /** Network namespace to run in. */
  ns: string;
  /** `speaker`, `frr-reloader`, … and its flags. */
  args: string[];
  /** Run in a private UTS namespace with this hostname (and so every vtysh it starts). */
  hostname?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Also append every stderr line to this file. */
  logFile?: string;
  /** Keep at most this many parsed log records (default 200 000; oldest dropped). */
  maxRecords?: number;
}

export class PipelineProcess {
  readonly pid: number;
  /** Parsed JSON log records (stderr), oldest first. */
  readonly records: LogRecord[] = [];
  /** Lines of stderr that were not JSON, and stdout (last 200). */
  readonly otherOutput: string[] = [];
  exitCode: number | null | undefined = undefined;
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private readonly listeners = new Set<(r: LogRecord) => void>();
  private unregisterExit: (() => void) | null;
  private readonly marker: string;

  constructor(opts: PipelineProcessOptions) {
    const bin = join(repoRoot(), 'bin', 'ironlb');
    const cmd = [process.execPath, bin, ...opts.args];
    const argv = opts.hostname
      ? ['unshare', '--uts', 'sh', '-c', 'hostname "$0" && exec "$@"', opts.hostname, ...cmd]
      : cmd;
    if (opts.hostname && !/^[a-z0-9-]{1,63}$/.test(opts.hostname)) throw new Error('bad hostname');
    this.marker = opts.args[0] ?? 'ironlb';
    this.child = spawn('ip', ['netns', 'exec', opts.ns, ...argv], {
      // Own process group: a SIGKILL to -pid also ends the vtysh / frr-reload.py it runs.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...(opts.env ?? {}) },
    });
    if (this.child.pid === undefined) throw new Error(`cannot start ironlb ${opts.args.join(' ')}`);
    this.pid = this.child.pid;
    const max = opts.maxRecords ?? 200_000;
    const logFile = opts.logFile;
    let logChain: Promise<void> = Promise.resolve();
    const onLine = (line: string) => {
      if (logFile) logChain = logChain.then(() => writeFile(logFile, `${line}\n`, { flag: 'a' }));
      let rec: LogRecord | undefined;
      if (line.startsWith('{')) {
        try {
          const o = JSON.parse(line) as Record<string, unknown>;
          rec = { ...o, t: Date.parse(String(o.time)), level: String(o.level), msg: String(o.msg) };
        } catch {
          rec = undefined;
        }
      }
      if (!rec) {
        this.otherOutput.push(line);
        if (this.otherOutput.length > 200) this.otherOutput.shift();
        return;
      }
      this.records.push(rec);
      if (this.records.length > max) this.records.splice(0, this.records.length - max);
      for (const l of this.listeners) l(rec);
    };
    lines(this.child.stderr!, onLine);
    lines(this.child.stdout!, (l) => {
      this.otherOutput.push(l);
      if (this.otherOutput.length > 200) this.otherOutput.shift();
    });
    this.exited = new Promise((res) => {
      this.child.on('exit', (code) => {
        this.exitCode = code;
        res();
      });
    });
    this.unregisterExit = registerExitCleanup(`ironlb ${this.marker} (pid ${this.pid})`, () =>
      this.killGroup('SIGKILL'),
    );
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** Calls `f` for every record logged from now on; returns the unsubscribe function. */
  onRecord(f: (r: LogRecord) => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  /** Resolves with the first record (logged after this call) that matches, or throws after timeoutMs. */
  nextRecord(match: (r: LogRecord) => boolean, timeoutMs: number): Promise<LogRecord> {
    return new Promise((res, rej) => {
      const timer = setTimeout(() => {
        off();
        rej(new Error(`ironlb ${this.marker}: no matching log record within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.onRecord((r) => {
        if (!match(r)) return;
        clearTimeout(timer);
        off();
        res(r);
      });
    });
  }

  /** The process is ours and still the ironlb we started (guards against PID reuse). */
  private isOurs(): boolean {
    const argv = procArgv(this.pid);
    return !!argv && argv.some((a) => a.endsWith('/bin/ironlb')) && argv.includes(this.marker);
  }

  private killGroup(sig: NodeJS.Signals): void {
    if (!this.running) return;
    try {
      process.kill(-this.pid, sig);
    } catch {
      /* gone */
    }
  }

  /** SIGTERM by PID; after `graceMs` SIGKILL to its process group. Idempotent. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.running && isAlive(this.pid) && this.isOurs()) signal(this.pid, 'SIGTERM');
    const done = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), graceMs).unref()),
    ]);
    if (!done) {
      this.killGroup('SIGKILL');
      await Promise.race([this.exited, new Promise((r) => setTimeout(r, 5000).unref())]);
    }
    this.unregisterExit?.();
    this.unregisterExit = null;
  }

  /** SIGKILL to its process group at once (the reloader may be inside a long frr-reload.py). */
  async kill(): Promise<void> {
    this.killGroup('SIGKILL');
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, 5000).unref())]);
    this.unregisterExit?.();
    this.unregisterExit = null;
  }
}

function lines(stream: NodeJS.ReadableStream, onLine: (l: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (l) onLine(l);
    }
  });
  stream.on('end', () => {
    if (buf) onLine(buf);
  });
}

/** Starts `bin/ironlb …` in a namespace (see PipelineProcess). `npm run build` first. */
export function startPipelineProcess(opts: PipelineProcessOptions): PipelineProcess {
  return new PipelineProcess(opts);
}

/** The reloader's status file (src/frr/reloader.ts ReloaderStatusFile), loosely typed. */
export interface ReloaderStatus {
  desiredGeneration: number;
  appliedGeneration: number;
  applying: boolean;
  mode?: string;
  lastError?: string;
  lastTimings?: Record<string, number>;
  counts: Record<string, number>;
  [k: string]: unknown;
}

/** Reads `<dir>/frr-status.json`; undefined while it does not exist or is being replaced. */
export async function readReloaderStatus(
  dir: string,
  file = 'frr-status.json',
): Promise<ReloaderStatus | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, file), 'utf8')) as ReloaderStatus;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// BIRD control socket
// ---------------------------------------------------------------------------------------------

export interface BirdControlReply {
  /** Code of the last line (0 = OK, 8001 = "Network not found", …). */
  code: number;
  /** Reply lines without their codes. */
  lines: string[];
}

/**
 * A persistent client of BIRD's control socket (the protocol birdc speaks): each reply line is
 * `DDDD-text` (more follows), ` text` (continuation) or `DDDD text` (last line). One command at a
 * time; later ones queue.
 */
export class BirdControl {
  private sock: Socket | undefined;
  private buf = '';
  private current: { lines: string[]; resolve: (r: BirdControlReply) => void } | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private greeting: Promise<void> | undefined;

  constructor(readonly socketPath: string) {}

  private connect(): Promise<void> {
    if (this.greeting) return this.greeting;
    this.greeting = new Promise<void>((res, rej) => {
      const s = createConnection(this.socketPath);
      this.sock = s;
      s.setEncoding('utf8');
      let greeted = false;
      s.on('data', (d: string) => {
        this.buf += d;
        let i: number;
        while ((i = this.buf.indexOf('\n')) >= 0) {
          const line = this.buf.slice(0, i);
          this.buf = this.buf.slice(i + 1);
          if (!greeted) {
            if (/^0001 /.test(line)) {
              greeted = true;
              res();
            }
            continue;
          }
          this.onLine(line);
        }
      });
      s.on('error', (e) => {
        if (!greeted) rej(e);
        this.greeting = undefined;
      });
      s.on('close', () => {
        this.greeting = undefined;
        this.sock = undefined;
      });
    });
    return this.greeting;
  }

  private onLine(line: string): void {
    const cur = this.current;
    if (!cur) return;
    const m = /^(\d{4})([ -])(.*)$/.exec(line);
    if (!m) {
      cur.lines.push(line.replace(/^ /, ''));
      return;
    }
    cur.lines.push(m[3]!);
    if (m[2] === ' ') {
      this.current = undefined;
      cur.resolve({ code: Number(m[1]), lines: cur.lines });
    }
  }

  /** Sends one command (e.g. `show route 198.51.100.5/32`) and resolves with its reply. */
  command(cmd: string, timeoutMs = 15_000): Promise<BirdControlReply> {
    if (/[\r\n]/.test(cmd)) return Promise.reject(new Error('one line only'));
    const run = async (): Promise<BirdControlReply> => {
      await this.connect();
      return new Promise<BirdControlReply>((res, rej) => {
        const timer = setTimeout(() => {
          this.current = undefined;
          this.close();
          rej(new Error(`BIRD control socket: no reply to '${cmd}' within ${timeoutMs} ms`));
        }, timeoutMs);
        this.current = {
          lines: [],
          resolve: (r) => {
            clearTimeout(timer);
            res(r);
          },
        };
        this.sock!.write(`${cmd}\n`);
      });
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** True when BIRD has a route for exactly this prefix (`show route <prefix>`). */
  async hasRoute(prefix: string): Promise<boolean> {
    const r = await this.command(`show route ${prefix}`);
    if (r.code === 8001) return false;
    if (r.code >= 8000) throw new Error(`BIRD: show route ${prefix}: ${r.code} ${r.lines.join(' ')}`);
    return r.lines.some((l) => l.startsWith(prefix) || l.includes(` ${prefix} `));
  }

  /** Number of routes a protocol brought into its table (`show route protocol P count`). */
  async routeCount(protocol: string): Promise<number> {
    const r = await this.command(`show route protocol ${protocol} count`);
    if (r.code >= 8000) throw new Error(`BIRD: ${r.code} ${r.lines.join(' ')}`);
    for (const l of r.lines) {
      const m = /^(\d+) of \d+ routes/.exec(l.trim());
      if (m) return Number(m[1]);
    }
    throw new Error(`BIRD: cannot read a route count from: ${r.lines.join(' | ')}`);
  }

  close(): void {
    this.sock?.destroy();
    this.sock = undefined;
    this.greeting = undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Objects for the speaker's directory source
// ---------------------------------------------------------------------------------------------

/** A LoadBalancer Service whose status holds `ip` (what the controller would have written). */
export function serviceYaml(name: string, ip: string, namespace = 'default'): string {
  assertDocumentationAddress(ip);
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name)) throw new Error(`bad Service name ${name}`);
  return [
    'apiVersion: v1',
    'kind: Service',
    `metadata: {name: ${name}, namespace: ${namespace}}`,
    'spec: {type: LoadBalancer, ports: [{port: 80, protocol: TCP}]}',
    `status: {loadBalancer: {ingress: [{ip: '${ip}'}]}}`,
    '',
  ].join('\n');
}

/** Writes `text` to `dir/name` through a hidden temp file and a rename (the speaker never reads half a file). */
export async function writeAtomic(dir: string, name: string, text: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${name}.tmp`);
  await writeFile(tmp, text, { mode: 0o644 });
  await rename(tmp, join(dir, name));
}

/** Removes `dir/name` (no error when it is gone). */
export function removeFile(dir: string, name: string): Promise<void> {
  return rm(join(dir, name), { force: true });
}

/** Polls until `f` is truthy, like waitFor, but returns the elapsed ms (or null after timeoutMs). */
export async function timeUntil(
  f: () => boolean | Promise<boolean>,
  opts: { timeoutMs: number; intervalMs?: number; since?: number },
): Promise<number | null> {
  const start = opts.since ?? Date.now();
  try {
    await waitFor(f, {
      timeoutMs: Math.max(0, opts.timeoutMs - (Date.now() - start)),
      intervalMs: opts.intervalMs ?? 10,
    });
    return Date.now() - start;
  } catch {
    return null;
  }
}
