/**
 * List + watch into a cache, owned by us: paginated relist on start and on 410 Gone, re-watch
 * from the last resourceVersion (kept fresh by bookmarks) when a stream ends, exponential
 * back-off on transport errors, an idle timeout so a silently dead connection is noticed, and a
 * periodic resync that re-delivers every object to the handlers.
 */
import {
  ApiError,
  WatchIdleError,
  type KObject,
  type KubeClient,
  type Resource,
  type WatchEvent,
} from './client.js';
import type { Logger } from '../util/log.js';

export type InformerEvent = 'add' | 'update' | 'delete' | 'resync';

export type Handler<T> = (type: InformerEvent, obj: T, old?: T) => void;

export interface InformerOptions {
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly log: Logger;
  /** Re-deliver every object this often (0 = never). */
  readonly resyncMs?: number;
  readonly pageSize?: number;
  /** Server-side watch timeout; the watch is re-opened after it. */
  readonly watchTimeoutSeconds?: number;
  /** No byte (not even a bookmark) for this long → the connection is considered dead. */
  readonly idleMs?: number;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
}

export function objectKey(o: KObject): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}

export class Informer<T extends KObject> {
  private readonly cache = new Map<string, T>();
  private readonly handlers = new Set<Handler<T>>();
  private syncWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private rv = '';
  private isSynced = false;
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private backoff: number;
  /**
   * Counters for tests and metrics. `errors` counts failed lists and watches (idle timeouts
   * included), `idleTimeouts` the watches closed by the idle timer.
   */
  readonly stats = { lists: 0, watches: 0, events: 0, relists410: 0, errors: 0, idleTimeouts: 0 };

  constructor(
    private readonly client: KubeClient,
    readonly resource: Resource,
    private readonly opts: InformerOptions,
  ) {
    this.backoff = opts.backoffInitialMs ?? 200;
  }

  get hasSynced(): boolean {
    return this.isSynced;
  }

  /** The resourceVersion the next watch starts from ('' before the first list). */
  get resourceVersion(): string {
    return this.rv;
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  /**
   * Puts an object we just wrote into the cache (no events), so the next reconcile sees our own
   * write even before the watch delivers it. Ignored when the cache already holds a newer one.
   */
  assume(obj: T): void {
    const key = objectKey(obj);
    const cur = this.cache.get(key);
    const rv = (o: T | undefined) => Number(o?.metadata.resourceVersion ?? 0);
    if (cur && Number.isFinite(rv(cur)) && Number.isFinite(rv(obj)) && rv(cur) > rv(obj)) return;
    this.cache.set(key, obj);
  }

  onEvent(h: Handler<T>): () => void {
    this.handlers.add(h);
    return () => this.handlers.delete(h);
  }

  /** Starts the loop; resolves once the first list is in the cache. */
  async start(): Promise<void> {
    if (this.loop) return this.waitSynced();
    this.abort = new AbortController();
    this.loop = this.run(this.abort.signal);
    if (this.opts.resyncMs) {
      this.resyncTimer = setInterval(() => {
        for (const o of this.cache.values()) this.emit('resync', o);
      }, this.opts.resyncMs);
      this.resyncTimer.unref();
    }
    return this.waitSynced();
  }

  /** Resolves after the first full list; rejects when the informer is stopped before that. */
  waitSynced(): Promise<void> {
    if (this.isSynced) return Promise.resolve();
    return new Promise((resolve, reject) => this.syncWaiters.push({ resolve, reject }));
  }

  async stop(): Promise<void> {
    this.abort?.abort();
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.resyncTimer = undefined;
    await this.loop;
    this.loop = undefined;
    const err = new Error(`informer ${this.resource.plural} stopped before its first list`);
    for (const w of this.syncWaiters.splice(0)) w.reject(err);
  }

  private emit(type: InformerEvent, obj: T, old?: T): void {
    for (const h of this.handlers) {
      try {
        h(type, obj, old);
      } catch (e) {
        this.opts.log.error('informer handler failed', { resource: this.resource.plural, error: String(e) });
      }
    }
  }

  private async run(signal: AbortSignal): Promise<void> {
    const initialBackoff = this.opts.backoffInitialMs ?? 200;
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.relist(signal);
          needList = false;
          if (signal.aborted) break;
        }
        this.stats.watches++;
        const t0 = Date.now();
        const events0 = this.stats.events;
        await this.client.watch<T>(
          this.resource,
          {
            ...(this.opts.namespace ? { namespace: this.opts.namespace } : {}),
            ...(this.opts.labelSelector ? { labelSelector: this.opts.labelSelector } : {}),
            ...(this.opts.fieldSelector ? { fieldSelector: this.opts.fieldSelector } : {}),
            resourceVersion: this.rv,
            timeoutSeconds: this.opts.watchTimeoutSeconds ?? 300,
          },
          (e) => {
            // client.watch turns a throw into its rejection (and closes the stream).
            if (this.apply(e) === 'gone') throw new ApiError(410, 'Expired', 'resource version too old');
          },
          signal,
          this.opts.idleMs ?? ((this.opts.watchTimeoutSeconds ?? 300) + 30) * 1000,
        );
        if (signal.aborted) break;
        if (Date.now() - t0 < 1000 && this.stats.events === events0) {
          // A watch the server ended at once without a single event (e.g. an apiserver shutting
          // down): do not spin.
          await sleep(this.backoff, signal);
          this.backoff = Math.min(this.backoff * 2, this.opts.backoffMaxMs ?? 10_000);
        } else {
          this.backoff = initialBackoff;
        }
      } catch (e) {
        if (signal.aborted) break;
        if (e instanceof ApiError && e.status === 410) {
          this.stats.relists410++;
          needList = true;
          continue;
        }
        this.stats.errors++;
        if (e instanceof WatchIdleError) {
          // The connection was silently dead; the server was not necessarily unhealthy, so
          // re-watch at once (the idle time itself limits the rate).
          this.stats.idleTimeouts++;
          this.opts.log.warn('watch idle, reconnecting', {
            resource: this.resource.plural,
            idleMs: e.idleMs,
          });
          continue;
        }
        this.opts.log.warn(needList ? 'list failed, retrying' : 'watch failed, retrying', {
          resource: this.resource.plural,
          error: e instanceof Error ? e.message : String(e),
          retryMs: this.backoff,
        });
        await sleep(this.backoff, signal);
        this.backoff = Math.min(this.backoff * 2, this.opts.backoffMaxMs ?? 10_000);
        // A failed list is retried by the next round (needList is still set); a failed watch
        // resumes from rv.
      }
    }
  }

  /** Returns 'gone' when the server says the resourceVersion expired. */
  private apply(e: WatchEvent<T>): 'ok' | 'gone' {
    this.stats.events++;
    const obj = e.object;
    if (e.type === 'ERROR') {
      const st = obj as unknown as { code?: number; message?: string };
      if (st.code === 410) return 'gone';
      throw new ApiError(st.code ?? 500, 'WatchError', st.message ?? 'watch error event');
    }
    if (obj?.metadata?.resourceVersion) this.rv = obj.metadata.resourceVersion;
    if (e.type === 'BOOKMARK') return 'ok';
    const key = objectKey(obj);
    const old = this.cache.get(key);
    if (e.type === 'DELETED') {
      this.cache.delete(key);
      this.emit('delete', obj, old);
    } else {
      this.cache.set(key, obj);
      this.emit(old ? 'update' : 'add', obj, old);
    }
    return 'ok';
  }

  /** Full list; the cache is replaced and the differences are delivered as events. */
  private async relist(signal: AbortSignal): Promise<void> {
    this.stats.lists++;
    const fresh = new Map<string, T>();
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.client.listPage<T>(this.resource, {
        ...(this.opts.namespace ? { namespace: this.opts.namespace } : {}),
        ...(this.opts.labelSelector ? { labelSelector: this.opts.labelSelector } : {}),
        ...(this.opts.fieldSelector ? { fieldSelector: this.opts.fieldSelector } : {}),
        limit: this.opts.pageSize ?? 500,
        ...(cont ? { continue: cont } : {}),
        signal,
      });
      for (const item of page.items) fresh.set(objectKey(item), item);
      rv = page.metadata.resourceVersion;
      cont = page.metadata.continue || undefined;
    } while (cont && !signal.aborted);
    if (signal.aborted) return;
    const old = new Map(this.cache);
    this.cache.clear();
    for (const [k, v] of fresh) this.cache.set(k, v);
    this.rv = rv;
    for (const [k, v] of fresh) {
      const prev = old.get(k);
      if (!prev) this.emit('add', v);
      else if (prev.metadata.resourceVersion !== v.metadata.resourceVersion) this.emit('update', v, prev);
    }
    for (const [k, v] of old) if (!fresh.has(k)) this.emit('delete', v, v);
    if (!this.isSynced) {
      this.isSynced = true;
      for (const w of this.syncWaiters.splice(0)) w.resolve();
    }
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
