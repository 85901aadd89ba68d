/**
 * Layer-2 eligibility and the single announcer per Service IP (spec d.1). Pure: every speaker
 * computes the same answer from the same inputs, so exactly one node answers ARP/NDP for an IP.
 */
import { createHash } from 'node:crypto';
import { formatIP } from '../ip/ip.js';
import type { Config, L2Advertisement, NodeInfo } from '../config/model.js';
import { nodeExcluded, poolOfIPs, type EndpointIndex, type SpeakerService } from '../speaker/inputs.js';

export interface L2Context {
  readonly config: Config;
  /** This node. */
  readonly node: string;
  /** Node objects by name (labels, NetworkUnavailable). */
  readonly nodes: ReadonlyMap<string, NodeInfo>;
  /** Live speakers (memberlist members, or every known Node when membership is off). */
  readonly speakers: ReadonlySet<string>;
  readonly endpoints: EndpointIndex;
  readonly ignoreExcludeLabel?: boolean;
}

export interface L2Decision {
  readonly service: string;
  /** The elected node, or null when nobody announces. */
  readonly winner: string | null;
  /** Candidate order (best first), for diagnostics and tests. */
  readonly ranking: readonly string[];
  /** Why nobody announces, or why this node does not. */
  readonly reason?: string;
  /** On the winner: interfaces to answer on; `all` = every eligible interface. */
  readonly interfaces: readonly string[] | 'all';
}

/** SHA-256 of `<node>#<ip>`: the tie-break key shared by every speaker. */
export function electionKey(node: string, ip0: string): Buffer {
  return createHash('sha256').update(`${node}#${ip0}`, 'utf8').digest();
}

/** Orders candidates by score (descending), then by electionKey (ascending bytes). */
export function rankNodes(
  candidates: Iterable<string>,
  ip0: string,
  score: (n: string) => number = () => 0,
): string[] {
  const keyed = [...candidates].map((n) => ({ n, s: score(n), k: electionKey(n, ip0) }));
  keyed.sort((a, b) => b.s - a.s || Buffer.compare(a.k, b.k) || (a.n < b.n ? -1 : a.n > b.n ? 1 : 0));
  return keyed.map((x) => x.n);
}

export function decideL2(ctx: L2Context, svc: SpeakerService): L2Decision {
  const none = (reason: string, ranking: string[] = []): L2Decision => ({
    service: svc.key,
    winner: null,
    ranking,
    reason,
    interfaces: [],
  });
  if (!svc.isLoadBalancer) return none('not a LoadBalancer Service');
  if (svc.ips.length === 0) return none('no (valid) ingress IP');
  const pool = poolOfIPs(ctx.config, svc.ips);
  if (!pool) return none('ingress IPs belong to no IPAddressPool');
  const ads = pool.l2Advertisements.filter(
    (a) => a.serviceSelectors.length === 0 || a.serviceSelectors.some((s) => s.matches(svc.labels)),
  );
  if (ads.length === 0) return none(`no L2Advertisement of pool "${pool.name}" applies to the Service`);
  if (!ctx.endpoints.servingAnywhere(svc.key)) return none('no serving endpoint');
  if (svc.hasSharedIPAnnotation && ads.some((a) => a.serviceSelectors.length > 0)) {
    return none('allow-shared-ip Services are not announced through L2Advertisements with serviceSelectors');
  }
  const inSomeAd = (n: string) => ads.some((a) => a.nodes.has(n));
  let candidates = [...ctx.speakers].filter(
    (n) => inSomeAd(n) && !nodeExcluded(ctx.nodes.get(n), ctx.ignoreExcludeLabel),
  );
  if (svc.etpLocal) {
    const local = ctx.endpoints.servingNodes(svc.key);
    if (!local.has('*')) candidates = candidates.filter((n) => local.has(n));
  }
  if (candidates.length === 0) return none('no eligible live speaker');
  const ip0 = formatIP(svc.ips[0]!);
  const score = (n: string) =>
    ads.reduce((sum, a) => sum + (a.nodes.has(n) ? (a.preferredNodes.get(n) ?? 0) : 0), 0);
  const ranking = rankNodes(candidates, ip0, score);
  const winner = ranking[0]!;
  const mine = ads.filter((a) => a.nodes.has(ctx.node));
  const reason =
    winner === ctx.node
      ? undefined
      : mine.length === 0
        ? 'this node is not selected by any L2Advertisement'
        : `${winner} is elected`;
  return {
    service: svc.key,
    winner,
    ranking,
    ...(reason ? { reason } : {}),
    interfaces: winner === ctx.node ? interfacesFor(mine) : [],
  };
}

/** Empty `interfaces` on any applicable ad means every eligible interface; else the union. */
function interfacesFor(ads: readonly L2Advertisement[]): readonly string[] | 'all' {
  if (ads.some((a) => a.allInterfaces)) return 'all';
  return [...new Set(ads.flatMap((a) => a.interfaces))].sort();
}
