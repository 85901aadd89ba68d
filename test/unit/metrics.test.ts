/**
 * src/observability/metrics.ts: names, types and label names exactly as spec f.3, series
 * deletion, bigint saturation, histogram buckets, L2 helper deltas, and the FRR JSON parsers
 * against output recorded from a real FRR 8.4 (test/fixtures/observability/, recorded by
 * test/integration/frr-metrics.test.ts with IRONLB_RECORD_FRR_SAMPLES).
 */
import { readFileSync } from 'node:fs';
import { register as globalRegistry, Registry, type OpenMetricsContentType } from 'prom-client';
import { Allocator } from '../../src/allocator/allocator.js';
import { startFrrMetrics } from '../../src/cli/frr-reloader.js';
import {
  bigintToMetric,
  DEFAULT_BUCKETS,
  FrrJsonError,
  INT64_MAX,
  Metrics,
  parseBfdPeerCounters,
  parseBfdPeers,
  parseBgpNeighbors,
  type BgpNeighbor,
  type MetricGroup,
} from '../../src/observability/metrics.js';
import { silentLogger } from '../../src/util/log.js';
import { pools } from './helpers/alloc-fixtures.js';

const fixture = (name: string): string =>
  readFileSync(new URL(`../fixtures/observability/${name}`, import.meta.url), 'utf8');

// ---------------------------------------------------------------------------------------------
// A small parser of the Prometheus text format (enough for these tests).
// ---------------------------------------------------------------------------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Family {
  type: string;
  help: string;
  samples: Sample[];
}

function parseExposition(text: string): Map<string, Family> {
  const fams = new Map<string, Family>();
  const fam = (n: string) => {
    let f = fams.get(n);
    if (!f) fams.set(n, (f = { type: '', help: '', samples: [] }));
    return f;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (m) {
      if (m[1] === 'HELP') fam(m[2]!).help = m[3]!;
      else fam(m[2]!).type = m[3]!;
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const name = m[1]!;
    const base = fams.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    fam(base).samples.push({ name, labels, value: Number(m[3]) });
  }
  return fams;
}

async function scrape(m: Metrics): Promise<Map<string, Family>> {
  return parseExposition(await m.render());
}

function value(
  fams: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const f = fams.get(name) ?? fams.get(name.replace(/_(bucket|sum|count)$/, ''));
  const want = JSON.stringify(Object.entries(labels).sort());
  return f?.samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want)
    ?.value;
}

const newMetrics = (groups?: MetricGroup[]) =>
  new Metrics({ registry: new Registry(), ...(groups ? { groups } : {}) });

const counters = (a4: bigint, v4: bigint, a6: bigint, v6: bigint) => ({
  assignedIPv4: a4,
  availableIPv4: v4,
  assignedIPv6: a6,
  availableIPv6: v6,
});

// ---------------------------------------------------------------------------------------------
// Spec f.3 table
// ---------------------------------------------------------------------------------------------

const PEER = ['peer', 'vrf'];
const F3: Array<[string, 'gauge' | 'counter', string[]]> = [
  ['metallb_allocator_addresses_total', 'gauge', ['pool']],
  ['metallb_allocator_ipv4_addresses_total', 'gauge', ['pool']],
  ['metallb_allocator_ipv6_addresses_total', 'gauge', ['pool']],
  ['metallb_allocator_addresses_in_use_total', 'gauge', ['pool']],
  ['metallb_allocator_ipv4_addresses_in_use_total', 'gauge', ['pool']],
  ['metallb_allocator_ipv6_addresses_in_use_total', 'gauge', ['pool']],
  ['metallb_allocator_services_allocated_total', 'gauge', ['pool']],
  ['metallb_k8s_client_updates_total', 'counter', []],
  ['metallb_k8s_client_update_errors_total', 'counter', []],
  ['metallb_k8s_client_config_loaded_bool', 'gauge', []],
  ['metallb_k8s_client_config_stale_bool', 'gauge', []],
  ['metallb_speaker_announced', 'gauge', ['service', 'protocol', 'node', 'ip']],
  ['metallb_layer2_requests_received', 'counter', ['ip']],
  ['metallb_layer2_responses_sent', 'counter', ['ip']],
  ['metallb_layer2_gratuitous_sent', 'counter', ['ip']],
  ['metallb_bgp_session_up', 'gauge', PEER],
  ['metallb_bgp_announced_prefixes_total', 'gauge', PEER],
  ['metallb_bgp_updates_total', 'counter', PEER],
  ['metallb_bgp_updates_total_received', 'counter', PEER],
  ['metallb_bgp_opens_sent', 'counter', PEER],
  ['metallb_bgp_opens_received', 'counter', PEER],
  ['metallb_bgp_notifications_sent', 'counter', PEER],
  ['metallb_bgp_keepalives_sent', 'counter', PEER],
  ['metallb_bgp_keepalives_received', 'counter', PEER],
  ['metallb_bgp_route_refresh_sent', 'counter', PEER],
  ['metallb_bgp_total_sent', 'counter', PEER],
  ['metallb_bgp_total_received', 'counter', PEER],
  ['metallb_bfd_session_up', 'gauge', PEER],
  ['metallb_bfd_control_packet_input', 'counter', PEER],
  ['metallb_bfd_control_packet_output', 'counter', PEER],
  ['metallb_bfd_echo_packet_input', 'counter', PEER],
  ['metallb_bfd_echo_packet_output', 'counter', PEER],
  ['metallb_bfd_session_up_events', 'counter', PEER],
  ['metallb_bfd_session_down_events', 'counter', PEER],
  ['metallb_bfd_zebra_notifications', 'counter', PEER],
];
const OURS: Array<[string, string[]]> = [
  ['ironlb_service_ip_assign_seconds', []],
  ['ironlb_service_announce_seconds', ['protocol']],
  ['ironlb_frr_apply_seconds', ['result']],
];

/** A Metrics with at least one series in every family. */
function populated(): Metrics {
  const m = newMetrics();
  m.setPoolCounters('default', counters(2n, 8n, 1n, 255n), 3);
  m.recordUpdate(true);
  m.recordUpdate(false);
  m.setConfigLoaded(true);
  m.setConfigStale(false);
  m.setAnnounced({ service: 'ns/svc', protocol: 'layer2', node: 'n1', ip: '192.0.2.10' });
  m.recordLayer2Stats({
    uptimeMs: 10,
    ips: [{ ip: '192.0.2.10', iface: 'eth0', requests: 3, responses: 3, gratuitous: 2 }],
  });
  m.setBgpNeighbors(parseBgpNeighbors(fixture('bgp-neighbors-vrf-all.node-up.json')));
  m.setBfdPeers(
    parseBfdPeers(fixture('bfd-peers.node-up.json')),
    parseBfdPeerCounters(fixture('bfd-peers-counters.node-up.json')),
  );
  m.observeServiceIpAssign(0.3);
  m.observeServiceAnnounce('bgp', 3.2);
  m.observeFrrApply(0.07, 'success');
  return m;
}

describe('exposition: names, types and labels of spec f.3', () => {
  test.each(F3)('%s is a %s with labels %j', async (name, type, labels) => {
    const fams = await scrape(populated());
    const f = fams.get(name);
    expect(f).toBeDefined();
    expect(f!.type).toBe(type);
    expect(f!.help).not.toBe('');
    expect(f!.samples.length).toBeGreaterThan(0);
    for (const s of f!.samples) {
      expect(s.name).toBe(name); // no _total or other suffix added
      expect(Object.keys(s.labels).sort()).toEqual([...labels].sort());
    }
  });

  test.each(OURS)('%s is a histogram with labels %j (+le)', async (name, labels) => {
    const f = (await scrape(populated())).get(name)!;
    expect(f.type).toBe('histogram');
    const names = new Set(f.samples.map((s) => s.name));
    expect(names).toEqual(new Set([`${name}_bucket`, `${name}_sum`, `${name}_count`]));
    for (const s of f.samples) {
      const want = s.name.endsWith('_bucket') ? [...labels, 'le'] : labels;
      expect(Object.keys(s.labels).sort()).toEqual([...want].sort());
    }
  });

  test('nothing else is exported; metallb_bgp_pending_prefixes_total (native only) is not', async () => {
    const fams = await scrape(populated());
    expect([...fams.keys()].sort()).toEqual([...F3.map((x) => x[0]), ...OURS.map((x) => x[0])].sort());
  });

  test('help texts of the upstream-documented metrics', async () => {
    const fams = await scrape(populated());
    expect(fams.get('metallb_allocator_addresses_total')!.help).toBe(
      'Number of usable IP addresses, per pool',
    );
    expect(fams.get('metallb_allocator_addresses_in_use_total')!.help).toBe(
      'Number of IP addresses in use, per pool',
    );
    expect(fams.get('metallb_bgp_session_up')!.help).toBe('BGP session state (1 is up, 0 is down)');
    expect(fams.get('metallb_bgp_updates_total')!.help).toBe('Number of BGP UPDATE messages sent');
    expect(fams.get('metallb_bfd_session_up')!.help).toBe('BFD session state (1 is up, 0 is down)');
  });

  test('label-less metrics exist from the start with 0 (MetalLBConfigNotLoaded can fire)', async () => {
    const fams = await scrape(newMetrics());
    expect(value(fams, 'metallb_k8s_client_config_loaded_bool')).toBe(0);
    expect(value(fams, 'metallb_k8s_client_config_stale_bool')).toBe(0);
    expect(value(fams, 'metallb_k8s_client_updates_total')).toBe(0);
    expect(value(fams, 'metallb_k8s_client_update_errors_total')).toBe(0);
    // labelled families are announced (HELP/TYPE) without samples
    expect(fams.get('metallb_speaker_announced')).toMatchObject({ type: 'gauge', samples: [] });
  });

  test('k8s client counters and bools', async () => {
    const m = newMetrics(['k8s']);
    m.recordUpdate(true);
    m.recordUpdate(false);
    m.recordUpdate(true);
    m.setConfigLoaded(true);
    m.setConfigStale(true);
    let fams = await scrape(m);
    expect(value(fams, 'metallb_k8s_client_updates_total')).toBe(3);
    expect(value(fams, 'metallb_k8s_client_update_errors_total')).toBe(1);
    expect(value(fams, 'metallb_k8s_client_config_loaded_bool')).toBe(1);
    expect(value(fams, 'metallb_k8s_client_config_stale_bool')).toBe(1);
    m.setConfigStale(false);
    fams = await scrape(m);
    expect(value(fams, 'metallb_k8s_client_config_stale_bool')).toBe(0);
  });
});

describe('registry handling', () => {
  test('never touches the global default registry; two instances coexist', async () => {
    const before = globalRegistry.getMetricsAsArray().length;
    const a = populated();
    const b = populated();
    expect(globalRegistry.getMetricsAsArray().length).toBe(before);
    a.setConfigLoaded(false);
    expect(value(await scrape(a), 'metallb_k8s_client_config_loaded_bool')).toBe(0);
    expect(value(await scrape(b), 'metallb_k8s_client_config_loaded_bool')).toBe(1);
  });

  test('refuses an OpenMetrics registry (it would rename counters to <name>_total)', () => {
    const om = new Registry<OpenMetricsContentType>();
    om.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    expect(() => new Metrics({ registry: om as unknown as Registry })).toThrow(/Prometheus text format/);
  });

  test('groups select what is registered; other helpers still work', async () => {
    const m = newMetrics(['allocator']);
    m.setAnnounced({ service: 'a/b', protocol: 'bgp', node: 'n', ip: '192.0.2.1' });
    m.setPoolCounters('p', counters(0n, 1n, 0n, 0n));
    const names = [...(await scrape(m)).keys()];
    expect(names.every((n) => n.startsWith('metallb_allocator_'))).toBe(true);
    expect(names).toHaveLength(7);
    expect(m.announcedSeries()).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------------------------
// allocator gauges and bigint conversion
// ---------------------------------------------------------------------------------------------

describe('allocator gauges', () => {
  test('totals are assigned + available per family, summed over families', async () => {
    const m = newMetrics(['allocator']);
    m.setPoolCounters('dual', counters(3n, 7n, 2n, 254n));
    const f = await scrape(m);
    const l = { pool: 'dual' };
    expect(value(f, 'metallb_allocator_ipv4_addresses_total', l)).toBe(10);
    expect(value(f, 'metallb_allocator_ipv6_addresses_total', l)).toBe(256);
    expect(value(f, 'metallb_allocator_addresses_total', l)).toBe(266);
    expect(value(f, 'metallb_allocator_ipv4_addresses_in_use_total', l)).toBe(3);
    expect(value(f, 'metallb_allocator_ipv6_addresses_in_use_total', l)).toBe(2);
    expect(value(f, 'metallb_allocator_addresses_in_use_total', l)).toBe(5);
    // services_allocated is only set when given (upstream never sets it)
    expect(value(f, 'metallb_allocator_services_allocated_total', l)).toBeUndefined();
    m.setPoolServicesAllocated('dual', 4n);
    expect(value(await scrape(m), 'metallb_allocator_services_allocated_total', l)).toBe(4);
  });

  test('deletePool and syncPools delete every series of a pool', async () => {
    const m = newMetrics(['allocator']);
    m.setPoolCounters('a', counters(1n, 1n, 0n, 0n), 1);
    m.setPoolCounters('b', counters(0n, 4n, 0n, 0n), 0);
    m.setPoolCounters('c', counters(0n, 2n, 0n, 0n));
    m.deletePool('a');
    let f = await scrape(m);
    for (const [name] of F3.filter(([n]) => n.startsWith('metallb_allocator_'))) {
      expect(f.get(name)!.samples.map((s) => s.labels.pool)).not.toContain('a');
    }
    expect(value(f, 'metallb_allocator_addresses_total', { pool: 'b' })).toBe(4);
    m.syncPools([['c', counters(1n, 1n, 0n, 0n)]]);
    f = await scrape(m);
    for (const [name] of F3.filter(([n]) => n.startsWith('metallb_allocator_'))) {
      for (const s of f.get(name)!.samples) expect(s.labels.pool).toBe('c');
    }
    expect(value(f, 'metallb_allocator_addresses_in_use_total', { pool: 'c' })).toBe(1);
    expect(value(f, 'metallb_allocator_services_allocated_total', { pool: 'b' })).toBeUndefined();
  });

  test('fed from the real allocator: a /64 + /56 pool saturates at 2^63 − 1', async () => {
    const alloc = new Allocator();
    alloc.setPools(
      pools({
        big: { addresses: ['2001:db8:1::/64', '2001:db8:100::/56', '192.0.2.0/24'] },
        small: { addresses: ['198.51.100.0/30'] },
      }),
    );
    const m = newMetrics(['allocator']);
    m.syncPools(alloc.poolNames().map((n) => [n, alloc.counters(n)!] as const));
    const f = await scrape(m);
    expect(alloc.counters('big')!.availableIPv6).toBe(INT64_MAX);
    expect(value(f, 'metallb_allocator_ipv6_addresses_total', { pool: 'big' })).toBe(2 ** 63);
    expect(value(f, 'metallb_allocator_addresses_total', { pool: 'big' })).toBe(2 ** 63);
    expect(value(f, 'metallb_allocator_ipv4_addresses_total', { pool: 'big' })).toBe(256);
    expect(value(f, 'metallb_allocator_addresses_total', { pool: 'small' })).toBe(4);
    expect(value(f, 'metallb_allocator_addresses_in_use_total', { pool: 'small' })).toBe(0);
  });

  test('bigintToMetric: exact to 2^53, nearest double above, saturates at 2^63 − 1, clamps < 0', () => {
    expect(bigintToMetric(0n)).toBe(0);
    expect(bigintToMetric(256n)).toBe(256);
    expect(bigintToMetric(2n ** 53n)).toBe(2 ** 53);
    expect(bigintToMetric(2n ** 53n + 1n)).toBe(2 ** 53); // precision documented: rounds to even
    expect(bigintToMetric(INT64_MAX)).toBe(2 ** 63);
    expect(bigintToMetric(INT64_MAX * 4n)).toBe(2 ** 63);
    expect(bigintToMetric(-5n)).toBe(0);
    expect(Number.isFinite(bigintToMetric(1n << 200n))).toBe(true);
  });

  test('a /64 pool (allocator saturates at 2^63 − 1) plus IPv4 stays saturated, no overflow', async () => {
    const m = newMetrics(['allocator']);
    m.setPoolCounters('huge', counters(1n, 253n, 5n, INT64_MAX - 5n));
    const text = await m.render();
    const f = parseExposition(text);
    const l = { pool: 'huge' };
    expect(value(f, 'metallb_allocator_ipv6_addresses_total', l)).toBe(2 ** 63);
    expect(value(f, 'metallb_allocator_addresses_total', l)).toBe(2 ** 63); // not 2^63 + 254
    expect(value(f, 'metallb_allocator_ipv4_addresses_total', l)).toBe(254);
    expect(value(f, 'metallb_allocator_ipv6_addresses_in_use_total', l)).toBe(5);
    // The text is what Go prints for float64(MaxInt64), modulo notation; Prometheus parses both alike.
    expect(text).toContain('metallb_allocator_addresses_total{pool="huge"} 9223372036854776000');
    expect(Number('9223372036854776000')).toBe(Number('9.223372036854776e+18'));
  });
});

// ---------------------------------------------------------------------------------------------
// speaker_announced
// ---------------------------------------------------------------------------------------------

describe('metallb_speaker_announced', () => {
  const a = { service: 'ns/a', protocol: 'layer2' as const, node: 'n1', ip: '192.0.2.10' };
  const a6 = { ...a, ip: '2001:db8::10' };
  const b = { service: 'ns/b', protocol: 'bgp' as const, node: 'n1', ip: '198.51.100.7' };

  test('set → 1 with exactly service/protocol/node/ip; withdrawal deletes the series', async () => {
    const m = newMetrics(['speaker']);
    m.setAnnounced(a);
    m.setAnnounced(a6);
    m.setAnnounced(b);
    let f = await scrape(m);
    expect(f.get('metallb_speaker_announced')!.samples).toHaveLength(3);
    expect(value(f, 'metallb_speaker_announced', a)).toBe(1);
    expect(m.deleteAnnounced(a6)).toBe(true);
    expect(m.deleteAnnounced(a6)).toBe(false);
    f = await scrape(m);
    expect(value(f, 'metallb_speaker_announced', a6)).toBeUndefined();
    expect(f.get('metallb_speaker_announced')!.samples).toHaveLength(2);
  });

  test('withdrawService (all or one protocol) and setServiceAnnounced (exact set)', async () => {
    const m = newMetrics(['speaker']);
    m.setAnnounced(a);
    m.setAnnounced({ ...a, protocol: 'bgp' });
    m.setAnnounced(b);
    expect(m.withdrawService('ns/a', 'bgp')).toBe(1);
    expect(m.announcedSeries()).toEqual([a, b]);
    expect(m.withdrawService('ns/a')).toBe(1);
    expect(m.announcedSeries()).toEqual([b]);

    m.setServiceAnnounced('ns/b', 'bgp', 'n1', ['198.51.100.7', '198.51.100.8']);
    m.setServiceAnnounced('ns/b', 'bgp', 'n1', ['198.51.100.8']);
    const f = await scrape(m);
    expect(f.get('metallb_speaker_announced')!.samples.map((s) => s.labels)).toEqual([
      { service: 'ns/b', protocol: 'bgp', node: 'n1', ip: '198.51.100.8' },
    ]);
  });

  test('label values with quotes, backslashes and newlines are escaped', async () => {
    const m = newMetrics(['speaker']);
    const odd = { service: 'ns/"x"\\y\nz', protocol: 'bgp' as const, node: 'n', ip: '192.0.2.1' };
    m.setAnnounced(odd);
    expect(value(await scrape(m), 'metallb_speaker_announced', odd)).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
// layer2 counters from helper stats deltas
// ---------------------------------------------------------------------------------------------

describe('layer2 counters from L2 helper stats', () => {
  const e = (ip: string, iface: string, requests: number, responses: number, gratuitous: number) => ({
    ip,
    iface,
    requests,
    responses,
    gratuitous,
    foreign: 0,
  });
  const l2 = async (m: Metrics, ip: string) => {
    const f = await scrape(m);
    return [
      value(f, 'metallb_layer2_requests_received', { ip }),
      value(f, 'metallb_layer2_responses_sent', { ip }),
      value(f, 'metallb_layer2_gratuitous_sent', { ip }),
    ];
  };

  test('adds increases, sums interfaces, creates series at 0', async () => {
    const m = newMetrics(['layer2']);
    m.recordLayer2Stats({ uptimeMs: 100, ips: [e('192.0.2.10', 'eth0', 0, 0, 0)] });
    expect(await l2(m, '192.0.2.10')).toEqual([0, 0, 0]);
    m.recordLayer2Stats({
      uptimeMs: 200,
      ips: [
        e('192.0.2.10', 'eth0', 5, 4, 2),
        e('192.0.2.10', 'eth1', 1, 1, 2),
        e('2001:db8::a', 'eth0', 0, 0, 1),
      ],
    });
    expect(await l2(m, '192.0.2.10')).toEqual([6, 5, 4]);
    expect(await l2(m, '2001:db8::a')).toEqual([0, 0, 1]);
    m.recordLayer2Stats({
      uptimeMs: 300,
      ips: [
        e('192.0.2.10', 'eth0', 7, 6, 2),
        e('192.0.2.10', 'eth1', 1, 1, 4),
        e('2001:db8::a', 'eth0', 0, 0, 1),
      ],
    });
    expect(await l2(m, '192.0.2.10')).toEqual([8, 7, 6]);
    expect(await l2(m, '2001:db8::a')).toEqual([0, 0, 1]);
  });

  test('helper restart (uptime backwards) and a counter going down count in full', async () => {
    const m = newMetrics(['layer2']);
    m.recordLayer2Stats({ uptimeMs: 5000, ips: [e('192.0.2.10', 'eth0', 10, 10, 10)] });
    // restarted: counters 3/3/2, still larger than nothing, smaller than before
    m.recordLayer2Stats({ uptimeMs: 50, ips: [e('192.0.2.10', 'eth0', 12, 3, 2)] });
    expect(await l2(m, '192.0.2.10')).toEqual([22, 13, 12]);
    // no uptime, but a counter went down (IP re-added between polls)
    m.recordLayer2Stats({ ips: [e('192.0.2.10', 'eth0', 1, 3, 2)] });
    expect(await l2(m, '192.0.2.10')).toEqual([23, 13, 12]);
  });

  test('a pair that disappears is forgotten: its return counts from 0', async () => {
    const m = newMetrics(['layer2']);
    m.recordLayer2Stats({ uptimeMs: 1, ips: [e('192.0.2.10', 'eth0', 4, 4, 2)] });
    m.recordLayer2Stats({ uptimeMs: 2, ips: [] });
    m.recordLayer2Stats({ uptimeMs: 3, ips: [e('192.0.2.10', 'eth0', 5, 5, 2)] });
    expect(await l2(m, '192.0.2.10')).toEqual([9, 9, 4]);
    m.resetLayer2Baseline();
    m.recordLayer2Stats({ uptimeMs: 1, ips: [e('192.0.2.10', 'eth0', 1, 0, 0)] });
    expect(await l2(m, '192.0.2.10')).toEqual([10, 9, 4]);
    m.deleteLayer2Ip('192.0.2.10');
    expect(await l2(m, '192.0.2.10')).toEqual([undefined, undefined, undefined]);
  });
});

// ---------------------------------------------------------------------------------------------
// FRR parsers (recorded FRR 8.4 output) and the bgp/bfd series
// ---------------------------------------------------------------------------------------------

describe('parseBgpNeighbors (FRR 8.4 `show bgp vrf all neighbors json`)', () => {
  test('established neighbour: state, port, prefixes over both families, message stats', () => {
    const ns = parseBgpNeighbors(fixture('bgp-neighbors-vrf-all.node-up.json'));
    expect(ns).toHaveLength(1);
    const n = ns[0]!;
    expect(n).toMatchObject({
      vrf: 'default',
      neighbor: '192.0.2.1',
      port: 179,
      state: 'Established',
      established: true,
      localAs: 64510,
      remoteAs: 64500,
      remoteRouterId: '192.0.2.1',
      prefixesSent: 3, // ipv4Unicast 2 + ipv6Unicast 1
      prefixesAccepted: 0,
    });
    const raw = JSON.parse(fixture('bgp-neighbors-vrf-all.node-up.json')).default['192.0.2.1'].messageStats;
    expect(n.messages).toEqual({
      opensSent: raw.opensSent,
      opensReceived: raw.opensRecv,
      notificationsSent: raw.notificationsSent,
      notificationsReceived: raw.notificationsRecv,
      updatesSent: raw.updatesSent,
      updatesReceived: raw.updatesRecv,
      keepalivesSent: raw.keepalivesSent,
      keepalivesReceived: raw.keepalivesRecv,
      routeRefreshSent: raw.routeRefreshSent,
      routeRefreshReceived: raw.routeRefreshRecv,
      totalSent: raw.totalSent,
      totalReceived: raw.totalRecv,
    });
    expect(n.messages.opensSent).toBeGreaterThan(0);
  });

  test('single-VRF output (no VRF level) parses the same, VRF from the option', () => {
    const text = fixture('bgp-neighbors-vrf-default.node-up.json');
    const strip = (n: BgpNeighbor) => ({ ...n, messages: undefined });
    const all = parseBgpNeighbors(fixture('bgp-neighbors-vrf-all.node-up.json'));
    expect(parseBgpNeighbors(text).map(strip)).toEqual(all.map(strip));
    expect(parseBgpNeighbors(text, { vrf: 'red' })[0]!.vrf).toBe('red');
  });

  test('session down: FRR 8.4 reports portForeign -1, no sentPrefixCounter', () => {
    const [n] = parseBgpNeighbors(fixture('bgp-neighbors-vrf-all.node-down.json'));
    expect(n).toMatchObject({ state: 'Active', established: false, port: -1, prefixesSent: 0 });
    expect(n!.messages.notificationsSent).toBeGreaterThan(0);
  });

  test('passive side: portForeign is the initiator source port; accepted prefixes summed', () => {
    const [n] = parseBgpNeighbors(fixture('bgp-neighbors-vrf-all.router-up.json'));
    expect(n).toMatchObject({ neighbor: '192.0.2.11', established: true, prefixesAccepted: 3 });
    expect(n!.port).toBeGreaterThan(1023);
  });

  test('several VRFs, sorted by VRF then neighbour; unnumbered neighbour keys kept', () => {
    const up = JSON.parse(fixture('bgp-neighbors-vrf-all.node-up.json'));
    const nb = up.default['192.0.2.1'];
    const data = {
      red: { vrfId: 7, vrfName: 'red', eth1: { ...nb, bgpState: 'Connect' }, '2001:db8::1': nb },
      default: up.default,
    };
    const ns = parseBgpNeighbors(JSON.stringify(data));
    expect(ns.map((n) => [n.vrf, n.neighbor, n.established])).toEqual([
      ['default', '192.0.2.1', true],
      ['red', '2001:db8::1', true],
      ['red', 'eth1', false],
    ]);
  });

  test('empty output, missing fields, bad input', () => {
    expect(parseBgpNeighbors('')).toEqual([]);
    expect(parseBgpNeighbors('{}')).toEqual([]);
    expect(parseBgpNeighbors({ default: { vrfId: 0, vrfName: 'default' } })).toEqual([]);
    const [bare] = parseBgpNeighbors({ '192.0.2.9': { bgpState: 'Idle' } });
    expect(bare).toMatchObject({ vrf: 'default', port: 0, established: false, prefixesSent: 0 });
    expect(bare!.messages.totalSent).toBe(0);
    expect(() => parseBgpNeighbors('% BGP instance not found')).toThrow(FrrJsonError);
    expect(() => parseBgpNeighbors('[]')).toThrow(FrrJsonError);
  });
});

describe('parseBfdPeers / parseBfdPeerCounters (FRR 8.4)', () => {
  test('up and down peers', () => {
    expect(parseBfdPeers(fixture('bfd-peers.node-up.json'))).toEqual([
      expect.objectContaining({
        vrf: 'default',
        peer: '192.0.2.1',
        local: '192.0.2.11',
        status: 'up',
        up: true,
      }),
    ]);
    expect(parseBfdPeers(fixture('bfd-peers.node-down.json'))[0]).toMatchObject({
      status: 'down',
      up: false,
    });
  });

  test('counters', () => {
    const raw = JSON.parse(fixture('bfd-peers-counters.node-up.json'))[0];
    expect(parseBfdPeerCounters(fixture('bfd-peers-counters.node-up.json'))).toEqual([
      {
        vrf: 'default',
        peer: '192.0.2.1',
        local: '192.0.2.11',
        interface: raw.interface,
        multihop: false,
        controlPacketInput: raw['control-packet-input'],
        controlPacketOutput: raw['control-packet-output'],
        echoPacketInput: 0,
        echoPacketOutput: 0,
        sessionUpEvents: raw['session-up'],
        sessionDownEvents: raw['session-down'],
        zebraNotifications: raw['zebra-notifications'],
      },
    ]);
  });

  test('empty output, bad input', () => {
    expect(parseBfdPeers('')).toEqual([]);
    expect(parseBfdPeers('[]')).toEqual([]);
    expect(() => parseBfdPeers('{}')).toThrow(FrrJsonError);
    expect(() => parseBfdPeerCounters('not json')).toThrow(FrrJsonError);
  });
});

describe('metallb_bgp_* and metallb_bfd_* series', () => {
  test('from the recorded established session', async () => {
    const m = newMetrics(['bgp']);
    const [n] = parseBgpNeighbors(fixture('bgp-neighbors-vrf-all.node-up.json'));
    m.setBgpNeighbors([n!]);
    const f = await scrape(m);
    const l = { peer: '192.0.2.1:179', vrf: 'default' };
    expect(value(f, 'metallb_bgp_session_up', l)).toBe(1);
    expect(value(f, 'metallb_bgp_announced_prefixes_total', l)).toBe(3);
    expect(value(f, 'metallb_bgp_updates_total', l)).toBe(n!.messages.updatesSent);
    expect(value(f, 'metallb_bgp_updates_total_received', l)).toBe(n!.messages.updatesReceived);
    expect(value(f, 'metallb_bgp_opens_sent', l)).toBe(n!.messages.opensSent);
    expect(value(f, 'metallb_bgp_opens_received', l)).toBe(n!.messages.opensReceived);
    expect(value(f, 'metallb_bgp_notifications_sent', l)).toBe(n!.messages.notificationsSent);
    expect(value(f, 'metallb_bgp_keepalives_sent', l)).toBe(n!.messages.keepalivesSent);
    expect(value(f, 'metallb_bgp_keepalives_received', l)).toBe(n!.messages.keepalivesReceived);
    expect(value(f, 'metallb_bgp_route_refresh_sent', l)).toBe(0);
    expect(value(f, 'metallb_bgp_total_sent', l)).toBe(n!.messages.totalSent);
    expect(value(f, 'metallb_bgp_total_received', l)).toBe(n!.messages.totalReceived);
  });

  test('each snapshot replaces the previous: gone peers and old port labels disappear', async () => {
    const m = newMetrics(['bgp']);
    m.setBgpNeighbors(parseBgpNeighbors(fixture('bgp-neighbors-vrf-all.node-up.json')));
    m.setBgpNeighbors(parseBgpNeighbors(fixture('bgp-neighbors-vrf-all.node-down.json')));
    let f = await scrape(m);
    expect(f.get('metallb_bgp_session_up')!.samples).toEqual([
      { name: 'metallb_bgp_session_up', labels: { peer: '192.0.2.1:-1', vrf: 'default' }, value: 0 },
    ]);
    expect(f.get('metallb_bgp_opens_sent')!.samples).toHaveLength(1);
    // A stable label on request (e.g. the BGPPeer's configured port).
    m.setBgpNeighbors(parseBgpNeighbors(fixture('bgp-neighbors-vrf-all.node-down.json')), {
      peerPort: () => 179,
    });
    f = await scrape(m);
    expect(value(f, 'metallb_bgp_session_up', { peer: '192.0.2.1:179', vrf: 'default' })).toBe(0);
    m.setBgpNeighbors([]);
    f = await scrape(m);
    for (const [name] of F3.filter(([x]) => x.startsWith('metallb_bgp_'))) {
      expect(f.get(name)!.samples).toEqual([]);
    }
  });

  test('bfd: session_up per bare peer IP, counters, duplicates merged, counters optional', async () => {
    const m = newMetrics(['bfd']);
    const peers = parseBfdPeers(fixture('bfd-peers.node-up.json'));
    const cs = parseBfdPeerCounters(fixture('bfd-peers-counters.node-up.json'));
    m.setBfdPeers(peers, cs);
    let f = await scrape(m);
    const l = { peer: '192.0.2.1', vrf: 'default' };
    expect(value(f, 'metallb_bfd_session_up', l)).toBe(1);
    expect(value(f, 'metallb_bfd_control_packet_input', l)).toBe(cs[0]!.controlPacketInput);
    expect(value(f, 'metallb_bfd_control_packet_output', l)).toBe(cs[0]!.controlPacketOutput);
    expect(value(f, 'metallb_bfd_session_up_events', l)).toBe(cs[0]!.sessionUpEvents);
    expect(value(f, 'metallb_bfd_session_down_events', l)).toBe(cs[0]!.sessionDownEvents);
    expect(value(f, 'metallb_bfd_zebra_notifications', l)).toBe(cs[0]!.zebraNotifications);
    expect(value(f, 'metallb_bfd_echo_packet_output', l)).toBe(0);

    const multihop = { ...peers[0]!, multihop: true, up: false, status: 'down' };
    m.setBfdPeers([peers[0]!, multihop], [cs[0]!, { ...cs[0]!, multihop: true }]);
    f = await scrape(m);
    expect(f.get('metallb_bfd_session_up')!.samples).toHaveLength(1);
    expect(value(f, 'metallb_bfd_session_up', l)).toBe(0);
    expect(value(f, 'metallb_bfd_control_packet_input', l)).toBe(2 * cs[0]!.controlPacketInput);

    m.setBfdPeers(parseBfdPeers(fixture('bfd-peers.node-down.json')));
    f = await scrape(m);
    expect(value(f, 'metallb_bfd_session_up', l)).toBe(0);
    expect(f.get('metallb_bfd_control_packet_input')!.samples).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// histograms
// ---------------------------------------------------------------------------------------------

describe('ironlb histograms', () => {
  const buckets = (f: Map<string, Family>, name: string, labels: Record<string, string> = {}) =>
    f
      .get(name)!
      .samples.filter(
        (s) => s.name === `${name}_bucket` && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
      )
      .map((s) => [s.labels.le, s.value]);

  test('default buckets and counts', async () => {
    const m = newMetrics(['ironlb']);
    for (const s of [0.04, 0.3, 0.3, 1.5, 400]) m.observeServiceIpAssign(s);
    const f = await scrape(m);
    const les = [...DEFAULT_BUCKETS.ipAssign.map(String), '+Inf'];
    expect(buckets(f, 'ironlb_service_ip_assign_seconds').map((b) => b[0])).toEqual(les);
    const at = (le: string) => buckets(f, 'ironlb_service_ip_assign_seconds').find((b) => b[0] === le)![1];
    expect(at('0.05')).toBe(1);
    expect(at('0.25')).toBe(1);
    expect(at('0.5')).toBe(3);
    expect(at('2')).toBe(4);
    expect(at('300')).toBe(4);
    expect(at('+Inf')).toBe(5);
    expect(value(f, 'ironlb_service_ip_assign_seconds_count')).toBe(5);
    expect(value(f, 'ironlb_service_ip_assign_seconds_sum')).toBeCloseTo(402.14, 6);
  });

  test('announce by protocol; negative clamps to 0; NaN/Infinity ignored', async () => {
    const m = newMetrics(['ironlb']);
    m.observeServiceAnnounce('layer2', 0.004);
    m.observeServiceAnnounce('bgp', 3.4);
    m.observeServiceAnnounce('bgp', -1);
    m.observeServiceAnnounce('bgp', Number.NaN);
    m.observeServiceIpAssign(Number.POSITIVE_INFINITY);
    const f = await scrape(m);
    expect(buckets(f, 'ironlb_service_announce_seconds', { protocol: 'layer2' })[0]).toEqual(['0.01', 1]);
    const bgp = buckets(f, 'ironlb_service_announce_seconds', { protocol: 'bgp' });
    expect(bgp.find((b) => b[0] === '0.01')![1]).toBe(1); // the clamped -1
    expect(bgp.find((b) => b[0] === '3')![1]).toBe(1);
    expect(bgp.find((b) => b[0] === '4')![1]).toBe(2);
    expect(value(f, 'ironlb_service_announce_seconds_count', { protocol: 'bgp' })).toBe(2);
    expect(value(f, 'ironlb_service_ip_assign_seconds_count')).toBe(0);
  });

  test('custom buckets; timeFrrApply labels success and failure', async () => {
    const m = new Metrics({ registry: new Registry(), groups: ['ironlb'], buckets: { frrApply: [0.5, 1] } });
    await expect(m.timeFrrApply(() => Promise.resolve('ok'))).resolves.toBe('ok');
    await expect(m.timeFrrApply(() => Promise.reject(new Error('vtysh failed')))).rejects.toThrow(
      'vtysh failed',
    );
    m.observeFrrApply(0.7, 'success');
    const f = await scrape(m);
    expect(buckets(f, 'ironlb_frr_apply_seconds', { result: 'success' })).toEqual([
      ['0.5', 1],
      ['1', 2],
      ['+Inf', 2],
    ]);
    expect(buckets(f, 'ironlb_frr_apply_seconds', { result: 'failure' })).toEqual([
      ['0.5', 1],
      ['1', 1],
      ['+Inf', 1],
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// scrape-time collectors
// ---------------------------------------------------------------------------------------------

describe('collectors', () => {
  test('run before each render; a failing or slow one is reported and skipped', async () => {
    const errors: string[] = [];
    const m = new Metrics({
      registry: new Registry(),
      groups: ['bgp'],
      collectorTimeoutMs: 50,
      onCollectorError: (name, e) => errors.push(`${name}: ${e instanceof Error ? e.message : String(e)}`),
    });
    let runs = 0;
    m.addCollector('frr', () => {
      runs++;
      m.setBgpNeighbors(parseBgpNeighbors(fixture('bgp-neighbors-vrf-all.node-up.json')));
    });
    const removeBad = m.addCollector('bad', () => {
      throw new Error('vtysh: connection refused');
    });
    m.addCollector('slow', () => new Promise<void>((r) => setTimeout(r, 1000).unref()));
    expect(() => m.addCollector('frr', () => undefined)).toThrow(/already/);

    const f = parseExposition(await m.render());
    expect(runs).toBe(1);
    expect(value(f, 'metallb_bgp_session_up', { peer: '192.0.2.1:179', vrf: 'default' })).toBe(1);
    expect(errors.sort()).toEqual([
      'bad: vtysh: connection refused',
      'slow: collector slow timed out after 50 ms',
    ]);

    removeBad();
    errors.length = 0;
    await m.render();
    expect(runs).toBe(2);
    expect(errors).toEqual(['slow: collector slow timed out after 50 ms']);
  });
});

describe('ironlb frr-reloader --metrics-port: FRR metrics sidecar', () => {
  const serve = async (daemons: string, bfd: 'up' | 'not running') => {
    const calls: string[] = [];
    const exec = {
      show: (cmds: readonly string[]) => {
        const c = cmds[0]!;
        calls.push(c);
        if (c === 'show daemons') return Promise.resolve(` ${daemons}\n`);
        if (c === 'show bgp vrf all neighbors json')
          return Promise.resolve(fixture('bgp-neighbors-vrf-all.node-up.json'));
        if (bfd === 'not running')
          return Promise.reject(new Error('vtysh show bfd peers json: bfdd is not running'));
        if (c === 'show bfd peers json') return Promise.resolve(fixture('bfd-peers.node-up.json'));
        return Promise.resolve(fixture('bfd-peers-counters.node-up.json'));
      },
    };
    const srv = await startFrrMetrics({
      host: '127.0.0.1',
      port: 0,
      exec,
      requiredDaemons: ['zebra', 'bgpd', 'staticd', 'bfdd'],
      log: silentLogger,
    });
    return { srv, calls };
  };

  test('metrics read from FRR at scrape time; /livez fails while a required daemon is missing', async () => {
    const { srv, calls } = await serve('zebra bgpd staticd bfdd', 'up');
    try {
      const m = await (await fetch(`${srv.url}/metrics`)).text();
      expect(m).toMatch(/^metallb_bgp_session_up\{peer="[^"]+",vrf="default"\} 1$/m);
      expect(m).toMatch(/^metallb_bfd_session_up\{peer="[^"]+",vrf="default"\} 1$/m);
      expect(m).not.toMatch(/metallb_allocator_|metallb_speaker_/); // only the FRR groups
      expect(calls).toEqual([
        'show bgp vrf all neighbors json',
        'show bfd peers json',
        'show bfd peers counters json',
      ]);
      expect((await fetch(`${srv.url}/livez`)).status).toBe(200);
    } finally {
      await srv.stop();
    }
    const down = await serve('zebra bgpd staticd', 'not running');
    try {
      const live = await fetch(`${down.srv.url}/livez`);
      expect(live.status).toBe(503);
      expect(await live.text()).toContain('not running: bfdd');
      const m = await (await fetch(`${down.srv.url}/metrics`)).text();
      expect(m).toMatch(/^metallb_bgp_session_up\{/m);
      expect(m).not.toMatch(/^metallb_bfd_session_up\{/m); // no BFD series without bfdd
    } finally {
      await down.srv.stop();
    }
  });
});
