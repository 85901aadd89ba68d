/**
 * Raw `metallb.io` objects → one validated Config (spec section a, layer 3 of a.0).
 *
 * Unlike upstream, which stops at the first error, every problem is collected so a user sees the
 * whole list at once. Evaluation order follows a.12 (FRR cross-peer rules, BFD profiles, peers,
 * communities, pools, L2 advertisements, BGP advertisements, cross-checks) so the first problem
 * reported is the one upstream would report.
 */
import {
  formatPrefix,
  parseAddressEntry,
  parseIP,
  prefixLast,
  type IPAddress,
  type Prefix,
} from '../ip/ip.js';
import { compareCommunity, parseCommunity } from './community.js';
import { NS_PER_SECOND, parseDuration } from './duration.js';
import {
  communityAliasProblem,
  interfaceNameProblem,
  objectNameProblem,
  passwordProblem,
  vrfNameProblem,
} from './grammar.js';
import type {
  AddressEntry,
  BFDProfile,
  BGPAdvertisement,
  CommunityValue,
  Config,
  L2Advertisement,
  NamespaceInfo,
  NodeInfo,
  Peer,
  Pool,
  ServiceAllocation,
} from './model.js';
import type { Problem } from './problems.js';
import { asRecord, asStringMap } from '../util/shape.js';
import {
  compileSelector,
  MATCH_ALL,
  selectorListProblems,
  type LabelSelector,
  type Labels,
  type Selector,
} from './selector.js';

/** A Kubernetes object as read from YAML or the API. */
export interface RawObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  spec?: unknown;
  status?: unknown;
  [k: string]: unknown;
}

/** Validates one object against its CRD schema and returns a defaulted copy (src/config/schema.ts). */
export interface SchemaValidator {
  validate(
    kind: string,
    apiVersion: string,
    obj: unknown,
  ): { value: unknown; problems: ReadonlyArray<{ path: string; reason: string }> };
}

export interface ConfigInput {
  ipAddressPools: readonly RawObject[];
  l2Advertisements: readonly RawObject[];
  bgpAdvertisements: readonly RawObject[];
  /** v1beta1 or v1beta2 objects. */
  bgpPeers: readonly RawObject[];
  communities: readonly RawObject[];
  bfdProfiles: readonly RawObject[];
  secrets: readonly RawObject[];
  /** ConfigMaps; only `bgpextras` in the MetalLB namespace is read (spec e.1.6). */
  configMaps?: readonly RawObject[];
  nodes: readonly NodeInfo[];
  namespaces: readonly NamespaceInfo[];
}

export function emptyInput(): ConfigInput {
  return {
    ipAddressPools: [],
    l2Advertisements: [],
    bgpAdvertisements: [],
    bgpPeers: [],
    communities: [],
    bfdProfiles: [],
    secrets: [],
    configMaps: [],
    nodes: [],
    namespaces: [],
  };
}

export interface ParseOptions {
  /** The MetalLB namespace; objects elsewhere are reported (creation would be rejected). */
  namespace?: string;
  /**
   * `controller` parses only what the controller needs (pools and communities, spec a.11);
   * `full` parses every kind (speaker and `ironlb validate`).
   */
  scope?: 'controller' | 'full';
  /** Speaker: peers and BGP advertisements that do not select this node are left out first. */
  nodeName?: string;
}

export interface ParseResult {
  /** Present only when there is no problem at all. */
  config?: Config;
  problems: Problem[];
}

export const DEFAULT_NAMESPACE = 'metallb-system';
const MAX_U32 = 4294967295;

type Spec = Record<string, unknown>;

interface Item {
  kind: string;
  name: string;
  labels: Labels;
  spec: Spec;
}

class Collector {
  readonly problems: Problem[] = [];
  add(kind: string, name: string, path: string, reason: string, transient = false): void {
    this.problems.push(transient ? { kind, name, path, reason, transient } : { kind, name, path, reason });
  }
  selectors(it: Item, field: string, list: unknown): Selector[] {
    const arr = asSelectorList(list);
    const probs = selectorListProblems(field, arr);
    for (const [p, r] of probs) this.add(it.kind, it.name, p, r);
    return probs.length ? [] : arr.map((s) => compileSelector(s));
  }
  duplicates(it: Item, field: string, list: unknown): void {
    const arr = asStringList(list);
    const seen = new Set<string>();
    arr.forEach((v, i) => {
      if (seen.has(v)) this.add(it.kind, it.name, `${field}[${i}]`, `duplicate entry "${v}"`);
      seen.add(v);
    });
  }
}

function asStringList(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}
function asSelectorList(v: unknown): LabelSelector[] {
  return Array.isArray(v) ? (v.filter((x) => x && typeof x === 'object') as LabelSelector[]) : [];
}
function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}
function bool(v: unknown, dflt: boolean): boolean {
  return typeof v === 'boolean' ? v : dflt;
}
function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** Node set of a nodeSelectors list: all nodes when empty, else nodes matching any selector. */
function selectNodes(
  nodes: readonly NodeInfo[],
  selectors: readonly Selector[],
  listed: boolean,
): Set<string> {
  const out = new Set<string>();
  for (const n of nodes) if (!listed || selectors.some((s) => s.matches(n.labels))) out.add(n.name);
  return out;
}

function disjoint(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  for (const x of a) if (b.has(x)) return false;
  return true;
}

/** BGPPeer v1beta1 → v1beta2 (spec a.5): timers become explicit, zero when absent. */
export function convertPeerV1beta1(obj: RawObject): RawObject {
  const s = (obj.spec ?? {}) as Spec;
  const out: Spec = {};
  for (const k of [
    'myASN',
    'peerASN',
    'peerAddress',
    'sourceAddress',
    'routerID',
    'password',
    'bfdProfile',
    'ebgpMultiHop',
  ]) {
    if (s[k] !== undefined && s[k] !== '' && s[k] !== false) out[k] = s[k];
  }
  if (typeof s.peerPort === 'number' && s.peerPort !== 0) out.peerPort = s.peerPort;
  out.holdTime = typeof s.holdTime === 'string' && s.holdTime !== '' ? s.holdTime : '0s';
  out.keepaliveTime = typeof s.keepaliveTime === 'string' && s.keepaliveTime !== '' ? s.keepaliveTime : '0s';
  if (Array.isArray(s.nodeSelectors)) {
    out.nodeSelectors = (s.nodeSelectors as Spec[]).map((ns) => {
      const sel: Spec = {};
      if (ns && ns.matchLabels) sel.matchLabels = ns.matchLabels;
      if (ns && Array.isArray(ns.matchExpressions) && ns.matchExpressions.length) {
        sel.matchExpressions = ns.matchExpressions;
      }
      return sel;
    });
  }
  return { ...obj, apiVersion: 'metallb.io/v1beta2', spec: out };
}

export class ConfigParser {
  constructor(private readonly schemas: SchemaValidator) {}

  parse(input: ConfigInput, opts: ParseOptions = {}): ParseResult {
    const c = new Collector();
    const namespace = opts.namespace ?? DEFAULT_NAMESPACE;
    const full = (opts.scope ?? 'full') === 'full';

    const prep = (kind: string, objs: readonly RawObject[], versions: string[]): Item[] => {
      const out: Item[] = [];
      const names = new Set<string>();
      objs.forEach((o, i) => {
        let obj = o;
        const name = typeof o.metadata?.name === 'string' && o.metadata.name ? o.metadata.name : `#${i + 1}`;
        const nameProblem = objectNameProblem(o.metadata?.name ?? '');
        if (nameProblem) {
          c.add(kind, name, 'metadata.name', nameProblem);
          return;
        }
        if (names.has(name)) {
          c.add(kind, name, 'metadata.name', `another ${kind} has the same name`);
          return;
        }
        names.add(name);
        const ns = o.metadata?.namespace;
        if (ns !== undefined && ns !== namespace) {
          c.add(
            kind,
            name,
            'metadata.namespace',
            `"${ns}" is not the MetalLB namespace "${namespace}"; the object would be ignored`,
          );
          return;
        }
        if (o.apiVersion !== undefined && typeof o.apiVersion !== 'string') {
          c.add(kind, name, 'apiVersion', 'must be a string');
          return;
        }
        const apiVersion = o.apiVersion ?? `metallb.io/${versions[0]}`;
        const version = apiVersion.startsWith('metallb.io/') ? apiVersion.slice('metallb.io/'.length) : '';
        if (!versions.includes(version)) {
          c.add(
            kind,
            name,
            'apiVersion',
            `"${apiVersion}" is not one of ${versions.map((v) => `metallb.io/${v}`).join(', ')}`,
          );
          return;
        }
        let res = this.schemas.validate(kind, apiVersion, obj);
        if (res.problems.length === 0 && kind === 'BGPPeer' && version === 'v1beta1') {
          obj = convertPeerV1beta1(res.value as RawObject);
          res = this.schemas.validate(kind, 'metallb.io/v1beta2', obj);
        }
        if (res.problems.length) {
          for (const p of res.problems) c.add(kind, name, p.path, p.reason);
          return;
        }
        const v = res.value as RawObject;
        out.push({ kind, name, labels: asStringMap(v.metadata?.labels), spec: asRecord(v.spec) });
      });
      return out;
    };

    const pools = prep('IPAddressPool', input.ipAddressPools, ['v1beta1']);
    const communitiesRaw = prep('Community', input.communities, ['v1beta1']);
    let bfdRaw: Item[] = [];
    let peersRaw: Item[] = [];
    let l2Raw: Item[] = [];
    let bgpAdRaw: Item[] = [];
    if (full) {
      bfdRaw = prep('BFDProfile', input.bfdProfiles, ['v1beta1']);
      peersRaw = prep('BGPPeer', input.bgpPeers, ['v1beta2', 'v1beta1']);
      l2Raw = prep('L2Advertisement', input.l2Advertisements, ['v1beta1']);
      bgpAdRaw = prep('BGPAdvertisement', input.bgpAdvertisements, ['v1beta1']);
    }
    const nodes = [...input.nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

    // Peers are compiled first: the FRR cross-peer rules run before everything else.
    let peerSel = peersRaw.map((it) => ({
      it,
      sels: c.selectors(it, 'spec.nodeSelectors', it.spec.nodeSelectors),
    }));
    if (opts.nodeName !== undefined) {
      const me = nodes.find((n) => n.name === opts.nodeName);
      peerSel = peerSel.filter(
        ({ it, sels }) =>
          asSelectorList(it.spec.nodeSelectors).length === 0 ||
          sels.length === 0 ||
          (me !== undefined && sels.some((s) => s.matches(me.labels))),
      );
    }
    const peerNodes = new Map<Item, Set<string>>();
    for (const { it, sels } of peerSel) {
      peerNodes.set(it, selectNodes(nodes, sels, asSelectorList(it.spec.nodeSelectors).length > 0));
    }
    this.crossPeerRules(
      c,
      peerSel.map((p) => p.it),
      peerNodes,
      nodes.length === 0,
    );

    const bfdProfiles = this.parseBfd(c, bfdRaw);
    const peers = this.parsePeers(
      c,
      peerSel.map((p) => p.it),
      peerNodes,
      bfdProfiles,
      input.secrets,
      namespace,
    );
    const communities = this.parseCommunities(c, communitiesRaw);
    const poolMap = this.parsePools(c, pools, input.namespaces);
    const l2ByPool = this.parseL2(c, l2Raw, pools, poolMap, nodes);
    const bgpByPool = this.parseBgpAds(c, bgpAdRaw, pools, poolMap, nodes, communities, opts.nodeName);
    if (full) this.bfdEchoV6(c, poolMap, bgpByPool, peers, bfdProfiles);

    const extras = full ? this.parseExtras(c, input.configMaps ?? [], namespace) : '';
    if (c.problems.length) return { problems: c.problems };
    const finalPools = new Map<string, Pool>();
    for (const name of [...poolMap.keys()].sort()) {
      const p = poolMap.get(name)!;
      finalPools.set(name, {
        ...p,
        l2Advertisements: l2ByPool.get(name) ?? [],
        bgpAdvertisements: bgpByPool.get(name)?.map((x) => x.ad) ?? [],
      });
    }
    return { config: { pools: finalPools, peers, bfdProfiles, communities, extras }, problems: [] };
  }

  /** Rule 27 (FRR modes): peers sharing a node must agree on routerID and ASN and differ in identity. */
  private crossPeerRules(
    c: Collector,
    peers: Item[],
    peerNodes: Map<Item, Set<string>>,
    noNodes: boolean,
  ): void {
    const identity = (s: Spec) => {
      const base = str(s.peerAddress) || str(s.interface);
      return str(s.vrf) ? `${base}-${str(s.vrf)}` : base;
    };
    for (let i = 0; i < peers.length; i++) {
      for (let j = i + 1; j < peers.length; j++) {
        const a = peers[i]!;
        const b = peers[j]!;
        if (!noNodes && disjoint(peerNodes.get(a)!, peerNodes.get(b)!)) continue;
        const other = `BGPPeer/${a.name}`;
        if (str(a.spec.routerID) !== str(b.spec.routerID)) {
          c.add(
            b.kind,
            b.name,
            'spec.routerID',
            `"${str(b.spec.routerID)}" differs from "${str(a.spec.routerID)}" of ${other}, which shares a node`,
          );
        }
        if (identity(a.spec) === identity(b.spec)) {
          c.add(
            b.kind,
            b.name,
            str(b.spec.peerAddress) ? 'spec.peerAddress' : 'spec.interface',
            `same peer as ${other} on a shared node`,
          );
        }
        if (str(a.spec.vrf) === str(b.spec.vrf) && a.spec.myASN !== b.spec.myASN) {
          c.add(
            b.kind,
            b.name,
            'spec.myASN',
            `${String(b.spec.myASN)} differs from ${String(a.spec.myASN)} of ${other} in the same VRF on a shared node`,
          );
        }
      }
    }
  }

  private parseBfd(c: Collector, items: Item[]): Map<string, BFDProfile> {
    const out = new Map<string, BFDProfile>();
    const ranges: Array<[keyof BFDProfile, number, number]> = [
      ['receiveInterval', 10, 60000],
      ['transmitInterval', 10, 60000],
      ['detectMultiplier', 2, 255],
      ['echoInterval', 10, 60000],
      ['minimumTtl', 1, 254],
    ];
    for (const it of items) {
      const p: Record<string, unknown> = {
        name: it.name,
        echoMode: bool(it.spec.echoMode, false),
        passiveMode: bool(it.spec.passiveMode, false),
      };
      let ok = true;
      for (const [f, lo, hi] of ranges) {
        const v = it.spec[f];
        if (v === undefined || v === null) continue;
        const n = num(v);
        if (n === undefined || !Number.isInteger(n) || n < lo || n > hi) {
          c.add(it.kind, it.name, `spec.${f}`, `must be an integer from ${lo} to ${hi}`);
          ok = false;
        } else p[f] = n;
      }
      if (ok) out.set(it.name, p as unknown as BFDProfile);
    }
    return out;
  }

  private parsePeers(
    c: Collector,
    items: Item[],
    peerNodes: Map<Item, Set<string>>,
    bfd: Map<string, BFDProfile>,
    secrets: readonly RawObject[],
    namespace: string,
  ): Peer[] {
    const out: Peer[] = [];
    for (const it of items) {
      const s = it.spec;
      const add = (path: string, reason: string, transient = false) =>
        c.add(it.kind, it.name, path, reason, transient);
      const before = c.problems.length;
      const myASN = num(s.myASN) ?? 0;
      if (myASN === 0) add('spec.myASN', 'must not be 0');
      const peerASN = num(s.peerASN) ?? 0;
      const dyn = str(s.dynamicASN);
      if (peerASN !== 0 && dyn) add('spec.dynamicASN', 'peerASN and dynamicASN are mutually exclusive');
      if (peerASN === 0 && !dyn) add('spec.peerASN', 'one of peerASN or dynamicASN must be set');
      if (dyn && dyn !== 'internal' && dyn !== 'external') {
        add('spec.dynamicASN', `"${dyn}" is not one of internal, external`);
      }
      const ebgpMultiHop = bool(s.ebgpMultiHop, false);
      if (ebgpMultiHop && peerASN !== 0 && peerASN === myASN) {
        add('spec.ebgpMultiHop', 'cannot be set for an iBGP peer (peerASN equals myASN)');
      }
      const addrText = str(s.peerAddress);
      const iface = str(s.interface);
      if (addrText && iface) add('spec.interface', 'peerAddress and interface are mutually exclusive');
      if (!addrText && !iface) add('spec.peerAddress', 'one of peerAddress or interface must be set');
      const parseAddr = (field: string): IPAddress | undefined => {
        const t = s[field];
        if (t === undefined || t === '') return undefined;
        const r = parseIP(str(t));
        if (!r.ok) {
          add(`spec.${field}`, `invalid IP address "${str(t)}": ${r.reason}`);
          return undefined;
        }
        return r.value;
      };
      const address = addrText ? parseAddr('peerAddress') : undefined;
      const sourceAddress = parseAddr('sourceAddress');
      const routerID = parseAddr('routerID');
      // FRR's `bgp router-id` takes only A.B.C.D; upstream accepts any IP and FRR then rejects the line.
      if (routerID && routerID.family !== 4)
        add('spec.routerID', 'must be an IPv4 address (a BGP router ID is 32 bits)');
      if (iface) {
        const p = interfaceNameProblem(iface);
        if (p) add('spec.interface', p);
      }
      const vrf = str(s.vrf);
      if (vrf) {
        const p = vrfNameProblem(vrf);
        if (p) add('spec.vrf', p);
      }
      // Timers (layer 3 rules of a.4).
      const dur = (field: string): number | undefined => {
        if (s[field] === undefined || s[field] === null) return undefined;
        const r = parseDuration(s[field]);
        if (!r.ok) {
          add(`spec.${field}`, r.reason);
          return undefined;
        }
        if (r.ns < 0) {
          add(`spec.${field}`, 'must not be negative');
          return undefined;
        }
        return r.ns;
      };
      let hold = dur('holdTime');
      let keep = dur('keepaliveTime');
      if (hold !== undefined && keep === undefined) keep = hold / 3;
      else if (keep !== undefined && hold === undefined) hold = keep * 3;
      let holdS: number | undefined;
      let keepS: number | undefined;
      if (hold !== undefined && keep !== undefined) {
        holdS = Math.trunc(hold / NS_PER_SECOND);
        keepS = Math.trunc(keep / NS_PER_SECOND);
        if (holdS !== 0 && holdS < 3) add('spec.holdTime', 'must be 0 or at least 3s');
        if (keep > hold) add('spec.keepaliveTime', 'must not exceed holdTime');
      }
      let connectS: number | undefined;
      const connect = dur('connectTime');
      if (connect !== undefined) {
        if (connect % NS_PER_SECOND !== 0 || connect < NS_PER_SECOND || connect > 65535 * NS_PER_SECOND) {
          add('spec.connectTime', 'must be a whole number of seconds from 1s to 65535s');
        } else connectS = connect / NS_PER_SECOND;
      }
      // Passwords: inline or from a basic-auth Secret, never both.
      let password: string | undefined;
      const ref = (s.passwordSecret ?? {}) as Spec;
      const refName = str(ref.name);
      if (str(s.password) && refName)
        add('spec.passwordSecret', 'password and passwordSecret are mutually exclusive');
      else if (str(s.password)) {
        const p = passwordProblem(str(s.password));
        if (p) add('spec.password', p);
        else password = str(s.password);
      } else if (refName) {
        const sec = secrets.find(
          (x) => x.metadata?.name === refName && (x.metadata?.namespace ?? namespace) === namespace,
        );
        if (!sec)
          add('spec.passwordSecret.name', `Secret "${refName}" not found in namespace "${namespace}"`, true);
        else if (sec.type !== 'kubernetes.io/basic-auth') {
          add(
            'spec.passwordSecret.name',
            `Secret "${refName}" has type "${str(sec.type)}", kubernetes.io/basic-auth is required`,
          );
        } else {
          const pw = secretValue(sec, 'password');
          if (pw === undefined) add('spec.passwordSecret.name', `Secret "${refName}" has no "password" key`);
          else {
            const p = passwordProblem(pw);
            if (p) add('spec.passwordSecret.name', `Secret "${refName}": ${p}`);
            else password = pw;
          }
        }
      }
      const bfdProfile = str(s.bfdProfile);
      if (bfdProfile && !bfd.has(bfdProfile))
        add('spec.bfdProfile', `BFDProfile "${bfdProfile}" not found`, true);
      const localASN = num(s.localASN) ?? 0;
      if (localASN < 0 || localASN > MAX_U32) add('spec.localASN', 'must be 0-4294967295');
      if (c.problems.length !== before) continue;
      out.push({
        name: it.name,
        myASN,
        peerASN,
        ...(dyn ? { dynamicASN: dyn as 'internal' | 'external' } : {}),
        localASN,
        ...(address ? { address } : {}),
        ...(iface ? { interface: iface } : {}),
        ...(sourceAddress ? { sourceAddress } : {}),
        port: num(s.peerPort) ?? 0,
        ...(holdS !== undefined ? { holdTime: holdS, keepaliveTime: keepS } : {}),
        ...(connectS !== undefined ? { connectTime: connectS } : {}),
        ...(routerID ? { routerID } : {}),
        nodes: peerNodes.get(it)!,
        ...(password !== undefined ? { password } : {}),
        ...(bfdProfile ? { bfdProfile } : {}),
        enableGracefulRestart: bool(s.enableGracefulRestart, false),
        ebgpMultiHop,
        vrf,
        dualStackAddressFamily: bool(s.dualStackAddressFamily, false),
      });
    }
    return out;
  }

  private parseCommunities(c: Collector, items: Item[]): Map<string, CommunityValue> {
    const out = new Map<string, CommunityValue>();
    const owner = new Map<string, string>();
    for (const it of items) {
      const list = Array.isArray(it.spec.communities) ? (it.spec.communities as Spec[]) : [];
      list.forEach((e, i) => {
        const name = str(e?.name);
        const p = `spec.communities[${i}]`;
        const np = communityAliasProblem(name);
        if (np) {
          c.add(it.kind, it.name, `${p}.name`, np);
          return;
        }
        const r = parseCommunity(str(e?.value));
        if (!r.ok) {
          c.add(it.kind, it.name, `${p}.value`, r.reason);
          return;
        }
        const prev = owner.get(name);
        if (prev !== undefined) {
          c.add(it.kind, it.name, `${p}.name`, `alias "${name}" is already defined in ${prev}`);
          return;
        }
        owner.set(name, `Community/${it.name}`);
        out.set(name, r.value);
      });
    }
    return out;
  }

  private parsePools(c: Collector, items: Item[], namespaces: readonly NamespaceInfo[]): Map<string, Pool> {
    const out = new Map<string, Pool>();
    const seen: Array<{ prefix: Prefix; owner: string; text: string }> = [];
    const sorted = [...items].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const it of sorted) {
      const before = c.problems.length;
      const addrs = Array.isArray(it.spec.addresses) ? (it.spec.addresses as unknown[]) : [];
      if (addrs.length === 0)
        c.add(it.kind, it.name, 'spec.addresses', 'must list at least one CIDR or range');
      const entries: AddressEntry[] = [];
      addrs.forEach((a, i) => {
        const r = parseAddressEntry(str(a));
        if (!r.ok) {
          c.add(it.kind, it.name, `spec.addresses[${i}]`, r.reason);
          return;
        }
        for (const p of r.value) {
          const clash = seen.find(
            (s) =>
              s.prefix.family === p.family &&
              s.prefix.base <= prefixLast(p) &&
              p.base <= prefixLast(s.prefix),
          );
          if (clash) {
            c.add(
              it.kind,
              it.name,
              `spec.addresses[${i}]`,
              `${formatPrefix(p)} overlaps ${formatPrefix(clash.prefix)} ("${clash.text}") of ${clash.owner}`,
            );
          }
          seen.push({ prefix: p, owner: `IPAddressPool/${it.name}`, text: str(a) });
        }
        entries.push({ text: str(a), cidrs: r.value });
      });
      const sa = this.parseServiceAllocation(c, it, namespaces);
      if (c.problems.length !== before) continue;
      out.set(it.name, {
        name: it.name,
        labels: it.labels,
        entries,
        cidrs: entries.flatMap((e) => e.cidrs),
        autoAssign: bool(it.spec.autoAssign, true),
        avoidBuggyIPs: bool(it.spec.avoidBuggyIPs, false),
        ...(sa ? { serviceAllocation: sa } : {}),
        l2Advertisements: [],
        bgpAdvertisements: [],
      });
    }
    return out;
  }

  private parseServiceAllocation(
    c: Collector,
    it: Item,
    namespaces: readonly NamespaceInfo[],
  ): ServiceAllocation | undefined {
    const raw = it.spec.serviceAllocation;
    if (raw === undefined || raw === null) return undefined;
    const sa = raw as Spec;
    const nsList = asStringList(sa.namespaces);
    c.duplicates(it, 'spec.serviceAllocation.namespaces', sa.namespaces);
    const nsSelRaw = asSelectorList(sa.namespaceSelectors);
    const svcSelRaw = asSelectorList(sa.serviceSelectors);
    const pr = num(sa.priority) ?? 0;
    const priority = pr > 0 ? pr : 0;
    if (nsList.length === 0 && nsSelRaw.length === 0 && svcSelRaw.length === 0) {
      // No restriction at all: an implicit match-all service selector (pinned for everyone).
      return { priority, namespaces: new Set(), serviceSelectors: [MATCH_ALL] };
    }
    const nsSel = c.selectors(it, 'spec.serviceAllocation.namespaceSelectors', nsSelRaw);
    const svcSel = c.selectors(it, 'spec.serviceAllocation.serviceSelectors', svcSelRaw);
    const set = new Set(nsList);
    for (const ns of namespaces) if (nsSel.some((s) => s.matches(ns.labels))) set.add(ns.name);
    return { priority, namespaces: set, serviceSelectors: svcSel };
  }

  private poolsSelected(c: Collector, it: Item, pools: Item[], poolMap: Map<string, Pool>): string[] {
    const named = asStringList(it.spec.ipAddressPools);
    const selRaw = asSelectorList(it.spec.ipAddressPoolSelectors);
    c.duplicates(it, 'spec.ipAddressPools', it.spec.ipAddressPools);
    const sels = c.selectors(it, 'spec.ipAddressPoolSelectors', selRaw);
    if (named.length === 0 && selRaw.length === 0) return [...poolMap.keys()].sort();
    const out = new Set(named.filter((n) => poolMap.has(n)));
    for (const p of pools) if (poolMap.has(p.name) && sels.some((s) => s.matches(p.labels))) out.add(p.name);
    return [...out].sort();
  }

  private parseL2(
    c: Collector,
    items: Item[],
    pools: Item[],
    poolMap: Map<string, Pool>,
    nodes: NodeInfo[],
  ): Map<string, L2Advertisement[]> {
    const out = new Map<string, L2Advertisement[]>();
    const dedupKey = new Map<string, Set<string>>();
    for (const it of items) {
      const before = c.problems.length;
      const selected = this.poolsSelected(c, it, pools, poolMap);
      const nodeSelRaw = asSelectorList(it.spec.nodeSelectors);
      const nodeSel = c.selectors(it, 'spec.nodeSelectors', nodeSelRaw);
      const svcSel = c.selectors(it, 'spec.serviceSelectors', it.spec.serviceSelectors);
      const interfaces = asStringList(it.spec.interfaces);
      interfaces.forEach((n, i) => {
        const p = interfaceNameProblem(n);
        if (p) c.add(it.kind, it.name, `spec.interfaces[${i}]`, p);
      });
      const prefs = Array.isArray(it.spec.preferredNodeSelectors)
        ? (it.spec.preferredNodeSelectors as Spec[])
        : [];
      const prefSel = c.selectors(
        it,
        'spec.preferredNodeSelectors',
        prefs.map((p) => p?.preference ?? {}),
      );
      if (c.problems.length !== before) continue;
      const nodeSet = selectNodes(nodes, nodeSel, nodeSelRaw.length > 0);
      const preferred = new Map<string, number>();
      for (const n of nodes) {
        if (!nodeSet.has(n.name)) continue;
        let total = 0;
        prefSel.forEach((s, i) => {
          if (s.matches(n.labels)) total += num(prefs[i]?.weight) ?? 0;
        });
        if (total > 0) preferred.set(n.name, total);
      }
      const ad: L2Advertisement = {
        name: it.name,
        nodes: nodeSet,
        interfaces,
        allInterfaces: interfaces.length === 0,
        serviceSelectors: svcSel,
        preferredNodes: preferred,
      };
      const key = JSON.stringify([
        [...nodeSet].sort(),
        [...interfaces].sort(),
        ad.allInterfaces,
        svcSel.map((s) => s.text).sort(),
      ]);
      for (const pool of selected) {
        if (preferred.size === 0 && prefs.length === 0) {
          const keys = dedupKey.get(pool) ?? new Set<string>();
          if (keys.has(key)) continue;
          keys.add(key);
          dedupKey.set(pool, keys);
        }
        const list = out.get(pool) ?? [];
        list.push(ad);
        out.set(pool, list);
      }
    }
    return out;
  }

  private parseBgpAds(
    c: Collector,
    items: Item[],
    pools: Item[],
    poolMap: Map<string, Pool>,
    nodes: NodeInfo[],
    communities: Map<string, CommunityValue>,
    nodeName: string | undefined,
  ): Map<string, Array<{ ad: BGPAdvertisement; item: Item }>> {
    const out = new Map<string, Array<{ ad: BGPAdvertisement; item: Item }>>();
    for (const it of items) {
      const s = it.spec;
      const add = (path: string, reason: string, transient = false) =>
        c.add(it.kind, it.name, path, reason, transient);
      const before = c.problems.length;
      const nodeSelRaw = asSelectorList(s.nodeSelectors);
      const nodeSel = c.selectors(it, 'spec.nodeSelectors', nodeSelRaw);
      const nodeSet = selectNodes(nodes, nodeSel, nodeSelRaw.length > 0);
      if (nodeName !== undefined && c.problems.length === before && !nodeSet.has(nodeName)) continue;
      const selected = this.poolsSelected(c, it, pools, poolMap);
      c.duplicates(it, 'spec.communities', s.communities);
      c.duplicates(it, 'spec.peers', s.peers);
      const svcSelRaw = asSelectorList(s.serviceSelectors);
      const svcSel = c.selectors(it, 'spec.serviceSelectors', svcSelRaw);
      const agg = num(s.aggregationLength) ?? 32;
      const agg6 = num(s.aggregationLengthV6) ?? 128;
      if (svcSelRaw.length > 0 && agg !== 32) {
        add('spec.aggregationLength', 'cannot be combined with serviceSelectors (must stay 32)');
      }
      if (svcSelRaw.length > 0 && agg6 !== 128) {
        add('spec.aggregationLengthV6', 'cannot be combined with serviceSelectors (must stay 128)');
      }
      if (agg > 32 || agg < 1)
        add('spec.aggregationLength', `${agg} is not a valid IPv4 prefix length (1-32)`);
      if (agg6 > 128 || agg6 < 1)
        add('spec.aggregationLengthV6', `${agg6} is not a valid IPv6 prefix length (1-128)`);
      const comms = new Map<string, CommunityValue>();
      asStringList(s.communities).forEach((item, i) => {
        const alias = communities.get(item);
        if (alias) {
          comms.set(alias.text, alias);
          return;
        }
        const r = parseCommunity(item);
        if (r.ok) comms.set(r.value.text, r.value);
        else if (r.shape) add(`spec.communities[${i}]`, r.reason);
        else
          add(
            `spec.communities[${i}]`,
            `"${item}" is not a known Community alias nor A:B / large:A:B:C`,
            true,
          );
      });
      const localPref = num(s.localPref) ?? 0;
      if (c.problems.length !== before) continue;
      const ad: BGPAdvertisement = {
        name: it.name,
        aggregationLength: agg,
        aggregationLengthV6: agg6,
        localPref,
        communities: [...comms.values()].sort(compareCommunity),
        nodes: nodeSet,
        peers: asStringList(s.peers),
        serviceSelectors: svcSel,
      };
      for (const poolName of selected) {
        const pool = poolMap.get(poolName)!;
        // Rule 24: the aggregate must cover each address entry's largest block.
        for (const e of pool.entries) {
          const fam = e.cidrs[0]!.family;
          const shortest = Math.min(...e.cidrs.map((p) => p.length));
          const len = fam === 4 ? agg : agg6;
          if (len < shortest) {
            add(
              fam === 4 ? 'spec.aggregationLength' : 'spec.aggregationLengthV6',
              `${len} is shorter than /${shortest} of "${e.text}" in IPAddressPool/${poolName}`,
            );
          }
        }
        const list = out.get(poolName) ?? [];
        // Rule 25: LOCAL_PREF consistency between ads without service selectors.
        if (svcSelRaw.length === 0) {
          for (const other of list) {
            if (other.ad.serviceSelectors.length > 0 || other.ad.localPref === ad.localPref) continue;
            if (!localPrefCompatible(pool, other.ad, ad, nodes.length === 0)) {
              add(
                'spec.localPref',
                `${ad.localPref} conflicts with localPref ${other.ad.localPref} of BGPAdvertisement/${other.ad.name} for IPAddressPool/${poolName}`,
              );
            }
          }
        }
        list.push({ ad, item: it });
        out.set(poolName, list);
      }
    }
    return out;
  }

  /**
   * The `extras` key of ConfigMap `bgpextras` (spec e.1.6), appended verbatim to frr.conf. It is an
   * unsupported escape hatch, but still kept to printable text lines; the FRR applier dry-runs the
   * whole file before it reaches FRR.
   */
  private parseExtras(c: Collector, maps: readonly RawObject[], namespace: string): string {
    const cm = maps.find(
      (m) => m.metadata?.name === 'bgpextras' && (m.metadata?.namespace ?? namespace) === namespace,
    );
    if (!cm) return '';
    const value = asRecord(cm.data).extras;
    if (value === undefined) return '';
    if (typeof value !== 'string') {
      c.add('ConfigMap', 'bgpextras', 'data.extras', 'must be a string');
      return '';
    }
    const lines = value.split('\n');
    const bad = lines.findIndex((l) => !/^[\x20-\x7e\t]*$/.test(l));
    if (bad !== -1) {
      c.add(
        'ConfigMap',
        'bgpextras',
        'data.extras',
        `line ${bad + 1} contains a control or non-ASCII character`,
      );
      return '';
    }
    const text = lines.filter((l) => l.trim() !== '').join('\n');
    return text ? `${text}\n` : '';
  }

  /** Rule 26: BFD echo mode cannot be used with IPv6 pools. */
  private bfdEchoV6(
    c: Collector,
    pools: Map<string, Pool>,
    bgpByPool: Map<string, Array<{ ad: BGPAdvertisement; item: Item }>>,
    peers: Peer[],
    bfd: Map<string, BFDProfile>,
  ): void {
    const reported = new Set<string>();
    for (const [poolName, ads] of bgpByPool) {
      const pool = pools.get(poolName)!;
      if (!pool.cidrs.some((p) => p.family === 6)) continue;
      for (const { ad } of ads) {
        for (const peer of peers) {
          if (ad.peers.length > 0 && !ad.peers.includes(peer.name)) continue;
          const prof = peer.bfdProfile ? bfd.get(peer.bfdProfile) : undefined;
          if (!prof?.echoMode) continue;
          const key = `${ad.name}/${peer.name}`;
          if (reported.has(key)) continue;
          reported.add(key);
          c.add(
            'BGPAdvertisement',
            ad.name,
            'spec.peers',
            `advertises IPv6 IPAddressPool/${poolName} to BGPPeer/${peer.name} whose BFDProfile/${prof.name} has echoMode, which FRR does not support for IPv6`,
          );
        }
      }
    }
  }
}

/**
 * The three escapes of a.3 that allow two different LOCAL_PREFs on one pool. With no Node known
 * (offline validation) the node sets are taken to overlap, as the cross-peer rules assume.
 */
export function localPrefCompatible(
  pool: Pool,
  a: BGPAdvertisement,
  b: BGPAdvertisement,
  noNodesKnown = false,
): boolean {
  const has4 = pool.cidrs.some((p) => p.family === 4);
  const has6 = pool.cidrs.some((p) => p.family === 6);
  const aggDiffer =
    (!has4 || a.aggregationLength !== b.aggregationLength) &&
    (!has6 || a.aggregationLengthV6 !== b.aggregationLengthV6);
  if ((has4 || has6) && aggDiffer) return true;
  if (a.peers.length > 0 && b.peers.length > 0 && !a.peers.some((p) => b.peers.includes(p))) return true;
  return !noNodesKnown && disjoint(a.nodes, b.nodes);
}

function secretValue(sec: RawObject, key: string): string | undefined {
  const sd = sec.stringData as Record<string, unknown> | undefined;
  if (sd && typeof sd[key] === 'string') return sd[key];
  const d = sec.data as Record<string, unknown> | undefined;
  if (d && typeof d[key] === 'string') return Buffer.from(d[key], 'base64').toString('utf8');
  return undefined;
}
