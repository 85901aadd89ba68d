/**
 * src/observability/server.ts over real HTTP(S) on 127.0.0.1 (ephemeral ports): scrape, health
 * codes, 404/405, no stack traces in responses, stop/restart, optional TLS.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Gauge, Registry } from 'prom-client';
import { Metrics } from '../../src/observability/metrics.js';
import { ObservabilityServer, type ObservabilityServerOptions } from '../../src/observability/server.js';

const servers: ObservabilityServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function serve(
  opts: Partial<ObservabilityServerOptions> = {},
): Promise<{ srv: ObservabilityServer; base: string; metrics: Metrics }> {
  const metrics = new Metrics({ registry: new Registry() });
  const srv = new ObservabilityServer({ host: '127.0.0.1', port: 0, metrics, ...opts });
  servers.push(srv);
  await srv.start();
  return { srv, base: srv.url()!, metrics };
}

/** Every non-comment line is `name{labels} value` with a numeric value. */
function parsesAsPrometheusText(text: string): boolean {
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .every((l) => {
      const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? (\S+)$/.exec(l);
      return m !== null && (!Number.isNaN(Number(m[2])) || ['+Inf', '-Inf', 'NaN', 'Nan'].includes(m[2]!));
    });
}

const noStack = (body: string) => {
  expect(body).not.toMatch(/\bat .*\(.*:\d+:\d+\)/);
  expect(body).not.toMatch(/Error:/);
  expect(body).not.toContain('.ts');
};

describe('ObservabilityServer over HTTP', () => {
  test('binds an ephemeral port on 127.0.0.1; /metrics is the Prometheus text format', async () => {
    const { srv, base, metrics } = await serve();
    const a = srv.address()!;
    expect(a.address).toBe('127.0.0.1');
    expect(a.port).toBeGreaterThan(0);
    expect(base).toBe(`http://127.0.0.1:${a.port}`);

    metrics.setConfigLoaded(true);
    metrics.setAnnounced({ service: 'ns/svc', protocol: 'layer2', node: 'n1', ip: '192.0.2.10' });
    metrics.setPoolCounters('p', {
      assignedIPv4: 1n,
      availableIPv4: 3n,
      assignedIPv6: 0n,
      availableIPv6: 0n,
    });
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    expect(parsesAsPrometheusText(text)).toBe(true);
    expect(text).toContain('# TYPE metallb_k8s_client_config_loaded_bool gauge');
    expect(text).toContain('\nmetallb_k8s_client_config_loaded_bool 1\n');
    expect(text).toContain(
      'metallb_speaker_announced{service="ns/svc",protocol="layer2",node="n1",ip="192.0.2.10"} 1',
    );
    expect(text).toContain('metallb_allocator_addresses_total{pool="p"} 4');
    // query strings are ignored
    expect((await fetch(`${base}/metrics?debug=1`)).status).toBe(200);
  });

  test('runs the Metrics collectors on every scrape', async () => {
    const { base, metrics } = await serve();
    let n = 0;
    metrics.addCollector('count', () => {
      n++;
      metrics.setConfigStale(n % 2 === 1);
    });
    expect(await (await fetch(`${base}/metrics`)).text()).toContain(
      '\nmetallb_k8s_client_config_stale_bool 1\n',
    );
    expect(await (await fetch(`${base}/metrics`)).text()).toContain(
      '\nmetallb_k8s_client_config_stale_bool 0\n',
    );
    expect(n).toBe(2);
  });

  test('a bare prom-client Registry works too', async () => {
    const registry = new Registry();
    new Gauge({ name: 'x_up', help: 'x', registers: [registry] }).set(1);
    const { base } = await serve({ metrics: registry });
    expect(await (await fetch(`${base}/metrics`)).text()).toContain('\nx_up 1\n');
  });

  test('/healthz, /livez and /readyz default to 200 ok', async () => {
    const { base } = await serve();
    for (const p of ['/healthz', '/livez', '/readyz']) {
      const res = await fetch(base + p);
      expect([p, res.status, await res.text()]).toEqual([p, 200, 'ok\n']);
      expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    }
  });

  test('liveness is pluggable; readiness stays a plain ping', async () => {
    let state: { ok: true } | { ok: false; reason: string } = { ok: true };
    const { base } = await serve({ liveness: async () => Promise.resolve(state) });
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    state = { ok: false, reason: 'FRR bgpd not running\nsecond line' };
    for (const p of ['/healthz', '/livez']) {
      const res = await fetch(base + p);
      expect(res.status).toBe(503);
      expect(await res.text()).toBe('not ok: FRR bgpd not running second line\n');
    }
    const ready = await fetch(`${base}/readyz`);
    expect([ready.status, await ready.text()]).toEqual([200, 'ok\n']);
  });

  test('a throwing liveness check answers 503 without the error text; it is logged', async () => {
    const logged: unknown[] = [];
    const log = { warn: (...a: unknown[]) => logged.push(a), error: (...a: unknown[]) => logged.push(a) };
    const { base } = await serve({
      log,
      liveness: () => {
        throw new Error('secret internals at /etc/ironlb/key.pem');
      },
    });
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(503);
    const body = await res.text();
    expect(body).toBe('not ok: liveness check failed\n');
    noStack(body);
    expect(JSON.stringify(logged)).toContain('secret internals');
  });

  test('a hanging liveness check answers 503 after livenessTimeoutMs', async () => {
    const { base } = await serve({ liveness: () => new Promise(() => undefined), livenessTimeoutMs: 100 });
    const t0 = Date.now();
    const res = await fetch(`${base}/livez`);
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('not ok: liveness check timed out\n');
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  test('404 for other paths, 405 for other methods, HEAD without body', async () => {
    const { base } = await serve();
    for (const p of ['/', '/metrics/', '/metricsx', '/healthz/extra', '/debug/pprof', '/%2e%2e/etc/passwd']) {
      const res = await fetch(base + p);
      expect([p, res.status]).toEqual([p, 404]);
      expect(await res.text()).toBe('not found\n');
    }
    const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect((await fetch(`${base}/nothing`, { method: 'DELETE' })).status).toBe(404);
    const head = await fetch(`${base}/healthz`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('3');
    expect(await head.text()).toBe('');
  });

  test('a metrics rendering failure is a 500 with a fixed text', async () => {
    const registry = new Registry();
    new Gauge({
      name: 'broken',
      help: 'x',
      registers: [registry],
      collect() {
        throw new Error('boom at /work/main/src/secret.ts:1:1');
      },
    });
    const logged: unknown[] = [];
    const { base } = await serve({
      metrics: registry,
      log: { warn: () => undefined, error: (...a: unknown[]) => logged.push(a) },
    });
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(500);
    const body = await res.text();
    expect(body).toBe('error collecting metrics\n');
    noStack(body);
    expect(JSON.stringify(logged)).toContain('boom');
    // the server is still fine
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
  });

  test('endpoints select what is served (upstream: metrics and health on separate ports)', async () => {
    const { base: h } = await serve({ endpoints: ['health'] });
    expect((await fetch(`${h}/metrics`)).status).toBe(404);
    expect((await fetch(`${h}/readyz`)).status).toBe(200);
    const { base: m } = await serve({ endpoints: ['metrics'] });
    expect((await fetch(`${m}/metrics`)).status).toBe(200);
    expect((await fetch(`${m}/healthz`)).status).toBe(404);
    expect(() => new ObservabilityServer({ host: '127.0.0.1', port: 0 })).toThrow(/needs a Metrics/);
    expect(
      () => new ObservabilityServer({ host: '127.0.0.1', port: 0, endpoints: ['health'] }),
    ).not.toThrow();
    expect(() => new ObservabilityServer({ host: '127.0.0.1', port: 70000, endpoints: ['health'] })).toThrow(
      /bad port/,
    );
  });

  test('start is idempotent; stop closes keep-alive connections, is idempotent; restart works', async () => {
    const { srv, base } = await serve();
    const a1 = srv.address()!;
    expect(await srv.start()).toEqual(a1);
    // An idle keep-alive connection must not hold stop() up.
    const sock = net.connect(a1.port, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write('GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
    await new Promise<void>((r) => sock.once('data', () => r()));
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    const t0 = Date.now();
    await srv.stop();
    await closed;
    expect(Date.now() - t0).toBeLessThan(1000);
    await srv.stop();
    expect(srv.address()).toBeUndefined();
    await expect(fetch(`${base}/readyz`)).rejects.toThrow();
    const a2 = await srv.start();
    expect((await fetch(`http://127.0.0.1:${a2.port}/readyz`)).status).toBe(200);
  });

  test('a port in use rejects start(); the instance can be started again later', async () => {
    const { srv } = await serve();
    const taken = srv.address()!.port;
    const other = new ObservabilityServer({ host: '127.0.0.1', port: taken, endpoints: ['health'] });
    servers.push(other);
    await expect(other.start()).rejects.toThrow(/EADDRINUSE/);
    expect(other.address()).toBeUndefined();
    await srv.stop();
    await other.start();
    expect(other.address()!.port).toBe(taken);
  });

  test('a malformed request gets 400 and the server keeps serving', async () => {
    const { srv, base } = await serve();
    const sock = net.connect(srv.address()!.port, '127.0.0.1');
    const reply = await new Promise<string>((resolve) => {
      let buf = '';
      sock.on('data', (d: Buffer) => (buf += d.toString()));
      sock.on('close', () => resolve(buf));
      sock.write('NOT HTTP AT ALL\r\n\r\n');
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400/);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
  });
});

// ---------------------------------------------------------------------------------------------

let hasOpenssl = true;
try {
  execFileSync('openssl', ['version'], { stdio: 'ignore' });
} catch {
  hasOpenssl = false;
}

function selfSigned(dir: string, cn: string): { certPath: string; keyPath: string; pem: string } {
  const certPath = join(dir, `${cn}.crt`);
  const keyPath = join(dir, `${cn}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '1',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  return { certPath, keyPath, pem: readFileSync(certPath, 'utf8') };
}

function httpsGet(url: string, ca: string): Promise<{ status: number; body: string; cn: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, agent: false }, (res) => {
      let body = '';
      const cert = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, cn: String(cert.subject.CN) }));
    });
    req.on('error', reject);
  });
}

(hasOpenssl ? describe : describe.skip)('ObservabilityServer over HTTPS (cert/key given)', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ilobs-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('serves HTTPS with the given certificate; reloadTls picks up a rotated one', async () => {
    const one = selfSigned(dir, 'one');
    const tlsPaths = { certPath: join(dir, 'live.crt'), keyPath: join(dir, 'live.key') };
    writeFileSync(tlsPaths.certPath, one.pem);
    writeFileSync(tlsPaths.keyPath, readFileSync(one.keyPath));
    const { srv, base } = await serve({ tls: tlsPaths });
    expect(srv.tls).toBe(true);
    expect(base).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const m = await httpsGet(`${base}/metrics`, one.pem);
    expect(m.status).toBe(200);
    expect(parsesAsPrometheusText(m.body)).toBe(true);
    expect(m.cn).toBe('one');
    expect((await httpsGet(`${base}/readyz`, one.pem)).body).toBe('ok\n');
    // plain HTTP to the TLS port does not get the metrics
    await expect(fetch(`${base.replace('https', 'http')}/metrics`)).rejects.toThrow();

    const two = selfSigned(dir, 'two');
    writeFileSync(tlsPaths.certPath, two.pem);
    writeFileSync(tlsPaths.keyPath, readFileSync(two.keyPath));
    await srv.reloadTls();
    expect((await httpsGet(`${base}/readyz`, two.pem)).cn).toBe('two');
  });

  test('missing key file: start() rejects', async () => {
    const s = new ObservabilityServer({
      host: '127.0.0.1',
      port: 0,
      endpoints: ['health'],
      tls: { certPath: join(dir, 'nope.crt'), keyPath: join(dir, 'nope.key') },
    });
    servers.push(s);
    await expect(s.start()).rejects.toThrow(/ENOENT/);
    expect(
      () =>
        new ObservabilityServer({
          host: '127.0.0.1',
          port: 0,
          endpoints: ['health'],
          tls: { certPath: 'a', keyPath: '' },
        }),
    ).toThrow(/both/);
  });
});
