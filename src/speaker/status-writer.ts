/**
 * The speaker's status reconcilers on the Kubernetes API (spec a.8, a.9, a.10, f.2, Appendix B):
 *
 * - ConfigurationState `speaker-<node>`: condition `configReconcilerValid`, result, errorSummary,
 *   by server-side apply with a field manager of this node; re-created when deleted.
 * - ServiceBGPStatus: one per (Service, this node) while this node advertises the Service to at
 *   least one BGPPeer; `status.peers` = the sorted peer names.
 * - ServiceL2Status: one per Service this node answers ARP/NDP for; deleted when it stops; on
 *   taking a Service over, the objects of other nodes for that Service are deleted.
 * - Events on the Service: `nodeAssigned` when this node starts announcing a Service (or its
 *   announced IPs change), `announceFailed` for L2 IPs whose requested interfaces do not exist.
 *
 * The speaker hands its state over with update(), which only stores it: one writer loop works
 * on the latest state (bursts coalesce), failures are retried with exponential back-off, and the
 * speaker's update path never waits for the API. Deviation from upstream: upstream re-emits
 * `nodeAssigned` on every reconcile of an announced Service; we emit it only when the
 * announcement changes (a no-op pass emits nothing), and refresh the ConfigurationState only
 * when validity or the problems change (or the object was deleted).
 */
import { createHash } from 'node:crypto';
import { ApiError, RESOURCES, type KObject, type KubeClient } from '../k8s/client.js';
import type { Recorder } from '../k8s/events.js';
import { Informer } from '../k8s/informer.js';
import type { Logger } from '../util/log.js';

export const LABEL_NODE = 'metallb.io/node';
export const LABEL_SERVICE_NAME = 'metallb.io/service-name';
export const LABEL_SERVICE_NAMESPACE = 'metallb.io/service-namespace';
export const LABEL_COMPONENT = 'metallb.io/component-type';
export const LABEL_NODE_NAME = 'metallb.io/node-name';
export const SPEAKER_CONDITION = 'configReconcilerValid';

/** A Service as the status writer needs it (events, metrics). */
export interface ServiceRef {
  readonly namespace: string;
  readonly name: string;
  readonly uid?: string;
  /** Ingress IPs, formatted as the speaker formats them. */
  readonly ips: readonly string[];
}

export interface L2Announcement {
  /** IPs of the Service this node answers for. */
  readonly ips: readonly string[];
  /** Interfaces, only when the announcement is restricted to named interfaces (absent = all). */
  readonly interfaces?: readonly string[];
}

/** What the speaker announces and how its configuration is, after one update. */
export interface SpeakerState {
  readonly configLoaded: boolean;
  readonly configStale: boolean;
  /** Why the latest configuration was rejected (empty when it is valid). */
  readonly problems: readonly string[];
  /** BGP: Service key → sorted BGPPeer names it is advertised to from this node. */
  readonly bgp: ReadonlyMap<string, readonly string[]>;
  /** L2: Service key → what this node answers for. */
  readonly l2: ReadonlyMap<string, L2Announcement>;
  /** L2 announceFailed entries (`namespace/name ip`). */
  readonly announceFailed: readonly string[];
  /** The Services named in bgp / l2 / announceFailed. */
  readonly services: ReadonlyMap<string, ServiceRef>;
}

export interface StatusWriterOptions {
  readonly client: KubeClient;
  /** The MetalLB namespace. */
  readonly namespace: string;
  readonly node: string;
  readonly log: Logger;
  /** Events on Services; absent = no events. */
  readonly recorder?: Recorder;
  /** The speaker Pod (ownerReference of everything written), when both are known. */
  readonly podName?: string;
  readonly podUID?: string;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
}

type StatusObject = KObject & { status?: Record<string, unknown> };

const stamp = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
const errText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** A field manager name for this node (the API limits it to 128 characters). */
export function speakerFieldManager(node: string): string {
  const name = `ironlb-speaker-${node}`;
  if (name.length <= 128) return name;
  return `${name.slice(0, 110)}-${createHash('sha256').update(node).digest('hex').slice(0, 16)}`;
}

export class StatusWriter {
  private readonly bgpInformer: Informer<StatusObject>;
  private readonly l2Informer: Informer<StatusObject>;
  private readonly stateInformer: Informer<StatusObject>;
  private readonly unsub: Array<() => void> = [];
  private readonly stateName: string;
  private latest: SpeakerState | undefined;
  private dirty = false;
  private running: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoff: number;
  private stopped = false;
  private started: Promise<void> | undefined;
  /** What the ConfigurationState was last written with (undefined = write it). */
  private writtenState: string | undefined;
  /** Objects we deleted that the informer may still list. */
  private readonly gone = new Set<string>();
  /** (protocol, Service) → announced IPs, for nodeAssigned. */
  private announced = new Map<string, string>();
  private failed = new Set<string>();
  /** L2 Services this node took over whose other-node objects are still to be deleted. */
  private readonly takeovers = new Set<string>();
  /** L2 Services announced in the previous pass. */
  private prevL2 = new Set<string>();

  constructor(private readonly o: StatusWriterOptions) {
    this.backoff = o.backoffInitialMs ?? 500;
    this.stateName = `speaker-${o.node}`;
    const { client, log, namespace } = o;
    this.bgpInformer = new Informer(client, RESOURCES.serviceBGPStatuses, {
      log,
      namespace,
      labelSelector: `${LABEL_NODE}=${o.node}`,
    });
    // Every node's objects: a new winner deletes the previous winner's.
    this.l2Informer = new Informer(client, RESOURCES.serviceL2Statuses, { log, namespace });
    this.stateInformer = new Informer(client, RESOURCES.configurationStates, {
      log,
      namespace,
      fieldSelector: `metadata.name=${this.stateName}`,
    });
  }

  /** Starts the informers (does not wait for them: the first pass does). */
  start(): void {
    const own = (obj: StatusObject) => obj.metadata.labels?.[LABEL_NODE] === this.o.node;
    this.unsub.push(
      this.bgpInformer.onEvent((type, obj) => {
        if (type === 'delete') this.gone.delete(obj.metadata.name);
        if (type !== 'resync') this.kick();
      }),
      // Only our own objects trigger a pass (Appendix B), so two nodes that briefly both think
      // they won a Service do not delete each other's objects in a loop.
      this.l2Informer.onEvent((type, obj) => {
        if (type === 'delete') this.gone.delete(obj.metadata.name);
        if (type !== 'resync' && own(obj)) this.kick();
      }),
      this.stateInformer.onEvent((type) => {
        if (type === 'delete') {
          this.writtenState = undefined;
          this.kick();
        }
      }),
    );
    const informers = [this.bgpInformer, this.l2Informer, this.stateInformer];
    this.started = Promise.all(informers.map((i) => i.start())).then(() => undefined);
    this.started.catch(() => undefined);
  }

  /** The speaker's latest state; returns at once. */
  update(state: SpeakerState): void {
    this.latest = state;
    this.kick();
  }

  /** Resolves when no pass is running or pending (tests); a pending back-off counts as idle. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const u of this.unsub.splice(0)) u();
    // Informers first: a pass still waiting for their first list ends when they stop.
    await Promise.all([this.bgpInformer.stop(), this.l2Informer.stop(), this.stateInformer.stop()]);
    await this.running;
  }

  private kick(): void {
    if (this.stopped || !this.latest) return;
    this.dirty = true;
    if (this.running || this.retryTimer) return;
    this.running = this.loop()
      .catch((e: unknown) => this.o.log.error('status writer pass failed', { error: errText(e) }))
      .finally(() => {
        this.running = undefined;
        if (this.dirty && !this.retryTimer) this.kick();
      });
  }

  private async loop(): Promise<void> {
    try {
      await this.started;
    } catch {
      return; // stopped before the first list
    }
    while (this.dirty && !this.stopped) {
      this.dirty = false;
      const state = this.latest!;
      this.events(state);
      const errors = await this.reconcile(state);
      if (this.stopped) return;
      if (errors.length) {
        const wait = this.backoff;
        this.backoff = Math.min(this.backoff * 2, this.o.backoffMaxMs ?? 30_000);
        this.o.log.warn('status objects not written, retrying', { retryInMs: wait, errors });
        this.dirty = true;
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.kick();
        }, wait);
        this.retryTimer.unref();
        return;
      }
      this.backoff = this.o.backoffInitialMs ?? 500;
    }
  }

  /** One pass over every status object; returns the errors (the pass goes on after one). */
  private async reconcile(state: SpeakerState): Promise<string[]> {
    const errors: string[] = [];
    const step = async (what: string, fn: () => Promise<void>) => {
      if (this.stopped) return;
      try {
        await fn();
      } catch (e) {
        errors.push(`${what}: ${errText(e)}`);
      }
    };
    this.pruneGone();
    await step('ConfigurationState', () => this.writeConfigurationState(state));
    await this.reconcileBgp(state, step);
    await this.reconcileL2(state, step);
    return errors;
  }

  // ---------------------------------------------------------------------------------------------
  // events
  // ---------------------------------------------------------------------------------------------

  private events(state: SpeakerState): void {
    const next = new Map<string, string>();
    for (const key of state.bgp.keys()) {
      next.set(`bgp\u0000${key}`, [...(state.services.get(key)?.ips ?? [])].sort().join(','));
    }
    for (const [key, a] of state.l2) next.set(`layer2\u0000${key}`, [...a.ips].sort().join(','));
    for (const [k, ips] of next) {
      if (this.announced.get(k) === ips) continue;
      const [protocol, key] = k.split('\u0000') as [string, string];
      this.event(
        state,
        key,
        'Normal',
        'nodeAssigned',
        `announcing from node "${this.o.node}" with protocol "${protocol}"`,
      );
    }
    this.announced = next;
    const failed = new Set(state.announceFailed);
    for (const f of failed) {
      if (this.failed.has(f)) continue;
      const [key, ip] = f.split(' ') as [string, string | undefined];
      this.event(
        state,
        key,
        'Warning',
        'announceFailed',
        `the interfaces specified by LB IP "${ip ?? ''}" doesn't exist in assigned node "${this.o.node}" with protocol "layer2"`,
      );
    }
    this.failed = failed;
  }

  private event(
    state: SpeakerState,
    key: string,
    type: 'Normal' | 'Warning',
    reason: string,
    msg: string,
  ): void {
    const svc = state.services.get(key);
    if (!svc || !this.o.recorder) return;
    this.o.recorder.event(
      {
        kind: 'Service',
        apiVersion: 'v1',
        namespace: svc.namespace,
        name: svc.name,
        ...(svc.uid ? { uid: svc.uid } : {}),
      },
      type,
      reason,
      msg,
    );
  }

  // ---------------------------------------------------------------------------------------------
  // ConfigurationState (a.10)
  // ---------------------------------------------------------------------------------------------

  private ownerReferences(): Record<string, unknown> {
    const { podName, podUID } = this.o;
    if (!podName || !podUID) return {};
    return { ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: podName, uid: podUID }] };
  }

  private async writeConfigurationState(state: SpeakerState): Promise<void> {
    const valid = !state.configStale && state.problems.length === 0;
    const message = valid ? '' : state.problems.join('\n').slice(0, 30_000);
    const fingerprint = JSON.stringify([valid, message]);
    const exists = this.stateInformer.get(`${this.o.namespace}/${this.stateName}`) !== undefined;
    if (fingerprint === this.writtenState && exists) return;
    const { client, namespace, node } = this.o;
    const base = {
      apiVersion: 'metallb.io/v1beta1',
      kind: 'ConfigurationState',
      metadata: {
        name: this.stateName,
        namespace,
        labels: { [LABEL_COMPONENT]: 'speaker', [LABEL_NODE_NAME]: node },
        ...this.ownerReferences(),
      },
    };
    const status = {
      conditions: [
        {
          type: SPEAKER_CONDITION,
          status: valid ? 'True' : 'False',
          reason: valid ? 'Reconciled' : 'ConfigurationError',
          message,
          lastTransitionTime: stamp(),
        },
      ],
      result: valid ? 'Valid' : 'Invalid',
      errorSummary: message,
    };
    const apply = { fieldManager: speakerFieldManager(node) };
    await client.patch(RESOURCES.configurationStates, namespace, this.stateName, base, { apply });
    const written = await client.patch<StatusObject>(
      RESOURCES.configurationStates,
      namespace,
      this.stateName,
      { ...base, status },
      { sub: 'status', apply },
    );
    this.stateInformer.assume(written);
    this.writtenState = fingerprint;
    this.o.log.debug('ConfigurationState written', { result: status.result });
  }

  // ---------------------------------------------------------------------------------------------
  // ServiceBGPStatus (a.9) and ServiceL2Status (a.8)
  // ---------------------------------------------------------------------------------------------

  private live(inf: Informer<StatusObject>): StatusObject[] {
    return inf.list().filter((o) => !this.gone.has(o.metadata.name));
  }

  /** Forgets deleted objects neither cache lists any more. */
  private pruneGone(): void {
    const ns = this.o.namespace;
    for (const name of [...this.gone]) {
      if (!this.bgpInformer.get(`${ns}/${name}`) && !this.l2Informer.get(`${ns}/${name}`))
        this.gone.delete(name);
    }
  }

  /** Objects by Service key, from the service labels. */
  private byService(objs: readonly StatusObject[]): Map<string, StatusObject[]> {
    const out = new Map<string, StatusObject[]>();
    for (const o of objs) {
      const l = o.metadata.labels ?? {};
      const ns = l[LABEL_SERVICE_NAMESPACE];
      const name = l[LABEL_SERVICE_NAME];
      if (!ns || !name) continue;
      const key = `${ns}/${name}`;
      const list = out.get(key) ?? [];
      list.push(o);
      out.set(key, list);
    }
    for (const list of out.values()) list.sort(olderFirst);
    return out;
  }

  private async reconcileBgp(
    state: SpeakerState,
    step: (what: string, fn: () => Promise<void>) => Promise<void>,
  ): Promise<void> {
    const mine = this.byService(
      this.live(this.bgpInformer).filter((o) => o.metadata.labels?.[LABEL_NODE] === this.o.node),
    );
    for (const [key, peers] of state.bgp) {
      if (peers.length === 0) continue;
      const [keep, ...extra] = mine.get(key) ?? [];
      mine.delete(key);
      for (const x of extra)
        await step(`delete ServiceBGPStatus ${x.metadata.name}`, () =>
          this.remove(RESOURCES.serviceBGPStatuses, x),
        );
      const want = { ...this.identity(key), peers: [...peers] };
      if (!keep) {
        await step(`create ServiceBGPStatus for ${key}`, () =>
          this.create(RESOURCES.serviceBGPStatuses, this.bgpInformer, 'bgp-', key, want),
        );
      } else if (!sameStatus(keep.status, want)) {
        await step(`update ServiceBGPStatus ${keep.metadata.name}`, () =>
          this.writeStatus(RESOURCES.serviceBGPStatuses, this.bgpInformer, keep, want),
        );
      }
    }
    for (const objs of mine.values()) {
      for (const x of objs)
        await step(`delete ServiceBGPStatus ${x.metadata.name}`, () =>
          this.remove(RESOURCES.serviceBGPStatuses, x),
        );
    }
  }

  private async reconcileL2(
    state: SpeakerState,
    step: (what: string, fn: () => Promise<void>) => Promise<void>,
  ): Promise<void> {
    const all = this.byService(this.live(this.l2Informer));
    // A takeover is a Service this node starts announcing (not one whose object was deleted: two
    // nodes that briefly both think they won would otherwise delete each other's in a loop).
    for (const key of state.l2.keys()) if (!this.prevL2.has(key)) this.takeovers.add(key);
    for (const key of [...this.takeovers]) if (!state.l2.has(key)) this.takeovers.delete(key);
    this.prevL2 = new Set(state.l2.keys());
    const own = new Set<string>();
    for (const [key, a] of state.l2) {
      const objs = all.get(key) ?? [];
      const mine = objs.filter((o) => o.metadata.labels?.[LABEL_NODE] === this.o.node);
      const others = objs.filter((o) => o.metadata.labels?.[LABEL_NODE] !== this.o.node);
      own.add(key);
      // The new winner removes the previous winners' objects, once per takeover.
      if (this.takeovers.has(key)) {
        let ok = true;
        for (const x of others) {
          await step(`delete ServiceL2Status ${x.metadata.name}`, async () => {
            try {
              await this.remove(RESOURCES.serviceL2Statuses, x);
            } catch (e) {
              ok = false;
              throw e;
            }
          });
        }
        if (ok) this.takeovers.delete(key);
      }
      const [keep, ...extra] = mine;
      for (const x of extra)
        await step(`delete ServiceL2Status ${x.metadata.name}`, () =>
          this.remove(RESOURCES.serviceL2Statuses, x),
        );
      const want: Record<string, unknown> = {
        ...this.identity(key),
        interfaces: a.interfaces ? a.interfaces.map((name) => ({ name })) : null,
      };
      if (!keep) {
        await step(`create ServiceL2Status for ${key}`, () =>
          this.create(RESOURCES.serviceL2Statuses, this.l2Informer, 'l2-', key, want),
        );
      } else if (!sameStatus(keep.status, want)) {
        await step(`update ServiceL2Status ${keep.metadata.name}`, () =>
          this.writeStatus(RESOURCES.serviceL2Statuses, this.l2Informer, keep, want),
        );
      }
    }
    for (const [key, objs] of all) {
      if (own.has(key)) continue;
      for (const x of objs) {
        if (x.metadata.labels?.[LABEL_NODE] !== this.o.node) continue;
        await step(`delete ServiceL2Status ${x.metadata.name}`, () =>
          this.remove(RESOURCES.serviceL2Statuses, x),
        );
      }
    }
  }

  private identity(key: string): { node: string; serviceName: string; serviceNamespace: string } {
    const slash = key.indexOf('/');
    return { node: this.o.node, serviceNamespace: key.slice(0, slash), serviceName: key.slice(slash + 1) };
  }

  private async create(
    r: typeof RESOURCES.serviceBGPStatuses,
    inf: Informer<StatusObject>,
    prefix: string,
    key: string,
    status: Record<string, unknown>,
  ): Promise<void> {
    const id = this.identity(key);
    const created = await this.o.client.create<StatusObject>(r, this.o.namespace, {
      apiVersion: 'metallb.io/v1beta1',
      kind: r.kind,
      metadata: {
        generateName: prefix,
        namespace: this.o.namespace,
        labels: {
          [LABEL_NODE]: this.o.node,
          [LABEL_SERVICE_NAME]: id.serviceName,
          [LABEL_SERVICE_NAMESPACE]: id.serviceNamespace,
        },
        ...this.ownerReferences(),
      },
      spec: {},
    });
    // The status subresource ignores status on create; without the patch below the object
    // stays listed (with an empty status) and the next pass fills it in.
    inf.assume(created);
    await this.writeStatus(r, inf, created, status);
    this.o.log.debug('status object created', { kind: r.kind, name: created.metadata.name, service: key });
  }

  private async writeStatus(
    r: typeof RESOURCES.serviceBGPStatuses,
    inf: Informer<StatusObject>,
    obj: StatusObject,
    status: Record<string, unknown>,
  ): Promise<void> {
    try {
      const written = await this.o.client.patch<StatusObject>(
        r,
        this.o.namespace,
        obj.metadata.name,
        { status },
        { sub: 'status' },
      );
      inf.assume(written);
    } catch (e) {
      // Deleted meanwhile: forget it, the next pass creates a new one.
      if (e instanceof ApiError && e.status === 404) this.gone.add(obj.metadata.name);
      throw e;
    }
  }

  private async remove(r: typeof RESOURCES.serviceBGPStatuses, obj: StatusObject): Promise<void> {
    try {
      await this.o.client.delete(r, this.o.namespace, obj.metadata.name);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
    }
    this.gone.add(obj.metadata.name);
    this.o.log.debug('status object deleted', { kind: r.kind, name: obj.metadata.name });
  }
}

function olderFirst(a: KObject, b: KObject): number {
  const t = (o: KObject) =>
    typeof o.metadata.creationTimestamp === 'string' ? o.metadata.creationTimestamp : '';
  return t(a) < t(b) ? -1 : t(a) > t(b) ? 1 : a.metadata.name < b.metadata.name ? -1 : 1;
}

/** Whether `cur` already has every field of `want` (null = absent or empty). */
function sameStatus(cur: Record<string, unknown> | undefined, want: Record<string, unknown>): boolean {
  const c = cur ?? {};
  for (const [k, v] of Object.entries(want)) {
    const have = c[k];
    if (v === null) {
      if (have !== undefined && have !== null && !(Array.isArray(have) && have.length === 0)) return false;
    } else if (JSON.stringify(have) !== JSON.stringify(v)) return false;
  }
  return true;
}
