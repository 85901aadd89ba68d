/**
 * The webhooks on a real kube-apiserver: cert rotation writes the Secret and injects the CA bundle
 * into a ValidatingWebhookConfiguration (clientConfig.url → 127.0.0.1) and the bgppeers CRD
 * conversion config; the API server then calls our validating webhooks on every metallb.io write
 * and our /convert for BGPPeer v1beta1.
 */
import { request as httpsRequest } from 'node:https';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { ControlPlane, k8sUnavailableReason } from '../k8s/controlplane.js';
import { runController } from '../../src/cli/controller.js';
import { ApiError, KubeClient, RESOURCES, type KObject } from '../../src/k8s/client.js';
import { CrdSchemas } from '../../src/config/schema.js';
import {
  CUSTOM_RESOURCE_DEFINITIONS,
  DISABLE_MP_WARNING,
  VALIDATING_WEBHOOK_CONFIGURATIONS,
  ensureWebhookCerts,
  metallbWebhookConfiguration,
  startWebhook,
  type RunningWebhook,
  type WebhookCerts,
} from '../../src/controller/webhook.js';
import { createLogger } from '../../src/util/log.js';
import { waitFor } from '../lab/wait.js';

const NS = 'metallb-system';
const OTHER = 'team-a';
const unavailable = k8sUnavailableReason();
if (unavailable && process.env.CI === 'true')
  throw new Error(`control plane unavailable under CI=true: ${unavailable}`);
const d = unavailable ? describe.skip : describe;

type Peer = KObject & { spec: Record<string, unknown> };

const logs: string[] = [];
const log = createLogger({
  level: process.env.DEBUG_WEBHOOK ? 'debug' : 'info',
  write: (l) => void logs.push(l),
});

const v1 = (kind: string, name: string, spec: Record<string, unknown>, ns = NS) => ({
  apiVersion: 'metallb.io/v1beta1',
  kind,
  metadata: { name, namespace: ns },
  spec,
});
const peerV2 = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'metallb.io/v1beta2',
  kind: 'BGPPeer',
  metadata: { name, namespace: NS },
  spec: { myASN: 64500, peerASN: 64501, ...spec },
});
const bgppeersV1beta1 = `/apis/metallb.io/v1beta1/namespaces/${NS}/bgppeers`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** POSTs JSON over TLS, verifying the server against `ca` (the certificate has IP 127.0.0.1). */
function postJson(port: number, ca: string, path: string, body: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path, method: 'POST', ca, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          try {
            resolve(JSON.parse(text));
          } catch (e) {
            reject(e instanceof Error ? e : new Error(String(e)));
          }
        });
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** The denial text of a rejected write, or a failure when the write went through. */
async function denial(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ApiError) return `${e.status} ${e.message}`;
    throw e;
  }
  throw new Error('the write was accepted');
}

d('webhooks on a real apiserver', () => {
  let cp: ControlPlane;
  let client: KubeClient;
  let wh: RunningWebhook;
  let first: WebhookCerts;

  const cached = (kind: 'IPAddressPool' | 'BGPPeer', name: string) =>
    waitFor(() => wh.source.list(kind).some((o) => o.metadata?.name === name), {
      timeoutMs: 10_000,
      what: `${kind}/${name} in the webhook cache`,
    });
  const gone = (kind: 'BGPPeer', name: string) =>
    waitFor(() => !wh.source.list(kind).some((o) => o.metadata?.name === name), {
      timeoutMs: 10_000,
      what: `${kind}/${name} gone from the webhook cache`,
    });

  beforeAll(async () => {
    cp = await ControlPlane.start();
    client = await KubeClient.fromKubeConfig(cp.kubeconfigPath);
    for (const ns of [NS, OTHER])
      await client.create(RESOURCES.namespaces, undefined, {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ns },
      });

    // Cert rotation first (the Secret does not exist yet; the webhook configuration neither).
    first = await ensureWebhookCerts(client, { namespace: NS, ipAddresses: ['127.0.0.1'], log });
    expect(first).toMatchObject({ rotated: true, webhookConfiguration: 'missing', crd: 'patched' });

    // What `ironlb controller` starts on every replica; it reuses the Secret's certificate.
    wh = await startWebhook({
      client,
      namespace: NS,
      schemas: CrdSchemas.load(),
      log,
      host: '127.0.0.1',
      port: 0,
      certRotation: true,
      rotationIntervalMs: 500,
    });
    expect(wh.server.certificate).toBe(first.cert);
    const base = `https://127.0.0.1:${wh.server.port}`;

    await client.create(
      VALIDATING_WEBHOOK_CONFIGURATIONS,
      undefined,
      metallbWebhookConfiguration({ url: base }),
    );
    await client.patch(CUSTOM_RESOURCE_DEFINITIONS, undefined, 'bgppeers.metallb.io', {
      spec: { conversion: { webhook: { clientConfig: { url: `${base}/convert`, service: null } } } },
    });
    // The rotation loop (or this call) injects the bundle into the new configuration.
    const again = await ensureWebhookCerts(client, { namespace: NS, ipAddresses: ['127.0.0.1'], log });
    expect(again.rotated).toBe(false);
    expect(again.cert).toBe(first.cert);
    const vwc = await client.get<KObject & { webhooks: Array<{ clientConfig: { caBundle?: string } }> }>(
      VALIDATING_WEBHOOK_CONFIGURATIONS,
      undefined,
      'metallb-webhook-configuration',
    );
    const bundle = Buffer.from(first.caBundle).toString('base64');
    expect(vwc.webhooks.map((w) => w.clientConfig.caBundle)).toEqual(Array(6).fill(bundle));
    const crd = await client.get<
      KObject & { spec: { conversion: { webhook: { clientConfig: Record<string, unknown> } } } }
    >(CUSTOM_RESOURCE_DEFINITIONS, undefined, 'bgppeers.metallb.io');
    expect(crd.spec.conversion.webhook.clientConfig).toEqual({ url: `${base}/convert`, caBundle: bundle });

    // The API server picks both up asynchronously: probe with dry-run writes.
    await waitFor(
      async () =>
        (
          await denial(
            client.request(
              'POST',
              `/apis/metallb.io/v1beta1/namespaces/${OTHER}/ipaddresspools`,
              v1('IPAddressPool', 'probe', { addresses: ['10.0.0.0/8'] }, OTHER),
              {
                query: { dryRun: 'All' },
              },
            ),
          ).catch((e: Error) => e.message)
        ).includes('metadata.namespace'),
      { timeoutMs: 30_000, what: 'the validating webhooks in effect' },
    );
    await waitFor(
      () =>
        client
          .request(
            'POST',
            bgppeersV1beta1,
            { ...v1('BGPPeer', 'probe', { myASN: 64500, peerASN: 64501, peerAddress: '192.0.2.250' }) },
            {
              query: { dryRun: 'All' },
              retries: 0,
            },
          )
          .then(() => true),
      { timeoutMs: 30_000, what: 'the conversion webhook in effect' },
    );
  }, 180_000);

  afterAll(async () => {
    await wh?.stop();
    client?.close();
    await cp?.stop();
    if (process.env.DEBUG_WEBHOOK) process.stderr.write(logs.join(''));
  }, 60_000);

  it('wrote the webhook cert Secret with the CA and the serving pair', async () => {
    const s = await client.get<KObject & { data: Record<string, string> }>(
      RESOURCES.secrets,
      NS,
      'metallb-webhook-cert',
    );
    expect(Object.keys(s.data).sort()).toEqual(['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
    expect(Buffer.from(s.data['tls.crt']!, 'base64').toString()).toBe(first.cert);
  });

  it('accepts a valid pool and rejects an overlapping one, naming object, field and reason', async () => {
    await client.create(
      RESOURCES.ipAddressPools,
      NS,
      v1('IPAddressPool', 'pool-a', { addresses: ['192.0.2.0/24'] }),
    );
    await cached('IPAddressPool', 'pool-a');
    const msg = await denial(
      client.create(
        RESOURCES.ipAddressPools,
        NS,
        v1('IPAddressPool', 'pool-b', { addresses: ['192.0.2.128/25'] }),
      ),
    );
    expect(msg).toContain(
      'admission webhook "ipaddresspoolvalidationwebhook.metallb.io" denied the request: ' +
        'IPAddressPool/pool-b: spec.addresses[0]: 192.0.2.128/25 overlaps 192.0.2.0/24 ("192.0.2.0/24") of IPAddressPool/pool-a',
    );
    expect(msg).toMatch(/^403 /);
  });

  it('rejects creation outside the MetalLB namespace', async () => {
    const msg = await denial(
      client.create(
        RESOURCES.ipAddressPools,
        OTHER,
        v1('IPAddressPool', 'outside', { addresses: ['198.51.100.0/24'] }, OTHER),
      ),
    );
    expect(msg).toContain(
      'IPAddressPool/outside: metadata.namespace: must be created in the MetalLB namespace "metallb-system", not "team-a"',
    );
  });

  it('rejects a BGPAdvertisement with a bad community; alias items without a colon pass', async () => {
    const msg = await denial(
      client.create(
        RESOURCES.bgpAdvertisements,
        NS,
        v1('BGPAdvertisement', 'bad-community', { communities: ['65536:1'] }),
      ),
    );
    expect(msg).toContain('bgpadvertisementvalidationwebhook.metallb.io');
    expect(msg).toMatch(/BGPAdvertisement\/bad-community: spec\.communities\[0\]: .*65536/);
    await client.create(
      RESOURCES.bgpAdvertisements,
      NS,
      v1('BGPAdvertisement', 'aliased', { communities: ['not-yet-defined'] }),
    );
  });

  it('rejects a BGPPeer with a 2s hold time', async () => {
    const msg = await denial(
      client.create(RESOURCES.bgpPeers, NS, peerV2('hold2', { peerAddress: '192.0.2.11', holdTime: '2s' })),
    );
    expect(msg).toContain('BGPPeer/hold2: spec.holdTime: must be 0 or at least 3s');
  });

  it('stores a v1beta1 BGPPeer without timers as v1beta2 with 0s/0s and reads it back in both versions', async () => {
    const r = await cp.request(
      'POST',
      bgppeersV1beta1,
      v1('BGPPeer', 'legacy', { myASN: 64500, peerASN: 64501, peerAddress: '192.0.2.10' }),
    );
    expect(r.status).toBe(201);
    expect(String(r.headers.warning)).toContain('metallb.io/v1beta1 BGPPeer is deprecated');
    const stored = await client.get<Peer>(RESOURCES.bgpPeers, NS, 'legacy');
    expect(stored.apiVersion).toBe('metallb.io/v1beta2');
    expect(stored.spec).toEqual({
      myASN: 64500,
      peerASN: 64501,
      peerAddress: '192.0.2.10',
      holdTime: '0s',
      keepaliveTime: '0s',
      peerPort: 179,
      disableMP: false,
      dualStackAddressFamily: false,
    });
    const old = (await cp.request('GET', `${bgppeersV1beta1}/legacy`)).json<Peer>();
    expect(old.apiVersion).toBe('metallb.io/v1beta1');
    expect(old.spec).toEqual({
      myASN: 64500,
      peerASN: 64501,
      peerAddress: '192.0.2.10',
      peerPort: 179,
      holdTime: '0s',
      keepaliveTime: '0s',
    });
    // A list through v1beta1 converts every stored object.
    const list = (await cp.request('GET', bgppeersV1beta1)).json<{ items: Peer[] }>();
    expect(list.items.map((p) => p.apiVersion)).toEqual(['metallb.io/v1beta1']);
  });

  it('returns the disableMP warning on create and still stores the peer', async () => {
    const r = await cp.request(
      'POST',
      `/apis/metallb.io/v1beta2/namespaces/${NS}/bgppeers`,
      peerV2('mp', { peerAddress: '192.0.2.13', disableMP: true }),
    );
    expect(r.status).toBe(201);
    expect(String(r.headers.warning)).toContain(DISABLE_MP_WARNING);
  });

  it('denies deleting a BFDProfile while a BGPPeer references it', async () => {
    await client.create(RESOURCES.bfdProfiles, NS, v1('BFDProfile', 'fast', { receiveInterval: 100 }));
    await client.create(
      RESOURCES.bgpPeers,
      NS,
      peerV2('with-bfd', { peerAddress: '192.0.2.12', bfdProfile: 'fast' }),
    );
    await cached('BGPPeer', 'with-bfd');
    const msg = await denial(client.delete(RESOURCES.bfdProfiles, NS, 'fast'));
    expect(msg).toContain(
      'admission webhook "bfdprofilevalidationwebhook.metallb.io" denied the request: BFDProfile/fast: cannot be deleted: used by BGPPeer/with-bfd',
    );
    await client.delete(RESOURCES.bgpPeers, NS, 'with-bfd');
    await gone('BGPPeer', 'with-bfd');
    await client.delete(RESOURCES.bfdProfiles, NS, 'fast');
  });

  it("`ironlb controller --webhook-mode onlywebhook` serves the webhooks with the Secret's certificate", async () => {
    const port = await freePort();
    const abort = new AbortController();
    const lines: string[] = [];
    const io = { out: (t: string) => void lines.push(t), err: (t: string) => void lines.push(t) };
    const done = runController(
      [
        '--kubeconfig',
        cp.kubeconfigPath,
        '--webhook-mode',
        'onlywebhook',
        '--webhook-host',
        '127.0.0.1',
        '--webhook-port',
        String(port),
        '--port',
        '0',
        '--health-probe-port',
        '0',
      ],
      io,
      abort.signal,
    );
    try {
      const review = {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid: 'cli-1',
          kind: { group: 'metallb.io', version: 'v1beta1', kind: 'IPAddressPool' },
          namespace: NS,
          operation: 'CREATE',
          // Overlaps are reported on the pool whose name sorts later (parse order), here the new one.
          object: v1('IPAddressPool', 'pool-z', { addresses: ['192.0.2.7/32'] }),
        },
      };
      const answer = await waitFor(
        () => postJson(port, first.caBundle, '/validate-metallb-io-v1beta1-ipaddresspool', review),
        { timeoutMs: 20_000, what: 'the CLI webhook answering' },
      );
      expect(answer).toMatchObject({
        response: {
          uid: 'cli-1',
          allowed: false,
          status: {
            message: expect.stringContaining(
              'IPAddressPool/pool-z: spec.addresses[0]: 192.0.2.7/32 overlaps 192.0.2.0/24 ("192.0.2.0/24") of IPAddressPool/pool-a',
            ),
          },
        },
      });
    } finally {
      abort.abort();
      expect(await done).toBe(0);
    }
    // No allocation in this mode: no leader election either.
    await expect(client.get(RESOURCES.leases, NS, 'metallb-controller')).rejects.toMatchObject({
      status: 404,
    });
    await expect(
      runController(['--kubeconfig', cp.kubeconfigPath, '--webhook-mode', 'sometimes'], io),
    ).rejects.toThrow('--webhook-mode must be enabled, disabled or onlywebhook');
  });

  it('rotation replaces a broken serving certificate; a certificate the API server cannot verify fails closed', async () => {
    // Another replica (or a person) left a certificate without our names in the Secret. The rotation
    // loop (every 500 ms here) writes a new one from the same CA and swaps the server to it.
    const s = await client.get<KObject & { data: Record<string, string> }>(
      RESOURCES.secrets,
      NS,
      'metallb-webhook-cert',
    );
    await client.update(RESOURCES.secrets, { ...s, data: { ...s.data, 'tls.crt': s.data['ca.crt']! } });
    await waitFor(() => wh.server.certificate !== first.cert, {
      timeoutMs: 10_000,
      what: 'a new serving certificate',
    });
    const now = await client.get<KObject & { data: Record<string, string> }>(
      RESOURCES.secrets,
      NS,
      'metallb-webhook-cert',
    );
    expect(Buffer.from(now.data['tls.crt']!, 'base64').toString()).toBe(wh.server.certificate);
    expect(now.data['ca.crt']).toBe(s.data['ca.crt']); // same CA: the injected bundle stays valid
    // The loop's certificate carries only the Service names, not 127.0.0.1, which the URL uses:
    // failurePolicy Fail makes the API server refuse the write.
    // Idle connections were closed on the swap, so the next call already sees the new certificate.
    const msg = await waitFor(
      async () => {
        const m = await denial(
          client.request(
            'POST',
            `/apis/metallb.io/v1beta1/namespaces/${NS}/ipaddresspools`,
            v1('IPAddressPool', 'after', { addresses: ['203.0.113.0/24'] }),
            { query: { dryRun: 'All' } },
          ),
        );
        return m.includes('failed calling webhook') && m;
      },
      { timeoutMs: 10_000, what: 'the API server refusing our new certificate' },
    );
    expect(msg).toMatch(
      /failed calling webhook "ipaddresspoolvalidationwebhook\.metallb\.io".*(x509|certificate)/,
    );
  });
});
