/**
 * The webhook handler without an API server: AdmissionReview in → response out (a.11 rules and
 * quirks), ConversionReview round trips (a.5), certificate generation, and the HTTPS server.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';

import type { RawObject } from '../../src/config/parse.js';
import { CrdSchemas } from '../../src/config/schema.js';
import { ApiError, type KObject, type KubeClient, type Resource } from '../../src/k8s/client.js';
import {
  CUSTOM_RESOURCE_DEFINITIONS,
  DISABLE_MP_WARNING,
  VALIDATING_WEBHOOK_CONFIGURATIONS,
  ensureWebhookCerts,
  serviceDnsNames,
  WebhookHandler,
  WebhookServer,
  convertBGPPeer,
  generateWebhookCerts,
  goDurationString,
  handleConversionReview,
  metallbWebhookConfiguration,
  type ObjectSource,
  type SourceKind,
} from '../../src/controller/webhook.js';
import { createLogger } from '../../src/util/log.js';

const NS = 'metallb-system';
const schemas = CrdSchemas.load();
const log = createLogger({ level: 'error', write: () => undefined });

const P = {
  pool: '/validate-metallb-io-v1beta1-ipaddresspool',
  l2: '/validate-metallb-io-v1beta1-l2advertisement',
  bgpAd: '/validate-metallb-io-v1beta1-bgpadvertisement',
  community: '/validate-metallb-io-v1beta1-community',
  bfd: '/validate-metallb-io-v1beta1-bfdprofile',
  peer: '/validate-metallb-io-v1beta2-bgppeer',
};

function obj(kind: string, name: string, spec: Record<string, unknown>, ns = NS): RawObject {
  return {
    apiVersion: kind === 'BGPPeer' ? 'metallb.io/v1beta2' : 'metallb.io/v1beta1',
    kind,
    metadata: { name, namespace: ns },
    spec,
  };
}
const pool = (name: string, addresses: string[], ns = NS) => obj('IPAddressPool', name, { addresses }, ns);
const peer = (name: string, spec: Record<string, unknown>) =>
  obj('BGPPeer', name, { myASN: 64500, peerASN: 64501, peerAddress: '192.0.2.1', ...spec });

function source(objs: Partial<Record<SourceKind, RawObject[]>>): ObjectSource {
  return { list: (k) => objs[k] ?? [] };
}

function handler(objs: Partial<Record<SourceKind, RawObject[]>> = {}): WebhookHandler {
  return new WebhookHandler({ namespace: NS, schemas, source: source(objs), log });
}

interface Resp {
  uid: string;
  allowed: boolean;
  status?: { code: number; message: string; reason: string };
  warnings?: string[];
}

let uid = 0;
function review(
  h: WebhookHandler,
  path: string,
  operation: 'CREATE' | 'UPDATE' | 'DELETE',
  o: RawObject,
  old?: RawObject,
): Resp {
  const kind = String(o.kind);
  const version = String(o.apiVersion).split('/')[1];
  const id = `uid-${++uid}`;
  const out = h.admit(path, {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: id,
      kind: { group: 'metallb.io', version, kind },
      resource: { group: 'metallb.io', version, resource: 'x' },
      name: o.metadata?.name,
      namespace: o.metadata?.namespace,
      operation,
      object: operation === 'DELETE' ? null : o,
      oldObject: operation === 'CREATE' ? null : (old ?? o),
    },
  });
  expect(out.apiVersion).toBe('admission.k8s.io/v1');
  expect(out.kind).toBe('AdmissionReview');
  const r = out.response as Resp;
  expect(r.uid).toBe(id);
  return r;
}

describe('validating webhooks (a.11)', () => {
  it('accepts a valid pool and denies an overlapping one with Kind/name: path: reason', () => {
    const h = handler({ IPAddressPool: [pool('pool-a', ['192.0.2.0/24'])] });
    expect(review(h, P.pool, 'CREATE', pool('pool-c', ['198.51.100.0/24']))).toEqual({
      uid: expect.any(String),
      allowed: true,
    });
    const r = review(h, P.pool, 'CREATE', pool('pool-b', ['10.0.0.0/8', '192.0.2.128-192.0.2.130']));
    expect(r.allowed).toBe(false);
    expect(r.status).toMatchObject({ code: 403, reason: 'Forbidden' });
    expect(r.status!.message).toBe(
      'IPAddressPool/pool-b: spec.addresses[1]: 192.0.2.128/31 overlaps 192.0.2.0/24 ("192.0.2.0/24") of IPAddressPool/pool-a\n' +
        'IPAddressPool/pool-b: spec.addresses[1]: 192.0.2.130/32 overlaps 192.0.2.0/24 ("192.0.2.0/24") of IPAddressPool/pool-a',
    );
  });

  it('validates an update with the object substituted (an edit of the same pool does not overlap itself)', () => {
    const a = pool('pool-a', ['192.0.2.0/24']);
    const h = handler({ IPAddressPool: [a] });
    expect(review(h, P.pool, 'UPDATE', pool('pool-a', ['192.0.2.0/25']), a).allowed).toBe(true);
  });

  it('lists every problem, transient ones included, and never a stack trace', () => {
    const h = handler();
    const r = review(
      h,
      P.bgpAd,
      'CREATE',
      obj('BGPAdvertisement', 'ad', {
        communities: ['65536:1', 'large:1:2', 'no-colon-alias'],
        peers: ['x', 'x'],
      }),
    );
    expect(r.allowed).toBe(false);
    const lines = r.status!.message.split('\n');
    expect(lines).toEqual([
      'BGPAdvertisement/ad: spec.peers[1]: duplicate entry "x"',
      expect.stringMatching(/^BGPAdvertisement\/ad: spec\.communities\[0\]: .*65536/),
      'BGPAdvertisement/ad: spec.communities[1]: "large:1:2" is not a known Community alias nor A:B / large:A:B:C',
    ]);
    expect(r.status!.message).not.toMatch(/\n\s+at /);
  });

  it('drops alias items without a colon before validating a BGPAdvertisement', () => {
    const h = handler({ IPAddressPool: [pool('p', ['192.0.2.0/24'])] });
    const r = review(
      h,
      P.bgpAd,
      'CREATE',
      obj('BGPAdvertisement', 'ad', { communities: ['my-alias', '65000:1'] }),
    );
    expect(r.allowed).toBe(true);
  });

  it('checks BGPAdvertisement aggregation against pools and LOCAL_PREF against other ads', () => {
    const pools = [pool('p', ['192.0.2.0/24'])];
    const existing = obj('BGPAdvertisement', 'ad1', { localPref: 100 });
    const h = handler({ IPAddressPool: pools, BGPAdvertisement: [existing] });
    const agg = review(
      h,
      P.bgpAd,
      'CREATE',
      obj('BGPAdvertisement', 'ad2', { aggregationLength: 16, localPref: 100 }),
    );
    expect(agg.status?.message).toBe(
      'BGPAdvertisement/ad2: spec.aggregationLength: 16 is shorter than /24 of "192.0.2.0/24" in IPAddressPool/p',
    );
    const lp = review(h, P.bgpAd, 'CREATE', obj('BGPAdvertisement', 'ad2', { localPref: 200 }));
    expect(lp.status?.message).toMatch(
      /^BGPAdvertisement\/ad2: spec\.localPref: 200 conflicts with localPref 100/,
    );
  });

  it('pool creation is checked against advertisements, pool updates are not ([quirk])', () => {
    const ad = obj('BGPAdvertisement', 'agg', { aggregationLength: 24 });
    const old = pool('p', ['192.0.2.0/24']);
    const h = handler({ IPAddressPool: [old], BGPAdvertisement: [ad] });
    const created = review(h, P.pool, 'CREATE', pool('q', ['10.0.0.0/26']));
    expect(created.allowed).toBe(false);
    expect(created.status?.message).toContain(
      'BGPAdvertisement/agg: spec.aggregationLength: 24 is shorter than /26 of "10.0.0.0/26" in IPAddressPool/q',
    );
    expect(review(h, P.pool, 'UPDATE', pool('p', ['192.0.2.0/26']), old).allowed).toBe(true);
  });

  it('denies creation outside the MetalLB namespace for every kind; updates there pass with a warning', () => {
    const h = handler();
    const cases: Array<[string, RawObject]> = [
      [P.pool, pool('p', ['192.0.2.0/24'], 'default')],
      [P.l2, obj('L2Advertisement', 'l2', {}, 'default')],
      [P.bgpAd, obj('BGPAdvertisement', 'ad', {}, 'default')],
      [P.community, obj('Community', 'c', {}, 'default')],
      [P.bfd, obj('BFDProfile', 'b', {}, 'default')],
      [P.peer, { ...peer('x', {}), metadata: { name: 'x', namespace: 'default' } }],
    ];
    for (const [path, o] of cases) {
      const r = review(h, path, 'CREATE', o);
      expect(r.allowed).toBe(false);
      expect(r.status?.message).toBe(
        `${String(o.kind)}/${o.metadata!.name}: metadata.namespace: must be created in the MetalLB namespace "metallb-system", not "default"`,
      );
    }
    const upd = review(h, P.pool, 'UPDATE', pool('p', ['bogus'], 'default'));
    expect(upd.allowed).toBe(true);
    expect(upd.warnings?.[0]).toMatch(/outside the MetalLB namespace/);
  });

  it('validates BGPPeer timers and cross-peer rules against the peers and nodes', () => {
    const h = handler({
      BGPPeer: [peer('a', { routerID: '10.0.0.1' })],
      Node: [{ metadata: { name: 'n1', labels: { rack: 'r1' } } }],
    });
    const hold = review(
      h,
      P.peer,
      'CREATE',
      peer('b', { peerAddress: '192.0.2.2', routerID: '10.0.0.1', holdTime: '2s' }),
    );
    expect(hold.status?.message).toBe('BGPPeer/b: spec.holdTime: must be 0 or at least 3s');
    const rid = review(h, P.peer, 'CREATE', peer('b', { peerAddress: '192.0.2.2', routerID: '10.0.0.2' }));
    expect(rid.status?.message).toMatch(
      /^BGPPeer\/b: spec\.routerID: "10\.0\.0\.2" differs from "10\.0\.0\.1" of BGPPeer\/a/,
    );
    // A peer selecting no node shares none with a.
    const apart = review(
      h,
      P.peer,
      'CREATE',
      peer('b', { routerID: '10.0.0.2', nodeSelectors: [{ matchLabels: { rack: 'r2' } }] }),
    );
    expect(apart.allowed).toBe(true);
  });

  it('blanks bfdProfile and passwordSecret of BGPPeers (missing references are not checked)', () => {
    const h = handler();
    const r = review(
      h,
      P.peer,
      'CREATE',
      peer('p', { bfdProfile: 'nope', passwordSecret: { name: 'nope' } }),
    );
    expect(r).toEqual({ uid: expect.any(String), allowed: true });
  });

  it('allows disableMP on create with a warning, and still validates ([quirk])', () => {
    const h = handler();
    const ok = review(h, P.peer, 'CREATE', peer('p', { disableMP: true }));
    expect(ok).toEqual({ uid: expect.any(String), allowed: true, warnings: [DISABLE_MP_WARNING] });
    const bad = review(h, P.peer, 'CREATE', peer('p', { disableMP: true, myASN: 0 }));
    expect(bad.allowed).toBe(false);
    expect(bad.warnings).toEqual([DISABLE_MP_WARNING]);
    expect(bad.status?.message).toBe('BGPPeer/p: spec.myASN: must not be 0');
    const upd = review(h, P.peer, 'UPDATE', peer('p', { disableMP: true }));
    expect(upd.warnings).toBeUndefined();
  });

  it('enforces the CEL transition rule on update (enableGracefulRestart immutable)', () => {
    const h = handler();
    const old = peer('p', { enableGracefulRestart: false });
    const r = review(h, P.peer, 'UPDATE', peer('p', { enableGracefulRestart: true }), old);
    expect(r.status?.message).toBe(
      'BGPPeer/p: spec.enableGracefulRestart: enableGracefulRestart cannot be changed after creation',
    );
  });

  it('denies deleting a BFDProfile that a BGPPeer references', () => {
    const bfd = obj('BFDProfile', 'fast', { receiveInterval: 100 });
    const h = handler({
      BGPPeer: [peer('p2', { bfdProfile: 'fast' }), peer('p1', { bfdProfile: 'fast' }), peer('p3', {})],
    });
    const r = review(h, P.bfd, 'DELETE', bfd);
    expect(r.status?.message).toBe(
      'BFDProfile/fast: cannot be deleted: used by BGPPeer/p1\nBFDProfile/fast: cannot be deleted: used by BGPPeer/p2',
    );
    expect(review(h, P.bfd, 'DELETE', obj('BFDProfile', 'slow', {})).allowed).toBe(true);
    expect(review(h, P.bfd, 'CREATE', bfd).allowed).toBe(true);
  });

  it('checks communities and L2 advertisements with the kinds a.11 lists', () => {
    const h = handler({
      Community: [obj('Community', 'c1', { communities: [{ name: 'gold', value: '65000:1' }] })],
    });
    const dup = review(
      h,
      P.community,
      'CREATE',
      obj('Community', 'c2', { communities: [{ name: 'gold', value: '65000:2' }] }),
    );
    expect(dup.status?.message).toBe(
      'Community/c2: spec.communities[0].name: alias "gold" is already defined in Community/c1',
    );
    const l2 = review(h, P.l2, 'CREATE', obj('L2Advertisement', 'l2', { ipAddressPools: ['a', 'a'] }));
    expect(l2.status?.message).toBe('L2Advertisement/l2: spec.ipAddressPools[1]: duplicate entry "a"');
  });

  it('turns an internal failure into a one-line denial', () => {
    const h = new WebhookHandler({
      namespace: NS,
      schemas,
      log,
      source: {
        list: () => {
          throw new Error('cache exploded\n    at somewhere (file.ts:1:1)');
        },
      },
    });
    const r = review(h, P.pool, 'CREATE', pool('p', ['192.0.2.0/24']));
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toBe('internal error validating IPAddressPool: cache exploded');
  });

  it('denies a review whose kind does not match the path, and rejects what is not a review', () => {
    const h = handler();
    expect(review(h, P.l2, 'CREATE', pool('p', ['192.0.2.0/24'])).status?.message).toBe(
      'L2Advertisement/p: kind: this webhook validates L2Advertisement, not IPAddressPool',
    );
    expect(() => h.admit(P.pool, { kind: 'Nope' })).toThrow(/AdmissionReview/);
    expect(() => h.admit('/validate-nothing', {})).toThrow(/no validating webhook/);
  });
});

describe('BGPPeer conversion (a.5)', () => {
  const meta = { name: 'p', namespace: NS, uid: 'u-1', resourceVersion: '7', labels: { a: 'b' } };

  it('formats durations like Go', () => {
    const s = 1_000_000_000n;
    expect(goDurationString(0n)).toBe('0s');
    expect(goDurationString(90n * s)).toBe('1m30s');
    expect(goDurationString(3600n * s)).toBe('1h0m0s');
    expect(goDurationString(1_500_000_000n)).toBe('1.5s');
    expect(goDurationString(2_000_000n)).toBe('2ms');
    expect(goDurationString(1_500n)).toBe('1.5µs');
    expect(goDurationString(5n)).toBe('5ns');
    expect(goDurationString(-3n * s)).toBe('-3s');
  });

  it('v1beta1 → v1beta2 makes the timers explicit (0s when absent) and maps node selectors', () => {
    const v1 = {
      apiVersion: 'metallb.io/v1beta1',
      kind: 'BGPPeer',
      metadata: meta,
      spec: {
        myASN: 64500,
        peerASN: 64501,
        peerAddress: '192.0.2.1',
        peerPort: 0,
        nodeSelectors: [{}, { matchExpressions: [{ key: 'k', operator: 'In', values: ['v'] }] }],
      },
    };
    const v2 = convertBGPPeer(v1, 'metallb.io/v1beta2');
    expect(v2).toEqual({
      apiVersion: 'metallb.io/v1beta2',
      kind: 'BGPPeer',
      metadata: meta,
      spec: {
        myASN: 64500,
        peerASN: 64501,
        peerAddress: '192.0.2.1',
        holdTime: '0s',
        keepaliveTime: '0s',
        nodeSelectors: [{}, { matchExpressions: [{ key: 'k', operator: 'In', values: ['v'] }] }],
      },
    });
    const timed = convertBGPPeer(
      { ...v1, spec: { ...v1.spec, holdTime: '90s', keepaliveTime: '30s' } },
      'metallb.io/v1beta2',
    );
    expect(timed.spec).toMatchObject({ holdTime: '1m30s', keepaliveTime: '30s' });
  });

  it('v1beta2 → v1beta1 drops the v1beta2-only fields and round-trips the common ones', () => {
    const v2 = {
      apiVersion: 'metallb.io/v1beta2',
      kind: 'BGPPeer',
      metadata: meta,
      spec: {
        myASN: 64500,
        peerASN: 64501,
        peerAddress: '192.0.2.1',
        peerPort: 1179,
        holdTime: '9s',
        keepaliveTime: '3s',
        routerID: '10.0.0.1',
        sourceAddress: '192.0.2.100',
        password: 'pw',
        bfdProfile: 'fast',
        ebgpMultiHop: true,
        vrf: 'red',
        connectTime: '5s',
        disableMP: false,
        dualStackAddressFamily: true,
        enableGracefulRestart: true,
        nodeSelectors: [{ matchLabels: { rack: 'r1' } }],
      },
      status: {},
    };
    const v1 = convertBGPPeer(v2, 'metallb.io/v1beta1');
    expect(v1).toEqual({
      apiVersion: 'metallb.io/v1beta1',
      kind: 'BGPPeer',
      metadata: meta,
      spec: {
        myASN: 64500,
        peerASN: 64501,
        peerAddress: '192.0.2.1',
        sourceAddress: '192.0.2.100',
        routerID: '10.0.0.1',
        password: 'pw',
        bfdProfile: 'fast',
        peerPort: 1179,
        holdTime: '9s',
        keepaliveTime: '3s',
        ebgpMultiHop: true,
        nodeSelectors: [{ matchLabels: { rack: 'r1' } }],
      },
      status: {},
    });
    const back = convertBGPPeer(v1, 'metallb.io/v1beta2');
    const { vrf, connectTime, disableMP, dualStackAddressFamily, enableGracefulRestart, ...common } = v2.spec;
    void [vrf, connectTime, disableMP, dualStackAddressFamily, enableGracefulRestart];
    expect(back.spec).toEqual(common);
    // A v1beta2 peer without timers reads as 0s through v1beta1 (Go's non-pointer Duration).
    const bare = convertBGPPeer(
      { ...v2, spec: { myASN: 1, dynamicASN: 'external', interface: 'eth0' } },
      'metallb.io/v1beta1',
    );
    expect(bare.spec).toEqual({ myASN: 1, peerASN: 0, peerAddress: '', holdTime: '0s', keepaliveTime: '0s' });
  });

  it('answers a ConversionReview, and reports a failure instead of throwing', () => {
    const ok = handleConversionReview({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'ConversionReview',
      request: {
        uid: 'c1',
        desiredAPIVersion: 'metallb.io/v1beta2',
        objects: [
          {
            apiVersion: 'metallb.io/v1beta1',
            kind: 'BGPPeer',
            metadata: meta,
            spec: { myASN: 1, peerASN: 2, peerAddress: '192.0.2.1' },
          },
          { apiVersion: 'metallb.io/v1beta2', kind: 'BGPPeer', metadata: meta, spec: { myASN: 1 } },
        ],
      },
    });
    expect(ok).toMatchObject({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'ConversionReview',
      response: {
        uid: 'c1',
        result: { status: 'Success' },
        convertedObjects: [
          { apiVersion: 'metallb.io/v1beta2', spec: { holdTime: '0s', keepaliveTime: '0s' } },
          { apiVersion: 'metallb.io/v1beta2', spec: { myASN: 1 } },
        ],
      },
    });
    const bad = handleConversionReview({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'ConversionReview',
      request: {
        uid: 'c2',
        desiredAPIVersion: 'metallb.io/v9',
        objects: [{ apiVersion: 'metallb.io/v1beta1', kind: 'BGPPeer' }],
      },
    });
    expect(bad).toMatchObject({
      response: {
        uid: 'c2',
        convertedObjects: [],
        result: { status: 'Failure', message: expect.stringMatching(/v9/) },
      },
    });
  });
});

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

describe('certificates', () => {
  it('generates a CA and a serving certificate for names and IPs', () => {
    const g = generateWebhookCerts({ dnsNames: ['svc.ns.svc', 'svc'], ipAddresses: ['127.0.0.1', '::1'] });
    const ca = new X509Certificate(g.caPem);
    const leaf = new X509Certificate(g.certPem);
    expect(ca.ca).toBe(true);
    expect(ca.verify(ca.publicKey)).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(leaf.checkHost('svc.ns.svc')).toBe('svc.ns.svc');
    expect(leaf.checkHost('other.ns.svc')).toBeUndefined();
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(leaf.checkIP('::1')).toBe('::1');
    expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    if (hasOpenssl) {
      const dir = mkdtempSync(join(tmpdir(), 'ironlb-webhook-'));
      writeFileSync(join(dir, 'ca.crt'), g.caPem);
      writeFileSync(join(dir, 'leaf.crt'), g.certPem);
      const v = spawnSync(
        'openssl',
        [
          'verify',
          '-x509_strict',
          '-purpose',
          'sslserver',
          '-CAfile',
          join(dir, 'ca.crt'),
          join(dir, 'leaf.crt'),
        ],
        { encoding: 'utf8' },
      );
      rmSync(dir, { recursive: true, force: true });
      expect(v.stdout.trim()).toMatch(/leaf\.crt: OK$/);
    }
    // A second serving certificate from the same CA.
    const again = generateWebhookCerts({ dnsNames: ['x'], ca: { certPem: g.caPem, keyPem: g.caKeyPem } });
    expect(again.caPem).toBe(g.caPem);
    expect(new X509Certificate(again.certPem).verify(ca.publicKey)).toBe(true);
  });

  (hasOpenssl ? it : it.skip)(
    'signs with a CA it did not make (RSA, foreign subject), e.g. one left by MetalLB',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'ironlb-webhook-'));
      try {
        const r = spawnSync('openssl', [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-days',
          '3650',
          '-subj',
          '/O=metallb/OU=test/CN=cert',
          '-addext',
          'basicConstraints=critical,CA:TRUE',
          '-addext',
          'keyUsage=critical,keyCertSign,digitalSignature',
          '-keyout',
          join(dir, 'ca.key'),
          '-out',
          join(dir, 'ca.crt'),
        ]);
        expect(r.status).toBe(0);
        const caPem = readFileSync(join(dir, 'ca.crt'), 'utf8');
        const g = generateWebhookCerts({
          dnsNames: ['svc.ns.svc'],
          ca: { certPem: caPem, keyPem: readFileSync(join(dir, 'ca.key'), 'utf8') },
        });
        writeFileSync(join(dir, 'leaf.crt'), g.certPem);
        const ca = new X509Certificate(caPem);
        const leaf = new X509Certificate(g.certPem);
        expect(leaf.issuer).toBe(ca.subject);
        expect(leaf.checkIssued(ca)).toBe(true);
        expect(leaf.verify(ca.publicKey)).toBe(true);
        const v = spawnSync(
          'openssl',
          [
            'verify',
            '-x509_strict',
            '-purpose',
            'sslserver',
            '-CAfile',
            join(dir, 'ca.crt'),
            join(dir, 'leaf.crt'),
          ],
          { encoding: 'utf8' },
        );
        expect(v.stdout.trim()).toBe(`${join(dir, 'leaf.crt')}: OK`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('uses GeneralizedTime after 2049', () => {
    const g = generateWebhookCerts({
      dnsNames: ['x'],
      now: new Date('2049-06-01T00:00:00Z'),
      certValidityDays: 400,
    });
    expect(new Date(new X509Certificate(g.certPem).validTo).getUTCFullYear()).toBe(2050);
  });

  it('builds the ValidatingWebhookConfiguration with MetalLB paths', () => {
    const vwc = metallbWebhookConfiguration({ url: 'https://127.0.0.1:1234', caBundle: 'PEM' }) as {
      webhooks: Array<{ clientConfig: { url: string; caBundle: string }; failurePolicy: string }>;
    };
    expect(vwc.webhooks.map((w) => w.clientConfig.url).sort()).toEqual(
      Object.values(P)
        .map((p) => `https://127.0.0.1:1234${p}`)
        .sort(),
    );
    expect(vwc.webhooks.every((w) => w.failurePolicy === 'Fail' && w.clientConfig.caBundle === 'UEVN')).toBe(
      true,
    );
  });
});

describe('ensureWebhookCerts (cert rotation, f.1)', () => {
  /** Just enough of KubeClient: one Secret, one webhook configuration, the bgppeers CRD. */
  function fakeClient(opts: { raceOnCreate?: Record<string, string> } = {}) {
    const store = new Map<string, KObject & Record<string, unknown>>();
    let rv = 1;
    const key = (r: Resource, name: string) => `${r.plural}/${name}`;
    const writes: string[] = [];
    store.set(key(VALIDATING_WEBHOOK_CONFIGURATIONS, 'metallb-webhook-configuration'), {
      ...(metallbWebhookConfiguration() as KObject),
      metadata: { name: 'metallb-webhook-configuration', resourceVersion: '1' },
    });
    store.set(key(CUSTOM_RESOURCE_DEFINITIONS, 'bgppeers.metallb.io'), {
      metadata: { name: 'bgppeers.metallb.io', resourceVersion: '1' },
      spec: { conversion: { strategy: 'Webhook', webhook: { clientConfig: { service: { name: 's' } } } } },
    });
    const client = {
      request: (
        method: string,
        path: string,
        body: { webhooks: Array<{ name: string; clientConfig: { caBundle: string } }> },
        o: { contentType?: string },
      ) => {
        writes.push(`${method} ${path} ${o.contentType}`);
        const cur = store.get(
          'validatingwebhookconfigurations/metallb-webhook-configuration',
        ) as unknown as typeof body;
        for (const w of body.webhooks)
          cur.webhooks.find((x) => x.name === w.name)!.clientConfig.caBundle = w.clientConfig.caBundle;
        return Promise.resolve(cur);
      },
      get: (r: Resource, _ns: string | undefined, name: string) => {
        const o = store.get(key(r, name));
        return o
          ? Promise.resolve(structuredClone(o))
          : Promise.reject(new ApiError(404, 'NotFound', 'not found'));
      },
      create: (r: Resource, _ns: string | undefined, o: KObject) => {
        writes.push(`create ${r.plural}`);
        if (opts.raceOnCreate) {
          // Another replica created the Secret just before us.
          store.set(key(r, o.metadata.name), {
            ...o,
            data: opts.raceOnCreate,
            metadata: { ...o.metadata, resourceVersion: String(++rv) },
          });
          delete opts.raceOnCreate;
          return Promise.reject(new ApiError(409, 'AlreadyExists', 'exists'));
        }
        store.set(key(r, o.metadata.name), {
          ...o,
          metadata: { ...o.metadata, resourceVersion: String(++rv) },
        });
        return Promise.resolve(o);
      },
      update: (r: Resource, o: KObject) => {
        writes.push(`update ${r.plural}`);
        const cur = store.get(key(r, o.metadata.name));
        if (cur?.metadata.resourceVersion !== o.metadata.resourceVersion)
          return Promise.reject(new ApiError(409, 'Conflict', 'conflict'));
        store.set(key(r, o.metadata.name), {
          ...o,
          metadata: { ...o.metadata, resourceVersion: String(++rv) },
        });
        return Promise.resolve(o);
      },
      patch: (
        r: Resource,
        _ns: string | undefined,
        name: string,
        body: { spec: { conversion: { webhook: { clientConfig: { caBundle: string } } } } },
      ) => {
        writes.push(`patch ${r.plural}`);
        const cur = store.get(key(r, name))! as unknown as typeof body;
        cur.spec.conversion.webhook.clientConfig.caBundle =
          body.spec.conversion.webhook.clientConfig.caBundle;
        return Promise.resolve(cur);
      },
    };
    return {
      client: client as unknown as KubeClient,
      store,
      writes,
      secret: () => store.get('secrets/metallb-webhook-cert') as KObject & { data: Record<string, string> },
    };
  }
  const unb64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');

  it('creates the Secret, injects the bundle, then reuses it without writing', async () => {
    const f = fakeClient();
    const one = await ensureWebhookCerts(f.client, { namespace: NS });
    expect(one).toMatchObject({ rotated: true, webhookConfiguration: 'patched', crd: 'patched' });
    expect(f.writes).toEqual([
      'create secrets',
      'PATCH /apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/metallb-webhook-configuration application/strategic-merge-patch+json',
      'patch customresourcedefinitions',
    ]);
    const leaf = new X509Certificate(one.cert);
    expect(leaf.checkHost('metallb-webhook-service.metallb-system.svc')).toBe(
      'metallb-webhook-service.metallb-system.svc',
    );
    expect(unb64(f.secret().data['tls.crt'])).toBe(one.cert);
    const vwc = f.store.get('validatingwebhookconfigurations/metallb-webhook-configuration') as unknown as {
      webhooks: Array<{ clientConfig: { caBundle: string } }>;
    };
    expect(new Set(vwc.webhooks.map((w) => unb64(w.clientConfig.caBundle)))).toEqual(new Set([one.caBundle]));
    f.writes.length = 0;
    const two = await ensureWebhookCerts(f.client, { namespace: NS });
    expect(two).toMatchObject({
      rotated: false,
      webhookConfiguration: 'unchanged',
      crd: 'unchanged',
      cert: one.cert,
    });
    expect(f.writes).toEqual([]);
  });

  it('uses the certificate of a replica that created the Secret first', async () => {
    const theirs = generateWebhookCerts({ dnsNames: serviceDnsNames('metallb-webhook-service', NS) });
    const data = {
      'ca.crt': Buffer.from(theirs.caPem).toString('base64'),
      'ca.key': Buffer.from(theirs.caKeyPem).toString('base64'),
      'tls.crt': Buffer.from(theirs.certPem).toString('base64'),
      'tls.key': Buffer.from(theirs.keyPem).toString('base64'),
    };
    const f = fakeClient({ raceOnCreate: data });
    const c = await ensureWebhookCerts(f.client, { namespace: NS });
    expect(c).toMatchObject({ rotated: false, cert: theirs.certPem, caBundle: theirs.caPem });
  });

  it('renews the serving certificate with the same CA, and changes CA keeping the old one in the bundle', async () => {
    const f = fakeClient();
    const now = new Date('2030-01-01T00:00:00Z');
    const one = await ensureWebhookCerts(f.client, {
      namespace: NS,
      now,
      caValidityDays: 500,
      certValidityDays: 100,
    });
    // 80 days later: less than 30 days left on the serving certificate, the CA can still sign.
    const later = new Date(now.getTime() + 80 * 86_400_000);
    const two = await ensureWebhookCerts(f.client, {
      namespace: NS,
      now: later,
      caValidityDays: 500,
      certValidityDays: 100,
    });
    expect(two.rotated).toBe(true);
    expect(two.cert).not.toBe(one.cert);
    expect(two.caBundle).toBe(one.caBundle);
    expect(two.webhookConfiguration).toBe('unchanged');
    // 420 days in, the CA has less left than a serving certificate lasts: new CA, old still trusted.
    const late = new Date(now.getTime() + 420 * 86_400_000);
    const three = await ensureWebhookCerts(f.client, {
      namespace: NS,
      now: late,
      caValidityDays: 500,
      certValidityDays: 100,
    });
    const bundle = three.caBundle.match(/-----BEGIN CERTIFICATE-----/g) ?? [];
    expect(bundle).toHaveLength(2);
    expect(three.caBundle.endsWith(one.caBundle)).toBe(true);
    const leaf = new X509Certificate(three.cert);
    expect(leaf.verify(new X509Certificate(one.caBundle).publicKey)).toBe(false);
    expect(
      leaf.verify(
        new X509Certificate(
          three.caBundle.slice(0, three.caBundle.indexOf('-----END')) + '-----END CERTIFICATE-----\n',
        ).publicKey,
      ),
    ).toBe(true);
    expect(three.webhookConfiguration).toBe('patched');
  });

  it('replaces a certificate that does not cover the Service names', async () => {
    const f = fakeClient();
    const one = await ensureWebhookCerts(f.client, { namespace: NS });
    const two = await ensureWebhookCerts(f.client, { namespace: NS, serviceName: 'other-service' });
    expect(two.rotated).toBe(true);
    expect(two.caBundle).toBe(one.caBundle);
    expect(new X509Certificate(two.cert).checkHost('other-service.metallb-system.svc')).toBeDefined();
  });
});

describe('WebhookServer', () => {
  function post(
    port: number,
    ca: string,
    path: string,
    body: unknown,
  ): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const payload = typeof body === 'string' ? body : JSON.stringify(body);
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path,
          method: 'POST',
          ca,
          headers: { 'content-type': 'application/json' },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }
  function peerCertFingerprint(port: number, ca: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
        const fp = s.getPeerCertificate().fingerprint256;
        s.end();
        resolve(fp);
      });
      s.on('error', reject);
    });
  }
  const admission = (obj: RawObject) => ({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: 'u', kind: { kind: obj.kind }, namespace: NS, operation: 'CREATE', object: obj },
  });

  it('serves admission and conversion over TLS with a generated certificate', async () => {
    const h = handler({ IPAddressPool: [pool('a', ['192.0.2.0/24'])] });
    const srv = new WebhookServer({
      host: '127.0.0.1',
      port: 0,
      tls: { generate: { ipAddresses: ['127.0.0.1'] } },
      handler: h,
      log,
    });
    await srv.start();
    try {
      const ca = srv.caBundle!;
      const denied = await post(srv.port, ca, P.pool, admission(pool('b', ['192.0.2.0/25'])));
      expect(denied.status).toBe(200);
      expect(JSON.parse(denied.text)).toMatchObject({ response: { uid: 'u', allowed: false } });
      const conv = await post(srv.port, ca, '/convert', {
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'ConversionReview',
        request: { uid: 'c', desiredAPIVersion: 'metallb.io/v1beta1', objects: [peer('p', {})] },
      });
      expect(JSON.parse(conv.text)).toMatchObject({ response: { result: { status: 'Success' } } });
      expect((await post(srv.port, ca, '/nowhere', {})).status).toBe(404);
      expect((await post(srv.port, ca, P.pool, '{not json')).status).toBe(400);
      expect((await post(srv.port, ca, P.pool, { kind: 'AdmissionReview' })).status).toBe(400);
    } finally {
      await srv.stop();
    }
  });

  it('denies with 503 while the object source is not ready', async () => {
    const srv = new WebhookServer({
      host: '127.0.0.1',
      port: 0,
      tls: { generate: { ipAddresses: ['127.0.0.1'] } },
      handler: handler(),
      source: { waitReady: () => new Promise<void>(() => undefined) },
      readyTimeoutMs: 50,
      log,
    });
    await srv.start();
    try {
      const r = await post(srv.port, srv.caBundle!, P.pool, admission(pool('b', ['192.0.2.0/25'])));
      expect(JSON.parse(r.text)).toMatchObject({
        response: { allowed: false, status: { code: 503, message: expect.stringMatching(/not ready/) } },
      });
    } finally {
      await srv.stop();
    }
  });

  it('reloads tls.crt/tls.key from the cert dir when they change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ironlb-webhook-'));
    const one = generateWebhookCerts({ dnsNames: ['localhost'] });
    const two = generateWebhookCerts({
      dnsNames: ['localhost'],
      ca: { certPem: one.caPem, keyPem: one.caKeyPem },
    });
    writeFileSync(join(dir, 'tls.crt'), one.certPem);
    writeFileSync(join(dir, 'tls.key'), one.keyPem);
    writeFileSync(join(dir, 'ca.crt'), one.caPem);
    const srv = new WebhookServer({
      host: '127.0.0.1',
      port: 0,
      tls: { certDir: dir, reloadIntervalMs: 0 },
      handler: handler(),
      log,
    });
    await srv.start();
    try {
      expect(srv.caBundle).toBe(one.caPem);
      const fp1 = await peerCertFingerprint(srv.port, one.caPem);
      expect(fp1).toBe(new X509Certificate(one.certPem).fingerprint256);
      // Half-written update (new cert, old key): the old pair stays in use.
      writeFileSync(join(dir, 'tls.crt'), two.certPem);
      expect(await srv.reloadCertDir()).toBe(false);
      expect(await peerCertFingerprint(srv.port, one.caPem)).toBe(fp1);
      writeFileSync(join(dir, 'tls.key'), two.keyPem);
      expect(await srv.reloadCertDir()).toBe(true);
      expect(await peerCertFingerprint(srv.port, one.caPem)).toBe(
        new X509Certificate(two.certPem).fingerprint256,
      );
    } finally {
      await srv.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('moves kept-alive connections, idle or busy, to a replaced certificate', async () => {
    const one = generateWebhookCerts({ ipAddresses: ['127.0.0.1'] });
    const two = generateWebhookCerts({
      ipAddresses: ['127.0.0.1'],
      ca: { certPem: one.caPem, keyPem: one.caKeyPem },
    });
    let release: () => void = () => undefined;
    let gate: Promise<void> = Promise.resolve();
    const srv = new WebhookServer({
      host: '127.0.0.1',
      port: 0,
      tls: { cert: one.certPem, key: one.keyPem, ca: one.caPem },
      handler: handler(),
      source: { waitReady: () => gate },
      log,
    });
    await srv.start();
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: one.caPem });
    const call = () =>
      new Promise<{ fp: string; connection: string | undefined }>((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port: srv.port, path: P.pool, method: 'POST', agent },
          (res) => {
            const fp = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
            res.resume();
            res.on('end', () => resolve({ fp, connection: res.headers.connection }));
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify(admission(pool('p', ['192.0.2.0/24']))));
      });
    const fp = (pem: string) => new X509Certificate(pem).fingerprint256;
    try {
      expect((await call()).fp).toBe(fp(one.certPem));
      // Idle connection: closed at the swap (Go's client retries a request on a connection the server
      // closed while idle; Node's agent needs to see the FIN first).
      srv.setCertificate(two.certPem, two.keyPem);
      await new Promise((r) => setTimeout(r, 50));
      expect((await call()).fp).toBe(fp(two.certPem));
      // Busy connection: answered, then closed.
      gate = new Promise<void>((r) => (release = r));
      const busy = call();
      await new Promise((r) => setTimeout(r, 50));
      srv.setCertificate(one.certPem, one.keyPem);
      release();
      expect(await busy).toEqual({ fp: fp(two.certPem), connection: 'close' });
      expect((await call()).fp).toBe(fp(one.certPem));
    } finally {
      agent.destroy();
      await srv.stop();
    }
  });

  it('refuses to start without a certificate in the cert dir', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ironlb-webhook-'));
    const srv = new WebhookServer({ port: 0, tls: { certDir: dir }, handler: handler(), log });
    await expect(srv.start()).rejects.toThrow(/no usable tls\.crt\/tls\.key/);
    rmSync(dir, { recursive: true, force: true });
  });
});
