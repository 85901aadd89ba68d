/**
 * HTTP(S) endpoint for metrics and health probes.
 *
 *   GET /metrics  Prometheus text format (Metrics.render(), or a bare Registry)
 *   GET /healthz  liveness: the pluggable check (default: always ok)
 *   GET /livez    alias of /healthz
 *   GET /readyz   readiness: a plain ping, always 200 (spec f.3, "Health endpoints")
 *
 * HEAD is answered like GET without a body; other methods get 405, other paths 404. Error
 * responses are one short text line: never a stack trace or an exception message.
 *
 * Transport: upstream serves metrics over HTTPS with Kubernetes authn/authz (kube-rbac-proxy
 * style). We serve plain HTTP unless `tls` (cert/key paths) is given; then HTTPS, with no client
 * authentication. Without TLS, bind the metrics port to the pod network only and restrict it
 * with a NetworkPolicy; the health port of the speaker is meant for 127.0.0.1 (upstream binds it
 * there). Upstream uses two listeners (metrics on `--port`, default 9120; health on
 * `--health-probe-port`, default 17472): run two servers with `endpoints` set accordingly.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '../util/log.js';
import { Metrics } from './metrics.js';

export type LivenessResult = { ok: true } | { ok: false; reason: string };
export type LivenessCheck = () => LivenessResult | Promise<LivenessResult>;

export type Endpoint = 'metrics' | 'health';

export interface ObservabilityServerOptions {
  /** Address to bind, e.g. `0.0.0.0`, `::`, `127.0.0.1`. */
  host: string;
  /** Port; 0 = ephemeral (tests: read it from start()/address()). */
  port: number;
  /** What /metrics serves. Required when `endpoints` includes 'metrics'. */
  metrics?: Metrics | Registry;
  /** Liveness for /healthz and /livez (default: always ok). */
  liveness?: LivenessCheck;
  /** Upper bound for the liveness check (default 5000 ms); exceeding it answers 503. */
  livenessTimeoutMs?: number;
  /** Endpoints served (default both). Unserved paths answer 404. */
  endpoints?: readonly Endpoint[];
  /** PEM certificate chain and key files: serve HTTPS. Both or neither. */
  tls?: { certPath: string; keyPath: string };
  log?: Pick<Logger, 'warn' | 'error'>;
}

const TEXT = 'text/plain; charset=utf-8';

export class ObservabilityServer {
  private server: http.Server | https.Server | undefined;
  private starting: Promise<AddressInfo> | undefined;
  private readonly endpoints: ReadonlySet<Endpoint>;
  private readonly livenessTimeoutMs: number;

  constructor(private readonly opts: ObservabilityServerOptions) {
    this.endpoints = new Set(opts.endpoints ?? ['metrics', 'health']);
    if (this.endpoints.has('metrics') && !opts.metrics) {
      throw new Error('ObservabilityServer: /metrics needs a Metrics or Registry');
    }
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
      throw new Error(`ObservabilityServer: bad port ${opts.port}`);
    }
    if (opts.tls && (!opts.tls.certPath || !opts.tls.keyPath)) {
      throw new Error('ObservabilityServer: tls needs both certPath and keyPath');
    }
    this.livenessTimeoutMs = opts.livenessTimeoutMs ?? 5000;
  }

  get tls(): boolean {
    return this.opts.tls !== undefined;
  }

  /** Binds and listens; resolves with the bound address. Idempotent while running. */
  start(): Promise<AddressInfo> {
    if (!this.starting) {
      this.starting = this.listen().catch((e: unknown) => {
        this.starting = undefined;
        this.server = undefined;
        throw e;
      });
    }
    return this.starting;
  }

  /** The bound address, or undefined when not listening. */
  address(): AddressInfo | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  /** `http(s)://host:port` of the bound address (IPv6 hosts in brackets). */
  url(): string | undefined {
    const a = this.address();
    if (!a) return undefined;
    const host = a.family === 'IPv6' || a.address.includes(':') ? `[${a.address}]` : a.address;
    return `${this.tls ? 'https' : 'http'}://${host}:${a.port}`;
  }

  /** Re-reads the certificate and key (after rotation); new connections use them. */
  async reloadTls(): Promise<void> {
    if (!this.opts.tls || !(this.server instanceof https.Server)) return;
    this.server.setSecureContext(await this.readTls());
  }

  /** Stops listening and closes every connection. Idempotent. */
  async stop(): Promise<void> {
    const starting = this.starting;
    this.starting = undefined;
    if (starting) await starting.catch(() => undefined);
    const srv = this.server;
    this.server = undefined;
    if (!srv) return;
    await new Promise<void>((resolve) => {
      srv.close(() => resolve());
      srv.closeAllConnections();
    });
  }

  private async readTls(): Promise<{ cert: Buffer; key: Buffer }> {
    const t = this.opts.tls!;
    const [cert, key] = await Promise.all([readFile(t.certPath), readFile(t.keyPath)]);
    return { cert, key };
  }

  private async listen(): Promise<AddressInfo> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.handle(req, res).catch((e: unknown) => {
        this.opts.log?.error('observability: request failed', { error: errText(e) });
        if (!res.headersSent) send(res, req, 500, 'internal error\n');
        else res.destroy();
      });
    };
    const srv = this.opts.tls
      ? https.createServer(await this.readTls(), handler)
      : http.createServer(handler);
    srv.keepAliveTimeout = 5000;
    srv.headersTimeout = 10_000;
    srv.requestTimeout = 30_000;
    this.server = srv;
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      srv.once('error', onError);
      srv.listen({ host: this.opts.host, port: this.opts.port }, () => {
        srv.off('error', onError);
        srv.on('error', (e) => this.opts.log?.error('observability: server error', { error: errText(e) }));
        resolve();
      });
    });
    srv.on('clientError', (_e, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
    return this.address()!;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = pathOf(req.url);
    const route = this.route(path);
    if (!route) return send(res, req, 404, 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, req, 405, 'method not allowed\n');
    }
    switch (route) {
      case 'readyz':
        return send(res, req, 200, 'ok\n');
      case 'healthz': {
        const r = await this.checkLiveness();
        return r.ok ? send(res, req, 200, 'ok\n') : send(res, req, 503, `not ok: ${oneLine(r.reason)}\n`);
      }
      case 'metrics':
        return this.serveMetrics(req, res);
    }
  }

  private route(path: string): 'metrics' | 'healthz' | 'readyz' | undefined {
    if (path === '/metrics' && this.endpoints.has('metrics')) return 'metrics';
    if (!this.endpoints.has('health')) return undefined;
    if (path === '/healthz' || path === '/livez') return 'healthz';
    if (path === '/readyz') return 'readyz';
    return undefined;
  }

  private async checkLiveness(): Promise<LivenessResult> {
    const check = this.opts.liveness;
    if (!check) return { ok: true };
    let timer: NodeJS.Timeout | undefined;
    try {
      const r = await Promise.race([
        Promise.resolve().then(check),
        new Promise<LivenessResult>((resolve) => {
          timer = setTimeout(
            () => resolve({ ok: false, reason: 'liveness check timed out' }),
            this.livenessTimeoutMs,
          );
        }),
      ]);
      if (r && typeof r === 'object' && (r.ok === true || r.ok === false)) {
        return r.ok ? r : { ok: false, reason: r.reason || 'unhealthy' };
      }
      return { ok: false, reason: 'liveness check returned no result' };
    } catch (e) {
      this.opts.log?.warn('observability: liveness check threw', { error: errText(e) });
      return { ok: false, reason: 'liveness check failed' };
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  private async serveMetrics(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const m = this.opts.metrics!;
    let body: string;
    try {
      body = m instanceof Metrics ? await m.render() : await m.metrics();
    } catch (e) {
      this.opts.log?.error('observability: rendering metrics failed', { error: errText(e) });
      return send(res, req, 500, 'error collecting metrics\n');
    }
    send(res, req, 200, body, m.contentType);
  }
}

function pathOf(url: string | undefined): string {
  const u = url ?? '/';
  const q = u.search(/[?#]/);
  return q >= 0 ? u.slice(0, q) : u;
}

function send(
  res: http.ServerResponse,
  req: http.IncomingMessage,
  status: number,
  body: string,
  contentType = TEXT,
): void {
  const buf = Buffer.from(body, 'utf8');
  res.writeHead(status, {
    'Content-Type': contentType,
    'Content-Length': buf.length,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(req.method === 'HEAD' ? undefined : buf);
}

/** A reason on one line, bounded (it ends up in a probe's event message). */
function oneLine(s: string): string {
  const t = s.replace(/[\r\n]+/g, ' ').trim();
  return t.length > 200 ? `${t.slice(0, 197)}...` : t;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
