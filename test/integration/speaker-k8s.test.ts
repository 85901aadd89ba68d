/**
 * The speaker on a real kube-apiserver (`--source k8s`, BGP only): frr.conf follows the API
 * objects, ServiceBGPStatus and ConfigurationState `speaker-<node>` are written (and the latter
 * re-created when deleted), an invalid configuration keeps the last good frr.conf, nodeAssigned
 * events, and /metrics + /readyz of the speaker and of the controller.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlPlane, k8sUnavailableReason } from '../k8s/controlplane.js';
import { KubeClient, RESOURCES, type KObject } from '../../src/k8s/client.js';
import { runSpeaker } from '../../src/cli/speaker.js';
import { runController } from '../../src/cli/controller.js';
import { EventRecorder } from '../../src/k8s/events.js';
import { StatusWriter, type SpeakerState } from '../../src/speaker/status-writer.js';
import { createLogger } from '../../src/util/log.js';
import { waitFor } from '../lab/wait.js';

const NS = 'metallb-system';
const NODE = 'node-a';
const unavailable = k8sUnavailableReason();
if (unavailable && process.env.CI === 'true')
  throw new Error(`control plane unavailable under CI=true: ${unavailable}`);
const d = unavailable ? describe.skip : describe;

type Obj = KObject & { status?: Record<string, unknown> };
type Cond = { type: string; status: string; reason: string; message?: string };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

function quietIo(lines: string[]) {
  return { out: (t: string) => void lines.push(t), err: (t: string) => void lines.push(t) };
}

const mlb = (kind: string, name: string, spec: Record<string, unknown>, version = 'v1beta1') => ({
  apiVersion: `metallb.io/${version}`,
  kind,
  metadata: { name, namespace: NS },
  spec,
});

d('speaker on a real apiserver', () => {
  let cp: ControlPlane;
  let client: KubeClient;
  let frrDir: string;

  const frrConf = () => readFile(join(frrDir, 'frr.conf'), 'utf8').catch(() => '');
  const bgpStatuses = async () =>
    (
      await client.listPage<Obj>(RESOURCES.serviceBGPStatuses, {
        namespace: NS,
        labelSelector: `metallb.io/node=${NODE}`,
      })
    ).items;
  const state = () =>
    client.get<Obj>(RESOURCES.configurationStates, NS, `speaker-${NODE}`).catch(() => undefined);

  beforeAll(async () => {
    cp = await ControlPlane.start();
    client = await KubeClient.fromKubeConfig(cp.kubeconfigPath);
    frrDir = await mkdtemp(join(tmpdir(), 'ironlb-speaker-k8s-'));
    await client.create(RESOURCES.namespaces, undefined, {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: NS },
    });
    await client.create(RESOURCES.nodes, undefined, {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } },
    });
    await client.create(
      RESOURCES.ipAddressPools,
      NS,
      mlb('IPAddressPool', 'public', { addresses: ['203.0.113.0/24'] }),
    );
    await client.create(
      RESOURCES.bgpPeers,
      NS,
      mlb('BGPPeer', 'peer1', { myASN: 64512, peerASN: 64513, peerAddress: '192.0.2.1' }, 'v1beta2'),
    );
    await client.create(
      RESOURCES.bgpAdvertisements,
      NS,
      mlb('BGPAdvertisement', 'adv', { ipAddressPools: ['public'] }),
    );
  }, 180_000);

  afterAll(async () => {
    client?.close();
    await cp?.stop();
    if (frrDir) await rm(frrDir, { recursive: true, force: true });
  }, 60_000);

  it('writes frr.conf, ServiceBGPStatus, ConfigurationState, events and metrics', async () => {
    const [metricsPort, healthPort] = [await freePort(), await freePort()];
    const abort = new AbortController();
    const logs: string[] = [];
    const done = runSpeaker(
      [
        '--source',
        'k8s',
        '--node',
        NODE,
        '--frr-dir',
        frrDir,
        '--kubeconfig',
        cp.kubeconfigPath,
        '--port',
        String(metricsPort),
        '--health-probe-port',
        String(healthPort),
        '--host',
        '127.0.0.1',
        ...(process.env.DEBUG_SPEAKER ? ['--log-level', 'debug'] : []),
      ],
      quietIo(logs),
      abort.signal,
    );
    try {
      // A valid configuration: ConfigurationState speaker-node-a is Valid.
      await waitFor(async () => (await state())?.status?.result === 'Valid', {
        timeoutMs: 30_000,
        what: 'ConfigurationState Valid',
      });
      const st = (await state())!;
      expect(st.metadata.labels).toMatchObject({
        'metallb.io/component-type': 'speaker',
        'metallb.io/node-name': NODE,
      });
      expect(st.status?.conditions).toEqual([
        expect.objectContaining({ type: 'configReconcilerValid', status: 'True', reason: 'Reconciled' }),
      ]);
      expect(st.status?.errorSummary ?? '').toBe('');

      // A Service with an IP (written through the status subresource, as the controller does).
      const svc = await client.create<Obj>(RESOURCES.services, 'default', {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'web', namespace: 'default' },
        spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }], selector: { app: 'web' } },
      });
      await client.patch(
        RESOURCES.services,
        'default',
        'web',
        { status: { loadBalancer: { ingress: [{ ip: '203.0.113.10' }] } } },
        { sub: 'status' },
      );
      await waitFor(async () => (await frrConf()).includes('network 203.0.113.10/32'), {
        timeoutMs: 20_000,
        what: 'frr.conf announces 203.0.113.10/32',
      });
      const good = await frrConf();
      expect(good).toContain('neighbor 192.0.2.1 remote-as 64513');

      const [bgp] = await waitFor(
        async () => {
          const l = await bgpStatuses();
          return l.length === 1 && (l[0]!.status?.peers as string[] | undefined)?.length ? l : undefined;
        },
        { timeoutMs: 20_000, what: 'one ServiceBGPStatus with peers' },
      );
      expect(bgp!.metadata.name).toMatch(/^bgp-/);
      expect(bgp!.metadata.labels).toEqual({
        'metallb.io/node': NODE,
        'metallb.io/service-name': 'web',
        'metallb.io/service-namespace': 'default',
      });
      expect(bgp!.status).toEqual({
        node: NODE,
        serviceName: 'web',
        serviceNamespace: 'default',
        peers: ['peer1'],
      });

      // nodeAssigned on the Service.
      await waitFor(
        async () =>
          (
            await client.listPage<
              KObject & { reason?: string; message?: string; involvedObject?: { uid?: string } }
            >(RESOURCES.events, { namespace: 'default' })
          ).items.find(
            (e) =>
              e.reason === 'nodeAssigned' &&
              e.involvedObject?.uid === svc.metadata.uid &&
              e.message === `announcing from node "${NODE}" with protocol "bgp"`,
          ),
        { timeoutMs: 10_000, what: 'nodeAssigned event' },
      );

      // Metrics and health.
      const m = await get(metricsPort, '/metrics');
      expect(m.status).toBe(200);
      expect(m.body).toMatch(
        /^metallb_speaker_announced\{service="default\/web",protocol="bgp",node="node-a",ip="203\.0\.113\.10"\} 1$/m,
      );
      expect(m.body).toMatch(/^metallb_k8s_client_config_loaded_bool 1$/m);
      expect(m.body).toMatch(/^metallb_k8s_client_config_stale_bool 0$/m);
      expect(m.body).toMatch(/^metallb_k8s_client_updates_total [1-9]/m);
      expect((await get(healthPort, '/readyz')).status).toBe(200);
      expect((await get(healthPort, '/healthz')).status).toBe(200);
      expect((await get(metricsPort, '/healthz')).status).toBe(404);

      // An invalid BGPPeer (holdTime below 3 s): Invalid with the problem, frr.conf unchanged.
      await client.create(
        RESOURCES.bgpPeers,
        NS,
        mlb(
          'BGPPeer',
          'bad',
          { myASN: 64512, peerASN: 64514, peerAddress: '192.0.2.2', holdTime: '2s' },
          'v1beta2',
        ),
      );
      await waitFor(async () => (await state())?.status?.result === 'Invalid', {
        timeoutMs: 20_000,
        what: 'ConfigurationState Invalid',
      });
      const bad = (await state())!;
      const cond = (bad.status?.conditions as Cond[])[0]!;
      expect(cond).toMatchObject({
        type: 'configReconcilerValid',
        status: 'False',
        reason: 'ConfigurationError',
      });
      expect(cond.message).toMatch(/holdTime/);
      expect(bad.status?.errorSummary).toBe(cond.message);
      expect((await get(metricsPort, '/metrics')).body).toMatch(/^metallb_k8s_client_config_stale_bool 1$/m);
      await new Promise((r) => setTimeout(r, 500));
      expect(await frrConf()).toBe(good);

      // Deleted ConfigurationState: re-created, still Invalid.
      const uid = bad.metadata.uid;
      await client.delete(RESOURCES.configurationStates, NS, `speaker-${NODE}`);
      await waitFor(
        async () => {
          const s = await state();
          return s && s.metadata.uid !== uid && s.status?.result === 'Invalid';
        },
        { timeoutMs: 20_000, what: 'ConfigurationState re-created' },
      );

      // The Service goes away: its ServiceBGPStatus and its network too (last good config).
      await client.delete(RESOURCES.services, 'default', 'web');
      await waitFor(async () => (await bgpStatuses()).length === 0, {
        timeoutMs: 20_000,
        what: 'ServiceBGPStatus deleted',
      });
      await waitFor(async () => !(await frrConf()).includes('203.0.113.10'), {
        timeoutMs: 20_000,
        what: 'network withdrawn from frr.conf',
      });
      expect(await frrConf()).toContain('neighbor 192.0.2.1 remote-as 64513');
      expect((await get(metricsPort, '/metrics')).body).not.toMatch(/^metallb_speaker_announced\{/m);

      // The bad peer removed: Valid again.
      await client.delete(RESOURCES.bgpPeers, NS, 'bad');
      await waitFor(async () => (await state())?.status?.result === 'Valid', {
        timeoutMs: 20_000,
        what: 'ConfigurationState Valid again',
      });
    } catch (e) {
      process.stderr.write(`speaker logs:\n${logs.slice(-80).join('')}\n`);
      throw e;
    } finally {
      abort.abort();
      expect(await done).toBe(0);
    }
  }, 120_000);

  it('controller: allocator metrics and health on --port / --health-probe-port', async () => {
    const [metricsPort, healthPort] = [await freePort(), await freePort()];
    const abort = new AbortController();
    const logs: string[] = [];
    const done = runController(
      [
        '--kubeconfig',
        cp.kubeconfigPath,
        '--no-leader-election',
        '--port',
        String(metricsPort),
        '--health-probe-port',
        String(healthPort),
        '--host',
        '127.0.0.1',
      ],
      quietIo(logs),
      abort.signal,
    );
    try {
      const body = await waitFor(
        async () => {
          const m = await get(metricsPort, '/metrics');
          return /^metallb_allocator_addresses_total\{pool="public"\} 256$/m.test(m.body)
            ? m.body
            : undefined;
        },
        { timeoutMs: 20_000, what: 'allocator gauges' },
      );
      expect(body).toMatch(/^metallb_allocator_addresses_in_use_total\{pool="public"\} 0$/m);
      expect(body).toMatch(/^metallb_k8s_client_config_loaded_bool 1$/m);
      expect((await get(healthPort, '/readyz')).status).toBe(200);
    } catch (e) {
      process.stderr.write(`controller logs:\n${logs.slice(-80).join('')}\n`);
      throw e;
    } finally {
      abort.abort();
      expect(await done).toBe(0);
    }
  }, 60_000);

  it('ServiceL2Status: one per Service, owned by the winner; takeover; announceFailed event', async () => {
    const svc = await client.create<Obj>(RESOURCES.services, 'default', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'l2web', namespace: 'default' },
      spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }], selector: { app: 'l2web' } },
    });
    const ref = { namespace: 'default', name: 'l2web', uid: svc.metadata.uid!, ips: ['203.0.113.20'] };
    const logs: string[] = [];
    const log = createLogger({ level: 'debug', write: (l) => void logs.push(l) });
    const writer = (node: string) =>
      new StatusWriter({
        client,
        namespace: NS,
        node,
        log: log.child({ node }),
        recorder: new EventRecorder(client, 'metallb-speaker', log),
        podName: `speaker-${node}`,
        podUID: `00000000-0000-0000-0000-00000000000${node === 'node-a' ? 1 : 2}`,
        backoffInitialMs: 100,
      });
    const st = (l2: SpeakerState['l2'], announceFailed: string[] = []): SpeakerState => ({
      configLoaded: true,
      configStale: false,
      problems: [],
      bgp: new Map(),
      l2,
      announceFailed,
      services: new Map([['default/l2web', ref]]),
    });
    const l2List = async () =>
      (
        await client.listPage<Obj>(RESOURCES.serviceL2Statuses, {
          namespace: NS,
          labelSelector: 'metallb.io/service-name=l2web',
        })
      ).items;
    let a = writer('node-a');
    const b = writer('node-b');
    a.start();
    b.start();
    try {
      a.update(st(new Map([['default/l2web', { ips: ['203.0.113.20'], interfaces: ['eth0'] }]])));
      b.update(st(new Map()));
      const [first] = await waitFor(
        async () => {
          const l = await l2List();
          return l.length === 1 && l[0]!.status?.node ? l : undefined;
        },
        { timeoutMs: 10_000, what: 'node-a ServiceL2Status' },
      );
      expect(first!.metadata.name).toMatch(/^l2-/);
      expect(first!.metadata.labels).toEqual({
        'metallb.io/node': 'node-a',
        'metallb.io/service-name': 'l2web',
        'metallb.io/service-namespace': 'default',
      });
      expect(first!.metadata.ownerReferences).toEqual([
        expect.objectContaining({ kind: 'Pod', name: 'speaker-node-a' }),
      ]);
      expect(first!.status).toEqual({
        node: 'node-a',
        serviceName: 'l2web',
        serviceNamespace: 'default',
        interfaces: [{ name: 'eth0' }],
      });

      // node-a's speaker dies; node-b takes over (on all interfaces) and deletes node-a's object.
      await a.stop();
      b.update(st(new Map([['default/l2web', { ips: ['203.0.113.20'] }]])));
      const [second] = await waitFor(
        async () => {
          const l = await l2List();
          return l.length === 1 && l[0]!.status?.node === 'node-b' ? l : undefined;
        },
        { timeoutMs: 10_000, what: 'only node-b ServiceL2Status' },
      );
      expect(second!.status).toEqual({ node: 'node-b', serviceName: 'l2web', serviceNamespace: 'default' });
      // node-a comes back, elected nowhere, with an announceFailed entry; node-b's object stays.
      a = writer('node-a');
      a.start();
      a.update(st(new Map(), ['default/l2web 203.0.113.20']));
      await a.idle();
      await new Promise((r) => setTimeout(r, 300));
      expect((await l2List()).map((o) => o.status?.node)).toEqual(['node-b']);
      await waitFor(
        async () =>
          (
            await client.listPage<
              KObject & { reason?: string; type?: string; involvedObject?: { uid?: string } }
            >(RESOURCES.events, { namespace: 'default' })
          ).items.find(
            (e) =>
              e.reason === 'announceFailed' &&
              e.type === 'Warning' &&
              e.involvedObject?.uid === svc.metadata.uid,
          ),
        { timeoutMs: 10_000, what: 'announceFailed event' },
      );

      // node-b stops announcing: its object goes away.
      b.update(st(new Map()));
      await waitFor(async () => (await l2List()).length === 0, {
        timeoutMs: 10_000,
        what: 'ServiceL2Status deleted',
      });
      expect(logs.filter((l) => l.includes('"level":"warn"') || l.includes('"level":"error"'))).toEqual([]);
    } catch (e) {
      process.stderr.write(`status writer logs:\n${logs.join('')}\n`);
      throw e;
    } finally {
      await a.stop();
      await b.stop();
      await client.delete(RESOURCES.services, 'default', 'l2web');
    }
  }, 60_000);
});
