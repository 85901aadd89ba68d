/**
 * Driver for the native L2 helper (native/ironlb-l2): spawns it, speaks its JSON-lines protocol
 * (native/README.md), turns its events into typed callbacks and promises, and restarts it with
 * back-off when it dies, re-sending the owned set it had. Decisions (who owns which IP, when to
 * announce, what a conflict means) stay with the caller; this class only transports them.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

/** The part of src/util/log.ts's Logger the driver uses. */
export interface HelperLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

// ------------------------------------------------------------------------------------ events

export interface ReadyEvent {
  event: 'ready';
  version: number;
  pid: number;
  /** Answer threads, one per CPU (0: the main thread answers); see native/README.md. */
  workers?: number;
}
export interface SetInterface {
  name: string;
  ifindex: number;
  mac: string;
  ips: number;
}
export interface SetEvent {
  event: 'set';
  id?: number;
  interfaces: SetInterface[];
}
export interface HelperErrorEvent {
  event: 'error';
  id?: number;
  cmd?: string;
  iface?: string;
  message: string;
  fatal?: boolean;
}
/** Another MAC answered for or announced an IP we own. */
export interface ForeignEvent {
  event: 'foreign';
  ip: string;
  mac: string;
  iface: string;
  kind: 'arp-reply' | 'arp-announce' | 'arp-request' | 'na' | 'ns';
}
export interface AnnouncedEvent {
  event: 'announced';
  id?: number;
  ip: string;
  /** 1-based round number. */
  round: number;
  count: number;
  ifaces: string[];
  frames: number;
  /** Wall-clock time of the send, in microseconds since the epoch. */
  tsUs: number;
}
export interface ProbeAnswer {
  mac: string;
  kind: 'arp-reply' | 'arp-announce' | 'arp-probe' | 'na' | 'dad-ns';
}
export interface ProbeResultEvent {
  event: 'probe_result';
  id?: number;
  ip: string;
  iface: string;
  conflict: boolean;
  sent: number;
  answers: ProbeAnswer[];
}
export interface IpStats {
  ip: string;
  iface: string;
  requests: number;
  responses: number;
  gratuitous: number;
  foreign: number;
}
export interface SocketStats {
  iface: string;
  proto: 'arp' | 'ipv6';
  open: boolean;
  packets: number;
  drops: number;
  sendErrors: number;
}
export interface StatsEvent {
  event: 'stats';
  id?: number;
  uptimeMs: number;
  eventsDropped: number;
  badCommands: number;
  ips: IpStats[];
  sockets: SocketStats[];
}
export type HelperEvent =
  ReadyEvent | SetEvent | HelperErrorEvent | ForeignEvent | AnnouncedEvent | ProbeResultEvent | StatsEvent;

export interface ExitInfo {
  pid: number | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Delay before the next start, or null when the driver is stopping. */
  restartInMs: number | null;
}

/** What subscribers can listen to. */
export interface L2HelperEvents {
  /** A helper process is up (each start, including restarts). */
  ready: ReadyEvent;
  /** A helper was restarted after dying and has the owned set again: re-announce what matters. */
  restarted: { pid: number; restarts: number };
  exit: ExitInfo;
  foreign: ForeignEvent;
  /** Every announcement round (round 1 also resolves the announce() promise). */
  announced: AnnouncedEvent;
  /** Every error event of the helper, including those that reject a command. */
  error: HelperErrorEvent;
}

// ------------------------------------------------------------------------------------ options

export interface L2HelperOptions {
  logger: HelperLogger;
  /** The helper binary; default: <package root>/native/build/ironlb-l2. */
  binary?: string;
  /** Prepended to the command line, e.g. ['ip', 'netns', 'exec', ns] (must exec, not fork). */
  launcher?: string[];
  /** Helper flags after the binary, e.g. ['--workers', '0']. */
  args?: string[];
  /** First restart delay; doubles per consecutive failure (default 200 ms). */
  restartInitialMs?: number;
  /** Upper bound of the restart delay (default 30 s). */
  restartMaxMs?: number;
  /** A helper that ran at least this long resets the back-off (default 10 s). */
  restartResetAfterMs?: number;
  /** How long start() waits for `ready` (default 5 s). */
  startTimeoutMs?: number;
  /** How long a command waits for its answer (default 5 s; probes add their own timeout). */
  commandTimeoutMs?: number;
  /** Grace period of stop() before SIGTERM, then SIGKILL (default 2 s each). */
  stopGraceMs?: number;
}

export interface AnnounceOptions {
  /** Rounds (default 1): the first is sent at once, then one every intervalMs. */
  count?: number;
  intervalMs?: number;
  /** Only this interface (default: every interface that owns the IP). */
  iface?: string;
}

/** interface name -> IPs owned there. */
export type OwnedIps = Readonly<Record<string, readonly string[]>>;

export interface OwnedSet {
  interfaces: readonly string[];
  ips: OwnedIps;
}

export class HelperCommandError extends Error {
  constructor(
    message: string,
    readonly event?: HelperErrorEvent,
  ) {
    super(message);
    this.name = 'HelperCommandError';
  }
}

// ------------------------------------------------------------------------------------ binary

/** The nearest directory at or above `from` that holds a package.json. */
export function packageRootFrom(from: string): string {
  let dir = resolve(from);
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${from}`);
    dir = parent;
  }
}

/** <package root>/native/build/ironlb-l2, found from this module's location (src/ or dist/src/). */
export function defaultHelperBinary(): string {
  return join(packageRootFrom(dirname(fileURLToPath(import.meta.url))), 'native', 'build', 'ironlb-l2');
}

// ------------------------------------------------------------------------------------ driver

type Child = ChildProcessByStdio<Writable, Readable, Readable>;

interface Pending {
  expect: HelperEvent['event'];
  resolve: (ev: HelperEvent) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

type Listener<T> = (ev: T) => void;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export class L2Helper {
  private readonly log: HelperLogger;
  private readonly binary: string;
  private readonly launcher: string[];
  private readonly args: string[];
  private readonly restartInitialMs: number;
  private readonly restartMaxMs: number;
  private readonly restartResetAfterMs: number;
  private readonly startTimeoutMs: number;
  private readonly commandTimeoutMs: number;
  private readonly stopGraceMs: number;

  private child: Child | null = null;
  private childPid: number | undefined;
  private childStartedAt = 0;
  private ready = false;
  private wanted = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private failures = 0;
  private restartCount = 0;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Map<keyof L2HelperEvents, Set<Listener<never>>>();
  private exited: Promise<void> = Promise.resolve();
  /** The set the helper has accepted (re-sent after a restart). */
  private applied: OwnedSet = { interfaces: [], ips: {} };

  constructor(opts: L2HelperOptions) {
    this.log = opts.logger;
    this.binary = opts.binary ?? defaultHelperBinary();
    this.launcher = opts.launcher ?? [];
    this.args = opts.args ?? [];
    this.restartInitialMs = opts.restartInitialMs ?? 200;
    this.restartMaxMs = opts.restartMaxMs ?? 30_000;
    this.restartResetAfterMs = opts.restartResetAfterMs ?? 10_000;
    this.startTimeoutMs = opts.startTimeoutMs ?? 5_000;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 5_000;
    this.stopGraceMs = opts.stopGraceMs ?? 2_000;
  }

  /** PID of the running helper process, if any. */
  get pid(): number | undefined {
    return this.ready ? this.childPid : undefined;
  }

  get running(): boolean {
    return this.ready;
  }

  /** How often the helper has been restarted after dying. */
  get restarts(): number {
    return this.restartCount;
  }

  /** The owned set the helper has (or, after a restart, will get again). */
  get owned(): OwnedSet {
    return this.applied;
  }

  /** Subscribes; returns the function that unsubscribes. */
  on<K extends keyof L2HelperEvents>(name: K, fn: Listener<L2HelperEvents[K]>): () => void {
    let set = this.listeners.get(name);
    if (!set) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(fn);
    return () => {
      set.delete(fn);
    };
  }

  private emit<K extends keyof L2HelperEvents>(name: K, ev: L2HelperEvents[K]): void {
    for (const fn of this.listeners.get(name) ?? []) {
      try {
        (fn as Listener<L2HelperEvents[K]>)(ev);
      } catch (e) {
        this.log.error('l2 helper: event listener threw', { event: name, error: errText(e) });
      }
    }
  }

  /**
   * Starts the helper and waits for its `ready` event. Rejects (and stays stopped) when the first
   * start fails: missing binary, no CAP_NET_RAW, no `ready` in time. Later deaths are restarted.
   */
  async start(): Promise<void> {
    if (this.wanted) throw new Error('l2 helper: already started');
    this.wanted = true;
    this.failures = 0;
    try {
      await this.spawnOnce();
    } catch (e) {
      this.wanted = false;
      if (this.restartTimer) {
        clearTimeout(this.restartTimer);
        this.restartTimer = null;
      }
      await this.killChild();
      throw e;
    }
  }

  /** Asks the helper to quit, then SIGTERM / SIGKILL after the grace period. No restart. */
  async stop(): Promise<void> {
    this.wanted = false;
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
    }
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      this.writeLine(child, { cmd: 'quit' });
      child.stdin.end();
    }
    await this.killChild();
    this.rejectAll(new HelperCommandError('l2 helper stopped'));
  }

  /**
   * Replaces the whole owned set atomically: `interfaces` to listen on, `ips[iface]` the IPs owned
   * there. Rejects (and the previous set stays in force) when the helper refuses it, e.g. for an
   * interface that does not exist.
   */
  async setOwned(interfaces: readonly string[], ips: OwnedIps): Promise<SetEvent> {
    const next: OwnedSet = {
      interfaces: [...interfaces],
      ips: Object.fromEntries(Object.entries(ips).map(([k, v]) => [k, [...v]])),
    };
    const ev = (await this.command(
      { cmd: 'set', interfaces: next.interfaces, ips: next.ips },
      'set',
      this.commandTimeoutMs,
    )) as SetEvent;
    this.applied = next;
    return ev;
  }

  /** Sends gratuitous ARP (request + reply) / unsolicited NA; resolves when round 1 went out. */
  async announce(ip: string, opts: AnnounceOptions = {}): Promise<AnnouncedEvent> {
    const cmd: Record<string, unknown> = { cmd: 'announce', ip };
    if (opts.count !== undefined) cmd.count = opts.count;
    if (opts.intervalMs !== undefined) cmd.intervalMs = opts.intervalMs;
    if (opts.iface !== undefined) cmd.iface = opts.iface;
    return (await this.command(cmd, 'announced', this.commandTimeoutMs)) as AnnouncedEvent;
  }

  /** ARP probe (sender 0.0.0.0) or DAD NS (source ::) for ip on iface; reports who answered. */
  async probe(ip: string, iface: string, timeoutMs: number, count?: number): Promise<ProbeResultEvent> {
    const cmd: Record<string, unknown> = { cmd: 'probe', ip, iface, timeoutMs };
    if (count !== undefined) cmd.count = count;
    return (await this.command(cmd, 'probe_result', timeoutMs + this.commandTimeoutMs)) as ProbeResultEvent;
  }

  /** Per-IP counters and per-socket kernel drops. */
  async stats(): Promise<StatsEvent> {
    return (await this.command({ cmd: 'stats' }, 'stats', this.commandTimeoutMs)) as StatsEvent;
  }

  /** Sends a raw line (for tests of the helper's input validation). */
  sendRaw(line: string): void {
    if (!this.child || !this.ready) throw new HelperCommandError('l2 helper is not running');
    this.child.stdin.write(line.endsWith('\n') ? line : `${line}\n`);
  }

  // ---------------------------------------------------------------------------------- internals

  private command(
    body: Record<string, unknown>,
    expect: HelperEvent['event'],
    timeoutMs: number,
  ): Promise<HelperEvent> {
    const child = this.child;
    if (!child || !this.ready) return Promise.reject(new HelperCommandError('l2 helper is not running'));
    const id = this.nextId++;
    return new Promise<HelperEvent>((resolvePromise, rejectPromise) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        rejectPromise(
          new HelperCommandError(`l2 helper: no answer to ${String(body.cmd)} in ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.pending.set(id, { expect, resolve: resolvePromise, reject: rejectPromise, timer });
      this.writeLine(child, { ...body, id });
    });
  }

  private writeLine(child: Child, obj: Record<string, unknown>): void {
    if (child.stdin.writable) child.stdin.write(`${JSON.stringify(obj)}\n`);
  }

  private rejectAll(err: Error): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(err);
    }
  }

  /** Spawns one helper and resolves once it is ready (rejects if it dies or is silent first). */
  private spawnOnce(): Promise<void> {
    const argv = [...this.launcher, this.binary, ...this.args];
    const [cmd, ...args] = argv as [string, ...string[]];
    if (!this.launcher.length && !existsSync(this.binary)) {
      return Promise.reject(
        new Error(`l2 helper binary ${this.binary} not found (build it with "npm run build:native")`),
      );
    }
    const child: Child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.childPid = child.pid;
    this.ready = false;
    this.childStartedAt = Date.now();
    let fatal: string | null = null;
    let markExited: () => void = () => undefined;
    this.exited = new Promise<void>((r) => (markExited = r));

    return new Promise<void>((resolveStart, rejectStart) => {
      let settled = false;
      const settle = (err: Error | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(startTimer);
        if (err) rejectStart(err);
        else resolveStart();
      };
      const startTimer = setTimeout(() => {
        settle(new Error(`l2 helper: no "ready" within ${this.startTimeoutMs} ms`));
      }, this.startTimeoutMs);

      child.stdin.on('error', (e) => this.log.warn('l2 helper: stdin error', { error: errText(e) }));
      const errLines = createInterface({ input: child.stderr });
      errLines.on('line', (line) => this.log.warn('l2 helper stderr', { line }));
      const lines = createInterface({ input: child.stdout });
      lines.on('line', (line) => {
        let ev: unknown;
        try {
          ev = JSON.parse(line);
        } catch {
          this.log.warn('l2 helper: unparsable output line', { line: line.slice(0, 500) });
          return;
        }
        if (!isRecord(ev) || typeof ev.event !== 'string') {
          this.log.warn('l2 helper: output line is not an event', { line: line.slice(0, 500) });
          return;
        }
        const e = ev as unknown as HelperEvent;
        if (e.event === 'ready') {
          this.ready = true;
          this.childPid = e.pid;
          this.log.info('l2 helper ready', { pid: e.pid, version: e.version });
          this.emit('ready', e);
          settle(null);
          return;
        }
        if (e.event === 'error' && e.fatal) fatal = e.message;
        this.dispatch(e);
      });

      let gone = false;
      child.on('error', (e) => {
        this.log.error('l2 helper: cannot run', { binary: this.binary, error: errText(e) });
        settle(new Error(`l2 helper: cannot run ${argv.join(' ')}: ${e.message}`));
        if (child.pid === undefined) onGone(null, null); // never started: no 'close' to wait for
      });
      child.on('close', (code, signal) => onGone(code, signal));
      const onGone = (code: number | null, signal: NodeJS.Signals | null) => {
        if (gone) return;
        gone = true;
        markExited();
        const wasCurrent = this.child === child;
        if (wasCurrent) {
          this.child = null;
          this.ready = false;
        }
        settle(
          new Error(
            `l2 helper exited before it was ready (${signal ?? `code ${code}`})${fatal ? `: ${fatal}` : ''}`,
          ),
        );
        if (!wasCurrent) return;
        this.rejectAll(new HelperCommandError(`l2 helper exited (${signal ?? `code ${code}`})`));
        let restartInMs: number | null = null;
        if (this.wanted) {
          if (Date.now() - this.childStartedAt >= this.restartResetAfterMs) this.failures = 0;
          restartInMs = Math.min(this.restartMaxMs, this.restartInitialMs * 2 ** this.failures);
          this.failures++;
          this.log.error('l2 helper died; restarting', {
            pid: this.childPid,
            code,
            signal,
            restartInMs,
            ...(fatal ? { reason: fatal } : {}),
          });
          this.restartTimer = setTimeout(() => {
            this.restartTimer = null;
            this.restart().catch((e: unknown) =>
              this.log.error('l2 helper: restart failed', { error: errText(e) }),
            );
          }, restartInMs);
        }
        this.emit('exit', { pid: this.childPid, code, signal, restartInMs });
      };
    });
  }

  /** Restarts after a death and re-sends the owned set the dead helper had. */
  private async restart(): Promise<void> {
    if (!this.wanted) return;
    try {
      await this.spawnOnce();
    } catch (e) {
      // The close handler of that child has already scheduled the next try (if it exited);
      // a helper that started but stayed silent is killed so that it does.
      this.log.error('l2 helper: restart attempt failed', { error: errText(e) });
      if (this.child && !this.ready) this.child.kill('SIGKILL');
      return;
    }
    if (!this.wanted) return;
    const owned = this.applied;
    if (owned.interfaces.length > 0) {
      try {
        await this.setOwned(owned.interfaces, owned.ips);
      } catch (e) {
        this.log.error('l2 helper: re-sending the owned set after a restart failed', { error: errText(e) });
        return;
      }
    }
    this.restartCount++;
    this.log.info('l2 helper restarted', { pid: this.childPid, restarts: this.restartCount });
    this.emit('restarted', { pid: this.childPid ?? 0, restarts: this.restartCount });
  }

  private dispatch(e: HelperEvent): void {
    const id = 'id' in e && typeof e.id === 'number' ? e.id : undefined;
    const p = id !== undefined ? this.pending.get(id) : undefined;
    switch (e.event) {
      case 'error':
        this.log.warn('l2 helper error', { ...e });
        this.emit('error', e);
        if (p && id !== undefined) {
          clearTimeout(p.timer);
          this.pending.delete(id);
          p.reject(new HelperCommandError(e.message, e));
        }
        return;
      case 'foreign':
        this.emit('foreign', e);
        return;
      case 'announced':
        this.emit('announced', e);
        break;
      default:
        break;
    }
    if (p && id !== undefined && p.expect === e.event) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.resolve(e);
    }
  }

  /** Waits for the current child to exit: quit/EOF first, then SIGTERM, then SIGKILL. */
  private async killChild(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = this.exited;
    const waitFor = (ms: number) =>
      new Promise<boolean>((r) => {
        const t = setTimeout(() => r(false), ms);
        void exited.then(() => {
          clearTimeout(t);
          r(true);
        });
      });
    if (child.exitCode === null && child.signalCode === null) {
      if (!child.stdin.writableEnded) child.stdin.end();
      if (!(await waitFor(this.stopGraceMs))) {
        child.kill('SIGTERM');
        if (!(await waitFor(this.stopGraceMs))) {
          child.kill('SIGKILL');
          await waitFor(this.stopGraceMs);
        }
      }
    }
    await waitFor(this.stopGraceMs);
  }
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
