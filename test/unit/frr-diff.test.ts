/**
 * Pure tests for the frr.conf context tree (src/frr/config-tree.ts) and the incremental diff
 * (src/frr/config-diff.ts): parsing both the renderer's and FRR's own format, the order and
 * context of the generated vtysh commands, what is refused (falls back to frr-reload.py), and the
 * check against `show running-config`.
 */
import {
  alignPrefixLists,
  diffConfigs,
  entryCheckCommands,
  orderPrefixList,
  renderVtyshScript,
  splitJsonObjects,
  verifyEntryChecks,
  verifyFull,
  verifyRunning,
  type ConfigChange,
  type EntryCheck,
} from '../../src/frr/config-diff.js';
import {
  canonicalAddresses,
  findNode,
  formatTree,
  parseConfig,
  walkPaths,
} from '../../src/frr/config-tree.js';

// Spec e.5, verbatim (renderer shape).
const E5 = `log stdout informational
log timestamp precision 3
hostname node-a
ip nht resolve-via-default
ipv6 nht resolve-via-default
route-map 2001:db8::1-in deny 20
ipv6 prefix-list 2001:db8::1-150-ipv6-localpref-prefixes seq 1 permit 2001:db8:100::7/128
route-map 2001:db8::1-out permit 1
  match ipv6 address prefix-list 2001:db8::1-150-ipv6-localpref-prefixes
  set local-preference 150
  on-match next
ip prefix-list 2001:db8::1-allowed-ipv4 seq 1 deny any
ipv6 prefix-list 2001:db8::1-allowed-ipv6 seq 1 permit 2001:db8:100::7/128
route-map 2001:db8::1-out permit 2
  match ip address prefix-list 2001:db8::1-allowed-ipv4
route-map 2001:db8::1-out permit 3
  match ipv6 address prefix-list 2001:db8::1-allowed-ipv6
route-map 192.0.2.1-in deny 20
ip prefix-list 192.0.2.1-64496:100-ip-community-prefixes seq 1 permit 203.0.113.5/32
route-map 192.0.2.1-out permit 1
  match ip address prefix-list 192.0.2.1-64496:100-ip-community-prefixes
  set community 64496:100 additive
  on-match next
ip prefix-list 192.0.2.1-allowed-ipv4 seq 1 permit 203.0.113.5/32
ipv6 prefix-list 192.0.2.1-allowed-ipv6 seq 1 deny any
route-map 192.0.2.1-out permit 2
  match ip address prefix-list 192.0.2.1-allowed-ipv4
route-map 192.0.2.1-out permit 3
  match ipv6 address prefix-list 192.0.2.1-allowed-ipv6
router bgp 64496
  no bgp ebgp-requires-policy
  no bgp network import-check
  no bgp default ipv4-unicast
  bgp graceful-restart preserve-fw-state
  bgp router-id 192.0.2.10
  neighbor 2001:db8::1 remote-as 64496
  neighbor 2001:db8::1 port 179
  neighbor 192.0.2.1 remote-as 64497
  neighbor 192.0.2.1 port 179
  neighbor 192.0.2.1 timers 30 90
  neighbor 192.0.2.1 bfd
  neighbor 192.0.2.1 bfd profile fast
  address-family ipv6 unicast
    neighbor 2001:db8::1 activate
    neighbor 2001:db8::1 route-map 2001:db8::1-in in
    neighbor 2001:db8::1 route-map 2001:db8::1-out out
  exit-address-family
  address-family ipv4 unicast
    neighbor 192.0.2.1 activate
    neighbor 192.0.2.1 route-map 192.0.2.1-in in
    neighbor 192.0.2.1 route-map 192.0.2.1-out out
  exit-address-family
  address-family ipv4 unicast
    network 203.0.113.5/32
  exit-address-family
  address-family ipv6 unicast
    network 2001:db8:100::7/128
  exit-address-family
bfd
  profile fast
    receive-interval 100
    transmit-interval 100
    detect-multiplier 3
`;

// What FRR 8.4.4 printed for E5 (lab run), `show running-config` verbatim apart from the router
// id line order. Note the rewrites: port 179 and detect-multiplier 3 are gone, hostname is the
// machine's, the two address-family blocks are merged.
const E5_RUNNING = `Building configuration...

Current configuration:
!
frr version 8.4.4
frr defaults traditional
hostname vm
log stdout informational
log timestamp precision 3
no ip forwarding
no ipv6 forwarding
service integrated-vtysh-config
!
router bgp 64496
 bgp router-id 192.0.2.10
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp graceful-restart preserve-fw-state
 no bgp network import-check
 neighbor 192.0.2.1 remote-as 64497
 neighbor 192.0.2.1 bfd
 neighbor 192.0.2.1 bfd profile fast
 neighbor 192.0.2.1 timers 30 90
 neighbor 2001:db8::1 remote-as 64496
 !
 address-family ipv4 unicast
  network 203.0.113.5/32
  neighbor 192.0.2.1 activate
  neighbor 192.0.2.1 route-map 192.0.2.1-in in
  neighbor 192.0.2.1 route-map 192.0.2.1-out out
 exit-address-family
 !
 address-family ipv6 unicast
  network 2001:db8:100::7/128
  neighbor 2001:db8::1 activate
  neighbor 2001:db8::1 route-map 2001:db8::1-in in
  neighbor 2001:db8::1 route-map 2001:db8::1-out out
 exit-address-family
exit
!
ip prefix-list 2001:db8::1-allowed-ipv4 seq 1 deny any
ip prefix-list 192.0.2.1-64496:100-ip-community-prefixes seq 1 permit 203.0.113.5/32
ip prefix-list 192.0.2.1-allowed-ipv4 seq 1 permit 203.0.113.5/32
!
ipv6 prefix-list 2001:db8::1-150-ipv6-localpref-prefixes seq 1 permit 2001:db8:100::7/128
ipv6 prefix-list 2001:db8::1-allowed-ipv6 seq 1 permit 2001:db8:100::7/128
ipv6 prefix-list 192.0.2.1-allowed-ipv6 seq 1 deny any
!
route-map 2001:db8::1-in deny 20
exit
!
route-map 2001:db8::1-out permit 1
 match ipv6 address prefix-list 2001:db8::1-150-ipv6-localpref-prefixes
 on-match next
 set local-preference 150
exit
!
route-map 2001:db8::1-out permit 2
 match ip address prefix-list 2001:db8::1-allowed-ipv4
exit
!
route-map 2001:db8::1-out permit 3
 match ipv6 address prefix-list 2001:db8::1-allowed-ipv6
exit
!
route-map 192.0.2.1-in deny 20
exit
!
route-map 192.0.2.1-out permit 1
 match ip address prefix-list 192.0.2.1-64496:100-ip-community-prefixes
 on-match next
 set community 64496:100 additive
exit
!
route-map 192.0.2.1-out permit 2
 match ip address prefix-list 192.0.2.1-allowed-ipv4
exit
!
route-map 192.0.2.1-out permit 3
 match ipv6 address prefix-list 192.0.2.1-allowed-ipv6
exit
!
ip nht resolve-via-default
!
ipv6 nht resolve-via-default
!
bfd
 profile fast
  transmit-interval 100
  receive-interval 100
 exit
 !
exit
!
end
`;

/** A MetalLB-shaped config for one eBGP IPv4 neighbor, generated like the renderer does. */
function nodeConf(opts: {
  prefixes: string[];
  community?: string[];
  timers?: string;
  password?: string;
  extraNeighbor?: boolean;
  bfdProfile?: string;
  routerId?: string;
  asn?: number;
  vrfRouter?: boolean;
  extras?: string[];
}): string {
  const sorted = [...opts.prefixes].sort();
  const comm = [...(opts.community ?? [])].sort();
  const n = '192.0.2.1';
  const L: string[] = ['log stdout informational', 'hostname node-a', `route-map ${n}-in deny 20`];
  comm.forEach((p, i) =>
    L.push(`ip prefix-list ${n}-64496:100-ip-community-prefixes seq ${i + 1} permit ${p}`),
  );
  if (comm.length) {
    L.push(
      `route-map ${n}-out permit 1`,
      `  match ip address prefix-list ${n}-64496:100-ip-community-prefixes`,
      '  set community 64496:100 additive',
      '  on-match next',
    );
  }
  if (sorted.length)
    sorted.forEach((p, i) => L.push(`ip prefix-list ${n}-allowed-ipv4 seq ${i + 1} permit ${p}`));
  else L.push(`ip prefix-list ${n}-allowed-ipv4 seq 1 deny any`);
  const s = comm.length ? 2 : 1;
  L.push(`route-map ${n}-out permit ${s}`, `  match ip address prefix-list ${n}-allowed-ipv4`);
  if (opts.extraNeighbor) {
    L.push('route-map 192.0.2.2-in deny 20', 'ip prefix-list 192.0.2.2-allowed-ipv4 seq 1 deny any');
    L.push('route-map 192.0.2.2-out permit 1', '  match ip address prefix-list 192.0.2.2-allowed-ipv4');
  }
  L.push(`router bgp ${opts.asn ?? 64496}`, '  no bgp ebgp-requires-policy', '  no bgp default ipv4-unicast');
  if (opts.routerId) L.push(`  bgp router-id ${opts.routerId}`);
  L.push(`  neighbor ${n} remote-as 64497`);
  if (opts.timers) L.push(`  neighbor ${n} timers ${opts.timers}`);
  if (opts.password) L.push(`  neighbor ${n} password ${opts.password}`);
  if (opts.bfdProfile) L.push(`  neighbor ${n} bfd`, `  neighbor ${n} bfd profile ${opts.bfdProfile}`);
  if (opts.extraNeighbor) L.push('  neighbor 192.0.2.2 remote-as 64498', '  neighbor 192.0.2.2 timers 3 9');
  L.push(
    '  address-family ipv4 unicast',
    `    neighbor ${n} activate`,
    `    neighbor ${n} route-map ${n}-in in`,
    `    neighbor ${n} route-map ${n}-out out`,
    '  exit-address-family',
  );
  if (opts.extraNeighbor) {
    L.push(
      '  address-family ipv4 unicast',
      '    neighbor 192.0.2.2 activate',
      '    neighbor 192.0.2.2 route-map 192.0.2.2-in in',
      '    neighbor 192.0.2.2 route-map 192.0.2.2-out out',
      '  exit-address-family',
    );
  }
  if (sorted.length) {
    L.push(
      '  address-family ipv4 unicast',
      ...sorted.map((p) => `    network ${p}`),
      '  exit-address-family',
    );
  }
  if (opts.vrfRouter) {
    L.push('router bgp 64496 vrf red', '  neighbor 192.0.2.7 remote-as 64497');
  }
  if (opts.bfdProfile) {
    L.push('bfd', `  profile ${opts.bfdProfile}`, '    receive-interval 100', '    transmit-interval 100');
  }
  L.push(...(opts.extras ?? []));
  return `${L.join('\n')}\n`;
}

const diff = (a: string, b: string) => diffConfigs(parseConfig(a), parseConfig(b));
const cmds = (changes: readonly ConfigChange[]) =>
  changes.map(
    (c) =>
      `${c.context.join(' > ')}${c.context.length ? ' : ' : ''}${c.op === 'enter' ? '(enter)' : c.command}`,
  );

const R = 'router bgp 64496';
const AF4 = 'address-family ipv4 unicast';

describe('parseConfig', () => {
  test('renderer shape (spec e.5): contexts by indentation, duplicate blocks merged', () => {
    const t = parseConfig(E5);
    expect(t.problems).toEqual([]);
    const top = [...t.root.children.values()].map((c) => [c.text, c.kind]);
    expect(top.slice(0, 6)).toEqual([
      ['log stdout informational', 'line'],
      ['log timestamp precision 3', 'line'],
      ['hostname node-a', 'line'],
      ['ip nht resolve-via-default', 'line'],
      ['ipv6 nht resolve-via-default', 'line'],
      ['route-map 2001:db8::1-in deny 20', 'route-map'],
    ]);
    const router = findNode(t, [R])!;
    expect(router.kind).toBe('router-bgp');
    const afs = [...router.children.values()].filter((c) => c.kind === 'address-family');
    expect(afs.map((a) => a.text)).toEqual(['address-family ipv6 unicast', AF4]);
    expect([...findNode(t, [R, AF4])!.children.keys()]).toEqual([
      'neighbor 192.0.2.1 activate',
      'neighbor 192.0.2.1 route-map 192.0.2.1-in in',
      'neighbor 192.0.2.1 route-map 192.0.2.1-out out',
      'network 203.0.113.5/32',
    ]);
    expect(findNode(t, ['route-map 2001:db8::1-in deny 20'])!.children.size).toBe(0);
    expect([...findNode(t, ['bfd', 'profile fast'])!.children.keys()]).toEqual([
      'receive-interval 100',
      'transmit-interval 100',
      'detect-multiplier 3',
    ]);
    // The prefix-list after a route-map body is top-level again.
    expect(findNode(t, ['ip prefix-list 2001:db8::1-allowed-ipv4 seq 1 deny any'])?.kind).toBe('line');
  });

  test("FRR's running-config shape: headers, !, exit lines, frr version/defaults", () => {
    const t = parseConfig(E5_RUNNING);
    expect(t.problems).toEqual([]);
    expect(t.frrVersion).toBe('8.4.4');
    expect(t.frrDefaults).toBe('traditional');
    expect(findNode(t, ['Building configuration...'])).toBeUndefined();
    expect(findNode(t, [R, AF4, 'network 203.0.113.5/32'])?.kind).toBe('line');
    expect(
      findNode(t, ['route-map 192.0.2.1-out permit 1', 'set community 64496:100 additive']),
    ).toBeDefined();
    expect(findNode(t, ['ip nht resolve-via-default'])?.kind).toBe('line');
    expect(findNode(t, ['bfd', 'profile fast', 'receive-interval 100'])).toBeDefined();
    // Same structure as the renderer's text, apart from FRR's known rewrites.
    const paths = (s: string) => new Set([...walkPaths(parseConfig(s).root)].map((p) => p.join(' > ')));
    const mine = paths(E5);
    const frr = paths(E5_RUNNING);
    expect([...mine].filter((p) => !frr.has(p))).toEqual([
      'hostname node-a',
      `${R} > neighbor 2001:db8::1 port 179`,
      `${R} > neighbor 192.0.2.1 port 179`,
      'bfd > profile fast > detect-multiplier 3',
    ]);
  });

  test('unknown blocks become opaque contexts; a stray indented line is a problem', () => {
    const t = parseConfig(
      [
        '  neighbor 1.2.3.4 remote-as 1',
        'interface eth0',
        ' ip address 192.0.2.5/24',
        'exit',
        'log stdout',
      ].join('\n'),
    );
    expect(t.problems).toEqual([
      {
        lineNo: 1,
        text: 'neighbor 1.2.3.4 remote-as 1',
        reason: 'indented line without a context to belong to',
      },
    ]);
    expect(findNode(t, ['interface eth0'])?.kind).toBe('opaque');
    expect(findNode(t, ['interface eth0', 'ip address 192.0.2.5/24'])).toBeDefined();
    expect(findNode(t, ['log stdout'])?.kind).toBe('line');
  });

  test('an exit of an empty unknown context inside a router does not close the router', () => {
    const t = parseConfig(
      ['router bgp 1', ' segment-routing srv6', ' exit', ' neighbor 192.0.2.1 remote-as 2', 'exit'].join(
        '\n',
      ),
    );
    expect(t.problems).toEqual([]);
    expect(findNode(t, ['router bgp 1', 'neighbor 192.0.2.1 remote-as 2'])).toBeDefined();
  });

  test('problems mask passwords; formatTree writes the renderer shape', () => {
    const t = parseConfig('  neighbor 192.0.2.1 password hunter2\n');
    expect(t.problems[0]!.text).toBe('neighbor 192.0.2.1 password <redacted>');
    expect(formatTree(parseConfig(E5_RUNNING))).toContain(`router bgp 64496\n  bgp router-id 192.0.2.10\n`);
    expect(formatTree(parseConfig(E5_RUNNING))).toContain(
      '    neighbor 192.0.2.1 route-map 192.0.2.1-out out\n  exit-address-family\n',
    );
  });

  test('canonicalAddresses rewrites whole IPv6 tokens only', () => {
    expect(canonicalAddresses('neighbor 2001:DB8:0:0::1 remote-as 1')).toBe(
      'neighbor 2001:db8::1 remote-as 1',
    );
    expect(canonicalAddresses('network 2001:db8:0:0::/64')).toBe('network 2001:db8::/64');
    expect(canonicalAddresses('route-map 2001:DB8::1-out permit 1')).toBe(
      'route-map 2001:DB8::1-out permit 1',
    );
    expect(canonicalAddresses('set community 64496:100 additive')).toBe('set community 64496:100 additive');
  });
});

describe('diffConfigs: commands, contexts and order', () => {
  const base = nodeConf({ prefixes: ['198.51.100.10/32'] });

  test.each<[string, string, string, string[]]>([
    ['identical configs', base, base, []],
    [
      'a new service: prefix-list entry before the network statement',
      base,
      nodeConf({ prefixes: ['198.51.100.10/32', '198.51.100.11/32'] }),
      [
        'ip prefix-list 192.0.2.1-allowed-ipv4 seq 2 permit 198.51.100.11/32',
        `${R} > ${AF4} : network 198.51.100.11/32`,
      ],
    ],
    [
      'the last service goes away: its entry is removed, "deny any" added under a fresh number, network removed',
      base,
      nodeConf({ prefixes: [] }),
      [
        'no ip prefix-list 192.0.2.1-allowed-ipv4 seq 1 permit 198.51.100.10/32',
        'ip prefix-list 192.0.2.1-allowed-ipv4 seq 2 deny any',
        `${R} > ${AF4} : no network 198.51.100.10/32`,
      ],
    ],
    [
      'keyed neighbor setting: only the new value is sent',
      nodeConf({ prefixes: ['198.51.100.10/32'], timers: '30 90' }),
      nodeConf({ prefixes: ['198.51.100.10/32'], timers: '3 9' }),
      [`${R} : neighbor 192.0.2.1 timers 3 9`],
    ],
    [
      'keyed setting removed: no <line>',
      nodeConf({ prefixes: ['198.51.100.10/32'], timers: '30 90' }),
      base,
      [`${R} : no neighbor 192.0.2.1 timers 30 90`],
    ],
    [
      'password removed: the old secret is not repeated',
      nodeConf({ prefixes: ['198.51.100.10/32'], password: 's3cret' }),
      base,
      [`${R} : no neighbor 192.0.2.1 password`],
    ],
    [
      'a neighbor goes away: one "no neighbor", its filters after the router',
      nodeConf({ prefixes: ['198.51.100.10/32'], extraNeighbor: true }),
      base,
      [
        `${R} : no neighbor 192.0.2.2`,
        'no route-map 192.0.2.2-in deny 20',
        'no route-map 192.0.2.2-out permit 1',
        'no ip prefix-list 192.0.2.2-allowed-ipv4',
      ],
    ],
    [
      'a neighbor is added: filters first, definition before its other lines, then the AF',
      base,
      nodeConf({ prefixes: ['198.51.100.10/32'], extraNeighbor: true }),
      [
        'ip prefix-list 192.0.2.2-allowed-ipv4 seq 1 deny any',
        'route-map 192.0.2.2-in deny 20 : (enter)',
        'route-map 192.0.2.2-out permit 1 : match ip address prefix-list 192.0.2.2-allowed-ipv4',
        `${R} : neighbor 192.0.2.2 remote-as 64498`,
        `${R} : neighbor 192.0.2.2 timers 3 9`,
        `${R} > ${AF4} : neighbor 192.0.2.2 activate`,
        `${R} > ${AF4} : neighbor 192.0.2.2 route-map 192.0.2.2-in in`,
        `${R} > ${AF4} : neighbor 192.0.2.2 route-map 192.0.2.2-out out`,
      ],
    ],
    [
      'a community is added: route-map entry seq 1 appears, the allowed entry moves to seq 2',
      base,
      nodeConf({ prefixes: ['198.51.100.10/32'], community: ['198.51.100.10/32'] }),
      [
        'ip prefix-list 192.0.2.1-64496:100-ip-community-prefixes seq 1 permit 198.51.100.10/32',
        'route-map 192.0.2.1-out permit 1 : match ip address prefix-list 192.0.2.1-64496:100-ip-community-prefixes',
        'route-map 192.0.2.1-out permit 1 : set community 64496:100 additive',
        'route-map 192.0.2.1-out permit 1 : on-match next',
        'route-map 192.0.2.1-out permit 2 : match ip address prefix-list 192.0.2.1-allowed-ipv4',
      ],
    ],
    [
      'BFD turned off for a neighbor: only "no neighbor X bfd" (FRR 8.4 quirk), then the profile',
      nodeConf({ prefixes: ['198.51.100.10/32'], bfdProfile: 'fast' }),
      base,
      [`${R} : no neighbor 192.0.2.1 bfd`, 'bfd : no profile fast'],
    ],
    [
      'a VRF router goes away',
      nodeConf({ prefixes: ['198.51.100.10/32'], vrfRouter: true }),
      base,
      ['no router bgp 64496 vrf red'],
    ],
    [
      'a top-level line changes value',
      base,
      base.replace('log stdout informational', 'log stdout debugging'),
      ['log stdout debugging'],
    ],
  ])('%s', (_name, from, to, expected) => {
    const d = diff(from, to);
    expect(d.unsafe).toEqual([]);
    expect(cmds(d.changes)).toEqual(expected);
  });

  test('route-map: action change is done in place, body lines are keyed', () => {
    const from =
      'route-map M permit 5\n  match ip address prefix-list A\n  set local-preference 100\n  on-match next\n';
    const to = 'route-map M deny 5\n  match ip address prefix-list B\n  set local-preference 100\n';
    const d = diff(from, to);
    expect(d.unsafe).toEqual([]);
    expect(cmds(d.changes)).toEqual([
      'route-map M deny 5 : no on-match next',
      'route-map M deny 5 : match ip address prefix-list B',
    ]);
    expect(d.expectAbsent).toContainEqual(['route-map M permit 5']);
    expect(d.expectPresent).toContainEqual(['route-map M deny 5']);
  });

  test('BFD profile: a value back to default is set explicitly (8.4 has no "no receive-interval")', () => {
    const from = 'bfd\n  profile p\n    receive-interval 100\n    echo-mode\n    minimum-ttl 250\n';
    const to = 'bfd\n  profile p\n    detect-multiplier 5\n  profile q\n';
    expect(cmds(diff(from, to).changes)).toEqual([
      'bfd > profile p : receive-interval 300',
      'bfd > profile p : no echo-mode',
      'bfd > profile p : no minimum-ttl',
      'bfd > profile p : detect-multiplier 5',
      'bfd > profile q : (enter)',
    ]);
  });

  test('a whole new router: definitions first, then its address families', () => {
    const to = [
      'log stdout informational',
      'router bgp 64510',
      '  bgp router-id 192.0.2.11',
      '  neighbor 192.0.2.1 timers 3 9',
      '  neighbor 192.0.2.1 remote-as 64500',
      '  address-family ipv4 unicast',
      '    network 198.51.100.10/32',
      '  exit-address-family',
    ].join('\n');
    const d = diff('log stdout informational\n', to);
    expect(d.unsafe).toEqual([]);
    expect(cmds(d.changes)).toEqual([
      'router bgp 64510 : bgp router-id 192.0.2.11',
      'router bgp 64510 : neighbor 192.0.2.1 remote-as 64500',
      'router bgp 64510 : neighbor 192.0.2.1 timers 3 9',
      `router bgp 64510 > ${AF4} : network 198.51.100.10/32`,
    ]);
  });

  test('removing routers: VRF routers before the default one, after everything else', () => {
    const from = `${nodeConf({ prefixes: ['198.51.100.10/32'], vrfRouter: true })}`;
    const d = diff(from, 'log stdout informational\nhostname node-a\n');
    expect(d.unsafe).toEqual([]);
    const c = cmds(d.changes);
    expect(c.slice(0, 2)).toEqual(['no router bgp 64496 vrf red', 'no router bgp 64496']);
    expect(c.slice(2)).toEqual([
      'no route-map 192.0.2.1-in deny 20',
      'no route-map 192.0.2.1-out permit 1',
      'no ip prefix-list 192.0.2.1-allowed-ipv4',
    ]);
  });
});

describe('diffConfigs: what falls back to a full frr-reload', () => {
  const base = nodeConf({ prefixes: ['198.51.100.10/32'], routerId: '192.0.2.10' });
  test.each<[string, string, string, RegExp]>([
    [
      'ASN change',
      base,
      nodeConf({ prefixes: ['198.51.100.10/32'], routerId: '192.0.2.10', asn: 64999 }),
      /AS number/,
    ],
    [
      'router-id change',
      base,
      nodeConf({ prefixes: ['198.51.100.10/32'], routerId: '192.0.2.99' }),
      /router-id/,
    ],
    ['router-id removed', base, nodeConf({ prefixes: ['198.51.100.10/32'] }), /router-id/],
    [
      'an unknown top-level line (bgpextras) is added',
      base,
      nodeConf({
        prefixes: ['198.51.100.10/32'],
        routerId: '192.0.2.10',
        extras: ['zebra route-map delay-timer 1'],
      }),
      /does not know: zebra route-map/,
    ],
    [
      'a block we do not know changes',
      `${base}interface eth0\n  ip address 192.0.2.5/24\n`,
      `${base}interface eth0\n  ip address 192.0.2.6/24\n`,
      /changing a block the incremental path does not know: interface eth0/,
    ],
    [
      'the default router goes away while a VRF router stays',
      'router bgp 1\n  neighbor 192.0.2.1 remote-as 2\nrouter bgp 1 vrf red\n',
      'router bgp 1 vrf red\n',
      /default router goes away/,
    ],
    [
      'a neighbor changes from remote-as to peer-group member',
      'router bgp 1\n  neighbor 192.0.2.1 remote-as 2\n',
      'router bgp 1\n  neighbor G peer-group\n  neighbor 192.0.2.1 peer-group G\n',
      /changes how it is defined/,
    ],
    [
      'a prefix-list with one prefix twice',
      'log stdout\n',
      'ip prefix-list L seq 1 permit 198.51.100.1/32\nip prefix-list L seq 2 permit 198.51.100.1/32\n',
      /the same prefix twice/,
    ],
    [
      'a prefix-list entry without seq',
      'log stdout\n',
      'ip prefix-list L permit 198.51.100.1/32\n',
      /does not know/,
    ],
    ['a parse problem', 'log stdout\n', '  stray line\n', /new config line 1/],
  ])('%s', (_name, from, to, reason) => {
    const d = diff(from, to);
    expect(d.unsafe.join('\n')).toMatch(reason);
  });

  test('an unknown line that does not change is no reason to fall back', () => {
    const extra = ['zebra route-map delay-timer 1'];
    const d = diff(
      nodeConf({ prefixes: ['198.51.100.10/32'], extras: extra }),
      nodeConf({ prefixes: ['198.51.100.10/32', '198.51.100.11/32'], extras: extra }),
    );
    expect(d.unsafe).toEqual([]);
    expect(d.changes).toHaveLength(2);
  });

  test('unsafe reasons never show a password', () => {
    const d = diff('log stdout\n', 'log stdout\nfoo bar password hunter2\n');
    expect(d.unsafe.join('\n')).toContain('password <redacted>');
    expect(d.unsafe.join('\n')).not.toContain('hunter2');
  });
});

// ---------------------------------------------------------------------------------------------
// Prefix-list ordering, checked against a model of FRR 8.4's behaviour: an entry for an existing
// seq replaces it in place; an entry whose prefix is already in the list under another seq is
// silently ignored (lab notes: plist_is_dup); `no … seq N …` removes it.
// ---------------------------------------------------------------------------------------------

function frrPrefixListModel(initial: string[], script: ConfigChange[]): string[] {
  const lists = new Map<string, Map<number, string>>();
  const parse = (line: string) => {
    const m = /^(ip|ipv6) prefix-list (\S+) seq (\d+) (permit|deny) (.+)$/.exec(line)!;
    return { list: `${m[1]} ${m[2]}`, seq: Number(m[3]), body: `${m[4]} ${m[5]}`, prefix: m[5]! };
  };
  const set = (line: string) => {
    const e = parse(line);
    const l = lists.get(e.list) ?? new Map<number, string>();
    lists.set(e.list, l);
    for (const [s, body] of l) if (s !== e.seq && body.split(' ')[1] === e.prefix) return; // duplicate: ignored
    l.set(e.seq, e.body);
  };
  for (const line of initial) set(line);
  for (const c of script) {
    if (c.op === 'add') set(c.command);
    else if (/^no (ip|ipv6) prefix-list \S+ seq/.test(c.command)) {
      const e = parse(c.command.slice(3));
      lists.get(e.list)?.delete(e.seq);
    } else {
      const m = /^no (ip|ipv6) prefix-list (\S+)$/.exec(c.command)!;
      lists.delete(`${m[1]} ${m[2]}`);
    }
  }
  const out: string[] = [];
  for (const [name, l] of lists) {
    const [fam, n] = name.split(' ');
    for (const [seq, body] of [...l].sort((a, b) => a[0] - b[0]))
      out.push(`${fam} prefix-list ${n} seq ${seq} ${body}`);
  }
  return out;
}

/** A list whose order matters (a deny entry first), numbered like the renderer numbers. */
function pl(name: string, prefixes: string[]): string[] {
  return [
    `ip prefix-list ${name} seq 1 deny 192.0.2.0/24 le 32`,
    ...[...prefixes].sort().map((p, i) => `ip prefix-list ${name} seq ${i + 2} permit ${p}`),
  ];
}

/** A permit-only list numbered like the renderer numbers it (diffed as a set). */
function plSet(name: string, prefixes: string[]): string[] {
  return [...prefixes].sort().map((p, i) => `ip prefix-list ${name} seq ${i + 1} permit ${p}`);
}

const addr = (i: number) => (i < 256 ? `198.51.100.${i}/32` : `203.0.113.${i - 256}/32`);

/** A small deterministic PRNG (mulberry32), so the burst test is reproducible. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('prefix-lists whose order matters: renumbering in place', () => {
  const check = (from: string[], to: string[]) => {
    const d = diffConfigs(parseConfig(`${from.join('\n')}\n`), parseConfig(`${to.join('\n')}\n`));
    expect(d.unsafe).toEqual([]);
    expect(frrPrefixListModel(from, [...d.changes])).toEqual(to);
    return d;
  };

  test('insertion at the front shifts every entry up: written in ascending order', () => {
    const d = check(pl('L', [addr(2), addr(3), addr(4)]), pl('L', [addr(1), addr(2), addr(3), addr(4)]));
    expect(cmds(d.changes)).toEqual([
      `ip prefix-list L seq 2 permit ${addr(1)}`,
      `ip prefix-list L seq 3 permit ${addr(2)}`,
      `ip prefix-list L seq 4 permit ${addr(3)}`,
      `ip prefix-list L seq 5 permit ${addr(4)}`,
    ]);
    expect(d.expectPrefixListSets.size).toBe(0);
    expect(d.entryChecks.map((c) => `${c.seq} ${c.expect}`)).toEqual([
      `2 permit ${addr(1)}`,
      `3 permit ${addr(2)}`,
      `4 permit ${addr(3)}`,
      `5 permit ${addr(4)}`,
    ]);
  });

  test('removal at the front shifts every entry down: the last seq goes first', () => {
    const d = check(pl('L', [addr(1), addr(2), addr(3)]), pl('L', [addr(2), addr(3)]));
    expect(cmds(d.changes)).toEqual([
      `no ip prefix-list L seq 4 permit ${addr(3)}`,
      `ip prefix-list L seq 3 permit ${addr(3)}`,
      `ip prefix-list L seq 2 permit ${addr(2)}`,
    ]);
  });

  test('a rotation (not something the renderer produces) is broken by one deletion', () => {
    const from = [
      'ip prefix-list L seq 1 permit 198.51.100.1/32',
      'ip prefix-list L seq 2 deny 198.51.100.2/32',
    ];
    const to = [
      'ip prefix-list L seq 1 deny 198.51.100.2/32',
      'ip prefix-list L seq 2 permit 198.51.100.1/32',
    ];
    const d = check(from, to);
    expect(cmds(d.changes)).toEqual([
      'no ip prefix-list L seq 1 permit 198.51.100.1/32',
      'ip prefix-list L seq 2 permit 198.51.100.1/32',
      'ip prefix-list L seq 1 deny 198.51.100.2/32',
    ]);
  });

  test('orderPrefixList on its own: nothing to do for equal lists', () => {
    const m = new Map([
      [1, { seq: 1, line: 'ip prefix-list L seq 1 permit 198.51.100.1/32', dupKey: '198.51.100.1/32' }],
    ]);
    expect(orderPrefixList(m, new Map(m))).toEqual([]);
  });

  test('a burst of many prefix changes (500 prefixes, 300 removed, 250 added, in 3 lists) converges', () => {
    const r = rng(42);
    const all = Array.from({ length: 500 }, (_, i) => addr(i));
    const before = all.filter(() => r() < 0.8);
    const kept = before.filter(() => r() < 0.4);
    const after = [...kept, ...all.filter((p) => !before.includes(p))].slice(0, kept.length + 250);
    const from = [...pl('A', before), ...pl('B', before), ...pl('C', before.slice(0, 10))];
    const to = [...pl('A', after), ...pl('B', after.slice(0, 100)), ...pl('D', after.slice(0, 5))];
    const t0 = Date.now();
    const d = check(
      from,
      to.filter((l) => !l.includes(' C ')),
    );
    expect(Date.now() - t0).toBeLessThan(2000);
    // List C disappears as a whole with one command, list D is new.
    expect(cmds(d.changes)).toContain('no ip prefix-list C');
    expect(d.changes.filter((c) => c.command.startsWith('ip prefix-list D'))).toHaveLength(6);
    // Renumbering needs at most one command per seq of the old and new list.
    expect(d.changes.length).toBeLessThanOrEqual(before.length * 2 + after.length + 100 + 5 + 1 + 3);
  });

  test('random renumberings of sorted lists always converge (200 rounds)', () => {
    const r = rng(7);
    for (let round = 0; round < 200; round++) {
      const all = Array.from({ length: 40 }, (_, i) => addr(i * 3));
      const a = all.filter(() => r() < 0.5);
      const b = all.filter(() => r() < 0.5);
      check(pl('X', a), pl('X', b));
    }
  });
});

/** Lines of each list, sequence numbers left out, sorted: what a set-shaped list means. */
function asSets(lines: string[]): string[] {
  return lines.map((l) => l.replace(/ seq \d+ /, ' ')).sort();
}

describe('prefix-lists diffed as sets (permit-only, or a single deny any)', () => {
  /** Applies the diff to the FRR model; checks the result as sets and against prefixListsAfter. */
  const check = (running: string[], from: string[], to: string[]) => {
    const d = diffConfigs(parseConfig(`${from.join('\n')}\n`), parseConfig(`${to.join('\n')}\n`), {
      running,
    });
    expect(d.unsafe).toEqual([]);
    const after = frrPrefixListModel(running, [...d.changes]);
    expect(asSets(after)).toEqual(asSets(to));
    expect([...d.prefixListsAfter].sort()).toEqual([...after].sort());
    return { d, after };
  };
  const all = Array.from({ length: 400 }, (_, i) => addr(i));

  test('one prefix in the middle of 400: one command wherever it sorts, nothing renumbered', () => {
    const base = all.filter((_, i) => i % 2 === 0);
    for (const extra of [addr(1), addr(201), addr(399)]) {
      const { d } = check(plSet('L', base), plSet('L', base), plSet('L', [...base, extra]));
      expect(cmds(d.changes)).toEqual([`ip prefix-list L seq 201 permit ${extra}`]);
      expect(d.entryChecks).toEqual([{ family: 'ip', list: 'L', seq: 201, expect: `permit ${extra}` }]);
      expect(d.entriesOnly).toBe(true);
      expect(d.expectPrefixListSets.get('ip prefix-list L')?.size).toBe(201);
      expect(d.expectPresent).toEqual([]);
    }
  });

  test("FRR's numbers differ from the render's: removals by FRR's number, additions above FRR's highest", () => {
    // FRR holds the same prefixes as the last render, numbered differently (earlier set diffs).
    const running = [
      `ip prefix-list L seq 1 permit ${addr(10)}`,
      `ip prefix-list L seq 7 permit ${addr(30)}`,
      `ip prefix-list L seq 9 permit ${addr(20)}`,
    ];
    const last = plSet('L', [addr(10), addr(20), addr(30)]);
    const next = plSet('L', [addr(5), addr(10), addr(30)]); // renumbered: .5 first, .20 gone
    const { d, after } = check(running, last, next);
    expect(cmds(d.changes)).toEqual([
      `no ip prefix-list L seq 9 permit ${addr(20)}`,
      `ip prefix-list L seq 10 permit ${addr(5)}`,
    ]);
    expect(after).toContain(`ip prefix-list L seq 7 permit ${addr(30)}`);
    expect(d.entryChecks.map((c) => [c.seq, c.expect])).toEqual([
      [9, null],
      [10, `permit ${addr(5)}`],
    ]);
  });

  test('the same render again against renumbered FRR seqs: nothing to do', () => {
    const running = [`ip prefix-list L seq 4 permit ${addr(2)}`, `ip prefix-list L seq 3 permit ${addr(1)}`];
    const r = plSet('L', [addr(1), addr(2)]);
    const { d } = check(running, r, r);
    expect(d.changes).toEqual([]);
  });

  test('deny any -> permits: deny any removed first (no silent duplicate), permits under fresh numbers', () => {
    const deny = ['ip prefix-list L seq 1 deny any'];
    const { d } = check(deny, deny, plSet('L', [addr(1), addr(2)]));
    expect(cmds(d.changes)).toEqual([
      'no ip prefix-list L seq 1 deny any',
      `ip prefix-list L seq 2 permit ${addr(1)}`,
      `ip prefix-list L seq 3 permit ${addr(2)}`,
    ]);
    expect(d.entryChecks.map((c) => [c.seq, c.expect])).toEqual([
      [1, null],
      [2, `permit ${addr(1)}`],
      [3, `permit ${addr(2)}`],
    ]);
  });

  test('permits -> deny any (the last Service goes), and IPv6 lists the same way', () => {
    const running = [`ip prefix-list L seq 5 permit ${addr(1)}`, `ip prefix-list L seq 8 permit ${addr(2)}`];
    const { d } = check(running, plSet('L', [addr(1), addr(2)]), ['ip prefix-list L seq 1 deny any']);
    expect(cmds(d.changes)).toEqual([
      `no ip prefix-list L seq 8 permit ${addr(2)}`,
      `no ip prefix-list L seq 5 permit ${addr(1)}`,
      'ip prefix-list L seq 9 deny any',
    ]);
    const v6 = check(
      ['ipv6 prefix-list M seq 3 deny any'],
      ['ipv6 prefix-list M seq 1 deny any'],
      ['ipv6 prefix-list M seq 1 permit 2001:db8:100::7/128'],
    );
    expect(cmds(v6.d.changes)).toEqual([
      'no ipv6 prefix-list M seq 3 deny any',
      'ipv6 prefix-list M seq 4 permit 2001:db8:100::7/128',
    ]);
  });

  test('a list FRR does not have (any more) is written whole; lists someone else made are left alone', () => {
    const running = ['ip prefix-list theirs seq 5 permit 192.0.2.99/32'];
    const to = plSet('L', [addr(1), addr(2)]);
    const d = diffConfigs(parseConfig(`${to.join('\n')}\n`), parseConfig(`${to.join('\n')}\n`), { running });
    expect(cmds(d.changes)).toEqual([
      `ip prefix-list L seq 1 permit ${addr(1)}`,
      `ip prefix-list L seq 2 permit ${addr(2)}`,
    ]);
    expect(d.prefixListsAfter.some((l) => l.includes('theirs'))).toBe(false);
  });

  test('IPv6 spelling: FRR prints canonical addresses; equal prefixes are equal', () => {
    const running = ['ipv6 prefix-list M seq 1 permit 2001:db8:100::a/128'];
    const to = ['ipv6 prefix-list M seq 1 permit 2001:DB8:100:0::A/128'];
    const d = diffConfigs(parseConfig(`${to.join('\n')}\n`), parseConfig(`${to.join('\n')}\n`), { running });
    expect(d.changes).toEqual([]);
  });

  test("a list that turns into one whose order matters is diffed by position against FRR's numbers", () => {
    const running = [`ip prefix-list L seq 4 permit ${addr(1)}`];
    const to = ['ip prefix-list L seq 1 deny 192.0.2.0/24 le 32', `ip prefix-list L seq 2 permit ${addr(1)}`];
    const d = diffConfigs(
      parseConfig(`${plSet('L', [addr(1)]).join('\n')}\n`),
      parseConfig(`${to.join('\n')}\n`),
      {
        running,
      },
    );
    expect(d.unsafe).toEqual([]);
    expect(frrPrefixListModel(running, [...d.changes])).toEqual(to);
    expect(d.expectPrefixListSets.size).toBe(0);
  });

  test('entriesOnly: Service changes yes; a new list with its route-map entry no', () => {
    const base = nodeConf({ prefixes: ['198.51.100.10/32'] });
    expect(diff(base, nodeConf({ prefixes: ['198.51.100.10/32', '198.51.100.9/32'] })).entriesOnly).toBe(
      true,
    );
    expect(diff(base, nodeConf({ prefixes: [] })).entriesOnly).toBe(true);
    expect(
      diff(base, nodeConf({ prefixes: ['198.51.100.10/32'], community: ['198.51.100.10/32'] })).entriesOnly,
    ).toBe(false);
    expect(diff(base, nodeConf({ prefixes: ['198.51.100.10/32'], timers: '3 9' })).entriesOnly).toBe(false);
  });

  test('a burst of 250 changes in lists of 500: one command per prefix that comes or goes', () => {
    const r = rng(3);
    const big = Array.from({ length: 500 }, (_, i) => addr(i));
    const before = big.filter(() => r() < 0.8);
    const after = [...before.filter(() => r() < 0.75), ...big.filter((p) => !before.includes(p))];
    const gone = before.filter((p) => !after.includes(p)).length;
    const come = after.filter((p) => !before.includes(p)).length;
    const { d } = check(
      [...plSet('A', before), ...plSet('B', before)],
      [...plSet('A', before), ...plSet('B', before)],
      [...plSet('A', after), ...plSet('B', after.slice(0, 50))],
    );
    const inA = d.changes.filter((c) => / prefix-list A /.test(c.command));
    expect(inA).toHaveLength(gone + come);
  });

  test('random rounds: FRR converges to the render as sets, numbers as predicted (300 rounds)', () => {
    const r = rng(11);
    let running = plSet('X', []);
    let last: string[] = ['ip prefix-list X seq 1 deny any'];
    running = [...last];
    for (let round = 0; round < 300; round++) {
      const pool = Array.from({ length: 30 }, (_, i) => addr(i * 5));
      const want = pool.filter(() => r() < 0.4);
      const next = want.length ? plSet('X', want) : ['ip prefix-list X seq 1 deny any'];
      const { d, after } = check(running, last, next);
      running = [...d.prefixListsAfter];
      expect(asSets(after)).toEqual(asSets(next));
      last = next;
    }
  });

  test('fresh numbers near the top of the range fill gaps from 1 instead', () => {
    const running = [`ip prefix-list L seq 4294967295 permit ${addr(1)}`];
    const { d } = check(running, plSet('L', [addr(1)]), plSet('L', [addr(1), addr(2), addr(3)]));
    expect(cmds(d.changes)).toEqual([
      `ip prefix-list L seq 1 permit ${addr(2)}`,
      `ip prefix-list L seq 2 permit ${addr(3)}`,
    ]);
  });
});

describe('alignPrefixLists: the config for frr-reload.py, numbered as FRR has it', () => {
  test("entries FRR has keep FRR's numbers, new ones go above its highest; other lines stay", () => {
    const text = [
      'log stdout informational',
      ...plSet('L', [addr(1), addr(2), addr(3)]),
      'route-map X permit 1',
      '  match ip address prefix-list L',
      ...pl('P', [addr(1)]),
      'ipv6 prefix-list M seq 1 permit 2001:DB8:100::A/128',
      '',
    ].join('\n');
    const running = [
      `ip prefix-list L seq 7 permit ${addr(3)}`,
      `ip prefix-list L seq 2 permit ${addr(1)}`,
      `ip prefix-list L seq 9 permit ${addr(9)}`,
      'ip prefix-list P seq 5 deny 192.0.2.0/24 le 32',
      'ipv6 prefix-list M seq 4 permit 2001:db8:100::a/128',
      'ip prefix-list theirs seq 1 permit 192.0.2.99/32',
    ];
    expect(alignPrefixLists(text, running).split('\n')).toEqual([
      'log stdout informational',
      `ip prefix-list L seq 2 permit ${addr(1)}`,
      `ip prefix-list L seq 10 permit ${addr(2)}`,
      `ip prefix-list L seq 7 permit ${addr(3)}`,
      'route-map X permit 1',
      '  match ip address prefix-list L',
      ...pl('P', [addr(1)]), // order matters there: the render's numbers
      'ipv6 prefix-list M seq 4 permit 2001:DB8:100::A/128',
      '',
    ]);
  });

  test('deny any <-> permits, lists FRR does not have, nothing to align', () => {
    const permits = plSet('L', [addr(1), addr(2)]).join('\n');
    expect(alignPrefixLists(permits, ['ip prefix-list L seq 3 deny any'])).toBe(
      `ip prefix-list L seq 4 permit ${addr(1)}\nip prefix-list L seq 5 permit ${addr(2)}`,
    );
    expect(
      alignPrefixLists('ip prefix-list L seq 1 deny any', [`ip prefix-list L seq 8 permit ${addr(1)}`]),
    ).toBe('ip prefix-list L seq 9 deny any');
    expect(alignPrefixLists(permits, [])).toBe(permits);
    expect(alignPrefixLists('log stdout\n', [`ip prefix-list L seq 8 permit ${addr(1)}`])).toBe(
      'log stdout\n',
    );
  });

  test('the aligned config diffs against FRR to exactly the real changes', () => {
    const r = rng(5);
    const before = Array.from({ length: 200 }, (_, i) => addr(i)).filter(() => r() < 0.6);
    let running = plSet('L', before);
    // Some set-based applies: FRR's numbers drift away from the render's.
    let last = plSet('L', before);
    for (let round = 0; round < 20; round++) {
      const next = plSet(
        'L',
        Array.from({ length: 200 }, (_, i) => addr(i)).filter(() => r() < 0.6),
      );
      const d = diffConfigs(parseConfig(last.join('\n')), parseConfig(next.join('\n')), { running });
      running = frrPrefixListModel(running, [...d.changes]);
      last = next;
    }
    const want = plSet(
      'L',
      Array.from({ length: 200 }, (_, i) => addr(i)).filter(() => r() < 0.6),
    );
    const aligned = alignPrefixLists(want.join('\n'), running);
    expect(asSets(aligned.split('\n'))).toEqual(asSets(want));
    // What frr-reload.py would have to do: only the prefixes that come or go, no renumbering.
    const have = new Set(running);
    const lines = new Set(aligned.split('\n'));
    const toAdd = [...lines].filter((l) => !have.has(l));
    const toDelete = [...have].filter((l) => !lines.has(l));
    const keysBefore = new Set(asSets(running));
    const keysAfter = new Set(asSets(want));
    expect(toAdd).toHaveLength([...keysAfter].filter((k) => !keysBefore.has(k)).length);
    expect(toDelete).toHaveLength([...keysBefore].filter((k) => !keysAfter.has(k)).length);
  });
});

describe('verification of prefix-lists diffed as sets', () => {
  test('verifyRunning compares them as sets: numbers do not matter, missing and extra entries do', () => {
    const d = diff(plSet('L', [addr(1)]).join('\n'), plSet('L', [addr(1), addr(2)]).join('\n'));
    const ok = parseConfig(
      `ip prefix-list L seq 9 permit ${addr(2)}\nip prefix-list L seq 3 permit ${addr(1)}\n`,
    );
    expect(verifyRunning(d, ok)).toEqual([]);
    const bad = parseConfig(
      `ip prefix-list L seq 3 permit ${addr(1)}\nip prefix-list L seq 4 permit ${addr(7)}\n`,
    );
    expect(verifyRunning(d, bad)).toEqual([
      `missing from ip prefix-list L: permit ${addr(2)}`,
      `still in ip prefix-list L: permit ${addr(7)}`,
    ]);
  });

  test('verifyFull: a list whose order matters must hold exactly the rendered entries', () => {
    const want = parseConfig(`${pl('L', [addr(1)]).join('\n')}\n`);
    expect(verifyFull(want, parseConfig(`${pl('L', [addr(1)]).join('\n')}\n`))).toEqual([]);
    const extra = `${pl('L', [addr(1)]).join('\n')}\nip prefix-list L seq 9 permit ${addr(2)}\n`;
    expect(verifyFull(want, parseConfig(extra))).toEqual([
      `still in ip prefix-list L: ip prefix-list L seq 9 permit ${addr(2)}`,
    ]);
  });

  test('verifyFull: the whole config against a running config with other numbers', () => {
    const want = parseConfig(nodeConf({ prefixes: ['198.51.100.10/32', '198.51.100.9/32'] }));
    const running = nodeConf({ prefixes: ['198.51.100.10/32', '198.51.100.9/32'] })
      .replace('seq 1 permit 198.51.100.10/32', 'seq 7 permit 198.51.100.10/32')
      .replace('seq 2 permit 198.51.100.9/32', 'seq 3 permit 198.51.100.9/32');
    expect(verifyFull(want, parseConfig(running))).toEqual([]);
    const missing = running.replace('    network 198.51.100.9/32\n', '');
    expect(verifyFull(want, parseConfig(missing))).toEqual([
      `missing: ${R} > ${AF4} > network 198.51.100.9/32`,
    ]);
    // A list that went away must be gone; one that is still there is reported.
    const withOld = `${running}ip prefix-list old seq 1 deny any\n`;
    expect(verifyFull(want, parseConfig(withOld), { goneLists: ['ip prefix-list old'] })).toEqual([
      'still in ip prefix-list old: deny any',
    ]);
    // Removed lines are checked too (prefix-list entries are left to the list comparison).
    const withTimers = running.replace(
      '  neighbor 192.0.2.1 remote-as 64497\n',
      '  neighbor 192.0.2.1 remote-as 64497\n  neighbor 192.0.2.1 timers 3 9\n',
    );
    expect(
      verifyFull(want, parseConfig(withTimers), {
        absent: [
          [R, 'neighbor 192.0.2.1 timers 3 9'],
          ['ip prefix-list 192.0.2.1-allowed-ipv4 seq 1 permit 198.51.100.10/32'],
        ],
      }),
    ).toEqual([`still present: ${R} > neighbor 192.0.2.1 timers 3 9`]);
  });
});

describe('targeted entry checks (show … prefix-list NAME seq N json)', () => {
  // Verbatim shape of FRR 8.4.4's answer (zebra and bgpd, one object each, pretty-printed).
  const answer = (list: string, entries: object[]) =>
    ['ZEBRA', 'BGP'].map((d) => JSON.stringify({ [d]: { [list]: { entries } } }, null, 2)).join('\n');
  const e = (seq: number, type: string, prefix: string) => ({
    sequenceNumber: seq,
    type,
    prefix,
    hitCount: 0,
    referenceCount: 0,
  });
  const checks: EntryCheck[] = [
    { family: 'ip', list: 'L', seq: 3, expect: 'permit 198.51.100.3/32' },
    { family: 'ip', list: 'L', seq: 1, expect: null },
    { family: 'ipv6', list: 'M', seq: 2, expect: 'deny any' },
  ];

  test('commands, one per number', () => {
    expect(entryCheckCommands(checks)).toEqual([
      'show ip prefix-list L seq 3 json',
      'show ip prefix-list L seq 1 json',
      'show ipv6 prefix-list M seq 2 json',
    ]);
    // ge: FRR's JSON for it was never seen, so such entries are checked with show running-config.
    expect(
      entryCheckCommands([{ family: 'ip', list: 'G', seq: 1, expect: 'permit 198.51.100.0/24 ge 28' }]),
    ).toBeNull();
    // One name in both families: the answers could not be told apart.
    expect(entryCheckCommands([...checks, { family: 'ipv6', list: 'L', seq: 1, expect: null }])).toBeNull();
  });

  test('all as expected', () => {
    const out = [
      answer('L', [e(3, 'permit', '198.51.100.3/32')]),
      answer('L', []),
      answer('M', [e(2, 'deny', 'any')]),
    ].join('\n');
    expect(verifyEntryChecks(checks, out)).toEqual([]);
    // What FRR 8.4 really answers for "deny any": the zero prefix, le 128 (le 32 for IPv4).
    const any6 = { ...e(2, 'deny', '::/0'), maximumPrefixLength: 128 };
    expect(verifyEntryChecks([checks[2]!], answer('M', [any6]))).toEqual([]);
    // The zero prefix alone (the default route) is not "any".
    // (New entries go to bgpd only: zebra's answer does not count for them.)
    expect(verifyEntryChecks([checks[2]!], answer('M', [e(2, 'deny', '::/0')]))).toEqual([
      'BGP: ipv6 prefix-list M seq 2 is deny ::/0, want deny any',
    ]);
    const le = { family: 'ip' as const, list: 'G', seq: 2, expect: 'permit 198.51.100.0/24 le 32' };
    const leAnswer = answer('G', [{ ...e(2, 'permit', '198.51.100.0/24'), maximumPrefixLength: 32 }]);
    expect(verifyEntryChecks([le], leAnswer)).toEqual([]);
  });

  test('an entry added to bgpd only (zebra lacks it) passes; a removal must be gone from every daemon', () => {
    const only = (d: string, list: string, entries: object[]) =>
      JSON.stringify({ [d]: { [list]: { entries } } });
    const add = { family: 'ip' as const, list: 'L', seq: 3, expect: 'permit 198.51.100.3/32' };
    expect(
      verifyEntryChecks(
        [add],
        only('ZEBRA', 'L', []) + only('BGP', 'L', [e(3, 'permit', '198.51.100.3/32')]),
      ),
    ).toEqual([]);
    const del = { family: 'ip' as const, list: 'L', seq: 1, expect: null };
    expect(
      verifyEntryChecks(
        [del],
        only('ZEBRA', 'L', [e(1, 'permit', '198.51.100.1/32')]) + only('BGP', 'L', []),
      ),
    ).toEqual(['still present in ZEBRA: ip prefix-list L seq 1 permit 198.51.100.1/32']);
  });

  test('an entry FRR dropped, one still there, a list that does not exist, garbage', () => {
    const out = [answer('L', []), answer('L', [e(1, 'permit', '198.51.100.1/32')])].join('');
    expect(verifyEntryChecks(checks, out)).toEqual([
      'BGP: ip prefix-list L seq 3 is missing, want permit 198.51.100.3/32',
      'still present in ZEBRA: ip prefix-list L seq 1 permit 198.51.100.1/32',
      'still present in BGP: ip prefix-list L seq 1 permit 198.51.100.1/32',
      'missing: ipv6 prefix-list M seq 2 deny any (no daemon shows M)',
    ]);
    expect(verifyEntryChecks(checks, '% Unknown command: show ip prefix-list L seq 3 json\n')[0]).toMatch(
      /unexpected output: % Unknown command/,
    );
  });

  test('splitJsonObjects reads objects back to back, strings with braces included', () => {
    expect(splitJsonObjects('{"a":"}{"}\n{"b":[1,{"c":2}]}')).toEqual([{ a: '}{' }, { b: [1, { c: 2 }] }]);
  });
});

describe('renderVtyshScript', () => {
  test('groups commands per context and leaves every context explicitly', () => {
    const d = diff(
      nodeConf({ prefixes: ['198.51.100.10/32'], extraNeighbor: true }),
      nodeConf({ prefixes: ['198.51.100.11/32'] }),
    );
    expect(renderVtyshScript(d.changes)).toBe(
      [
        'no ip prefix-list 192.0.2.1-allowed-ipv4 seq 1 permit 198.51.100.10/32',
        'ip prefix-list 192.0.2.1-allowed-ipv4 seq 2 permit 198.51.100.11/32',
        'router bgp 64496',
        ' no neighbor 192.0.2.2',
        ' address-family ipv4 unicast',
        '  no network 198.51.100.10/32',
        '  network 198.51.100.11/32',
        ' exit-address-family',
        'exit',
        'no route-map 192.0.2.2-in deny 20',
        'no route-map 192.0.2.2-out permit 1',
        'no ip prefix-list 192.0.2.2-allowed-ipv4',
        '',
      ].join('\n'),
    );
  });

  test('empty diff, empty script; an "enter" creates the context only', () => {
    expect(renderVtyshScript([])).toBe('');
    expect(renderVtyshScript([{ context: ['bfd', 'profile q'], op: 'enter', command: '' }])).toBe(
      'bfd\n profile q\n exit\nexit\n',
    );
  });
});

describe('verifyRunning', () => {
  test("E5 from an empty config checks out against FRR's running-config (known rewrites)", () => {
    const d = diff('', E5);
    expect(d.unsafe).toEqual([]);
    expect(verifyRunning(d, parseConfig(E5_RUNNING))).toEqual([]);
  });

  test('reports missing and leftover lines, masked', () => {
    const d = diff(
      nodeConf({ prefixes: ['198.51.100.10/32'], password: 'old' }),
      nodeConf({ prefixes: ['198.51.100.11/32'], password: 'n3w' }),
    );
    const running = parseConfig(
      [
        'router bgp 64496',
        ' neighbor 192.0.2.1 remote-as 64497',
        ' neighbor 192.0.2.1 password old',
        ' address-family ipv4 unicast',
        '  network 198.51.100.10/32',
        ' exit-address-family',
        'exit',
        'ip prefix-list 192.0.2.1-allowed-ipv4 seq 1 permit 198.51.100.11/32',
      ].join('\n'),
    );
    const problems = verifyRunning(d, running);
    expect(problems).toEqual([
      'missing: router bgp 64496 > neighbor 192.0.2.1 password <redacted>',
      'missing: router bgp 64496 > address-family ipv4 unicast > network 198.51.100.11/32',
      'still present: router bgp 64496 > neighbor 192.0.2.1 password <redacted>',
      'still present: router bgp 64496 > address-family ipv4 unicast > network 198.51.100.10/32',
    ]);
  });

  test('rewrites: ebgp-multihop 255, IPv6 spelling, defaults not shown', () => {
    const d = diff(
      'router bgp 1\n  neighbor 2001:DB8::5 remote-as 2\n',
      [
        'router bgp 1',
        '  neighbor 2001:DB8::5 remote-as 2',
        '  neighbor 2001:DB8::5 ebgp-multihop',
        '  neighbor 2001:DB8::5 port 179',
        'bfd',
        '  profile p',
        '    detect-multiplier 3',
        'debug bgp updates',
        'log stdout debugging',
      ].join('\n'),
    );
    const running = parseConfig(
      [
        'log stdout',
        'debug bgp updates in',
        'debug bgp updates out',
        'router bgp 1',
        ' neighbor 2001:db8::5 remote-as 2',
        ' neighbor 2001:db8::5 ebgp-multihop 255',
        'exit',
        'bfd',
        ' profile p',
        ' exit',
        'exit',
      ].join('\n'),
    );
    expect(verifyRunning(d, running)).toEqual([]);
  });
});
