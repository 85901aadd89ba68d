/**
 * ironlb end to end on a real kube-apiserver (test/e2e/cluster.ts): `ironlb controller` allocates,
 * `ironlb speaker --source k8s` on two node namespaces announces over BGP (FRR -> a BIRD router)
 * and L2 (ARP from the native helper), and a client reaches backends on the node namespaces
 * through the Service IPs: through the router for BGP, on the LAN segment for L2.
 *
 *  1. pools + BGPPeer + BGPAdvertisement + L2Advertisement + two Services -> IPs in status fast;
 *  2. BGP: BIRD has the /32 from both nodes (ECMP in its kernel), HTTP from behind the router works;
 *  3. L2: exactly one node answers ARP, HTTP on the segment reaches that node;
 *  4. L2 failover: the owner's speaker stopped with SIGTERM -> the other node answers;
 *  5. a BGPPeer made invalid later (holdTime 2s) -> the last good configuration stays (routes
 *     stay), and the speakers say why (their logs and ConfigurationState speaker-<node>);
 *  6. Service no longer LoadBalancer / deleted -> status cleared, route withdrawn, no ARP answer,
 *     the IPs released (pool status back to 0, a new Service gets the same IP).
 *
 * Needs root, `ip netns`, FRR, BIRD, arping and the kube-apiserver/etcd binaries
 * (scripts/build-k8s-bins.sh); skipped otherwise, except under CI=true, where it fails.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RESOURCES, type KObject } from '../../src/k8s/client.js';
import { waitFor } from '../lab/wait.js';
import { buildIronlb } from '../lab/speaker-node.js';
import { Cluster, ingressIPs, METALLB_NS, NODE_ASN, ROUTER_ASN, ROUTER_V4, sleep } from './cluster.js';

const unavailable = await Cluster.unavailableReason();
const isCI = process.env.CI === 'true';
if (unavailable && !isCI) console.warn(`e2e: SKIPPED: ${unavailable} (CI=true never skips)`);
const d = unavailable && !isCI ? describe.skip : describe;

const pool = (name: string, addresses: string[], extra: Record<string, unknown> = {}) => ({
  apiVersion: 'metallb.io/v1beta1',
  kind: 'IPAddressPool',
  metadata: { name, namespace: METALLB_NS },
  spec: { addresses, ...extra },
});
const peer = (holdTime: string) => ({
  apiVersion: 'metallb.io/v1beta2',
  kind: 'BGPPeer',
  metadata: { name: 'router', namespace: METALLB_NS },
  spec: {
    myASN: NODE_ASN,
    peerASN: ROUTER_ASN,
    peerAddress: ROUTER_V4,
    holdTime,
    keepaliveTime: '3s',
    connectTime: '2s',
  },
});
const service = (name: string, poolName: string, type = 'LoadBalancer') => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default', annotations: { 'metallb.io/address-pool': poolName } },
  spec: { type, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
});
const CONFIG = [
  pool('bgp-pool', ['203.0.113.0/28'], { avoidBuggyIPs: true }),
  pool('l2-pool', ['192.0.2.100-192.0.2.110']),
  peer('9s'),
  {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'BGPAdvertisement',
    metadata: { name: 'bgp', namespace: METALLB_NS },
    spec: { ipAddressPools: ['bgp-pool'] },
  },
  {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'L2Advertisement',
    metadata: { name: 'l2', namespace: METALLB_NS },
    spec: { ipAddressPools: ['l2-pool'] },
  },
];
const BGP_SVC = service('web-bgp', 'bgp-pool');
const L2_SVC = service('web-l2', 'l2-pool');
const BGP_IP = '203.0.113.1';
const L2_IP = '192.0.2.100';
const NODES = ['node1', 'node2'];

d('ironlb end to end: controller + speakers on a real apiserver, BIRD router, client', () => {
  let c: Cluster;
  /** The node answering ARP for L2_IP (test 3), and the one that took over (test 4). */
  let owner = '';

  beforeAll(async () => {
    if (unavailable) throw new Error(`e2e unavailable under CI=true: ${unavailable}`);
    const t0 = Date.now();
    await buildIronlb();
    const t1 = Date.now();
    c = await Cluster.start({ nodes: 2, backendPorts: [80] });
    console.log(
      `e2e: build ${((t1 - t0) / 1000).toFixed(1)} s, cluster up ${((Date.now() - t1) / 1000).toFixed(1)} s ` +
        JSON.stringify(c.timings),
    );
  }, 200_000);

  afterAll(async () => {
    await c?.stop();
  }, 60_000);

  /** Adds the cluster's process logs to a failing step's error. */
  async function withLogs<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      if (e instanceof Error) e.message += `\n--- cluster logs ---\n${c.dump(25)}`;
      throw e;
    }
  }

  type ConfigurationState = KObject & { status?: { result?: string; errorSummary?: string } };

  /** Waits for ConfigurationState speaker-<node> to say `result` (and match `summary`). */
  async function waitState(node: string, result: string, summary?: RegExp): Promise<void> {
    await withLogs(() =>
      waitFor(
        async () => {
          const s = await c.api
            .get<ConfigurationState>(RESOURCES.configurationStates, METALLB_NS, `speaker-${node}`)
            .catch(() => undefined);
          return s?.status?.result === result && (!summary || summary.test(s.status.errorSummary ?? ''));
        },
        { timeoutMs: 15_000, what: `ConfigurationState speaker-${node}: ${result}` },
      ),
    );
  }

  test('Services get an IP in their status within seconds', async () => {
    await c.apply(CONFIG);
    const t0 = Date.now();
    await c.apply([BGP_SVC, L2_SVC]);
    const [bgp, l2] = await withLogs(() =>
      Promise.all([
        c.waitServiceIPs('default', 'web-bgp', { timeoutMs: 15_000 }),
        c.waitServiceIPs('default', 'web-l2', { timeoutMs: 15_000 }),
      ]),
    );
    const ms = Date.now() - t0;
    console.log(`e2e: both Services had their IP ${ms} ms after the apply was sent`);
    expect(bgp).toEqual([BGP_IP]);
    expect(l2).toEqual([L2_IP]);
    expect(ms).toBeLessThan(10_000);
    const svc = c.service('default', 'web-bgp')!;
    expect(svc.metadata.annotations?.['metallb.io/ip-allocated-from-pool']).toBe('bgp-pool');
    expect(svc.status?.conditions?.find((x) => x.type === 'ironlb.io/IPAllocated')).toMatchObject({
      status: 'True',
      reason: 'IPAllocated',
    });
  }, 30_000);

  test('BGP: BIRD has the /32 from both nodes; HTTP from behind the router reaches a backend', async () => {
    await withLogs(() => c.waitBgpEstablished(60_000));
    const prefix = `${BGP_IP}/32`;
    const paths = await withLogs(() =>
      waitFor(
        async () => {
          const p = await c.routerPaths(prefix);
          return p.length === 2 ? p : null;
        },
        { timeoutMs: 30_000, what: `BIRD: ${prefix} from both nodes` },
      ),
    );
    expect(paths.map((p) => p.protocol).sort()).toEqual(NODES);
    expect(paths.flatMap((p) => p.gateways).sort()).toEqual(['192.0.2.11', '192.0.2.12']);
    for (const p of paths) expect(p.route.bgp?.asPath).toEqual([NODE_ASN]);
    await waitFor(async () => (await c.routerKernelNextHops(prefix)).length === 2, {
      timeoutMs: 10_000,
      what: 'ECMP kernel route at the router',
    });
    expect(await c.routerKernelNextHops(prefix)).toEqual(['192.0.2.11', '192.0.2.12']);
    // The L2-only IP is not announced over BGP.
    expect(await c.routerPaths(`${L2_IP}/32`)).toEqual([]);

    // The client's default route is the router: requests go client -> router -> a node.
    await waitFor(async () => (await c.vipsSynced()).includes(BGP_IP), {
      timeoutMs: 10_000,
      what: 'VIP on lo',
    });
    const answers = await waitFor(
      async () => {
        const r = await c.http(Cluster.url(BGP_IP, 80), 8);
        return r.every((x) => x.status === 200) ? r : null;
      },
      { timeoutMs: 20_000, what: `HTTP to ${BGP_IP} through the router` },
    );
    const bodies = answers.map((a) => a.body ?? '');
    console.log(`e2e: HTTP via BGP answered by ${bodies.join(', ')}`);
    for (const b of bodies) expect(NODES).toContain(b);
    // Not announced over L2: nobody answers ARP for it on the LAN.
    expect((await c.arpOwners(BGP_IP, 1)).macs).toEqual([]);
  }, 120_000);

  test('L2: exactly one node answers ARP; HTTP on the LAN reaches that node', async () => {
    const first = await withLogs(() =>
      waitFor(
        async () => {
          const a = await c.arpOwners(L2_IP, 1);
          return a.macs.length > 0 ? a : null;
        },
        { timeoutMs: 20_000, what: `an ARP answer for ${L2_IP}` },
      ),
    );
    const again = await c.arpOwners(L2_IP, 3);
    expect(first.macs).toHaveLength(1);
    expect(again.macs).toEqual(first.macs);
    owner = first.nodes[0]!;
    expect(NODES).toContain(owner);
    const other = NODES.find((n) => n !== owner)!;
    expect(c.speakerRecords(owner, 'answering').some((r) => r.ip === L2_IP)).toBe(true);
    expect(c.speakerRecords(other, 'answering').some((r) => r.ip === L2_IP)).toBe(false);

    const r = await waitFor(
      async () => {
        const x = await c.http(Cluster.url(L2_IP, 80), 3);
        return x.every((y) => y.status === 200) ? x : null;
      },
      { timeoutMs: 15_000, what: `HTTP to ${L2_IP} on the LAN` },
    );
    expect(r.map((x) => x.body)).toEqual([owner, owner, owner]);
    expect((await c.neighbour(L2_IP))?.lladdr).toBe(c.node(owner).mac);
    // The router (also on the LAN) learns no BGP route for it.
    expect(await c.routerPaths(`${L2_IP}/32`)).toEqual([]);
  }, 60_000);

  test('L2 failover: SIGTERM to the owner speaker moves the IP to the other node', async () => {
    const from = owner;
    const to = NODES.find((n) => n !== from)!;
    const t0 = Date.now();
    const stop = await c.stopSpeaker(from);
    try {
      if (!stop.graceful) throw new Error(`${stop.note}\n--- cluster logs ---\n${c.dump(25)}`);
      const nb = await withLogs(() =>
        waitFor(
          async () => {
            await c.http(Cluster.url(L2_IP, 80), 1, 1000); // traffic makes the client re-check its entry
            const e = await c.neighbour(L2_IP);
            return e?.lladdr === c.node(to).mac ? e : null;
          },
          { timeoutMs: 20_000, intervalMs: 100, what: `client neighbour entry ${L2_IP} -> ${to}` },
        ),
      );
      console.log(
        `e2e: L2 failover ${from} -> ${to}: speaker exited in ${stop.ms} ms, neighbour entry moved after ${Date.now() - t0} ms`,
      );
      expect(nb.lladdr).toBe(c.node(to).mac);
      expect((await c.arpOwners(L2_IP, 2)).nodes).toEqual([to]);
      const r = await c.http(Cluster.url(L2_IP, 80), 2);
      expect(r.map((x) => x.body)).toEqual([to, to]);
      // The stopped node's FRR keeps its BGP session: the BGP route still has both next hops.
      expect((await c.routerPaths(`${BGP_IP}/32`)).length).toBe(2);
    } finally {
      // The other tests need both speakers.
      await withLogs(() => c.startSpeaker(from));
    }
    await waitFor(async () => (await c.arpOwners(L2_IP, 1)).macs.length === 1, {
      timeoutMs: 20_000,
      what: 'one ARP owner after the restart',
    });
    expect((await c.arpOwners(L2_IP, 2)).macs).toHaveLength(1);
    owner = (await c.arpOwners(L2_IP, 1)).nodes[0]!;
  }, 90_000);

  test('a BGPPeer made invalid later (holdTime 2s): the last good config stays, and the reason is reported', async () => {
    const since = Date.now();
    const before = await Promise.all(NODES.map((n) => readConf(c.node(n).frrDir)));
    await c.apply([peer('2s')]);
    for (const n of NODES) {
      const rec = await withLogs(() =>
        waitFor(
          () =>
            c
              .speakerRecords(n, 'invalid configuration, keeping the last good one', since)
              .find((r) => JSON.stringify(r.problems ?? '').includes('holdTime')),
          { timeoutMs: 15_000, what: `${n}: speaker logs the invalid BGPPeer` },
        ),
      );
      expect(JSON.stringify(rec.problems)).toMatch(
        /BGPPeer\/router: spec\.holdTime: must be 0 or at least 3s/,
      );
    }
    // As upstream, each speaker reports it in ConfigurationState speaker-<node> as well.
    for (const n of NODES) await waitState(n, 'Invalid', /holdTime/);
    // Give the speakers time to (wrongly) act on it, then check nothing changed.
    await sleep(3000);
    const after = await Promise.all(NODES.map((n) => readConf(c.node(n).frrDir)));
    expect(after).toEqual(before);
    const paths = await c.routerPaths(`${BGP_IP}/32`);
    expect(paths.map((p) => p.protocol).sort()).toEqual(NODES);
    expect((await c.http(Cluster.url(BGP_IP, 80), 2)).every((x) => x.status === 200)).toBe(true);
    expect((await c.arpOwners(L2_IP, 1)).macs).toHaveLength(1);

    // Fixing it is picked up again.
    const fixed = Date.now();
    await c.apply([peer('9s')]);
    for (const n of NODES) {
      await waitFor(() => c.speakerRecords(n, 'configuration loaded', fixed).length > 0, {
        timeoutMs: 15_000,
        what: `${n}: configuration loaded again`,
      });
      await waitState(n, 'Valid');
    }
  }, 60_000);

  test('no longer LoadBalancer / deleted: status cleared, route withdrawn, no ARP answer, IPs released', async () => {
    // web-bgp becomes a ClusterIP Service: the controller clears its status, BGP withdraws.
    await c.apply([service('web-bgp', 'bgp-pool', 'ClusterIP')]);
    await withLogs(() =>
      waitFor(() => ingressIPs(c.service('default', 'web-bgp')).length === 0, {
        timeoutMs: 10_000,
        what: 'web-bgp status cleared',
      }),
    );
    await withLogs(() =>
      waitFor(async () => (await c.routerPaths(`${BGP_IP}/32`)).length === 0, {
        timeoutMs: 20_000,
        what: `BIRD: ${BGP_IP}/32 withdrawn`,
      }),
    );
    expect(await c.routerKernelNextHops(`${BGP_IP}/32`)).toEqual([]);
    expect((await c.http(Cluster.url(BGP_IP, 80), 1, 1500))[0]?.status).toBeUndefined();

    // web-l2 is deleted: nobody answers ARP for its IP any more.
    await c.delete([L2_SVC]);
    await withLogs(() =>
      waitFor(async () => (await c.arpOwners(L2_IP, 1)).macs.length === 0, {
        timeoutMs: 15_000,
        what: `no ARP answer for ${L2_IP}`,
      }),
    );
    expect((await c.arpOwners(L2_IP, 2)).macs).toEqual([]);
    expect(await c.vipsSynced()).toEqual([]);

    // Released: the pools count nothing assigned, and a new Service gets the same IP again.
    for (const p of ['bgp-pool', 'l2-pool']) {
      await waitFor(
        async () => {
          const o = await c.api.get<KObject & { status?: { assignedIPv4?: number } }>(
            RESOURCES.ipAddressPools,
            METALLB_NS,
            p,
          );
          return o.status?.assignedIPv4 === 0;
        },
        { timeoutMs: 10_000, what: `${p} status assignedIPv4 = 0` },
      );
    }
    await c.apply([service('again', 'l2-pool')]);
    expect(await c.waitServiceIPs('default', 'again', { timeoutMs: 10_000 })).toEqual([L2_IP]);
    await c.delete([service('again', 'l2-pool'), BGP_SVC]);
  }, 90_000);
});

const readConf = (dir: string): Promise<string> => readFile(join(dir, 'frr.conf'), 'utf8');
