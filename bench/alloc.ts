/**
 * `npm run bench:alloc` — allocation cost as the number of Services grows.
 *
 * Scenarios: (a) one IPv4 /14 pool, (b) one IPv6 /64 pool, (c) 50 pools each pinned to one
 * namespace. Each size runs on a fresh allocator through the full per-Service convergence path
 * (AllocationCore.converge), so the figures include what the controller does per Service.
 * In-process only: no packet leaves this process.
 */
import { getHeapStatistics } from 'node:v8';
import { AllocationCore } from '../src/allocator/converge.js';
import type { ServiceInfo } from '../src/allocator/service.js';
import type { Pool } from '../src/config/model.js';
import { prefix } from '../src/ip/ip.js';

const SIZES = [1_000, 10_000, 100_000];

function pool(name: string, cidrs: string[], namespaces?: string[]): Pool {
  const p = cidrs.map(prefix);
  return {
    name,
    labels: {},
    entries: cidrs.map((t, i) => ({ text: t, cidrs: [p[i]!] })),
    cidrs: p,
    autoAssign: true,
    avoidBuggyIPs: false,
    ...(namespaces
      ? { serviceAllocation: { priority: 0, namespaces: new Set(namespaces), serviceSelectors: [] } }
      : {}),
    l2Advertisements: [],
    bgpAdvertisements: [],
  };
}

function service(i: number, family: 4 | 6, namespace: string): ServiceInfo {
  return {
    namespace,
    name: `svc-${i}`,
    labels: { app: `a${i % 7}` },
    annotations: {},
    type: 'LoadBalancer',
    clusterFamily: family,
    clusterIPCount: 1,
    ipFamilyPolicy: 'SingleStack',
    primaryFamily: family,
    externalTrafficPolicy: 'Cluster',
    ports: [{ protocol: 'TCP', port: 80 }],
    ingressIPs: [],
  };
}

interface Scenario {
  name: string;
  pools: () => Map<string, Pool>;
  services: (n: number) => ServiceInfo[];
}

const scenarios: Scenario[] = [
  {
    name: 'IPv4 /14, one pool',
    pools: () => new Map([['v4', pool('v4', ['100.64.0.0/14'])]]),
    services: (n) => Array.from({ length: n }, (_, i) => service(i, 4, 'default')),
  },
  {
    name: 'IPv6 /64, one pool',
    pools: () => new Map([['v6', pool('v6', ['2001:db8:1::/64'])]]),
    services: (n) => Array.from({ length: n }, (_, i) => service(i, 6, 'default')),
  },
  {
    name: '50 pools by namespace',
    pools: () => {
      const m = new Map<string, Pool>();
      for (let k = 0; k < 50; k++) {
        const name = `pool-${String(k).padStart(2, '0')}`;
        // 50 × /20 = 204 800 addresses inside 100.64.0.0/10.
        const base = (100 << 24) | (64 << 16) | (k << 12);
        const a = `${(base >>> 24) & 255}.${(base >>> 16) & 255}.${(base >>> 8) & 255}.0/20`;
        m.set(name, pool(name, [a], [`ns-${k}`]));
      }
      return m;
    },
    services: (n) => Array.from({ length: n }, (_, i) => service(i, 4, `ns-${i % 50}`)),
  },
];

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) g();
}

interface Row {
  scenario: string;
  n: number;
  totalMs: number;
  perOpUs: number;
  peakHeapMB: number;
  failed: number;
}

function run(s: Scenario, n: number): Row {
  const services = s.services(n);
  const core = new AllocationCore();
  core.setPools(s.pools());
  gc();
  const base = getHeapStatistics().used_heap_size;
  let peak = base;
  let failed = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < services.length; i++) {
    const out = core.converge(services[i]!);
    if (out.ips.length === 0) failed++;
    if ((i & 1023) === 0) peak = Math.max(peak, getHeapStatistics().used_heap_size);
  }
  const ns = Number(process.hrtime.bigint() - t0);
  peak = Math.max(peak, getHeapStatistics().used_heap_size);
  const leftover = core.allocator.checkInvariants();
  if (leftover.length) throw new Error(`allocator invariants broken: ${leftover[0]}`);
  return {
    scenario: s.name,
    n,
    totalMs: ns / 1e6,
    perOpUs: ns / 1e3 / n,
    peakHeapMB: (peak - base) / 2 ** 20,
    failed,
  };
}

function main(): void {
  // Warm-up so the JIT does not bill the first scenario.
  for (const s of scenarios) run(s, 2_000);
  const rows: Row[] = [];
  for (const s of scenarios) for (const n of SIZES) rows.push(run(s, n));
  const pad = (x: string, w: number) => x.padEnd(w);
  console.log(
    `${pad('scenario', 24)}${pad('services', 10)}${pad('total ms', 11)}${pad('µs/alloc', 10)}${pad('heap +MB', 10)}failed`,
  );
  for (const r of rows) {
    console.log(
      `${pad(r.scenario, 24)}${pad(String(r.n), 10)}${pad(r.totalMs.toFixed(1), 11)}${pad(r.perOpUs.toFixed(2), 10)}${pad(r.peakHeapMB.toFixed(1), 10)}${r.failed}`,
    );
  }
  console.log('');
  for (const s of scenarios) {
    const small = rows.find((r) => r.scenario === s.name && r.n === SIZES[0])!;
    const big = rows.find((r) => r.scenario === s.name && r.n === SIZES[SIZES.length - 1])!;
    const ratio = big.perOpUs / small.perOpUs;
    console.log(
      `${pad(s.name, 24)} per-op(100k)/per-op(1k) = ${ratio.toFixed(2)} (target <= 2)  total(100k) = ${(big.totalMs / 1000).toFixed(2)} s (target < 2 s)`,
    );
  }
  const v4 = rows.find((r) => r.scenario === scenarios[0]!.name && r.n === 100_000)!;
  const v6 = rows.find((r) => r.scenario === scenarios[1]!.name && r.n === 100_000)!;
  console.log(`IPv6 /64 vs IPv4 /14 per-op at 100k: ${(v6.perOpUs / v4.perOpUs).toFixed(2)}×`);
}

main();
