/**
 * The validated configuration model. Raw `metallb.io` objects are turned into this once
 * (src/config/parse.ts); the allocator, the FRR renderer and L2 consume only this.
 */
import type { IPAddress, Prefix } from '../ip/ip.js';
import type { Labels, Selector } from './selector.js';

export interface AddressEntry {
  /** The `spec.addresses` text as written. */
  readonly text: string;
  /** Its CIDRs: one for a CIDR entry, the ascending summary for a range. */
  readonly cidrs: readonly Prefix[];
}

export interface ServiceAllocation {
  /** 0 means "unset" (also used for negative values, see spec a.1). */
  readonly priority: number;
  /** Resolved set: `namespaces` plus namespaces matched by `namespaceSelectors` at parse time. */
  readonly namespaces: ReadonlySet<string>;
  /** OR-ed; a serviceAllocation without any restriction gets one match-all selector. */
  readonly serviceSelectors: readonly Selector[];
}

export interface Pool {
  readonly name: string;
  readonly labels: Labels;
  readonly entries: readonly AddressEntry[];
  /** All CIDRs in `spec.addresses` order. */
  readonly cidrs: readonly Prefix[];
  readonly autoAssign: boolean;
  readonly avoidBuggyIPs: boolean;
  readonly serviceAllocation?: ServiceAllocation;
  readonly l2Advertisements: readonly L2Advertisement[];
  readonly bgpAdvertisements: readonly BGPAdvertisement[];
}

export interface L2Advertisement {
  readonly name: string;
  readonly nodes: ReadonlySet<string>;
  readonly interfaces: readonly string[];
  readonly allInterfaces: boolean;
  readonly serviceSelectors: readonly Selector[];
  /** node name → summed preferredNodeSelectors weight (only nodes in `nodes`, only > 0). */
  readonly preferredNodes: ReadonlyMap<string, number>;
}

export type CommunityValue =
  | { readonly kind: 'standard'; readonly text: string; readonly sortKey: bigint }
  | { readonly kind: 'large'; readonly text: string; readonly sortKey: bigint };

export interface BGPAdvertisement {
  readonly name: string;
  readonly aggregationLength: number;
  readonly aggregationLengthV6: number;
  /** 0 = not set. */
  readonly localPref: number;
  /** Unique, sorted as the spec says (standard A:B sorts as large (A*65536+B):0:0). */
  readonly communities: readonly CommunityValue[];
  readonly nodes: ReadonlySet<string>;
  /** BGPPeer names; empty = every peer. */
  readonly peers: readonly string[];
  readonly serviceSelectors: readonly Selector[];
}

export interface BFDProfile {
  readonly name: string;
  readonly receiveInterval?: number;
  readonly transmitInterval?: number;
  readonly detectMultiplier?: number;
  readonly echoInterval?: number;
  readonly echoMode: boolean;
  readonly passiveMode: boolean;
  readonly minimumTtl?: number;
}

export interface Peer {
  readonly name: string;
  readonly myASN: number;
  /** 0 when dynamicASN is used. */
  readonly peerASN: number;
  readonly dynamicASN?: 'internal' | 'external';
  /** 0 = not set. */
  readonly localASN: number;
  readonly address?: IPAddress;
  readonly interface?: string;
  readonly sourceAddress?: IPAddress;
  /** 0 = not rendered. */
  readonly port: number;
  /** Seconds, whole; both present or both absent. */
  readonly holdTime?: number;
  readonly keepaliveTime?: number;
  readonly connectTime?: number;
  readonly routerID?: IPAddress;
  readonly nodes: ReadonlySet<string>;
  /** From `password` or the referenced Secret. Never log this. */
  readonly password?: string;
  readonly bfdProfile?: string;
  readonly enableGracefulRestart: boolean;
  readonly ebgpMultiHop: boolean;
  /** "" = default VRF. */
  readonly vrf: string;
  readonly dualStackAddressFamily: boolean;
}

export interface Config {
  /** Pools by name, iterated in name order. */
  readonly pools: ReadonlyMap<string, Pool>;
  readonly peers: readonly Peer[];
  readonly bfdProfiles: ReadonlyMap<string, BFDProfile>;
  readonly communities: ReadonlyMap<string, CommunityValue>;
  /** ConfigMap bgpextras `extras`, appended to frr.conf ('' = none). */
  readonly extras: string;
}

export interface NodeInfo {
  readonly name: string;
  readonly labels: Labels;
  /** NetworkUnavailable=True condition. */
  readonly networkUnavailable?: boolean;
}

export interface NamespaceInfo {
  readonly name: string;
  readonly labels: Labels;
}
