/**
 * The frr.conf view model (spec e): every decision about what the file contains is made here, so
 * the Handlebars templates only print fields. Input values have passed the config parser's
 * grammars; `token()` re-checks each one on its way out as a last line of defence.
 */
import { formatIP, formatPrefix, type Prefix } from '../ip/ip.js';
import type { BFDProfile, CommunityValue, Config, Peer } from '../config/model.js';
import type { BgpRoute } from '../speaker/bgp.js';

export type LogLevel = 'all' | 'debug' | 'info' | 'warn' | 'error' | 'none';

export interface PrefixEntry {
  readonly seq: number;
  readonly prefix: string;
}

/** One `ID-out` permit entry that matches a prefix-list and sets an attribute. */
export interface PropertyList {
  /** `ip` or `ipv6` (the prefix-list / match keyword). */
  readonly fam: 'ip' | 'ipv6';
  readonly name: string;
  readonly entries: readonly PrefixEntry[];
  readonly seq: number;
  /** The `set …` line body, e.g. `local-preference 150`. */
  readonly set: string;
}

export interface AllowedList {
  readonly name: string;
  /** Empty = a single `deny any`. */
  readonly entries: readonly PrefixEntry[];
  readonly seq: number;
}

export interface NeighborFilters {
  readonly id: string;
  readonly localPrefs: readonly PropertyList[];
  readonly communities: readonly PropertyList[];
  readonly allowedV4: AllowedList;
  readonly allowedV6: AllowedList;
}

export interface NeighborView {
  readonly id: string;
  /** The neighbor token: address or interface name. */
  readonly addr: string;
  readonly unnumbered: boolean;
  readonly remoteAs: string;
  readonly ebgpMultiHop: boolean;
  readonly localAS?: number;
  readonly port?: number;
  readonly timers?: { readonly keepalive: number; readonly hold: number };
  readonly connectTime?: number;
  readonly password?: string;
  readonly updateSource?: string;
  readonly gracefulRestart: boolean;
  readonly bfdProfile?: string;
  readonly disableConnectedCheck: boolean;
  readonly ipv4: boolean;
  readonly ipv6: boolean;
}

export interface RouterView {
  readonly asn: number;
  readonly vrf?: string;
  readonly routerID?: string;
  readonly neighbors: readonly NeighborView[];
  readonly networksV4: readonly string[];
  readonly networksV6: readonly string[];
}

export interface BfdProfileView {
  readonly name: string;
  readonly receiveInterval?: number;
  readonly transmitInterval?: number;
  readonly detectMultiplier?: number;
  readonly echoMode: boolean;
  readonly echoInterval?: number;
  readonly passiveMode: boolean;
  readonly minimumTtl?: number;
}

export interface FrrView {
  readonly logLevel: string;
  readonly debug: boolean;
  readonly hostname: string;
  readonly filters: readonly NeighborFilters[];
  readonly routers: readonly RouterView[];
  readonly bfdProfiles: readonly BfdProfileView[];
  /** ConfigMap bgpextras text, appended verbatim ('' = none). */
  readonly extras: string;
}

export interface ViewOptions {
  readonly hostname: string;
  readonly logLevel?: LogLevel;
  /** FRR_LOGGING_LEVEL: an FRR level name that overrides the mapped `logLevel`. */
  readonly frrLogLevel?: string;
}

/** FRR's log levels (`log stdout <level>`). */
export const FRR_LEVELS = [
  'emergencies',
  'alerts',
  'critical',
  'errors',
  'warnings',
  'notifications',
  'informational',
  'debugging',
] as const;

/** Thrown when a value would break the one-token-per-field shape of frr.conf. */
export class RenderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RenderError';
  }
}

const TOKEN = /^[\x21-\x7e]+$/;

/** A value that must be exactly one printable token; anything else is a bug upstream of us. */
function token(what: string, v: string): string {
  if (!TOKEN.test(v)) throw new RenderError(`refusing to render ${what}: not a single printable token`);
  return v;
}

const LEVELS: Record<LogLevel, string> = {
  all: 'debugging',
  debug: 'debugging',
  info: 'informational',
  warn: 'warnings',
  error: 'error',
  none: 'emergencies',
};

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function peerFamilies(p: Peer): { ipv4: boolean; ipv6: boolean } {
  if (p.interface !== undefined || p.dualStackAddressFamily) return { ipv4: true, ipv6: true };
  return { ipv4: p.address?.family === 4, ipv6: p.address?.family === 6 };
}

function peerId(p: Peer): string {
  const base = p.address ? formatIP(p.address) : p.interface!;
  return p.vrf ? `${base}-${p.vrf}` : base;
}

function isEbgp(p: Peer): boolean {
  if (p.dynamicASN) return p.dynamicASN === 'external';
  return p.peerASN !== p.myASN;
}

interface PrefixProps {
  prefix: Prefix;
  localPref: number;
  communities: Map<string, CommunityValue>;
}

/** Per neighbour: the prefixes it gets, each with its merged attributes (spec d.3). */
function prefixesFor(peer: Peer, routes: readonly BgpRoute[]): Map<string, PrefixProps> {
  const fams = peerFamilies(peer);
  const out = new Map<string, PrefixProps>();
  for (const r of routes) {
    if (r.peers.length > 0 && !r.peers.includes(peer.name)) continue;
    if (r.prefix.family === 4 ? !fams.ipv4 : !fams.ipv6) continue;
    const key = formatPrefix(r.prefix);
    let p = out.get(key);
    if (!p) {
      p = { prefix: r.prefix, localPref: 0, communities: new Map() };
      out.set(key, p);
    }
    if (r.localPref !== 0) p.localPref = r.localPref;
    for (const c of r.communities) p.communities.set(c.text, c);
  }
  return out;
}

function entries(prefixes: string[]): PrefixEntry[] {
  return [...prefixes].sort(cmp).map((prefix, i) => ({ seq: i + 1, prefix }));
}

function buildFilters(id: string, props: Map<string, PrefixProps>): NeighborFilters {
  let seq = 0;
  const famOf = (p: Prefix): 'ip' | 'ipv6' => (p.family === 4 ? 'ip' : 'ipv6');
  const lp = new Map<string, { fam: 'ip' | 'ipv6'; value: number; prefixes: string[] }>();
  const comm = new Map<string, { fam: 'ip' | 'ipv6'; c: CommunityValue; prefixes: string[] }>();
  for (const [text, p] of props) {
    const fam = famOf(p.prefix);
    if (p.localPref !== 0) {
      const name = `${id}-${p.localPref}-${fam}-localpref-prefixes`;
      const e = lp.get(name) ?? { fam, value: p.localPref, prefixes: [] };
      e.prefixes.push(text);
      lp.set(name, e);
    }
    for (const c of p.communities.values()) {
      const name = `${id}-${c.text}-${fam}-community-prefixes`;
      const e = comm.get(name) ?? { fam, c, prefixes: [] };
      e.prefixes.push(text);
      comm.set(name, e);
    }
  }
  const localPrefs = [...lp.keys()].sort(cmp).map((name): PropertyList => {
    const e = lp.get(name)!;
    return {
      fam: e.fam,
      name: token('prefix-list name', name),
      entries: entries(e.prefixes),
      seq: ++seq,
      set: `local-preference ${e.value}`,
    };
  });
  const communities = [...comm.keys()].sort(cmp).map((name): PropertyList => {
    const e = comm.get(name)!;
    const set =
      e.c.kind === 'large'
        ? `large-community ${e.c.text.slice('large:'.length)} additive`
        : `community ${e.c.text} additive`;
    return {
      fam: e.fam,
      name: token('prefix-list name', name),
      entries: entries(e.prefixes),
      seq: ++seq,
      set,
    };
  });
  const byFam = (f: 4 | 6) =>
    [...props.values()].filter((p) => p.prefix.family === f).map((p) => formatPrefix(p.prefix));
  const allowedV4: AllowedList = { name: `${id}-allowed-ipv4`, entries: entries(byFam(4)), seq: ++seq };
  const allowedV6: AllowedList = { name: `${id}-allowed-ipv6`, entries: entries(byFam(6)), seq: ++seq };
  return { id, localPrefs, communities, allowedV4, allowedV6 };
}

function neighborView(p: Peer): NeighborView {
  const fams = peerFamilies(p);
  const addr = token('neighbor', p.address ? formatIP(p.address) : p.interface!);
  return {
    id: token('neighbor id', peerId(p)),
    addr,
    unnumbered: p.address === undefined,
    remoteAs: p.dynamicASN ?? String(p.peerASN),
    ebgpMultiHop: p.ebgpMultiHop,
    ...(p.localASN ? { localAS: p.localASN } : {}),
    ...(p.port ? { port: p.port } : {}),
    ...(p.holdTime !== undefined && p.keepaliveTime !== undefined
      ? { timers: { keepalive: p.keepaliveTime, hold: p.holdTime } }
      : {}),
    ...(p.connectTime ? { connectTime: p.connectTime } : {}),
    ...(p.password !== undefined ? { password: token('password', p.password) } : {}),
    ...(p.sourceAddress ? { updateSource: formatIP(p.sourceAddress) } : {}),
    gracefulRestart: p.enableGracefulRestart,
    ...(p.bfdProfile ? { bfdProfile: token('BFD profile', p.bfdProfile) } : {}),
    disableConnectedCheck: fams.ipv6 && !fams.ipv4 && !p.ebgpMultiHop && isEbgp(p) && p.address !== undefined,
    ...fams,
  };
}

function bfdView(b: BFDProfile): BfdProfileView {
  return {
    name: token('BFD profile', b.name),
    ...(b.receiveInterval !== undefined ? { receiveInterval: b.receiveInterval } : {}),
    ...(b.transmitInterval !== undefined ? { transmitInterval: b.transmitInterval } : {}),
    ...(b.detectMultiplier !== undefined ? { detectMultiplier: b.detectMultiplier } : {}),
    echoMode: b.echoMode,
    ...(b.echoInterval !== undefined ? { echoInterval: b.echoInterval } : {}),
    passiveMode: b.passiveMode,
    ...(b.minimumTtl !== undefined ? { minimumTtl: b.minimumTtl } : {}),
  };
}

/**
 * Builds the view for one node. `peers` are the BGPPeers that open a session on this node;
 * `routes` are the node's announcements (speaker/bgp.ts).
 */
export function buildFrrView(
  config: Config,
  peers: readonly Peer[],
  routes: readonly BgpRoute[],
  opts: ViewOptions,
): FrrView {
  const level = opts.logLevel ?? 'info';
  if (opts.frrLogLevel !== undefined && !(FRR_LEVELS as readonly string[]).includes(opts.frrLogLevel)) {
    throw new RenderError(`FRR log level must be one of ${FRR_LEVELS.join(', ')}`);
  }
  const frrLevel = opts.frrLogLevel ?? LEVELS[level];
  const routerKey = (p: Peer) => `${p.myASN}@${p.routerID ? formatIP(p.routerID) : '<nil>'}@${p.vrf}`;
  const neighborKey = (p: Peer) =>
    `${p.dynamicASN ?? p.peerASN}@${p.address ? formatIP(p.address) : p.interface}@${p.vrf}`;
  const groups = new Map<string, Peer[]>();
  for (const p of peers) {
    const k = routerKey(p);
    groups.set(k, [...(groups.get(k) ?? []), p]);
  }
  const filters: NeighborFilters[] = [];
  const routers: RouterView[] = [];
  for (const rk of [...groups.keys()].sort(cmp)) {
    const ps = [...groups.get(rk)!].sort((a, b) => cmp(neighborKey(a), neighborKey(b)));
    const v4 = new Set<string>();
    const v6 = new Set<string>();
    for (const p of ps) {
      const props = prefixesFor(p, routes);
      filters.push(buildFilters(token('neighbor id', peerId(p)), props));
      for (const [text, pp] of props) (pp.prefix.family === 4 ? v4 : v6).add(text);
    }
    const first = ps[0]!;
    routers.push({
      asn: first.myASN,
      ...(first.vrf ? { vrf: token('VRF', first.vrf) } : {}),
      ...(first.routerID ? { routerID: formatIP(first.routerID) } : {}),
      neighbors: ps.map(neighborView),
      networksV4: [...v4].sort(cmp),
      networksV6: [...v6].sort(cmp),
    });
  }
  return {
    logLevel: frrLevel,
    debug: frrLevel === 'debugging',
    hostname: token('hostname', opts.hostname),
    filters,
    routers,
    bfdProfiles: [...config.bfdProfiles.values()].sort((a, b) => cmp(a.name, b.name)).map(bfdView),
    extras: config.extras,
  };
}
