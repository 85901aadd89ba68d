/**
 * Prometheus metrics of the controller and the speaker (spec f.3), on an injected prom-client
 * Registry (never the global default one). Names, types, label names and help texts follow
 * upstream MetalLB so that existing dashboards and the upstream PrometheusRule alerts keep working;
 * the `ironlb_*` histograms are ours. See README.md for the list and where each value comes from.
 *
 * Everything here is synchronous and cheap; the one asynchronous part is `render()`, which first
 * runs the scrape-time collectors (e.g. "ask FRR for `show bgp vrf all neighbors json`").
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PoolCounters } from '../allocator/allocator.js';
import type { BfdPeer, BfdPeerCounters, BgpMessageStats, BgpNeighbor } from './frr-stats.js';

export {
  FrrJsonError,
  parseBfdPeerCounters,
  parseBfdPeers,
  parseBgpNeighbors,
  type BfdPeer,
  type BfdPeerCounters,
  type BgpMessageStats,
  type BgpNeighbor,
  type FrrParseOptions,
} from './frr-stats.js';

/** 2^63 − 1: the allocator saturates its counters here (as upstream's int64 counts do). */
export const INT64_MAX = (1n << 63n) - 1n;

/**
 * A bigint count as a metric value: clamped to [0, 2^63 − 1], then converted with Number(),
 * i.e. rounded to the nearest IEEE-754 double. Exact up to 2^53 (9 007 199 254 740 992); above
 * that the relative error is below 2^-53 and 2^63 − 1 itself becomes 2^63 = 9223372036854775808.
 * This is exactly what upstream's `float64(int64)` does, and Prometheus stores float64 anyway.
 */
export function bigintToMetric(x: bigint): number {
  const c = x < 0n ? 0n : x > INT64_MAX ? INT64_MAX : x;
  return Number(c);
}

const satAdd = (a: bigint, b: bigint): bigint => (a + b > INT64_MAX ? INT64_MAX : a + b);

/** Metric groups; a Metrics instance registers only the groups it is given (default: all). */
export type MetricGroup = 'allocator' | 'k8s' | 'speaker' | 'layer2' | 'bgp' | 'bfd' | 'ironlb';
export const ALL_METRIC_GROUPS: readonly MetricGroup[] = [
  'allocator',
  'k8s',
  'speaker',
  'layer2',
  'bgp',
  'bfd',
  'ironlb',
];

export type AnnounceProtocol = 'layer2' | 'bgp';

/** Labels of one `metallb_speaker_announced` series. */
export interface AnnouncedSeries {
  /** Service key `namespace/name`. */
  service: string;
  protocol: AnnounceProtocol;
  node: string;
  ip: string;
}

/** Cumulative per-(IP, interface) counters as the L2 helper reports them (`stats` event). */
export interface L2IpCounters {
  ip: string;
  iface: string;
  requests: number;
  responses: number;
  gratuitous: number;
}

/** One helper `stats` answer; src/l2/helper.ts `StatsEvent` fits. */
export interface L2StatsSnapshot {
  /** Helper uptime; when it goes backwards the helper restarted and its counters began anew. */
  uptimeMs?: number;
  ips: readonly L2IpCounters[];
}

export interface HistogramBuckets {
  ipAssign: number[];
  announce: number[];
  frrApply: number[];
}

/** Default buckets (seconds). */
export const DEFAULT_BUCKETS: Readonly<HistogramBuckets> = {
  // creationTimestamp has 1 s resolution; a Service may also wait for a pool to appear.
  ipAssign: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
  // layer2 is milliseconds; BGP includes the 3 s FRR debounce (Appendix C) and the reload.
  announce: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 7.5, 10, 15, 30, 60],
  frrApply: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
};

/** A scrape-time collector; it usually refreshes a snapshot (setBgpNeighbors, …). */
export type Collector = () => void | Promise<void>;

export interface MetricsOptions {
  /** Where the metrics are registered. Must use the Prometheus text format (not OpenMetrics). */
  registry: Registry;
  /** Groups to register (default: all). Helpers of other groups still work but are not exported. */
  groups?: readonly MetricGroup[];
  buckets?: Partial<HistogramBuckets>;
  /** Upper bound for each collector in render() (default 5000 ms). */
  collectorTimeoutMs?: number;
  /** Told about a collector that failed or timed out (the scrape goes on without it). */
  onCollectorError?: (name: string, err: unknown) => void;
}

type PoolLabel = 'pool';
type PeerLabel = 'peer' | 'vrf';

const BGP_COUNTERS: ReadonlyArray<[string, keyof BgpMessageStats, string]> = [
  ['metallb_bgp_updates_total', 'updatesSent', 'Number of BGP UPDATE messages sent'],
  ['metallb_bgp_updates_total_received', 'updatesReceived', 'Number of BGP UPDATE messages received'],
  ['metallb_bgp_opens_sent', 'opensSent', 'Number of BGP open messages sent'],
  ['metallb_bgp_opens_received', 'opensReceived', 'Number of BGP open messages received'],
  ['metallb_bgp_notifications_sent', 'notificationsSent', 'Number of BGP notification messages sent'],
  ['metallb_bgp_keepalives_sent', 'keepalivesSent', 'Number of BGP keepalive messages sent'],
  ['metallb_bgp_keepalives_received', 'keepalivesReceived', 'Number of BGP keepalive messages received'],
  ['metallb_bgp_route_refresh_sent', 'routeRefreshSent', 'Number of BGP route refresh messages sent'],
  ['metallb_bgp_total_sent', 'totalSent', 'Number of total BGP messages sent'],
  ['metallb_bgp_total_received', 'totalReceived', 'Number of total BGP messages received'],
];

type BfdCounterKey = Exclude<keyof BfdPeerCounters, 'vrf' | 'peer' | 'local' | 'interface' | 'multihop'>;

const BFD_COUNTERS: ReadonlyArray<[string, BfdCounterKey, string]> = [
  ['metallb_bfd_control_packet_input', 'controlPacketInput', 'Number of received BFD control packets'],
  ['metallb_bfd_control_packet_output', 'controlPacketOutput', 'Number of sent BFD control packets'],
  ['metallb_bfd_echo_packet_input', 'echoPacketInput', 'Number of received BFD echo packets'],
  ['metallb_bfd_echo_packet_output', 'echoPacketOutput', 'Number of sent BFD echo packets'],
  ['metallb_bfd_session_up_events', 'sessionUpEvents', 'Number of BFD session up events'],
  ['metallb_bfd_session_down_events', 'sessionDownEvents', 'Number of BFD session down events'],
  ['metallb_bfd_zebra_notifications', 'zebraNotifications', 'Number of BFD zebra notifications'],
];

/** Clamps a duration to ≥ 0; undefined for NaN/±Infinity (not observed). */
function seconds(s: number): number | undefined {
  if (!Number.isFinite(s)) return undefined;
  return s < 0 ? 0 : s;
}

export class Metrics {
  readonly registry: Registry;
  readonly groups: ReadonlySet<MetricGroup>;

  // allocator (controller)
  readonly addressesTotal: Gauge<PoolLabel>;
  readonly ipv4AddressesTotal: Gauge<PoolLabel>;
  readonly ipv6AddressesTotal: Gauge<PoolLabel>;
  readonly addressesInUse: Gauge<PoolLabel>;
  readonly ipv4AddressesInUse: Gauge<PoolLabel>;
  readonly ipv6AddressesInUse: Gauge<PoolLabel>;
  readonly servicesAllocated: Gauge<PoolLabel>;
  // k8s client (both)
  readonly k8sUpdates: Counter;
  readonly k8sUpdateErrors: Counter;
  readonly configLoaded: Gauge;
  readonly configStale: Gauge;
  // speaker
  readonly speakerAnnounced: Gauge<keyof AnnouncedSeries>;
  // layer2
  readonly l2RequestsReceived: Counter<'ip'>;
  readonly l2ResponsesSent: Counter<'ip'>;
  readonly l2GratuitousSent: Counter<'ip'>;
  // bgp (FRR)
  readonly bgpSessionUp: Gauge<PeerLabel>;
  readonly bgpAnnouncedPrefixes: Gauge<PeerLabel>;
  readonly bgpCounters: ReadonlyMap<keyof BgpMessageStats, Counter<PeerLabel>>;
  // bfd (FRR)
  readonly bfdSessionUp: Gauge<PeerLabel>;
  readonly bfdCounters: ReadonlyMap<BfdCounterKey, Counter<PeerLabel>>;
  // ours
  readonly ipAssignSeconds: Histogram;
  readonly announceSeconds: Histogram<'protocol'>;
  readonly frrApplySeconds: Histogram<'result'>;

  private readonly pools = new Set<string>();
  private readonly announced = new Map<string, AnnouncedSeries>();
  private readonly l2Prev = new Map<string, { requests: number; responses: number; gratuitous: number }>();
  private l2PrevUptime: number | undefined;
  private readonly collectors = new Map<string, Collector>();
  private readonly collectorTimeoutMs: number;
  private readonly onCollectorError: ((name: string, err: unknown) => void) | undefined;

  constructor(opts: MetricsOptions) {
    if (!(opts.registry instanceof Registry))
      throw new TypeError('Metrics: a prom-client Registry is required');
    if (opts.registry.contentType !== Registry.PROMETHEUS_CONTENT_TYPE) {
      // OpenMetrics would rename every counter to <name>_total and break the MetalLB names.
      throw new TypeError('Metrics: the registry must use the Prometheus text format');
    }
    this.registry = opts.registry;
    this.groups = new Set(opts.groups ?? ALL_METRIC_GROUPS);
    this.collectorTimeoutMs = opts.collectorTimeoutMs ?? 5000;
    this.onCollectorError = opts.onCollectorError;
    const buckets: HistogramBuckets = { ...DEFAULT_BUCKETS, ...opts.buckets };
    const reg = (g: MetricGroup): Registry[] => (this.groups.has(g) ? [this.registry] : []);

    const poolGauge = (name: string, help: string) =>
      new Gauge({ name, help, labelNames: ['pool'] as const, registers: reg('allocator') });
    this.addressesTotal = poolGauge(
      'metallb_allocator_addresses_total',
      'Number of usable IP addresses, per pool',
    );
    this.ipv4AddressesTotal = poolGauge(
      'metallb_allocator_ipv4_addresses_total',
      'Number of usable IPV4 addresses, per pool',
    );
    this.ipv6AddressesTotal = poolGauge(
      'metallb_allocator_ipv6_addresses_total',
      'Number of usable IPV6 addresses, per pool',
    );
    this.addressesInUse = poolGauge(
      'metallb_allocator_addresses_in_use_total',
      'Number of IP addresses in use, per pool',
    );
    this.ipv4AddressesInUse = poolGauge(
      'metallb_allocator_ipv4_addresses_in_use_total',
      'Number of IPV4 addresses in use, per pool',
    );
    this.ipv6AddressesInUse = poolGauge(
      'metallb_allocator_ipv6_addresses_in_use_total',
      'Number of IPV6 addresses in use, per pool',
    );
    this.servicesAllocated = poolGauge(
      'metallb_allocator_services_allocated_total',
      'Number of services allocated, per pool',
    );

    this.k8sUpdates = new Counter({
      name: 'metallb_k8s_client_updates_total',
      help: 'Number of k8s object updates that have been processed.',
      registers: reg('k8s'),
    });
    this.k8sUpdateErrors = new Counter({
      name: 'metallb_k8s_client_update_errors_total',
      help: 'Number of k8s object updates that failed for some reason.',
      registers: reg('k8s'),
    });
    this.configLoaded = new Gauge({
      name: 'metallb_k8s_client_config_loaded_bool',
      help: '1 if the MetalLB configuration was successfully loaded at least once.',
      registers: reg('k8s'),
    });
    this.configStale = new Gauge({
      name: 'metallb_k8s_client_config_stale_bool',
      help: '1 if running on a stale configuration, because the latest config failed to load.',
      registers: reg('k8s'),
    });

    this.speakerAnnounced = new Gauge({
      name: 'metallb_speaker_announced',
      help: 'Services being announced from this node. This is desired state, it does not guarantee that the routing protocols have converged.',
      labelNames: ['service', 'protocol', 'node', 'ip'] as const,
      registers: reg('speaker'),
    });

    const l2Counter = (name: string, help: string) =>
      new Counter({ name, help, labelNames: ['ip'] as const, registers: reg('layer2') });
    this.l2RequestsReceived = l2Counter(
      'metallb_layer2_requests_received',
      'Number of layer2 requests received for owned IPs',
    );
    this.l2ResponsesSent = l2Counter(
      'metallb_layer2_responses_sent',
      'Number of layer2 responses sent for owned IPs in response to requests',
    );
    this.l2GratuitousSent = l2Counter(
      'metallb_layer2_gratuitous_sent',
      'Number of gratuitous layer2 packets sent for owned IPs as a result of failovers',
    );

    const peerLabels = ['peer', 'vrf'] as const;
    this.bgpSessionUp = new Gauge({
      name: 'metallb_bgp_session_up',
      help: 'BGP session state (1 is up, 0 is down)',
      labelNames: peerLabels,
      registers: reg('bgp'),
    });
    this.bgpAnnouncedPrefixes = new Gauge({
      name: 'metallb_bgp_announced_prefixes_total',
      help: 'Number of prefixes currently being advertised on the BGP session',
      labelNames: peerLabels,
      registers: reg('bgp'),
    });
    this.bgpCounters = new Map(
      BGP_COUNTERS.map(([name, key, help]) => [
        key,
        new Counter({ name, help, labelNames: peerLabels, registers: reg('bgp') }),
      ]),
    );

    this.bfdSessionUp = new Gauge({
      name: 'metallb_bfd_session_up',
      help: 'BFD session state (1 is up, 0 is down)',
      labelNames: peerLabels,
      registers: reg('bfd'),
    });
    this.bfdCounters = new Map(
      BFD_COUNTERS.map(([name, key, help]) => [
        key,
        new Counter({ name, help, labelNames: peerLabels, registers: reg('bfd') }),
      ]),
    );

    this.ipAssignSeconds = new Histogram({
      name: 'ironlb_service_ip_assign_seconds',
      help: 'Time from Service creation (metadata.creationTimestamp) to its first IP assignment by the controller',
      buckets: buckets.ipAssign,
      registers: reg('ironlb'),
    });
    this.announceSeconds = new Histogram({
      name: 'ironlb_service_announce_seconds',
      help: 'Time from this speaker seeing a Service IP assigned to announcing it from this node',
      labelNames: ['protocol'] as const,
      buckets: buckets.announce,
      registers: reg('ironlb'),
    });
    this.frrApplySeconds = new Histogram({
      name: 'ironlb_frr_apply_seconds',
      help: 'Duration of one FRR configuration apply',
      labelNames: ['result'] as const,
      buckets: buckets.frrApply,
      registers: reg('ironlb'),
    });
  }

  // -------------------------------------------------------------------------------------------
  // allocator (controller)
  // -------------------------------------------------------------------------------------------

  /**
   * Sets every allocator gauge of `pool` from the allocator's counters. Totals are per family
   * `assigned + available` and overall `v4 + v6`, saturated at 2^63 − 1 (see bigintToMetric).
   * `servicesAllocated` is optional (upstream registers that gauge but never sets it).
   */
  setPoolCounters(pool: string, c: PoolCounters, servicesAllocated?: number | bigint): void {
    const total4 = satAdd(c.assignedIPv4, c.availableIPv4);
    const total6 = satAdd(c.assignedIPv6, c.availableIPv6);
    const l = { pool };
    this.pools.add(pool);
    this.addressesTotal.set(l, bigintToMetric(satAdd(total4, total6)));
    this.ipv4AddressesTotal.set(l, bigintToMetric(total4));
    this.ipv6AddressesTotal.set(l, bigintToMetric(total6));
    this.addressesInUse.set(l, bigintToMetric(satAdd(c.assignedIPv4, c.assignedIPv6)));
    this.ipv4AddressesInUse.set(l, bigintToMetric(c.assignedIPv4));
    this.ipv6AddressesInUse.set(l, bigintToMetric(c.assignedIPv6));
    if (servicesAllocated !== undefined) this.setPoolServicesAllocated(pool, servicesAllocated);
  }

  setPoolServicesAllocated(pool: string, n: number | bigint): void {
    const v = typeof n === 'bigint' ? bigintToMetric(n) : Number.isFinite(n) && n > 0 ? n : 0;
    this.pools.add(pool);
    this.servicesAllocated.set({ pool }, v);
  }

  /** Drops every series of a pool (pool deleted), as upstream's deleteStatsFor. */
  deletePool(pool: string): void {
    this.pools.delete(pool);
    for (const g of this.poolGauges()) g.remove({ pool });
  }

  /** Sets the given pools and deletes the series of every other pool. */
  syncPools(pools: Iterable<readonly [string, PoolCounters]>): void {
    const keep = new Set<string>();
    for (const [name, c] of pools) {
      keep.add(name);
      this.setPoolCounters(name, c);
    }
    for (const name of [...this.pools]) if (!keep.has(name)) this.deletePool(name);
  }

  private poolGauges(): Gauge<PoolLabel>[] {
    return [
      this.addressesTotal,
      this.ipv4AddressesTotal,
      this.ipv6AddressesTotal,
      this.addressesInUse,
      this.ipv4AddressesInUse,
      this.ipv6AddressesInUse,
      this.servicesAllocated,
    ];
  }

  // -------------------------------------------------------------------------------------------
  // k8s client (controller and speaker)
  // -------------------------------------------------------------------------------------------

  /** One reconcile processed: `updates_total` +1, and `update_errors_total` +1 when it failed. */
  recordUpdate(ok: boolean): void {
    this.k8sUpdates.inc();
    if (!ok) this.k8sUpdateErrors.inc();
  }

  setConfigLoaded(loaded: boolean): void {
    this.configLoaded.set(loaded ? 1 : 0);
  }

  setConfigStale(stale: boolean): void {
    this.configStale.set(stale ? 1 : 0);
  }

  // -------------------------------------------------------------------------------------------
  // speaker
  // -------------------------------------------------------------------------------------------

  /** `metallb_speaker_announced{…} 1`. */
  setAnnounced(s: AnnouncedSeries): void {
    const labels = { service: s.service, protocol: s.protocol, node: s.node, ip: s.ip };
    this.announced.set(announcedKey(labels), labels);
    this.speakerAnnounced.set(labels, 1);
  }

  /** Deletes the series (withdrawal). Returns whether it existed. */
  deleteAnnounced(s: AnnouncedSeries): boolean {
    const labels = { service: s.service, protocol: s.protocol, node: s.node, ip: s.ip };
    if (!this.announced.delete(announcedKey(labels))) return false;
    this.speakerAnnounced.remove(labels);
    return true;
  }

  /** Deletes every series of a Service (optionally of one protocol only). Returns how many. */
  withdrawService(service: string, protocol?: AnnounceProtocol): number {
    let n = 0;
    for (const s of [...this.announced.values()]) {
      if (s.service === service && (protocol === undefined || s.protocol === protocol)) {
        if (this.deleteAnnounced(s)) n++;
      }
    }
    return n;
  }

  /**
   * Makes the series of `service` (and `protocol`) exactly `ips` on `node`: adds the missing,
   * deletes the rest.
   */
  setServiceAnnounced(
    service: string,
    protocol: AnnounceProtocol,
    node: string,
    ips: Iterable<string>,
  ): void {
    const want = new Set(ips);
    for (const s of [...this.announced.values()]) {
      if (s.service === service && s.protocol === protocol && !(s.node === node && want.has(s.ip))) {
        this.deleteAnnounced(s);
      }
    }
    for (const ip of want) this.setAnnounced({ service, protocol, node, ip });
  }

  /** Current announced series, sorted. */
  announcedSeries(): AnnouncedSeries[] {
    return [...this.announced.values()].sort((a, b) => cmp(announcedKey(a), announcedKey(b)));
  }

  // -------------------------------------------------------------------------------------------
  // layer2
  // -------------------------------------------------------------------------------------------

  /**
   * Feeds one L2 helper `stats` snapshot. The helper's counters are cumulative per (IP,
   * interface) and start at 0 when the IP is (re)added or the helper restarts; the metric gets
   * the increase since the previous snapshot, summed over interfaces. A counter that went down, a
   * pair seen for the first time, and every pair after `uptimeMs` went backwards count in full.
   * A pair missing from a snapshot is forgotten. (Packets between the last snapshot and an IP's
   * removal are lost; poll before removing if that matters.)
   */
  recordLayer2Stats(snap: L2StatsSnapshot): void {
    if (snap.uptimeMs !== undefined) {
      if (this.l2PrevUptime !== undefined && snap.uptimeMs < this.l2PrevUptime) this.l2Prev.clear();
      this.l2PrevUptime = snap.uptimeMs;
    }
    const delta = new Map<string, { requests: number; responses: number; gratuitous: number }>();
    const seen = new Set<string>();
    for (const e of snap.ips) {
      const key = `${e.ip}%${e.iface}`;
      seen.add(key);
      const cur = {
        requests: nonNeg(e.requests),
        responses: nonNeg(e.responses),
        gratuitous: nonNeg(e.gratuitous),
      };
      const prev = this.l2Prev.get(key);
      const d = delta.get(e.ip) ?? { requests: 0, responses: 0, gratuitous: 0 };
      for (const k of ['requests', 'responses', 'gratuitous'] as const) {
        const p = prev?.[k] ?? 0;
        d[k] += cur[k] >= p ? cur[k] - p : cur[k];
      }
      delta.set(e.ip, d);
      this.l2Prev.set(key, cur);
    }
    for (const key of [...this.l2Prev.keys()]) if (!seen.has(key)) this.l2Prev.delete(key);
    for (const [ip, d] of delta) {
      // inc by 0 creates the series, so rate() works from the first packet on.
      this.l2RequestsReceived.inc({ ip }, d.requests);
      this.l2ResponsesSent.inc({ ip }, d.responses);
      this.l2GratuitousSent.inc({ ip }, d.gratuitous);
    }
  }

  /** Forget the helper baseline (call when a new helper process replaces the old one). */
  resetLayer2Baseline(): void {
    this.l2Prev.clear();
    this.l2PrevUptime = undefined;
  }

  /**
   * Deletes the layer2 series of an IP. Upstream never deletes them; use it when an IP left this
   * node for good and the series churn matters more than continuity.
   */
  deleteLayer2Ip(ip: string): void {
    for (const c of [this.l2RequestsReceived, this.l2ResponsesSent, this.l2GratuitousSent]) c.remove({ ip });
  }

  // -------------------------------------------------------------------------------------------
  // bgp / bfd (from FRR)
  // -------------------------------------------------------------------------------------------

  /**
   * Replaces all `metallb_bgp_*` series with this snapshot (parseBgpNeighbors output). As
   * upstream: `peer` = `<neighbour>:<portForeign>`, `vrf` = the VRF
   * name; counters carry FRR's absolute values (they restart with the session/FRR, which
   * Prometheus treats as a counter reset). Peers no longer listed lose their series.
   *
   * [quirk] portForeign is the remote end of the current TCP connection: 179 when this node
   * connected, the peer's ephemeral source port when the peer did, -1 while down (FRR 8.4; 0 if
   * FRR omits the field), so one peer's
   * label changes across flaps. `opts.peerPort` overrides it (e.g. with the BGPPeer's configured
   * port) for a stable label.
   */
  setBgpNeighbors(
    neighbors: readonly BgpNeighbor[],
    opts: { peerPort?: (n: BgpNeighbor) => number } = {},
  ): void {
    this.clearBgp();
    for (const n of neighbors) {
      const l = { peer: `${n.neighbor}:${opts.peerPort ? opts.peerPort(n) : n.port}`, vrf: n.vrf };
      this.bgpSessionUp.set(l, n.established ? 1 : 0);
      this.bgpAnnouncedPrefixes.set(l, n.prefixesSent);
      for (const [key, c] of this.bgpCounters) c.inc(l, n.messages[key]);
    }
  }

  clearBgp(): void {
    this.bgpSessionUp.reset();
    this.bgpAnnouncedPrefixes.reset();
    for (const c of this.bgpCounters.values()) c.reset();
  }

  /**
   * Replaces all `metallb_bfd_*` series (parseBfdPeers / parseBfdPeerCounters output). `peer` is
   * the bare peer address, as upstream. Counters are omitted when `counters` is not given (as
   * upstream when that command fails). Several sessions with the same (peer, vrf), e.g. a
   * single-hop and a multihop one, make one series: up only if all are up, counters summed
   * (upstream fails the whole scrape with a duplicate-series error there).
   */
  setBfdPeers(peers: readonly BfdPeer[], counters?: readonly BfdPeerCounters[]): void {
    this.clearBfd();
    const up = new Map<string, { l: { peer: string; vrf: string }; up: boolean }>();
    for (const p of peers) {
      const l = { peer: p.peer, vrf: p.vrf };
      const k = `${p.vrf}\u0000${p.peer}`;
      const prev = up.get(k);
      up.set(k, { l, up: (prev?.up ?? true) && p.up });
    }
    for (const { l, up: isUp } of up.values()) this.bfdSessionUp.set(l, isUp ? 1 : 0);
    for (const p of counters ?? []) {
      const l = { peer: p.peer, vrf: p.vrf };
      for (const [key, c] of this.bfdCounters) c.inc(l, p[key]);
    }
  }

  clearBfd(): void {
    this.bfdSessionUp.reset();
    for (const c of this.bfdCounters.values()) c.reset();
  }

  // -------------------------------------------------------------------------------------------
  // ironlb histograms
  // -------------------------------------------------------------------------------------------

  /** Service created → IP assigned (seconds; negative clamps to 0, NaN/∞ ignored). */
  observeServiceIpAssign(s: number): void {
    const v = seconds(s);
    if (v !== undefined) this.ipAssignSeconds.observe(v);
  }

  /** IP assigned (as this speaker saw it) → announced from this node. */
  observeServiceAnnounce(protocol: AnnounceProtocol, s: number): void {
    const v = seconds(s);
    if (v !== undefined) this.announceSeconds.observe({ protocol }, v);
  }

  observeFrrApply(s: number, result: 'success' | 'failure'): void {
    const v = seconds(s);
    if (v !== undefined) this.frrApplySeconds.observe({ result }, v);
  }

  /** Runs one FRR apply and observes its duration with result success (resolved) or failure (threw). */
  async timeFrrApply<T>(fn: () => Promise<T>): Promise<T> {
    const t0 = process.hrtime.bigint();
    const done = (result: 'success' | 'failure') =>
      this.observeFrrApply(Number(process.hrtime.bigint() - t0) / 1e9, result);
    try {
      const r = await fn();
      done('success');
      return r;
    } catch (e) {
      done('failure');
      throw e;
    }
  }

  // -------------------------------------------------------------------------------------------
  // rendering
  // -------------------------------------------------------------------------------------------

  /** Adds a collector run by render() before each scrape; returns a function that removes it. */
  addCollector(name: string, fn: Collector): () => void {
    if (this.collectors.has(name)) throw new Error(`Metrics: collector ${name} already registered`);
    this.collectors.set(name, fn);
    return () => {
      if (this.collectors.get(name) === fn) this.collectors.delete(name);
    };
  }

  /**
   * Runs the collectors (concurrently, each bounded by collectorTimeoutMs; a failing one is
   * reported to onCollectorError and skipped), then renders the registry in the Prometheus text
   * format.
   */
  async render(): Promise<string> {
    await Promise.all([...this.collectors].map(([name, fn]) => this.runCollector(name, fn)));
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private async runCollector(name: string, fn: Collector): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(fn),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`collector ${name} timed out after ${this.collectorTimeoutMs} ms`)),
            this.collectorTimeoutMs,
          );
        }),
      ]);
    } catch (e) {
      this.onCollectorError?.(name, e);
    } finally {
      if (timer) clearTimeout(timer);
    }
  }
}

function nonNeg(n: number): number {
  return Number.isFinite(n) && n > 0 ? n : 0;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function announcedKey(s: AnnouncedSeries): string {
  return [s.service, s.protocol, s.node, s.ip].join('\u0000');
}

/** Metrics on a registry of their own (never prom-client's global one); collector failures are logged. */
export function newMetrics(
  groups: readonly MetricGroup[],
  log: { warn(msg: string, fields?: Record<string, unknown>): void },
): Metrics {
  return new Metrics({
    registry: new Registry(),
    groups,
    onCollectorError: (name, err) => log.warn('metrics collector failed', { name, error: String(err) }),
  });
}
