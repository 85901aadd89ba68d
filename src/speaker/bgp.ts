/**
 * BGP announcement rules for one node (spec d.3): which Services this node announces, and the
 * routes (prefix, LOCAL_PREF, communities, peers) each produces. Pure.
 */
import { formatPrefix, maskIP, type Prefix } from '../ip/ip.js';
import type { BGPAdvertisement, CommunityValue, Config, NodeInfo } from '../config/model.js';
import { localPrefCompatible } from '../config/parse.js';
import { nodeExcluded, poolOfIPs, type EndpointIndex, type SpeakerService } from './inputs.js';

export interface BgpRoute {
  readonly prefix: Prefix;
  /** 0 = none. */
  readonly localPref: number;
  readonly communities: readonly CommunityValue[];
  /** BGPPeer names; empty = every peer. */
  readonly peers: readonly string[];
  readonly service: string;
}

export interface BgpServiceDecision {
  readonly service: string;
  readonly announced: boolean;
  /** Why not, in one line (for logs and `ironlb render` output). */
  readonly reason?: string;
  readonly routes: readonly BgpRoute[];
}

export interface BgpNodeContext {
  readonly config: Config;
  readonly node: string;
  readonly nodeInfo?: NodeInfo;
  readonly endpoints: EndpointIndex;
  readonly ignoreExcludeLabel?: boolean;
}

export function decideBgp(ctx: BgpNodeContext, svc: SpeakerService): BgpServiceDecision {
  const no = (reason: string): BgpServiceDecision => ({
    service: svc.key,
    announced: false,
    reason,
    routes: [],
  });
  if (!svc.isLoadBalancer) return no('not a LoadBalancer Service');
  if (svc.ips.length === 0) return no('no (valid) ingress IP');
  const pool = poolOfIPs(ctx.config, svc.ips);
  if (!pool) return no('ingress IPs belong to no IPAddressPool');
  const onNode = pool.bgpAdvertisements.filter((a) => a.nodes.has(ctx.node));
  if (onNode.length === 0) return no(`no BGPAdvertisement of pool "${pool.name}" selects this node`);
  const ads = onNode.filter(
    (a) => a.serviceSelectors.length === 0 || a.serviceSelectors.some((s) => s.matches(svc.labels)),
  );
  if (ads.length === 0) return no('no BGPAdvertisement serviceSelectors match the Service');
  for (let i = 0; i < ads.length; i++) {
    for (let j = i + 1; j < ads.length; j++) {
      const a = ads[i]!;
      const b = ads[j]!;
      if (a.localPref !== b.localPref && !localPrefCompatible(pool, a, b)) {
        return no(`BGPAdvertisements "${a.name}" and "${b.name}" set different localPref for this Service`);
      }
    }
  }
  if (nodeExcluded(ctx.nodeInfo, ctx.ignoreExcludeLabel)) return no('node is excluded from load-balancers');
  if (svc.etpLocal ? !ctx.endpoints.servingOn(svc.key, ctx.node) : !ctx.endpoints.servingAnywhere(svc.key)) {
    return no(
      svc.etpLocal ? 'no serving endpoint on this node (externalTrafficPolicy Local)' : 'no serving endpoint',
    );
  }
  const routes: BgpRoute[] = [];
  for (const ip of svc.ips) {
    for (const ad of ads)
      routes.push(routeFor(ad, ip.family === 4 ? ad.aggregationLength : ad.aggregationLengthV6, ip, svc.key));
  }
  return { service: svc.key, announced: true, routes };
}

function routeFor(
  ad: BGPAdvertisement,
  len: number,
  ip: Parameters<typeof maskIP>[0],
  service: string,
): BgpRoute {
  return {
    prefix: maskIP(ip, len),
    localPref: ad.localPref,
    communities: ad.communities,
    peers: ad.peers,
    service,
  };
}

/** Stable text key of a prefix (for maps and sorting as strings, spec e.4). */
export function prefixKey(p: Prefix): string {
  return formatPrefix(p);
}
