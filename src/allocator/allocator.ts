/**
 * The IP allocator (spec c.3–c.7): pools, free-space indexes, sharing and counters. Pure and
 * deterministic; the controller logic that drives it lives in converge.ts.
 *
 * Each CIDR keeps its free space in an IntervalSet, so the lowest free address, pinning one and
 * releasing one are O(log n) in the number of holes and independent of the CIDR's size. Upstream
 * MetalLB scans every pool from its first address on each allocation.
 */
import { IntervalSet } from '../ip/interval-set.js';
import {
  familyBits,
  formatIP,
  isBuggyV4,
  prefixContains,
  prefixLast,
  type Family,
  type IPAddress,
  type Prefix,
} from '../ip/ip.js';
import type { Pool } from '../config/model.js';
import type { Labels } from '../config/selector.js';

export interface Port {
  readonly protocol: string;
  readonly port: number;
}

/** Who asks for IPs, with everything the sharing and compatibility rules look at. */
export interface AllocRequest {
  readonly key: string;
  readonly namespace: string;
  readonly labels: Labels;
  readonly ports: readonly Port[];
  /** "" = no sharing. */
  readonly sharingKey: string;
  /** "" for ETP Cluster, canonical pod selector for ETP Local. */
  readonly backendKey: string;
}

export interface Allocation {
  readonly pool: string;
  readonly ips: readonly IPAddress[];
  readonly ports: readonly Port[];
  readonly sharingKey: string;
  readonly backendKey: string;
}

export type FamilyWanted = 4 | 6 | 'dual';
export type Policy = 'SingleStack' | 'PreferDualStack' | 'RequireDualStack';

export type Outcome<T> = { ok: true; value: T } | { ok: false; reason: string };

export interface PoolCounters {
  readonly assignedIPv4: bigint;
  readonly assignedIPv6: bigint;
  readonly availableIPv4: bigint;
  readonly availableIPv6: bigint;
}

export const INT64_MAX = (1n << 63n) - 1n;

interface CidrState {
  readonly prefix: Prefix;
  readonly free: IntervalSet;
}

interface PoolState {
  readonly pool: Pool;
  readonly cidrs: readonly CidrState[];
  readonly usable: { 4: bigint; 6: bigint };
  readonly assigned: { 4: number; 6: number };
}

interface IPUse {
  readonly ip: IPAddress;
  readonly cidr: CidrState;
  readonly pool: PoolState;
  sharingKey: string;
  backendKey: string;
  /** service key → its ports */
  readonly services: Map<string, readonly Port[]>;
}

function ipKey(a: IPAddress): string {
  return a.family === 4 ? `4:${a.value}` : `6:${a.value}`;
}

function portsCollide(a: readonly Port[], b: readonly Port[]): Port | undefined {
  for (const x of a) for (const y of b) if (x.port === y.port && x.protocol === y.protocol) return x;
  return undefined;
}

/** Usable addresses of a CIDR, with the avoidBuggyIPs subtraction of spec c.8. */
function usableIn(p: Prefix, avoidBuggy: boolean): bigint {
  const hostBits = familyBits(p.family) - p.length;
  if (p.family === 6) return hostBits >= 62 ? INT64_MAX : 1n << BigInt(hostBits);
  let n = 1n << BigInt(hostBits);
  if (avoidBuggy) {
    if (p.length <= 24) n -= 2n * (n / 256n);
    else {
      if (isBuggyV4(p.base) && (p.base & 0xffn) === 0n) n -= 1n;
      if ((prefixLast(p) & 0xffn) === 255n) n -= 1n;
    }
  }
  return n;
}

const sat = (x: bigint) => (x > INT64_MAX ? INT64_MAX : x);

function comparePoolOrder(a: Pool, b: Pool): number {
  const pa = a.serviceAllocation?.priority ?? 0;
  const pb = b.serviceAllocation?.priority ?? 0;
  if (pa !== pb) {
    if (pa === 0) return 1;
    if (pb === 0) return -1;
    return pa - pb;
  }
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Does the pool's serviceAllocation allow this Service (spec c.6.2)? */
export function poolCompatible(pool: Pool, namespace: string, labels: Labels): boolean {
  const sa = pool.serviceAllocation;
  if (!sa) return true;
  if (sa.namespaces.size > 0 && !sa.namespaces.has(namespace)) return false;
  if (sa.serviceSelectors.length > 0 && !sa.serviceSelectors.some((s) => s.matches(labels))) return false;
  return true;
}

function incompatibleReason(pool: Pool, namespace: string): string {
  const sa = pool.serviceAllocation!;
  if (sa.namespaces.size > 0 && !sa.namespaces.has(namespace)) {
    return `pool "${pool.name}" does not allow namespace "${namespace}"`;
  }
  return `pool "${pool.name}" serviceSelectors do not match the Service labels`;
}

export class Allocator {
  private pools = new Map<string, PoolState>();
  /** Per family: CIDR ranges sorted by start, for IP → pool lookups. */
  private cidrIndex: { 4: CidrState[]; 6: CidrState[] } = { 4: [], 6: [] };
  private cidrOwner = new Map<CidrState, PoolState>();
  private byNamespace = new Map<string, PoolState[]>();
  private withSelectors: PoolState[] = [];
  private unpinned: PoolState[] = [];
  private readonly uses = new Map<string, IPUse>();
  private readonly allocs = new Map<string, Allocation>();
  /** sharing key + backend key → IPs currently shared under it. */
  private readonly shareIndex = new Map<string, Set<IPUse>>();
  private configured = false;

  /** True once a pool set was loaded (spec c.2 step 2). */
  get hasConfig(): boolean {
    return this.configured;
  }

  get poolCount(): number {
    return this.pools.size;
  }

  /**
   * Loads a new pool set and re-maps existing allocations (spec c.7): an allocation whose IPs now
   * belong to another pool moves there; one whose IPs belong to no pool is released. Returns the
   * keys of released Services.
   */
  setPools(pools: ReadonlyMap<string, Pool>): string[] {
    this.configured = true;
    this.pools = new Map();
    for (const name of [...pools.keys()].sort()) {
      const pool = pools.get(name)!;
      const cidrs = pool.cidrs.map((p) => ({ prefix: p, free: IntervalSet.of(p.base, prefixLast(p)) }));
      const usable = { 4: 0n, 6: 0n };
      for (const p of pool.cidrs) usable[p.family] = sat(usable[p.family] + usableIn(p, pool.avoidBuggyIPs));
      this.pools.set(name, { pool, cidrs, usable, assigned: { 4: 0, 6: 0 } });
    }
    this.rebuildIndexes();
    const old = [...this.allocs.entries()];
    this.allocs.clear();
    this.uses.clear();
    this.shareIndex.clear();
    const released: string[] = [];
    for (const [key, a] of old) {
      const owner = this.ownerOf(a.ips);
      if (!owner) {
        released.push(key);
        continue;
      }
      this.commit(key, owner, a.ips, a.ports, a.sharingKey, a.backendKey);
    }
    return released;
  }

  private rebuildIndexes(): void {
    this.cidrIndex = { 4: [], 6: [] };
    this.cidrOwner = new Map();
    this.byNamespace = new Map();
    this.withSelectors = [];
    this.unpinned = [];
    for (const ps of this.pools.values()) {
      for (const c of ps.cidrs) {
        this.cidrIndex[c.prefix.family].push(c);
        this.cidrOwner.set(c, ps);
      }
      const sa = ps.pool.serviceAllocation;
      if (!ps.pool.autoAssign) continue;
      if (!sa) this.unpinned.push(ps);
      else {
        for (const ns of sa.namespaces) {
          const l = this.byNamespace.get(ns) ?? [];
          l.push(ps);
          this.byNamespace.set(ns, l);
        }
        if (sa.serviceSelectors.length > 0) this.withSelectors.push(ps);
      }
    }
    for (const f of [4, 6] as const)
      this.cidrIndex[f].sort((a, b) => (a.prefix.base < b.prefix.base ? -1 : 1));
  }

  /** The CIDR holding an address (pools never overlap), or undefined. */
  private cidrOf(a: IPAddress): CidrState | undefined {
    const list = this.cidrIndex[a.family];
    let lo = 0;
    let hi = list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = list[mid]!;
      if (a.value < c.prefix.base) hi = mid - 1;
      else if (a.value > prefixLast(c.prefix)) lo = mid + 1;
      else return c;
    }
    return undefined;
  }

  /** Pool owning an address, honouring avoidBuggyIPs (a buggy address is outside its pool). */
  private poolOfIP(a: IPAddress): PoolState | undefined {
    const c = this.cidrOf(a);
    if (!c) return undefined;
    const ps = this.cidrOwner.get(c)!;
    if (ps.pool.avoidBuggyIPs && a.family === 4 && isBuggyV4(a.value)) return undefined;
    return ps;
  }

  /** The one pool owning every IP of the set (spec c.6.1), or undefined. */
  private ownerOf(ips: readonly IPAddress[]): PoolState | undefined {
    let owner: PoolState | undefined;
    for (const a of ips) {
      const p = this.poolOfIP(a);
      if (!p || (owner && owner !== p)) return undefined;
      owner = p;
    }
    return owner;
  }

  /** Pool name owning every IP (ignoring avoidBuggyIPs when `strict` is false, as speakers do). */
  poolNameOf(ips: readonly IPAddress[], strict = true): string | undefined {
    if (strict) return this.ownerOf(ips)?.pool.name;
    let owner: PoolState | undefined;
    for (const a of ips) {
      const c = this.cidrOf(a);
      const p = c && this.cidrOwner.get(c);
      if (!p || (owner && owner !== p)) return undefined;
      owner = p;
    }
    return owner?.pool.name;
  }

  pool(name: string): Pool | undefined {
    return this.pools.get(name)?.pool;
  }

  allocation(key: string): Allocation | undefined {
    return this.allocs.get(key);
  }

  /** Releases a Service's IPs; returns the allocation it held, if any. */
  release(key: string): Allocation | undefined {
    const a = this.allocs.get(key);
    if (!a) return undefined;
    this.allocs.delete(key);
    for (const ip of a.ips) {
      const k = ipKey(ip);
      const use = this.uses.get(k);
      if (!use) continue;
      use.services.delete(key);
      if (use.services.size === 0) {
        this.uses.delete(k);
        use.cidr.free.add(ip.value);
        use.pool.assigned[ip.family]--;
        this.unshare(use);
      }
    }
    return a;
  }

  private shareKey(sharingKey: string, backendKey: string): string {
    return `${sharingKey}\u0000${backendKey}`;
  }

  private unshare(use: IPUse): void {
    if (!use.sharingKey) return;
    const k = this.shareKey(use.sharingKey, use.backendKey);
    const set = this.shareIndex.get(k);
    set?.delete(use);
    if (set && set.size === 0) this.shareIndex.delete(k);
  }

  private commit(
    key: string,
    ps: PoolState,
    ips: readonly IPAddress[],
    ports: readonly Port[],
    sharingKey: string,
    backendKey: string,
  ): void {
    for (const ip of ips) {
      const k = ipKey(ip);
      let use = this.uses.get(k);
      if (!use) {
        const cidr = this.cidrOf(ip)!;
        use = { ip, cidr, pool: ps, sharingKey, backendKey, services: new Map() };
        this.uses.set(k, use);
        cidr.free.delete(ip.value);
        ps.assigned[ip.family]++;
      } else if (use.sharingKey !== sharingKey || use.backendKey !== backendKey) {
        // Only possible when this Service is the sole user (checked before commit).
        this.unshare(use);
        use.sharingKey = sharingKey;
        use.backendKey = backendKey;
      } else if (use.sharingKey && use.services.size > 0) {
        // already indexed
      }
      if (use.sharingKey) {
        const sk = this.shareKey(use.sharingKey, use.backendKey);
        const set = this.shareIndex.get(sk) ?? new Set<IPUse>();
        set.add(use);
        this.shareIndex.set(sk, set);
      }
      use.services.set(key, ports);
    }
    this.allocs.set(key, { pool: ps.pool.name, ips: [...ips], ports: [...ports], sharingKey, backendKey });
  }

  /** Why `req` may not use `ip` (sharing rules of c.5), or undefined when it may. */
  private sharingProblem(req: AllocRequest, ip: IPAddress): string | undefined {
    const use = this.uses.get(ipKey(ip));
    if (!use) return undefined;
    const others = [...use.services.keys()].filter((k) => k !== req.key);
    if (others.length === 0) return undefined;
    const who = others.slice(0, 3).join(', ') + (others.length > 3 ? ', …' : '');
    if (!req.sharingKey || !use.sharingKey) {
      return `${formatIP(ip)} is already used by ${who} and sharing needs allow-shared-ip on both`;
    }
    if (use.sharingKey !== req.sharingKey) {
      return `${formatIP(ip)} is used by ${who} with a different allow-shared-ip key`;
    }
    if (use.backendKey !== req.backendKey) {
      return `${formatIP(ip)} is used by ${who} with a different externalTrafficPolicy/selector`;
    }
    for (const k of others) {
      const c = portsCollide(req.ports, use.services.get(k)!);
      if (c) return `${formatIP(ip)} port ${c.protocol}/${c.port} is already used by ${k}`;
    }
    return undefined;
  }

  /**
   * Validates and takes an explicit or current IP set (spec c.6). On success the Service's
   * previous allocation is replaced.
   */
  assign(req: AllocRequest, ips: readonly IPAddress[], poolName?: string): Outcome<Allocation> {
    if (ips.length === 0 || ips.length > 2)
      return { ok: false, reason: 'one IP, or two of different families, expected' };
    if (ips.length === 2 && ips[0]!.family === ips[1]!.family) {
      return { ok: false, reason: 'two IPs must be of different families' };
    }
    const ps = this.ownerOf(ips);
    if (!ps) {
      const txt = ips.map(formatIP).join(', ');
      return {
        ok: false,
        reason: `${txt} ${ips.length > 1 ? 'are' : 'is'} not allowed in config (not in one pool)`,
      };
    }
    if (poolName !== undefined && ps.pool.name !== poolName) {
      return {
        ok: false,
        reason: `${ips.map(formatIP).join(', ')} belongs to pool "${ps.pool.name}", not "${poolName}"`,
      };
    }
    if (!poolCompatible(ps.pool, req.namespace, req.labels)) {
      return { ok: false, reason: incompatibleReason(ps.pool, req.namespace) };
    }
    for (const ip of ips) {
      const p = this.sharingProblem(req, ip);
      if (p) return { ok: false, reason: p };
    }
    this.release(req.key);
    this.commit(req.key, ps, ips, req.ports, req.sharingKey, req.backendKey);
    return { ok: true, value: this.allocs.get(req.key)! };
  }

  /** First free address >= from inside a CIDR, skipping .0/.255 when the pool avoids them. */
  private firstFree(c: CidrState, avoidBuggy: boolean): bigint | undefined {
    let v = c.free.ceiling(c.prefix.base);
    if (c.prefix.family === 4 && avoidBuggy) {
      while (v !== undefined && isBuggyV4(v)) v = c.free.ceiling(v + 1n);
    }
    return v;
  }

  /** Lowest address of a CIDR this request may share, or undefined. */
  private firstShared(req: AllocRequest, c: CidrState, avoidBuggy: boolean): bigint | undefined {
    if (!req.sharingKey) return undefined;
    const set = this.shareIndex.get(this.shareKey(req.sharingKey, req.backendKey));
    if (!set) return undefined;
    let best: bigint | undefined;
    for (const use of set) {
      if (use.cidr !== c) continue;
      if (best !== undefined && use.ip.value >= best) continue;
      if (avoidBuggy && use.ip.family === 4 && isBuggyV4(use.ip.value)) continue;
      if (this.sharingProblem(req, use.ip)) continue;
      best = use.ip.value;
    }
    return best;
  }

  /** The first acceptable address of a family in a pool (spec c.4 per-pool candidates). */
  private candidate(req: AllocRequest, ps: PoolState, family: Family): IPAddress | undefined {
    for (const c of ps.cidrs) {
      if (c.prefix.family !== family) continue;
      const free = this.firstFree(c, ps.pool.avoidBuggyIPs);
      const shared = this.firstShared(req, c, ps.pool.avoidBuggyIPs);
      const v = free === undefined ? shared : shared === undefined ? free : shared < free ? shared : free;
      if (v !== undefined) return { family, value: v };
    }
    return undefined;
  }

  /** Best-pool rule of c.4 over an ordered list; returns the pool and its chosen IPs. */
  private bestPool(
    req: AllocRequest,
    list: readonly PoolState[],
    fam: FamilyWanted,
    policy: Policy,
    primary: Family,
  ): { ps: PoolState; ips: IPAddress[] } | undefined {
    if (fam !== 'dual') {
      for (const ps of list) {
        const c = this.candidate(req, ps, fam);
        if (c) return { ps, ips: [c] };
      }
      return undefined;
    }
    let firstPrimary: { ps: PoolState; ip: IPAddress } | undefined;
    let firstSecondary: { ps: PoolState; ip: IPAddress } | undefined;
    const secondary: Family = primary === 4 ? 6 : 4;
    for (const ps of list) {
      const v4 = this.candidate(req, ps, 4);
      const v6 = this.candidate(req, ps, 6);
      if (v4 && v6) return { ps, ips: [v4, v6] };
      if (policy === 'PreferDualStack') {
        const p = primary === 4 ? v4 : v6;
        const s = secondary === 4 ? v4 : v6;
        if (p && !firstPrimary) firstPrimary = { ps, ip: p };
        if (s && !firstSecondary) firstSecondary = { ps, ip: s };
      }
    }
    const pick = firstPrimary ?? firstSecondary;
    return pick ? { ps: pick.ps, ips: [pick.ip] } : undefined;
  }

  /** Pools for automatic allocation: pinned (ordered) then unpinned (by name), spec c.3.3. */
  private autoPools(req: AllocRequest): { pinned: PoolState[]; unpinned: PoolState[]; skipped: string[] } {
    const skipped: string[] = [];
    const pinned: PoolState[] = [];
    const consider = (ps: PoolState) => {
      if (poolCompatible(ps.pool, req.namespace, req.labels)) pinned.push(ps);
      else skipped.push(incompatibleReason(ps.pool, req.namespace));
    };
    for (const ps of this.byNamespace.get(req.namespace) ?? []) consider(ps);
    for (const ps of this.withSelectors) consider(ps);
    pinned.sort((a, b) => comparePoolOrder(a.pool, b.pool));
    return { pinned, unpinned: this.unpinned, skipped };
  }

  /**
   * Chooses IPs for a Service without current IPs (spec c.3 steps 2-3); the Service's previous
   * allocation, if any, is released first.
   */
  allocate(
    req: AllocRequest,
    fam: FamilyWanted,
    policy: Policy,
    primary: Family,
    poolName?: string,
  ): Outcome<Allocation> {
    this.release(req.key);
    const famText = fam === 'dual' ? 'IPv4+IPv6' : `IPv${fam}`;
    if (poolName !== undefined) {
      const ps = this.pools.get(poolName);
      if (!ps) return { ok: false, reason: `pool "${poolName}" (address-pool annotation) does not exist` };
      if (!poolCompatible(ps.pool, req.namespace, req.labels)) {
        return { ok: false, reason: incompatibleReason(ps.pool, req.namespace) };
      }
      const got = this.bestPool(req, [ps], fam, policy, primary);
      if (!got) return { ok: false, reason: `no available ${famText} address in pool "${poolName}"` };
      this.commit(req.key, got.ps, got.ips, req.ports, req.sharingKey, req.backendKey);
      return { ok: true, value: this.allocs.get(req.key)! };
    }
    const { pinned, unpinned, skipped } = this.autoPools(req);
    const got =
      this.bestPool(req, pinned, fam, policy, primary) ?? this.bestPool(req, unpinned, fam, policy, primary);
    if (!got) {
      const tried = [...new Set([...pinned, ...unpinned].map((p) => p.pool.name))];
      let reason = `no available ${famText} address`;
      if (tried.length) reason += `: pools tried ${tried.join(', ')} (all full or no ${famText} range)`;
      else reason += ': no pool with autoAssign applies to this Service';
      if (skipped.length) reason += `; ${[...new Set(skipped)].join('; ')}`;
      return { ok: false, reason };
    }
    this.commit(req.key, got.ps, got.ips, req.ports, req.sharingKey, req.backendKey);
    return { ok: true, value: this.allocs.get(req.key)! };
  }

  /** PreferDualStack with one current IP: add the other family from the same pool (c.4). */
  allocateAdditional(req: AllocRequest, family: Family): Outcome<Allocation> {
    const cur = this.allocs.get(req.key);
    if (!cur) return { ok: false, reason: 'no current allocation' };
    const ps = this.pools.get(cur.pool)!;
    const ip = this.candidate(req, ps, family);
    if (!ip) return { ok: false, reason: `no available IPv${family} address in pool "${cur.pool}"` };
    const ips = [...cur.ips, ip];
    this.release(req.key);
    this.commit(req.key, ps, ips, req.ports, req.sharingKey, req.backendKey);
    return { ok: true, value: this.allocs.get(req.key)! };
  }

  /** Is this IP inside some pool (spec c.2 step 11: losing such an IP frees it for others)? */
  inSomePool(a: IPAddress): boolean {
    return this.poolOfIP(a) !== undefined;
  }

  counters(name: string): PoolCounters | undefined {
    const ps = this.pools.get(name);
    if (!ps) return undefined;
    const a4 = BigInt(ps.assigned[4]);
    const a6 = BigInt(ps.assigned[6]);
    const clamp = (x: bigint) => (x < 0n ? 0n : x);
    return {
      assignedIPv4: a4,
      assignedIPv6: a6,
      availableIPv4: clamp(ps.usable[4] - a4),
      availableIPv6: clamp(ps.usable[6] - a6),
    };
  }

  poolNames(): string[] {
    return [...this.pools.keys()];
  }

  /** Checks every invariant; used by property tests. Returns problems, empty when consistent. */
  checkInvariants(): string[] {
    const out: string[] = [];
    const counted = new Map<string, { 4: number; 6: number }>();
    for (const [k, use] of this.uses) {
      if (use.services.size === 0) out.push(`${k} has no users`);
      if (use.cidr.free.has(use.ip.value)) out.push(`${k} is both used and free`);
      if (!prefixContains(use.cidr.prefix, use.ip)) out.push(`${k} outside its CIDR`);
      const c = counted.get(use.pool.pool.name) ?? { 4: 0, 6: 0 };
      c[use.ip.family]++;
      counted.set(use.pool.pool.name, c);
      if (use.services.size > 1 && !use.sharingKey) out.push(`${k} shared without a key`);
    }
    for (const [name, ps] of this.pools) {
      const c = counted.get(name) ?? { 4: 0, 6: 0 };
      if (c[4] !== ps.assigned[4] || c[6] !== ps.assigned[6]) out.push(`pool ${name} counters drifted`);
    }
    for (const [key, a] of this.allocs) {
      for (const ip of a.ips) {
        if (!this.uses.get(ipKey(ip))?.services.has(key)) out.push(`${key} allocation not in use map`);
      }
    }
    return out;
  }
}
