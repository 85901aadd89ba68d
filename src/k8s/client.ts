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

export interface WatchEvent<T> {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  readonly object: T;
}

export interface RequestOpts {
  readonly query?: Record<string, string | number | boolean | undefined>;
  readonly contentType?: string;
  readonly timeoutMs?: number;
}

export class KubeClient {
  private readonly agent: Agent;

  private constructor(
    private readonly server: URL,
    private readonly base: RequestOptions,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: 32 });
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
    return new KubeClient(new URL(cluster.server), opts);
  }

  close(): void {
    this.agent.destroy();
  }

  private open(
    method: string,
    path: string,
    body: string | undefined,
    o: RequestOpts,
  ): Promise<IncomingMessage> {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(o.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { ...(this.base.headers as Record<string, string> | undefined) };
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
    });
    return new Promise((resolve, reject) => {
      req.on('response', resolve);
      req.on('error', reject);
      if (o.timeoutMs) {
        req.setTimeout(o.timeoutMs, () =>
          req.destroy(new Error(`${method} ${path}: timed out after ${o.timeoutMs} ms`)),
        );
      }
      req.end(body);
    });
  }

  /** One request with a JSON answer; non-2xx becomes ApiError. */
  async request<T = unknown>(method: string, path: string, body?: unknown, o: RequestOpts = {}): Promise<T> {
    const res = await this.open(method, path, body === undefined ? undefined : JSON.stringify(body), {
      timeoutMs: 30_000,
      ...o,
    });
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) {
      const st = (json ?? {}) as { reason?: string; message?: string };
      throw new ApiError(
        status,
        st.reason ?? String(status),
        `${method} ${path}: ${status} ${st.message ?? text.slice(0, 200)}`,
        json,
      );
    }
    return json as T;
  }

  get<T extends KObject>(r: Resource, namespace: string | undefined, name: string): Promise<T> {
    return this.request<T>('GET', resourcePath(r, namespace, name));
  }

  create<T extends KObject>(r: Resource, namespace: string | undefined, obj: unknown): Promise<T> {
    return this.request<T>('POST', resourcePath(r, namespace), obj);
  }

  update<T extends KObject>(r: Resource, obj: T, sub?: string): Promise<T> {
    return this.request<T>('PUT', resourcePath(r, obj.metadata.namespace, obj.metadata.name, sub), obj);
  }

  delete(r: Resource, namespace: string | undefined, name: string): Promise<unknown> {
    return this.request('DELETE', resourcePath(r, namespace, name));
  }

  /** JSON merge patch (or server-side apply with `fieldManager`). */
  patch<T extends KObject>(
    r: Resource,
    namespace: string | undefined,
    name: string,
    body: unknown,
    o: { sub?: string; apply?: { fieldManager: string; force?: boolean } } = {},
  ): Promise<T> {
    return this.request<T>('PATCH', resourcePath(r, namespace, name, o.sub), body, {
      contentType: o.apply ? 'application/apply-patch+yaml' : 'application/merge-patch+json',
      ...(o.apply ? { query: { fieldManager: o.apply.fieldManager, force: o.apply.force ?? true } } : {}),
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
    },
  ): Promise<{ items: T[]; metadata: { resourceVersion: string; continue?: string } }> {
    return this.request('GET', resourcePath(r, q.namespace), undefined, {
      query: {
        labelSelector: q.labelSelector,
        fieldSelector: q.fieldSelector,
        limit: q.limit,
        continue: q.continue,
      },
    });
  }

  /**
   * Streams a watch until the server ends it, the signal aborts, or nothing (not even a bookmark)
   * arrives for `idleMs`. Resolves normally on a clean end; rejects on transport errors.
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
    const res = await this.open('GET', resourcePath(r, q.namespace), undefined, {
      query: {
        watch: true,
        allowWatchBookmarks: true,
        resourceVersion: q.resourceVersion,
        timeoutSeconds: q.timeoutSeconds,
        labelSelector: q.labelSelector,
        fieldSelector: q.fieldSelector,
      },
    });
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString('utf8');
      let st: { reason?: string; message?: string } = {};
      try {
        st = JSON.parse(text) as typeof st;
      } catch {
        // not JSON
      }
      throw new ApiError(
        status,
        st.reason ?? String(status),
        `watch ${r.plural}: ${status} ${st.message ?? text.slice(0, 200)}`,
      );
    }
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      let idle: NodeJS.Timeout | undefined;
      const arm = () => {
        if (idle) clearTimeout(idle);
        idle = setTimeout(
          () => res.destroy(new Error(`watch ${r.plural}: no data for ${idleMs} ms`)),
          idleMs,
        );
      };
      const finish = (err?: Error) => {
        if (idle) clearTimeout(idle);
        signal.removeEventListener('abort', onAbort);
        if (err && !signal.aborted) reject(err);
        else resolve();
      };
      const onAbort = () => res.destroy();
      signal.addEventListener('abort', onAbort, { once: true });
      arm();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
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
            res.destroy(new Error(`watch ${r.plural}: unparsable event`));
            return;
          }
          onEvent(ev);
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
