/**
 * The Kubernetes layer (src/k8s: KubeClient, Informer, WorkQueue) against a real kube-apiserver +
 * etcd (test/k8s/controlplane.ts), no mocks: paginated list, add/update/delete, relist on 410 Gone
 * (etcd compaction behind a watch that went silent), an apiserver restart while objects change,
 * idle-timeout detection of a silently dead watch, the work queue fed by a real informer,
 * server-side apply of a status subresource, merge patches, and the errors the server returns.
 *
 * A small TCP proxy in front of the apiserver can freeze its existing connections (bytes are held,
 * nothing is closed): a watch through it goes silent like one whose TCP flow a NAT or a firewall
 * dropped, while new connections still work.
 *
 * Needs the binaries (`bash scripts/build-k8s-bins.sh`); without them the suite is skipped, except
 * under CI=true, where it fails instead.
 */
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { ApiError, KubeClient, RESOURCES, type KObject, type Resource } from '../../src/k8s/client.js';
import {
  Informer,
  objectKey,
  sleep,
  type InformerEvent,
  type InformerOptions,
} from '../../src/k8s/informer.js';
import { WorkQueue, type ReconcileResult } from '../../src/k8s/queue.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { ControlPlane, k8sUnavailableReason } from '../k8s/controlplane.js';

const unavailable = k8sUnavailableReason();
const isCI = process.env.CI === 'true';
if (unavailable && !isCI) console.warn(`k8s-watch: SKIPPED: ${unavailable} (CI=true never skips)`);
const describeK8s = unavailable && !isCI ? describe.skip : describe;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** A logger whose lines are kept (shown when a test fails). */
function memoryLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ level: 'info', write: (l) => lines.push(l.trimEnd()) }), lines };
}

async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await cond()) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/**
 * What the handlers saw: the last delivered state per key, checked for consistency (an add only
 * for an unknown key, update/resync/delete only for a known one, `old` = the previous state).
 */
class Recorder<T extends KObject> {
  readonly view = new Map<string, T>();
  readonly counts: Record<InformerEvent, number> = { add: 0, update: 0, delete: 0, resync: 0 };
  readonly perKey = new Map<string, InformerEvent[]>();
  readonly violations: string[] = [];
  /** `key@resourceVersion` → when the handlers first got it. */
  readonly seenAt = new Map<string, number>();

  constructor(inf: Informer<T>) {
    inf.onEvent((type, obj, old) => {
      const key = objectKey(obj);
      const at = `${key}@${obj.metadata.resourceVersion}`;
      if (!this.seenAt.has(at)) this.seenAt.set(at, Date.now());
      this.counts[type]++;
      this.perKey.set(key, [...(this.perKey.get(key) ?? []), type]);
      const prev = this.view.get(key);
      if (type === 'add' && prev) this.violations.push(`add of known ${key}`);
      if (type !== 'add' && !prev) this.violations.push(`${type} of unknown ${key}`);
      if (type === 'update' && old?.metadata.resourceVersion !== prev?.metadata.resourceVersion)
        this.violations.push(
          `update of ${key}: old rv ${old?.metadata.resourceVersion} ≠ ${prev?.metadata.resourceVersion}`,
        );
      if (type === 'delete') this.view.delete(key);
      else this.view.set(key, obj);
    });
  }
}

/** key → resourceVersion */
function rvs(objs: Iterable<KObject>): Map<string, string> {
  return new Map([...objs].map((o) => [objectKey(o), o.metadata.resourceVersion ?? '']));
}

async function listAll(client: KubeClient, r: Resource, namespace: string): Promise<KObject[]> {
  const out: KObject[] = [];
  let cont: string | undefined;
  do {
    const page = await client.listPage(r, { namespace, limit: 100, ...(cont ? { continue: cont } : {}) });
    out.push(...page.items);
    cont = page.metadata.continue || undefined;
  } while (cont);
  return out;
}

function diff(a: Map<string, string>, b: Map<string, string>): string {
  const out: string[] = [];
  for (const [k, v] of a) if (b.get(k) !== v) out.push(`${k}: ${v} vs ${b.get(k) ?? 'absent'}`);
  for (const k of b.keys()) if (!a.has(k)) out.push(`${k}: absent vs ${b.get(k)}`);
  return out.join(', ');
}

/**
 * Waits until the informer's cache and the handlers' view both equal a fresh list from the
 * server (keys and resourceVersions). Returns the time it took.
 */
async function converged<T extends KObject>(
  client: KubeClient,
  inf: Informer<T>,
  rec: Recorder<T>,
  namespace: string,
  timeoutMs: number,
): Promise<number> {
  let last = '';
  try {
    return await waitFor(
      `${inf.resource.plural} informer to converge`,
      async () => {
        const server = rvs(await listAll(client, inf.resource, namespace));
        last = `cache: ${diff(server, rvs(inf.list()))}; handlers: ${diff(server, rvs(rec.view.values()))}`;
        return last === 'cache: ; handlers: ';
      },
      timeoutMs,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message} (server vs ${last}; stats ${JSON.stringify(inf.stats)})`);
  }
}

/** A 404 about an object (not about a path the starting apiserver does not serve yet). */
function isObjectNotFound(e: unknown): boolean {
  return (
    e instanceof ApiError && e.status === 404 && !!(e.body as { details?: { name?: string } })?.details?.name
  );
}

/**
 * Retries `fn` through an apiserver outage for up to `ms`: transport errors, 429, 5xx, and 404s
 * for paths a starting apiserver does not serve yet (its CRDs).
 */
async function persist<T>(what: string, fn: () => Promise<T>, ms = 60_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      const retryable =
        !(e instanceof ApiError) ||
        e.status === 429 ||
        e.status >= 500 ||
        (e.status === 404 && !isObjectNotFound(e));
      if (!retryable || Date.now() - t0 > ms) throw new Error(`${what}: ${(e as Error).message}`);
      await sleep(50);
    }
  }
}

/** Idempotent writes, so a request the old apiserver executed but never answered may be repeated. */
const ops = (client: KubeClient) => ({
  create: (r: Resource, ns: string, obj: Record<string, unknown> & { metadata: { name: string } }) =>
    persist(`create ${obj.metadata.name}`, () =>
      client.create(r, ns, obj).catch((e: unknown) => {
        if (e instanceof ApiError && e.status === 409) return undefined;
        throw e;
      }),
    ),
  patch: (r: Resource, ns: string, name: string, body: unknown) =>
    persist(`patch ${name}`, () => client.patch(r, ns, name, body)),
  /** Merge patch, or create (with the patch's fields) when the object does not exist. */
  upsert: (r: Resource, ns: string, obj: Record<string, unknown> & { metadata: { name: string } }) =>
    persist(`upsert ${obj.metadata.name}`, () =>
      client.patch(r, ns, obj.metadata.name, obj).catch((e: unknown) => {
        if (!isObjectNotFound(e)) throw e;
        return client.create(r, ns, obj);
      }),
    ),
  delete: (r: Resource, ns: string, name: string) =>
    persist(`delete ${name}`, () =>
      client.delete(r, ns, name).catch((e: unknown) => {
        if (isObjectNotFound(e)) return undefined;
        throw e;
      }),
    ),
});

const cm = (name: string, data: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name },
  data,
});

const pool = (name: string, i: number) => ({
  apiVersion: 'metallb.io/v1beta1',
  kind: 'IPAddressPool',
  metadata: { name },
  spec: { addresses: [`198.51.${100 + (i % 50)}.0/28`] },
});

/**
 * A TCP proxy to the apiserver. freeze() stops forwarding on every connection open at that moment
 * (nothing is closed, bytes just stop); later connections are forwarded normally.
 */
class FreezableProxy {
  private constructor(
    private readonly server: net.Server,
    private readonly conns: Set<{ down: net.Socket; up: net.Socket }>,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<FreezableProxy> {
    const conns = new Set<{ down: net.Socket; up: net.Socket }>();
    const server = net.createServer((down) => {
      const up = net.connect(targetPort, '127.0.0.1');
      const c = { down, up };
      conns.add(c);
      down.pipe(up);
      up.pipe(down);
      const end = () => {
        conns.delete(c);
        down.destroy();
        up.destroy();
      };
      for (const s of [down, up]) {
        s.on('error', end);
        s.on('close', end);
      }
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    return new FreezableProxy(server, conns, (server.address() as net.AddressInfo).port);
  }

  /** Freezes the open connections; returns how many. */
  freeze(): number {
    const n = this.conns.size;
    for (const c of this.conns) {
      c.down.unpipe(c.up);
      c.up.unpipe(c.down);
      c.down.pause();
      c.up.pause();
      this.frozen.push(c.down, c.up);
    }
    this.conns.clear();
    return n;
  }

  private readonly frozen: net.Socket[] = [];

  async close(): Promise<void> {
    this.freeze();
    for (const s of this.frozen) s.destroy();
    await new Promise<void>((res) => this.server.close(() => res()));
  }
}

// ---------------------------------------------------------------------------------------------

describeK8s('k8s layer against a real kube-apiserver', () => {
  let cp: ControlPlane;
  let client: KubeClient;
  let proxy: FreezableProxy;
  /** A kubeconfig that goes through the proxy. */
  let proxiedKubeconfig: string;
  const cleanups: Array<() => Promise<void> | void> = [];
  const measured: Record<string, number | string> = {};

  beforeAll(async () => {
    // The secrets watch cache is off, so a watch from a compacted resourceVersion reaches etcd
    // and gets 410 Gone (a cached resource serves watches from the apiserver's memory instead).
    cp = await ControlPlane.start({ extraApiserverArgs: ['--watch-cache-sizes=secrets#0'] });
    client = await KubeClient.fromKubeConfig(cp.kubeconfigPath);
    proxy = await FreezableProxy.start(Number(new URL(cp.server).port));
    proxiedKubeconfig = join(cp.dir, 'kubeconfig-proxied');
    writeFileSync(
      proxiedKubeconfig,
      readFileSync(cp.kubeconfigPath, 'utf8').replace(cp.server, `https://127.0.0.1:${proxy.port}`),
      { mode: 0o600 },
    );
  }, 120_000);

  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
    client?.close();
    await proxy?.close();
    await cp?.stop();
    console.info(`k8s-watch measurements: ${JSON.stringify(measured)}`);
  }, 60_000);

  async function namespace(name: string): Promise<string> {
    await client.create(RESOURCES.namespaces, undefined, { metadata: { name } });
    return name;
  }

  function informer<T extends KObject>(
    c: KubeClient,
    r: Resource,
    opts: Partial<InformerOptions> & { namespace: string },
  ): { inf: Informer<T>; rec: Recorder<T>; lines: string[] } {
    const { log, lines } = memoryLogger();
    const inf = new Informer<T>(c, r, { log, backoffInitialMs: 50, backoffMaxMs: 500, ...opts });
    const rec = new Recorder(inf);
    cleanups.push(() => inf.stop());
    return { inf, rec, lines };
  }

  // -------------------------------------------------------------------------------------------

  it('lists existing objects over several pages, then sees add, update and delete', async () => {
    const ns = await namespace('paging');
    const o = ops(client);
    await Promise.all(
      Array.from({ length: 23 }, (_, i) => o.create(RESOURCES.configMaps, ns, cm(`pre-${i}`))),
    );
    const listPage = jest.spyOn(client, 'listPage');
    const { inf, rec } = informer<KObject>(client, RESOURCES.configMaps, { namespace: ns, pageSize: 5 });
    await inf.start();
    const pages = listPage.mock.calls.filter(([r, q]) => r === RESOURCES.configMaps && q.namespace === ns);
    listPage.mockRestore();
    // 23 objects (+ kube-root-ca.crt? no controllers run, so none) in pages of 5.
    expect(pages.length).toBe(5);
    expect(pages.map(([, q]) => q.limit)).toEqual([5, 5, 5, 5, 5]);
    expect(pages.slice(1).every(([, q]) => typeof q.continue === 'string' && q.continue.length > 0)).toBe(
      true,
    );
    expect(inf.hasSynced).toBe(true);
    expect(inf.list()).toHaveLength(23);
    expect(rec.counts.add).toBe(23);

    const before = inf.get(`${ns}/pre-0`)!;
    await client.create(RESOURCES.configMaps, ns, cm('new', { a: '1' }));
    await client.patch(RESOURCES.configMaps, ns, 'pre-0', { data: { changed: 'yes' } });
    await client.delete(RESOURCES.configMaps, ns, 'pre-1');
    await waitFor(
      'add/update/delete',
      () => rec.counts.add === 24 && rec.counts.update === 1 && rec.counts.delete === 1,
      10_000,
    );
    expect(rec.perKey.get(`${ns}/new`)).toEqual(['add']);
    expect(rec.perKey.get(`${ns}/pre-0`)).toEqual(['add', 'update']);
    expect(rec.perKey.get(`${ns}/pre-1`)).toEqual(['add', 'delete']);
    expect(inf.get(`${ns}/pre-0`)!.data).toEqual({ changed: 'yes' });
    expect(inf.get(`${ns}/pre-0`)!.metadata.resourceVersion).not.toBe(before.metadata.resourceVersion);
    expect(inf.get(`${ns}/pre-1`)).toBeUndefined();
    await converged(client, inf, rec, ns, 5000);
    expect(rec.violations).toEqual([]);
    expect(inf.stats.lists).toBe(1);
  });

  it('relists on 410 Gone: the watch went silent, objects changed, etcd was compacted', async () => {
    const ns = await namespace('gone');
    const o = ops(client);
    for (let i = 0; i < 6; i++)
      await o.create(RESOURCES.secrets, ns, { metadata: { name: `s-${i}` }, stringData: { i: String(i) } });
    const proxied = await KubeClient.fromKubeConfig(proxiedKubeconfig);
    cleanups.push(() => proxied.close());
    const idleMs = 4000;
    const { inf, rec, lines } = informer<KObject>(proxied, RESOURCES.secrets, { namespace: ns, idleMs });
    await inf.start();
    await sleep(300); // the watch is open
    const watches = inf.stats.watches;
    expect(proxy.freeze()).toBeGreaterThan(0);
    const t0 = Date.now();
    const staleRv = inf.resourceVersion;

    await o.create(RESOURCES.secrets, ns, { metadata: { name: 'new-a' }, stringData: { x: '1' } });
    await o.create(RESOURCES.secrets, ns, { metadata: { name: 'new-b' }, stringData: { x: '1' } });
    await o.patch(RESOURCES.secrets, ns, 's-0', { stringData: { i: 'changed' } });
    await o.patch(RESOURCES.secrets, ns, 'new-a', { metadata: { labels: { l: '1' } } });
    await o.delete(RESOURCES.secrets, ns, 's-1');
    await o.delete(RESOURCES.secrets, ns, 'new-b'); // created and deleted while the watch was dead
    const now = (await client.listPage(RESOURCES.secrets, { namespace: ns, limit: 1 })).metadata
      .resourceVersion;
    const r = await fetch(`${cp.etcdEndpoint}/v3/kv/compaction`, {
      method: 'POST',
      body: JSON.stringify({ revision: now, physical: true }),
    });
    expect(r.status).toBe(200);
    // Everything above happened while the informer's watch was frozen (no new watch yet).
    expect(inf.stats.watches).toBe(watches);
    expect(Date.now() - t0).toBeLessThan(idleMs);

    const ms = await converged(client, inf, rec, ns, 20_000);
    measured.relist410ConvergeMsAfterCompaction = Date.now() - t0;
    expect(inf.stats.idleTimeouts).toBeGreaterThanOrEqual(1);
    expect(inf.stats.relists410).toBeGreaterThanOrEqual(1);
    expect(inf.stats.lists).toBeGreaterThanOrEqual(2);
    expect(BigInt(inf.resourceVersion)).toBeGreaterThan(BigInt(staleRv));
    expect(rec.violations).toEqual([]);
    expect(rec.perKey.get(`${ns}/s-0`)).toEqual(['add', 'update']);
    expect(rec.perKey.get(`${ns}/s-1`)).toEqual(['add', 'delete']);
    expect(rec.perKey.get(`${ns}/new-a`)).toEqual(['add']);
    expect(rec.perKey.has(`${ns}/new-b`)).toBe(false);
    expect(ms).toBeLessThan(20_000);
    expect(lines.join('\n')).toContain('watch idle, reconnecting');
  }, 40_000);

  it('notices a silently dead watch with the idle timeout and misses nothing', async () => {
    const ns = await namespace('idle');
    const proxied = await KubeClient.fromKubeConfig(proxiedKubeconfig);
    cleanups.push(() => proxied.close());
    const idleMs = 600;
    const { inf, rec } = informer<KObject>(proxied, RESOURCES.configMaps, {
      namespace: ns,
      idleMs,
      watchTimeoutSeconds: 300,
    });
    await inf.start();
    // Quiet: no events and no bookmark within idleMs, so the watch is re-opened every idleMs.
    await sleep(2000);
    expect(inf.stats.idleTimeouts).toBeGreaterThanOrEqual(2);
    expect(inf.stats.watches).toBeGreaterThanOrEqual(3);
    expect(inf.stats.lists).toBe(1); // re-watched from the last resourceVersion, no relist

    // A watch that silently died: without the idle timeout this would stall until
    // watchTimeoutSeconds (5 min).
    await sleep(100);
    expect(proxy.freeze()).toBeGreaterThan(0);
    const t0 = Date.now();
    await client.create(RESOURCES.configMaps, ns, cm('after-freeze'));
    await waitFor(
      'the object created after the freeze',
      () => inf.get(`${ns}/after-freeze`) !== undefined,
      10_000,
    );
    const seenMs = Date.now() - t0;
    measured.idleDetectMs = seenMs;
    expect(seenMs).toBeLessThan(idleMs + 3000);

    // The new watch is live: the next change arrives without waiting for an idle timeout.
    const t1 = Date.now();
    await client.patch(RESOURCES.configMaps, ns, 'after-freeze', { data: { a: 'b' } });
    await waitFor('the update', () => inf.get(`${ns}/after-freeze`)?.data !== undefined, 10_000);
    measured.eventLatencyAfterReconnectMs = Date.now() - t1;
    await converged(client, inf, rec, ns, 5000);
    expect(rec.violations).toEqual([]);
  }, 30_000);

  it('converges after an apiserver restart with objects changed during and right after the downtime', async () => {
    const ns = await namespace('restart');
    const o = ops(client);
    for (let i = 0; i < 10; i++) await o.create(RESOURCES.configMaps, ns, cm(`pre-${i}`, { v: '0' }));
    for (let i = 0; i < 4; i++) await o.create(RESOURCES.ipAddressPools, ns, pool(`pre-${i}`, i));
    const cms = informer<KObject>(client, RESOURCES.configMaps, { namespace: ns });
    // The pools informer keeps the default back-off (200 ms doubling to 10 s), as in production.
    const pools = informer<KObject>(client, RESOURCES.ipAddressPools, {
      namespace: ns,
      backoffInitialMs: undefined,
      backoffMaxMs: undefined,
    });
    await Promise.all([cms.inf.start(), pools.inf.start()]);

    // One write at a time, each retried through the outage: create new-i, patch new-(i-1),
    // upsert pre-(i%10) or delete it every third round; pools likewise at half the pace.
    // Every write's result is kept (key, resourceVersion, when it returned).
    let stop = false;
    let round = 0;
    const writes: Array<{ r: Resource; at: string; done: number }> = [];
    const track = async (r: Resource, p: Promise<KObject | undefined>) => {
      const o = await p;
      if (o?.metadata?.resourceVersion)
        writes.push({ r, at: `${objectKey(o)}@${o.metadata.resourceVersion}`, done: Date.now() });
    };
    let writerFailed: Error | undefined;
    const writer = (async () => {
      for (; !stop; round++) {
        const i = round;
        await track(RESOURCES.configMaps, o.create(RESOURCES.configMaps, ns, cm(`new-${i}`, { v: '0' })));
        if (i > 0)
          await track(
            RESOURCES.configMaps,
            o.patch(RESOURCES.configMaps, ns, `new-${i - 1}`, { data: { v: String(i) } }),
          );
        if (i % 3 === 2) await o.delete(RESOURCES.configMaps, ns, `pre-${i % 10}`);
        else
          await track(
            RESOURCES.configMaps,
            o.upsert(RESOURCES.configMaps, ns, cm(`pre-${i % 10}`, { v: String(i) })),
          );
        if (i % 2 === 0) {
          await track(RESOURCES.ipAddressPools, o.create(RESOURCES.ipAddressPools, ns, pool(`new-${i}`, i)));
          if (i >= 4) await o.delete(RESOURCES.ipAddressPools, ns, `new-${i - 4}`);
          await track(
            RESOURCES.ipAddressPools,
            o.patch(RESOURCES.ipAddressPools, ns, `pre-${(i / 2) % 4}`, {
              spec: { autoAssign: i % 4 === 0 },
            }),
          );
        }
        await sleep(20);
      }
    })().catch((e: unknown) => {
      writerFailed = e instanceof Error ? e : new Error(String(e));
    });

    await sleep(300);
    const roundsBefore = round;
    const tRestart = Date.now();
    let restartMs: number;
    let roundsDuring: number;
    try {
      await cp.restartApiserver();
      restartMs = Date.now() - tRestart;
      roundsDuring = round - roundsBefore;
      // How soon after restartApiserver() returns does a new object reach the handlers?
      const tBack = Date.now();
      await o.create(RESOURCES.configMaps, ns, cm('marker'));
      await o.create(RESOURCES.ipAddressPools, ns, pool('marker', 99));
      await waitFor(
        'the markers',
        () => cms.rec.view.has(`${ns}/marker`) && pools.rec.view.has(`${ns}/marker`),
        30_000,
      );
      measured.markerSeenAfterRestartMs = Date.now() - tBack;
      // Keep writing right after the restart: 10 more rounds.
      const target = round + 10;
      await waitFor(
        '10 more writer rounds',
        () => {
          if (writerFailed) throw writerFailed;
          return round >= target;
        },
        30_000,
      );
    } finally {
      stop = true;
      await writer;
    }
    if (writerFailed) throw writerFailed;
    const tWritesDone = Date.now();

    const [cmMs, poolMs] = await Promise.all([
      converged(client, cms.inf, cms.rec, ns, 30_000),
      converged(client, pools.inf, pools.rec, ns, 30_000),
    ]);
    // The outage as the writer saw it (the longest gap between two writes), and how long after
    // its write each object version reached the handlers (versions a relist skipped never do).
    const gaps = writes.slice(1).map((w, i) => w.done - writes[i]!.done);
    const outageEnd = writes[gaps.indexOf(Math.max(...gaps)) + 1]!.done;
    const lag = (from: number, to: number) =>
      Math.max(
        0,
        ...writes
          .filter((w) => w.done >= from && w.done < to)
          .map((w) => ((w.r === RESOURCES.configMaps ? cms : pools).rec.seenAt.get(w.at) ?? w.done) - w.done),
      );
    Object.assign(measured, {
      writerOutageMs: Math.max(...gaps),
      maxDeliveryLagBeforeRestartMs: lag(0, tRestart),
      maxDeliveryLagAfterOutageMs: lag(outageEnd, Infinity),
      // From the first write the new apiserver accepted to the first event each informer delivered.
      firstEventAfterOutageMs: JSON.stringify({
        configmaps: Math.min(...[...cms.rec.seenAt.values()].filter((t) => t >= outageEnd)) - outageEnd,
        pools: Math.min(...[...pools.rec.seenAt.values()].filter((t) => t >= outageEnd)) - outageEnd,
      }),
      restartApiserverMs: restartMs,
      writerRounds: round,
      writerRoundsDuringRestart: roundsDuring,
      convergeAfterLastWriteMs: Math.max(cmMs, poolMs),
      restartStats: JSON.stringify({ configmaps: cms.inf.stats, pools: pools.inf.stats }),
    });
    for (const x of [cms, pools]) {
      expect(x.rec.violations).toEqual([]);
      // The old watch ended, and a new list or watch picked up after the restart.
      expect(x.inf.stats.watches).toBeGreaterThanOrEqual(2);
    }
    // Spot checks on top of the full comparison: the handlers saw the final data.
    const last = round - 1;
    expect(cms.rec.view.get(`${ns}/new-${last - 1}`)?.data).toEqual({ v: String(last) });
    expect(cms.rec.view.get(`${ns}/new-${last}`)?.data).toEqual({ v: '0' });
    expect(tWritesDone).toBeGreaterThan(tRestart);
    // An informer that resumed its watch (no relist) got every single version written, not only
    // the final states.
    for (const x of [cms, pools]) {
      if (x.inf.stats.lists > 1) continue;
      const r = x === cms ? RESOURCES.configMaps : RESOURCES.ipAddressPools;
      expect(writes.filter((w) => w.r === r && !x.rec.seenAt.has(w.at)).map((w) => w.at)).toEqual([]);
    }
  }, 90_000);

  it('feeds a WorkQueue: bursts of one key are deduped, failures retried with back-off, reprocessAll', async () => {
    const ns = await namespace('queue');
    const { inf, rec } = informer<KObject>(client, RESOURCES.configMaps, { namespace: ns });
    const runs = new Map<string, Array<{ at: number; n: string | undefined }>>();
    let gate: Promise<void> | undefined;
    let openGate: () => void = () => undefined;
    let flaky = 3;
    let triggers = 1;
    const { log } = memoryLogger();
    const q: WorkQueue = new WorkQueue({
      name: 'test',
      log,
      backoffInitialMs: 100,
      backoffMaxMs: 1000,
      onReprocessAll: () => {
        for (const x of inf.list()) q.add(objectKey(x));
      },
      reconcile: async (key): Promise<ReconcileResult> => {
        const data = inf.get(key)?.data as Record<string, string> | undefined;
        runs.set(key, [...(runs.get(key) ?? []), { at: Date.now(), n: data?.n }]);
        if (key.endsWith('/burst') && gate) await gate;
        if (key.endsWith('/flaky') && flaky-- > 0) return 'retry';
        if (key.endsWith('/trigger') && triggers-- > 0) return 'reprocessAll';
        return 'ok';
      },
    });
    cleanups.push(() => q.stop());
    inf.onEvent((_t, obj) => q.add(objectKey(obj)));
    await inf.start();
    q.start();

    // Burst: 20 updates while the first reconcile of the key is still running.
    gate = new Promise<void>((r) => (openGate = r));
    await client.create(RESOURCES.configMaps, ns, cm('burst', { n: '0' }));
    await waitFor('the first reconcile of burst', () => runs.has(`${ns}/burst`), 10_000);
    for (let n = 1; n <= 20; n++)
      await client.patch(RESOURCES.configMaps, ns, 'burst', { data: { n: String(n) } });
    await waitFor(
      'the 20 updates in the cache',
      () =>
        inf.get(`${ns}/burst`)?.data !== undefined &&
        (inf.get(`${ns}/burst`)!.data as { n: string }).n === '20',
      10_000,
    );
    gate = undefined;
    openGate();
    await q.idle();
    const burst = runs.get(`${ns}/burst`)!;
    expect(rec.perKey.get(`${ns}/burst`)).toHaveLength(21);
    expect(burst.length).toBe(2); // the blocked one, then once more for all 20 updates
    expect(burst.at(-1)!.n).toBe('20');

    // Retry with back-off: three failures, then success.
    await client.create(RESOURCES.configMaps, ns, cm('flaky'));
    await waitFor('flaky to succeed', () => (runs.get(`${ns}/flaky`)?.length ?? 0) === 4, 10_000);
    const at = runs.get(`${ns}/flaky`)!.map((r) => r.at);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    measured.queueRetryGapsMs = gaps.join(',');
    expect(gaps[0]).toBeGreaterThanOrEqual(95);
    expect(gaps[1]).toBeGreaterThanOrEqual(195);
    expect(gaps[2]).toBeGreaterThanOrEqual(395);
    expect(q.stats.retries).toBe(3);

    // reprocessAll: every key known to the informer is reconciled again.
    await q.idle();
    const before = new Map([...runs].map(([k, v]) => [k, v.length]));
    await client.create(RESOURCES.configMaps, ns, cm('trigger'));
    await waitFor(
      'reprocessAll',
      () => [...before].every(([k, n]) => (runs.get(k)?.length ?? 0) > n),
      10_000,
    );
    await q.idle();
    expect(runs.get(`${ns}/trigger`)!.length).toBe(2); // its own event, then reprocessAll
  }, 40_000);

  it('server-side applies a ConfigurationState status subresource and merge-patches', async () => {
    const ns = await namespace('ssa');
    const R = RESOURCES.configurationStates;
    const created = await client.create(R, ns, {
      apiVersion: 'metallb.io/v1beta1',
      kind: 'ConfigurationState',
      metadata: { name: 'controller' },
      spec: {},
    });
    const cond = (type: string, status: string) => ({
      type,
      status,
      reason: 'Checked',
      message: '',
      lastTransitionTime: '2026-01-01T00:00:00Z',
    });
    const apply = (manager: string, status: unknown) =>
      client.patch<
        KObject & { status?: { result?: string; conditions?: Array<{ type: string; status: string }> } }
      >(
        R,
        ns,
        'controller',
        {
          apiVersion: 'metallb.io/v1beta1',
          kind: 'ConfigurationState',
          metadata: { name: 'controller' },
          status,
        },
        { sub: 'status', apply: { fieldManager: manager } },
      );
    const a = await apply('ironlb-controller', { result: 'Valid', conditions: [cond('Pools', 'True')] });
    expect(a.status).toEqual({
      result: 'Valid',
      conditions: [expect.objectContaining({ type: 'Pools', status: 'True' })],
    });
    // A second manager owns another entry of the list-map (keyed by type): both stay.
    const b = await apply('ironlb-speaker', { conditions: [cond('Peers', 'False')] });
    expect(b.status!.conditions!.map((c) => `${c.type}=${c.status}`).sort()).toEqual([
      'Peers=False',
      'Pools=True',
    ]);
    // The first manager re-applies without `result`: the field it no longer applies is removed.
    const c = await apply('ironlb-controller', { conditions: [cond('Pools', 'False')] });
    expect(c.status!.result).toBeUndefined();
    expect(c.status!.conditions!.map((x) => `${x.type}=${x.status}`).sort()).toEqual([
      'Peers=False',
      'Pools=False',
    ]);
    const managers = (
      c.metadata.managedFields as Array<{ manager: string; operation: string; subresource?: string }>
    )
      .filter((m) => m.operation === 'Apply')
      .map((m) => `${m.manager}/${m.subresource}`)
      .sort();
    expect(managers).toEqual(['ironlb-controller/status', 'ironlb-speaker/status']);
    // The spec (main resource) did not change generation; a status write never does.
    expect(c.metadata.generation).toBe(created.metadata.generation);

    // Merge patch: labels on the main resource; the status in the same patch is ignored there.
    const m = await client.patch<KObject & { status?: { result?: string } }>(R, ns, 'controller', {
      metadata: { labels: { a: 'b' } },
      status: { result: 'Invalid' },
    });
    expect(m.metadata.labels).toEqual({ a: 'b' });
    expect(m.status!.result).toBeUndefined();
    // Merge patch of the status subresource; null removes a key.
    const s = await client.patch<KObject & { status?: { result?: string; errorSummary?: string } }>(
      R,
      ns,
      'controller',
      { status: { result: 'Invalid', errorSummary: 'x' } },
      { sub: 'status' },
    );
    expect(s.status).toMatchObject({ result: 'Invalid', errorSummary: 'x' });
    const s2 = await client.patch<KObject & { status?: { errorSummary?: string } }>(
      R,
      ns,
      'controller',
      { status: { errorSummary: null } },
      { sub: 'status' },
    );
    expect(s2.status!.errorSummary).toBeUndefined();
    // A server-side apply to a field another manager owns conflicts without force.
    await expect(
      client.patch(
        R,
        ns,
        'controller',
        {
          apiVersion: 'metallb.io/v1beta1',
          kind: 'ConfigurationState',
          metadata: { name: 'controller', labels: { a: 'c' } },
        },
        { apply: { fieldManager: 'other', force: false } },
      ),
    ).rejects.toMatchObject({ status: 409, reason: 'Conflict' });
  });

  it('reports 404, 409 (exists, stale resourceVersion) and 422 as ApiError with status and reason', async () => {
    const ns = await namespace('errors');
    const R = RESOURCES.configMaps;
    const err = async (p: Promise<unknown>): Promise<ApiError> => {
      try {
        await p;
      } catch (e) {
        if (e instanceof ApiError) return e;
        throw e;
      }
      throw new Error('no error');
    };
    const nf = await err(client.get(R, ns, 'missing'));
    expect(nf).toMatchObject({ status: 404, reason: 'NotFound', name: 'ApiError' });
    expect(nf.message).toContain('"missing" not found');
    expect(await err(client.delete(R, ns, 'missing'))).toMatchObject({ status: 404, reason: 'NotFound' });

    const obj = await client.create(R, ns, cm('x', { a: '1' }));
    expect(await err(client.create(R, ns, cm('x')))).toMatchObject({ status: 409, reason: 'AlreadyExists' });
    await client.patch(R, ns, 'x', { data: { a: '2' } });
    const conflict = await err(client.update(R, obj)); // obj has the old resourceVersion
    expect(conflict).toMatchObject({ status: 409, reason: 'Conflict' });

    const invalid = await err(client.create(R, ns, cm('Not_A_Valid_Name')));
    expect(invalid).toMatchObject({ status: 422, reason: 'Invalid' });
    expect((invalid.body as { details: { causes: Array<{ field: string }> } }).details.causes[0]!.field).toBe(
      'metadata.name',
    );
    // A CR that fails the CRD schema (OpenAPI enum) is a 422 too.
    const badCr = await err(
      client.create(RESOURCES.ipAddressPools, ns, { ...pool('bad', 0), spec: { addresses: 'not-a-list' } }),
    );
    expect(badCr).toMatchObject({ status: 422, reason: 'Invalid' });

    // 429 "storage is (re)initializing" (test/k8s/README.md gotcha 3): the first requests to a new
    // CRD's resources get 429 with retryAfterSeconds while its watch cache fills.
    const freshCrd = async (plural: string): Promise<Resource> => {
      const group = 'test.ironlb.io';
      const kind = plural[0]!.toUpperCase() + plural.slice(1, -1);
      await client.request('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', {
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: `${plural}.${group}` },
        spec: {
          group,
          scope: 'Namespaced',
          names: { plural, singular: plural.slice(0, -1), kind, listKind: `${kind}List` },
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
            },
          ],
        },
      });
      await waitFor(
        `the ${plural} CRD to be served`,
        async () => {
          const served = await client
            .request<{ resources: Array<{ name: string }> }>('GET', `/apis/${group}/v1`)
            .then((d) => d.resources.some((r) => r.name === plural))
            .catch(() => false);
          const c = await client.request<{
            status?: { conditions?: Array<{ type: string; status: string }> };
          }>('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${plural}.${group}`);
          return (
            served && !!c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True')
          );
        },
        15_000,
      );
      return { group, version: 'v1', plural, kind, namespaced: true };
    };
    // The cache usually fills a few ms after that first request, but not always (a race inside the
    // apiserver), so each case takes up to 5 fresh CRDs to meet a 429.
    let crds = 0;
    const path = (r: Resource) => `/apis/${r.group}/${r.version}/namespaces/${ns}/${r.plural}`;
    // Without retries the 429 surfaces as an ApiError.
    let tooMany: unknown;
    for (let i = 0; i < 5 && tooMany === undefined; i++) {
      const r = await freshCrd(`widget${crds++}s`);
      tooMany = await client.request('GET', path(r), undefined, { retries: 0 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((await client.listPage(r, { namespace: ns })).items).toEqual([]);
    }
    expect(tooMany).toBeInstanceOf(ApiError);
    expect(tooMany).toMatchObject({
      status: 429,
      reason: 'TooManyRequests',
      body: { details: { retryAfterSeconds: 1 } },
    });
    // listPage (request()) waits the asked-for second and retries: one call, a 429 then a 200.
    const open = jest.spyOn(client as unknown as { open: () => Promise<IncomingMessage> }, 'open');
    let statuses: Array<number | undefined> = [];
    try {
      for (let i = 0; i < 5 && statuses.length < 2; i++) {
        const r = await freshCrd(`widget${crds++}s`);
        open.mockClear();
        const t0 = Date.now();
        const page = await client.listPage(r, { namespace: ns });
        measured.freshCrdListMs = Date.now() - t0;
        statuses = await Promise.all(
          open.mock.results.map((x) => (x.value as Promise<IncomingMessage>).then((m) => m.statusCode)),
        );
        expect(page.items).toEqual([]);
        expect(statuses.at(-1)).toBe(200);
        expect(statuses.slice(0, -1)).toEqual(statuses.slice(0, -1).map(() => 429));
      }
    } finally {
      open.mockRestore();
    }
    measured.freshCrdListStatuses = statuses.join(',');
    measured.freshCrdsNeeded = crds;
    expect(statuses.length).toBeGreaterThanOrEqual(2);
  });
});
