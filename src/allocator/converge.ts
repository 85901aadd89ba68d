/**
 * Convergence of one Service (spec c.2) on top of the Allocator: which IPs its status should
 * carry, which events to emit and whether every Service must be reprocessed. Pure: the Kubernetes
 * controller and `ironlb allocate` both drive it.
 */
import { formatIP, type Family, type IPAddress } from '../ip/ip.js';
import type { Pool } from '../config/model.js';
import { Allocator, type AllocRequest, type Allocation, type Outcome } from './allocator.js';
import {
  ANN_ADDRESS_POOL,
  ANN_ALLOCATED_FROM_POOL,
  annotation,
  backendKey,
  deprecatedAnnotationKeys,
  familyOfIPs,
  requestedIPs,
  serviceKey,
  sharingKey,
  type ServiceInfo,
} from './service.js';
import { parseIP } from '../ip/ip.js';

export interface ServiceEvent {
  readonly type: 'Normal' | 'Warning';
  readonly reason: string;
  readonly message: string;
}

export type ConvergeResult = 'ok' | 'error' | 'reprocessAll';

export interface ServiceOutcome {
  readonly key: string;
  /** Desired status.loadBalancer.ingress IPs, in order. */
  readonly ips: readonly string[];
  /** Desired ip-allocated-from-pool annotation (null = absent). */
  readonly pool: string | null;
  readonly events: readonly ServiceEvent[];
  readonly result: ConvergeResult;
  /** One line saying why the Service has no IP (or why its request failed), else null. */
  readonly error: string | null;
  /** True when status or pool annotation differ from what the Service carries. */
  readonly changed: boolean;
}

const famName = (f: Family | 'dual' | 'none' | 'unknown') =>
  f === 'dual' ? 'dual-stack' : f === 4 ? 'IPv4' : f === 6 ? 'IPv6' : f;

function sameSet(a: readonly IPAddress[], b: readonly IPAddress[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a.map(formatIP));
  return b.every((x) => s.has(formatIP(x)));
}

/** Handles LoadBalancer Services of one class: the allocator plus the c.2 rules around it. */
export class AllocationCore {
  constructor(readonly allocator: Allocator = new Allocator()) {}

  /** New pool set; returns keys of Services whose allocation was dropped (c.7). */
  setPools(pools: ReadonlyMap<string, Pool>): string[] {
    return this.allocator.setPools(pools);
  }

  /** Service deleted: release; returns true when a full reprocess should follow (c.8). */
  delete(key: string): boolean {
    return this.allocator.release(key) !== undefined;
  }

  converge(svc: ServiceInfo): ServiceOutcome {
    const key = serviceKey(svc);
    const events: ServiceEvent[] = [];
    const a = this.allocator;
    const prev = a.allocation(key);
    const curPool = svc.annotations[ANN_ALLOCATED_FROM_POOL] ?? null;
    const done = (
      ips: readonly IPAddress[] | readonly string[],
      pool: string | null,
      result: ConvergeResult,
      error: string | null,
    ): ServiceOutcome => {
      const text = ips.map((x) => (typeof x === 'string' ? x : formatIP(x)));
      const changed = text.join(',') !== svc.ingressIPs.join(',') || pool !== curPool;
      if (changed) {
        for (const k of deprecatedAnnotationKeys(svc.annotations)) {
          events.push({
            type: 'Warning',
            reason: 'deprecatedAnnotation',
            message: `annotation ${k} is deprecated, use metallb.io/${k.slice('metallb.universe.tf/'.length)}`,
          });
        }
      }
      return { key, ips: text, pool, events, result, error, changed };
    };
    /** Releases the Service; freeing an IP that is still in a pool lets waiting Services retry (c.2 step 11). */
    const releaseAll = (): boolean => {
      const held = a.release(key);
      return held !== undefined && held.ips.some((x) => a.inSomePool(x));
    };
    const clear = (reason: string): ServiceOutcome =>
      done([], null, releaseAll() ? 'reprocessAll' : 'error', reason);

    if (svc.type !== 'LoadBalancer') return done([], null, releaseAll() ? 'reprocessAll' : 'ok', null);
    if (!a.hasConfig) return done(svc.ingressIPs, curPool, 'ok', null);
    if (a.poolCount === 0) return clear('no IPAddressPool is configured');
    if (svc.clusterFamily === 'none') return clear('the Service has no ClusterIP yet');
    if (svc.clusterFamily === 'unknown') {
      events.push({
        type: 'Warning',
        reason: 'noclusterIPsIPFamily',
        message: 'ClusterIPs have no coherent IP family',
      });
      return clear('ClusterIPs have no coherent IP family');
    }
    const policy = svc.ipFamilyPolicy;
    if (policy === 'RequireDualStack' && svc.clusterIPCount < 2) {
      events.push({
        type: 'Warning',
        reason: 'not enough clusterips',
        message: 'RequireDualStack needs two ClusterIPs',
      });
      return clear('RequireDualStack needs two ClusterIPs');
    }

    const req: AllocRequest = {
      key,
      namespace: svc.namespace,
      labels: svc.labels,
      ports: svc.ports,
      sharingKey: sharingKey(svc),
      backendKey: backendKey(svc),
    };
    const addressPool = annotation(svc.annotations, ANN_ADDRESS_POOL)?.value || undefined;
    let lostIP = false;

    // Step 6: current IPs and their family.
    let cur: IPAddress[] = [];
    let unparsable = false;
    for (const t of svc.ingressIPs) {
      const r = parseIP(t);
      if (r.ok) cur.push(r.value);
      else unparsable = true;
    }
    if (cur.length === 0 && !unparsable) {
      if (releaseAll()) lostIP = true;
    } else {
      const fam = unparsable ? 'unknown' : familyOfIPs(cur);
      const preferOk =
        svc.clusterFamily === 'dual' && policy === 'PreferDualStack' && (fam === 4 || fam === 6);
      if (fam === 'unknown') {
        events.push({
          type: 'Warning',
          reason: 'nolbIPsIPFamily',
          message: 'current ingress IPs have no coherent IP family',
        });
      }
      if (fam !== svc.clusterFamily && !preferOk) {
        if (releaseAll()) lostIP = true;
        cur = [];
      }
    }

    // Step 7: re-assert current IPs.
    if (cur.length) {
      const r = a.assign(req, cur);
      if (!r.ok) {
        events.push({
          type: 'Normal',
          reason: 'ClearAssignment',
          message: `current IP ${cur.map(formatIP).join(', ')} is no longer valid: ${r.reason}`,
        });
        a.release(key);
        lostIP = cur.some((x) => a.inSomePool(x));
        cur = [];
      } else if (addressPool !== undefined && r.value.pool !== addressPool) {
        a.release(key);
        lostIP = true;
        cur = [];
      } else {
        const rq = requestedIPs(svc);
        if (rq.kind === 'error') {
          events.push({ type: 'Warning', reason: 'LoadBalancerFailed', message: rq.reason });
          return done(cur, r.value.pool, 'error', rq.reason);
        }
        if (rq.kind === 'ips' && !sameSet(rq.ips, cur)) {
          a.release(key);
          lostIP = true;
          cur = [];
        }
      }
    }

    // Step 8: PreferDualStack may add the second family from the same pool.
    let alloc: Allocation | undefined = cur.length ? a.allocation(key) : undefined;
    if (alloc && cur.length === 1 && policy === 'PreferDualStack' && svc.clusterFamily === 'dual') {
      const other: Family = cur[0]!.family === 4 ? 6 : 4;
      const r = a.allocateAdditional(req, other);
      if (r.ok) {
        alloc = r.value;
        events.push({
          type: 'Normal',
          reason: 'IPAllocated',
          message: `Assigned IP ${JSON.stringify(alloc.ips.map(formatIP))}`,
        });
      } else {
        events.push({ type: 'Normal', reason: 'AdditionalAssignFailed', message: r.reason });
      }
    }

    // Step 9: allocate when nothing is held.
    if (!alloc) {
      const r = this.allocateNew(svc, req, addressPool);
      if (!r.ok) {
        events.push({
          type: 'Warning',
          reason: 'AllocationFailed',
          message: `Failed to allocate IP for "${key}": ${r.reason}`,
        });
        return done([], null, lostIP ? 'reprocessAll' : 'error', r.reason);
      }
      alloc = r.value;
      events.push({
        type: 'Normal',
        reason: 'IPAllocated',
        message: `Assigned IP ${JSON.stringify(alloc.ips.map(formatIP))}`,
      });
    }

    // Step 11.
    const keysChanged =
      prev !== undefined && (prev.sharingKey !== req.sharingKey || prev.backendKey !== req.backendKey);
    return done(alloc.ips, alloc.pool, lostIP || keysChanged ? 'reprocessAll' : 'ok', null);
  }

  private allocateNew(
    svc: ServiceInfo,
    req: AllocRequest,
    addressPool: string | undefined,
  ): Outcome<Allocation> {
    const a = this.allocator;
    const rq = requestedIPs(svc);
    if (rq.kind === 'error') return { ok: false, reason: rq.reason };
    if (rq.kind === 'ips') {
      const fam = familyOfIPs(rq.ips);
      if (fam !== svc.clusterFamily) {
        return {
          ok: false,
          reason: `requested ${rq.ips.map(formatIP).join(', ')} is ${famName(fam)} but the Service is ${famName(svc.clusterFamily)}`,
        };
      }
      return a.assign(req, rq.ips, addressPool);
    }
    const fam = svc.clusterFamily as 4 | 6 | 'dual';
    return a.allocate(req, fam, svc.ipFamilyPolicy, svc.primaryFamily, addressPool);
  }
}
