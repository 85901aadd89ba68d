/**
 * GENERATED FILE, DO NOT EDIT.
 *
 * Produced by scripts/gen-crd-types.mjs (`npm run gen:types`) from the CRD schemas in
 * deploy/crds/*.yaml, which are the single source of truth. Edit the YAML and regenerate.
 */

/** Object metadata, typed loosely: only the fields ironlb reads are named. */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  generateName?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  labels?: { [k: string]: string };
  annotations?: { [k: string]: string };
  ownerReferences?: {
    apiVersion: string;
    kind: string;
    name: string;
    uid: string;
    controller?: boolean;
    blockOwnerDeletion?: boolean;
  }[];
  [k: string]: unknown;
}

/**
 * Label query: matchLabels and matchExpressions are ANDed; an empty selector matches everything.
 */
export interface LabelSelector {
  /**
   * Set-based requirements, all of which must hold.
   */
  matchExpressions?: LabelSelectorRequirement[];
  /**
   * Labels that must be present with exactly these values.
   */
  matchLabels?: {
    [k: string]: string;
  };
}
/**
 * One requirement on a label key.
 */
export interface LabelSelectorRequirement {
  /**
   * Label key the requirement applies to.
   */
  key: string;
  /**
   * In, NotIn, Exists or DoesNotExist.
   */
  operator: string;
  /**
   * Values compared for In and NotIn; must be empty for Exists and DoesNotExist.
   */
  values?: string[];
}

/**
 * A set of IP addresses that can be assigned to LoadBalancer Services.
 */
export interface IPAddressPool {
  /**
   * Versioned schema of this object (group/version).
   */
  apiVersion: 'metallb.io/v1beta1';
  /**
   * Kind of this object.
   */
  kind: 'IPAddressPool';
  metadata: ObjectMeta;
  spec: IPAddressPoolSpec;
  status?: IPAddressPoolStatus;
}
/**
 * Desired state of the pool.
 */
export interface IPAddressPoolSpec {
  /**
   * CIDRs (192.0.2.0/28) or inclusive ranges (192.0.2.10-192.0.2.20) owned by the pool.
   */
  addresses: string[];
  /**
   * When false the pool is used only when a Service asks for it or for one of its IPs.
   *
   * @default true
   */
  autoAssign?: boolean;
  /**
   * Skip IPv4 addresses ending in .0 or .255.
   *
   * @default false
   */
  avoidBuggyIPs?: boolean;
  serviceAllocation?: ServiceAllocation;
}
/**
 * Restricts which Services may use the pool and sets its priority.
 */
export interface ServiceAllocation {
  /**
   * Namespaces, by label, whose Services may use the pool.
   */
  namespaceSelectors?: LabelSelector[];
  /**
   * Namespaces whose Services may use the pool.
   */
  namespaces?: string[];
  /**
   * Lower values are tried first; 0 or unset comes after every positive priority.
   */
  priority?: number;
  /**
   * Services, by label, that may use the pool (any selector may match).
   */
  serviceSelectors?: LabelSelector[];
}
/**
 * Address usage counters maintained by the controller.
 */
export interface IPAddressPoolStatus {
  /**
   * IPv4 addresses currently assigned.
   */
  assignedIPv4: number;
  /**
   * IPv6 addresses currently assigned.
   */
  assignedIPv6: number;
  /**
   * IPv4 addresses still free.
   */
  availableIPv4?: number;
  /**
   * IPv6 addresses still free.
   */
  availableIPv6?: number;
}

/**
 * Observed state of the advertisement (currently unused).
 */
export type L2AdvertisementStatus = Record<string, never>;

/**
 * Announces the addresses of the selected pools with ARP (IPv4) and NDP (IPv6).
 */
export interface L2Advertisement {
  /**
   * Versioned schema of this object (group/version).
   */
  apiVersion: 'metallb.io/v1beta1';
  /**
   * Kind of this object.
   */
  kind: 'L2Advertisement';
  metadata: ObjectMeta;
  spec?: L2AdvertisementSpec;
  status?: L2AdvertisementStatus;
}
/**
 * Desired state of the advertisement.
 */
export interface L2AdvertisementSpec {
  /**
   * Host interfaces to answer on; empty means every eligible interface.
   */
  interfaces?: string[];
  /**
   * Pools, by label, covered by this advertisement.
   */
  ipAddressPoolSelectors?: LabelSelector[];
  /**
   * Pools, by name, covered by this advertisement.
   */
  ipAddressPools?: string[];
  /**
   * Nodes allowed to announce; empty means every node.
   */
  nodeSelectors?: LabelSelector[];
  /**
   * Weighted node preferences used when electing the announcing node.
   */
  preferredNodeSelectors?: PreferredNodeSelector[];
  /**
   * Services, by label, to announce; empty means every Service.
   */
  serviceSelectors?: LabelSelector[];
}
/**
 * A node preference and its weight.
 */
export interface PreferredNodeSelector {
  /**
   * Nodes this preference applies to.
   */
  preference: LabelSelector;
  /**
   * Score added for matching nodes.
   */
  weight: number;
}

/**
 * Observed state of the advertisement (currently unused).
 */
export type BGPAdvertisementStatus = Record<string, never>;

/**
 * Announces the addresses of the selected pools to BGP peers.
 */
export interface BGPAdvertisement {
  /**
   * Versioned schema of this object (group/version).
   */
  apiVersion: 'metallb.io/v1beta1';
  /**
   * Kind of this object.
   */
  kind: 'BGPAdvertisement';
  metadata: ObjectMeta;
  spec?: BGPAdvertisementSpec;
  status?: BGPAdvertisementStatus;
}
/**
 * Desired state of the advertisement.
 */
export interface BGPAdvertisementSpec {
  /**
   * Prefix length IPv4 Service addresses are aggregated to.
   *
   * @default 32
   */
  aggregationLength?: number;
  /**
   * Prefix length IPv6 Service addresses are aggregated to.
   *
   * @default 128
   */
  aggregationLengthV6?: number;
  /**
   * Communities to attach: A:B, large:A:B:C, or an alias defined by a Community.
   */
  communities?: string[];
  /**
   * Pools, by label, covered by this advertisement.
   */
  ipAddressPoolSelectors?: LabelSelector[];
  /**
   * Pools, by name, covered by this advertisement.
   */
  ipAddressPools?: string[];
  /**
   * LOCAL_PREF attribute to attach; 0 leaves it unset.
   */
  localPref?: number;
  /**
   * Nodes that announce; empty means every node.
   */
  nodeSelectors?: LabelSelector[];
  /**
   * BGPPeer names to announce to; empty means every peer.
   */
  peers?: string[];
  /**
   * Services, by label, to announce; empty means every Service.
   */
  serviceSelectors?: LabelSelector[];
}

/**
 * Observed state of the peer (currently unused).
 */
export type BGPPeerStatus = Record<string, never>;

/**
 * A BGP session opened by the speakers.
 */
export interface BGPPeer {
  /**
   * Versioned schema of this object (group/version).
   */
  apiVersion: 'metallb.io/v1beta2';
  /**
   * Kind of this object.
   */
  kind: 'BGPPeer';
  metadata: ObjectMeta;
  spec?: BGPPeerSpec;
  status?: BGPPeerStatus;
}
/**
 * Desired state of the session.
 */
export interface BGPPeerSpec {
  /**
   * BFDProfile to run on this session; no BFD when unset.
   */
  bfdProfile?: string;
  /**
   * Delay between connection attempts (Go duration, whole seconds, 1s to 65535s).
   */
  connectTime?: string;
  /**
   * Deprecated and ignored; use dualStackAddressFamily.
   *
   * @default false
   */
  disableMP?: boolean;
  /**
   * Exchange both IPv4 and IPv6 prefixes over this session.
   *
   * @default false
   */
  dualStackAddressFamily?: boolean;
  /**
   * Accept the peer AS dynamically instead of peerASN.
   */
  dynamicASN?: 'internal' | 'external';
  /**
   * The peer is more than one hop away.
   */
  ebgpMultiHop?: boolean;
  /**
   * Enable BGP graceful restart; fixed at creation.
   */
  enableGracefulRestart?: boolean;
  /**
   * BGP hold time (Go duration).
   */
  holdTime?: string;
  /**
   * Host interface for unnumbered BGP; exclusive with peerAddress.
   */
  interface?: string;
  /**
   * BGP keepalive interval (Go duration).
   */
  keepaliveTime?: string;
  /**
   * Per-session local AS override.
   */
  localASN?: number;
  /**
   * Local AS number.
   */
  myASN: number;
  /**
   * Nodes that open the session; empty means every node.
   */
  nodeSelectors?: LabelSelector[];
  /**
   * TCP MD5 password.
   */
  password?: string;
  passwordSecret?: SecretReference;
  /**
   * AS number expected from the peer; exclusive with dynamicASN.
   */
  peerASN?: number;
  /**
   * IP address of the peer; exclusive with interface.
   */
  peerAddress?: string;
  /**
   * TCP port of the peer.
   *
   * @default 179
   */
  peerPort?: number;
  /**
   * BGP router ID announced to the peer.
   */
  routerID?: string;
  /**
   * Local address the session is opened from.
   */
  sourceAddress?: string;
  /**
   * Host VRF the session runs in.
   */
  vrf?: string;
}
/**
 * basic-auth Secret in the MetalLB namespace holding the TCP MD5 password under key password.
 */
export interface SecretReference {
  /**
   * Secret name.
   */
  name?: string;
  /**
   * Secret namespace (ignored).
   */
  namespace?: string;
}

/**
 * Observed state of the peer (currently unused).
 */
export type BGPPeerV1beta1Status = Record<string, never>;

/**
 * A BGP session opened by the speakers (deprecated version).
 */
export interface BGPPeerV1beta1 {
  /**
   * Versioned schema of this object (group/version).
   */
  apiVersion: 'metallb.io/v1beta1';
  /**
   * Kind of this object.
   */
  kind: 'BGPPeer';
  metadata: ObjectMeta;
  spec?: BGPPeerV1beta1Spec;
  status?: BGPPeerV1beta1Status;
}
/**
 * Desired state of the session.
 */
export interface BGPPeerV1beta1Spec {
  /**
   * BFDProfile to run on this session.
   */
  bfdProfile?: string;
  /**
   * The peer is more than one hop away.
   */
  ebgpMultiHop?: boolean;
  /**
   * BGP hold time (Go duration).
   */
  holdTime?: string;
  /**
   * BGP keepalive interval (Go duration).
   */
  keepaliveTime?: string;
  /**
   * Local AS number.
   */
  myASN: number;
  /**
   * Nodes that open the session; empty means every node.
   */
  nodeSelectors?: BGPPeerV1beta1NodeSelector[];
  /**
   * TCP MD5 password.
   */
  password?: string;
  /**
   * AS number expected from the peer.
   */
  peerASN: number;
  /**
   * IP address of the peer.
   */
  peerAddress: string;
  /**
   * TCP port of the peer.
   */
  peerPort?: number;
  /**
   * BGP router ID announced to the peer.
   */
  routerID?: string;
  /**
   * Local address the session is opened from.
   */
  sourceAddress?: string;
}
/**
 * Legacy node selector: matchLabels and matchExpressions are ANDed.
 */
export interface BGPPeerV1beta1NodeSelector {
  /**
   * Set-based requirements, all of which must hold.
   */
  matchExpressions?: {
    /**
     * Label key the requirement applies to.
     */
    key: string;
    /**
     * In, NotIn, Exists or DoesNotExist.
     */
    operator: string;
    /**
     * Values compared by the operator.
     *
     * @minItems 1
     */
    values: string[];
  }[];
  /**
   * Labels that must be present with exactly these values.
   */
  matchLabels?: {
    [k: string]: string;
  };
}

/**
 * Observed state of the aliases (currently unused).
 */
export type CommunityStatus = Record<string, never>;

/**
 * Named aliases for BGP community values.
 */
export interface Community {
  /**
   * Versioned schema of this object (group/version).
   */
  apiVersion: 'metallb.io/v1beta1';
  /**
   * Kind of this object.
   */
  kind: 'Community';
  metadata: ObjectMeta;
  spec?: CommunitySpec;
  status?: CommunityStatus;
}
/**
 * Desired state of the aliases.
 */
export interface CommunitySpec {
  /**
   * Alias definitions.
   */
  communities?: CommunityAlias[];
}
/**
 * One alias.
 */
export interface CommunityAlias {
  /**
   * Alias name, unique across all Community objects.
   */
  name?: string;
  /**
   * Community value: A:B or large:A:B:C.
   */
  value?: string;
}

/**
 * Observed state of the profile (currently unused).
 */
export type BFDProfileStatus = Record<string, never>;

/**
 * BFD settings that BGPPeers can refer to.
 */
export interface BFDProfile {
  /**
   * Versioned schema of this object (group/version).
   */
  apiVersion: 'metallb.io/v1beta1';
  /**
   * Kind of this object.
   */
  kind: 'BFDProfile';
  metadata: ObjectMeta;
  spec?: BFDProfileSpec;
  status?: BFDProfileStatus;
}
/**
 * Desired BFD settings.
 */
export interface BFDProfileSpec {
  /**
   * Missed packets before the session is declared down.
   */
  detectMultiplier?: number;
  /**
   * Echo packet interval in milliseconds.
   */
  echoInterval?: number;
  /**
   * Enable echo mode.
   */
  echoMode?: boolean;
  /**
   * Lowest accepted TTL of incoming control packets (multi-hop only).
   */
  minimumTtl?: number;
  /**
   * Wait for the peer to start the session.
   */
  passiveMode?: boolean;
  /**
   * Minimum receive interval in milliseconds.
   */
  receiveInterval?: number;
  /**
   * Minimum transmit interval in milliseconds.
   */
  transmitInterval?: number;
}

/**
 * Unused.
 */
export type ServiceL2StatusSpec = Record<string, never>;

/**
 * Which node answers ARP/NDP for a Service (written by the speakers).
 */
export interface ServiceL2Status {
  /**
   * Versioned schema of this object (group/version).
   */
  apiVersion: 'metallb.io/v1beta1';
  /**
   * Kind of this object.
   */
  kind: 'ServiceL2Status';
  metadata: ObjectMeta;
  spec?: ServiceL2StatusSpec;
  status?: ServiceL2StatusStatus;
}
/**
 * The current layer 2 announcement.
 */
export interface ServiceL2StatusStatus {
  /**
   * Interfaces the announcement is restricted to; empty means all interfaces.
   */
  interfaces?: InterfaceInfo[];
  /**
   * Node announcing the Service.
   */
  node?: string;
  /**
   * Name of the Service.
   */
  serviceName?: string;
  /**
   * Namespace of the Service.
   */
  serviceNamespace?: string;
}
/**
 * A host interface.
 */
export interface InterfaceInfo {
  /**
   * Interface name.
   */
  name?: string;
}

/**
 * Unused.
 */
export type ServiceBGPStatusSpec = Record<string, never>;

/**
 * Which BGP peers a node advertises a Service to (written by the speakers).
 */
export interface ServiceBGPStatus {
  /**
   * Versioned schema of this object (group/version).
   */
  apiVersion: 'metallb.io/v1beta1';
  /**
   * Kind of this object.
   */
  kind: 'ServiceBGPStatus';
  metadata: ObjectMeta;
  spec?: ServiceBGPStatusSpec;
  status?: ServiceBGPStatusStatus;
}
/**
 * The current BGP announcement from one node.
 */
export interface ServiceBGPStatusStatus {
  /**
   * Node announcing the Service.
   */
  node?: string;
  /**
   * Name of the Service.
   */
  serviceName?: string;
  /**
   * Namespace of the Service.
   */
  serviceNamespace?: string;
  /**
   * Sorted names of the BGPPeers the Service is advertised to.
   */
  peers?: string[];
}

/**
 * Unused.
 */
export type ConfigurationStateSpec = Record<string, never>;

/**
 * Whether a component (controller or one speaker) accepted the current configuration.
 */
export interface ConfigurationState {
  /**
   * Versioned schema of this object (group/version).
   */
  apiVersion: 'metallb.io/v1beta1';
  /**
   * Kind of this object.
   */
  kind: 'ConfigurationState';
  metadata: ObjectMeta;
  spec?: ConfigurationStateSpec;
  status?: ConfigurationStateStatus;
}
/**
 * Configuration status reported by the component.
 */
export interface ConfigurationStateStatus {
  /**
   * One condition per reconciler, keyed by type.
   */
  conditions?: Condition[];
  /**
   * Messages of the failing conditions, one per line; empty when Valid.
   */
  errorSummary?: string;
  /**
   * Overall verdict.
   */
  result?: 'Valid' | 'Invalid' | 'Unknown';
}
/**
 * Standard Kubernetes condition.
 */
export interface Condition {
  /**
   * When the condition was last updated.
   */
  lastTransitionTime: string;
  /**
   * Human-readable details; may be empty.
   */
  message: string;
  /**
   * metadata.generation the condition was computed from.
   */
  observedGeneration?: number;
  /**
   * CamelCase reason for the last transition.
   */
  reason: string;
  /**
   * True, False or Unknown.
   */
  status: 'True' | 'False' | 'Unknown';
  /**
   * Condition type, CamelCase or prefix/CamelCase.
   */
  type: string;
}
