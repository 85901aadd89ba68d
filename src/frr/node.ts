/** From the validated config and this node's Services to the node's frr.conf text. */
import type { Config, NodeInfo, Peer } from '../config/model.js';
import { decideBgp, type BgpServiceDecision } from '../speaker/bgp.js';
import type { EndpointIndex, SpeakerService } from '../speaker/inputs.js';
import type { FrrRenderer } from './render.js';
import { buildFrrView, type LogLevel } from './viewmodel.js';

export interface NodeRenderInput {
  readonly config: Config;
  readonly node: NodeInfo;
  readonly services: readonly SpeakerService[];
  readonly endpoints: EndpointIndex;
  /** `--lb-class`: "" handles only Services without a class. */
  readonly lbClass?: string;
  readonly hostname?: string;
  readonly logLevel?: LogLevel;
  /** FRR_LOGGING_LEVEL override (an FRR level name). */
  readonly frrLogLevel?: string;
  readonly ignoreExcludeLabel?: boolean;
}

export interface NodeRenderResult {
  readonly text: string;
  readonly peers: readonly Peer[];
  readonly decisions: readonly BgpServiceDecision[];
}

/** BGPPeers that open a session on this node (spec d.3). */
export function peersForNode(config: Config, node: string): Peer[] {
  return config.peers.filter((p) => p.nodes.has(node));
}

export function renderNodeConfig(renderer: FrrRenderer, input: NodeRenderInput): NodeRenderResult {
  const lbClass = input.lbClass ?? '';
  const ctx = {
    config: input.config,
    node: input.node.name,
    nodeInfo: input.node,
    endpoints: input.endpoints,
    ...(input.ignoreExcludeLabel ? { ignoreExcludeLabel: true } : {}),
  };
  const decisions = input.services
    .filter((s) => (lbClass === '' ? !s.loadBalancerClass : s.loadBalancerClass === lbClass))
    .map((s) => decideBgp(ctx, s));
  const peers = peersForNode(input.config, input.node.name);
  const routes = decisions.flatMap((d) => d.routes);
  const view = buildFrrView(input.config, peers, routes, {
    hostname: input.hostname ?? input.node.name,
    ...(input.logLevel ? { logLevel: input.logLevel } : {}),
    ...(input.frrLogLevel ? { frrLogLevel: input.frrLogLevel } : {}),
  });
  return { text: renderer.render(view), peers, decisions };
}
