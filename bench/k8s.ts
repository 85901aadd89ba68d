/**
 * `npm run bench:k8s` — how fast `ironlb controller` gives a burst of new Services their IPs on a
 * real kube-apiserver (test/k8s/controlplane.ts: etcd + kube-apiserver on 127.0.0.1, no root
 * needed, no network namespaces).
 *
 * The controller runs as its own process (`ironlb controller`, Lease leader election on). After
 * one warm-up Service has its IP, N Services (default 1 000, IRONLB_K8S_BENCH_SERVICES) of type
 * LoadBalancer without a selector are POSTed, C at a time (default 32, IRONLB_K8S_BENCH_CONCURRENCY),
 * half IPv4, half IPv6 (one pool: the three IPv4 documentation /24s hold only 768 addresses, so it
 * also has 2001:db8:b::/112). A KubeClient informer watches the Services; a Service's latency is
 * the time from just before its POST was sent (creationTimestamp has 1 s resolution) to the watch
 * event that first shows an IP in its status. Printed: p50/p90/p99/max, the create phase, the total
 * time, and the RSS of the controller (VmRSS/VmHWM of its PID) and of the apiserver. No assertions.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { KubeClient, RESOURCES, type KObject } from '../src/k8s/client.js';
import { Informer } from '../src/k8s/informer.js';
import { silentLogger } from '../src/util/log.js';
import { ClusterProcess, ingressIPs, type Svc } from '../test/e2e/cluster.js';
import { ControlPlane, k8sUnavailableReason } from '../test/k8s/controlplane.js';
import { IRONLB_BIN, percentile } from '../test/lab/l2-speakers.js';
import { waitFor } from '../test/lab/wait.js';

const N = Number(process.env.IRONLB_K8S_BENCH_SERVICES ?? 1000);
const CONCURRENCY = Number(process.env.IRONLB_K8S_BENCH_CONCURRENCY ?? 32);
const NS = 'bench';
const METALLB_NS = 'metallb-system';
const cpus = availableParallelism();
const POOL = ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24', '2001:db8:b::/112'];

/** VmRSS / VmHWM of a PID in MiB (null when gone). */
function memory(pid: number | null): { rss: number; hwm: number } | null {
  if (!pid) return null;
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
    return { rss: kib('VmRSS') / 1024, hwm: kib('VmHWM') / 1024 };
  } catch {
    return null;
  }
}

/** utime+stime of a PID in seconds (USER_HZ 100). */
function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

function service(name: string, ns: string, family: 'IPv4' | 'IPv6'): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns },
    spec: {
      type: 'LoadBalancer',
      ipFamilyPolicy: 'SingleStack',
      ipFamilies: [family],
      ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    },
  };
}

const ms = (x: number) => (Number.isFinite(x) ? `${x.toFixed(0)} ms` : '-');
const mib = (x: number | undefined) => (x !== undefined && Number.isFinite(x) ? `${x.toFixed(1)} MiB` : '-');

function table(rows: Array<[string, string]>): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

async function main(): Promise<number> {
  const why = k8sUnavailableReason();
  if (why) {
    console.error(`bench:k8s: cannot run: ${why}`);
    return 2;
  }
  console.log(`bench:k8s: ${N} Services, ${CONCURRENCY} POSTs in flight, one controller process`);
  const cp = await ControlPlane.start();
  let controller: ClusterProcess | undefined;
  let client: KubeClient | undefined;
  let informer: Informer<Svc> | undefined;
  try {
    client = await KubeClient.fromKubeConfig(cp.kubeconfigPath);
    for (const name of [METALLB_NS, NS, 'warmup'])
      await client.create(RESOURCES.namespaces, undefined, {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name },
      });
    await client.create(RESOURCES.ipAddressPools, METALLB_NS, {
      apiVersion: 'metallb.io/v1beta1',
      kind: 'IPAddressPool',
      metadata: { name: 'bench', namespace: METALLB_NS },
      spec: { addresses: POOL },
    });
    controller = await ClusterProcess.start('controller', [
      process.execPath,
      IRONLB_BIN,
      'controller',
      '--kubeconfig',
      cp.kubeconfigPath,
      '--log-level',
      'info',
      '--port',
      '0',
      '--health-probe-port',
      '0',
      '--webhook-mode',
      'disabled',
    ]);
    await controller.waitMsg('became leader', { timeoutMs: 60_000 });

    // Warm-up: the first allocation includes the controller's start-up.
    const warm = await KubeClient.fromKubeConfig(cp.kubeconfigPath);
    const t0w = performance.now();
    await warm.create(RESOURCES.services, 'warmup', service('warmup', 'warmup', 'IPv4'));
    await waitFor(
      async () => ingressIPs(await warm.get<Svc>(RESOURCES.services, 'warmup', 'warmup')).length > 0,
      { timeoutMs: 60_000, intervalMs: 20, what: 'the warm-up Service gets an IP' },
    );
    const warmMs = performance.now() - t0w;
    warm.close();

    const sent = new Array<number>(N).fill(NaN);
    const created = new Array<number>(N).fill(NaN);
    const seen = new Array<number>(N).fill(NaN);
    const index = (name: string) => (name.startsWith('svc-') ? Number(name.slice(4)) : -1);
    let done = 0;
    informer = new Informer<Svc>(client, RESOURCES.services, { log: silentLogger, namespace: NS });
    informer.onEvent((type, obj) => {
      if (type === 'delete') return;
      const i = index(obj.metadata.name);
      if (i < 0 || !Number.isNaN(seen[i]!) || ingressIPs(obj).length === 0) return;
      seen[i] = performance.now();
      done++;
    });
    await informer.start();

    const rssBefore = memory(controller.pid);
    const cpuBefore = cpuSeconds(controller.pid);
    const errors: string[] = [];
    let next = 0;
    const tStart = performance.now();
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= N) return;
        const name = `svc-${String(i).padStart(4, '0')}`;
        sent[i] = performance.now();
        try {
          await client!.create(RESOURCES.services, NS, service(name, NS, i % 2 === 0 ? 'IPv4' : 'IPv6'));
          created[i] = performance.now();
        } catch (e) {
          errors.push(`${name}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, () => worker()));
    const tCreated = performance.now();
    await waitFor(() => done >= N - errors.length, {
      timeoutMs: 600_000,
      intervalMs: 50,
      what: `all ${N} Services have an IP (${done} so far)`,
    }).catch((e: unknown) => console.error(`bench:k8s: ${e instanceof Error ? e.message : String(e)}`));
    const tEnd = performance.now();
    const cpuAfter = cpuSeconds(controller.pid);
    const rssAfter = memory(controller.pid);
    const apiserverRss = memory(cp.apiserverPid);

    const lat = seen.map((s, i) => s - sent[i]!).filter((x) => Number.isFinite(x));
    const afterCreate = seen.map((s, i) => s - created[i]!).filter((x) => Number.isFinite(x));
    const v4 = seen.filter((s, i) => i % 2 === 0 && Number.isFinite(s)).length;
    const pools = await client.get<KObject & { status?: Record<string, number> }>(
      RESOURCES.ipAddressPools,
      METALLB_NS,
      'bench',
    );
    const total = tEnd - tStart;
    console.log('');
    console.log(
      table([
        ['Services', `${N} (${v4} IPv4 + ${lat.length - v4} IPv6 got an IP; ${errors.length} POST errors)`],
        ['warm-up Service: create -> IP', ms(warmMs)],
        ['create phase (all POSTs answered)', ms(tCreated - tStart)],
        [
          'total (first POST -> last IP seen)',
          `${ms(total)} (${((lat.length / total) * 1000).toFixed(0)} Services/s)`,
        ],
        ['latency POST sent -> IP  p50', ms(percentile(lat, 50))],
        ['                         p90', ms(percentile(lat, 90))],
        ['                         p99', ms(percentile(lat, 99))],
        ['                         max', ms(Math.max(...lat))],
        ['latency POST answered -> IP p50', ms(percentile(afterCreate, 50))],
        ['                            p99', ms(percentile(afterCreate, 99))],
        ['controller CPU during the burst', `${(cpuAfter - cpuBefore).toFixed(2)} s`],
        ['controller RSS before / after', `${mib(rssBefore?.rss)} / ${mib(rssAfter?.rss)}`],
        ['controller peak RSS (VmHWM)', mib(rssAfter?.hwm)],
        ['kube-apiserver RSS at the end', mib(apiserverRss?.rss)],
        ['load average (1 min) at the end', `${loadavg()[0]!.toFixed(2)} on ${cpus} CPUs`],
        [
          'pool status (assigned v4 / v6)',
          `${pools.status?.assignedIPv4 ?? '-'} / ${pools.status?.assignedIPv6 ?? '-'} (warm-up included)`,
        ],
      ]),
    );
    if (errors.length) console.log(`\nfirst POST errors:\n${errors.slice(0, 5).join('\n')}`);
    const warns = controller.lines.filter((l) => l.json && l.json.level !== 'info').length;
    if (warns) console.log(`\ncontroller logged ${warns} warnings/errors; last:\n${controller.tail(5)}`);
    return 0;
  } finally {
    await informer?.stop();
    await controller?.stop();
    client?.close();
    await cp.stop();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`bench:k8s failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  },
);
