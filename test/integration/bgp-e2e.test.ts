/**
 * BGP end to end, per node namespace: metallb.io objects + Node + Service YAML in a directory ->
 * `ironlb speaker` -> DIR/frr.conf -> `ironlb frr-reloader` -> FRR 8.4 -> BGP -> the router. Every
 * assertion is on the router's view: BIRD 2 (parsed with test/lab/bird.ts, and its kernel table)
 * or an FRR router (vtysh JSON, kernel table). Harness: test/lab/speaker-node.ts.
 *
 * Two topologies, one after the other, each with one router and two nodes:
 *  - BIRD router (eBGP AS 64500 on 192.0.2.1 / 2001:db8:0:1::1 and iBGP AS 64510 on a second
 *    address .3 / ::3 of the same BIRD, since one BIRD cannot hold two sessions to one neighbour
 *    IP: the nodes' iBGP peers use a per-node `sourceAddress` .21/.22, ::21/::22): sessions,
 *    ECMP, communities, LOCAL_PREF, withdrawal, node selectors of BGPAdvertisement and BGPPeer,
 *    graceful restart, an invalid config keeping the last good one.
 *  - FRR router (AS 64501, 192.0.2.2): BFD 100 ms x 3 and failover time on a cable cut, TCP-MD5
 *    (right and wrong password; never in the logs), and a BGPPeer with `vrf:` on FRR's netns VRF
 *    backend (Linux VRF devices do not exist on this kernel, lab notes section 7).
 * Plus one test without root: the speaker's directory source must hand over the whole directory
 * at start-up (it does not: a partial first frr.conf; see the last describe).
 *
 * Needs root and `ip netns`; skipped otherwise, except under CI=true, where it fails instead.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DirSource } from '../../src/speaker/dir-source.js';
import { silentLogger } from '../../src/util/log.js';
import {
  exec,
  execOk,
  labUnavailableReason,
  startBird,
  startFrr,
  Topology,
  waitFor,
  type BirdInstance,
  type BirdRoute,
  type FrrInstance,
} from '../lab/index.js';
import { buildIronlb, ironlbHelp, sha256, SpeakerNode } from '../lab/speaker-node.js';

const unavailable = await labUnavailableReason();
const isCI = process.env.CI === 'true';
if (unavailable && !isCI) {
  console.warn(`bgp-e2e: SKIPPED: ${unavailable} (run as root with iproute2; CI=true never skips)`);
}
const describeLab = unavailable && !isCI ? describe.skip : describe;

// ---------------------------------------------------------------------------------------------
// Objects (JSON is YAML; one document per object)
// ---------------------------------------------------------------------------------------------

const NS = 'metallb-system';
const docs = (...objs: object[]): string =>
  objs.map((o) => JSON.stringify(o, null, 1)).join('\n---\n') + '\n';
const nodeObj = (name: string, labels: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } },
});
const pool = (name: string, addresses: string[]) => ({
  apiVersion: 'metallb.io/v1beta1',
  kind: 'IPAddressPool',
  metadata: { name, namespace: NS },
  spec: { addresses },
});
const bgpAdv = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'metallb.io/v1beta1',
  kind: 'BGPAdvertisement',
  metadata: { name, namespace: NS },
  spec,
});
const peer = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'metallb.io/v1beta2',
  kind: 'BGPPeer',
  metadata: { name, namespace: NS },
  spec: { myASN: 64510, ...spec },
});
const service = (name: string, ips: string[]) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default' },
  spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }] },
  status: { loadBalancer: { ingress: ips.map((ip) => ({ ip })) } },
});
/** Fast timers (the BGPPeer input allows them: hold >= 3 s). */
const TIMERS = { holdTime: '9s', keepaliveTime: '3s', connectTime: '2s' };
const onlyNode = (name: string) => [{ matchLabels: { 'kubernetes.io/hostname': name } }];

// ---------------------------------------------------------------------------------------------
// Router-side helpers
// ---------------------------------------------------------------------------------------------

/** Gateways of the router's kernel route for `prefix` (ECMP: several), sorted. */
async function kernelNextHops(ns: string, prefix: string): Promise<string[]> {
  const fam = prefix.includes(':') ? '-6' : '-4';
  const out = await execOk(null, ['ip', '-n', ns, fam, '-j', 'route', 'show', prefix], { timeoutMs: 10_000 });
  const routes = JSON.parse(out.trim() || '[]') as { gateway?: string; nexthops?: { gateway?: string }[] }[];
  return routes
    .flatMap((r) =>
      r.nexthops && r.nexthops.length > 0
        ? r.nexthops.map((h) => h.gateway ?? '')
        : r.gateway
          ? [r.gateway]
          : [],
    )
    .sort();
}

/** BIRD paths of `prefix` (optionally in another table), by protocol name. */
async function birdPaths(
  bird: BirdInstance,
  prefix: string,
  table?: string,
): Promise<Map<string, BirdRoute>> {
  const routes = await bird.showRoutes(table ? `${prefix} table ${table}` : prefix);
  return new Map(routes.filter((r) => r.prefix === prefix).map((r) => [r.protocol, r]));
}

const gateways = (r: BirdRoute | undefined) => (r?.nextHops ?? []).map((h) => h.gateway ?? '');

/** The TcpExt TCPMD5Failure counter of a namespace. */
async function md5Failures(ns: string): Promise<number> {
  const text = await execOk(ns, ['cat', '/proc/net/netstat']);
  const lines = text.split('\n').filter((l) => l.startsWith('TcpExt:'));
  const names = (lines[0] ?? '').split(/\s+/);
  const values = (lines[1] ?? '').split(/\s+/);
  const i = names.indexOf('TCPMD5Failure');
  return i > 0 ? Number(values[i]) : NaN;
}

/** Milliseconds of a BIRD "since" time of day (hh:mm:ss.mmm); NaN for other formats. */
function clockMs(since: string): number {
  const m = /^(\d{2}):(\d{2}):(\d{2})\.(\d{3})$/.exec(since);
  return m ? ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number(m[4]) : NaN;
}

/**
 * The indented lines under capability `cap` (e.g. "Graceful restart") in the "Local capabilities"
 * or "Neighbor capabilities" part of BIRD's `show protocols all NAME`; null when absent.
 */
function capabilityBlock(text: string, section: string, cap: string): string[] | null {
  const lines = text.split('\n');
  const indent = (l: string) => l.length - l.trimStart().length;
  const s = lines.findIndex((l) => l.trim() === section);
  if (s < 0) return null;
  for (let i = s + 1; i < lines.length && indent(lines[i]!) > indent(lines[s]!); i++) {
    if (lines[i]!.trim() !== cap) continue;
    const out: string[] = [];
    for (let j = i + 1; j < lines.length && indent(lines[j]!) > indent(lines[i]!); j++)
      out.push(lines[j]!.trim());
    return out;
  }
  return null;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** Where node2's reloader serves FRR's metrics, inside node2's namespace (upstream: 7473). */
const FRR_METRICS_PORT = 17473;

/** Runs every step even if earlier ones fail; rethrows the first error. */
async function cleanupAll(steps: (() => Promise<unknown> | undefined)[]): Promise<void> {
  const errors: unknown[] = [];
  for (const s of steps) {
    try {
      await s();
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length > 0) throw errors[0];
}

// ---------------------------------------------------------------------------------------------

describeLab('BGP end to end: speaker -> frr.conf -> frr-reloader -> FRR -> router', () => {
  beforeAll(async () => {
    if (unavailable) throw new Error(`lab unavailable under CI=true: ${unavailable}`);
    const t0 = Date.now();
    await buildIronlb();
    console.log(`bgp-e2e: npm run build took ${Date.now() - t0} ms`);
  }, 300_000);

  test('./bin/ironlb --help lists speaker and frr-reloader', async () => {
    const help = await ironlbHelp();
    expect(help).toMatch(/ironlb speaker --node/);
    expect(help).toMatch(/ironlb frr-reloader --dir/);
  });

  // -------------------------------------------------------------------------------------------
  describe('with a BIRD router (eBGP + iBGP, IPv4 + IPv6)', () => {
    const RT = { name: 'rt', v4: '192.0.2.1', v6: '2001:db8:0:1::1' };
    const RT_IBGP = { v4: '192.0.2.3', v6: '2001:db8:0:1::3' };
    const N1 = {
      name: 'n1',
      v4: '192.0.2.11',
      v6: '2001:db8:0:1::11',
      ib4: '192.0.2.21',
      ib6: '2001:db8:0:1::21',
    };
    const N2 = {
      name: 'n2',
      v4: '192.0.2.12',
      v6: '2001:db8:0:1::12',
      ib4: '192.0.2.22',
      ib6: '2001:db8:0:1::22',
    };
    const WEB = ['198.51.100.10', '2001:db8:ffff::a'];
    const API = ['198.51.100.11', '2001:db8:ffff::b'];
    const RACKA = '198.51.100.40';
    const P = (ip: string) => (ip.includes(':') ? `${ip}/128` : `${ip}/32`);

    const FAST =
      'hold time 9; keepalive time 3; connect retry time 2; error wait time 1,5; connect delay time 1;';
    const BIRD_CONF = `router id ${RT.v4};
protocol device { scan time 10; }
ipv4 table ibgp4t;
ipv6 table ibgp6t;
protocol kernel kernel4 { ipv4 { export all; }; merge paths on limit 16; }
protocol kernel kernel6 { ipv6 { export all; }; merge paths on limit 16; }
# eBGP over IPv4 keeps BIRD's default GR-aware mode, to see the negotiation; everything else: off (G3).
template bgp ebgp4 { local ${RT.v4} as 64500; ${FAST} graceful restart aware; ipv4 { import all; export none; }; }
template bgp ebgp6 { local ${RT.v6} as 64500; ${FAST} graceful restart off; ipv6 { import all; export none; }; }
template bgp ibgp4 { direct; local ${RT_IBGP.v4} as 64510; ${FAST} graceful restart off;
  ipv4 { table ibgp4t; import all; export none; gateway direct; }; }
template bgp ibgp6 { direct; local ${RT_IBGP.v6} as 64510; ${FAST} graceful restart off;
  ipv6 { table ibgp6t; import all; export none; gateway direct; }; }
protocol bgp n1_4 from ebgp4 { neighbor ${N1.v4} as 64510; }
protocol bgp n2_4 from ebgp4 { neighbor ${N2.v4} as 64510; }
protocol bgp n1_6 from ebgp6 { neighbor ${N1.v6} as 64510; }
protocol bgp n2_6 from ebgp6 { neighbor ${N2.v6} as 64510; }
protocol bgp i1_4 from ibgp4 { neighbor ${N1.ib4} as 64510; }
protocol bgp i2_4 from ibgp4 { neighbor ${N2.ib4} as 64510; }
protocol bgp i1_6 from ibgp6 { neighbor ${N1.ib6} as 64510; }
protocol bgp i2_6 from ibgp6 { neighbor ${N2.ib6} as 64510; }
`;
    const ALL_PROTOCOLS = ['n1_4', 'n2_4', 'n1_6', 'n2_6', 'i1_4', 'i2_4', 'i1_6', 'i2_6'];

    const ebgp6 = (nodeSelectors?: object[]) =>
      peer('ebgp6', {
        peerASN: 64500,
        peerAddress: RT.v6,
        ...TIMERS,
        ...(nodeSelectors ? { nodeSelectors } : {}),
      });
    const peersYaml = (ebgp4Spec: Record<string, unknown> = { ...TIMERS }, ebgp6NodeSelectors?: object[]) =>
      docs(
        peer('ebgp4', { peerASN: 64500, peerAddress: RT.v4, enableGracefulRestart: true, ...ebgp4Spec }),
        ebgp6(ebgp6NodeSelectors),
        // iBGP: one peer per node (same router address, the node's own source address).
        ...[N1, N2].flatMap((n, i) => [
          peer(`ibgp4-node${i + 1}`, {
            peerASN: 64510,
            peerAddress: RT_IBGP.v4,
            sourceAddress: n.ib4,
            ...TIMERS,
            nodeSelectors: onlyNode(`node${i + 1}`),
          }),
          peer(`ibgp6-node${i + 1}`, {
            peerASN: 64510,
            peerAddress: RT_IBGP.v6,
            sourceAddress: n.ib6,
            ...TIMERS,
            nodeSelectors: onlyNode(`node${i + 1}`),
          }),
        ]),
      );
    const OBJECTS: Record<string, string> = {
      '00-nodes.yaml': docs(nodeObj('node1', { rack: 'a' }), nodeObj('node2', { rack: 'b' })),
      '10-pools.yaml': docs(
        pool('main', ['198.51.100.0/27', '2001:db8:ffff::/120']),
        pool('racka', ['198.51.100.32/27']),
      ),
      '20-ads.yaml': docs(
        bgpAdv('main', {
          ipAddressPools: ['main'],
          communities: ['64510:100', 'large:64510:1:100'],
          localPref: 150,
        }),
        bgpAdv('racka', { ipAddressPools: ['racka'], nodeSelectors: [{ matchLabels: { rack: 'a' } }] }),
      ),
      '30-peers.yaml': peersYaml(),
      'svc-web.yaml': docs(service('web', WEB)),
      'svc-api.yaml': docs(service('api', API)),
      'svc-racka.yaml': docs(service('racka', [RACKA])),
    };

    let topo: Topology | undefined;
    let bird: BirdInstance | undefined;
    const nodes: SpeakerNode[] = [];
    const putAll = (file: string, yaml: string) => Promise.all(nodes.map((n) => n.put(file, yaml)));
    /** Waits until no path for `ips` is left at BIRD (eBGP and iBGP tables; kernel too if asked). */
    const waitWithdrawn = (ips: string[], timeoutMs: number, o: { kernel?: boolean } = {}) =>
      waitFor(
        async () => {
          for (const ip of ips) {
            const table = ip.includes(':') ? 'ibgp6t' : 'ibgp4t';
            if ((await birdPaths(bird!, P(ip))).size > 0) return false;
            if ((await birdPaths(bird!, P(ip), table)).size > 0) return false;
            if (o.kernel && (await kernelNextHops(topo!.host('rt').ns, P(ip))).length > 0) return false;
          }
          return true;
        },
        { timeoutMs, intervalMs: 100, what: `${ips.join(', ')} withdrawn at BIRD` },
      );

    beforeAll(async () => {
      const t0 = Date.now();
      topo = await Topology.create({ hosts: [RT, N1, N2] });
      // Second addresses: BIRD's iBGP side, and the nodes' iBGP source addresses.
      for (const [h, v4, v6] of [
        ['rt', RT_IBGP.v4, RT_IBGP.v6],
        ['n1', N1.ib4, N1.ib6],
        ['n2', N2.ib4, N2.ib6],
      ] as const) {
        const host = topo.host(h);
        await execOk(null, ['ip', '-n', host.ns, 'addr', 'add', `${v4}/24`, 'dev', host.ifname]);
        await execOk(null, ['ip', '-n', host.ns, 'addr', 'add', `${v6}/64`, 'dev', host.ifname, 'nodad']);
      }
      bird = await startBird({ ns: topo.host('rt').ns, config: BIRD_CONF });
      for (const [h, name] of [
        ['n1', 'node1'],
        ['n2', 'node2'],
      ] as const) {
        nodes.push(await SpeakerNode.start({ ns: topo.host(h).ns, nodeName: name, objects: OBJECTS }));
      }
      await Promise.all(nodes.map((n) => n.waitApplied()));
      console.log(
        `bgp-e2e[bird]: topology ${topo.prefix}, BIRD, 2 nodes up and configs applied in ${Date.now() - t0} ms`,
      );
    }, 120_000);

    afterAll(async () => {
      await cleanupAll([...nodes.map((n) => () => n.stop()), () => bird?.stop(), () => topo?.teardown()]);
    }, 60_000);

    test('eBGP and iBGP sessions, IPv4 and IPv6, reach Established at BIRD', async () => {
      const t0 = Date.now();
      await waitFor(
        async () => {
          const p = await bird!.showProtocols();
          return ALL_PROTOCOLS.every((n) => p.find((x) => x.name === n)?.established);
        },
        { timeoutMs: 30_000, what: `BIRD sessions ${ALL_PROTOCOLS.join(', ')} Established` },
      );
      console.log(`bgp-e2e[bird]: 8 sessions Established after ${Date.now() - t0} ms`);
      // The per-node iBGP peers only exist on their own node (BGPPeer nodeSelectors).
      const conf2 = (await nodes[1]!.frrConf())!;
      expect(conf2).toContain(`update-source ${N2.ib4}`);
      expect(conf2).not.toContain(N1.ib4);
    }, 60_000);

    test("a Service's /32 and /128 are received with the node as next hop, from both nodes (ECMP)", async () => {
      for (const ip of WEB) {
        const pfx = P(ip);
        const v6 = ip.includes(':');
        const e = v6 ? ['n1_6', 'n2_6'] : ['n1_4', 'n2_4'];
        const i = v6 ? ['i1_6', 'i2_6'] : ['i1_4', 'i2_4'];
        const ebgp = await waitFor(
          async () => {
            const m = await birdPaths(bird!, pfx);
            return e.every((p) => m.has(p)) ? m : null;
          },
          { timeoutMs: 30_000, what: `${pfx} from both nodes over eBGP` },
        );
        expect(gateways(ebgp.get(e[0]!))).toEqual([v6 ? N1.v6 : N1.v4]);
        expect(gateways(ebgp.get(e[1]!))).toEqual([v6 ? N2.v6 : N2.v4]);
        expect(ebgp.get(e[0]!)!.bgp?.asPath).toEqual([64510]);
        const ibgp = await waitFor(
          async () => {
            const m = await birdPaths(bird!, pfx, v6 ? 'ibgp6t' : 'ibgp4t');
            return i.every((p) => m.has(p)) ? m : null;
          },
          { timeoutMs: 30_000, what: `${pfx} from both nodes over iBGP` },
        );
        expect(gateways(ibgp.get(i[0]!))).toEqual([v6 ? N1.ib6 : N1.ib4]);
        expect(gateways(ibgp.get(i[1]!))).toEqual([v6 ? N2.ib6 : N2.ib4]);
        expect(ibgp.get(i[0]!)!.bgp?.asPath).toEqual([]);
        // The router forwards over both nodes: one kernel route with two next hops.
        const want = v6 ? [N1.v6, N2.v6] : [N1.v4, N2.v4];
        const nh = await waitFor(
          async () => {
            const g = await kernelNextHops(topo!.host('rt').ns, pfx);
            return g.length === 2 ? g : null;
          },
          { timeoutMs: 30_000, what: `ECMP kernel route ${pfx} at the router` },
        );
        expect(nh).toEqual(want.sort());
      }
    }, 90_000);

    test('standard and large communities (eBGP and iBGP) and LOCAL_PREF (iBGP only) on the router', async () => {
      for (const ip of WEB) {
        const pfx = P(ip);
        const v6 = ip.includes(':');
        const [ebgp, ibgp] = await waitFor(
          async () => {
            const e = await birdPaths(bird!, pfx);
            const i = await birdPaths(bird!, pfx, v6 ? 'ibgp6t' : 'ibgp4t');
            return e.size === 2 && i.size === 2 ? ([e, i] as const) : null;
          },
          { timeoutMs: 30_000, what: `${pfx}: eBGP and iBGP paths from both nodes` },
        );
        for (const r of [ebgp.get(v6 ? 'n1_6' : 'n1_4'), ibgp.get(v6 ? 'i2_6' : 'i2_4')]) {
          expect(r?.bgp?.communities).toEqual(['64510:100']);
          expect(r?.bgp?.largeCommunities).toEqual(['64510:1:100']);
        }
        // iBGP carries the advertisement's LOCAL_PREF; over eBGP BIRD's import default (100) applies.
        expect(ibgp.get(v6 ? 'i1_6' : 'i1_4')?.bgp?.localPref).toBe(150);
        expect(ibgp.get(v6 ? 'i2_6' : 'i2_4')?.bgp?.localPref).toBe(150);
        expect(ebgp.get(v6 ? 'n2_6' : 'n2_4')?.bgp?.localPref).toBe(100);
      }
    }, 30_000);

    test('enableGracefulRestart: the restart capability (with preserved forwarding state) reaches BIRD', async () => {
      const gr4 = await bird!.birdc('show protocols all n1_4'); // ebgp4: enableGracefulRestart, BIRD GR-aware
      const gr6 = await bird!.birdc('show protocols all n1_6'); // ebgp6: not set (FRR's default: helper only)
      const local4 = capabilityBlock(gr4, 'Local capabilities', 'Graceful restart');
      const neigh4 = capabilityBlock(gr4, 'Neighbor capabilities', 'Graceful restart');
      const neigh6 = capabilityBlock(gr6, 'Neighbor capabilities', 'Graceful restart');
      console.log(
        `bgp-e2e[bird]: GR capability from node1: with enableGracefulRestart [${neigh4?.join('; ')}], ` +
          `without [${neigh6?.join('; ')}]`,
      );
      // Both sides advertise the capability (negotiated) ...
      expect(local4).not.toBeNull();
      expect(neigh4).not.toBeNull();
      // ... and the speaker is restart-capable for IPv4 with its forwarding state preserved
      // (`neighbor X graceful-restart` + `bgp graceful-restart preserve-fw-state`), unlike the peer without it.
      expect(neigh4).toEqual(expect.arrayContaining(['AF supported: ipv4', 'AF preserved: ipv4']));
      expect(neigh6 ?? []).not.toContain('AF supported: ipv6');
      // The node's own view of the same session.
      const nb = await nodes[0]!.frr!.vtyshJson<
        Record<string, { neighborCapabilities?: { gracefulRestart?: string }; gracefulRestartInfo?: unknown }>
      >(`show bgp neighbors ${RT.v4}`);
      expect(nb[RT.v4]?.neighborCapabilities?.gracefulRestart).toBe('advertisedAndReceived');
    }, 30_000);

    test('deleting a Service file withdraws its routes (IPv4 and IPv6, eBGP and iBGP) on the router', async () => {
      for (const ip of API) {
        const m = await waitFor(async () => ((await birdPaths(bird!, P(ip))).size >= 2 ? true : null), {
          timeoutMs: 30_000,
          what: `${P(ip)} present before the delete`,
        });
        expect(m).toBe(true);
      }
      const t0 = Date.now();
      await Promise.all(nodes.map((n) => n.remove('svc-api.yaml')));
      await waitWithdrawn(API, 30_000, { kernel: true });
      console.log(`bgp-e2e[bird]: Service deleted -> withdrawn at BIRD after ${Date.now() - t0} ms`);
      // The other Service stays.
      expect((await birdPaths(bird!, P(WEB[0]!))).size).toBe(2);
    }, 60_000);

    /**
     * FRR 8.4 skips an update-subgroup whose coalesce timer runs when a route goes, so a
     * `network` removed within ~1 s of a session coming up stayed in the neighbor's Adj-RIB-Out
     * for good (found here: 8 of 9 runs of the test above alone). The reloader's withdrawal sweep
     * bounces removed networks once that window is over.
     */
    test('a Service deleted right after a session reset is withdrawn; the reloader sweeps the removed networks', async () => {
      const LATE = ['198.51.100.12', '2001:db8:ffff::c'];
      await putAll('svc-late.yaml', docs(service('late', LATE)));
      const fromNode2 = async () => {
        for (const ip of LATE)
          if (!(await birdPaths(bird!, P(ip))).has(ip.includes(':') ? 'n2_6' : 'n2_4')) return false;
        return true;
      };
      await waitFor(fromNode2, { timeoutMs: 30_000, intervalMs: 50, what: `${LATE.join(', ')} from node2` });
      const swept = async () => (await nodes[1]!.status())?.counts?.sweptNetworks ?? 0;
      const before = await swept();
      // Hard reset of node2's sessions; the Service goes as soon as its routes are back.
      await nodes[1]!.frr!.vtysh('clear bgp *');
      await waitFor(async () => !(await fromNode2()), {
        timeoutMs: 15_000,
        intervalMs: 20,
        what: 'node2 routes gone',
      });
      await waitFor(fromNode2, {
        timeoutMs: 30_000,
        intervalMs: 20,
        what: `${LATE.join(', ')} from node2 again`,
      });
      const t0 = Date.now();
      await Promise.all(nodes.map((n) => n.remove('svc-late.yaml')));
      await waitWithdrawn(LATE, 20_000);
      console.log(
        `bgp-e2e[bird]: deleted right after a session reset -> withdrawn after ${Date.now() - t0} ms`,
      );
      // node2's reloader bounced both removed networks (whether or not FRR had lost the withdrawal).
      await waitFor(async () => (await swept()) - before >= LATE.length, {
        timeoutMs: 15_000,
        what: 'node2 withdrawal sweep',
      });
      // Sessions are back for the tests that follow.
      await waitFor(async () => (await birdPaths(bird!, P(WEB[1]!))).size === 2, {
        timeoutMs: 30_000,
        what: `${P(WEB[1]!)} from both nodes`,
      });
    }, 120_000);

    test('a BGPAdvertisement whose nodeSelectors exclude node2: only node1 is the next hop', async () => {
      const pfx = P(RACKA);
      await waitFor(async () => (await birdPaths(bird!, pfx)).has('n1_4'), {
        timeoutMs: 30_000,
        what: `${pfx} from node1`,
      });
      // node2 has applied a config without that prefix, so no later path from it can appear.
      const { conf } = await nodes[1]!.waitApplied();
      expect(conf).not.toContain(RACKA);
      expect((await nodes[0]!.frrConf())!).toContain(`network ${pfx}`);
      const paths = await birdPaths(bird!, pfx);
      expect([...paths.keys()].sort()).toEqual(['n1_4']);
      expect(gateways(paths.get('n1_4'))).toEqual([N1.v4]);
      expect(await kernelNextHops(topo!.host('rt').ns, pfx)).toEqual([N1.v4]);
      expect((await birdPaths(bird!, pfx, 'ibgp4t')).has('i2_4')).toBe(false);
    }, 60_000);

    test('BGPPeer nodeSelectors: the excluded node closes / opens no session, its next hop goes', async () => {
      const pfx6 = P(WEB[1]!);
      const t0 = Date.now();
      await putAll('30-peers.yaml', peersYaml(undefined, [{ matchLabels: { rack: 'a' } }]));
      await nodes[1]!.waitApplied({ lacks: [`neighbor ${RT.v6} `] });
      await waitFor(
        async () => {
          const p = await bird!.showProtocols();
          return !p.find((x) => x.name === 'n2_6')?.established;
        },
        { timeoutMs: 30_000, intervalMs: 100, what: 'BIRD n2_6 no longer Established' },
      );
      await waitFor(async () => (await kernelNextHops(topo!.host('rt').ns, pfx6)).length === 1, {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: `${pfx6}: one next hop left`,
      });
      console.log(`bgp-e2e[bird]: ebgp6 limited to rack a -> node2's path gone after ${Date.now() - t0} ms`);
      expect(await kernelNextHops(topo!.host('rt').ns, pfx6)).toEqual([N1.v6]);
      expect([...(await birdPaths(bird!, pfx6)).keys()]).toEqual(['n1_6']);
      // node2 has no such neighbour at all, and stays without a session (BIRD keeps trying).
      const sum2 = await nodes[1]!.frr!.vtyshJson<{ ipv6Unicast?: { peers: Record<string, unknown> } }>(
        'show bgp summary',
      );
      expect(Object.keys(sum2.ipv6Unicast?.peers ?? {})).not.toContain(RT.v6);
      await sleep(3000);
      const p = await bird!.showProtocols();
      expect(p.find((x) => x.name === 'n2_6')?.established).toBe(false);
      expect(p.find((x) => x.name === 'n1_6')?.established).toBe(true);
    }, 60_000);

    test('an invalid config written later (BGPPeer holdTime 2s) is logged; the last good one stays applied', async () => {
      const before = await Promise.all(nodes.map((n) => n.waitApplied()));
      const since = new Map((await bird!.showProtocols()).map((p) => [p.name, p.since]));
      await putAll('30-peers.yaml', peersYaml({ holdTime: '2s' }, [{ matchLabels: { rack: 'a' } }]));
      for (const n of nodes) {
        await waitFor(
          () => /invalid configuration/.test(n.speaker!.output) && /holdTime/.test(n.speaker!.output),
          {
            timeoutMs: 30_000,
            intervalMs: 100,
            what: `${n.nodeName}: speaker logs the invalid BGPPeer`,
          },
        );
        const line = n.speaker!.output.split('\n').find((l) => l.includes('invalid configuration')) ?? '';
        console.log(`bgp-e2e[bird]: ${n.nodeName} speaker: ${line}`);
        expect(line).toContain('BGPPeer/ebgp4');
        expect(line).toContain('spec.holdTime');
      }
      await sleep(2000);
      for (const [i, n] of nodes.entries()) {
        const conf = await n.frrConf();
        expect(conf).toBe(before[i]!.conf);
        expect((await n.status())?.appliedSha256).toBe(sha256(conf!));
        expect(conf).toContain(`neighbor ${RT.v4} timers 3 9`);
      }
      // Routes and sessions untouched.
      expect(await kernelNextHops(topo!.host('rt').ns, P(WEB[0]!))).toEqual([N1.v4, N2.v4]);
      const p = await bird!.showProtocols();
      for (const name of ['n1_4', 'n2_4', 'i1_4', 'i2_4', 'n1_6', 'i1_6', 'i2_6']) {
        const x = p.find((y) => y.name === name);
        // BIRD converts its monotonic state-change time to wall clock on every call: +-1 ms jitter.
        const moved = Math.abs(clockMs(x?.since ?? '') - clockMs(since.get(name) ?? ''));
        expect([
          name,
          x?.established,
          moved <= 5 ? 'unchanged' : `${since.get(name)} -> ${x?.since}`,
        ]).toEqual([name, true, 'unchanged']);
      }
    }, 60_000);
  });

  // -------------------------------------------------------------------------------------------
  describe('with an FRR router (BFD, TCP-MD5, netns VRF)', () => {
    const FR = { name: 'fr', v4: '192.0.2.2' };
    const N1 = { name: 'n1', v4: '192.0.2.11' };
    const N2 = { name: 'n2', v4: '192.0.2.12' };
    /** node1's VRF "red" (FRR netns VRF backend): its own namespace with its own link. */
    const VR = { name: 'vr', v4: '192.0.2.31' };
    const SECRET = 'lab1secret';
    const WRONG = 'wrongsecret9';
    const SVC = '198.51.100.10/32';

    const ROUTER_CONF = `frr defaults traditional
log stdout informational
bfd
 profile fast
  receive-interval 100
  transmit-interval 100
  detect-multiplier 3
 exit
exit
router bgp 64501
 bgp router-id ${FR.v4}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp bestpath as-path multipath-relax
 neighbor NODES peer-group
 neighbor NODES remote-as external
 neighbor NODES timers 3 9
 neighbor NODES timers connect 2
 neighbor NODES password ${SECRET}
 neighbor NODES bfd profile fast
 neighbor VRFNODES peer-group
 neighbor VRFNODES remote-as external
 neighbor VRFNODES timers 3 9
 neighbor VRFNODES timers connect 2
 neighbor VRFNODES password ${SECRET}
 neighbor ${N1.v4} peer-group NODES
 neighbor ${N2.v4} peer-group NODES
 neighbor ${VR.v4} peer-group VRFNODES
 address-family ipv4 unicast
  neighbor NODES activate
  neighbor VRFNODES activate
  maximum-paths 16
 exit-address-family
exit
`;
    const routerPeer = (password: string) =>
      docs(peer('router', { peerASN: 64501, peerAddress: FR.v4, ...TIMERS, bfdProfile: 'fast', password }));
    const OBJECTS: Record<string, string> = {
      '00-nodes.yaml': docs(nodeObj('node1', {}), nodeObj('node2', {})),
      '10-pool.yaml': docs(pool('main', ['198.51.100.0/27']), bgpAdv('main', { ipAddressPools: ['main'] })),
      '20-bfd.yaml': docs({
        apiVersion: 'metallb.io/v1beta1',
        kind: 'BFDProfile',
        metadata: { name: 'fast', namespace: NS },
        spec: { receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3 },
      }),
      '30-peers.yaml': routerPeer(SECRET),
      'svc-web.yaml': docs(service('web', ['198.51.100.10'])),
    };

    /**
     * With the netns backend zebra shows the discovered VRF as `vrf red / netns /run/netns/red` in
     * its running config; a reloader that makes FRR run exactly the rendered file would remove that
     * binding (the VRF turns "inactive", and frr-reload.py cannot put it back: zebra answers
     * "Failure to communicate[13]" to ` netns /run/netns/red`). node1 therefore carries it in the
     * bgpextras ConfigMap (spec e.1.6), and starts with only that file, so that every frr.conf its
     * speaker writes has it (see the DirSource test at the end: a speaker starting on a full
     * directory may write a config of only part of it first). Linux VRF devices, which need no
     * such line, do not exist on this kernel.
     */
    const VRF_EXTRAS = docs({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'bgpextras', namespace: NS },
      data: { extras: 'vrf red\n netns /run/netns/red\nexit-vrf\n' },
    });

    interface Summary {
      ipv4Unicast?: { peers: Record<string, { state: string; pfxRcd?: number; pfxSnt?: number }> };
    }
    interface BfdPeer {
      peer: string;
      status: string;
      'receive-interval': number;
      'transmit-interval': number;
      'detect-multiplier': number;
      'remote-receive-interval': number;
      'remote-transmit-interval': number;
      'remote-detect-multiplier': number;
    }
    interface BgpPrefix {
      paths?: { peer?: { peerId?: string }; nexthops?: { ip?: string }[] }[];
    }

    let topo: Topology | undefined;
    let router: FrrInstance | undefined;
    const nodes: SpeakerNode[] = [];
    const peerState = async (addr: string) =>
      (await router!.vtyshJson<Summary>('show bgp summary')).ipv4Unicast?.peers[addr]?.state;
    const routerPathsFrom = async (prefix: string) =>
      ((await router!.vtyshJson<BgpPrefix>(`show bgp ipv4 unicast ${prefix}`)).paths ?? [])
        .map((p) => p.peer?.peerId ?? '')
        .sort();

    beforeAll(async () => {
      const t0 = Date.now();
      topo = await Topology.create({ hosts: [FR, N1, N2, VR] });
      router = await startFrr({ ns: topo.host('fr').ns, config: ROUTER_CONF });
      nodes.push(
        await SpeakerNode.start({
          ns: topo.host('n1').ns,
          nodeName: 'node1',
          objects: { '50-bgpextras.yaml': VRF_EXTRAS },
          netnsVrfs: { red: topo.host('vr').ns },
          reloaderArgs: ['--log-level', 'debug'],
        }),
      );
      nodes.push(
        await SpeakerNode.start({
          ns: topo.host('n2').ns,
          nodeName: 'node2',
          objects: OBJECTS,
          // Also upstream's FRR metrics sidecar (node2's FRR runs bfdd too).
          reloaderArgs: [
            '--log-level',
            'debug',
            '--metrics-port',
            String(FRR_METRICS_PORT),
            '--required-daemons',
            'zebra,bgpd,staticd,bfdd',
          ],
        }),
      );
      await nodes[0]!.waitApplied({ contains: ['netns /run/netns/red'] });
      for (const [file, yaml] of Object.entries(OBJECTS)) await nodes[0]!.put(file, yaml);
      await Promise.all(nodes.map((n) => n.waitApplied({ contains: [`neighbor ${FR.v4} remote-as 64501`] })));
      console.log(
        `bgp-e2e[frr]: topology ${topo.prefix}, FRR router, 2 nodes up and applied in ${Date.now() - t0} ms`,
      );
    }, 120_000);

    afterAll(async () => {
      await cleanupAll([...nodes.map((n) => () => n.stop()), () => router?.stop(), () => topo?.teardown()]);
    }, 60_000);

    test('TCP-MD5 on both sides: sessions Established, BFD up with the profile timers (100 ms x 3)', async () => {
      const t0 = Date.now();
      await waitFor(
        async () => (await peerState(N1.v4)) === 'Established' && (await peerState(N2.v4)) === 'Established',
        { timeoutMs: 30_000, what: 'router: sessions to node1 and node2 Established' },
      );
      console.log(`bgp-e2e[frr]: sessions Established after ${Date.now() - t0} ms`);
      for (const n of nodes) expect(await n.frrConf()).toContain(`neighbor ${FR.v4} password ${SECRET}`);
      // The kernel holds the MD5 key on the established session.
      const ss = await execOk(topo!.host('fr').ns, ['ss', '-tni', 'state', 'established']);
      expect(ss).toMatch(/md5/i);

      const peers = await waitFor(
        async () => {
          const list = await router!.vtyshJson<BfdPeer[]>('show bfd peers');
          const up = list.filter((p) => p.status === 'up' && [N1.v4, N2.v4].includes(p.peer));
          return up.length === 2 ? up : null;
        },
        { timeoutMs: 30_000, what: 'router: BFD sessions with both nodes up' },
      );
      for (const p of peers) {
        expect(p).toMatchObject({
          'remote-receive-interval': 100,
          'remote-transmit-interval': 100,
          'remote-detect-multiplier': 3,
        });
      }
      for (const n of nodes) {
        const list = await n.frr!.vtyshJson<BfdPeer[]>('show bfd peers');
        expect(list.find((p) => p.peer === FR.v4)).toMatchObject({
          status: 'up',
          'receive-interval': 100,
          'transmit-interval': 100,
          'detect-multiplier': 3,
        });
      }
    }, 60_000);

    test("the reloader as FRR metrics sidecar: metallb_bgp_* and metallb_bfd_* for the router's sessions, /livez", async () => {
      // Fetched from inside node2's namespace, where the reloader listens.
      const get = async (path: string) => {
        const script = `fetch('http://127.0.0.1:${FRR_METRICS_PORT}${path}').then(async (r) => process.stdout.write(r.status + '\\n' + (await r.text())))`;
        const r = await exec(nodes[1]!.ns, [process.execPath, '-e', script]);
        const [status, ...body] = r.stdout.split('\n');
        return { status: Number(status), body: body.join('\n') };
      };
      const peer = FR.v4.replace(/\./g, '\\.');
      const metrics = await waitFor(
        async () => {
          const r = await get('/metrics');
          return new RegExp(`metallb_bfd_session_up\\{peer="${peer}",vrf="default"\\} 1`).test(r.body)
            ? r.body
            : null;
        },
        { timeoutMs: 30_000, what: 'node2 FRR metrics: BFD session with the router up' },
      );
      expect(metrics).toMatch(new RegExp(`metallb_bgp_session_up\\{peer="${peer}:\\d+",vrf="default"\\} 1`));
      const opens = new RegExp(
        `metallb_bgp_opens_received\\{peer="${peer}:\\d+",vrf="default"\\} (\\d+)`,
      ).exec(metrics);
      expect(Number(opens?.[1])).toBeGreaterThanOrEqual(1);
      expect(metrics).toMatch(
        new RegExp(`metallb_bgp_announced_prefixes_total\\{peer="${peer}:\\d+",vrf="default"\\} [1-9]`),
      );
      expect(metrics).toMatch(
        new RegExp(`metallb_bfd_control_packet_input\\{peer="${peer}",vrf="default"\\} [1-9]`),
      );
      expect(metrics).not.toContain(SECRET);
      expect(await get('/livez')).toMatchObject({ status: 200 });
    }, 60_000);

    test('cable cut at node2: BFD makes the router drop node2 quickly', async () => {
      const rt = topo!.host('fr').ns;
      await waitFor(async () => (await kernelNextHops(rt, SVC)).length === 2, {
        timeoutMs: 30_000,
        what: `router kernel: ${SVC} via both nodes`,
      });
      expect(await kernelNextHops(rt, SVC)).toEqual([N1.v4, N2.v4]);
      let elapsed = NaN;
      const t0 = performance.now();
      try {
        await topo!.linkDown('n2');
        await waitFor(
          async () => {
            const nh = await kernelNextHops(rt, SVC);
            if (nh.includes(N2.v4)) return false;
            elapsed = performance.now() - t0;
            return nh;
          },
          { timeoutMs: 30_000, intervalMs: 10, what: `router kernel: ${SVC} without node2` },
        );
        console.log(
          `bgp-e2e[frr]: BFD failover: node2's next hop gone ${elapsed.toFixed(0)} ms after the cut`,
        );
        expect(await kernelNextHops(rt, SVC)).toEqual([N1.v4]);
        expect(await routerPathsFrom(SVC)).toEqual([N1.v4]);
        const bfd = await router!.vtyshJson<BfdPeer[]>('show bfd peers');
        expect(bfd.find((p) => p.peer === N2.v4)?.status).not.toBe('up');
        expect(elapsed).toBeLessThan(3000);
      } finally {
        await topo!.linkUp('n2');
      }
      const t1 = Date.now();
      await waitFor(async () => (await kernelNextHops(rt, SVC)).length === 2, {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: `router kernel: ${SVC} via both nodes again`,
      });
      console.log(`bgp-e2e[frr]: node2 back at the router ${Date.now() - t1} ms after the link came up`);
    }, 90_000);

    test('wrong TCP-MD5 password on node2: its session does not come up (node1 unaffected)', async () => {
      const rt = topo!.host('fr').ns;
      await waitFor(async () => (await peerState(N2.v4)) === 'Established', {
        timeoutMs: 30_000,
        what: 'node2 Established before the change',
      });
      await nodes[1]!.put('30-peers.yaml', routerPeer(WRONG));
      await nodes[1]!.waitApplied({ contains: [`password ${WRONG}`] });
      await waitFor(async () => (await peerState(N2.v4)) !== 'Established', {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: 'router: node2 session down after the password change',
      });
      const failures0 = await md5Failures(rt);
      const states = new Set<string>();
      const until = Date.now() + 6000;
      while (Date.now() < until) {
        states.add((await peerState(N2.v4)) ?? 'absent');
        await sleep(300);
      }
      const failures1 = await md5Failures(rt);
      console.log(
        `bgp-e2e[frr]: wrong password: node2 states seen at the router ${[...states].join(',')}; ` +
          `TCPMD5Failure ${failures0} -> ${failures1}`,
      );
      expect(states.has('Established')).toBe(false);
      expect(failures1).toBeGreaterThan(failures0);
      expect(await peerState(N1.v4)).toBe('Established');
      expect(await routerPathsFrom(SVC)).toEqual([N1.v4]);
    }, 60_000);

    test('BGPPeer with vrf: the session lives in `router bgp 64510 vrf red` (FRR netns VRF backend)', async () => {
      const n1 = nodes[0]!;
      const vrfShow = await n1.frr!.vtysh('show vrf');
      expect(vrfShow).toMatch(/vrf red id \d+ netns \/run\/netns\/red/);
      const t0 = Date.now();
      await n1.put(
        '40-vrf-peer.yaml',
        docs(
          peer('router-red', { peerASN: 64501, peerAddress: FR.v4, vrf: 'red', ...TIMERS, password: SECRET }),
        ),
      );
      const { conf } = await n1.waitApplied({ contains: ['router bgp 64510 vrf red'] });
      expect(conf).toContain(`neighbor ${FR.v4} password ${SECRET}`);
      await waitFor(async () => (await peerState(VR.v4)) === 'Established', {
        timeoutMs: 30_000,
        what: `router: session from VRF red (${VR.v4}) Established`,
      });
      await waitFor(async () => (await routerPathsFrom(SVC)).includes(VR.v4), {
        timeoutMs: 30_000,
        what: `router: ${SVC} via VRF red`,
      });
      console.log(`bgp-e2e[frr]: VRF red session + route at the router after ${Date.now() - t0} ms`);
      const vrfSum = await n1.frr!.vtyshJson<Summary>('show bgp vrf red summary');
      expect(vrfSum.ipv4Unicast?.peers[FR.v4]?.state).toBe('Established');
      const defSum = await n1.frr!.vtyshJson<Summary>('show bgp summary');
      expect(defSum.ipv4Unicast?.peers[FR.v4]?.state).toBe('Established');
      expect((await routerPathsFrom(SVC)).sort()).toEqual([N1.v4, VR.v4].sort());
    }, 60_000);

    test("the BGP passwords never appear in the speaker's or the reloader's logs (nor the status file)", async () => {
      for (const n of nodes) {
        expect(n.speaker!.output.length).toBeGreaterThan(0);
        expect(n.reloader!.output.length).toBeGreaterThan(0);
        for (const text of [n.speaker!.output, n.reloader!.output, JSON.stringify(await n.status())]) {
          expect(text).not.toContain(SECRET);
          expect(text).not.toContain(WRONG);
        }
      }
    });
  });
});

// ---------------------------------------------------------------------------------------------
// No root needed: the speaker's directory source, which the tests above depend on at start-up.

describe('speaker object source (dir:) at start-up', () => {
  /**
   * `ironlb speaker --source dir:SRC` must see the whole directory before its first render
   * (DirSource: "Calls `onChange` with the full object set once at start"). Found through the
   * lab: node1 of the FRR-router topology, started with all its files in place, wrote a first
   * frr.conf without its bgpextras and the reloader applied it. Here: 300 files, every onChange
   * call is recorded.
   */
  test('the first onChange carries every file already in the directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ildirsrc-'));
    const N = 300;
    try {
      for (let i = 0; i < N; i++) {
        writeFileSync(join(dir, `svc-${String(i).padStart(3, '0')}.yaml`), docs(service(`s${i}`, [])));
      }
      const calls: number[] = [];
      const source = new DirSource(dir, silentLogger);
      await source.start((objs) => calls.push(objs.length));
      await sleep(300);
      await source.stop();
      expect(calls.length).toBeGreaterThan(0);
      // Every call is the full set (a partial first set renders a config lacking Services/peers).
      expect(calls.filter((n) => n !== N)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
