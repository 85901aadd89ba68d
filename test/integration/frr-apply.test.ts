/**
 * FrrApplier against a real FRR 8.4 (one node, AS 64510) with a BIRD router (AS 64500) as its
 * eBGP peer, in network namespaces made by the lab harness (test/lab). Checks: the first apply
 * is a full frr-reload; adding/removing a service is incremental and reaches BIRD; a config FRR
 * rejects at apply time (it passes the dry-run parser) leaves the last good config in place with
 * lastError set; a burst of 200 submissions costs a few applies and ends in the right state;
 * a Service that sorts first is one vtysh command (prefix-lists diffed as sets against FRR's own
 * sequence numbers), checked with targeted `show … prefix-list … seq N json` and later by the
 * lazy `show running-config` check.
 *
 * Needs root and `ip netns`; skipped otherwise, except under CI=true, where it fails instead.
 * Set IRONLB_FRR_BENCH=1 for an extra timing run (IRONLB_FRR_BENCH_N prefixes, default 200, max 447).
 */
import { FrrApplier } from '../../src/frr/apply.js';
import { diffConfigs, verifyRunning } from '../../src/frr/config-diff.js';
import { findNode, parseConfig, walkPaths } from '../../src/frr/config-tree.js';
import { VtyshExecutor } from '../../src/frr/vtysh.js';
import { createLogger } from '../../src/util/log.js';
import {
  labUnavailableReason,
  startBird,
  startFrr,
  Topology,
  waitFor,
  type BirdInstance,
  type FrrInstance,
} from '../lab/index.js';

const unavailable = await labUnavailableReason();
const isCI = process.env.CI === 'true';
if (unavailable && !isCI) {
  console.warn(`frr-apply: SKIPPED: ${unavailable} (run as root with iproute2; CI=true never skips)`);
}
const describeLab = unavailable && !isCI ? describe.skip : describe;
const bench = process.env.IRONLB_FRR_BENCH === '1' ? test : test.skip;
const BENCH_N = Math.min(447, Math.max(1, Number(process.env.IRONLB_FRR_BENCH_N ?? 200) || 200));

const ROUTER = { name: 'rt', v4: '192.0.2.1', v6: '2001:db8:0:1::1' };
const NODE = { name: 'n1', v4: '192.0.2.11', v6: '2001:db8:0:1::11' };
const SECRET = 'lab1secret';
const SVC1 = '198.51.100.10/32';
const SVC2 = '198.51.100.11/32';

const BIRD_CONF = `router id ${ROUTER.v4};
protocol device { scan time 10; }
template bgp ebgp4 {
  local ${ROUTER.v4} as 64500; hold time 9; keepalive time 3;
  connect retry time 2; error wait time 1,5; connect delay time 1; graceful restart off;
  ipv4 { import all; export none; };
}
protocol bgp n1_4 from ebgp4 { neighbor ${NODE.v4} as 64510; password "${SECRET}"; }
`;

/** The node's frr.conf in the renderer's shape (spec e.5): allowed list + community list. */
interface More {
  /** Top-level lines before the router (other neighbors' filters, debug switches). */
  pre?: string[];
  /** Lines in the IPv4 address-family of the router (other neighbors). */
  af?: string[];
  /** Blocks after the router (VRF routers, bfd). */
  post?: string[];
  /** `neighbor 192.0.2.1 timers …` (default 3 9). */
  timers?: string;
  logLevel?: string;
}

function nodeConf(prefixes: string[], extra: string[] = [], more: More = {}): string {
  const p = [...prefixes].sort();
  const n = ROUTER.v4;
  const L = [
    `log stdout ${more.logLevel ?? 'informational'}`,
    'log timestamp precision 3',
    ...(more.pre ?? []),
    'ip nht resolve-via-default',
    `route-map ${n}-in deny 20`,
  ];
  p.forEach((x, i) => L.push(`ip prefix-list ${n}-64510:100-ip-community-prefixes seq ${i + 1} permit ${x}`));
  if (p.length) {
    L.push(
      `route-map ${n}-out permit 1`,
      `  match ip address prefix-list ${n}-64510:100-ip-community-prefixes`,
      '  set community 64510:100 additive',
      '  on-match next',
    );
  }
  if (p.length) p.forEach((x, i) => L.push(`ip prefix-list ${n}-allowed-ipv4 seq ${i + 1} permit ${x}`));
  else L.push(`ip prefix-list ${n}-allowed-ipv4 seq 1 deny any`);
  L.push(`route-map ${n}-out permit ${p.length ? 2 : 1}`, `  match ip address prefix-list ${n}-allowed-ipv4`);
  L.push(
    'router bgp 64510',
    '  no bgp ebgp-requires-policy',
    '  no bgp network import-check',
    '  no bgp default ipv4-unicast',
    '  bgp graceful-restart preserve-fw-state',
    `  bgp router-id ${NODE.v4}`,
    `  neighbor ${n} remote-as 64500`,
    `  neighbor ${n} timers ${more.timers ?? '3 9'}`,
    `  neighbor ${n} timers connect 2`,
    `  neighbor ${n} password ${SECRET}`,
    ...extra,
    '  address-family ipv4 unicast',
    `    neighbor ${n} activate`,
    `    neighbor ${n} route-map ${n}-in in`,
    `    neighbor ${n} route-map ${n}-out out`,
    ...(more.af ?? []),
    '  exit-address-family',
  );
  if (p.length)
    L.push('  address-family ipv4 unicast', ...p.map((x) => `    network ${x}`), '  exit-address-family');
  L.push(...(more.post ?? []));
  return `${L.join('\n')}\n`;
}

describeLab('FrrApplier against real FRR and BIRD', () => {
  let topo: Topology | undefined;
  let bird: BirdInstance | undefined;
  let frr: FrrInstance | undefined;
  let applier: FrrApplier | undefined;
  const logLines: string[] = [];

  beforeAll(async () => {
    if (unavailable) throw new Error(`lab unavailable under CI=true: ${unavailable}`);
    topo = await Topology.create({ hosts: [ROUTER, NODE] });
    bird = await startBird({ ns: topo.host('rt').ns, config: BIRD_CONF });
    frr = await startFrr({
      ns: topo.host('n1').ns,
      config: 'frr defaults traditional\nlog stdout informational\n',
    });
    applier = new FrrApplier({
      executor: new VtyshExecutor({ pathspace: frr.name }),
      log: createLogger({ level: 'debug', write: (l) => logLines.push(l) }),
      initialBackoffMs: 2000,
      maxBackoffMs: 10_000,
    });
    applier.start();
  }, 60_000);

  afterAll(async () => {
    const errors: unknown[] = [];
    for (const step of [
      () => applier?.stop(),
      () => frr?.stop(),
      () => bird?.stop(),
      () => topo?.teardown(),
    ]) {
      try {
        await step();
      } catch (e) {
        errors.push(e);
      }
    }
    // Nothing we logged or report may carry the BGP password.
    expect([...logLines, JSON.stringify(applier?.status() ?? {})].join('\n')).not.toContain(SECRET);
    if (errors.length > 0) throw errors[0];
  }, 60_000);

  const routeAtBird = async (prefix: string) =>
    (await bird!.showRoutes(prefix)).some((r) => r.nextHops.some((h) => h.gateway === NODE.v4));
  const running = async () => parseConfig(await frr!.vtysh('show running-config'));
  const timings = () => JSON.stringify(applier!.status().lastTimings);

  test('first apply is a full frr-reload; the session comes up and the route reaches BIRD', async () => {
    const a = applier!;
    const t0 = Date.now();
    expect(a.submit(nodeConf([SVC1]))).toBe(1);
    await a.whenIdle();
    const applied = Date.now() - t0;
    expect(a.status()).toMatchObject({ desiredGeneration: 1, appliedGeneration: 1, mode: 'full' });
    expect(a.status().lastError).toBeUndefined();
    await waitFor(() => routeAtBird(SVC1), { timeoutMs: 30_000, intervalMs: 100, what: `${SVC1} at BIRD` });
    console.log(
      `frr-apply: full apply ${applied} ms ${timings()}, route at BIRD after ${Date.now() - t0} ms`,
    );
    const route = (await bird!.showRoutes(SVC1))[0]!;
    expect(route.bgp?.communities).toContain('64510:100');
  }, 60_000);

  test('adding a service is incremental (one vtysh -f) and the route appears at BIRD', async () => {
    const a = applier!;
    const before = a.status().counts;
    const t0 = Date.now();
    a.submit(nodeConf([SVC1, SVC2]));
    await a.whenIdle();
    const applied = Date.now() - t0;
    expect(a.status()).toMatchObject({ appliedGeneration: 2, mode: 'incremental' });
    expect(a.status().counts.incremental).toBe(before.incremental + 1);
    expect(a.status().counts.full).toBe(before.full);
    await waitFor(() => routeAtBird(SVC2), { timeoutMs: 20_000, intervalMs: 50, what: `${SVC2} at BIRD` });
    console.log(
      `frr-apply: incremental +1 in ${applied} ms ${timings()}, at BIRD after ${Date.now() - t0} ms`,
    );
    const route = (await bird!.showRoutes(SVC2))[0]!;
    expect(route.bgp?.communities).toContain('64510:100');
    const r = await running();
    expect(findNode(r, ['router bgp 64510', 'address-family ipv4 unicast', `network ${SVC2}`])).toBeDefined();
    expect(findNode(r, [`ip prefix-list ${ROUTER.v4}-allowed-ipv4 seq 2 permit ${SVC2}`])).toBeDefined();
  }, 60_000);

  test('removing it again is incremental and the route is withdrawn', async () => {
    const a = applier!;
    const t0 = Date.now();
    a.submit(nodeConf([SVC1]));
    await a.whenIdle();
    const applied = Date.now() - t0;
    expect(a.status()).toMatchObject({ appliedGeneration: 3, mode: 'incremental' });
    await waitFor(async () => !(await routeAtBird(SVC2)), {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: `${SVC2} withdrawn`,
    });
    console.log(
      `frr-apply: incremental -1 in ${applied} ms ${timings()}, withdrawn after ${Date.now() - t0} ms`,
    );
    expect(await routeAtBird(SVC1)).toBe(true);
    const r = await running();
    expect(
      findNode(r, ['router bgp 64510', 'address-family ipv4 unicast', `network ${SVC2}`]),
    ).toBeUndefined();
    expect(findNode(r, [`ip prefix-list ${ROUTER.v4}-allowed-ipv4 seq 2 permit ${SVC2}`])).toBeUndefined();
  }, 60_000);

  test('a config the parser rejects is never applied', async () => {
    const a = applier!;
    a.submit(`${nodeConf([SVC1, SVC2])}frobnicate the-widget 42\n`);
    await a.whenIdle();
    expect(a.status()).toMatchObject({ desiredGeneration: 4, appliedGeneration: 3, rejectedGeneration: 4 });
    expect(a.status().lastError).toContain('frobnicate the-widget 42');
    const r = await running();
    expect(
      findNode(r, ['router bgp 64510', 'address-family ipv4 unicast', `network ${SVC2}`]),
    ).toBeUndefined();
  }, 60_000);

  test('a config FRR rejects when applying: last good kept, lastError set, no crash', async () => {
    const a = applier!;
    // Passes `vtysh -C`, fails in bgpd: "% Specify remote-as or peer-group commands first".
    const bad = nodeConf([SVC1, SVC2], ['  neighbor 192.0.2.98 timers 3 9']);
    const t0 = Date.now();
    a.submit(bad);
    await a.whenIdle();
    const s = a.status();
    console.log(`frr-apply: failing apply + restore took ${Date.now() - t0} ms ${timings()}\n${s.lastError}`);
    expect(s).toMatchObject({ desiredGeneration: 5, appliedGeneration: 3, failedGeneration: 5 });
    expect(s.lastError).toMatch(/generation 5 failed: frr-reload.py --reload failed/);
    expect(s.lastError).toContain('kept generation 3');
    expect(s.nextRetryAt).toEqual(expect.any(Number));
    const r = await running();
    expect(findNode(r, ['router bgp 64510', 'neighbor 192.0.2.98 timers 3 9'])).toBeUndefined();
    // The last good config is what runs: SVC1 announced, SVC2 (only in the bad config) not.
    expect(findNode(r, ['router bgp 64510', 'address-family ipv4 unicast', `network ${SVC1}`])).toBeDefined();
    expect(
      findNode(r, ['router bgp 64510', 'address-family ipv4 unicast', `network ${SVC2}`]),
    ).toBeUndefined();
    expect(await routeAtBird(SVC1)).toBe(true);
    // A good config afterwards is applied at once and clears the error.
    a.submit(nodeConf([SVC1]));
    await a.whenIdle();
    expect(a.status()).toMatchObject({ appliedGeneration: 6 });
    expect(a.status().lastError).toBeUndefined();
    expect(a.status().nextRetryAt).toBeUndefined();
  }, 60_000);

  test('a burst of 200 submissions: at most 5 applies, final state correct', async () => {
    const a = applier!;
    const before = a.status();
    const countOf = (s: typeof before) =>
      s.counts.incremental + s.counts.full + s.counts.unchanged + s.counts.failed + s.counts.rejected;
    const pool = Array.from({ length: 40 }, (_, i) => `198.51.100.${20 + i}/32`);
    let last: string[] = [];
    const t0 = Date.now();
    for (let i = 0; i < 200; i++) {
      last = [SVC1, ...pool.filter((_, j) => (i + j) % 3 === 0)];
      a.submit(nodeConf(last));
    }
    await a.whenIdle();
    const s = a.status();
    const applies = countOf(s) - countOf(before);
    console.log(`frr-apply: burst of 200 -> ${applies} applies in ${Date.now() - t0} ms ${timings()}`);
    expect(applies).toBeLessThanOrEqual(5);
    expect(s.appliedGeneration).toBe(s.desiredGeneration);
    expect(s.lastError).toBeUndefined();
    const r = await running();
    const nets = [
      ...(findNode(r, ['router bgp 64510', 'address-family ipv4 unicast'])?.children.keys() ?? []),
    ]
      .filter((l) => l.startsWith('network '))
      .map((l) => l.slice('network '.length))
      .sort();
    expect(nets).toEqual([...last].sort());
    await waitFor(
      async () => {
        const routes = await bird!.showRoutes('protocol n1_4');
        return routes.length === last.length && last.every((p) => routes.some((x) => x.prefix === p));
      },
      { timeoutMs: 30_000, intervalMs: 200, what: `BIRD has exactly the ${last.length} final prefixes` },
    );
  }, 60_000);

  test('diff shapes against real FRR: every step stays incremental and checks out', async () => {
    const a = applier!;
    const N = ROUTER.v4;
    const X = '192.0.2.5';
    const V6 = '2001:db8:0:1::5';
    const bfd = (rx: number, extra: string[] = []) => [
      'bfd',
      '  profile fast',
      `    receive-interval ${rx}`,
      `    transmit-interval ${rx}`,
      '    detect-multiplier 3',
      ...extra,
      '  profile slow',
      '    receive-interval 300',
    ];
    const bfdNeighbor = [`  neighbor ${N} bfd`, `  neighbor ${N} bfd profile fast`];
    const other = (action: string) => ({
      pre: [
        `route-map ${X}-in deny 20`,
        `ip prefix-list ${X}-allowed-ipv4 seq 1 permit ${SVC1}`,
        `route-map ${X}-out ${action} 1`,
        `  match ip address prefix-list ${X}-allowed-ipv4`,
      ],
      af: [
        `    neighbor ${X} activate`,
        `    neighbor ${X} route-map ${X}-in in`,
        `    neighbor ${X} route-map ${X}-out out`,
      ],
    });
    const otherLines = [
      `  neighbor ${X} remote-as 64501`,
      `  neighbor ${X} ebgp-multihop`,
      `  neighbor ${X} port 179`,
      `  neighbor ${X} local-as 64999 no-prepend replace-as`,
      `  neighbor ${X} update-source ${NODE.v4}`,
      `  neighbor ${X} graceful-restart`,
      `  neighbor ${V6} remote-as 64501`,
      `  neighbor ${V6} disable-connected-check`,
    ];
    const vrf = [
      'router bgp 64510 vrf ilred',
      '  bgp router-id 192.0.2.11',
      `  neighbor ${X} remote-as 64502`,
    ];
    const debug = [
      'debug zebra events',
      'debug bgp neighbor-events',
      'debug bgp updates',
      'debug bgp keepalives',
      'debug bfd peer',
    ];
    const many = Array.from({ length: 40 }, (_, i) => `203.0.113.${100 + i}/32`);
    const steps: [string, string][] = [
      ['start', nodeConf([SVC1])],
      ['BFD profiles + neighbor bfd', nodeConf([SVC1], bfdNeighbor, { post: bfd(100) })],
      [
        'profile values change, echo/passive/ttl on',
        nodeConf([SVC1], bfdNeighbor, {
          post: bfd(50, ['    echo-mode', '    passive-mode', '    minimum-ttl 250']),
        }),
      ],
      ['profile values back to defaults', nodeConf([SVC1], bfdNeighbor, { post: bfd(300) })],
      ['timers change', nodeConf([SVC1], bfdNeighbor, { post: bfd(300), timers: '4 12' })],
      [
        'another neighbor with its filters',
        nodeConf([SVC1], [...bfdNeighbor, ...otherLines], { ...other('permit'), post: bfd(300) }),
      ],
      [
        'route-map action change',
        nodeConf([SVC1], [...bfdNeighbor, ...otherLines], { ...other('deny'), post: bfd(300) }),
      ],
      ['neighbor removed', nodeConf([SVC1], bfdNeighbor, { post: bfd(300) })],
      ['VRF router added', nodeConf([SVC1], bfdNeighbor, { post: [...vrf, ...bfd(300)] })],
      ['VRF router removed, BFD off', nodeConf([SVC1])],
      ['debugging on', nodeConf([SVC1], [], { pre: debug, logLevel: 'debugging' })],
      ['debugging off', nodeConf([SVC1])],
      ['40 prefixes', nodeConf([SVC1, ...many])],
      ['insert at the front (renumbers all)', nodeConf([SVC1, '198.51.100.9/32', ...many])],
      ['remove from the front', nodeConf([SVC1, ...many.slice(5)])],
      ['back to one', nodeConf([SVC1])],
    ];
    const fullBefore = a.status().counts.full;
    const report: string[] = [];
    for (const [name, text] of steps) {
      a.submit(text);
      await a.whenIdle();
      const s = a.status();
      report.push(
        `${name}: ${s.mode} ${s.lastTimings?.totalMs} ms (vtysh -f ${s.lastTimings?.applyMs ?? '-'} ms)`,
      );
      expect({ step: name, mode: s.mode, error: s.lastError, applied: s.appliedGeneration }).toEqual({
        step: name,
        mode: 'incremental',
        error: undefined,
        applied: s.desiredGeneration,
      });
    }
    console.log(`frr-apply: diff shapes\n${report.join('\n')}`);
    expect(a.status().counts.full).toBe(fullBefore);
    // After all these steps FRR runs exactly the last config: every line of it is there, and
    // nothing else in the routers, route-maps, prefix-lists and BFD profiles.
    const want = parseConfig(steps[steps.length - 1]![1]);
    const have = await running();
    expect(verifyRunning(diffConfigs(parseConfig(''), want), have)).toEqual([]);
    const ours = (p: string[]) => /^(router bgp|route-map|ip prefix-list|ipv6 prefix-list|bfd)/.test(p[0]!);
    // Prefix-list entries are compared without their numbers (FRR's differ from the render's).
    const key = (p: string[]) => p.join(' > ').replace(/^((?:ip|ipv6) prefix-list \S+) seq \d+ /, '$1 ');
    const wanted = new Set([...walkPaths(want.root)].filter(ours).map(key));
    const extra = [...walkPaths(have.root)]
      .filter(ours)
      .map(key)
      .filter((p) => !wanted.has(p) && p !== 'bfd');
    expect(extra).toEqual([]);
    await waitFor(() => routeAtBird(SVC1), { timeoutMs: 20_000, what: `${SVC1} still at BIRD` });
  }, 60_000);

  test('a Service that sorts first: one vtysh command, FRR keeps its own numbers, both checks pass', async () => {
    const a = applier!;
    const forty = Array.from({ length: 40 }, (_, i) => `203.0.113.${100 + i}/32`);
    a.submit(nodeConf([SVC1, ...forty]));
    await a.whenIdle();
    const list = `ip prefix-list ${ROUTER.v4}-allowed-ipv4 `;
    const entriesOf = async () =>
      [...(await running()).root.children.keys()].filter((l) => l.startsWith(list));
    const before = await entriesOf();
    expect(before).toHaveLength(41);
    const top = Math.max(...before.map((l) => Number(/ seq (\d+) /.exec(l)![1])));
    const first = '198.51.100.2/32'; // sorts before everything: the render renumbers all 41 entries
    const t0 = Date.now();
    a.submit(nodeConf([first, SVC1, ...forty]));
    await a.whenIdle();
    const applied = Date.now() - t0;
    expect(a.status()).toMatchObject({ mode: 'incremental', lastVerify: 'entries' });
    expect(a.status().lastError).toBeUndefined();
    await waitFor(() => routeAtBird(first), { timeoutMs: 20_000, intervalMs: 20, what: `${first} at BIRD` });
    console.log(
      `frr-apply: +1 at the front of 41 in ${applied} ms ${timings()}, at BIRD after ${Date.now() - t0} ms`,
    );
    const entries = await entriesOf();
    // FRR's numbers are not the render's (which has it at seq 1 and everything else one up): the
    // new entry went above the highest one, the others kept theirs.
    expect(entries).toEqual([...before, `${list}seq ${top + 1} permit ${first}`]);
    // The lazy whole-config check runs once the applier is quiet, and finds FRR as wanted.
    const gen = a.status().appliedGeneration;
    await waitFor(() => a.status().verifiedGeneration === gen, {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: 'the lazy show running-config check',
    });
    expect(a.status().checks.failed).toBe(0);
    // A change the incremental path refuses (an unknown line) goes through frr-reload.py, which
    // gets the config numbered as FRR has it: nothing is renumbered, the route stays.
    const delay = { post: ['zebra route-map delay-timer 1'] };
    for (const text of [nodeConf([first, SVC1, ...forty], [], delay), nodeConf([first, SVC1, ...forty])]) {
      a.submit(text);
      await a.whenIdle();
      expect(a.status()).toMatchObject({ mode: 'full' });
      expect(a.status().lastError).toBeUndefined();
      expect(await entriesOf()).toEqual(entries);
      expect(await routeAtBird(first)).toBe(true);
    }
    // Removing it again: by FRR's number.
    a.submit(nodeConf([SVC1, ...forty]));
    await a.whenIdle();
    expect(a.status()).toMatchObject({ mode: 'incremental', lastVerify: 'entries' });
    await waitFor(async () => !(await routeAtBird(first)), {
      timeoutMs: 20_000,
      intervalMs: 20,
      what: `${first} withdrawn`,
    });
    expect(await entriesOf()).toEqual(before);
    a.submit(nodeConf([SVC1]));
    await a.whenIdle();
    expect(a.status().lastError).toBeUndefined();
  }, 60_000);

  bench(
    `timing: ${BENCH_N} prefixes (IRONLB_FRR_BENCH_N), then +1 / -1 / +20 / -20`,
    async () => {
      const a = applier!;
      // 198.51.100.64-255 and 203.0.113.0-255 (without .99, which sorts last).
      const pool = [
        ...Array.from({ length: 192 }, (_, i) => `198.51.100.${64 + i}/32`),
        ...Array.from({ length: 256 }, (_, i) => `203.0.113.${i}/32`).filter((p) => p !== '203.0.113.99/32'),
      ];
      const many = pool.slice(0, BENCH_N);
      const middle = '198.51.100.63/32'; // sorts after 198.51.100.255: renumbers the 203.0.113.x entries
      const last = '203.0.113.99/32'; // sorts last: no renumbering
      const twenty = Array.from({ length: 20 }, (_, i) => `198.51.100.${40 + i}/32`);
      for (const [what, set] of [
        [`${BENCH_N} prefixes`, many],
        ['+1 at the end', [...many, last]],
        ['-1 at the end', many],
        ['+1 in the middle', [...many, middle]],
        ['-1 in the middle', many],
        ['+20', [...many, ...twenty]],
        ['-20', many],
      ] as const) {
        const t0 = Date.now();
        a.submit(nodeConf([...set]));
        await a.whenIdle();
        console.log(`frr-apply bench: ${what}: ${Date.now() - t0} ms mode=${a.status().mode} ${timings()}`);
        expect(a.status().lastError).toBeUndefined();
      }
      // The same through frr-reload.py alone, for comparison: there each deleted line (also each
      // renumbered prefix-list entry) is a vtysh process of its own.
      const exec = new VtyshExecutor({ pathspace: frr!.name });
      for (const [what, set] of [
        ['+1 at the end', [...many, last]],
        ['-1 at the end', many],
        ['+1 in the middle', [...many, middle]],
        ['-1 in the middle', many],
      ] as const) {
        const r = await exec.reload(nodeConf([...set]));
        console.log(`frr-apply bench: frr-reload.py ${what}: ${r.durationMs} ms ok=${r.ok}`);
      }
    },
    600_000,
  );
});
