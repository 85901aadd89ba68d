/**
 * Lease-based leader election (coordination.k8s.io/v1), so two controller replicas never both
 * allocate. The leader renews every `renewMs`; it steps down (calls `onStop`) as soon as a renew
 * cannot be confirmed within `leaseMs - renewMs`, before anyone else may take over. Updates are
 * guarded by resourceVersion, so a racing candidate loses with a 409.
 */
import { ApiError, RESOURCES, type KObject, type KubeClient } from './client.js';
import { sleep } from './informer.js';
import type { Logger } from '../util/log.js';

export interface LeaderOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly log: Logger;
  readonly leaseMs?: number;
  readonly renewMs?: number;
  readonly retryMs?: number;
  readonly onStart: () => Promise<void>;
  readonly onStop: () => Promise<void>;
}

interface Lease extends KObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

const micro = (t: number) => new Date(t).toISOString().replace('Z', '000Z');

export class LeaderElector {
  private abort = new AbortController();
  private loop: Promise<void> | undefined;
  private leading = false;
  private lastOk = 0;
  private starting: Promise<void> = Promise.resolve();

  constructor(private readonly o: LeaderOptions) {}

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * True while this replica may act: it leads and its last renew is recent enough that nobody
   * else can have taken the lease over. Writers check this before every write.
   */
  canAct(): boolean {
    return this.leading && Date.now() - this.lastOk < this.leaseMs - (this.o.renewMs ?? 5_000) / 2;
  }

  start(): void {
    this.abort = new AbortController();
    this.loop = this.run(this.abort.signal);
  }

  /** Stops campaigning; a leader steps down and releases the lease. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    if (this.leading) {
      this.leading = false;
      await this.starting;
      await this.o.onStop();
      await this.release().catch(() => undefined);
    }
  }

  /** Lease calls never wait out server-requested retries: a late renew is worse than a failed one. */
  private get reqOpts(): { retries: number; timeoutMs: number } {
    return { retries: 0, timeoutMs: this.o.renewMs ?? 5_000 };
  }

  private get leaseMs(): number {
    return this.o.leaseMs ?? 15_000;
  }

  private async run(signal: AbortSignal): Promise<void> {
    const renew = this.o.renewMs ?? 5_000;
    const retry = this.o.retryMs ?? 2_000;
    while (!signal.aborted) {
      let ok = false;
      const t0 = Date.now();
      try {
        ok = await this.tryAcquireOrRenew();
        this.o.log.debug('lease attempt', { ok, ms: Date.now() - t0, leading: this.leading });
      } catch (e) {
        this.o.log.warn('lease update failed', { error: e instanceof Error ? e.message : String(e) });
      }
      const now = Date.now();
      if (ok) this.lastOk = now;
      if (ok && !this.leading) {
        this.leading = true;
        this.o.log.info('became leader', { lease: this.o.name, identity: this.o.identity });
        // Not awaited: renewing must go on while the controller starts up.
        this.starting = this.o
          .onStart()
          .catch((e: unknown) =>
            this.o.log.error('leader start-up failed', { error: e instanceof Error ? e.message : String(e) }),
          );
      } else if (!ok && this.leading && now - this.lastOk > this.leaseMs - renew) {
        this.leading = false;
        this.o.log.warn('lost leadership', { lease: this.o.name });
        await this.starting;
        await this.o.onStop();
      }
      await sleep(this.leading ? renew : retry, signal);
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { client, namespace, name, identity } = this.o;
    const now = Date.now();
    let lease: Lease | undefined;
    try {
      lease = await client.get<Lease>(RESOURCES.leases, namespace, name, this.reqOpts);
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 404) throw e;
    }
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(this.leaseMs / 1000),
      renewTime: micro(now),
    };
    if (!lease) {
      try {
        await client.create(
          RESOURCES.leases,
          namespace,
          {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: { ...spec, acquireTime: micro(now), leaseTransitions: 0 },
          },
          this.reqOpts,
        );
        return true;
      } catch (e) {
        if (e instanceof ApiError && e.status === 409) return false;
        throw e;
      }
    }
    const s = lease.spec ?? {};
    const held = s.holderIdentity && s.holderIdentity !== identity;
    const renewed = s.renewTime ? Date.parse(s.renewTime) : 0;
    const expired = now - renewed > (s.leaseDurationSeconds ?? 15) * 1000;
    if (held && !expired) return false;
    const next: Lease = {
      ...lease,
      spec: {
        ...s,
        ...spec,
        ...(s.holderIdentity !== identity
          ? { acquireTime: micro(now), leaseTransitions: (s.leaseTransitions ?? 0) + 1 }
          : {}),
      },
    };
    try {
      await client.update(RESOURCES.leases, next, undefined, this.reqOpts);
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) return false;
      throw e;
    }
  }

  private async release(): Promise<void> {
    const lease = await this.o.client.get<Lease>(RESOURCES.leases, this.o.namespace, this.o.name);
    if (lease.spec?.holderIdentity !== this.o.identity) return;
    await this.o.client.update(RESOURCES.leases, {
      ...lease,
      spec: { ...lease.spec, holderIdentity: '', renewTime: micro(0) },
    });
  }
}
