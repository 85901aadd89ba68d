/**
 * Pure parsers for the FRR JSON that the MetalLB FRR metrics sidecar turns into `metallb_bgp_*`
 * and `metallb_bfd_*` (spec f.3). Shapes recorded from FRR 8.4 (see
 * test/fixtures/observability/); field names as read by upstream frr-tools/metrics and
 * internal/bgp/frr/parse.go.
 *
 * - `show bgp vrf all neighbors json`: `{ "<vrf>": { "vrfId": 0, "vrfName": "<vrf>", "<peer>": {…} } }`.
 *   `show bgp [vrf X] neighbors json` (one VRF) is the same without the VRF level and without
 *   `vrfId`/`vrfName`; both are accepted. `<peer>` is the neighbour address, or the interface
 *   name of an unnumbered neighbour.
 * - `show bfd [vrf X] peers json` and `show bfd [vrf X] peers counters json`: arrays, one entry per
 *   session, each with its `vrf`.
 *
 * Missing numeric fields count as 0 (FRR omits `portForeign` and friends while a session is not
 * connected). Malformed input (not JSON, wrong top-level type) throws FrrJsonError.
 */

export class FrrJsonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrrJsonError';
  }
}

/** Message counters of one BGP neighbour (`messageStats`). */
export interface BgpMessageStats {
  opensSent: number;
  opensReceived: number;
  notificationsSent: number;
  notificationsReceived: number;
  updatesSent: number;
  updatesReceived: number;
  keepalivesSent: number;
  keepalivesReceived: number;
  routeRefreshSent: number;
  routeRefreshReceived: number;
  totalSent: number;
  totalReceived: number;
}

export interface BgpNeighbor {
  vrf: string;
  /** The key FRR lists the neighbour under: its address, or the interface of an unnumbered peer. */
  neighbor: string;
  /**
   * `portForeign` as FRR reports it: the remote TCP port of the current connection (179 when we
   * connected, the peer's source port when it connected to us); FRR 8.4 reports -1 while there is
   * no connection; 0 when the field is missing. Upstream builds the `peer` label from it.
   */
  port: number;
  /** `bgpState`, e.g. `Established`, `Active`, `Connect`, `Idle`. */
  state: string;
  established: boolean;
  localAs: number | undefined;
  remoteAs: number | undefined;
  remoteRouterId: string | undefined;
  /** Sum of `sentPrefixCounter` over all address families. */
  prefixesSent: number;
  /** Sum of `acceptedPrefixCounter` over all address families. */
  prefixesAccepted: number;
  messages: BgpMessageStats;
}

export interface BfdPeer {
  vrf: string;
  /** Bare peer address (`peer`). */
  peer: string;
  local: string | undefined;
  interface: string | undefined;
  multihop: boolean;
  /** `status`: `up`, `down`, `init`, `shutdown`. */
  status: string;
  up: boolean;
}

export interface BfdPeerCounters {
  vrf: string;
  peer: string;
  local: string | undefined;
  interface: string | undefined;
  multihop: boolean;
  controlPacketInput: number;
  controlPacketOutput: number;
  echoPacketInput: number;
  echoPacketOutput: number;
  sessionUpEvents: number;
  sessionDownEvents: number;
  zebraNotifications: number;
}

export interface FrrParseOptions {
  /** VRF for output that has no VRF of its own (single-VRF BGP output, BFD entries without `vrf`). */
  vrf?: string;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseInput(input: unknown, what: string): unknown {
  if (typeof input !== 'string') return input;
  const text = input.trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new FrrJsonError(`${what}: not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
}

/** A finite, non-negative number (FRR counters), else 0. */
function count(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0;
}

function optNumber(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function optString(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function isNeighborEntry(v: unknown): v is Json {
  return isObject(v) && typeof v.bgpState === 'string';
}

function isVrfEntry(v: unknown): v is Json {
  return isObject(v) && ('vrfName' in v || 'vrfId' in v) && !('bgpState' in v);
}

function neighborFrom(vrf: string, key: string, n: Json): BgpNeighbor {
  const m = isObject(n.messageStats) ? n.messageStats : {};
  let sent = 0;
  let accepted = 0;
  if (isObject(n.addressFamilyInfo)) {
    for (const af of Object.values(n.addressFamilyInfo)) {
      if (!isObject(af)) continue;
      sent += count(af.sentPrefixCounter);
      accepted += count(af.acceptedPrefixCounter);
    }
  }
  const state = typeof n.bgpState === 'string' ? n.bgpState : '';
  return {
    vrf,
    neighbor: key,
    port: typeof n.portForeign === 'number' && Number.isInteger(n.portForeign) ? n.portForeign : 0,
    state,
    established: state === 'Established',
    localAs: optNumber(n.localAs),
    remoteAs: optNumber(n.remoteAs),
    remoteRouterId: optString(n.remoteRouterId),
    prefixesSent: sent,
    prefixesAccepted: accepted,
    messages: {
      opensSent: count(m.opensSent),
      opensReceived: count(m.opensRecv),
      notificationsSent: count(m.notificationsSent),
      notificationsReceived: count(m.notificationsRecv),
      updatesSent: count(m.updatesSent),
      updatesReceived: count(m.updatesRecv),
      keepalivesSent: count(m.keepalivesSent),
      keepalivesReceived: count(m.keepalivesRecv),
      routeRefreshSent: count(m.routeRefreshSent),
      routeRefreshReceived: count(m.routeRefreshRecv),
      totalSent: count(m.totalSent),
      totalReceived: count(m.totalRecv),
    },
  };
}

const byVrfThen = <T extends { vrf: string }>(key: (x: T) => string) => {
  return (a: T, b: T): number => {
    if (a.vrf !== b.vrf) return a.vrf < b.vrf ? -1 : 1;
    const ka = key(a);
    const kb = key(b);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  };
};

/**
 * Parses `show bgp vrf all neighbors json` (or the single-VRF `show bgp [vrf X] neighbors json`,
 * whose neighbours get `opts.vrf`, default `default`). Accepts the text or the parsed value;
 * empty text → []. Sorted by VRF, then neighbour key.
 */
export function parseBgpNeighbors(input: unknown, opts: FrrParseOptions = {}): BgpNeighbor[] {
  const data = parseInput(input, 'show bgp neighbors json');
  if (data === undefined) return [];
  if (!isObject(data)) throw new FrrJsonError('show bgp neighbors json: expected a JSON object');
  const out: BgpNeighbor[] = [];
  for (const [key, value] of Object.entries(data)) {
    if (isNeighborEntry(value)) {
      out.push(neighborFrom(opts.vrf ?? 'default', key, value));
    } else if (isVrfEntry(value)) {
      const vrf = optString(value.vrfName) ?? key;
      for (const [k, v] of Object.entries(value)) {
        if (isNeighborEntry(v)) out.push(neighborFrom(vrf, k, v));
      }
    }
    // anything else (vrfId/vrfName of single-VRF output, warnings) carries no neighbour
  }
  return out.sort(byVrfThen((n) => n.neighbor));
}

function bfdEntries(input: unknown, what: string): Json[] {
  const data = parseInput(input, what);
  if (data === undefined) return [];
  if (!Array.isArray(data)) throw new FrrJsonError(`${what}: expected a JSON array`);
  return data.filter((e): e is Json => isObject(e) && typeof e.peer === 'string' && e.peer !== '');
}

function bfdIdentity(e: Json, opts: FrrParseOptions) {
  return {
    vrf: optString(e.vrf) ?? opts.vrf ?? 'default',
    peer: e.peer as string,
    local: optString(e.local),
    interface: optString(e.interface),
    multihop: e.multihop === true,
  };
}

/** Parses `show bfd [vrf X] peers json`. Sorted by VRF, then peer. */
export function parseBfdPeers(input: unknown, opts: FrrParseOptions = {}): BfdPeer[] {
  return bfdEntries(input, 'show bfd peers json')
    .map((e): BfdPeer => {
      const status = typeof e.status === 'string' ? e.status : '';
      return { ...bfdIdentity(e, opts), status, up: status === 'up' };
    })
    .sort(byVrfThen((p) => p.peer));
}

/** Parses `show bfd [vrf X] peers counters json`. Sorted by VRF, then peer. */
export function parseBfdPeerCounters(input: unknown, opts: FrrParseOptions = {}): BfdPeerCounters[] {
  return bfdEntries(input, 'show bfd peers counters json')
    .map((e): BfdPeerCounters => ({
      ...bfdIdentity(e, opts),
      controlPacketInput: count(e['control-packet-input']),
      controlPacketOutput: count(e['control-packet-output']),
      echoPacketInput: count(e['echo-packet-input']),
      echoPacketOutput: count(e['echo-packet-output']),
      sessionUpEvents: count(e['session-up']),
      sessionDownEvents: count(e['session-down']),
      zebraNotifications: count(e['zebra-notifications']),
    }))
    .sort(byVrfThen((p) => p.peer));
}
