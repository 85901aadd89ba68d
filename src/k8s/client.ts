/**
 * A small Kubernetes REST client: authentication and TLS come from @kubernetes/client-node's
 * KubeConfig; requests, lists and watch streams are plain node:https so this layer owns its
 * timeouts, reconnects and error handling (the library's informer is known to stall).
 */
import { request as httpsRequest, Agent, type RequestOptions } from 'node:https';
import { request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';

/** One API resource type. */
export interface Resource {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

export const RESOURCES = {
  services: { group: '', version: 'v1', plural: 'services', kind: 'Service', namespaced: true },
  endpointSlices: {
    group: 'discovery.k8s.io',
    version: 'v1',
    plural: 'endpointslices',
    kind: 'EndpointSlice',
    namespaced: true,
  },
  nodes: { group: '', version: 'v1', plural: 'nodes', kind: 'Node', namespaced: false },
  namespaces: { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false },
  secrets: { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true },
  configMaps: { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true },
  events: { group: '', version: 'v1', plural: 'events', kind: 'Event', namespaced: true },
  pods: { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true },
  leases: { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true },
  ipAddressPools: mlb('ipaddresspools', 'IPAddressPool'),
  l2Advertisements: mlb('l2advertisements', 'L2Advertisement'),
  bgpAdvertisements: mlb('bgpadvertisements', 'BGPAdvertisement'),
  bgpPeers: { ...mlb('bgppeers', 'BGPPeer'), version: 'v1beta2' },
  communities: mlb('communities', 'Community'),
  bfdProfiles: mlb('bfdprofiles', 'BFDProfile'),
  serviceL2Statuses: mlb('servicel2statuses', 'ServiceL2Status'),
  serviceBGPStatuses: mlb('servicebgpstatuses', 'ServiceBGPStatus'),
  configurationStates: mlb('configurationstates', 'ConfigurationState'),
} as const satisfies Record<string, Resource>;

function mlb(plural: string, kind: string): Resource {
  return { group: 'metallb.io', version: 'v1beta1', plural, kind, namespaced: true };
}

export function apiVersionOf(r: Resource): string {
  return r.group ? `${r.group}/${r.version}` : r.version;
}

/** `/api/v1/namespaces/ns/services/name/status` and friends. */
export function resourcePath(r: Resource, namespace?: string, name?: string, sub?: string): string {
  let p = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  if (r.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${r.plural}`;
  if (name) p += `/${encodeURIComponent(name)}`;
  if (sub) p += `/${sub}`;
  return p;
}

export interface KObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

/** A non-2xx answer from the API server. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly body?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/**
 * A watch stream that delivered nothing (not even a bookmark) for `idleMs`: the connection is
 * presumed dead (a silently dropped TCP flow, a hung apiserver) and has been closed.
 */
export class WatchIdleError extends Error {
  constructor(
    readonly plural: string,
    readonly idleMs: number,
  ) {
    super(`watch ${plural}: no data for ${idleMs} ms`);
    this.name = 'WatchIdleError';
  }
}

export interface WatchEvent<T> {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  readonly object: T;
}

export interface RequestOpts {
  readonly query?: Record<string, string | number | boolean | undefined>;
  readonly contentType?: string;
  /** Socket inactivity limit (default 30 s for request(); the idle limit for watches). */
  readonly timeoutMs?: number;
  /** Aborts the request (the promise rejects with an AbortError). */
  readonly signal?: AbortSignal;
  /**
   * How often request() retries an answer the server asks to be retried, like client-go: 429, or a
   * 5xx with Retry-After. GETs are also retried after a reset connection (a keep-alive socket the
   * server closed, e.g. across an apiserver restart). Default 5; 0 disables.
   */
  readonly retries?: number;
}

/**
 * How long to wait before repeating a request that got this answer, or undefined when it must not be
 * repeated: 429 (Retry-After, else `details.retryAfterSeconds`, else 1 s) and 5xx with a Retry-After;
 * capped at 10 s.
 */
export function retryDelayMs(
  status: number,
  headers: IncomingMessage['headers'],
  body: unknown,
): number | undefined {
  const header = Number(headers['retry-after']);
  const details = (body as { details?: { retryAfterSeconds?: number } } | undefined)?.details;
  const seconds =
    Number.isFinite(header) && headers['retry-after'] !== undefined ? header : details?.retryAfterSeconds;
  if (status === 429) return Math.min(Math.max(seconds ?? 1, 0.1), 10) * 1000;
  if (status >= 500 && status <= 599 && seconds !== undefined)
    return Math.min(Math.max(seconds, 0.1), 10) * 1000;
  return undefined;
}

function isConnectionReset(e: unknown): boolean {
  const code = (e as { code?: string } | undefined)?.code;
  return code === 'ECONNRESET' || code === 'EPIPE' || (e instanceof Error && e.message === 'socket hang up');
}

const delay = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** Authorization headers are re-read from the KubeConfig this often (rotated tokens, exec plugins). */
const AUTH_REFRESH_MS = 30_000;

export class KubeClient {
  private readonly agent: Agent;
  private authHeaders: Record<string, string>;
  private authAt: number;

  private constructor(
    private readonly server: URL,
    private readonly base: RequestOptions,
    private readonly kc?: KubeConfig,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: 32 });
    // applyToHTTPSOptions also creates an agent of its own; ours (with the same TLS options, which
    // https.request passes on) is used instead.
    delete this.base.agent;
    this.authHeaders = { ...(base.headers as Record<string, string> | undefined) };
    this.authAt = Date.now();
  }

  /** From a kubeconfig file, or in-cluster config when `path` is absent and in a Pod. */
  static async fromKubeConfig(path?: string): Promise<KubeClient> {
    const kc = new KubeConfig();
    if (path) kc.loadFromFile(path);
    else kc.loadFromDefault();
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const opts: RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    return new KubeClient(new URL(cluster.server), opts, kc);
  }

  close(): void {
    this.agent.destroy();
  }

  /**
   * The Authorization (and impersonation) headers. Token files (in-cluster service-account tokens
   * are rotated by the kubelet) and exec plugins (short-lived tokens) are re-read every 30 s, and
   * right after a 401.
   */
  private async headers(): Promise<Record<string, string>> {
    if (this.kc && Date.now() - this.authAt > AUTH_REFRESH_MS) {
      const opts: RequestOptions = {};
      await this.kc.applyToHTTPSOptions(opts);
      this.authHeaders = { ...(opts.headers as Record<string, string> | undefined) };
      this.authAt = Date.now();
    }
    return this.authHeaders;
  }

  private async open(
    method: string,
    path: string,
    body: string | undefined,
    o: RequestOpts,
  ): Promise<IncomingMessage> {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(o.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { ...(await this.headers()) };
    headers.Accept = 'application/json';
    if (body !== undefined) {
      headers['Content-Type'] = o.contentType ?? 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(body));
    }
    const req = (url.protocol === 'http:' ? httpRequest : httpsRequest)(url, {
      ...this.base,
      method,
      headers,
      agent: url.protocol === 'http:' ? undefined : this.agent,
      ...(o.signal ? { signal: o.signal } : {}),
    });
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      req.on('response', resolve);
      req.on('error', reject);
      if (o.timeoutMs) {
        req.setTimeout(o.timeoutMs, () =>
          req.destroy(new Error(`${method} ${path}: timed out after ${o.timeoutMs} ms`)),
        );
      }
      req.end(body);
    });
    if (res.statusCode === 401) this.authAt = 0;
    return res;
  }

  /**
   * One request with a JSON answer; non-2xx becomes ApiError. 429 (and 5xx with Retry-After) are
   * retried after the delay the server asks for (see RequestOpts.retries).
   */
  async request<T = unknown>(method: string, path: string, body?: unknown, o: RequestOpts = {}): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const retries = o.retries ?? 5;
    for (let attempt = 0; ; attempt++) {
      let res: IncomingMessage;
      let text: string;
      try {
        res = await this.open(method, path, payload, { timeoutMs: 30_000, ...o });
        text = await readBody(res);
      } catch (e) {
        if (method === 'GET' && attempt < retries && !o.signal?.aborted && isConnectionReset(e)) {
          await delay(100 * (attempt + 1), o.signal);
          continue;
        }
        throw e;
      }
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      const status = res.statusCode ?? 0;
      if (status >= 200 && status <= 299) return json as T;
      const wait = retryDelayMs(status, res.headers, json);
      if (wait !== undefined && attempt < retries && !o.signal?.aborted) {
        await delay(wait, o.signal);
        continue;
      }
      throw apiError(status, json, text, `${method} ${path}`);
    }
  }

  get<T extends KObject>(
    r: Resource,
    namespace: string | undefined,
    name: string,
    o: RequestOpts = {},
  ): Promise<T> {
    return this.request<T>('GET', resourcePath(r, namespace, name), undefined, o);
  }

  create<T extends KObject>(
    r: Resource,
    namespace: string | undefined,
    obj: unknown,
    o: RequestOpts = {},
  ): Promise<T> {
    return this.request<T>('POST', resourcePath(r, namespace), obj, o);
  }

  update<T extends KObject>(r: Resource, obj: T, sub?: string, o: RequestOpts = {}): Promise<T> {
    return this.request<T>('PUT', resourcePath(r, obj.metadata.namespace, obj.metadata.name, sub), obj, o);
  }

  delete(r: Resource, namespace: string | undefined, name: string, o: RequestOpts = {}): Promise<unknown> {
    return this.request('DELETE', resourcePath(r, namespace, name), undefined, o);
  }

  /**
   * JSON merge patch (or server-side apply with `fieldManager`). `o` also takes the request
   * options (timeoutMs, signal, retries).
   */
  patch<T extends KObject>(
    r: Resource,
    namespace: string | undefined,
    name: string,
    body: unknown,
    o: { sub?: string; apply?: { fieldManager: string; force?: boolean } } & Pick<
      RequestOpts,
      'timeoutMs' | 'signal' | 'retries'
    > = {},
  ): Promise<T> {
    const { sub, apply, ...req } = o;
    return this.request<T>('PATCH', resourcePath(r, namespace, name, sub), body, {
      ...req,
      contentType: apply ? 'application/apply-patch+yaml' : 'application/merge-patch+json',
      ...(apply ? { query: { fieldManager: apply.fieldManager, force: apply.force ?? true } } : {}),
    });
  }

  /** One page of a list. */
  listPage<T extends KObject>(
    r: Resource,
    q: {
      namespace?: string;
      labelSelector?: string;
      fieldSelector?: string;
      limit?: number;
      continue?: string;
      signal?: AbortSignal;
    },
  ): Promise<{ items: T[]; metadata: { resourceVersion: string; continue?: string } }> {
    return this.request('GET', resourcePath(r, q.namespace), undefined, {
      query: {
        labelSelector: q.labelSelector,
        fieldSelector: q.fieldSelector,
        limit: q.limit,
        continue: q.continue,
      },
      ...(q.signal ? { signal: q.signal } : {}),
    });
  }

  /**
   * Streams a watch until the server ends it, the signal aborts, or nothing (not even a bookmark)
   * arrives for `idleMs` (rejects with WatchIdleError). Resolves normally on a clean end and on
   * abort; rejects on transport errors, on a non-200 answer (ApiError), and with whatever
   * `onEvent` throws (the stream is closed then).
   */
  async watch<T extends KObject>(
    r: Resource,
    q: {
      namespace?: string;
      labelSelector?: string;
      fieldSelector?: string;
      resourceVersion: string;
      timeoutSeconds: number;
    },
    onEvent: (e: WatchEvent<T>) => void,
    signal: AbortSignal,
    idleMs: number,
  ): Promise<void> {
    if (signal.aborted) return;
    let res: IncomingMessage;
    try {
      res = await this.open('GET', resourcePath(r, q.namespace), undefined, {
        query: {
          watch: true,
          allowWatchBookmarks: true,
          resourceVersion: q.resourceVersion,
          timeoutSeconds: q.timeoutSeconds,
          labelSelector: q.labelSelector,
          fieldSelector: q.fieldSelector,
        },
        timeoutMs: idleMs,
        signal,
      });
    } catch (e) {
      if (signal.aborted) return;
      throw e;
    }
    // The socket timeout only guarded the wait for the headers; the idle timer below takes over.
    res.socket?.setTimeout(0);
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      const text = await readBody(res);
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        // not JSON
      }
      throw apiError(status, json, text, `watch ${r.plural}`);
    }
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      let idle: NodeJS.Timeout | undefined;
      let failure: Error | undefined;
      let settled = false;
      const fail = (e: Error) => {
        failure ??= e;
        res.destroy(e);
      };
      const arm = () => {
        if (idle) clearTimeout(idle);
        idle = setTimeout(() => fail(new WatchIdleError(r.plural, idleMs)), idleMs);
      };
      const finish = (err?: Error) => {
        if (settled) return;
        settled = true;
        if (idle) clearTimeout(idle);
        signal.removeEventListener('abort', onAbort);
        const e = failure ?? err;
        if (e && !signal.aborted) reject(e);
        else resolve();
      };
      const onAbort = () => res.destroy();
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) res.destroy();
      arm();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (failure) return;
        arm();
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) !== -1) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          let ev: WatchEvent<T>;
          try {
            ev = JSON.parse(line) as WatchEvent<T>;
          } catch {
            fail(new Error(`watch ${r.plural}: unparsable event`));
            return;
          }
          try {
            onEvent(ev);
          } catch (e) {
            // Thrown inside a stream 'data' listener it would be an uncaught exception.
            fail(e instanceof Error ? e : new Error(String(e)));
            return;
          }
        }
      });
      res.on('end', () => finish());
      res.on('error', (e) => finish(e));
      res.on('close', () =>
        finish(res.complete ? undefined : new Error(`watch ${r.plural}: connection closed`)),
      );
    });
  }
}

async function readBody(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function apiError(status: number, json: unknown, text: string, what: string): ApiError {
  const st = (json ?? {}) as { reason?: string; message?: string };
  return new ApiError(
    status,
    st.reason ?? String(status),
    `${what}: ${status} ${st.message ?? text.slice(0, 200)}`,
    json,
  );
}
