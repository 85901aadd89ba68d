/**
 * What a speaker knows about Services, endpoints and nodes, extracted from Kubernetes objects
 * (spec d.0). Pure data plus small lookups; the announcement rules live in bgp.ts and l2.ts.
 */
import { formatIP, parseIP, type IPAddress } from '../ip/ip.js';
import type { Config, NodeInfo, Pool } from '../config/model.js';
import type { Labels } from '../config/selector.js';
import { annotation, ANN_ALLOW_SHARED_IP, serviceKey } from '../allocator/service.js';
import type { RawObject } from '../config/parse.js';
import { asArray, asRecord, asString, asStringMap } from '../util/shape.js';

export const EXCLUDE_LB_LABEL = 'node.kubernetes.io/exclude-from-external-load-balancers';

export interface SpeakerService {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly labels: Labels;
  /** Has `allow-shared-ip` under either prefix, any value (L2 rule d.1.3). */
  readonly hasSharedIPAnnotation: boolean;
  readonly etpLocal: boolean;
  /** Parsed ingress IPs in status order; empty when none or when any entry is unparsable. */
  readonly ips: readonly IPAddress[];
  readonly isLoadBalancer: boolean;
  readonly loadBalancerClass?: string;
}

export interface Endpoint {
  readonly serving: boolean;
  readonly nodeName?: string;
  readonly addressCount: number;
}

/** Serving endpoints per Service key. `undefined` for a key = no EndpointSlice information. */
export interface EndpointIndex {
  /** d.1.2 / d.3.5 ETP Cluster: a serving endpoint with an address anywhere. */
  servingAnywhere(key: string): boolean;
  /** ETP Local: a serving endpoint with an address on this node. */
  servingOn(key: string, node: string): boolean;
  /** Nodes hosting a serving endpoint (L2 ETP Local candidates). */
  servingNodes(key: string): ReadonlySet<string>;
}

/** Every Service is served everywhere: the stand-in when no EndpointSlices are given. */
export const EVERYWHERE: EndpointIndex = {
  servingAnywhere: () => true,
  servingOn: () => true,
  servingNodes: () => new Set<string>(['*']),
};

/** Serving = ready absent or true, or serving true (terminating-but-serving counts). */
export function isServing(
  conditions: { ready?: boolean | null; serving?: boolean | null } | undefined,
): boolean {
  const c = conditions ?? {};
  return c.ready === undefined || c.ready === null || c.ready === true || c.serving === true;
}

export function endpointIndexFrom(slices: readonly RawObject[]): EndpointIndex {
  const byKey = new Map<string, Endpoint[]>();
  for (const s of slices) {
    const meta = asRecord(s.metadata);
    const svc = asStringMap(meta.labels)['kubernetes.io/service-name'];
    if (!svc) continue;
    const key = `${asString(meta.namespace) ?? 'default'}/${svc}`;
    const eps = asArray(s.endpoints).map(asRecord);
    const list = byKey.get(key) ?? [];
    for (const e of eps) {
      const addrs = Array.isArray(e.addresses) ? e.addresses.length : 0;
      list.push({
        serving: isServing(asRecord(e.conditions)),
        ...(typeof e.nodeName === 'string' ? { nodeName: e.nodeName } : {}),
        addressCount: addrs,
      });
    }
    byKey.set(key, list);
  }
  return {
    servingAnywhere: (key) => (byKey.get(key) ?? []).some((e) => e.serving && e.addressCount > 0),
    servingOn: (key, node) =>
      (byKey.get(key) ?? []).some((e) => e.serving && e.addressCount > 0 && e.nodeName === node),
    servingNodes: (key) =>
      new Set(
        (byKey.get(key) ?? [])
          .filter((e) => e.serving && e.addressCount > 0 && e.nodeName)
          .map((e) => e.nodeName!),
      ),
  };
}

export function speakerServiceFrom(obj: RawObject): SpeakerService {
  const meta = asRecord(obj.metadata);
  const spec = asRecord(obj.spec);
  const ingress = asArray(asRecord(asRecord(obj.status).loadBalancer).ingress)
    .map((i) => asString(asRecord(i).ip))
    .filter((x): x is string => !!x);
  const ips: IPAddress[] = [];
  let bad = false;
  for (const t of ingress) {
    const r = parseIP(t);
    if (r.ok) ips.push(r.value);
    else bad = true;
  }
  const namespace = asString(meta.namespace) ?? 'default';
  const name = asString(meta.name) ?? '';
  const lbClass = asString(spec.loadBalancerClass);
  return {
    key: serviceKey({ namespace, name }),
    namespace,
    name,
    labels: asStringMap(meta.labels),
    hasSharedIPAnnotation: annotation(asStringMap(meta.annotations), ANN_ALLOW_SHARED_IP) !== undefined,
    etpLocal: spec.externalTrafficPolicy === 'Local',
    ips: bad ? [] : ips,
    isLoadBalancer: spec.type === 'LoadBalancer',
    ...(lbClass ? { loadBalancerClass: lbClass } : {}),
  };
}

/** Pool whose CIDRs contain all the IPs (avoidBuggyIPs not considered, spec d.0.3). */
export function poolOfIPs(config: Config, ips: readonly IPAddress[]): Pool | undefined {
  if (ips.length === 0) return undefined;
  for (const pool of config.pools.values()) {
    if (
      ips.every((ip) =>
        pool.cidrs.some((c) => c.family === ip.family && ip.value >= c.base && ip.value <= lastOf(c)),
      )
    ) {
      return pool;
    }
  }
  return undefined;
}

function lastOf(c: { family: 4 | 6; base: bigint; length: number }): bigint {
  return c.base | ((1n << BigInt((c.family === 4 ? 32 : 128) - c.length)) - 1n);
}

/** Node excluded from announcing (spec g): NetworkUnavailable, or the exclusion label. */
export function nodeExcluded(node: NodeInfo | undefined, ignoreExcludeLabel = false): boolean {
  if (!node) return false;
  if (node.networkUnavailable) return true;
  return !ignoreExcludeLabel && Object.prototype.hasOwnProperty.call(node.labels, EXCLUDE_LB_LABEL);
}

export function ipText(ip: IPAddress): string {
  return formatIP(ip);
}
