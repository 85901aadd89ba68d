/**
 * The layer-3 configuration parse (spec a.0 "Validation layers", a.12 error catalogue) and the
 * semantic rules it resolves: v1beta1 BGPPeer conversion (a.5), timers (a.4), L2 pool selection
 * and deduplication (a.2), node selectors, speaker pre-filtering (a.11), community order (d.3)
 * and the MetalLB namespace (a.0).
 */
import {
  ConfigParser,
  emptyInput,
  type ConfigInput,
  type ParseOptions,
  type ParseResult,
  type RawObject,
  type SchemaValidator,
} from '../../src/config/parse.js';
import { formatProblem, type Problem } from '../../src/config/problems.js';
import { CrdSchemas } from '../../src/config/schema.js';
import type { Config, NodeInfo, Peer } from '../../src/config/model.js';

const NS = 'metallb-system';
const parser = new ConfigParser(CrdSchemas.load());
/** Accepts everything, applies no default: exercises layer 3 alone, as if the schema had let it through. */
const passThrough: SchemaValidator = { validate: (_k, _v, obj) => ({ value: obj, problems: [] }) };
const layer3 = new ConfigParser(passThrough);

type Spec = Record<string, unknown>;

function obj(
  kind: string,
  version: string,
  name: string,
  spec: Spec,
  labels?: Record<string, string>,
): RawObject {
  return {
    apiVersion: `metallb.io/${version}`,
    kind,
    metadata: { name, namespace: NS, ...(labels ? { labels } : {}) },
    spec,
  };
}
const pool = (name: string, addresses: unknown[], extra: Spec = {}, labels?: Record<string, string>) =>
  obj('IPAddressPool', 'v1beta1', name, { addresses, ...extra }, labels);
const peer = (name: string, spec: Spec = {}) =>
  obj('BGPPeer', 'v1beta2', name, { myASN: 64500, peerASN: 64501, peerAddress: '192.0.2.1', ...spec });
const peerV1 = (name: string, spec: Spec = {}) =>
  obj('BGPPeer', 'v1beta1', name, { myASN: 64500, peerASN: 64501, peerAddress: '192.0.2.1', ...spec });
const bfd = (name: string, spec: Spec = {}) => obj('BFDProfile', 'v1beta1', name, spec);
const community = (name: string, list: Array<{ name: string; value: string }>) =>
  obj('Community', 'v1beta1', name, { communities: list });
const l2 = (name: string, spec: Spec = {}) => obj('L2Advertisement', 'v1beta1', name, spec);
const bgpAd = (name: string, spec: Spec = {}) => obj('BGPAdvertisement', 'v1beta1', name, spec);
const secret = (name: string, type: string, data: Record<string, string>): RawObject => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name, namespace: NS },
  type,
  stringData: data,
});

const NODES: NodeInfo[] = [
  { name: 'node-a', labels: { zone: 'a', rack: 'r1' } },
  { name: 'node-b', labels: { zone: 'b', rack: 'r1' } },
  { name: 'node-c', labels: { zone: 'c' } },
];

function parse(input: Partial<ConfigInput>, opts: ParseOptions = {}, p: ConfigParser = parser): ParseResult {
  return p.parse({ ...emptyInput(), ...input }, opts);
}

function problems(input: Partial<ConfigInput>, opts: ParseOptions = {}, p: ConfigParser = parser): Problem[] {
  const r = parse(input, opts, p);
  if (r.problems.length) expect(r.config).toBeUndefined();
  return r.problems;
}

function valid(input: Partial<ConfigInput>, opts: ParseOptions = {}, p: ConfigParser = parser): Config {
  const r = parse(input, opts, p);
  expect(r.problems.map(formatProblem)).toEqual([]);
  expect(r.config).toBeDefined();
  return r.config!;
}

/** A problem with an exact object and path, a reason fragment, and the transient flag. */
function problem(kind: string, name: string, path: string, reason: RegExp, transient = false): Problem {
  return {
    kind,
    name,
    path,
    reason: expect.stringMatching(reason),
    ...(transient ? { transient: true } : {}),
  };
}

/** Exactly these problems, in this order. */
function expectProblems(actual: Problem[], ...expected: Problem[]): void {
  expect(actual).toEqual(expected);
  // toEqual would accept a missing key where `transient: undefined` is expected; be explicit.
  expected.forEach((e, i) => expect(actual[i]?.transient === true).toBe(e.transient === true));
}

const sets = (ps: readonly Peer[]) => Object.fromEntries(ps.map((p) => [p.name, [...p.nodes].sort()]));

// ------------------------------------------------------------------------------ a.12 rows

describe('a.12 error catalogue', () => {
  describe('1 BFDProfile numeric field outside its range (a.7)', () => {
    test.each<[string, number, RegExp]>([
      ['receiveInterval', 9, /10/],
      ['receiveInterval', 60001, /60000/],
      ['transmitInterval', 9, /10/],
      ['transmitInterval', 60001, /60000/],
      ['detectMultiplier', 1, /2/],
      ['detectMultiplier', 256, /255/],
      ['echoInterval', 9, /10/],
      ['echoInterval', 60001, /60000/],
      ['minimumTtl', 0, /1/],
      ['minimumTtl', 255, /254/],
    ])('%s = %d', (field, value, reason) => {
      expectProblems(
        problems({ bfdProfiles: [bfd('fast', { [field]: value })] }),
        problem('BFDProfile', 'fast', `spec.${field}`, reason),
      );
      // Layer 3 enforces the same range when the schema does not.
      expectProblems(
        problems({ bfdProfiles: [bfd('fast', { [field]: value })] }, {}, layer3),
        problem('BFDProfile', 'fast', `spec.${field}`, reason),
      );
    });

    test('range edges are valid', () => {
      const c = valid({
        bfdProfiles: [
          bfd('lo', {
            receiveInterval: 10,
            transmitInterval: 10,
            detectMultiplier: 2,
            echoInterval: 10,
            minimumTtl: 1,
          }),
          bfd('hi', {
            receiveInterval: 60000,
            transmitInterval: 60000,
            detectMultiplier: 255,
            echoInterval: 60000,
            minimumTtl: 254,
          }),
        ],
      });
      expect(c.bfdProfiles.get('hi')).toMatchObject({ receiveInterval: 60000, minimumTtl: 254 });
    });
  });

  test('2 two BFDProfiles with the same name', () => {
    expectProblems(
      problems({ bfdProfiles: [bfd('fast'), bfd('fast', { receiveInterval: 50 })] }),
      problem('BFDProfile', 'fast', 'metadata.name', /same name/),
    );
  });

  test('3 BGPPeer myASN is 0', () => {
    expectProblems(
      problems({ bgpPeers: [peer('p', { myASN: 0 })] }),
      problem('BGPPeer', 'p', 'spec.myASN', /0/),
    );
  });

  describe('4 peerASN / dynamicASN', () => {
    test('neither', () => {
      expectProblems(
        problems({ bgpPeers: [peer('p', { peerASN: 0 })] }),
        problem('BGPPeer', 'p', 'spec.peerASN', /peerASN or dynamicASN/),
      );
    });
    test('both', () => {
      expectProblems(
        problems({ bgpPeers: [peer('p', { dynamicASN: 'external' })] }),
        problem('BGPPeer', 'p', 'spec.dynamicASN', /mutually exclusive/),
      );
    });
    test('dynamicASN not internal/external', () => {
      expectProblems(
        problems({ bgpPeers: [peer('p', { peerASN: 0, dynamicASN: 'outer' })] }),
        problem('BGPPeer', 'p', 'spec.dynamicASN', /internal, external/),
      );
      expectProblems(
        problems({ bgpPeers: [peer('p', { peerASN: 0, dynamicASN: 'outer' })] }, {}, layer3),
        problem('BGPPeer', 'p', 'spec.dynamicASN', /"outer".*internal, external/),
      );
    });
    test('dynamicASN alone is valid', () => {
      const c = valid({ bgpPeers: [peer('p', { peerASN: 0, dynamicASN: 'internal' })] });
      expect(c.peers[0]).toMatchObject({ peerASN: 0, dynamicASN: 'internal' });
    });
  });

  test('5 ebgpMultiHop on an iBGP peer', () => {
    expectProblems(
      problems({ bgpPeers: [peer('p', { peerASN: 64500, ebgpMultiHop: true })] }),
      problem('BGPPeer', 'p', 'spec.ebgpMultiHop', /iBGP/),
    );
    valid({ bgpPeers: [peer('p', { ebgpMultiHop: true })] });
  });

  describe('6 peerAddress / interface / addresses', () => {
    test('neither peerAddress nor interface', () => {
      expectProblems(
        problems({ bgpPeers: [peer('p', { peerAddress: undefined })] }),
        problem('BGPPeer', 'p', 'spec.peerAddress', /peerAddress or interface/),
      );
    });
    test('both peerAddress and interface', () => {
      expectProblems(
        problems({ bgpPeers: [peer('p', { interface: 'eth0' })] }),
        problem('BGPPeer', 'p', 'spec.interface', /mutually exclusive/),
      );
    });
    test.each<[string, string, RegExp]>([
      ['peerAddress', '192.0.2.300', /192\.0\.2\.300/],
      ['peerAddress', '2001:db8::1::1', /2001:db8::1::1/],
      ['routerID', 'router-1', /router-1/],
      ['sourceAddress', '192.0.2.01', /leading zero/],
      ['sourceAddress', '::ffff:192.0.2.1', /IPv4-mapped/],
    ])('unparsable %s %j', (field, value, reason) => {
      expectProblems(
        problems({ bgpPeers: [peer('p', { [field]: value })] }),
        problem('BGPPeer', 'p', `spec.${field}`, reason),
      );
    });
  });

  describe('7 timers', () => {
    test('hold time non-zero and < 3s', () => {
      expectProblems(
        problems({ bgpPeers: [peer('p', { holdTime: '2s' })] }),
        problem('BGPPeer', 'p', 'spec.holdTime', /0 or at least 3s/),
      );
    });
    test('keepalive > hold', () => {
      expectProblems(
        problems({ bgpPeers: [peer('p', { holdTime: '30s', keepaliveTime: '40s' })] }),
        problem('BGPPeer', 'p', 'spec.keepaliveTime', /exceed/),
      );
    });
  });

  describe('8 nodeSelectors duplicate or malformed', () => {
    test.each<[string, unknown[], string, RegExp]>([
      [
        'duplicate selector',
        [{ matchLabels: { zone: 'a' } }, { matchLabels: { zone: 'a' } }],
        'spec.nodeSelectors[1]',
        /duplicate of spec\.nodeSelectors\[0\]/,
      ],
      [
        'duplicate expression',
        [
          {
            matchExpressions: [
              { key: 'zone', operator: 'In', values: ['a', 'b'] },
              { key: 'zone', operator: 'In', values: ['b', 'a'] },
            ],
          },
        ],
        'spec.nodeSelectors[0].matchExpressions[1]',
        /duplicate of matchExpressions\[0\]/,
      ],
      [
        'duplicate value in one expression',
        [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'a'] }] }],
        'spec.nodeSelectors[0].matchExpressions[0].values',
        /duplicate value "a"/,
      ],
      [
        'bad operator',
        [{ matchExpressions: [{ key: 'zone', operator: 'Equals', values: ['a'] }] }],
        'spec.nodeSelectors[0].matchExpressions[0].operator',
        /"Equals"/,
      ],
      [
        'missing key',
        [{ matchExpressions: [{ operator: 'Exists' }] }],
        'spec.nodeSelectors[0].matchExpressions[0].key',
        /required/,
      ],
    ])('%s', (_what, nodeSelectors, path, reason) => {
      expectProblems(
        problems({ bgpPeers: [peer('p', { nodeSelectors })] }),
        problem('BGPPeer', 'p', path, reason),
      );
    });
  });

  test('9 both password and passwordSecret', () => {
    expectProblems(
      problems({
        bgpPeers: [peer('p', { password: 'hunter2', passwordSecret: { name: 'bgp-auth' } })],
        secrets: [secret('bgp-auth', 'kubernetes.io/basic-auth', { password: 'x' })],
      }),
      problem('BGPPeer', 'p', 'spec.passwordSecret', /mutually exclusive/),
    );
  });

  test('10 referenced Secret absent (transient)', () => {
    expectProblems(
      problems({ bgpPeers: [peer('p', { passwordSecret: { name: 'bgp-auth' } })] }),
      problem('BGPPeer', 'p', 'spec.passwordSecret.name', /"bgp-auth" not found/, true),
    );
    // A Secret of the same name in another namespace does not count.
    expectProblems(
      problems({
        bgpPeers: [peer('p', { passwordSecret: { name: 'bgp-auth' } })],
        secrets: [
          {
            ...secret('bgp-auth', 'kubernetes.io/basic-auth', { password: 'x' }),
            metadata: { name: 'bgp-auth', namespace: 'default' },
          },
        ],
      }),
      problem('BGPPeer', 'p', 'spec.passwordSecret.name', /not found/, true),
    );
  });

  describe('11 Secret of the wrong type or without "password"', () => {
    test('wrong type', () => {
      expectProblems(
        problems({
          bgpPeers: [peer('p', { passwordSecret: { name: 'bgp-auth' } })],
          secrets: [secret('bgp-auth', 'Opaque', { password: 'x' })],
        }),
        problem('BGPPeer', 'p', 'spec.passwordSecret.name', /kubernetes\.io\/basic-auth/),
      );
    });
    test('no password key', () => {
      expectProblems(
        problems({
          bgpPeers: [peer('p', { passwordSecret: { name: 'bgp-auth' } })],
          secrets: [secret('bgp-auth', 'kubernetes.io/basic-auth', { username: 'x' })],
        }),
        problem('BGPPeer', 'p', 'spec.passwordSecret.name', /no "password" key/),
      );
    });
    test('a good Secret provides the password (data is base64)', () => {
      const c = valid({
        bgpPeers: [peer('p', { passwordSecret: { name: 'bgp-auth', namespace: 'ignored' } })],
        secrets: [
          {
            apiVersion: 'v1',
            kind: 'Secret',
            metadata: { name: 'bgp-auth', namespace: NS },
            type: 'kubernetes.io/basic-auth',
            data: { password: Buffer.from('s3cr3t').toString('base64') },
          },
        ],
      });
      expect(c.peers[0]!.password).toBe('s3cr3t');
    });
  });

  test('12 bfdProfile names a missing profile (transient)', () => {
    expectProblems(
      problems({ bgpPeers: [peer('p', { bfdProfile: 'fast' })] }),
      problem('BGPPeer', 'p', 'spec.bfdProfile', /"fast" not found/, true),
    );
    valid({ bgpPeers: [peer('p', { bfdProfile: 'fast' })], bfdProfiles: [bfd('fast')] });
  });

  describe('13 Community value', () => {
    test.each<[string, RegExp]>([
      ['65536:1', /0-65535/],
      ['1:65536', /0-65535/],
      ['large:1:2:4294967296', /0-4294967295/],
      ['lage:1:2:3', /neither A:B nor large:A:B:C/],
      ['1:2:3', /neither A:B nor large:A:B:C/],
      ['65535', /neither A:B nor large:A:B:C/],
      ['large:1:2', /large:A:B:C/],
      ['a:b', /0-65535/],
    ])('%j', (value, reason) => {
      expectProblems(
        problems({
          communities: [
            community('comms', [
              { name: 'ok', value: '1:1' },
              { name: 'bad', value },
            ]),
          ],
        }),
        problem('Community', 'comms', 'spec.communities[1].value', reason),
      );
    });
  });

  test('14 alias defined twice, across objects', () => {
    expectProblems(
      problems({
        communities: [
          community('first', [{ name: 'no-export', value: '65535:65281' }]),
          community('second', [
            { name: 'other', value: '1:1' },
            { name: 'no-export', value: '65535:65281' },
          ]),
        ],
      }),
      problem('Community', 'second', 'spec.communities[1].name', /"no-export".*Community\/first/),
    );
  });

  describe('15 IPAddressPool addresses', () => {
    test.each<[string, unknown[], string, RegExp]>([
      ['no addresses', [], 'spec.addresses', /at least one/],
      ['bad CIDR', ['192.0.2.0/33'], 'spec.addresses[0]', /invalid CIDR "192\.0\.2\.0\/33"/],
      ['bad CIDR (second entry)', ['192.0.2.0/28', '198.51.100.0/2x'], 'spec.addresses[1]', /invalid CIDR/],
      ['unparsable range start', ['192.0.2.x-192.0.2.5'], 'spec.addresses[0]', /range start/],
      ['unparsable range end', ['192.0.2.1-192.0.2.500'], 'spec.addresses[0]', /range end/],
      ['start after end', ['192.0.2.9-192.0.2.1'], 'spec.addresses[0]', /starts after it ends/],
      [
        'mixed family [quirk: rejected]',
        ['192.0.2.1-2001:db8::1'],
        'spec.addresses[0]',
        /mixes IPv4 and IPv6/,
      ],
    ])('%s', (_what, addresses, path, reason) => {
      expectProblems(
        problems({ ipAddressPools: [pool('p', addresses)] }),
        problem('IPAddressPool', 'p', path, reason),
      );
    });
  });

  describe('16 serviceAllocation duplicates and malformed selectors', () => {
    test.each<[string, Spec, string, RegExp]>([
      [
        'duplicate namespace',
        { namespaces: ['web', 'db', 'web'] },
        'spec.serviceAllocation.namespaces[2]',
        /"web"/,
      ],
      [
        'duplicate namespace selector',
        { namespaceSelectors: [{ matchLabels: { team: 'a' } }, { matchLabels: { team: 'a' } }] },
        'spec.serviceAllocation.namespaceSelectors[1]',
        /duplicate/,
      ],
      [
        'malformed service selector',
        { serviceSelectors: [{ matchExpressions: [{ key: 'app', operator: 'Like', values: ['x'] }] }] },
        'spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].operator',
        /"Like"/,
      ],
      [
        'duplicate value in a namespace selector expression',
        {
          namespaceSelectors: [
            { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['a', 'a'] }] },
          ],
        },
        'spec.serviceAllocation.namespaceSelectors[0].matchExpressions[0].values',
        /duplicate value/,
      ],
    ])('%s', (_what, serviceAllocation, path, reason) => {
      expectProblems(
        problems({ ipAddressPools: [pool('p', ['192.0.2.0/28'], { serviceAllocation })] }),
        problem('IPAddressPool', 'p', path, reason),
      );
    });
  });

  describe('17 overlapping CIDRs', () => {
    test('within one pool', () => {
      expectProblems(
        problems({ ipAddressPools: [pool('p', ['192.0.2.0/28', '192.0.2.8/29'])] }),
        problem('IPAddressPool', 'p', 'spec.addresses[1]', /192\.0\.2\.8\/29 overlaps 192\.0\.2\.0\/28/),
      );
    });
    test('a range overlapping a CIDR of another pool', () => {
      expectProblems(
        problems({
          ipAddressPools: [
            pool('a', ['2001:db8::/120']),
            pool('b', ['198.51.100.0/24', '2001:db8::ff-2001:db8::1:0']),
          ],
        }),
        problem(
          'IPAddressPool',
          'b',
          'spec.addresses[1]',
          /2001:db8::ff\/128 overlaps 2001:db8::\/120.*IPAddressPool\/a/,
        ),
      );
    });
    test('adjacent blocks and different families do not overlap', () => {
      valid({
        ipAddressPools: [
          pool('a', ['192.0.2.0/25', '192.0.2.128-192.0.2.255']),
          pool('b', ['2001:db8::/64', '198.51.100.0/24']),
        ],
      });
    });
  });

  describe('18 L2Advertisement', () => {
    test.each<[string, Spec, string, RegExp]>([
      [
        'duplicate ipAddressPools entry',
        { ipAddressPools: ['p', 'p'] },
        'spec.ipAddressPools[1]',
        /duplicate entry "p"/,
      ],
      [
        'duplicate pool selector',
        { ipAddressPoolSelectors: [{ matchLabels: { t: 'x' } }, { matchLabels: { t: 'x' } }] },
        'spec.ipAddressPoolSelectors[1]',
        /duplicate/,
      ],
      [
        'malformed node selector',
        { nodeSelectors: [{ matchExpressions: [{ key: 'zone', operator: 'In' }] }] },
        'spec.nodeSelectors[0].matchExpressions[0].values',
        /at least one value/,
      ],
      [
        'malformed service selector',
        { serviceSelectors: [{ matchExpressions: [{ key: 'app', operator: 'Exists', values: ['x'] }] }] },
        'spec.serviceSelectors[0].matchExpressions[0].values',
        /takes no values/,
      ],
      [
        'malformed preferred selector',
        {
          preferredNodeSelectors: [
            { weight: 10, preference: { matchExpressions: [{ key: 'zone', operator: 'Near' }] } },
          ],
        },
        'spec.preferredNodeSelectors[0].matchExpressions[0].operator',
        /"Near"/,
      ],
    ])('%s', (_what, spec, path, reason) => {
      expectProblems(
        problems({ ipAddressPools: [pool('p', ['192.0.2.0/28'])], l2Advertisements: [l2('l2', spec)] }),
        problem('L2Advertisement', 'l2', path, reason),
      );
    });
  });

  describe('19 BGPAdvertisement duplicates and selectors', () => {
    test.each<[string, Spec, string, RegExp]>([
      [
        'duplicate ipAddressPools',
        { ipAddressPools: ['p', 'q', 'p'] },
        'spec.ipAddressPools[2]',
        /duplicate entry "p"/,
      ],
      [
        'duplicate communities',
        { communities: ['1:1', '1:1'] },
        'spec.communities[1]',
        /duplicate entry "1:1"/,
      ],
      ['duplicate peers', { peers: ['r1', 'r1'] }, 'spec.peers[1]', /duplicate entry "r1"/],
      [
        'duplicate node selector',
        { nodeSelectors: [{ matchLabels: { zone: 'a' } }, { matchLabels: { zone: 'a' } }] },
        'spec.nodeSelectors[1]',
        /duplicate/,
      ],
      [
        'malformed service selector',
        { serviceSelectors: [{ matchLabels: { 'bad key!': 'x' } }] },
        'spec.serviceSelectors[0].matchLabels',
        /bad key!/,
      ],
    ])('%s', (_what, spec, path, reason) => {
      expectProblems(
        problems({ ipAddressPools: [pool('p', ['192.0.2.0/28'])], bgpAdvertisements: [bgpAd('ad', spec)] }),
        problem('BGPAdvertisement', 'ad', path, reason),
      );
    });
  });

  describe('20 serviceSelectors with non-default aggregation', () => {
    const sel = [{ matchLabels: { app: 'web' } }];
    test('rejected (schema CEL rule, reported on spec)', () => {
      expectProblems(
        problems({
          ipAddressPools: [pool('p', ['192.0.2.0/24'])],
          bgpAdvertisements: [bgpAd('ad', { serviceSelectors: sel, aggregationLength: 24 })],
        }),
        problem('BGPAdvertisement', 'ad', 'spec', /serviceSelectors/),
      );
    });
    test('rejected by layer 3 alone, per field', () => {
      expectProblems(
        problems(
          {
            ipAddressPools: [pool('p', ['192.0.2.0/24', '2001:db8::/64'])],
            bgpAdvertisements: [
              bgpAd('ad', { serviceSelectors: sel, aggregationLength: 24, aggregationLengthV6: 64 }),
            ],
          },
          {},
          layer3,
        ),
        problem('BGPAdvertisement', 'ad', 'spec.aggregationLength', /serviceSelectors/),
        problem('BGPAdvertisement', 'ad', 'spec.aggregationLengthV6', /serviceSelectors/),
      );
    });
    test('defaults 32/128 written out are fine', () => {
      valid({
        ipAddressPools: [pool('p', ['192.0.2.0/24'])],
        bgpAdvertisements: [
          bgpAd('ad', { serviceSelectors: sel, aggregationLength: 32, aggregationLengthV6: 128 }),
        ],
      });
    });
  });

  describe('21 aggregation length out of range', () => {
    test('> 32 and > 128', () => {
      expectProblems(
        problems({
          ipAddressPools: [pool('p', ['192.0.2.0/28'])],
          bgpAdvertisements: [bgpAd('ad', { aggregationLength: 33, aggregationLengthV6: 129 })],
        }),
        problem('BGPAdvertisement', 'ad', 'spec.aggregationLength', /33/),
        problem('BGPAdvertisement', 'ad', 'spec.aggregationLengthV6', /129/),
      );
    });
    test('aggregationLengthV6 < 1 [quirk: rejected]', () => {
      expectProblems(
        problems(
          {
            ipAddressPools: [pool('p', ['192.0.2.0/28'])],
            bgpAdvertisements: [bgpAd('ad', { aggregationLengthV6: 0 })],
          },
          {},
          layer3,
        ),
        problem('BGPAdvertisement', 'ad', 'spec.aggregationLengthV6', /0 is not a valid IPv6 prefix length/),
      );
    });
  });

  test.each<[string, RegExp]>([
    ['65536:1', /0-65535/],
    ['large:4294967296:0:0', /0-4294967295/],
    ['x:1', /0-65535/],
  ])('22 community literal with a bad number %j', (item, reason) => {
    expectProblems(
      problems({
        ipAddressPools: [pool('p', ['192.0.2.0/28'])],
        bgpAdvertisements: [bgpAd('ad', { communities: [item] })],
      }),
      problem('BGPAdvertisement', 'ad', 'spec.communities[0]', reason),
    );
  });

  test.each<string>(['no-export', '1:2:3', 'large:1:2', '65535'])(
    '23 community item %j, neither alias nor literal (transient)',
    (item) => {
      expectProblems(
        problems({
          ipAddressPools: [pool('p', ['192.0.2.0/28'])],
          bgpAdvertisements: [bgpAd('ad', { communities: ['1:1', item] })],
        }),
        problem('BGPAdvertisement', 'ad', 'spec.communities[1]', new RegExp(`"${item}".*alias`), true),
      );
    },
  );

  describe('24 aggregation shorter than the largest block of an address entry', () => {
    test('CIDR entry', () => {
      expectProblems(
        problems({
          ipAddressPools: [pool('p', ['192.0.2.0/24'])],
          bgpAdvertisements: [bgpAd('ad', { aggregationLength: 16 })],
        }),
        problem(
          'BGPAdvertisement',
          'ad',
          'spec.aggregationLength',
          /16 is shorter than \/24.*IPAddressPool\/p/,
        ),
      );
    });
    test('range entry: its largest summarised block counts', () => {
      // 198.51.100.1-198.51.100.6 = .1/32 .2/31 .4/31 .6/32: largest block /31.
      const input = (len: number) => ({
        ipAddressPools: [pool('p', ['198.51.100.1-198.51.100.6'])],
        bgpAdvertisements: [bgpAd('ad', { aggregationLength: len })],
      });
      expectProblems(
        problems(input(30)),
        problem('BGPAdvertisement', 'ad', 'spec.aggregationLength', /\/31/),
      );
      valid(input(31));
    });
    test('IPv6', () => {
      expectProblems(
        problems({
          ipAddressPools: [pool('p', ['2001:db8::/64'])],
          bgpAdvertisements: [bgpAd('ad', { aggregationLengthV6: 48 })],
        }),
        problem('BGPAdvertisement', 'ad', 'spec.aggregationLengthV6', /48 is shorter than \/64/),
      );
    });
    test('only pools the ad applies to count', () => {
      valid({
        ipAddressPools: [pool('wide', ['192.0.2.0/24']), pool('narrow', ['198.51.100.0/28'])],
        bgpAdvertisements: [bgpAd('ad', { aggregationLength: 28, ipAddressPools: ['narrow'] })],
      });
    });
  });

  describe('25 LOCAL_PREF conflict', () => {
    const base = { nodes: NODES, ipAddressPools: [pool('p', ['192.0.2.0/24'])] };
    test('two ads on one pool with different localPref', () => {
      expectProblems(
        problems({
          ...base,
          bgpAdvertisements: [bgpAd('a', { localPref: 100 }), bgpAd('b', { localPref: 200 })],
        }),
        problem(
          'BGPAdvertisement',
          'b',
          'spec.localPref',
          /200 conflicts with localPref 100 of BGPAdvertisement\/a/,
        ),
      );
    });
    test.each<[string, Spec, Spec]>([
      ['aggregation lengths differ (v4-only pool)', { aggregationLength: 32 }, { aggregationLength: 24 }],
      ['disjoint peers', { peers: ['r1'] }, { peers: ['r2'] }],
      [
        'disjoint node sets',
        { nodeSelectors: [{ matchLabels: { zone: 'a' } }] },
        { nodeSelectors: [{ matchLabels: { zone: 'b' } }] },
      ],
      ['one ad has serviceSelectors', {}, { serviceSelectors: [{ matchLabels: { app: 'x' } }] }],
      ['same localPref', {}, { localPref: 100 }],
    ])('escape: %s', (_what, a, b) => {
      valid({
        ...base,
        bgpAdvertisements: [bgpAd('a', { localPref: 100, ...a }), bgpAd('b', { localPref: 200, ...b })],
      });
    });
    test('overlapping peers or one empty peer list do not escape', () => {
      expect(
        problems({
          ...base,
          bgpAdvertisements: [
            bgpAd('a', { localPref: 100, peers: ['r1'] }),
            bgpAd('b', { localPref: 200, peers: ['r2', 'r1'] }),
          ],
        }),
      ).toHaveLength(1);
      expect(
        problems({
          ...base,
          bgpAdvertisements: [bgpAd('a', { localPref: 100, peers: ['r1'] }), bgpAd('b', { localPref: 200 })],
        }),
      ).toHaveLength(1);
    });
    test('dual pool: only one family length differing does not escape', () => {
      expectProblems(
        problems({
          nodes: NODES,
          ipAddressPools: [pool('p', ['192.0.2.0/24', '2001:db8::/120'])],
          bgpAdvertisements: [
            bgpAd('a', { localPref: 100 }),
            bgpAd('b', { localPref: 200, aggregationLength: 24 }),
          ],
        }),
        problem('BGPAdvertisement', 'b', 'spec.localPref', /conflicts/),
      );
      valid({
        nodes: NODES,
        ipAddressPools: [pool('p', ['192.0.2.0/24', '2001:db8::/120'])],
        bgpAdvertisements: [
          bgpAd('a', { localPref: 100 }),
          bgpAd('b', { localPref: 200, aggregationLength: 24, aggregationLengthV6: 120 }),
        ],
      });
    });
  });

  describe('26 IPv6 pool advertised to a peer whose BFD profile has echo mode', () => {
    const common = {
      bfdProfiles: [bfd('echo', { echoMode: true }), bfd('plain')],
      bgpPeers: [
        peer('r1', { bfdProfile: 'echo' }),
        peer('r2', { peerAddress: '192.0.2.2', bfdProfile: 'plain' }),
      ],
    };
    test('reached through "all peers"', () => {
      expectProblems(
        problems({
          ...common,
          ipAddressPools: [pool('v6', ['2001:db8::/120'])],
          bgpAdvertisements: [bgpAd('ad')],
        }),
        problem('BGPAdvertisement', 'ad', 'spec.peers', /IPAddressPool\/v6.*BGPPeer\/r1.*BFDProfile\/echo/),
      );
    });
    test('not reached, or IPv4-only pool: fine', () => {
      valid({
        ...common,
        ipAddressPools: [pool('v6', ['2001:db8::/120'])],
        bgpAdvertisements: [bgpAd('ad', { peers: ['r2'] })],
      });
      valid({ ...common, ipAddressPools: [pool('v4', ['192.0.2.0/24'])], bgpAdvertisements: [bgpAd('ad')] });
    });
  });

  describe('27 FRR cross-peer rules', () => {
    test('different routerID on a shared node', () => {
      expectProblems(
        problems({
          bgpPeers: [
            peer('r1', { routerID: '192.0.2.10' }),
            peer('r2', { peerAddress: '192.0.2.2', routerID: '192.0.2.11' }),
          ],
        }),
        problem(
          'BGPPeer',
          'r2',
          'spec.routerID',
          /"192\.0\.2\.11" differs from "192\.0\.2\.10" of BGPPeer\/r1/,
        ),
      );
    });
    test('one routerID empty, the other set', () => {
      expectProblems(
        problems({
          bgpPeers: [peer('r1'), peer('r2', { peerAddress: '192.0.2.2', routerID: '192.0.2.11' })],
        }),
        problem('BGPPeer', 'r2', 'spec.routerID', /BGPPeer\/r1/),
      );
    });
    test('same address in the same VRF', () => {
      expectProblems(
        problems({ bgpPeers: [peer('r1'), peer('r2', { peerASN: 64502 })] }),
        problem('BGPPeer', 'r2', 'spec.peerAddress', /same peer as BGPPeer\/r1/),
      );
    });
    test('same interface in the same VRF', () => {
      expectProblems(
        problems({
          bgpPeers: [
            peer('r1', { peerAddress: undefined, interface: 'eth1' }),
            peer('r2', { peerAddress: undefined, interface: 'eth1' }),
          ],
        }),
        problem('BGPPeer', 'r2', 'spec.interface', /same peer as BGPPeer\/r1/),
      );
    });
    test('different myASN in the same VRF', () => {
      expectProblems(
        problems({ bgpPeers: [peer('r1'), peer('r2', { peerAddress: '192.0.2.2', myASN: 64499 })] }),
        problem('BGPPeer', 'r2', 'spec.myASN', /64499 differs from 64500 of BGPPeer\/r1/),
      );
    });
    test('a different VRF allows the same address and another myASN', () => {
      valid({ bgpPeers: [peer('r1'), peer('r2', { vrf: 'red', myASN: 64499 })] });
    });
    test('peers without a common node are not compared', () => {
      valid({
        nodes: NODES,
        bgpPeers: [
          peer('r1', { routerID: '192.0.2.10', nodeSelectors: [{ matchLabels: { zone: 'a' } }] }),
          peer('r2', { routerID: '192.0.2.11', myASN: 1, nodeSelectors: [{ matchLabels: { zone: 'b' } }] }),
        ],
      });
    });
    test('with an empty node list every pair is assumed to share a node', () => {
      expect(
        problems({
          bgpPeers: [
            peer('r1', { nodeSelectors: [{ matchLabels: { zone: 'a' } }] }),
            peer('r2', { nodeSelectors: [{ matchLabels: { zone: 'b' } }] }),
          ],
        }),
      ).toEqual([problem('BGPPeer', 'r2', 'spec.peerAddress', /same peer/)]);
    });
  });
});

// ------------------------------------------------------------------------------ across rows

describe('all problems are reported', () => {
  test('several errors across objects and kinds in one parse, in a.12 evaluation order', () => {
    const r = parse({
      nodes: NODES,
      bfdProfiles: [bfd('echo', { echoMode: true })],
      bgpPeers: [
        peer('r1', { myASN: 0 }),
        peer('r2', { myASN: 0 }), // same address as r1 → rule 27
        peer('r3', { peerAddress: '192.0.2.3', myASN: 0, bfdProfile: 'missing' }),
        peer('r4', { peerAddress: '192.0.2.4', myASN: 0, bfdProfile: 'echo' }),
      ],
      communities: [community('comms', [{ name: 'bad', value: '1' }])],
      ipAddressPools: [pool('broken', ['192.0.2.0/33']), pool('v6', ['2001:db8::/120'])],
      l2Advertisements: [l2('l2', { ipAddressPools: ['v6', 'v6'] })],
      bgpAdvertisements: [
        bgpAd('lp100', { localPref: 100 }),
        bgpAd('lp200', { localPref: 200, communities: ['unknown'] }),
      ],
    });
    expect(r.config).toBeUndefined();
    expect(r.problems.map((p) => [p.kind, p.name, p.path])).toEqual([
      // FRR cross-peer rules run first.
      ['BGPPeer', 'r2', 'spec.peerAddress'],
      // then peers…
      ['BGPPeer', 'r1', 'spec.myASN'],
      ['BGPPeer', 'r2', 'spec.myASN'],
      ['BGPPeer', 'r3', 'spec.myASN'],
      ['BGPPeer', 'r3', 'spec.bfdProfile'],
      ['BGPPeer', 'r4', 'spec.myASN'],
      // communities, pools, L2, BGP ads…
      ['Community', 'comms', 'spec.communities[0].value'],
      ['IPAddressPool', 'broken', 'spec.addresses[0]'],
      ['L2Advertisement', 'l2', 'spec.ipAddressPools[1]'],
      ['BGPAdvertisement', 'lp200', 'spec.communities[0]'],
    ]);
    expect(r.problems.filter((p) => p.transient).map((p) => `${p.kind}/${p.name}`)).toEqual([
      'BGPPeer/r3',
      'BGPAdvertisement/lp200',
    ]);
  });

  test('cross-checks (LOCAL_PREF, BFD echo) are reported next to other errors', () => {
    const r = parse({
      nodes: NODES,
      bfdProfiles: [bfd('echo', { echoMode: true })],
      bgpPeers: [peer('r1', { bfdProfile: 'echo' })],
      ipAddressPools: [pool('v6', ['2001:db8::/120']), pool('bad', [])],
      bgpAdvertisements: [bgpAd('lp100', { localPref: 100 }), bgpAd('lp200', { localPref: 200 })],
    });
    expect(r.problems.map(formatProblem)).toEqual([
      expect.stringMatching(/^IPAddressPool\/bad: spec\.addresses: /),
      expect.stringMatching(/^BGPAdvertisement\/lp200: spec\.localPref: 200 conflicts/),
      expect.stringMatching(/^BGPAdvertisement\/lp100: spec\.peers: advertises IPv6/),
      expect.stringMatching(/^BGPAdvertisement\/lp200: spec\.peers: advertises IPv6/),
    ]);
  });

  test('formatProblem: <Kind>/<name>: <field.path>: <reason>', () => {
    expect(
      formatProblem({ kind: 'IPAddressPool', name: 'p', path: 'spec.addresses[0]', reason: 'bad' }),
    ).toBe('IPAddressPool/p: spec.addresses[0]: bad');
    expect(formatProblem({ kind: 'IPAddressPool', name: 'p', path: '', reason: 'bad' })).toBe(
      'IPAddressPool/p: bad',
    );
  });

  test('controller scope parses only pools and communities (a.11)', () => {
    const input = {
      bgpPeers: [peer('r1', { myASN: 0 })],
      l2Advertisements: [l2('l2', { ipAddressPools: ['p', 'p'] })],
      bgpAdvertisements: [bgpAd('ad', { communities: ['unknown'] })],
      ipAddressPools: [pool('p', ['192.0.2.0/28'])],
    };
    expect(problems(input, { scope: 'controller' })).toEqual([]);
    expect(problems(input, { scope: 'full' })).toHaveLength(3);
    expectProblems(
      problems(
        { ...input, communities: [community('c', [{ name: 'x', value: '1' }])] },
        { scope: 'controller' },
      ),
      problem('Community', 'c', 'spec.communities[0].value', /neither/),
    );
  });
});

// ------------------------------------------------------------------------------ a.5 conversion

describe('BGPPeer v1beta1 (a.5)', () => {
  test('timers become explicit zeros when absent: holdTime 0 / keepaliveTime 0 ("timers 0 0")', () => {
    const c = valid({ bgpPeers: [peerV1('old')] });
    expect(c.peers[0]).toMatchObject({
      name: 'old',
      holdTime: 0,
      keepaliveTime: 0,
      myASN: 64500,
      peerASN: 64501,
    });
    // A v1beta2 peer without timers has none (FRR defaults, no timers line).
    const d = valid({ bgpPeers: [peer('new')] });
    expect(d.peers[0]!.holdTime).toBeUndefined();
    expect(d.peers[0]!.keepaliveTime).toBeUndefined();
  });

  test('only holdTime given: keepalive is the explicit zero of the conversion, not hold/3', () => {
    const c = valid({ bgpPeers: [peerV1('old', { holdTime: '90s' })] });
    expect(c.peers[0]).toMatchObject({ holdTime: 90, keepaliveTime: 0 });
  });

  test('both timers are kept', () => {
    const c = valid({ bgpPeers: [peerV1('old', { holdTime: '90s', keepaliveTime: '30s' })] });
    expect(c.peers[0]).toMatchObject({ holdTime: 90, keepaliveTime: 30 });
  });

  test('legacy nodeSelectors map to label selectors; an empty one matches every node', () => {
    const c = valid({
      nodes: NODES,
      bgpPeers: [
        peerV1('labels', { nodeSelectors: [{ matchLabels: { zone: 'a' } }] }),
        peerV1('exprs', {
          peerAddress: '192.0.2.2',
          nodeSelectors: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['b', 'c'] }] }],
        }),
        peerV1('empty', { peerAddress: '192.0.2.3', nodeSelectors: [{}] }),
        peerV1('mixed', {
          peerAddress: '192.0.2.4',
          nodeSelectors: [
            {
              matchLabels: { rack: 'r1' },
              matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }],
            },
          ],
        }),
      ],
    });
    expect(sets(c.peers)).toEqual({
      labels: ['node-a'],
      exprs: ['node-b', 'node-c'],
      empty: ['node-a', 'node-b', 'node-c'],
      mixed: ['node-b'],
    });
  });

  test('converted peers go through the v1beta2 rules (duplicate value, timers)', () => {
    expectProblems(
      problems({
        bgpPeers: [
          peerV1('old', {
            nodeSelectors: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'a'] }] }],
          }),
        ],
      }),
      problem('BGPPeer', 'old', 'spec.nodeSelectors[0].matchExpressions[0].values', /duplicate value/),
    );
    expectProblems(
      problems({ bgpPeers: [peerV1('old', { holdTime: '2s' })] }),
      problem('BGPPeer', 'old', 'spec.holdTime', /3s/),
    );
  });
});

// ------------------------------------------------------------------------------ a.4 timers

describe('timers (a.4)', () => {
  test.each<[string | undefined, string | undefined, number | undefined, number | undefined]>([
    [undefined, undefined, undefined, undefined],
    ['90s', undefined, 90, 30],
    [undefined, '30s', 90, 30],
    ['1m30s', undefined, 90, 30],
    ['90s', '10s', 90, 10],
    // Truncation to whole seconds (keepalive = hold/3 computed before truncating).
    ['10.9s', undefined, 10, 3],
    ['3.5s', '1.2s', 3, 1],
    ['9500ms', undefined, 9, 3],
    // Exactly 3s is the minimum.
    ['3s', undefined, 3, 1],
    // Explicit zeros are valid ("timers 0 0").
    ['0s', undefined, 0, 0],
    [undefined, '0s', 0, 0],
    ['0s', '0s', 0, 0],
    ['90s', '0s', 90, 0],
    // 1ms truncates to 0: valid, and keepalive (hold/3) is 0 too.
    ['1ms', undefined, 0, 0],
  ])('hold %s keepalive %s → %s/%s', (holdTime, keepaliveTime, hold, keep) => {
    const spec: Spec = {};
    if (holdTime !== undefined) spec.holdTime = holdTime;
    if (keepaliveTime !== undefined) spec.keepaliveTime = keepaliveTime;
    const p = valid({ bgpPeers: [peer('p', spec)] }).peers[0]!;
    expect(p.holdTime).toBe(hold);
    expect(p.keepaliveTime).toBe(keep);
  });

  test.each<[string | undefined, string | undefined, string, RegExp]>([
    ['2s', undefined, 'spec.holdTime', /3s/],
    ['2.9s', undefined, 'spec.holdTime', /3s/],
    // Only keepalive: hold = 3 × 0.9s = 2.7s → rejected.
    [undefined, '900ms', 'spec.holdTime', /3s/],
    ['30s', '31s', 'spec.keepaliveTime', /exceed/],
    ['0s', '1s', 'spec.keepaliveTime', /exceed/],
  ])('hold %s keepalive %s rejected', (holdTime, keepaliveTime, path, reason) => {
    const spec: Spec = {};
    if (holdTime !== undefined) spec.holdTime = holdTime;
    if (keepaliveTime !== undefined) spec.keepaliveTime = keepaliveTime;
    expectProblems(problems({ bgpPeers: [peer('p', spec)] }), problem('BGPPeer', 'p', path, reason));
  });
});

// ------------------------------------------------------------------------------ a.2 L2

describe('L2 pool selection and deduplication (a.2)', () => {
  const pools = [
    pool('a', ['192.0.2.0/28'], {}, { tier: 'x' }),
    pool('b', ['192.0.2.16/28'], {}, { tier: 'y' }),
    pool('c', ['192.0.2.32/28']),
  ];
  const l2Of = (c: Config) =>
    Object.fromEntries([...c.pools].map(([n, p]) => [n, p.l2Advertisements.map((a) => a.name)]));

  test('both fields empty = every pool; named ∪ selected otherwise, possibly none', () => {
    const c = valid({
      nodes: NODES,
      ipAddressPools: pools,
      l2Advertisements: [
        l2('all', {}),
        l2('named', { ipAddressPools: ['a', 'unknown'], interfaces: ['eth1'] }),
        l2('selected', { ipAddressPoolSelectors: [{ matchLabels: { tier: 'y' } }], interfaces: ['eth2'] }),
        l2('union', {
          ipAddressPools: ['c'],
          ipAddressPoolSelectors: [{ matchLabels: { tier: 'x' } }],
          interfaces: ['eth3'],
        }),
        l2('none-named', { ipAddressPools: ['unknown'], interfaces: ['eth4'] }),
        l2('none-selected', {
          ipAddressPoolSelectors: [{ matchLabels: { tier: 'z' } }],
          interfaces: ['eth5'],
        }),
        // Reaching the same pool by name and by selector attaches once.
        l2('twice', {
          ipAddressPools: ['b'],
          ipAddressPoolSelectors: [{ matchLabels: { tier: 'y' } }],
          interfaces: ['eth6'],
        }),
      ],
    });
    expect(l2Of(c)).toEqual({
      a: ['all', 'named', 'union'],
      b: ['all', 'selected', 'twice'],
      c: ['all', 'union'],
    });
  });

  test('identical node set, interfaces, allInterfaces and service selectors: the second is dropped', () => {
    const c = valid({
      nodes: NODES,
      ipAddressPools: pools,
      l2Advertisements: [
        l2('first', {
          ipAddressPools: ['a'],
          interfaces: ['eth0', 'eth1'],
          serviceSelectors: [{ matchLabels: { app: 'x' } }, { matchLabels: { app: 'y' } }],
        }),
        // Same content in another order, and reaching pool a through a selector.
        l2('second', {
          ipAddressPoolSelectors: [{ matchLabels: { tier: 'x' } }],
          interfaces: ['eth1', 'eth0'],
          serviceSelectors: [{ matchLabels: { app: 'y' } }, { matchLabels: { app: 'x' } }],
        }),
        // Explicit node selector selecting every node = the same node set.
        l2('all-a', { ipAddressPools: ['c'] }),
        l2('all-b', {
          ipAddressPools: ['c'],
          nodeSelectors: [
            { matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'DoesNotExist' }] },
          ],
        }),
      ],
    });
    expect(l2Of(c)).toEqual({ a: ['first'], b: [], c: ['all-a'] });
  });

  test('different node sets, interfaces or service selectors are kept', () => {
    const c = valid({
      nodes: NODES,
      ipAddressPools: [pools[0]!],
      l2Advertisements: [
        l2('base', {}),
        l2('nodes', { nodeSelectors: [{ matchLabels: { zone: 'a' } }] }),
        l2('ifaces', { interfaces: ['eth0'] }),
        l2('svc', { serviceSelectors: [{ matchLabels: { app: 'x' } }] }),
      ],
    });
    expect(l2Of(c)).toEqual({ a: ['base', 'nodes', 'ifaces', 'svc'] });
  });

  test('ads with preferences are never deduplicated, and their weights add up per node', () => {
    const pref = (weight: number, zone: string) => ({ weight, preference: { matchLabels: { zone } } });
    const c = valid({
      nodes: NODES,
      ipAddressPools: [pools[0]!],
      l2Advertisements: [
        l2('plain', {}),
        l2('p1', { preferredNodeSelectors: [pref(10, 'a'), { weight: 5, preference: {} }] }),
        l2('p2', { preferredNodeSelectors: [pref(10, 'a')] }),
        // Preferences that match nothing still count as "carries preferences".
        l2('p3', { preferredNodeSelectors: [pref(7, 'nowhere')] }),
        // Only nodes eligible through nodeSelectors score.
        l2('p4', {
          nodeSelectors: [{ matchLabels: { zone: 'b' } }],
          preferredNodeSelectors: [pref(3, 'a'), pref(4, 'b')],
        }),
      ],
    });
    const ads = c.pools.get('a')!.l2Advertisements;
    expect(ads.map((a) => a.name)).toEqual(['plain', 'p1', 'p2', 'p3', 'p4']);
    const weights = Object.fromEntries(ads.map((a) => [a.name, Object.fromEntries(a.preferredNodes)]));
    expect(weights).toEqual({
      plain: {},
      p1: { 'node-a': 15, 'node-b': 5, 'node-c': 5 },
      p2: { 'node-a': 10 },
      p3: {},
      p4: { 'node-b': 4 },
    });
  });
});

// ------------------------------------------------------------------------------ node selectors

describe('node selector resolution', () => {
  const nodes: NodeInfo[] = [
    { name: 'n1', labels: { zone: 'a', role: 'edge' } },
    { name: 'n2', labels: { zone: 'b', role: 'edge' } },
    { name: 'n3', labels: { zone: 'c' } },
  ];
  test.each<[string, unknown[] | undefined, string[]]>([
    ['absent = all nodes', undefined, ['n1', 'n2', 'n3']],
    ['empty list = all nodes', [], ['n1', 'n2', 'n3']],
    ['empty selector = all nodes', [{}], ['n1', 'n2', 'n3']],
    ['matchLabels', [{ matchLabels: { zone: 'b' } }], ['n2']],
    ['matchLabels AND', [{ matchLabels: { zone: 'a', role: 'edge' } }], ['n1']],
    ['selectors are OR-ed', [{ matchLabels: { zone: 'a' } }, { matchLabels: { zone: 'c' } }], ['n1', 'n3']],
    ['In', [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'c'] }] }], ['n1', 'n3']],
    [
      'NotIn (absent key matches)',
      [{ matchExpressions: [{ key: 'role', operator: 'NotIn', values: ['edge'] }] }],
      ['n3'],
    ],
    ['Exists', [{ matchExpressions: [{ key: 'role', operator: 'Exists' }] }], ['n1', 'n2']],
    ['DoesNotExist', [{ matchExpressions: [{ key: 'role', operator: 'DoesNotExist' }] }], ['n3']],
    ['matching nothing', [{ matchLabels: { zone: 'z' } }], []],
  ])('%s', (_what, nodeSelectors, expected) => {
    const spec: Spec = nodeSelectors === undefined ? {} : { nodeSelectors };
    const c = valid({
      nodes,
      ipAddressPools: [pool('p', ['192.0.2.0/28'])],
      bgpPeers: [peer('r1', spec)],
      l2Advertisements: [l2('l2', spec)],
      bgpAdvertisements: [bgpAd('ad', spec)],
    });
    expect([...c.peers[0]!.nodes].sort()).toEqual(expected);
    const p = c.pools.get('p')!;
    expect([...p.l2Advertisements[0]!.nodes].sort()).toEqual(expected);
    expect([...p.bgpAdvertisements[0]!.nodes].sort()).toEqual(expected);
  });
});

// ------------------------------------------------------------------------------ speaker

describe('speaker nodeName pre-filtering (a.11, d.3)', () => {
  const input: Partial<ConfigInput> = {
    nodes: NODES,
    ipAddressPools: [pool('p', ['192.0.2.0/28'])],
    bgpPeers: [
      peer('on-a', { nodeSelectors: [{ matchLabels: { zone: 'a' } }] }),
      // Invalid, and conflicting with on-a's router ID, but selects only node-b.
      peer('on-b', {
        peerAddress: '192.0.2.2',
        holdTime: '1s',
        routerID: '192.0.2.99',
        nodeSelectors: [{ matchLabels: { zone: 'b' } }],
      }),
      peer('everywhere', { peerAddress: '192.0.2.3' }),
    ],
    bgpAdvertisements: [
      bgpAd('ad-a', { nodeSelectors: [{ matchLabels: { zone: 'a' } }] }),
      bgpAd('ad-b', { nodeSelectors: [{ matchLabels: { zone: 'b' } }], communities: ['not-yet-created'] }),
    ],
  };

  test('without nodeName every object is checked', () => {
    // on-a and on-b share no node, so only "everywhere" is compared with on-b's router ID.
    expect(problems(input).map((p) => `${p.kind}/${p.name}: ${p.path}`)).toEqual([
      'BGPPeer/everywhere: spec.routerID',
      'BGPPeer/on-b: spec.holdTime',
      'BGPAdvertisement/ad-b: spec.communities[0]',
    ]);
  });

  test('a node only sees the peers and ads that select it', () => {
    const c = valid(input, { nodeName: 'node-a' });
    expect(c.peers.map((p) => p.name)).toEqual(['on-a', 'everywhere']);
    expect(c.pools.get('p')!.bgpAdvertisements.map((a) => a.name)).toEqual(['ad-a']);
    const b = problems(input, { nodeName: 'node-b' });
    expect(b.map((p) => `${p.kind}/${p.name}: ${p.path}`)).toEqual([
      'BGPPeer/everywhere: spec.routerID',
      'BGPPeer/on-b: spec.holdTime',
      'BGPAdvertisement/ad-b: spec.communities[0]',
    ]);
  });

  test('a node selected by nothing keeps only unrestricted peers', () => {
    const c = valid(input, { nodeName: 'node-c' });
    expect(c.peers.map((p) => p.name)).toEqual(['everywhere']);
    expect(c.pools.get('p')!.bgpAdvertisements).toEqual([]);
  });

  test('L2 advertisements are not pre-filtered', () => {
    const c = valid(
      {
        nodes: NODES,
        ipAddressPools: [pool('p', ['192.0.2.0/28'])],
        l2Advertisements: [l2('only-b', { nodeSelectors: [{ matchLabels: { zone: 'b' } }] })],
      },
      { nodeName: 'node-a' },
    );
    expect(c.pools.get('p')!.l2Advertisements.map((a) => [a.name, [...a.nodes]])).toEqual([
      ['only-b', ['node-b']],
    ]);
  });
});

// ------------------------------------------------------------------------------ d.3

describe('community order (d.3)', () => {
  test('standard A:B sorts as large (A×65536+B):0:0; aliases resolve; duplicates collapse', () => {
    const c = valid({
      ipAddressPools: [pool('p', ['192.0.2.0/28'])],
      communities: [
        community('aliases', [
          { name: 'three', value: 'large:3:0:0' },
          { name: 'no-export', value: '65535:65281' },
        ]),
      ],
      bgpAdvertisements: [
        bgpAd('ad', {
          communities: [
            '1:0', // 65536:0:0
            'large:1:0:0',
            '0:2', // 2:0:0
            'large:0:4294967295:4294967295',
            'three',
            '65535:65535', // 4294967295:0:0
            'large:4294967295:0:1',
            '0:0',
            'large:65535:0:0',
            'no-export', // 65535*65536+65281
            '65535:65281', // same community as the alias
          ],
        }),
      ],
    });
    expect(c.pools.get('p')!.bgpAdvertisements[0]!.communities.map((x) => x.text)).toEqual([
      '0:0',
      'large:0:4294967295:4294967295',
      'large:1:0:0',
      '0:2',
      'large:3:0:0',
      'large:65535:0:0',
      '1:0',
      '65535:65281',
      '65535:65535',
      'large:4294967295:0:1',
    ]);
  });

  test('numbers are written canonically (no leading zeros)', () => {
    const c = valid({
      ipAddressPools: [pool('p', ['192.0.2.0/28'])],
      bgpAdvertisements: [bgpAd('ad', { communities: ['064512:0100', 'large:01:02:03'] })],
    });
    expect(c.pools.get('p')!.bgpAdvertisements[0]!.communities.map((x) => x.text)).toEqual([
      'large:1:2:3',
      '64512:100',
    ]);
  });
});

// ------------------------------------------------------------------------------ a.0

describe('MetalLB namespace (a.0)', () => {
  test('objects outside the MetalLB namespace are reported, for every kind', () => {
    const other = <T extends RawObject>(o: T): T => ({
      ...o,
      metadata: { ...o.metadata, namespace: 'default' },
    });
    const r = problems({
      ipAddressPools: [other(pool('p', ['192.0.2.0/28']))],
      communities: [other(community('c', [{ name: 'x', value: '1:1' }]))],
      bfdProfiles: [other(bfd('b'))],
      bgpPeers: [other(peer('r'))],
      l2Advertisements: [other(l2('l'))],
      bgpAdvertisements: [other(bgpAd('a'))],
    });
    expect(r.map((p) => `${p.kind}/${p.name}: ${p.path}`).sort()).toEqual([
      'BFDProfile/b: metadata.namespace',
      'BGPAdvertisement/a: metadata.namespace',
      'BGPPeer/r: metadata.namespace',
      'Community/c: metadata.namespace',
      'IPAddressPool/p: metadata.namespace',
      'L2Advertisement/l: metadata.namespace',
    ]);
    expect(r[0]!.reason).toMatch(/"default".*"metallb-system"/);
  });

  test('the MetalLB namespace is configurable', () => {
    const inLb = { ...pool('p', ['192.0.2.0/28']), metadata: { name: 'p', namespace: 'lb' } };
    valid({ ipAddressPools: [inLb] }, { namespace: 'lb' });
    expectProblems(
      problems({ ipAddressPools: [inLb] }),
      problem(
        'IPAddressPool',
        'p',
        'metadata.namespace',
        /"lb" is not the MetalLB namespace "metallb-system"/,
      ),
    );
    expectProblems(
      problems({ ipAddressPools: [pool('p', ['192.0.2.0/28'])] }, { namespace: 'lb' }),
      problem(
        'IPAddressPool',
        'p',
        'metadata.namespace',
        /"metallb-system" is not the MetalLB namespace "lb"/,
      ),
    );
  });
});

// ------------------------------------------------------------------------------ a.1 / a.3 details

describe('serviceAllocation resolution (a.1)', () => {
  test('namespaces ∪ namespaces matched by selectors; negative priority = unset; {} = match-all', () => {
    const c = valid(
      {
        namespaces: [
          { name: 'web', labels: { team: 'a' } },
          { name: 'db', labels: { team: 'b' } },
        ],
        ipAddressPools: [
          pool('listed', ['192.0.2.0/28'], {
            serviceAllocation: {
              priority: -5,
              namespaces: ['x'],
              namespaceSelectors: [{ matchLabels: { team: 'a' } }],
            },
          }),
          pool('empty', ['192.0.2.16/28'], { serviceAllocation: {} }),
          pool('nomatch', ['192.0.2.32/28'], {
            serviceAllocation: { priority: 7, namespaceSelectors: [{ matchLabels: { team: 'zz' } }] },
          }),
          pool('plain', ['192.0.2.48/28']),
        ],
      },
      { scope: 'controller' },
    );
    const sa = (n: string) => c.pools.get(n)!.serviceAllocation;
    expect(sa('listed')!.priority).toBe(0);
    expect([...sa('listed')!.namespaces].sort()).toEqual(['web', 'x']);
    expect(sa('empty')!.serviceSelectors).toHaveLength(1);
    expect(sa('empty')!.serviceSelectors[0]!.matches({ any: 'thing' })).toBe(true);
    expect(sa('nomatch')!.priority).toBe(7);
    expect([...sa('nomatch')!.namespaces]).toEqual([]);
    expect(sa('nomatch')!.serviceSelectors).toEqual([]);
    expect(sa('plain')).toBeUndefined();
  });
});

describe('BGPAdvertisement communities limit (a.3)', () => {
  // a.3: "> 63 communities on one advertisement makes the speaker fail that service" — a runtime
  // failure of the service's announcement, not a configuration error: the row is absent from the
  // a.12 catalogue, so the configuration itself must stay valid.
  test('64 communities on one advertisement do not invalidate the configuration', () => {
    const communities = Array.from({ length: 64 }, (_, i) => `64512:${i}`);
    const c = valid({
      ipAddressPools: [pool('p', ['192.0.2.0/28'])],
      bgpAdvertisements: [bgpAd('ad', { communities })],
    });
    expect(c.pools.get('p')!.bgpAdvertisements[0]!.communities).toHaveLength(64);
  });
});
