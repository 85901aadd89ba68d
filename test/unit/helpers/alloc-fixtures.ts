/**
 * Terse fixtures for allocator tests: pools are written as YAML-like IPAddressPool specs and go
 * through the real ConfigParser (with the CRD schemas when they load), Services are built as
 * Kubernetes objects and go through serviceInfoFrom, and `Cluster` plays the controller: it
 * converges Services and writes status / pool annotation back the way spec c.2 step 10 says.
 *
 * Addresses used by the tests are documentation ranges only (192.0.2.0/24, 198.51.100.0/24,
 * 203.0.113.0/24, 2001:db8::/32). ClusterIPs only decide the family; they never meet a pool.
 */
import { AllocationCore, type ServiceOutcome } from '../../../src/allocator/converge.js';
import {
  ANN_ALLOCATED_FROM_POOL,
  serviceInfoFrom,
  type ServiceInfo,
} from '../../../src/allocator/service.js';
import type { Pool } from '../../../src/config/model.js';
import {
  ConfigParser,
  DEFAULT_NAMESPACE,
  emptyInput,
  type RawObject,
  type SchemaValidator,
} from '../../../src/config/parse.js';
import type { Problem } from '../../../src/config/problems.js';
import { CrdSchemas } from '../../../src/config/schema.js';
import type { LabelSelector, Labels } from '../../../src/config/selector.js';

/** ClusterIPs (never inside a pool used by the tests). */
export const CIP4 = '198.51.100.254';
export const CIP6 = '2001:db8:ffff::1';

const trivialValidator: SchemaValidator = {
  validate: (_k, _v, obj) => ({ value: obj, problems: [] }),
};

function loadValidator(): { validator: SchemaValidator; real: boolean } {
  try {
    return { validator: CrdSchemas.load(), real: true };
  } catch {
    return { validator: trivialValidator, real: false };
  }
}

const loaded = loadValidator();
/** True when the CRD schemas were usable (otherwise defaults come from ConfigParser only). */
export const usingCrdSchemas = loaded.real;
const parser = new ConfigParser(loaded.validator);

/** `spec` of an IPAddressPool, as it would be written in YAML. */
export interface PoolSpec {
  addresses: string[];
  autoAssign?: boolean;
  avoidBuggyIPs?: boolean;
  serviceAllocation?: {
    priority?: number;
    namespaces?: string[];
    namespaceSelectors?: LabelSelector[];
    serviceSelectors?: LabelSelector[];
  };
  /** Not part of spec: metadata.labels of the pool. */
  labels?: Labels;
}

export type PoolDefs = Record<string, PoolSpec>;
/** Namespace name → labels (for namespaceSelectors). */
export type NamespaceDefs = Record<string, Labels>;

function poolObjects(defs: PoolDefs): RawObject[] {
  return Object.entries(defs).map(([name, { labels, ...spec }]) => ({
    apiVersion: 'metallb.io/v1beta1',
    kind: 'IPAddressPool',
    metadata: { name, namespace: DEFAULT_NAMESPACE, ...(labels ? { labels: { ...labels } } : {}) },
    spec: structuredClone(spec),
  }));
}

/** Parses pools; returns the problems (empty on success) and the pools when valid. */
export function tryPools(
  defs: PoolDefs,
  namespaces: NamespaceDefs = {},
): { pools?: ReadonlyMap<string, Pool>; problems: Problem[] } {
  const res = parser.parse(
    {
      ...emptyInput(),
      ipAddressPools: poolObjects(defs),
      namespaces: Object.entries(namespaces).map(([name, labels]) => ({ name, labels })),
    },
    { scope: 'controller' },
  );
  return res.config ? { pools: res.config.pools, problems: [] } : { problems: res.problems };
}

/** Parses pools and throws when the definition is invalid. */
export function pools(defs: PoolDefs, namespaces: NamespaceDefs = {}): ReadonlyMap<string, Pool> {
  const r = tryPools(defs, namespaces);
  if (!r.pools) {
    throw new Error(
      `invalid pools: ${r.problems.map((p) => `${p.kind}/${p.name} ${p.path}: ${p.reason}`).join('; ')}`,
    );
  }
  return r.pools;
}

/** Minimal Kubernetes Service object (the fields ironlb reads). */
export interface K8sService {
  metadata: {
    name: string;
    namespace: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: {
    type?: string;
    loadBalancerClass?: string;
    clusterIP?: string;
    clusterIPs?: string[];
    ipFamilies?: string[];
    ipFamilyPolicy?: string;
    loadBalancerIP?: string;
    externalTrafficPolicy?: string;
    selector?: Record<string, string>;
    ports?: Array<{ protocol?: string; port?: number }>;
  };
  status?: { loadBalancer?: { ingress?: Array<{ ip?: string; hostname?: string }> } };
}

/**
 * Family shorthand: `4`, `6`, `'dual'` (IPv4 first), `'dual6'` (IPv6 first, ipFamilies[0]=IPv6),
 * `'none'` (no ClusterIP yet), or an explicit clusterIPs list.
 */
export type FamilyOpt = 4 | 6 | 'dual' | 'dual6' | 'none' | readonly string[];

export interface SvcOpts {
  ns?: string;
  labels?: Record<string, string>;
  ann?: Record<string, string>;
  type?: string;
  lbClass?: string;
  family?: FamilyOpt;
  policy?: 'SingleStack' | 'PreferDualStack' | 'RequireDualStack';
  /** Overrides the ipFamilies derived from `family`. */
  ipFamilies?: string[];
  lbIP?: string;
  etp?: 'Cluster' | 'Local';
  selector?: Record<string, string>;
  /** `TCP/80`, `UDP/53`, or a bare number (TCP). */
  ports?: ReadonlyArray<string | number>;
  /** Current status.loadBalancer.ingress IPs. */
  status?: readonly string[];
}

function clusterIPsOf(f: FamilyOpt): { clusterIPs: string[]; ipFamilies: string[] } {
  if (typeof f !== 'string' && typeof f !== 'number') return { clusterIPs: [...f], ipFamilies: [] };
  switch (f) {
    case 4:
      return { clusterIPs: [CIP4], ipFamilies: ['IPv4'] };
    case 6:
      return { clusterIPs: [CIP6], ipFamilies: ['IPv6'] };
    case 'dual':
      return { clusterIPs: [CIP4, CIP6], ipFamilies: ['IPv4', 'IPv6'] };
    case 'dual6':
      return { clusterIPs: [CIP6, CIP4], ipFamilies: ['IPv6', 'IPv4'] };
    case 'none':
      return { clusterIPs: [], ipFamilies: [] };
  }
}

function portOf(p: string | number): { protocol: string; port: number } {
  if (typeof p === 'number') return { protocol: 'TCP', port: p };
  const [proto, num] = p.split('/');
  return { protocol: proto!, port: Number(num) };
}

/** A Service object in namespace `default` (unless `ns`), type LoadBalancer, IPv4 SingleStack. */
export function svcObj(name: string, o: SvcOpts = {}): K8sService {
  const fam = clusterIPsOf(o.family ?? 4);
  const ipFamilies = o.ipFamilies ?? fam.ipFamilies;
  const spec: K8sService['spec'] = { type: o.type ?? 'LoadBalancer' };
  if (o.lbClass !== undefined) spec.loadBalancerClass = o.lbClass;
  if (fam.clusterIPs.length) {
    spec.clusterIP = fam.clusterIPs[0]!;
    spec.clusterIPs = fam.clusterIPs;
  }
  if (ipFamilies.length) spec.ipFamilies = ipFamilies;
  if (o.policy) spec.ipFamilyPolicy = o.policy;
  if (o.lbIP !== undefined) spec.loadBalancerIP = o.lbIP;
  if (o.etp) spec.externalTrafficPolicy = o.etp;
  if (o.selector) spec.selector = { ...o.selector };
  spec.ports = (o.ports ?? ['TCP/80']).map(portOf);
  const obj: K8sService = {
    metadata: {
      name,
      namespace: o.ns ?? 'default',
      ...(o.labels ? { labels: { ...o.labels } } : {}),
      ...(o.ann ? { annotations: { ...o.ann } } : {}),
    },
    spec,
  };
  if (o.status) obj.status = { loadBalancer: { ingress: o.status.map((ip) => ({ ip })) } };
  return obj;
}

/** ServiceInfo of svcObj(name, o). */
export function svc(name: string, o: SvcOpts = {}): ServiceInfo {
  return serviceInfoFrom(svcObj(name, o));
}

export function keyOf(o: K8sService): string {
  return `${o.metadata.namespace}/${o.metadata.name}`;
}

/** Event reasons of an outcome, in order. */
export function reasons(out: ServiceOutcome): string[] {
  return out.events.map((e) => e.reason);
}

/**
 * A tiny controller: keeps Service objects, converges them with one AllocationCore and writes the
 * result back (status ingress + `metallb.io/ip-allocated-from-pool`), as spec c.2 step 10 does.
 */
export class Cluster {
  readonly core = new AllocationCore();
  private readonly objs = new Map<string, K8sService>();

  constructor(p?: ReadonlyMap<string, Pool>) {
    if (p) this.core.setPools(p);
  }

  get allocator() {
    return this.core.allocator;
  }

  /** New pool set (c.7); returns the keys whose allocation was dropped. */
  setPools(p: ReadonlyMap<string, Pool>): string[] {
    return this.core.setPools(p);
  }

  /** Adds or replaces a Service object and converges it. */
  apply(o: K8sService): ServiceOutcome {
    const copy = structuredClone(o);
    this.objs.set(keyOf(copy), copy);
    return this.converge(keyOf(copy));
  }

  /** Adds a Service built from options and converges it. */
  add(name: string, o: SvcOpts = {}): ServiceOutcome {
    return this.apply(svcObj(name, o));
  }

  /** Edits the stored object (status included) and converges it. */
  edit(key: string, mutate: (o: K8sService) => void): ServiceOutcome {
    const o = this.object(key);
    mutate(o);
    return this.converge(key);
  }

  /** Converges a stored Service and writes the outcome back. */
  converge(key: string): ServiceOutcome {
    const o = this.object(key);
    const out = this.core.converge(serviceInfoFrom(o));
    if (out.changed) {
      o.status = out.ips.length ? { loadBalancer: { ingress: out.ips.map((ip) => ({ ip })) } } : {};
      const ann = { ...(o.metadata.annotations ?? {}) };
      if (out.pool === null) delete ann[ANN_ALLOCATED_FROM_POOL];
      else ann[ANN_ALLOCATED_FROM_POOL] = out.pool;
      o.metadata.annotations = ann;
    }
    return out;
  }

  /** Deletes a Service; true when a full reprocess should follow. */
  delete(key: string): boolean {
    this.objs.delete(key);
    return this.core.delete(key);
  }

  /** Full reprocess in the c.8 order (two IPs, then one, then none; ties in insertion order). */
  reprocessAll(): Map<string, ServiceOutcome> {
    const keys = [...this.objs.keys()];
    const n = (k: string) => Math.min(this.ips(k).length, 2);
    const order = keys.map((k, i) => ({ k, i })).sort((a, b) => n(b.k) - n(a.k) || a.i - b.i);
    const out = new Map<string, ServiceOutcome>();
    for (const { k } of order) out.set(k, this.converge(k));
    return out;
  }

  object(key: string): K8sService {
    const o = this.objs.get(key);
    if (!o) throw new Error(`no Service ${key}`);
    return o;
  }

  /** Current status IPs as written. */
  ips(key: string): string[] {
    return (this.object(key).status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '');
  }

  /** Current pool annotation as written (undefined when absent). */
  pool(key: string): string | undefined {
    return this.object(key).metadata.annotations?.[ANN_ALLOCATED_FROM_POOL];
  }
}
