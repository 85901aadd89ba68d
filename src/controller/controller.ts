/**
 * The controller on the Kubernetes API (spec c, f): watches Services, Namespaces,
 * IPAddressPools and Communities; allocates with AllocationCore; writes Service status and the
 * ip-allocated-from-pool annotation, events, IPAddressPool status and its ConfigurationState.
 *
 * Start-up re-asserts every existing IP before anything new is allocated (two-IP Services first,
 * then one, then none), so a restart never renumbers.
 */
import { AllocationCore, type ServiceOutcome } from '../allocator/converge.js';
import { ANN_ALLOCATED_FROM_POOL, classMatches, serviceInfoFrom } from '../allocator/service.js';
import { sortObjects, type LoadedObject } from '../config/load.js';
import type { Config } from '../config/model.js';
import { ConfigParser, type SchemaValidator } from '../config/parse.js';
import { formatProblem } from '../config/problems.js';
import { ApiError, RESOURCES, type KObject, type KubeClient } from '../k8s/client.js';
import type { Recorder } from '../k8s/events.js';
import { Informer, objectKey } from '../k8s/informer.js';
import { WorkQueue, type ReconcileResult } from '../k8s/queue.js';
import type { Logger } from '../util/log.js';

/** Beyond MetalLB: a Service condition that says which pool the IP came from, or why there is none. */
export const CONDITION_TYPE = 'ironlb.io/IPAllocated';
export const CONTROLLER_STATE = 'controller';

export interface ControllerHooks {
  /** Pool counters changed (metrics). */
  onPoolCounters?(
    name: string,
    c: { assignedIPv4: bigint; availableIPv4: bigint; assignedIPv6: bigint; availableIPv6: bigint },
  ): void;
  onPoolDeleted?(name: string): void;
  onConfig?(loaded: boolean, stale: boolean): void;
  onReconcile?(ok: boolean): void;
  /** Seconds from Service creation to its first IP (histogram). */
  onAssigned?(seconds: number): void;
}

export interface ControllerOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  readonly schemas: SchemaValidator;
  readonly recorder: Recorder;
  readonly log: Logger;
  readonly lbClass?: string;
  readonly hooks?: ControllerHooks;
  /** Pod owning the ConfigurationState (ownerReference), when running in a Pod. */
  readonly podName?: string;
  readonly podUID?: string;
  /** Leader-election guard: no write happens while this returns false. */
  readonly canAct?: () => boolean;
}

type Svc = KObject & {
  spec?: Record<string, unknown>;
  status?: { loadBalancer?: { ingress?: Array<{ ip?: string; hostname?: string }> }; conditions?: unknown[] };
};

const ALL = '\u0000all';
const CONFIG = '\u0000config';

export class Controller {
  private readonly services: Informer<Svc>;
  private readonly namespaces: Informer<KObject>;
  private readonly pools: Informer<KObject>;
  private readonly communities: Informer<KObject>;
  private readonly core = new AllocationCore();
  private readonly parser: ConfigParser;
  private readonly queue: WorkQueue;
  private config: Config | undefined;
  private configText = '';
  private stale = false;
  private started = false;
  private readonly poolCounters = new Map<string, string>();
  private readonly poolStatusDirty = new Set<string>();
  private poolStatusWriting: Promise<void> | undefined;
  private readonly unsub: Array<() => void> = [];

  constructor(private readonly opts: ControllerOptions) {
    const { client, log, namespace } = opts;
    this.parser = new ConfigParser(opts.schemas);
    this.services = new Informer<Svc>(client, RESOURCES.services, { log, resyncMs: 10 * 60_000 });
    this.namespaces = new Informer(client, RESOURCES.namespaces, { log });
    this.pools = new Informer(client, RESOURCES.ipAddressPools, { log, namespace });
    this.communities = new Informer(client, RESOURCES.communities, { log, namespace });
    this.queue = new WorkQueue({
      name: 'controller',
      log,
      reconcile: (key) => this.reconcile(key),
      onReprocessAll: () => this.queue.add(ALL),
    });
  }

  /** Starts watching and reconciling; resolves once the first full pass is queued. */
  async start(): Promise<void> {
    const cfg = () => this.queue.add(CONFIG);
    this.unsub.push(
      this.pools.onEvent(cfg),
      this.communities.onEvent(cfg),
      this.namespaces.onEvent((type, obj, old) => {
        if (type === 'resync') return;
        if (
          JSON.stringify(obj.metadata.labels ?? {}) !== JSON.stringify(old?.metadata.labels ?? {}) ||
          type !== 'update'
        )
          cfg();
      }),
      this.services.onEvent((type, obj) => {
        if (!this.started) return;
        this.queue.add(objectKey(obj));
        void type;
      }),
    );
    await Promise.all([
      this.namespaces.start(),
      this.pools.start(),
      this.communities.start(),
      this.services.start(),
    ]);
    this.queue.start();
    this.queue.add(CONFIG);
  }

  async stop(): Promise<void> {
    for (const u of this.unsub.splice(0)) u();
    await this.queue.stop();
    await this.poolStatusWriting;
    await Promise.all([
      this.services.stop(),
      this.namespaces.stop(),
      this.pools.stop(),
      this.communities.stop(),
    ]);
  }

  /** Resolves when the queue is drained (tests, benchmarks). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  status(): { loaded: boolean; stale: boolean; pools: number } {
    return { loaded: this.config !== undefined, stale: this.stale, pools: this.config?.pools.size ?? 0 };
  }

  private async reconcile(key: string): Promise<ReconcileResult> {
    if (key === CONFIG) return this.reconcileConfig();
    if (key === ALL) return this.reprocessAll();
    if (!this.started) return 'ok';
    const r = await this.reconcileService(key);
    this.opts.hooks?.onReconcile?.(r !== 'retry');
    return r;
  }

  private asLoaded(objs: readonly KObject[]): LoadedObject[] {
    return objs.map((obj) => ({ obj, file: 'api', line: 0 }));
  }

  /** Pool reconciler (Appendix B): parse pools + communities; on change re-map and reprocess all. */
  private async reconcileConfig(): Promise<ReconcileResult> {
    const sorted = sortObjects(
      this.asLoaded([...this.pools.list(), ...this.communities.list(), ...this.namespaces.list()]),
    );
    const res = this.parser.parse(sorted.config, { namespace: this.opts.namespace, scope: 'controller' });
    if (!res.config) {
      const msg = res.problems.map(formatProblem).join('\n');
      if (!this.stale)
        this.opts.log.warn('invalid configuration, keeping the last good one', { problems: msg });
      this.stale = true;
      this.opts.hooks?.onConfig?.(this.config !== undefined, true);
      await this.writeState(false, msg);
      return 'ok';
    }
    const text = configFingerprint(res.config);
    const changed = text !== this.configText;
    this.config = res.config;
    this.configText = text;
    this.stale = false;
    this.opts.hooks?.onConfig?.(true, false);
    await this.writeState(true, '');
    if (changed || !this.started) {
      const released = this.core.setPools(res.config.pools);
      if (released.length)
        this.opts.log.info('configuration change released allocations', { services: released.length });
      for (const name of [...this.poolCounters.keys()]) {
        if (!res.config.pools.has(name)) {
          this.poolCounters.delete(name);
          this.opts.hooks?.onPoolDeleted?.(name);
        }
      }
      this.started = true;
      return this.reprocessAll();
    }
    return 'ok';
  }

  /** Every Service, those holding two IPs first, then one, then none (spec c.8). */
  private reprocessAll(): ReconcileResult {
    const svcs = this.services
      .list()
      .map((s) => ({ s, n: Math.min(s.status?.loadBalancer?.ingress?.filter((i) => i.ip).length ?? 0, 2) }));
    svcs.sort((a, b) => b.n - a.n);
    for (const { s } of svcs) this.queue.add(objectKey(s));
    return 'ok';
  }

  private async reconcileService(key: string): Promise<ReconcileResult> {
    const svc = this.services.get(key);
    if (!svc) {
      return this.core.delete(key) ? 'reprocessAll' : 'ok';
    }
    const info = serviceInfoFrom(svc);
    if (!classMatches(info, this.opts.lbClass ?? '')) return 'ok';
    const out = this.core.converge(info);
    const target = {
      kind: 'Service',
      apiVersion: 'v1',
      namespace: svc.metadata.namespace ?? 'default',
      name: svc.metadata.name,
      ...(svc.metadata.uid ? { uid: svc.metadata.uid } : {}),
    };
    for (const e of out.events) this.opts.recorder.event(target, e.type, e.reason, e.message);
    try {
      await this.writeService(svc, out);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 409)) return 'retry';
      if (e instanceof NotLeader) return 'retry';
      throw e;
    }
    this.publishCounters();
    const created = svc.metadata.creationTimestamp;
    if (out.ips.length && info.ingressIPs.length === 0 && typeof created === 'string') {
      const t = Date.parse(created);
      if (Number.isFinite(t)) this.opts.hooks?.onAssigned?.(Math.max(0, (Date.now() - t) / 1000));
    }
    return out.result === 'reprocessAll' ? 'reprocessAll' : 'ok';
  }

  /** Status, pool annotation and our condition, in one status-subresource patch; skipped when equal. */
  private async writeService(svc: Svc, out: ServiceOutcome): Promise<void> {
    const isLB = (svc.spec?.type ?? 'ClusterIP') === 'LoadBalancer';
    const condition = isLB ? this.condition(out) : undefined;
    const conditions = ((svc.status?.conditions ?? []) as Array<Record<string, unknown>>).filter(
      (c) => c.type !== CONDITION_TYPE,
    );
    const prevCond = ((svc.status?.conditions ?? []) as Array<Record<string, unknown>>).find(
      (c) => c.type === CONDITION_TYPE,
    );
    const condSame =
      (!condition && !prevCond) ||
      (condition &&
        prevCond &&
        prevCond.status === condition.status &&
        prevCond.reason === condition.reason &&
        prevCond.message === condition.message);
    // Hostname-only entries are not ours: kept while we have no IP, replaced when we write IPs.
    const hostnames = (svc.status?.loadBalancer?.ingress ?? []).filter((i) => !i.ip && i.hostname);
    const keep = isLB && out.ips.length === 0 ? hostnames : [];
    if (!out.changed && condSame) return;
    if (this.opts.canAct && !this.opts.canAct()) throw new NotLeader();
    const patch = {
      metadata: { annotations: { [ANN_ALLOCATED_FROM_POOL]: out.pool } },
      status: {
        loadBalancer: {
          ingress: out.ips.length ? out.ips.map((ip) => ({ ip })) : keep.length ? keep : null,
        },
        conditions: condition ? [...conditions, condition] : conditions.length ? conditions : null,
      },
    };
    const written = await this.opts.client.patch<Svc>(
      RESOURCES.services,
      svc.metadata.namespace,
      svc.metadata.name,
      patch,
      { sub: 'status' },
    );
    this.services.assume(written);
  }

  private condition(out: ServiceOutcome): Record<string, unknown> {
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    if (out.ips.length) {
      return {
        type: CONDITION_TYPE,
        status: 'True',
        reason: 'IPAllocated',
        message: `${out.ips.join(', ')} from pool ${out.pool}`,
        lastTransitionTime: now,
      };
    }
    return {
      type: CONDITION_TYPE,
      status: 'False',
      reason: 'AllocationFailed',
      message: (out.error ?? 'no IP allocated').slice(0, 1000),
      lastTransitionTime: now,
    };
  }

  /** IPAddressPool status (status subresource), only for pools whose counters changed. */
  private publishCounters(): void {
    if (!this.config) return;
    for (const name of this.config.pools.keys()) {
      const c = this.core.allocator.counters(name);
      if (!c) continue;
      const text = `${c.assignedIPv4}/${c.availableIPv4}/${c.assignedIPv6}/${c.availableIPv6}`;
      if (this.poolCounters.get(name) === text) continue;
      this.poolCounters.set(name, text);
      this.opts.hooks?.onPoolCounters?.(name, c);
      this.poolStatusDirty.add(name);
    }
    if (this.poolStatusDirty.size && !this.poolStatusWriting) {
      this.poolStatusWriting = this.writePoolStatuses().finally(() => (this.poolStatusWriting = undefined));
    }
  }

  /**
   * One writer, latest values only: a burst of allocations (start-up re-assertion of hundreds of
   * Services) becomes a handful of pool status writes instead of one per Service.
   */
  private async writePoolStatuses(): Promise<void> {
    const num = (x: bigint) =>
      Number(x > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : x);
    while (this.poolStatusDirty.size) {
      const name = this.poolStatusDirty.values().next().value as string;
      this.poolStatusDirty.delete(name);
      const c = this.core.allocator.counters(name);
      if (!c || (this.opts.canAct && !this.opts.canAct())) continue;
      try {
        await this.opts.client.patch(
          RESOURCES.ipAddressPools,
          this.opts.namespace,
          name,
          {
            status: {
              assignedIPv4: num(c.assignedIPv4),
              assignedIPv6: num(c.assignedIPv6),
              availableIPv4: num(c.availableIPv4),
              availableIPv6: num(c.availableIPv6),
            },
          },
          { sub: 'status' },
        );
      } catch (e) {
        this.poolCounters.delete(name);
        this.opts.log.warn('pool status not written', {
          pool: name,
          error: e instanceof Error ? e.message : String(e),
        });
      }
    }
  }

  /** ConfigurationState `controller` (spec a.10), condition poolReconcilerValid, server-side apply. */
  private async writeState(valid: boolean, message: string): Promise<void> {
    const { client, namespace } = this.opts;
    if (this.opts.canAct && !this.opts.canAct()) return;
    const base = {
      apiVersion: 'metallb.io/v1beta1',
      kind: 'ConfigurationState',
      metadata: {
        name: CONTROLLER_STATE,
        namespace,
        labels: { 'metallb.io/component-type': 'controller' },
        ...(this.opts.podName && this.opts.podUID
          ? {
              ownerReferences: [
                { apiVersion: 'v1', kind: 'Pod', name: this.opts.podName, uid: this.opts.podUID },
              ],
            }
          : {}),
      },
    };
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const status = {
      conditions: [
        {
          type: 'poolReconcilerValid',
          status: valid ? 'True' : 'False',
          reason: valid ? 'Reconciled' : 'ConfigurationError',
          message: valid ? '' : message.slice(0, 30_000),
          lastTransitionTime: now,
        },
      ],
      result: valid ? 'Valid' : 'Invalid',
      errorSummary: valid ? '' : message.slice(0, 30_000),
    };
    try {
      await client.patch(RESOURCES.configurationStates, namespace, CONTROLLER_STATE, base, {
        apply: { fieldManager: 'ironlb-controller' },
      });
      await client.patch(
        RESOURCES.configurationStates,
        namespace,
        CONTROLLER_STATE,
        { ...base, status },
        {
          sub: 'status',
          apply: { fieldManager: 'ironlb-controller' },
        },
      );
    } catch (e) {
      this.opts.log.warn('ConfigurationState not written', {
        error: e instanceof Error ? e.message : String(e),
      });
    }
  }
}

/** This replica may not write (leadership lost or not confirmed recently). */
class NotLeader extends Error {}

/** A stable text of what the allocator depends on, to skip no-op configuration events. */
function configFingerprint(c: Config): string {
  const pools = [...c.pools.values()].map((p) => ({
    n: p.name,
    c: p.cidrs.map((x) => `${x.family}:${x.base}/${x.length}`),
    a: p.autoAssign,
    b: p.avoidBuggyIPs,
    s: p.serviceAllocation
      ? {
          p: p.serviceAllocation.priority,
          ns: [...p.serviceAllocation.namespaces].sort(),
          sel: p.serviceAllocation.serviceSelectors.map((x) => x.text),
        }
      : null,
  }));
  return JSON.stringify(pools);
}
