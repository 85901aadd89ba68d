/**
 * The Layer-2 half of the speaker: from the election (election.ts) to the packets the native
 * helper sends. Decides which IPs this node owns and on which interfaces, probes before claiming,
 * announces on takeover, withdraws first and claims second, and fences itself when membership
 * says it is isolated.
 */
import type { Config, NodeInfo } from '../config/model.js';
import { formatIP } from '../ip/ip.js';
import type { EndpointIndex, SpeakerService } from '../speaker/inputs.js';
import type { Logger } from '../util/log.js';
import { decideL2 } from './election.js';
import type { ForeignEvent, OwnedIps, ProbeResultEvent } from './helper.js';
import { eligibleInterfaces, type EligibleInterface, type InterfaceInfo } from './interfaces.js';

/** Who is alive (membership, or every known Node when membership is off). */
export interface Liveness {
  members(): ReadonlySet<string>;
  isolated(): boolean;
  onChange(cb: () => void): () => void;
}

/** The operations of the native helper driver (helper.ts) the announcer uses. */
export interface PacketHelper {
  setOwned(interfaces: readonly string[], ips: OwnedIps): Promise<unknown>;
  announce(ip: string, o?: { count?: number; intervalMs?: number }): Promise<unknown>;
  probe(ip: string, iface: string, timeoutMs: number, count?: number): Promise<ProbeResultEvent>;
  on(name: 'foreign', fn: (e: ForeignEvent) => void): () => void;
  on(name: 'restarted', fn: () => void): () => void;
}

export interface AnnouncerOptions {
  readonly node: string;
  readonly helper: PacketHelper;
  readonly liveness: Liveness;
  readonly log: Logger;
  /** Current interfaces of this namespace (interfaces.ts scanInterfaces). */
  readonly scan: () => Promise<InterfaceInfo[]>;
  readonly excludes: readonly RegExp[];
  /** Probe for another host before claiming an IP (beyond MetalLB). Default on. */
  readonly probeBeforeClaim?: boolean;
  readonly probeTimeoutMs?: number;
  /** A conflicting answer is retried this many times before it is reported (ownership handovers). */
  readonly probeRetries?: number;
  readonly ignoreExcludeLabel?: boolean;
  /** Gratuitous burst: immediately, then every `intervalMs`, `count` times (spec: 1.1 s for 5 s). */
  readonly gratuitousCount?: number;
  readonly gratuitousIntervalMs?: number;
}

export interface L2Inputs {
  readonly config: Config;
  readonly nodes: readonly NodeInfo[];
  readonly services: readonly SpeakerService[];
  readonly endpoints: EndpointIndex;
}

export interface Conflict {
  readonly ip: string;
  readonly mac: string;
  readonly iface: string;
  readonly kind: string;
  readonly since: number;
  /** `probe`: found before claiming (not claimed); `foreign`: seen while owning. */
  readonly phase: 'probe' | 'foreign';
}

export interface AnnouncerStatus {
  /** ip → interfaces it is answered on. */
  readonly owned: ReadonlyMap<string, readonly string[]>;
  /** service key → elected node (or null). */
  readonly winners: ReadonlyMap<string, string | null>;
  readonly conflicts: readonly Conflict[];
  readonly fenced: boolean;
  readonly announceFailed: readonly string[];
  /**
   * Services this node is elected for → the interfaces the applicable L2Advertisements restrict
   * the announcement to, or `all` (for ServiceL2Status; whether an IP is answered is in `owned`).
   */
  readonly served: ReadonlyMap<string, readonly string[] | 'all'>;
}

type Desired = Map<string, string[]>;

export class L2Announcer {
  private inputs: L2Inputs | undefined;
  private owned: Desired = new Map();
  private winners = new Map<string, string | null>();
  private served = new Map<string, readonly string[] | 'all'>();
  private readonly listeners = new Set<() => void>();
  private conflicts = new Map<string, Conflict>();
  private announceFailed: string[] = [];
  private eligible: EligibleInterface[] = [];
  private running: Promise<void> = Promise.resolve();
  private dirty = false;
  private unsubscribe: Array<() => void> = [];
  private rescan: NodeJS.Timeout | undefined;
  private stopped = true;

  constructor(private readonly opts: AnnouncerOptions) {}

  async start(): Promise<void> {
    this.stopped = false;
    this.eligible = eligibleInterfaces(await this.opts.scan(), this.opts.excludes);
    this.unsubscribe.push(
      this.opts.liveness.onChange(() => this.kick()),
      this.opts.helper.on('foreign', (e) => this.onForeign(e)),
      this.opts.helper.on('restarted', () => this.reannounce()),
    );
    // Interfaces come and go; upstream rescans every 10 s.
    this.rescan = setInterval(() => {
      void this.opts
        .scan()
        .then((all) => {
          const next = eligibleInterfaces(all, this.opts.excludes);
          if (JSON.stringify(next) !== JSON.stringify(this.eligible)) {
            this.eligible = next;
            this.kick();
          }
        })
        .catch((e: unknown) => this.opts.log.warn('interface scan failed', { error: String(e) }));
    }, 10_000);
    this.rescan.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
    if (this.rescan) clearInterval(this.rescan);
    await this.running;
  }

  status(): AnnouncerStatus {
    return {
      owned: this.owned,
      winners: this.winners,
      conflicts: [...this.conflicts.values()],
      fenced: this.opts.liveness.isolated(),
      announceFailed: this.announceFailed,
      served: this.served,
    };
  }

  /** Called after every reconcile pass (status writers, metrics); returns an unsubscribe function. */
  onChange(cb: () => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** New configuration, Services, Nodes or endpoints. */
  update(inputs: L2Inputs): void {
    this.inputs = inputs;
    this.kick();
  }

  /** Resolves when no reconcile is running or pending (tests, benchmarks). */
  async idle(): Promise<void> {
    while (this.dirty) await this.running;
    await this.running;
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.dirty) return;
    this.dirty = true;
    this.running = this.running.then(() => this.reconcile());
  }

  /** What this node should own now (ip → interfaces). */
  private desired(): Desired {
    const out: Desired = new Map();
    const inputs = this.inputs;
    this.announceFailed = [];
    if (!inputs || this.opts.liveness.isolated()) {
      this.served = new Map();
      return out;
    }
    const ctx = {
      config: inputs.config,
      node: this.opts.node,
      nodes: new Map(inputs.nodes.map((n) => [n.name, n])),
      speakers: this.opts.liveness.members(),
      endpoints: inputs.endpoints,
      ...(this.opts.ignoreExcludeLabel ? { ignoreExcludeLabel: true } : {}),
    };
    const winners = new Map<string, string | null>();
    const served = new Map<string, readonly string[] | 'all'>();
    for (const svc of inputs.services) {
      const d = decideL2(ctx, svc);
      winners.set(svc.key, d.winner);
      if (d.winner !== this.opts.node) continue;
      served.set(svc.key, d.interfaces);
      for (const ip of svc.ips) {
        const text = formatIP(ip);
        const usable = this.eligible.filter((i) => (ip.family === 4 ? i.arp : i.ndp)).map((i) => i.name);
        const ifaces = d.interfaces === 'all' ? usable : usable.filter((n) => d.interfaces.includes(n));
        if (ifaces.length === 0) {
          this.announceFailed.push(`${svc.key} ${text}`);
          continue;
        }
        const prev = out.get(text) ?? [];
        out.set(text, [...new Set([...prev, ...ifaces])].sort());
      }
    }
    this.winners = winners;
    this.served = served;
    return out;
  }

  private async reconcile(): Promise<void> {
    this.dirty = false;
    if (this.stopped) return;
    try {
      const want = this.desired();
      for (const f of this.announceFailed)
        this.opts.log.warn('announceFailed: no requested interface exists here', { ip: f });
      // Withdraw first: keep only what is still wanted, on interfaces still wanted.
      const kept: Desired = new Map();
      for (const [ip, ifaces] of this.owned) {
        const w = want.get(ip);
        if (w)
          kept.set(
            ip,
            ifaces.filter((i) => w.includes(i)),
          );
      }
      const removed = [...this.owned.keys()].filter((ip) => !want.has(ip));
      if (removed.length || this.changed(kept, this.owned)) {
        await this.push(kept);
        for (const ip of removed) {
          this.conflicts.delete(ip);
          this.opts.log.info('stopped answering', { ip });
        }
      }
      // Then claim what is new, after probing for another host.
      const fresh = [...want.keys()].filter(
        (ip) => !kept.has(ip) || kept.get(ip)!.length !== want.get(ip)!.length,
      );
      const claimable = await this.probeAll(
        fresh.filter((ip) => !kept.has(ip)),
        want,
      );
      const next: Desired = new Map(kept);
      for (const ip of fresh) if (kept.has(ip) || claimable.has(ip)) next.set(ip, want.get(ip)!);
      if (this.changed(next, this.owned)) await this.push(next);
      const gained = [...next.keys()].filter((ip) => !kept.has(ip));
      await Promise.all(gained.map((ip) => this.announce(ip)));
      for (const ip of gained) this.opts.log.info('answering', { ip, interfaces: next.get(ip) });
      // IPs whose probe found someone else are retried later.
      if (claimable.size < fresh.filter((ip) => !kept.has(ip)).length) this.retryLater();
    } catch (e) {
      this.opts.log.error('L2 reconcile failed, retrying', {
        error: e instanceof Error ? e.message : String(e),
      });
      this.retryLater();
    }
    for (const l of this.listeners) {
      try {
        l();
      } catch (e) {
        this.opts.log.warn('L2 change listener failed', {
          error: e instanceof Error ? e.message : String(e),
        });
      }
    }
  }

  private retryLater(): void {
    setTimeout(() => this.kick(), 1000).unref();
  }

  private changed(a: Desired, b: Desired): boolean {
    if (a.size !== b.size) return true;
    for (const [ip, ifs] of a) if ((b.get(ip) ?? []).join(',') !== ifs.join(',')) return true;
    return false;
  }

  private async push(set: Desired): Promise<void> {
    const byIface: Record<string, string[]> = {};
    for (const [ip, ifaces] of set) for (const i of ifaces) (byIface[i] ??= []).push(ip);
    await this.opts.helper.setOwned(Object.keys(byIface).sort(), byIface);
    this.owned = new Map([...set].map(([ip, ifs]) => [ip, [...ifs]]));
  }

  /** Probes each IP on its first interface; returns the IPs nobody else answered for. */
  private async probeAll(ips: string[], want: Desired): Promise<Set<string>> {
    const ok = new Set<string>();
    if (this.opts.probeBeforeClaim === false) {
      for (const ip of ips) ok.add(ip);
      return ok;
    }
    const timeout = this.opts.probeTimeoutMs ?? 150;
    await Promise.all(
      ips.map(async (ip) => {
        const iface = want.get(ip)![0]!;
        const retries = this.opts.probeRetries ?? 3;
        for (let attempt = 0; attempt <= retries; attempt++) {
          const r = await this.opts.helper.probe(ip, iface, timeout);
          if (!r.conflict) {
            this.conflicts.delete(ip);
            ok.add(ip);
            return;
          }
          if (attempt === retries) {
            const a = r.answers[0];
            this.conflicts.set(ip, {
              ip,
              mac: a?.mac ?? '?',
              iface,
              kind: a?.kind ?? '?',
              since: this.conflicts.get(ip)?.since ?? Date.now(),
              phase: 'probe',
            });
            this.opts.log.warn('another host answers for this IP; not claiming it', {
              ip,
              mac: a?.mac,
              iface,
            });
          }
        }
      }),
    );
    return ok;
  }

  private async announce(ip: string): Promise<void> {
    await this.opts.helper.announce(ip, {
      count: this.opts.gratuitousCount ?? 5,
      intervalMs: this.opts.gratuitousIntervalMs ?? 1100,
    });
  }

  private reannounce(): void {
    for (const ip of this.owned.keys()) {
      this.announce(ip).catch((e: unknown) =>
        this.opts.log.warn('re-announce failed', { ip, error: String(e) }),
      );
    }
  }

  private onForeign(e: ForeignEvent): void {
    if (!this.owned.has(e.ip)) return;
    const prev = this.conflicts.get(e.ip);
    this.conflicts.set(e.ip, {
      ip: e.ip,
      mac: e.mac,
      iface: e.iface,
      kind: e.kind,
      since: prev?.since ?? Date.now(),
      phase: 'foreign',
    });
    this.opts.log.warn('another host answers for an IP this node owns', {
      ip: e.ip,
      mac: e.mac,
      iface: e.iface,
      kind: e.kind,
    });
  }
}

/** Liveness without membership: every known Node counts as a live speaker (spec d.2). */
export class NodeListLiveness implements Liveness {
  private nodes = new Set<string>();
  private readonly listeners = new Set<() => void>();
  setNodes(names: Iterable<string>): void {
    const next = new Set(names);
    if ([...next].sort().join() === [...this.nodes].sort().join()) return;
    this.nodes = next;
    for (const l of this.listeners) l();
  }
  members(): ReadonlySet<string> {
    return this.nodes;
  }
  isolated(): boolean {
    return false;
  }
  onChange(cb: () => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }
}
