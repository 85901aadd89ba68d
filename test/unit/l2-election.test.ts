import { decideL2, rankNodes, type L2Context } from '../../src/l2/election.js';
import { ConfigParser } from '../../src/config/parse.js';
import { CrdSchemas } from '../../src/config/schema.js';
import type { NodeInfo } from '../../src/config/model.js';
import { emptyInput, type RawObject } from '../../src/config/parse.js';
import {
  endpointIndexFrom,
  EVERYWHERE,
  speakerServiceFrom,
  type EndpointIndex,
} from '../../src/speaker/inputs.js';

const NS = 'metallb-system';
const nodes = (names: string[], labels: Record<string, Record<string, string>> = {}): NodeInfo[] =>
  names.map((n) => ({ name: n, labels: labels[n] ?? {} }));

function pool(name: string, addresses: string[]): RawObject {
  return {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'IPAddressPool',
    metadata: { name, namespace: NS },
    spec: { addresses },
  };
}
function l2(name: string, spec: Record<string, unknown> = {}): RawObject {
  return {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'L2Advertisement',
    metadata: { name, namespace: NS },
    spec,
  };
}
function svc(
  name: string,
  ips: string[],
  extra: { labels?: Record<string, string>; ann?: Record<string, string>; local?: boolean } = {},
) {
  return speakerServiceFrom({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default', labels: extra.labels ?? {}, annotations: extra.ann ?? {} },
    spec: { type: 'LoadBalancer', externalTrafficPolicy: extra.local ? 'Local' : 'Cluster' },
    status: { loadBalancer: { ingress: ips.map((ip) => ({ ip })) } },
  });
}

function ctx(
  ads: RawObject[],
  nodeList: NodeInfo[],
  opts: { node?: string; speakers?: string[]; endpoints?: EndpointIndex } = {},
): L2Context {
  const res = new ConfigParser(CrdSchemas.load()).parse(
    {
      ...emptyInput(),
      ipAddressPools: [pool('lan', ['192.0.2.0/24', '198.51.100.0/24', '2001:db8::/64'])],
      l2Advertisements: ads,
      nodes: nodeList,
    },
    { scope: 'full' },
  );
  if (!res.config) throw new Error(res.problems.map((p) => p.reason).join('; '));
  return {
    config: res.config,
    node: opts.node ?? nodeList[0]!.name,
    nodes: new Map(nodeList.map((n) => [n.name, n])),
    speakers: new Set(opts.speakers ?? nodeList.map((n) => n.name)),
    endpoints: opts.endpoints ?? EVERYWHERE,
  };
}

const four = nodes(['node-a', 'node-b', 'node-c', 'node-d']);

describe('L2 election ranking: the spec d.1 test vectors', () => {
  it.each([
    ['192.0.2.10', ['node-d', 'node-c', 'node-b', 'node-a']],
    ['198.51.100.7', ['node-d', 'node-a', 'node-b', 'node-c']],
    ['2001:db8::a', ['node-a', 'node-b', 'node-d', 'node-c']],
  ])('IP0 %s orders the nodes %j', (ip, order) => {
    expect(rankNodes(['node-a', 'node-b', 'node-c', 'node-d'], ip)).toEqual(order);
    const d = decideL2(ctx([l2('all')], four), svc('s', [ip]));
    expect(d.ranking).toEqual(order);
    expect(d.winner).toBe(order[0]);
  });

  it('every node computes the same winner', () => {
    const winners = four.map(
      (n) => decideL2(ctx([l2('all')], four, { node: n.name }), svc('s', ['192.0.2.10'])).winner,
    );
    expect(new Set(winners)).toEqual(new Set(['node-d']));
  });

  it('Services sharing an IP elect the same node (the key is IP0)', () => {
    const c = ctx([l2('all')], four);
    expect(decideL2(c, svc('x', ['198.51.100.7'])).winner).toBe(
      decideL2(c, svc('y', ['198.51.100.7'])).winner,
    );
  });

  it('IP0 is the first status entry in canonical form', () => {
    const c = ctx([l2('all')], four);
    expect(decideL2(c, svc('dual', ['2001:db8::a', '192.0.2.10'])).ranking).toEqual([
      'node-a',
      'node-b',
      'node-d',
      'node-c',
    ]);
  });
});

describe('L2 eligibility rules (spec d.1)', () => {
  it('only live speakers are candidates', () => {
    const d = decideL2(
      ctx([l2('all')], four, { speakers: ['node-a', 'node-b', 'node-c'] }),
      svc('s', ['192.0.2.10']),
    );
    expect(d.ranking).toEqual(['node-c', 'node-b', 'node-a']);
  });

  it('nodeSelectors restrict candidates; a node outside every ad does not announce', () => {
    const labelled = nodes(['node-a', 'node-b', 'node-c', 'node-d'], {
      'node-a': { l2: 'yes' },
      'node-b': { l2: 'yes' },
    });
    const c = ctx([l2('some', { nodeSelectors: [{ matchLabels: { l2: 'yes' } }] })], labelled, {
      node: 'node-c',
    });
    const d = decideL2(c, svc('s', ['192.0.2.10']));
    expect(d.ranking).toEqual(['node-b', 'node-a']);
    expect(d.reason).toMatch(/not selected/);
  });

  it('exclusion label and NetworkUnavailable remove a node', () => {
    const list: NodeInfo[] = [
      { name: 'node-a', labels: {} },
      { name: 'node-b', labels: {} },
      { name: 'node-c', labels: {}, networkUnavailable: true },
      { name: 'node-d', labels: { 'node.kubernetes.io/exclude-from-external-load-balancers': '' } },
    ];
    expect(decideL2(ctx([l2('all')], list), svc('s', ['192.0.2.10'])).ranking).toEqual(['node-b', 'node-a']);
  });

  it('no serving endpoint anywhere → nobody announces, also for ETP Cluster', () => {
    const d = decideL2(
      ctx([l2('all')], four, { endpoints: endpointIndexFrom([]) }),
      svc('s', ['192.0.2.10']),
    );
    expect(d.winner).toBeNull();
  });

  it('ETP Local restricts candidates to nodes with a serving endpoint', () => {
    const eps = endpointIndexFrom([
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 's-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 's' } },
        endpoints: [
          { addresses: ['192.0.2.50'], nodeName: 'node-a', conditions: { ready: true } },
          { addresses: ['192.0.2.51'], nodeName: 'node-b', conditions: { ready: false, serving: true } },
          { addresses: ['192.0.2.52'], nodeName: 'node-d', conditions: { ready: false, serving: false } },
        ],
      },
    ]);
    const d = decideL2(ctx([l2('all')], four, { endpoints: eps }), svc('s', ['192.0.2.10'], { local: true }));
    expect(d.ranking).toEqual(['node-b', 'node-a']);
  });

  it('allow-shared-ip + an ad with serviceSelectors → nobody announces (either prefix, any value)', () => {
    const ads = [l2('sel', { serviceSelectors: [{ matchLabels: { app: 'x' } }] })];
    const anns: Array<Record<string, string>> = [
      { 'metallb.io/allow-shared-ip': '' },
      { 'metallb.universe.tf/allow-shared-ip': 'k' },
    ];
    for (const ann of anns) {
      expect(
        decideL2(ctx(ads, four), svc('s', ['192.0.2.10'], { labels: { app: 'x' }, ann })).winner,
      ).toBeNull();
    }
    expect(
      decideL2(
        ctx([l2('all')], four),
        svc('s', ['192.0.2.10'], { ann: { 'metallb.io/allow-shared-ip': 'k' } }),
      ).winner,
    ).toBe('node-d');
  });

  it('serviceSelectors that do not match → no advertisement applies', () => {
    const ads = [l2('sel', { serviceSelectors: [{ matchLabels: { app: 'x' } }] })];
    expect(decideL2(ctx(ads, four), svc('s', ['192.0.2.10'], { labels: { app: 'y' } })).winner).toBeNull();
  });

  it('preferredNodeSelectors weights win over the hash; weights of several ads add up', () => {
    const labelled = nodes(['node-a', 'node-b', 'node-c', 'node-d'], {
      'node-a': { zone: 'z1', fast: 'yes' },
      'node-b': { zone: 'z1' },
    });
    const ads = [
      l2('zone', { preferredNodeSelectors: [{ weight: 10, preference: { matchLabels: { zone: 'z1' } } }] }),
      l2('fast', { preferredNodeSelectors: [{ weight: 5, preference: { matchLabels: { fast: 'yes' } } }] }),
    ];
    const d = decideL2(ctx(ads, labelled), svc('s', ['192.0.2.10']));
    expect(d.ranking).toEqual(['node-a', 'node-b', 'node-d', 'node-c']);
  });

  it('interfaces: union of the applicable ads, or all when one ad lists none', () => {
    const c1 = ctx([l2('a', { interfaces: ['eth1'] }), l2('b', { interfaces: ['eth0'] })], four, {
      node: 'node-d',
    });
    expect(decideL2(c1, svc('s', ['192.0.2.10'])).interfaces).toEqual(['eth0', 'eth1']);
    const c2 = ctx([l2('a', { interfaces: ['eth1'] }), l2('b')], four, { node: 'node-d' });
    expect(decideL2(c2, svc('s', ['192.0.2.10'])).interfaces).toBe('all');
  });

  it('a Service without IP, or an IP outside every pool, is not announced', () => {
    const c = ctx([l2('all')], four);
    expect(decideL2(c, svc('s', [])).winner).toBeNull();
    expect(decideL2(c, svc('s', ['203.0.113.9'])).winner).toBeNull();
  });
});
