/**
 * Kubernetes Events on Services with MetalLB's reasons (spec f.2). Identical events for the same
 * object within a short window are folded into one (count bumped), so a Service retried in a loop
 * does not flood the API server.
 */
import { RESOURCES, type KObject, type KubeClient } from './client.js';
import type { Logger } from '../util/log.js';

export interface EventTarget {
  readonly kind: string;
  readonly apiVersion: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid?: string;
}

export interface Recorder {
  event(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): void;
}

interface Seen {
  name: string;
  count: number;
  at: number;
}

export class EventRecorder implements Recorder {
  private readonly seen = new Map<string, Seen>();
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: KubeClient,
    private readonly component: string,
    private readonly log: Logger,
    private readonly foldMs = 10 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  event(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const key = `${target.namespace}/${target.name}/${target.uid ?? ''}/${type}/${reason}/${message}`;
    const t = this.now();
    const prev = this.seen.get(key);
    this.chain = this.chain
      .then(() =>
        prev && t - prev.at < this.foldMs
          ? this.bump(target, prev, t)
          : this.create(key, target, type, reason, message, t),
      )
      .catch((e: unknown) =>
        this.log.warn('event not recorded', { reason, error: e instanceof Error ? e.message : String(e) }),
      );
    if (this.seen.size > 10_000) this.seen.clear();
  }

  /** Resolves when every queued event has been sent (tests, shutdown). */
  async flush(): Promise<void> {
    await this.chain;
  }

  private async create(
    key: string,
    target: EventTarget,
    type: string,
    reason: string,
    message: string,
    t: number,
  ): Promise<void> {
    const stamp = new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${target.name}.`, namespace: target.namespace },
      involvedObject: {
        kind: target.kind,
        apiVersion: target.apiVersion,
        namespace: target.namespace,
        name: target.name,
        ...(target.uid ? { uid: target.uid } : {}),
      },
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: this.component },
      reportingComponent: this.component,
      firstTimestamp: stamp,
      lastTimestamp: stamp,
      count: 1,
    };
    const ev = await this.client.create<KObject>(RESOURCES.events, target.namespace, body);
    this.seen.set(key, { name: ev.metadata.name, count: 1, at: t });
  }

  private async bump(target: EventTarget, prev: Seen, t: number): Promise<void> {
    prev.count++;
    prev.at = t;
    await this.client.patch(RESOURCES.events, target.namespace, prev.name, {
      count: prev.count,
      lastTimestamp: new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    });
  }
}
