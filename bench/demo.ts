/**
 * `make demo` (as root) / `npm run demo`: the whole of ironlb on one machine, in a few seconds.
 *
 * Builds a cluster with test/e2e/cluster.ts (a real kube-apiserver + etcd on 127.0.0.1,
 * `ironlb controller`, two node namespaces each running FRR, `ironlb frr-reloader`,
 * `ironlb speaker --source k8s --l2` and a small HTTP backend, a BIRD router at 192.0.2.1
 * (AS 64500) and a client behind it and on the LAN), applies examples/ unchanged, and shows:
 *   1. the IP each example Service got (from the API, written by the controller);
 *   2. the router's BGP routes (both nodes as next hops, the example's community);
 *   3. the client's HTTP answer through a BGP Service IP (via the router, ECMP);
 *   4. an L2 Service IP: who answers ARP, the client's neighbour entry, the HTTP answer;
 *   5. an L2 failover: the owning speaker is stopped (SIGTERM) and the client's neighbour entry
 *      moves to the other node while HTTP keeps answering;
 * then tears everything down (also on Ctrl-C). Documentation addresses only; nothing is created in
 * the root network namespace.
 *
 * Exit codes: 0 done, 1 something failed, 3 cannot run here (not root, FRR/BIRD or the
 * kube-apiserver binaries missing): `make demo` then falls back to the offline allocation table.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  Cluster,
  ingressIPs,
  readYamlDir,
  REPO_ROOT,
  ROUTER_ASN,
  sleep,
  toObjects,
  type Svc,
} from '../test/e2e/cluster.js';
import { waitFor } from '../test/lab/wait.js';

const EXAMPLES = join(REPO_ROOT, 'examples');
const t0 = performance.now();
const clock = () => `${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s`;
const say = (s = '') => console.log(s);
const step = (s: string) => console.log(`\n== ${s}`);
const note = (s: string) => console.log(`   ${s}`);

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '))
    .join('\n');
}

/** Which node's speaker answers ARP/NDP for each IP (from the speakers' logs). */
function l2Owners(c: Cluster): Map<string, string> {
  const out = new Map<string, string>();
  for (const x of c.nodes) {
    const p = x.speaker;
    if (!p?.running) continue;
    const mine = new Set<string>();
    for (const l of p.lines) {
      const ip = typeof l.json?.ip === 'string' ? l.json.ip : undefined;
      if (!ip) continue;
      if (l.json?.msg === 'answering') mine.add(ip);
      else if (l.json?.msg === 'stopped answering') mine.delete(ip);
    }
    for (const ip of mine) out.set(ip, out.has(ip) ? `${out.get(ip)!}+${x.name}` : x.name);
  }
  return out;
}

async function bgpNodes(c: Cluster, ip: string): Promise<string[]> {
  if (ip.includes(':')) return [];
  const paths = await c.routerPaths(`${ip}/32`);
  return paths.map((p) => p.protocol).sort();
}

async function demo(): Promise<number> {
  const why = await Cluster.unavailableReason();
  if (why) {
    console.error(`demo: cannot run the live demo here: ${why}`);
    return 3;
  }
  say('ironlb demo: a Kubernetes API, the controller, two speaker nodes with FRR, a BIRD router');
  say('and a client, all in network namespaces on this machine (documentation addresses only).');
  step('Starting the cluster');
  const c = await Cluster.start({
    nodes: 2,
    backendPorts: [80, 8080],
    routerBfd: true,
    onProgress: (m) => note(`${clock()}  ${m}`),
  });
  try {
    // The L2 pools outside the LAN's own subnet are on the same segment: the client gets
    // on-link routes for them (a router on the segment would have the same).
    for (const p of ['198.51.100.0/29', '2001:db8:100::/120']) await c.clientOnLink(p);

    step(`Applying examples/ (${EXAMPLES}) with server-side apply`);
    const objs = toObjects(readYamlDir(EXAMPLES));
    const tApply = performance.now();
    await c.apply(objs);
    const kinds = new Map<string, number>();
    for (const o of objs) kinds.set(o.kind, (kinds.get(o.kind) ?? 0) + 1);
    note([...kinds].map(([k, n]) => `${n} ${k}`).join(', '));
    const services = objs.filter((o) => o.kind === 'Service');
    const svc = (o: { metadata: { namespace?: string; name: string } }): Svc | undefined =>
      c.service(o.metadata.namespace ?? 'default', o.metadata.name);
    // Every Service has either its IPs or the controller's condition saying why not.
    await waitFor(
      () =>
        services.every((o) => {
          const s = svc(o);
          return (
            ingressIPs(s).length > 0 ||
            s?.status?.conditions?.some((x) => x.type === 'ironlb.io/IPAllocated' && x.status === 'False')
          );
        }),
      { timeoutMs: 30_000, intervalMs: 20, what: 'every example Service handled by the controller' },
    );
    note(
      `the controller handled all ${services.length} Services in ${((performance.now() - tApply) / 1000).toFixed(2)} s`,
    );

    // Let the announcements settle: BGP sessions up, every L2 IP answered by a speaker.
    await c.waitBgpEstablished(60_000);
    const l2IPs = new Set<string>();
    const bgpIPs = new Set<string>();
    for (const o of services) {
      const s = svc(o);
      const pool = s?.metadata.annotations?.['metallb.io/ip-allocated-from-pool'];
      for (const ip of ingressIPs(s)) (pool === 'public-v4' ? bgpIPs : l2IPs).add(ip);
    }
    await waitFor(
      async () => {
        const owners = l2Owners(c);
        if (![...l2IPs].every((ip) => owners.has(ip))) return false;
        for (const ip of bgpIPs) if ((await bgpNodes(c, ip)).length < 2) return false;
        return true;
      },
      { timeoutMs: 45_000, intervalMs: 250, what: 'BGP routes at the router and an L2 owner for every IP' },
    ).catch((e: unknown) =>
      note(`(not everything announced yet: ${e instanceof Error ? e.message : String(e)})`),
    );

    step('Service IPs (status.loadBalancer, written by `ironlb controller`)');
    const owners = l2Owners(c);
    const rows = [['NAMESPACE', 'NAME', 'IPS', 'POOL', 'ANNOUNCED BY']];
    for (const o of services) {
      const s = svc(o);
      const ips = ingressIPs(s);
      const pool = s?.metadata.annotations?.['metallb.io/ip-allocated-from-pool'] ?? '-';
      let how: string;
      if (ips.length === 0) {
        const cond = s?.status?.conditions?.find((x) => x.type === 'ironlb.io/IPAllocated');
        how = `no IP: ${cond?.message ?? 'pending'}`;
      } else {
        const parts: string[] = [];
        for (const ip of ips) {
          const b = await bgpNodes(c, ip);
          if (b.length) parts.push(`BGP via ${b.join(', ')}`);
          else if (owners.has(ip)) parts.push(`L2 ${ip.includes(':') ? 'NDP' : 'ARP'} by ${owners.get(ip)!}`);
        }
        how = parts.length ? [...new Set(parts)].join('; ') : '-';
      }
      rows.push([o.metadata.namespace ?? 'default', o.metadata.name, ips.join(',') || '-', pool, how]);
    }
    say(table(rows));

    step(`The router's view (BIRD ${ROUTER_ASN} at ${c.router.v4})`);
    const protos = await c.bird.showProtocols();
    note(
      `BGP sessions: ${c.nodes.map((x) => `${x.name} ${protos.find((p) => p.name === x.name)?.bgpState ?? '?'}`).join(', ')}`,
    );
    const bfd = (await c.bird.birdcRaw('show bfd sessions')).text
      .split('\n')
      .map((l) => /^(\d+\.\d+\.\d+\.\d+)\s+\S+\s+(\S+)/.exec(l.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => `${c.nodes.find((x) => x.v4 === m[1])?.name ?? m[1]!} ${m[2]!}`);
    if (bfd.length) note(`BFD (profile "fast" of the BGPPeer): ${bfd.join(', ')}`);
    for (const ip of bgpIPs) {
      const prefix = `${ip}/32`;
      const paths = await c.routerPaths(prefix);
      for (const p of paths) {
        const b = p.route.bgp;
        note(
          `${prefix}  via ${p.gateways.join(',')} (${p.protocol})  AS path ${b?.asPath.join(' ') ?? '-'}` +
            `${b?.communities.length ? `  communities ${b.communities.join(' ')}` : ''}`,
        );
      }
      note(
        `kernel: ${prefix} next hops ${(await c.routerKernelNextHops(prefix)).join(', ') || 'none'} (ECMP)`,
      );
    }

    const pinned = [...bgpIPs][0];
    if (pinned) {
      step(`HTTP from the client (${c.client.extV4}, behind the router) to ${pinned}:8080`);
      const r = await waitFor(
        async () => {
          const x = await c.http(Cluster.url(pinned, 8080), 8);
          return x.every((y) => y.status === 200) ? x : null;
        },
        { timeoutMs: 20_000, what: `HTTP to ${pinned}` },
      );
      const count = new Map<string, number>();
      for (const x of r) count.set(x.body ?? '?', (count.get(x.body ?? '?') ?? 0) + 1);
      note(
        `8 requests answered by: ${[...count].map(([n, k]) => `${n} ×${k}`).join(', ')}  (the router spreads connections over both nodes)`,
      );
    }

    const web = svc({ metadata: { namespace: 'default', name: 'web' } });
    const webIP = ingressIPs(web).find((ip) => !ip.includes(':'));
    if (webIP) {
      step(`L2: default/web ${webIP} on the LAN`);
      const arp = await waitFor(
        async () => {
          const a = await c.arpOwners(webIP, 2);
          return a.macs.length ? a : null;
        },
        { timeoutMs: 15_000, what: `an ARP answer for ${webIP}` },
      );
      note(`arping ${webIP}: ${arp.macs.map((m, i) => `${m} (${arp.nodes[i]!})`).join(', ')} — one answer`);
      const first = await c.http(Cluster.url(webIP, 80), 1);
      const nb = await c.neighbour(webIP);
      note(`client neighbour entry: ${webIP} lladdr ${nb?.lladdr ?? '-'} ${nb?.state.join(',') ?? ''}`);
      note(`HTTP http://${webIP}/ answered by ${first[0]?.body ?? first[0]?.error ?? '?'}`);

      const from = arp.nodes[0]!;
      const to = c.nodes.find((x) => x.name !== from)!;
      step(`L2 failover: stopping ${from}'s speaker (SIGTERM)`);
      const tStop = performance.now();
      const stop = await c.stopSpeaker(from);
      note(
        stop.graceful
          ? `${from}'s speaker left the cluster and exited in ${stop.ms} ms`
          : `${stop.note ?? 'the speaker did not exit'}; the other node waits until it is sure ${from} is gone`,
      );
      const moved = await waitFor(
        async () => {
          const h = await c.http(Cluster.url(webIP, 80), 1, 1000);
          const e = await c.neighbour(webIP);
          return e?.lladdr === to.mac && h[0]?.status === 200 ? { e, h: h[0] } : null;
        },
        { timeoutMs: 60_000, intervalMs: 100, what: `the client's entry for ${webIP} -> ${to.name}` },
      );
      note(
        `client neighbour entry: ${webIP} lladdr ${moved.e.lladdr!} (${to.name}) after ${((performance.now() - tStop) / 1000).toFixed(1)} s`,
      );
      const after = await c.http(Cluster.url(webIP, 80), 3);
      note(`HTTP http://${webIP}/ answered by ${after.map((x) => x.body ?? x.error).join(', ')}`);
      await sleep(200);
    }
    step('Tearing everything down');
    return 0;
  } finally {
    const tDown = performance.now();
    await c.stop();
    note(`done in ${((performance.now() - tDown) / 1000).toFixed(1)} s (whole demo ${clock().trim()})`);
  }
}

demo().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`\ndemo failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  },
);
