/**
 * `npm run bench:l2` — Layer-2 failover and answer latency, in network namespaces (root only).
 *
 * Lab: a client and three nodes on a bridge (test/lab/l2-speakers.ts), one `ironlb speaker --l2`
 * per node with UDP membership, one dual-stack Service whose IPs are on every node's lo
 * (arp_ignore=1, arp_announce=2). Documentation addresses only; everything is removed at the end.
 *
 * 1. Failover: N trials (default 20, IRONLB_L2_BENCH_TRIALS): the client creates its neighbour
 *    entries with a ping, the owner's speaker is SIGKILLed, and the time from the kill to the
 *    client's `ip -ts monitor neigh` event showing the new owner's MAC is recorded (IPv4, IPv6).
 *    The speaker is restarted between trials; the time until the entries point back at it is
 *    recorded as well.
 * 2. ARP answer latency seen by Habets arping on the client: the native helper answering for the
 *    Service IP vs the owner's kernel answering for the node's own address (same node, same path),
 *    in alternating blocks (default 4 × 250 requests each, IRONLB_L2_BENCH_ARP).
 * 3. Idle cost: utime+stime of the helper and of the speaker from /proc/<pid>/stat over 10 s, once
 *    the gratuitous bursts are over; voluntary context switches of the helper (its wake-ups).
 *
 * Reports only; no timing assertions.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { rankNodes } from '../src/l2/election.js';
import { arping, pingOnce } from '../test/lab/l2.js';
import {
  createClusterLab,
  L2Speakers,
  NeighMonitor,
  parseArpingTimesUs,
  percentile,
  setVipsOnLo,
  type ClusterLab,
} from '../test/lab/l2-speakers.js';
import { exec, labUnavailableReason } from '../test/lab/netns.js';
import { waitFor } from '../test/lab/wait.js';

const TRIALS = Number(process.env.IRONLB_L2_TRIALS ?? 20);
const ARP_PER_BLOCK = Number(process.env.IRONLB_L2_BENCH_ARP ?? 250);
const ARP_BLOCKS = 4;
/** arping -W: a reply later than this is attributed to the next request by arping. */
const ARP_INTERVAL_S = '0.005';
const IDLE_MS = 10_000;
const VIP4 = '192.0.2.101';
const VIP6 = '2001:db8::101';
const NODES = ['node1', 'node2', 'node3'];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');

const objects = (): string =>
  [
    `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lab, namespace: metallb-system }
spec:
  addresses: [192.0.2.100-192.0.2.120, '2001:db8::100-2001:db8::120']
`,
    `apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: lab-l2, namespace: metallb-system }
spec:
  ipAddressPools: [lab]
`,
    ...NODES.map(
      (n) => `apiVersion: v1
kind: Node
metadata: { name: ${n}, labels: { kubernetes.io/hostname: ${n} } }
`,
    ),
    `apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ports: [{ port: 8080, protocol: TCP }]
status:
  loadBalancer:
    ingress: [{ ip: ${VIP4} }, { ip: '${VIP6}' }]
`,
  ].join('---\n');

/** utime + stime (clock ticks) and voluntary context switches of a process. */
function cpu(pid: number): { ticks: number; vcsw: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after "(comm)": state is index 0, utime is field 14 overall → index 11.
  const ticks = Number(f[11]) + Number(f[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const vcsw = Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return { ticks, vcsw };
}

async function main(): Promise<number> {
  const why = await labUnavailableReason();
  if (why) {
    console.error(`bench:l2 needs root and network namespaces: ${why}`);
    return 1;
  }
  const load0 = loadavg();
  let lab: ClusterLab | undefined;
  let sp: L2Speakers | undefined;
  let mon: NeighMonitor | undefined;
  try {
    lab = await createClusterLab({ nodes: 3 });
    const c = lab.client;
    for (const n of lab.nodes) await setVipsOnLo(n.ns, [VIP4, VIP6], true);
    sp = new L2Speakers({ lab });
    await sp.write('10-objects.yaml', objects());
    const w = rankNodes(NODES, VIP4)[0]!;
    const next = rankNodes(
      NODES.filter((n) => n !== w),
      VIP4,
    )[0]!;
    const wMac = lab.node(w).mac;
    const nextMac = lab.node(next).mac;
    const owned = async (m: string, timeoutMs: number) =>
      waitFor(
        async () => {
          const r = await arping(c.ns, c.ifname, VIP4, { count: 1, deadlineS: 0.3 });
          return r.macs.length === 1 && r.macs[0] === m;
        },
        { timeoutMs, intervalMs: 100, what: `${m} answering for ${VIP4}` },
      );
    const t0 = Date.now();
    await sp.startAll();
    await owned(wMac, 60_000);
    console.log(
      `lab up; ${w} (${wMac}) answers for ${VIP4} ${Date.now() - t0} ms after the speakers started`,
    );
    mon = await NeighMonitor.start(c.ns);

    // ------------------------------------------------------------------ 1. failover trials
    const fail4: number[] = [];
    const fail6: number[] = [];
    const back: number[] = [];
    const errors: string[] = [];
    for (let i = 1; i <= TRIALS; i++) {
      try {
        await owned(wMac, 30_000);
        for (const ip of [VIP4, VIP6]) {
          if (!(await pingOnce(c.ns, ip))) throw new Error(`ping ${ip} failed before trial ${i}`);
        }
        const tKill = await sp.kill(w);
        const [e4, e6] = await Promise.all([
          mon.wait(VIP4, nextMac, tKill, 20_000),
          mon.wait(VIP6, nextMac, tKill, 20_000),
        ]);
        fail4.push(e4.ts - tKill);
        fail6.push(e6.ts - tKill);
        const tStart = Date.now();
        await sp.start(w);
        const [b4, b6] = await Promise.all([
          mon.wait(VIP4, wMac, tStart, 30_000),
          mon.wait(VIP6, wMac, tStart, 30_000),
        ]);
        back.push(Math.max(b4.ts, b6.ts) - tStart);
        console.log(
          `trial ${String(i).padStart(2)}: kill ${w} -> ${next} IPv4 ${f1(e4.ts - tKill)} ms, IPv6 ${f1(e6.ts - tKill)} ms; ` +
            `restart -> back on ${w} after ${f1(back[back.length - 1]!)} ms`,
        );
      } catch (e) {
        errors.push(`trial ${i}: ${e instanceof Error ? e.message : String(e)}`);
        console.log(errors[errors.length - 1]);
        if (!sp.running(w)) await sp.start(w);
      }
      await sleep(300);
    }

    // ------------------------------------------------------------------ 2. ARP answer latency
    await owned(wMac, 30_000);
    const ownIp = lab.node(w).v4;
    const helperUs: number[] = [];
    const kernelUs: number[] = [];
    let sentHelper = 0;
    let sentKernel = 0;
    const perBlock: string[] = [];
    const block = async (what: string, ip: string, into: number[]) => {
      const r = await exec(
        c.ns,
        ['arping', '-c', String(ARP_PER_BLOCK), '-W', ARP_INTERVAL_S, '-w', '60', '-i', c.ifname, ip],
        { timeoutMs: 90_000 },
      );
      const times = parseArpingTimesUs(r.stdout);
      into.push(...times);
      const st = /(\d+) packets transmitted, (\d+) packets received/.exec(r.stdout);
      perBlock.push(`${what} ${st ? `${st[2]}/${st[1]}` : `${times.length}/?`}`);
      return st ? Number(st[1]) : ARP_PER_BLOCK;
    };
    const tArp = Date.now();
    for (let b = 0; b < ARP_BLOCKS; b++) {
      sentHelper += await block('helper', VIP4, helperUs);
      sentKernel += await block('kernel', ownIp, kernelUs);
    }
    // A self-fence (event-loop stall on a loaded machine) withdraws the IP for ≥ 1 s: note it.
    const arpDisturbances = NODES.flatMap((n) =>
      sp!
        .logs(n)
        .filter(
          (l) =>
            l.at >= tArp &&
            (l.msg === 'membership: no contact with any peer; isolated' ||
              (l.msg === 'stopped answering' && l.fields.ip === VIP4)),
        )
        .map((l) => `${n}: ${l.msg}`),
    );
    console.log(`ARP blocks (answered/sent): ${perBlock.join(', ')}`);
    if (arpDisturbances.length) console.log(`during the ARP runs: ${arpDisturbances.join('; ')}`);

    // ------------------------------------------------------------------ 3. idle CPU
    // The last claim's gratuitous burst (5 rounds, 1.1 s apart) must be over.
    const lastAnswer = sp
      .logs(w, sp.generation(w))
      .filter((l) => l.msg === 'answering')
      .reduce((t, l) => Math.max(t, l.at), 0);
    const wait = lastAnswer + 6000 - Date.now();
    if (wait > 0) await sleep(wait);
    const helperPid = sp.helperPid(w);
    const speakerPid = sp.proc(w).pid;
    if (!helperPid) throw new Error(`no helper PID for ${w}`);
    const h0 = cpu(helperPid);
    const s0 = cpu(speakerPid);
    const tIdle = Date.now();
    await sleep(IDLE_MS);
    const h1 = cpu(helperPid);
    const s1 = cpu(speakerPid);
    const idleS = (Date.now() - tIdle) / 1000;
    const tick = 10; // ms per clock tick: USER_HZ is 100 on Linux (getconf CLK_TCK)

    // ------------------------------------------------------------------ report
    const rows: string[][] = [];
    const row = (what: string, n: string, p50: string, p99: string, max: string, note = '') =>
      rows.push([what, n, p50, p99, max, note]);
    row(
      'failover IPv4: kill -> client entry',
      `${fail4.length}/${TRIALS}`,
      `${f1(percentile(fail4, 50))} ms`,
      `${f1(percentile(fail4, 99))} ms`,
      `${f1(Math.max(...fail4))} ms`,
      `min ${f1(Math.min(...fail4))} ms`,
    );
    row(
      'failover IPv6: kill -> client entry',
      `${fail6.length}/${TRIALS}`,
      `${f1(percentile(fail6, 50))} ms`,
      `${f1(percentile(fail6, 99))} ms`,
      `${f1(Math.max(...fail6))} ms`,
      `min ${f1(Math.min(...fail6))} ms`,
    );
    row(
      'failback: restart -> entries back (v4+v6)',
      `${back.length}/${TRIALS}`,
      `${f1(percentile(back, 50))} ms`,
      `${f1(percentile(back, 99))} ms`,
      `${f1(Math.max(...back))} ms`,
      'includes node start-up + hold-down',
    );
    const hp50 = percentile(helperUs, 50);
    const kp50 = percentile(kernelUs, 50);
    const hp99 = percentile(helperUs, 99);
    const kp99 = percentile(kernelUs, 99);
    row(
      'ARP reply, helper (Service IP)',
      `${helperUs.length}/${sentHelper}`,
      `${f1(hp50)} µs`,
      `${f1(hp99)} µs`,
      `${f1(Math.max(...helperUs))} µs`,
      `min ${f1(Math.min(...helperUs))} µs`,
    );
    row(
      'ARP reply, kernel (node address)',
      `${kernelUs.length}/${sentKernel}`,
      `${f1(kp50)} µs`,
      `${f1(kp99)} µs`,
      `${f1(Math.max(...kernelUs))} µs`,
      `min ${f1(Math.min(...kernelUs))} µs`,
    );
    row(
      'ratio helper / kernel',
      '',
      `${(hp50 / kp50).toFixed(2)}×`,
      `${(hp99 / kp99).toFixed(2)}×`,
      '',
      `target p50 ≤ 3×: ${hp50 / kp50 <= 3 ? 'met' : 'NOT met'}`,
    );
    row(
      `helper CPU at idle (${idleS.toFixed(1)} s)`,
      '',
      `${h1.ticks - h0.ticks} ticks`,
      '',
      '',
      `${(h1.ticks - h0.ticks) * tick} ms CPU, ${h1.vcsw - h0.vcsw} wake-ups (voluntary ctxt switches)`,
    );
    row(
      `speaker CPU at idle (${idleS.toFixed(1)} s)`,
      '',
      `${s1.ticks - s0.ticks} ticks`,
      '',
      '',
      `${(s1.ticks - s0.ticks) * tick} ms CPU (membership probing, Node.js)`,
    );
    const head = ['measurement', 'n', 'p50', 'p99', 'max', 'note'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (r: string[]) => r.map((x, i) => x.padEnd(widths[i]!)).join(' | ');
    const load1 = loadavg();
    console.log('');
    console.log(
      `bench:l2 — 3 speakers, owner ${w}, runner-up ${next}; load average ${load0.map((x) => x.toFixed(2)).join(' ')} at start, ` +
        `${load1.map((x) => x.toFixed(2)).join(' ')} at the end (${TRIALS} trials, ${ARP_BLOCKS}×${ARP_PER_BLOCK} ARP requests per responder, ${ARP_INTERVAL_S} s apart)`,
    );
    console.log(fmt(head));
    console.log(widths.map((n) => '-'.repeat(n)).join('-|-'));
    for (const r of rows) console.log(fmt(r));
    if (errors.length) console.log(`\n${errors.length} trial(s) failed:\n${errors.join('\n')}`);
    return 0;
  } finally {
    await mon?.stop().catch(() => undefined);
    await sp?.cleanup().catch(() => undefined);
    await lab?.teardown();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exitCode = 1;
  },
);
