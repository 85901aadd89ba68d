/**
 * Strict grammars (src/config/grammar.ts) for strings that end up in frr.conf or name kernel
 * objects, and their enforcement by the configuration parse: a value carrying whitespace, a
 * control character or a newline could inject FRR configuration and must be refused.
 */
import {
  communityAliasProblem,
  interfaceNameProblem,
  nodeNameProblem,
  objectNameProblem,
  passwordProblem,
  vrfNameProblem,
  type GrammarCheck,
} from '../../src/config/grammar.js';
import { ConfigParser, emptyInput, type ConfigInput, type RawObject } from '../../src/config/parse.js';
import { formatProblem, type Problem } from '../../src/config/problems.js';
import { CrdSchemas } from '../../src/config/schema.js';

const NS = 'metallb-system';
const parser = new ConfigParser(CrdSchemas.load());

type Spec = Record<string, unknown>;

const peer = (name: string, spec: Spec = {}, version = 'v1beta2'): RawObject => ({
  apiVersion: `metallb.io/${version}`,
  kind: 'BGPPeer',
  metadata: { name, namespace: NS },
  spec: { myASN: 64500, peerASN: 64501, peerAddress: '192.0.2.1', ...spec },
});

function problems(input: Partial<ConfigInput>): Problem[] {
  const r = parser.parse({ ...emptyInput(), ...input });
  if (r.problems.length) expect(r.config).toBeUndefined();
  return r.problems;
}

function expectOnly(actual: Problem[], kind: string, name: string, path: string, reason: RegExp): void {
  expect(actual).toEqual([{ kind, name, path, reason: expect.stringMatching(reason) }]);
}

function accepts(check: GrammarCheck, values: string[]): void {
  for (const v of values) expect([v, check(v)]).toEqual([v, undefined]);
}

function refuses(check: GrammarCheck, cases: Array<[string, RegExp]>): void {
  for (const [v, reason] of cases) {
    const p = check(v);
    expect([v, p]).toEqual([v, expect.stringMatching(reason)]);
  }
}

// ------------------------------------------------------------------------------ VRF / interface

describe.each<[string, GrammarCheck, string]>([
  ['VRF names', vrfNameProblem, 'VRF name'],
  ['interface names', interfaceNameProblem, 'interface name'],
])('%s', (_title, check, what) => {
  test('accepts Linux device names of 1-15 characters', () => {
    accepts(check, [
      'red',
      'eth0',
      'vrf-blue',
      'bond0.100',
      'enp0s31f6',
      'a',
      'x'.repeat(15),
      'br_ext',
      'Vrf1',
    ]);
  });
  test('refuses whitespace', () => {
    refuses(check, [
      ['vrf red', new RegExp(`${what} contains whitespace`)],
      [' red', /whitespace/],
      ['red ', /whitespace/],
    ]);
  });
  test('refuses a newline (FRR configuration injection)', () => {
    refuses(check, [
      ['red\nrouter bgp 1', new RegExp(`${what} contains a newline`)],
      ['red\r', /newline/],
    ]);
  });
  test('refuses control characters', () => {
    refuses(check, [
      ['a\tb', /control character/],
      ['a\x00b', /control character/],
      ['a\x1bb', /control character/],
      ['a\x7f', /control character/],
    ]);
  });
  test('refuses more than 15 characters (IFNAMSIZ)', () => {
    refuses(check, [['x'.repeat(16), /does not match/]]);
  });
  test('refuses "/", ".", "..", empty and non-ASCII', () => {
    refuses(check, [
      ['a/b', /does not match/],
      ['.', /"\." or "\.\."/],
      ['..', /"\." or "\.\."/],
      ['', /must not be empty/],
      ['vrf-é', /does not match/],
    ]);
  });
  test('refuses ":" (Linux dev_valid_name rejects it; "eth0:1" is an address label, not a device)', () => {
    refuses(check, [['eth0:1', /./]]);
  });
});

// ------------------------------------------------------------------------------ passwords

describe('TCP-MD5 passwords', () => {
  test('accepts printable ASCII without spaces, up to 80 characters', () => {
    accepts(passwordProblem, [
      'hunter2',
      'x',
      'p'.repeat(80),
      '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~',
      'AZaz09',
    ]);
  });
  const bad: Array<[string, RegExp]> = [
    ['Hunter2\nrouter bgp 1', /newline/],
    ['Hunter2 more', /whitespace/],
    ['Hunter2\tmore', /control character/],
    ['Hunter2\x00', /control character/],
    ['Hunter2' + 'Q'.repeat(74), /longer than 80/],
    ['Hünter2Secret', /printable ASCII/],
    ['Hunter2☃', /printable ASCII/],
    ['', /must not be empty/],
  ];
  test('refuses newline, space, control characters, > 80 characters, non-ASCII, empty', () => {
    refuses(passwordProblem, bad);
  });
  test('the problem text never contains the password', () => {
    for (const [pw] of bad) {
      const p = passwordProblem(pw) ?? '';
      if (pw) expect(p.includes(pw)).toBe(false);
      expect(p).not.toContain('Hunter2');
      expect(p).not.toContain('Hünter2');
    }
  });
});

// ------------------------------------------------------------------------------ community aliases

describe('community aliases', () => {
  test('accepts one token without a colon', () => {
    accepts(communityAliasProblem, ['no-export', 'NO_ADVERTISE', '_private', 'a.b-c', 'x'.repeat(63), '9']);
  });
  test('refuses a colon (would look like a literal)', () => {
    refuses(communityAliasProblem, [
      ['a:b', /does not match/],
      ['large:1:2:3', /does not match/],
      ['65535:65281', /does not match/],
    ]);
  });
  test('refuses whitespace, newline and control characters', () => {
    refuses(communityAliasProblem, [
      ['no export', /whitespace/],
      ['no-export\n', /newline/],
      ['no\x01export', /control character/],
    ]);
  });
  test('refuses empty, too long and a leading punctuation character', () => {
    refuses(communityAliasProblem, [
      ['', /must not be empty/],
      ['x'.repeat(64), /does not match/],
      ['-x', /does not match/],
      ['.x', /does not match/],
    ]);
  });
});

// ------------------------------------------------------------------------------ names

describe.each<[string, GrammarCheck, string]>([
  ['object names', objectNameProblem, 'name'],
  ['node names', nodeNameProblem, 'node name'],
])('%s (DNS subdomain, RFC 1123)', (_title, check, what) => {
  test('accepts lower-case DNS subdomains up to 253 characters', () => {
    accepts(check, ['node-a', 'a', '0', 'worker-1.example.com', 'a'.repeat(253), 'x-y-z.0-1']);
  });
  test('refuses upper case, underscores, leading/trailing "-", empty labels', () => {
    refuses(check, [
      ['Node-A', /does not match/],
      ['node_a', /does not match/],
      ['-node', /does not match/],
      ['node-', /does not match/],
      ['a..b', /does not match/],
      ['.a', /does not match/],
      ['a.', /does not match/],
    ]);
  });
  test('refuses whitespace, newline, control characters, empty, > 253 characters', () => {
    refuses(check, [
      ['node a', new RegExp(`${what} contains whitespace`)],
      ['node-a\nhostname x', /newline/],
      ['node\x07a', /control character/],
      ['', /must not be empty/],
      ['a'.repeat(254), /longer than 253/],
    ]);
  });
});

// ------------------------------------------------------------------------------ through the parser

describe('ConfigParser enforces the grammars with the right path', () => {
  test.each<[string, Spec, string, RegExp]>([
    ['VRF with a newline', { vrf: 'red\nrouter bgp 1' }, 'spec.vrf', /VRF name contains a newline/],
    ['VRF with whitespace', { vrf: 'red blue' }, 'spec.vrf', /VRF name contains whitespace/],
    ['VRF too long', { vrf: 'v'.repeat(16) }, 'spec.vrf', /VRF name/],
    ['VRF with "/"', { vrf: 'red/blue' }, 'spec.vrf', /VRF name/],
    [
      'interface with a control character',
      { peerAddress: undefined, interface: 'eth0\x1b' },
      'spec.interface',
      /control character/,
    ],
    [
      'interface with whitespace',
      { peerAddress: undefined, interface: 'eth0 x' },
      'spec.interface',
      /whitespace/,
    ],
    ['password with a newline', { password: 'Hunter2\nrouter' }, 'spec.password', /newline/],
    ['password with a space', { password: 'Hunter2 x' }, 'spec.password', /whitespace/],
    ['password longer than 80', { password: 'Hunter2' + 'Q'.repeat(80) }, 'spec.password', /longer than 80/],
    ['non-ASCII password', { password: 'Hünter2' }, 'spec.password', /printable ASCII/],
  ])('BGPPeer with %s', (_what, spec, path, reason) => {
    const ps = problems({ bgpPeers: [peer('edge', spec)] });
    expectOnly(ps, 'BGPPeer', 'edge', path, reason);
    const text = ps.map(formatProblem).join('\n');
    expect(text).not.toContain('Hunter2');
    expect(text).not.toContain('Hünter2');
  });

  test('a v1beta1 BGPPeer is held to the same password grammar', () => {
    const ps = problems({ bgpPeers: [peer('old', { password: 'Hunter2 x' }, 'v1beta1')] });
    expectOnly(ps, 'BGPPeer', 'old', 'spec.password', /whitespace/);
    expect(ps.map(formatProblem).join('\n')).not.toContain('Hunter2');
  });

  test('a password from a Secret is checked too, without echoing it', () => {
    const secret = (password: string): RawObject => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'bgp-auth', namespace: NS },
      type: 'kubernetes.io/basic-auth',
      data: { password: Buffer.from(password).toString('base64') },
    });
    for (const [pw, reason] of [
      ['Hunter2\nrouter bgp 1', /newline/],
      ['Hunter2 x', /whitespace/],
      ['Hunter2' + 'Q'.repeat(80), /longer than 80/],
    ] as Array<[string, RegExp]>) {
      const ps = problems({
        bgpPeers: [peer('edge', { passwordSecret: { name: 'bgp-auth' } })],
        secrets: [secret(pw)],
      });
      expectOnly(ps, 'BGPPeer', 'edge', 'spec.passwordSecret.name', reason);
      expect(ps.map(formatProblem).join('\n')).not.toContain('Hunter2');
    }
  });

  test('no other problem about a peer echoes its password either', () => {
    const ps = problems({
      bgpPeers: [
        peer('edge', { password: 'Hunter2', passwordSecret: { name: 'x' }, myASN: 0, holdTime: '1s' }),
      ],
    });
    expect(ps.length).toBeGreaterThan(0);
    expect(ps.map(formatProblem).join('\n')).not.toContain('Hunter2');
  });

  test('object names', () => {
    expectOnly(
      problems({ bgpPeers: [peer('Edge_Router')] }),
      'BGPPeer',
      'Edge_Router',
      'metadata.name',
      /"Edge_Router" does not match/,
    );
    expectOnly(
      problems({ bgpPeers: [peer('edge\nrouter bgp 1')] }),
      'BGPPeer',
      'edge\nrouter bgp 1',
      'metadata.name',
      /name contains a newline/,
    );
  });

  test('community aliases', () => {
    const ps = problems({
      communities: [
        {
          apiVersion: 'metallb.io/v1beta1',
          kind: 'Community',
          metadata: { name: 'comms', namespace: NS },
          spec: {
            communities: [
              { name: 'ok', value: '1:1' },
              { name: 'no:export', value: '65535:65281' },
              { name: 'no export', value: '65535:65282' },
            ],
          },
        },
      ],
    });
    expect(ps).toEqual([
      {
        kind: 'Community',
        name: 'comms',
        path: 'spec.communities[1].name',
        reason: expect.stringMatching(/does not match/),
      },
      {
        kind: 'Community',
        name: 'comms',
        path: 'spec.communities[2].name',
        reason: expect.stringMatching(/whitespace/),
      },
    ]);
  });

  test('L2Advertisement interfaces', () => {
    const ps = problems({
      ipAddressPools: [
        {
          apiVersion: 'metallb.io/v1beta1',
          kind: 'IPAddressPool',
          metadata: { name: 'p', namespace: NS },
          spec: { addresses: ['192.0.2.0/28'] },
        },
      ],
      l2Advertisements: [
        {
          apiVersion: 'metallb.io/v1beta1',
          kind: 'L2Advertisement',
          metadata: { name: 'lan', namespace: NS },
          spec: { interfaces: ['eth0', 'eth1\nx', 'e'.repeat(16)] },
        },
      ],
    });
    expect(ps).toEqual([
      {
        kind: 'L2Advertisement',
        name: 'lan',
        path: 'spec.interfaces[1]',
        reason: expect.stringMatching(/newline/),
      },
      {
        kind: 'L2Advertisement',
        name: 'lan',
        path: 'spec.interfaces[2]',
        reason: expect.stringMatching(/interface name/),
      },
    ]);
  });
});
