/**
 * Proves the real-router lab harness (test/lab) against real programs: BIRD 2 as the eBGP router
 * (AS 64500) and one FRR "node" (AS 64510) with a hand-written frr.conf, in network namespaces.
 *
 * Needs root and `ip netns`; install the tools with scripts/install-lab-deps.sh. Without root or
 * netns the lab tests are skipped, except under CI=true, where they fail instead.
 */
import {
  frrDryRun,
  labUnavailableReason,
  parseBirdProtocols,
  parseBirdRoutes,
  startBird,
  startFrr,
  Topology,
  waitFor,
  type BirdInstance,
  type BirdRoute,
  type FrrInstance,
} from '../lab/index.js';

const unavailable = await labUnavailableReason();
const isCI = process.env.CI === 'true';
if (unavailable && !isCI) {
  console.warn(`lab-smoke: SKIPPED: ${unavailable} (run as root with iproute2; CI=true never skips)`);
}
const describeLab = unavailable && !isCI ? describe.skip : describe;

const ROUTER = { name: 'rt', v4: '192.0.2.1', v6: '2001:db8:0:1::1' };
const NODE = { name: 'n1', v4: '192.0.2.11', v6: '2001:db8:0:1::11' };
const SVC4 = '198.51.100.10/32';
const SVC6 = '2001:db8:ffff::a/128';

const NODE_FRR_CONF = `frr defaults traditional
log stdout informational
!
router bgp 64510
 bgp router-id ${NODE.v4}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 no bgp network import-check
 neighbor ${ROUTER.v4} remote-as 64500
 neighbor ${ROUTER.v4} timers 3 9
 neighbor ${ROUTER.v4} timers connect 2
 neighbor ${ROUTER.v6} remote-as 64500
 neighbor ${ROUTER.v6} timers 3 9
 neighbor ${ROUTER.v6} timers connect 2
 !
 address-family ipv4 unicast
  network ${SVC4}
  neighbor ${ROUTER.v4} activate
 exit-address-family
 !
 address-family ipv6 unicast
  network ${SVC6}
  neighbor ${ROUTER.v6} activate
 exit-address-family
exit
!
`;

const ROUTER_BIRD_CONF = `router id ${ROUTER.v4};
protocol device { scan time 10; }
template bgp ebgp4 {
  local ${ROUTER.v4} as 64500; hold time 9; keepalive time 3;
  connect retry time 2; error wait time 1,5; connect delay time 1; graceful restart off;
  ipv4 { import all; export none; };
}
template bgp ebgp6 {
  local ${ROUTER.v6} as 64500; hold time 9; keepalive time 3;
  connect retry time 2; error wait time 1,5; connect delay time 1; graceful restart off;
  ipv6 { import all; export none; };
}
protocol bgp n1_4 from ebgp4 { neighbor ${NODE.v4} as 64510; }
protocol bgp n1_6 from ebgp6 { neighbor ${NODE.v6} as 64510; }
`;

describeLab('lab harness against real FRR and BIRD', () => {
  let topo: Topology | undefined;
  let bird: BirdInstance | undefined;
  let frr: FrrInstance | undefined;
  const t0 = Date.now();

  beforeAll(async () => {
    if (unavailable) throw new Error(`lab unavailable under CI=true: ${unavailable}`);
    topo = await Topology.create({ hosts: [ROUTER, NODE] });
    bird = await startBird({ ns: topo.host('rt').ns, config: ROUTER_BIRD_CONF });
    frr = await startFrr({ ns: topo.host('n1').ns, config: NODE_FRR_CONF });
    console.log(`lab-smoke: topology ${topo.prefix} + BIRD + FRR up in ${Date.now() - t0} ms`);
  }, 60_000);

  afterAll(async () => {
    // Each step runs even if an earlier one failed.
    const errors: unknown[] = [];
    for (const step of [() => frr?.stop(), () => bird?.stop(), () => topo?.teardown()]) {
      try {
        await step();
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length > 0) throw errors[0];
  }, 60_000);

  const routesVia = (routes: BirdRoute[], gw: string) =>
    routes.filter((r) => r.nextHops.some((h) => h.gateway === gw));

  test('BIRD has both sessions Established and both routes via the node', async () => {
    const b = bird!;
    const start = Date.now();
    const protos = await waitFor(
      async () => {
        const p = await b.showProtocols();
        return ['n1_4', 'n1_6'].every((n) => p.find((x) => x.name === n)?.established) ? p : null;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'BIRD sessions n1_4 and n1_6 Established' },
    );
    expect(protos.filter((p) => p.proto === 'BGP').map((p) => [p.name, p.bgpState])).toEqual([
      ['n1_4', 'Established'],
      ['n1_6', 'Established'],
    ]);
    const established = Date.now() - start;

    const v4 = await waitFor(
      async () => {
        const r = await b.showRoutes(SVC4);
        return routesVia(r, NODE.v4).length > 0 ? r : null;
      },
      {
        timeoutMs: 20_000,
        what: `${SVC4} via ${NODE.v4} at BIRD`,
      },
    );
    const v6 = await waitFor(
      async () => {
        const r = await b.showRoutes(SVC6);
        return routesVia(r, NODE.v6).length > 0 ? r : null;
      },
      {
        timeoutMs: 20_000,
        what: `${SVC6} via ${NODE.v6} at BIRD`,
      },
    );
    console.log(
      `lab-smoke: sessions Established after ${established} ms, routes after ${Date.now() - start} ms`,
    );

    expect(v4).toHaveLength(1);
    expect(v4[0]).toMatchObject({ table: 'master4', prefix: SVC4, protocol: 'n1_4', primary: true });
    expect(v4[0]!.nextHops.map((h) => h.gateway)).toEqual([NODE.v4]);
    expect(v4[0]!.bgp).toMatchObject({ asPath: [64510], nextHop: [NODE.v4], origin: 'IGP', localPref: 100 });

    expect(v6).toHaveLength(1);
    expect(v6[0]).toMatchObject({ table: 'master6', prefix: SVC6, protocol: 'n1_6', primary: true });
    expect(v6[0]!.nextHops.map((h) => h.gateway)).toEqual([NODE.v6]);
    expect(v6[0]!.bgp?.nextHop[0]).toBe(NODE.v6);

    // The node's view, through vtysh JSON.
    const sum = await frr!.vtyshJson<{
      ipv4Unicast?: { peers: Record<string, { state: string; pfxSnt: number }> };
      ipv6Unicast?: { peers: Record<string, { state: string; pfxSnt: number }> };
    }>('show bgp summary');
    expect(sum.ipv4Unicast?.peers[ROUTER.v4]).toMatchObject({ state: 'Established', pfxSnt: 1 });
    expect(sum.ipv6Unicast?.peers[ROUTER.v6]).toMatchObject({ state: 'Established', pfxSnt: 1 });
  }, 60_000);

  test('removing the networks via vtysh withdraws the routes', async () => {
    const b = bird!;
    await frr!.vtysh([
      'configure terminal',
      'router bgp 64510',
      'address-family ipv4 unicast',
      `no network ${SVC4}`,
      'exit-address-family',
      'address-family ipv6 unicast',
      `no network ${SVC6}`,
      'exit-address-family',
    ]);
    const start = Date.now();
    await waitFor(
      async () => (await b.showRoutes(SVC4)).length === 0 && (await b.showRoutes(SVC6)).length === 0,
      {
        timeoutMs: 20_000,
        intervalMs: 50,
        what: `${SVC4} and ${SVC6} withdrawn at BIRD`,
      },
    );
    console.log(`lab-smoke: withdrawn at BIRD after ${Date.now() - start} ms`);
    // The sessions stay up.
    const protos = await b.showProtocols();
    expect(protos.filter((p) => p.established).map((p) => p.name)).toEqual(['n1_4', 'n1_6']);
    const running = await frr!.vtysh('show running-config', { daemon: 'bgpd' });
    expect(running).not.toContain(`network ${SVC4}`);
  }, 60_000);

  test('applyConfigFile re-adds the network; a bad line is reported', async () => {
    const b = bird!;
    const ok = await frr!.applyConfig(
      `router bgp 64510\n address-family ipv4 unicast\n  network ${SVC4}\n exit-address-family\nexit\n`,
    );
    expect(ok.ok).toBe(true);
    await waitFor(async () => routesVia(await b.showRoutes(SVC4), NODE.v4).length === 1, {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: `${SVC4} re-announced`,
    });
    const bad = await frr!.applyConfig('router bgp 64510\n bogus-statement 1\nexit\n', { check: false });
    expect(bad.ok).toBe(false);
    expect(bad.errors.join('\n')).toContain('bogus-statement 1');
  }, 60_000);
});

describe('frrDryRun (real FRR parser, no daemons)', () => {
  const skipNoFrr = unavailable && !isCI;
  const maybe = skipNoFrr ? test.skip : test;

  maybe('accepts a good config', async () => {
    const r = await frrDryRun(NODE_FRR_CONF);
    expect(r).toEqual({ ok: true, errors: [] });
  });

  maybe('rejects a config with a bogus line and names the line', async () => {
    const bad = NODE_FRR_CONF.replace(
      `  network ${SVC4}\n`,
      `  network ${SVC4}\n  frobnicate the-widget 42\n`,
    );
    const r = await frrDryRun(bad);
    expect(r.ok).toBe(false);
    expect(r.errors).toHaveLength(1);
    const lineNo = bad.split('\n').indexOf('  frobnicate the-widget 42') + 1;
    expect(r.errors[0]).toContain(`line ${lineNo}:`);
    expect(r.errors[0]).toContain('frobnicate the-widget 42');
    expect(r.errors[0]).toContain('Unknown command');
  });
});

// Recorded output of BIRD 2.0.12 (lab run on this machine kind), so the parsers are checked
// without root as well.
const ROUTES_SAMPLE = `BIRD 2.0.12 ready.
Table master4:
203.0.113.9/32       blackhole [st4 11:18:56.945] * (200)
\tType: static univ
198.51.100.10/32     unicast [n1_4 11:18:45.979] * (100) [AS64510i]
\tvia 192.0.2.11 on ilx3e9f-rte
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64510
\tBGP.next_hop: 192.0.2.11
\tBGP.med: 0
\tBGP.local_pref: 100
                     unicast [n2_4 11:19:01.939] (100) [AS64510i]
\tvia 192.0.2.12 on ilx3e9f-rte
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64510
\tBGP.next_hop: 192.0.2.12
\tBGP.med: 0
\tBGP.local_pref: 100
\tBGP.community: (64510,100) (65000,7)
\tBGP.large_community: (64510, 1, 100) (64510, 2, 200)
203.0.113.0/24       unicast [st4 11:18:56.945] * (200)
\tvia 192.0.2.11 on ilx3e9f-rte weight 1
\tvia 192.0.2.12 on ilx3e9f-rte weight 1
\tType: static univ

Table master6:
2001:db8:ffff::a/128 unicast [n1_6 11:18:45.979] * (100) [AS64510i]
\tvia 2001:db8:0:1::11 on ilx3e9f-rte
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64510
\tBGP.next_hop: 2001:db8:0:1::11 fe80::f0ce:55ff:fe6b:f076
\tBGP.med: 0
\tBGP.local_pref: 100
`;

const PROTOCOLS_SAMPLE_VERBOSE = `0001 BIRD 2.0.12 ready.
2002-Name       Proto      Table      State  Since         Info
1002-device1    Device     ---        up     11:18:39.591  
     kernel4    Kernel     master4    up     11:18:39.591  
     n1_4       BGP        ---        up     11:18:44.878  Established   
     n1_6       BGP        ---        up     11:18:44.878  Established   
     n3_4       BGP        ---        start  11:18:56.945  Active        Socket: No route to host
     ibgp_x     BGP        ---        start  2026-11-21 09:00:01  Idle
`;

describe('BIRD output parsers (recorded samples)', () => {
  test('show route all: ECMP paths, multipath next hops, BGP attributes', () => {
    const r = parseBirdRoutes(ROUTES_SAMPLE);
    expect(r.map((x) => [x.table, x.prefix, x.protocol, x.primary])).toEqual([
      ['master4', '203.0.113.9/32', 'st4', true],
      ['master4', '198.51.100.10/32', 'n1_4', true],
      ['master4', '198.51.100.10/32', 'n2_4', false],
      ['master4', '203.0.113.0/24', 'st4', true],
      ['master6', '2001:db8:ffff::a/128', 'n1_6', true],
    ]);
    expect(r[0]).toMatchObject({ type: 'blackhole', nextHops: [], preference: 200 });
    expect(r[0]!.bgp).toBeUndefined();
    expect(r[2]!.bgp).toEqual({
      origin: 'IGP',
      asPath: [64510],
      nextHop: ['192.0.2.12'],
      med: 0,
      localPref: 100,
      communities: ['64510:100', '65000:7'],
      largeCommunities: ['64510:1:100', '64510:2:200'],
      extCommunities: [],
    });
    expect(r[2]).toMatchObject({
      since: '11:19:01.939',
      originInfo: 'AS64510i',
      nextHops: [{ gateway: '192.0.2.12', iface: 'ilx3e9f-rte' }],
    });
    expect(r[3]!.nextHops).toEqual([
      { gateway: '192.0.2.11', iface: 'ilx3e9f-rte', weight: 1 },
      { gateway: '192.0.2.12', iface: 'ilx3e9f-rte', weight: 1 },
    ]);
    expect(r[4]!.bgp?.nextHop).toEqual(['2001:db8:0:1::11', 'fe80::f0ce:55ff:fe6b:f076']);
    expect(r[1]!.attributes['Type']).toBe('BGP univ');
  });

  test('show route all: wrapped community lists and empty iBGP AS path', () => {
    const r = parseBirdRoutes(
      [
        'Table master4:',
        '198.51.100.10/32     unicast [ib_4 12:00:00.000 from 192.0.2.3] * (100/0) [i]',
        '\tvia 192.0.2.11 on x',
        '\tBGP.as_path: ',
        '\tBGP.local_pref: 150',
        '\tBGP.community: (64510,1) (64510,2)',
        '\t\t(64510,3)',
      ].join('\n'),
    );
    expect(r).toHaveLength(1);
    expect(r[0]).toMatchObject({ from: '192.0.2.3', metric: 0, originInfo: 'i' });
    expect(r[0]!.bgp).toMatchObject({
      asPath: [],
      localPref: 150,
      communities: ['64510:1', '64510:2', '64510:3'],
    });
  });

  test('show protocols (birdc -v form)', () => {
    const p = parseBirdProtocols(PROTOCOLS_SAMPLE_VERBOSE);
    expect(p.map((x) => [x.name, x.proto, x.state, x.bgpState, x.established])).toEqual([
      ['device1', 'Device', 'up', undefined, false],
      ['kernel4', 'Kernel', 'up', undefined, false],
      ['n1_4', 'BGP', 'up', 'Established', true],
      ['n1_6', 'BGP', 'up', 'Established', true],
      ['n3_4', 'BGP', 'start', 'Active', false],
      ['ibgp_x', 'BGP', 'start', 'Idle', false],
    ]);
    expect(p[4]!.info).toBe('Active        Socket: No route to host');
    expect(p[5]!.since).toBe('2026-11-21 09:00:01');
  });
});
