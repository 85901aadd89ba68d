/**
 * metallb_bgp_* / metallb_bfd_* from a live FRR 8.4: a "node" FRR (AS 64510, MetalLB-style
 * config: one dual-family eBGP neighbour with BFD, two IPv4 and one IPv6 prefix) peers with a
 * "router" FRR (AS 64500, passive, so the node always opens the TCP connection and the upstream
 * `peer` label `<ip>:<portForeign>` is deterministically `192.0.2.1:179`) in network namespaces.
 * The node's `show bgp vrf all neighbors json`,
 * `show bfd peers json` and `show bfd peers counters json` are parsed, fed to Metrics by a
 * scrape-time collector, and scraped over real HTTP on 127.0.0.1.
 *
 * Needs root and `ip netns` (scripts/install-lab-deps.sh). Skipped otherwise, except under
 * CI=true, where it fails instead.
 *
 * IRONLB_RECORD_FRR_SAMPLES=<dir> also writes the raw JSON it parsed into <dir> (that is how
 * test/fixtures/observability/ was recorded).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import {
  Metrics,
  parseBfdPeerCounters,
  parseBfdPeers,
  parseBgpNeighbors,
} from '../../src/observability/metrics.js';
import { ObservabilityServer } from '../../src/observability/server.js';
import { labUnavailableReason, startFrr, Topology, waitFor, type FrrInstance } from '../lab/index.js';

const unavailable = await labUnavailableReason();
const isCI = process.env.CI === 'true';
if (unavailable && !isCI) {
  console.warn(`frr-metrics: SKIPPED: ${unavailable} (run as root with iproute2; CI=true never skips)`);
}
const describeLab = unavailable && !isCI ? describe.skip : describe;

const RECORD_DIR = process.env.IRONLB_RECORD_FRR_SAMPLES;
function record(name: string, text: string): void {
  if (!RECORD_DIR) return;
  mkdirSync(RECORD_DIR, { recursive: true });
  writeFileSync(join(RECORD_DIR, name), `${JSON.stringify(JSON.parse(text), null, 2)}\n`);
}

const RT = { name: 'rt', v4: '192.0.2.1', v6: '2001:db8:0:1::1' };
const N1 = { name: 'n1', v4: '192.0.2.11', v6: '2001:db8:0:1::11' };
const V4_PREFIXES = ['198.51.100.10/32', '198.51.100.11/32'];
const V6_PREFIX = '2001:db8:ffff::a/128';

/** What our renderer produces for such a node (spec e.1 / e.5), shortened. */
const NODE_CONF = `frr defaults traditional
log stdout informational
route-map ${RT.v4}-in deny 20
route-map ${RT.v4}-out permit 1
router bgp 64510
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 bgp graceful-restart preserve-fw-state
 bgp router-id ${N1.v4}
 neighbor ${RT.v4} remote-as 64500
 neighbor ${RT.v4} port 179
 neighbor ${RT.v4} timers 3 9
 neighbor ${RT.v4} timers connect 2
 neighbor ${RT.v4} bfd
 neighbor ${RT.v4} bfd profile fast
 address-family ipv4 unicast
  neighbor ${RT.v4} activate
  neighbor ${RT.v4} route-map ${RT.v4}-in in
  neighbor ${RT.v4} route-map ${RT.v4}-out out
 exit-address-family
 address-family ipv6 unicast
  neighbor ${RT.v4} activate
  neighbor ${RT.v4} route-map ${RT.v4}-in in
  neighbor ${RT.v4} route-map ${RT.v4}-out out
 exit-address-family
 address-family ipv4 unicast
${V4_PREFIXES.map((p) => `  network ${p}`).join('\n')}
 exit-address-family
 address-family ipv6 unicast
  network ${V6_PREFIX}
 exit-address-family
exit
bfd
 profile fast
  receive-interval 100
  transmit-interval 100
  detect-multiplier 3
 exit
exit
`;

const ROUTER_CONF = `frr defaults traditional
log stdout informational
router bgp 64500
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp router-id ${RT.v4}
 neighbor ${N1.v4} remote-as 64510
 neighbor ${N1.v4} passive
 neighbor ${N1.v4} timers 3 9
 neighbor ${N1.v4} timers connect 2
 neighbor ${N1.v4} bfd
 address-family ipv4 unicast
  neighbor ${N1.v4} activate
 exit-address-family
 address-family ipv6 unicast
  neighbor ${N1.v4} activate
 exit-address-family
exit
`;

/** One sample line `name{labels} value` of a Prometheus text exposition, or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = (m[2] ?? '')
      .split(/,(?=[a-zA-Z_]+=")/)
      .filter(Boolean)
      .sort()
      .join(',');
    if (got === want) return Number(m[3]);
  }
  return undefined;
}

function seriesOf(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

describeLab('metallb_bgp_* and metallb_bfd_* from a live FRR', () => {
  let topo: Topology | undefined;
  let router: FrrInstance | undefined;
  let node: FrrInstance | undefined;
  let server: ObservabilityServer | undefined;
  let metrics: Metrics;
  let base = '';
  const collectorErrors: unknown[] = [];

  const scrape = async (): Promise<string> => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    return res.text();
  };

  beforeAll(async () => {
    if (unavailable) throw new Error(`lab unavailable under CI=true: ${unavailable}`);
    topo = await Topology.create({ hosts: [RT, N1] });
    router = await startFrr({ ns: topo.host('rt').ns, config: ROUTER_CONF });
    node = await startFrr({ ns: topo.host('n1').ns, config: NODE_CONF });

    metrics = new Metrics({
      registry: new Registry(),
      groups: ['bgp', 'bfd'],
      onCollectorError: (_name, e) => collectorErrors.push(e),
    });
    const n = node;
    metrics.addCollector('frr', async () => {
      const [nb, bfd, bfdc] = await Promise.all([
        n.vtysh('show bgp vrf all neighbors json'),
        n.vtysh('show bfd peers json'),
        n.vtysh('show bfd peers counters json'),
      ]);
      metrics.setBgpNeighbors(parseBgpNeighbors(nb));
      metrics.setBfdPeers(parseBfdPeers(bfd), parseBfdPeerCounters(bfdc));
    });
    server = new ObservabilityServer({ host: '127.0.0.1', port: 0, metrics, endpoints: ['metrics'] });
    await server.start();
    base = server.url()!;
  }, 60_000);

  afterAll(async () => {
    const errors: unknown[] = [];
    for (const step of [
      () => server?.stop(),
      () => node?.stop(),
      () => router?.stop(),
      () => topo?.teardown(),
    ]) {
      try {
        await step();
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length > 0) throw errors[0];
  }, 60_000);

  const PEER = { peer: `${RT.v4}:179`, vrf: 'default' };
  const BFD_PEER = { peer: RT.v4, vrf: 'default' };

  test('session up, all three prefixes counted, message counters from FRR', async () => {
    const text = await waitFor(
      async () => {
        const t = await scrape();
        return sample(t, 'metallb_bgp_session_up', PEER) === 1 &&
          sample(t, 'metallb_bgp_announced_prefixes_total', PEER) === 3 &&
          sample(t, 'metallb_bfd_session_up', BFD_PEER) === 1
          ? t
          : null;
      },
      { timeoutMs: 40_000, intervalMs: 250, what: 'BGP Established with 3 prefixes sent and BFD up' },
    );
    expect(collectorErrors).toEqual([]);

    // Exactly one peer; label sets exactly peer+vrf.
    expect(seriesOf(text, 'metallb_bgp_session_up')).toEqual([
      `metallb_bgp_session_up{peer="${RT.v4}:179",vrf="default"} 1`,
    ]);
    expect(text).toContain('# TYPE metallb_bgp_session_up gauge');
    expect(text).toContain('# TYPE metallb_bgp_announced_prefixes_total gauge');
    expect(text).toContain('# TYPE metallb_bgp_opens_sent counter');
    expect(sample(text, 'metallb_bgp_opens_sent', PEER)).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'metallb_bgp_opens_received', PEER)).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'metallb_bgp_updates_total', PEER)).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'metallb_bgp_keepalives_sent', PEER)).toBeGreaterThanOrEqual(1);
    const total = sample(text, 'metallb_bgp_total_sent', PEER)!;
    const parts = [
      'opens_sent',
      'updates_total',
      'keepalives_sent',
      'notifications_sent',
      'route_refresh_sent',
    ]
      .map((s) => sample(text, `metallb_bgp_${s}`, PEER)!)
      .reduce((a, b) => a + b, 0);
    // totalSent also counts capability messages, so ≥ the named ones.
    expect(total).toBeGreaterThanOrEqual(parts);

    // Cross-check with the router's own view: it accepted what the node says it sent.
    const rt = parseBgpNeighbors(await router!.vtysh('show bgp vrf all neighbors json'));
    expect(rt).toHaveLength(1);
    expect(rt[0]).toMatchObject({ neighbor: N1.v4, established: true, prefixesAccepted: 3 });
    // [quirk] On the passive side portForeign is the initiator's source port, not 179.
    expect(rt[0]!.port).not.toBe(179);
    expect(rt[0]!.port).toBeGreaterThan(1023);

    // BFD.
    expect(seriesOf(text, 'metallb_bfd_session_up')).toEqual([
      `metallb_bfd_session_up{peer="${RT.v4}",vrf="default"} 1`,
    ]);
    expect(sample(text, 'metallb_bfd_control_packet_input', BFD_PEER)).toBeGreaterThan(0);
    expect(sample(text, 'metallb_bfd_control_packet_output', BFD_PEER)).toBeGreaterThan(0);
    expect(sample(text, 'metallb_bfd_session_up_events', BFD_PEER)).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'metallb_bfd_echo_packet_input', BFD_PEER)).toBe(0);

    // Samples for the unit tests.
    record('bgp-neighbors-vrf-all.node-up.json', await node!.vtysh('show bgp vrf all neighbors json'));
    record(
      'bgp-neighbors-vrf-default.node-up.json',
      await node!.vtysh('show bgp vrf default neighbors json'),
    );
    record('bgp-neighbors-vrf-all.router-up.json', await router!.vtysh('show bgp vrf all neighbors json'));
    record('bfd-peers.node-up.json', await node!.vtysh('show bfd peers json'));
    record('bfd-peers-counters.node-up.json', await node!.vtysh('show bfd peers counters json'));
  }, 60_000);

  test('withdrawing a prefix lowers announced_prefixes_total', async () => {
    await node!.vtysh([
      'configure terminal',
      'router bgp 64510',
      'address-family ipv4 unicast',
      `no network ${V4_PREFIXES[1]}`,
      'exit-address-family',
    ]);
    await waitFor(async () => sample(await scrape(), 'metallb_bgp_announced_prefixes_total', PEER) === 2, {
      timeoutMs: 20_000,
      intervalMs: 200,
      what: 'announced_prefixes_total 2',
    });
    const text = await scrape();
    expect(sample(text, 'metallb_bgp_session_up', PEER)).toBe(1);
  }, 30_000);

  test('router gone: session_up 0 on peer <ip>:-1, BFD down', async () => {
    await router!.stop();
    // FRR 8.4 reports portForeign -1 without a connection; upstream puts it in the label as is.
    const down = { peer: `${RT.v4}:-1`, vrf: 'default' };
    const text = await waitFor(
      async () => {
        const t = await scrape();
        return sample(t, 'metallb_bgp_session_up', down) === 0 &&
          sample(t, 'metallb_bfd_session_up', BFD_PEER) === 0
          ? t
          : null;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'BGP and BFD sessions down' },
    );
    // The ip:179 series is gone.
    expect(seriesOf(text, 'metallb_bgp_session_up')).toEqual([
      `metallb_bgp_session_up{peer="${RT.v4}:-1",vrf="default"} 0`,
    ]);
    expect(sample(text, 'metallb_bgp_announced_prefixes_total', down)).toBe(0);
    expect(sample(text, 'metallb_bfd_session_down_events', BFD_PEER)).toBeGreaterThanOrEqual(1);
    expect(collectorErrors).toEqual([]);

    record('bgp-neighbors-vrf-all.node-down.json', await node!.vtysh('show bgp vrf all neighbors json'));
    record('bfd-peers.node-down.json', await node!.vtysh('show bfd peers json'));
    record('bfd-peers-counters.node-down.json', await node!.vtysh('show bfd peers counters json'));
  }, 30_000);
});
