/**
 * What the allocator reads from a Service (spec b), already extracted from the Kubernetes object.
 * Annotation lookups honour both prefixes: a present `metallb.io/` key wins over
 * `metallb.universe.tf/`.
 */
import { parseIP, type Family, type IPAddress } from '../ip/ip.js';
import type { Labels } from '../config/selector.js';
import type { Port } from './allocator.js';
import { asArray, asNumber, asRecord, asString, asStringMap } from '../util/shape.js';

export const ANNOTATION_PREFIXES = ['metallb.io/', 'metallb.universe.tf/'] as const;
export const ANN_ADDRESS_POOL = 'address-pool';
export const ANN_LOADBALANCER_IPS = 'loadBalancerIPs';
export const ANN_ALLOW_SHARED_IP = 'allow-shared-ip';
export const ANN_ALLOCATED_FROM_POOL = 'metallb.io/ip-allocated-from-pool';

export type ClusterFamily = 4 | 6 | 'dual' | 'none' | 'unknown';

export interface ServiceInfo {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Labels;
  readonly annotations: Readonly<Record<string, string>>;
  readonly type: string;
  readonly loadBalancerClass?: string;
  /** Family of spec.clusterIPs (or the CLI's ipFamilies stand-in). */
  readonly clusterFamily: ClusterFamily;
  readonly clusterIPCount: number;
  readonly ipFamilyPolicy: 'SingleStack' | 'PreferDualStack' | 'RequireDualStack';
  /** spec.ipFamilies[0] == IPv6 makes IPv6 primary for the PreferDualStack fallback. */
  readonly primaryFamily: Family;
  readonly loadBalancerIP?: string;
  readonly externalTrafficPolicy: 'Cluster' | 'Local';
  readonly selector?: Readonly<Record<string, string>>;
  readonly ports: readonly Port[];
  /** status.loadBalancer.ingress[].ip entries (hostname-only entries left out). */
  readonly ingressIPs: readonly string[];
}

export function serviceKey(s: { namespace: string; name: string }): string {
  return `${s.namespace}/${s.name}`;
}

/** Annotation value under either prefix; `metallb.io/` wins when present, even if empty. */
export function annotation(
  ann: Readonly<Record<string, string>>,
  name: string,
): { value: string; deprecated: boolean } | undefined {
  const cur = ann[`metallb.io/${name}`];
  if (cur !== undefined) return { value: cur, deprecated: false };
  const old = ann[`metallb.universe.tf/${name}`];
  if (old !== undefined) return { value: old, deprecated: true };
  return undefined;
}

/** `metallb.universe.tf/` keys present, for the deprecatedAnnotation event. */
export function deprecatedAnnotationKeys(ann: Readonly<Record<string, string>>): string[] {
  return Object.keys(ann)
    .filter((k) => k.startsWith('metallb.universe.tf/'))
    .sort();
}

export function familyOfIPs(ips: readonly IPAddress[]): ClusterFamily {
  if (ips.length === 1) return ips[0]!.family;
  if (ips.length === 2 && ips[0]!.family !== ips[1]!.family) return 'dual';
  return 'unknown';
}

export function clusterFamilyOf(clusterIPs: readonly string[]): ClusterFamily {
  const ips = clusterIPs.filter((x) => x && x !== 'None');
  if (ips.length === 0) return 'none';
  const parsed: IPAddress[] = [];
  for (const t of ips) {
    const r = parseIP(t);
    if (!r.ok) return 'unknown';
    parsed.push(r.value);
  }
  return familyOfIPs(parsed);
}

/** Sharing backend key: the canonical pod selector under ETP Local, "" otherwise (spec c.1). */
export function backendKey(s: ServiceInfo): string {
  if (s.externalTrafficPolicy !== 'Local') return '';
  const sel = s.selector ?? {};
  return Object.keys(sel)
    .sort()
    .map((k) => `${k}=${sel[k]}`)
    .join(',');
}

export function sharingKey(s: ServiceInfo): string {
  return annotation(s.annotations, ANN_ALLOW_SHARED_IP)?.value ?? '';
}

export type RequestedIPs =
  { kind: 'none' } | { kind: 'ips'; ips: IPAddress[] } | { kind: 'error'; reason: string };

/** spec.loadBalancerIP and the loadBalancerIPs annotation (spec b). */
export function requestedIPs(s: ServiceInfo): RequestedIPs {
  const ann = annotation(s.annotations, ANN_LOADBALANCER_IPS);
  const annText = ann?.value.trim() ?? '';
  const lbip = s.loadBalancerIP?.trim() ?? '';
  if (annText && lbip) {
    return {
      kind: 'error',
      reason: 'spec.loadBalancerIP and the loadBalancerIPs annotation cannot both be set',
    };
  }
  if (lbip) {
    const r = parseIP(lbip);
    if (!r.ok) return { kind: 'error', reason: `spec.loadBalancerIP "${lbip}": ${r.reason}` };
    return { kind: 'ips', ips: [r.value] };
  }
  if (!annText) return { kind: 'none' };
  const items = annText.split(',').map((x) => x.trim());
  if (items.length > 2)
    return { kind: 'error', reason: 'loadBalancerIPs annotation lists more than two IPs' };
  const ips: IPAddress[] = [];
  for (const it of items) {
    const r = parseIP(it);
    if (!r.ok) return { kind: 'error', reason: `loadBalancerIPs annotation item "${it}": ${r.reason}` };
    ips.push(r.value);
  }
  if (ips.length === 2 && ips[0]!.family === ips[1]!.family) {
    return { kind: 'error', reason: 'loadBalancerIPs annotation lists two IPs of the same family' };
  }
  return { kind: 'ips', ips };
}

/** Only `(protocol, port)` matters for sharing; protocol defaults to TCP. */
export function normalisePorts(
  ports: ReadonlyArray<{ protocol?: string; port?: number }> | undefined,
): Port[] {
  return (ports ?? [])
    .filter((p) => typeof p.port === 'number')
    .map((p) => ({ protocol: p.protocol || 'TCP', port: p.port! }));
}

/**
 * Service object → ServiceInfo. With `offline`, a Service without clusterIPs takes its family from
 * spec.ipFamilies (default IPv4; two entries = dual), standing in for what the API server assigns.
 * Fields of the wrong type read as absent.
 */
export function serviceInfoFrom(obj: unknown, offline = false): ServiceInfo {
  const o = asRecord(obj);
  const meta = asRecord(o.metadata);
  const spec = asRecord(o.spec);
  const strings = (v: unknown) => asArray(v).filter((x): x is string => typeof x === 'string');
  const listed = strings(spec.clusterIPs);
  const single = asString(spec.clusterIP);
  const clusterIPs = listed.length ? listed : single ? [single] : [];
  const families = strings(spec.ipFamilies);
  let clusterFamily = clusterFamilyOf(clusterIPs);
  let clusterIPCount = clusterIPs.filter((x) => x && x !== 'None').length;
  if (offline && clusterIPs.length === 0) {
    const fams = families.length ? families : ['IPv4'];
    clusterIPCount = fams.length;
    const set = new Set(fams);
    if (fams.length === 2 && set.has('IPv4') && set.has('IPv6')) clusterFamily = 'dual';
    else if (fams.length === 1 && (set.has('IPv4') || set.has('IPv6')))
      clusterFamily = set.has('IPv6') ? 6 : 4;
    else clusterFamily = 'unknown';
  }
  const policy = asString(spec.ipFamilyPolicy);
  const lbClass = asString(spec.loadBalancerClass);
  const lbIP = asString(spec.loadBalancerIP);
  const selector = spec.selector === undefined ? undefined : asStringMap(spec.selector);
  const ports = asArray(spec.ports).map(asRecord);
  const ingress = asArray(asRecord(asRecord(o.status).loadBalancer).ingress).map(asRecord);
  return {
    namespace: asString(meta.namespace) ?? 'default',
    name: asString(meta.name) ?? '',
    labels: asStringMap(meta.labels),
    annotations: asStringMap(meta.annotations),
    type: asString(spec.type) ?? 'ClusterIP',
    ...(lbClass ? { loadBalancerClass: lbClass } : {}),
    clusterFamily,
    clusterIPCount,
    ipFamilyPolicy: policy === 'PreferDualStack' || policy === 'RequireDualStack' ? policy : 'SingleStack',
    primaryFamily: families[0] === 'IPv6' ? 6 : 4,
    ...(lbIP ? { loadBalancerIP: lbIP } : {}),
    externalTrafficPolicy: spec.externalTrafficPolicy === 'Local' ? 'Local' : 'Cluster',
    ...(selector ? { selector } : {}),
    ports: normalisePorts(ports.map((p) => ({ protocol: asString(p.protocol), port: asNumber(p.port) }))),
    ingressIPs: ingress.map((i) => asString(i.ip)).filter((x): x is string => !!x),
  };
}

/** `--lb-class`: empty flag handles only class-less Services; else only that class (spec b). */
export function classMatches(s: ServiceInfo, lbClass: string): boolean {
  return lbClass === '' ? !s.loadBalancerClass : s.loadBalancerClass === lbClass;
}
