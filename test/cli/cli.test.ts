/**
 * The built `ironlb` binary (validate, allocate) on temporary files, and a fuzz-ish pass of
 * `main()` in-process. Exit codes: 0 ok, 1 invalid configuration (one `<Kind>/<name>: <path>:
 * <reason>` line per problem on stdout), 2 usage / unreadable / unparsable input (a message naming
 * the file and line), never a stack trace.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import fc from 'fast-check';
import { parse as parseYaml, parseAllDocuments, stringify } from 'yaml';

import { main } from '../../src/cli/main.js';
import { findPackageRoot } from '../../src/config/schema.js';

const root = findPackageRoot();
const examples = join(root, 'examples');
let tmp = '';

/** The environment for child processes, without jest's --experimental-vm-modules. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function ironlb(...args: string[]): Run {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'ironlb'), ...args], {
    cwd: tmp,
    encoding: 'utf8',
    env: childEnv(),
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs main() in-process with a capturing Io. */
async function inProcess(...argv: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { out: (t) => void (stdout += t), err: (t) => void (stderr += t) });
  return { code, stdout, stderr };
}

function file(name: string, text: string): string {
  const p = join(tmp, name);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, text);
  return p;
}

const lines = (s: string): string[] => s.split('\n').filter((l) => l !== '');

function expectNoStack(r: Run): void {
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stdout).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toMatch(/internal error/);
}

beforeAll(() => {
  execFileSync('npm', ['run', 'build'], { cwd: root, env: childEnv(), stdio: 'pipe' });
  tmp = mkdtempSync(join(tmpdir(), 'ironlb-cli-'));
}, 180_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// ------------------------------------------------------------------------------ fixtures

const POOL = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: lan
  namespace: metallb-system
spec:
  addresses:
    - 192.0.2.0/28
`;

// ------------------------------------------------------------------------------ validate

describe('ironlb validate', () => {
  test('valid examples → 0, nothing on stdout', () => {
    const r = ironlb('validate', '-f', examples);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /valid: 3 IPAddressPool\(s\), 1 BGPPeer\(s\), 1 BFDProfile\(s\), 1 community alias\(es\)/,
    );
    expectNoStack(r);
  });

  test('several -f flags, files and directories, --namespace', () => {
    const f = file('ns/pool.yaml', POOL.replace('metallb-system', 'lb'));
    expect(ironlb('validate', '-f', f, '--namespace', 'lb').code).toBe(0);
    expect(
      ironlb(
        'validate',
        '-f',
        join(examples, '10-pools.yaml'),
        '-f',
        join(examples, '20-advertisements.yaml'),
      ).code,
    ).toBe(0);
  });

  test.each<[string, string, string[]]>([
    [
      'a bad CIDR',
      `${POOL}    - 192.0.2.0/33\n`,
      ['IPAddressPool/lan: spec.addresses[1]: invalid CIDR "192.0.2.0/33": prefix length 33 exceeds 32'],
    ],
    [
      'overlapping pools',
      `${POOL}---\n${POOL.replace('name: lan', 'name: wan').replace('192.0.2.0/28', '192.0.2.8-192.0.2.20')}`,
      [
        'IPAddressPool/wan: spec.addresses[0]: 192.0.2.8/29 overlaps 192.0.2.0/28 ("192.0.2.0/28") of IPAddressPool/lan',
      ],
    ],
    [
      'a BGPPeer with two problems',
      `apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: edge, namespace: metallb-system}
spec: {myASN: 0, peerASN: 64501, peerAddress: 192.0.2.1, holdTime: 2s}
`,
      ['BGPPeer/edge: spec.myASN: must not be 0', 'BGPPeer/edge: spec.holdTime: must be 0 or at least 3s'],
    ],
    [
      'an unknown community alias (transient) and a duplicate peer',
      `${POOL}---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: ad, namespace: metallb-system}
spec:
  communities: [no-such-alias]
  peers: [r1, r1]
`,
      [
        'BGPAdvertisement/ad: spec.peers[1]: duplicate entry "r1"',
        'BGPAdvertisement/ad: spec.communities[0]: "no-such-alias" is not a known Community alias nor A:B / large:A:B:C',
      ],
    ],
    [
      'an object outside the MetalLB namespace',
      POOL.replace('metallb-system', 'default'),
      [
        'IPAddressPool/lan: metadata.namespace: "default" is not the MetalLB namespace "metallb-system"; the object would be ignored',
      ],
    ],
    [
      'a schema error',
      `apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
spec: {interfaces: eth0}
`,
      ['L2Advertisement/lan: spec.interfaces: must be a list'],
    ],
  ])('%s → 1 with exact problem lines', (name, text, expected) => {
    const f = file(`invalid-${name.replace(/\W+/g, '-')}.yaml`, text);
    const r = ironlb('validate', '-f', f);
    expect(r.code).toBe(1);
    expect(lines(r.stdout)).toEqual(expected);
    expect(r.stderr).toBe(`${expected.length} problem${expected.length === 1 ? '' : 's'} found\n`);
    expectNoStack(r);
  });

  test('one line per problem, even when a name or a value holds a newline', () => {
    const f = file(
      'newline.yaml',
      `apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: "edge\\nrouter bgp 1", namespace: metallb-system}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.1}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: core, namespace: metallb-system}
spec: {myASN: 64500, peerASN: 64501, peerAddress: "192.0.2.2\\nneighbor 192.0.2.9 remote-as 1"}
`,
    );
    const r = ironlb('validate', '-f', f);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('2 problems found\n');
    expect(lines(r.stdout)).toHaveLength(2);
    expect(lines(r.stdout)[0]).toMatch(/^BGPPeer\/edge.*: metadata\.name: /);
    expect(lines(r.stdout)[1]).toMatch(/^BGPPeer\/core: spec\.peerAddress: /);
  });

  test('problems from several files of a directory are all reported', () => {
    const dir = join(tmp, 'multi');
    file('multi/10-pools.yaml', `${POOL}    - 192.0.2.300/32\n`);
    file(
      'multi/20-peer.yaml',
      `apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: edge, namespace: metallb-system}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.1, bfdProfile: missing}
`,
    );
    const r = ironlb('validate', '-f', dir);
    expect(r.code).toBe(1);
    expect(lines(r.stdout)).toEqual([
      'BGPPeer/edge: spec.bfdProfile: BFDProfile "missing" not found',
      'IPAddressPool/lan: spec.addresses[1]: invalid CIDR "192.0.2.300/32": octet 300 is larger than 255',
    ]);
  });
});

describe('exit code 2: usage and unreadable input', () => {
  test('missing file names the file', () => {
    const r = ironlb('validate', '-f', join(tmp, 'does-not-exist.yaml'));
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/does-not-exist\.yaml: cannot read: ENOENT/);
    expect(lines(r.stderr)).toHaveLength(1);
    expectNoStack(r);
  });

  test('a directory holding bad YAML names the file and the line', () => {
    file('baddir/10-ok.yaml', POOL);
    file(
      'baddir/20-bad.yaml',
      `${POOL.replace('name: lan', 'name: other')}---\nkind: IPAddressPool\nmetadata:\n  name: x\nspec: {addresses: [192.0.2.64/28]\n`,
    );
    const r = ironlb('validate', '-f', join(tmp, 'baddir'));
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/20-bad\.yaml:1[3-4]:\d+: invalid YAML: /);
    expect(lines(r.stderr)).toHaveLength(1);
    expectNoStack(r);
  });

  test('duplicate keys are an input error with a line', () => {
    const f = file('dupkey.yaml', 'kind: IPAddressPool\nkind: BGPPeer\n');
    const r = ironlb('validate', '-f', f);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/dupkey\.yaml:2:\d+: invalid YAML/);
    expectNoStack(r);
  });

  test('a document that is not a mapping', () => {
    const f = file('list.yaml', '- a\n- b\n');
    const r = ironlb('validate', '-f', f);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/list\.yaml:1: /);
    expectNoStack(r);
  });

  test.each<[string, string[], RegExp]>([
    ['unknown flag', ['validate', '-f', 'x.yaml', '--bogus'], /unknown flag "--bogus"/],
    ['no -f', ['validate'], /at least one -f PATH is required/],
    ['allocate without -f', ['allocate', '-o', 'json'], /at least one -f PATH is required/],
    ['bad -o', ['allocate', '-f', 'x.yaml', '-o', 'xml'], /-o must be json, yaml or table/],
    ['flag without a value', ['validate', '-f'], /needs a value/],
    ['positional argument', ['validate', 'x.yaml'], /unexpected argument "x\.yaml"/],
    ['unknown command', ['frobnicate'], /unknown command "frobnicate"/],
  ])('%s', (_what, args, message) => {
    const r = ironlb(...args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
    expect(lines(r.stderr)).toHaveLength(1);
    expectNoStack(r);
  });
});

// ------------------------------------------------------------------------------ allocate

/** What examples/ must allocate (spec c.3–c.5, c.8 counting with avoidBuggyIPs). */
const EXPECTED_REPORT = {
  services: [
    // Unpinned pools in name order: dual first; avoidBuggyIPs skips 198.51.100.0.
    { namespace: 'default', name: 'web', ips: ['198.51.100.1'], pool: 'dual', error: null },
    // Same sharing key, ETP Cluster, TCP/53 vs UDP/53: one IP.
    { namespace: 'default', name: 'dns-tcp', ips: ['198.51.100.2'], pool: 'dual', error: null },
    { namespace: 'default', name: 'dns-udp', ips: ['198.51.100.2'], pool: 'dual', error: null },
    // RequireDualStack from the named pool, IPv4 first; the IPv6 network address is a candidate.
    { namespace: 'default', name: 'api', ips: ['198.51.100.3', '2001:db8:100::'], pool: 'dual', error: null },
    // Pinned pool for the payments namespace.
    { namespace: 'payments', name: 'checkout', ips: ['192.0.2.64'], pool: 'payments', error: null },
    // Explicit IP inside a range entry.
    { namespace: 'default', name: 'pinned', ips: ['203.0.113.105'], pool: 'public-v4', error: null },
    {
      namespace: 'default',
      name: 'wrong-pool',
      ips: [],
      pool: null,
      error: expect.stringMatching(/does-not-exist/),
    },
  ],
  pools: [
    // /29 with avoidBuggyIPs: 7 usable IPv4; /120: 256 IPv6.
    { name: 'dual', assignedIPv4: 3, availableIPv4: 4, assignedIPv6: 1, availableIPv6: 255 },
    { name: 'payments', assignedIPv4: 1, availableIPv4: 15, assignedIPv6: 0, availableIPv6: 0 },
    // /28 + 100-110 = 16 + 11.
    { name: 'public-v4', assignedIPv4: 1, availableIPv4: 26, assignedIPv6: 0, availableIPv6: 0 },
  ],
};

describe('ironlb allocate', () => {
  let json: Record<string, unknown>;

  test('-o json on examples/ matches the documented shape and values', () => {
    const r = ironlb('allocate', '-f', examples, '-o', 'json');
    expect(r.code).toBe(0);
    expectNoStack(r);
    json = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(Object.keys(json)).toEqual(['services', 'pools']);
    const services = json.services as Array<Record<string, unknown>>;
    const pools = json.pools as Array<Record<string, unknown>>;
    for (const s of services) expect(Object.keys(s)).toEqual(['namespace', 'name', 'ips', 'pool', 'error']);
    for (const p of pools)
      expect(Object.keys(p)).toEqual([
        'name',
        'assignedIPv4',
        'availableIPv4',
        'assignedIPv6',
        'availableIPv6',
      ]);
    // Counters are JSON numbers, not strings.
    expect(r.stdout).toMatch(/"availableIPv6": 255\b/);
    expect(json).toEqual(EXPECTED_REPORT);
    // Services in input order, pools sorted by name.
    const order = parseAllDocuments(readFileSync(join(examples, '30-services.yaml'), 'utf8'))
      .map((d) => d.toJS() as { kind?: string; metadata?: { name?: string } })
      .filter((o) => o.kind === 'Service')
      .map((o) => o.metadata?.name);
    expect(services.map((s) => s.name)).toEqual(order);
    const names = pools.map((p) => p.name as string);
    expect(names).toEqual([...names].sort());
  });

  test('-o yaml parses to the same object', () => {
    const r = ironlb('allocate', '-f', examples, '-o', 'yaml');
    expect(r.code).toBe(0);
    expect(parseYaml(r.stdout, { intAsBigInt: false })).toEqual(EXPECTED_REPORT);
    if (json) expect(parseYaml(r.stdout)).toEqual(json);
  });

  test('-o table (the default): aligned columns and a reason for every Service without IP', () => {
    const r = ironlb('allocate', '-f', examples);
    expect(r.code).toBe(0);
    const blocks = r.stdout
      .split(/\n\s*\n/)
      .map(lines)
      .filter((b) => b.length);
    expect(blocks).toHaveLength(2);
    for (const block of blocks) {
      const header = block[0]!;
      // Column starts: the first character and every character after two or more spaces.
      const starts = [0, ...[...header.matchAll(/ {2,}(?=\S)/g)].map((m) => m.index + m[0].length)];
      for (const row of block) {
        for (const s of starts.slice(1)) {
          expect([row, row[s - 1]]).toEqual([row, ' ']);
          expect([row, row[s] !== ' ' && row[s] !== undefined]).toEqual([row, true]);
        }
      }
    }
    const [svc, pools] = blocks as [string[], string[]];
    expect(svc[0]).toMatch(/^NAMESPACE\s+NAME\s+IPS\s+POOL\s+STATUS$/);
    expect(svc).toHaveLength(1 + EXPECTED_REPORT.services.length);
    const statusAt = svc[0]!.indexOf('STATUS');
    for (const row of svc.slice(1)) {
      const status = row.slice(statusAt);
      if (/\s-\s/.test(row.slice(0, statusAt))) expect(status).toMatch(/^no IP: \S.*/);
      else expect(status).toBe('allocated');
    }
    expect(svc.find((r) => r.includes('wrong-pool'))).toMatch(/no IP: .*does-not-exist/);
    expect(pools[0]).toMatch(/^POOL\s+IPV4 ASSIGNED\s+IPV4 AVAILABLE\s+IPV6 ASSIGNED\s+IPV6 AVAILABLE$/);
    expect(pools.slice(1).map((l) => l.split(/\s+/))).toEqual([
      ['dual', '3', '4', '1', '255'],
      ['payments', '1', '15', '0', '0'],
      ['public-v4', '1', '26', '0', '0'],
    ]);
  });

  test('an exhausted pool gives every later Service a reason', () => {
    const f = file(
      'exhaust.yaml',
      `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: tiny, namespace: metallb-system}
spec: {addresses: [192.0.2.10/32]}
---
${['a', 'b', 'c']
  .map(
    (n) => `apiVersion: v1
kind: Service
metadata: {name: ${n}, namespace: default}
spec: {type: LoadBalancer, ports: [{port: 80}]}`,
  )
  .join('\n---\n')}
`,
    );
    const r = ironlb('allocate', '-f', f, '-o', 'json');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as typeof EXPECTED_REPORT;
    expect(out.services.map((s) => [s.name, s.ips, s.error === null])).toEqual([
      ['a', ['192.0.2.10'], true],
      ['b', [], false],
      ['c', [], false],
    ]);
    for (const s of out.services.slice(1)) expect(s.error).toMatch(/\S/);
    const table = ironlb('allocate', '-f', f);
    expect(lines(table.stdout).filter((l) => /\bno IP: \S/.test(l))).toHaveLength(2);
  });

  test('--lb-class: empty handles only class-less Services; a class handles only its Services', () => {
    const f = file(
      'classes.yaml',
      `${POOL}---
apiVersion: v1
kind: Service
metadata: {name: plain, namespace: default}
spec: {type: LoadBalancer, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: default}
spec: {type: LoadBalancer, loadBalancerClass: example.com/other, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: ours, namespace: default}
spec: {type: LoadBalancer, loadBalancerClass: example.com/ironlb, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: cluster-ip, namespace: default}
spec: {type: ClusterIP, ports: [{port: 80}]}
`,
    );
    const names = (r: Run) =>
      (JSON.parse(r.stdout) as typeof EXPECTED_REPORT).services.map((s) => [s.name, s.ips]);
    expect(names(ironlb('allocate', '-f', f, '-o', 'json'))).toEqual([['plain', ['192.0.2.0']]]);
    expect(names(ironlb('allocate', '-f', f, '-o', 'json', '--lb-class', 'example.com/ironlb'))).toEqual([
      ['ours', ['192.0.2.0']],
    ]);
    expect(names(ironlb('allocate', '-f', f, '-o', 'json', '--lb-class=example.com/none'))).toEqual([]);
  });

  test('invalid configuration → 1 with the problem lines', () => {
    const f = file('alloc-invalid.yaml', `${POOL}    - 192.0.2.8/29\n`);
    const r = ironlb('allocate', '-f', f, '-o', 'json');
    expect(r.code).toBe(1);
    expect(lines(r.stdout)).toEqual([
      'IPAddressPool/lan: spec.addresses[1]: 192.0.2.8/29 overlaps 192.0.2.0/28 ("192.0.2.0/28") of IPAddressPool/lan',
    ]);
    expect(r.stderr).toMatch(/invalid configuration: 1 problem/);
    expectNoStack(r);
  });

  test('allocate reads only what the controller reads (a.11): a broken BGPPeer does not matter', () => {
    const f = file(
      'alloc-peer.yaml',
      `${POOL}---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: edge, namespace: metallb-system}
spec: {myASN: 0, peerASN: 64501, peerAddress: 192.0.2.1}
`,
    );
    expect(ironlb('allocate', '-f', f, '-o', 'json').code).toBe(0);
    expect(ironlb('validate', '-f', f).code).toBe(1);
  });
});

// ------------------------------------------------------------------------------ robustness

/**
 * Inputs that are valid YAML but hold odd values. Expected: exit 1 (invalid configuration, one
 * problem line each) or 2 (unusable input, naming the file), never an internal error.
 */
describe('malformed objects never cause an internal error', () => {
  test.each<[string, string, string[]]>([
    [
      'apiVersion that is not a string',
      'apiVersion: 5\nkind: IPAddressPool\nmetadata: {name: a, namespace: metallb-system}\nspec: {addresses: [192.0.2.0/28]}\n',
      ['validate'],
    ],
    [
      'Node with status.conditions not a list',
      'kind: Node\nmetadata: {name: n}\nstatus: {conditions: 5}\n',
      ['validate'],
    ],
    [
      'Node with a null condition',
      'kind: Node\nmetadata: {name: n}\nstatus: {conditions: [null]}\n',
      ['validate'],
    ],
    ['an alias to an undefined anchor', 'kind: IPAddressPool\nmetadata: {name: *nope}\n', ['validate']],
    [
      'an alias bomb',
      'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n',
      ['validate'],
    ],
    [
      'a Service whose ports is not a list',
      `${POOL}---\nkind: Service\nmetadata: {name: s, namespace: default}\nspec: {type: LoadBalancer, ports: 80}\n`,
      ['allocate'],
    ],
    [
      'a Service whose ingress is not a list',
      `${POOL}---\nkind: Service\nmetadata: {name: s, namespace: default}\nspec: {type: LoadBalancer}\nstatus: {loadBalancer: {ingress: 5}}\n`,
      ['allocate'],
    ],
  ])('%s', async (name, text, [cmd]) => {
    const f = file(`odd-${name.replace(/\W+/g, '-')}.yaml`, text);
    const r = await inProcess(cmd!, '-f', f);
    expectNoStack(r);
    expect([0, 1, 2]).toContain(r.code);
    if (r.code === 2) expect(r.stderr).toContain(f);
  });
});

describe('fuzz: validate on random and mutated YAML', () => {
  /** The example objects, as mutation seeds. */
  const seeds: unknown[] = [];
  beforeAll(() => {
    for (const f of ['10-pools.yaml', '20-advertisements.yaml', '30-services.yaml']) {
      for (const d of parseAllDocuments(readFileSync(join(examples, f), 'utf8'))) seeds.push(d.toJS());
    }
  });

  const leaf = fc.oneof(
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -5, max: 70000 }),
    fc.double({ noNaN: true }),
    fc.constantFrom(
      '',
      'x',
      '192.0.2.1',
      '192.0.2.0/24',
      '2001:db8::/64',
      '1:1',
      'large:1:2:3',
      '90s',
      'metallb.io/v1beta1',
    ),
    fc.string({ maxLength: 12 }),
  );
  const value = fc.letrec((tie) => ({
    v: fc.oneof(
      { depthSize: 'small' },
      leaf,
      fc.array(tie('v'), { maxLength: 3 }),
      fc.dictionary(fc.string({ maxLength: 8 }), tie('v'), { maxKeys: 3 }),
    ),
  })).v;

  type Path = Array<string | number>;
  /** All paths into a JSON-ish value. */
  function paths(v: unknown, at: Path = []): Path[] {
    const out: Path[] = [at];
    if (Array.isArray(v)) v.forEach((x, i) => out.push(...paths(x, [...at, i])));
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]));
    return out;
  }
  function setAt(v: unknown, path: Path, nv: unknown, remove: boolean): unknown {
    if (path.length === 0) return nv;
    const [head, ...rest] = path;
    if (Array.isArray(v)) {
      const c = [...(v as unknown[])];
      if (remove && rest.length === 0) c.splice(head as number, 1);
      else c[head as number] = setAt(c[head as number], rest, nv, remove);
      return c;
    }
    const c = { ...(v as Record<string, unknown>) };
    if (remove && rest.length === 0) delete c[head as string];
    else c[head as string] = setAt(c[head as string], rest, nv, remove);
    return c;
  }

  /** One object: a mutated example, a random object with a metallb kind, or random YAML text. */
  const doc = fc.oneof(
    fc
      .tuple(fc.nat(), fc.array(fc.tuple(fc.nat(), value, fc.boolean()), { minLength: 1, maxLength: 4 }))
      .map(([i, muts]) => {
        let o = seeds[i % seeds.length];
        for (const [pi, nv, remove] of muts) {
          const ps = paths(o);
          o = setAt(o, ps[pi % ps.length]!, nv, remove);
        }
        return stringify(o);
      }),
    fc
      .tuple(
        fc.constantFrom(
          'IPAddressPool',
          'BGPPeer',
          'BGPAdvertisement',
          'L2Advertisement',
          'Community',
          'BFDProfile',
          'Node',
          'Secret',
          'Namespace',
        ),
        fc.constantFrom('metallb.io/v1beta1', 'metallb.io/v1beta2', 'v1'),
        value,
        value,
      )
      .map(([kind, apiVersion, spec, metadata]) =>
        stringify({
          apiVersion,
          kind,
          metadata: {
            name: 'x',
            namespace: 'metallb-system',
            ...(typeof metadata === 'object' ? metadata : {}),
          },
          spec,
        }),
      ),
    fc
      .tuple(
        fc.nat(),
        fc.array(
          fc.tuple(
            fc.nat(),
            fc.nat({ max: 3 }),
            fc.constantFrom(':', '-', ' ', '\n', '{', '[', '&a', '*a', '"', '!!', '\t', '#'),
          ),
          { minLength: 1, maxLength: 5 },
        ),
      )
      .map(([i, edits]) => {
        let t = stringify(seeds[i % seeds.length]);
        for (const [at, len, ins] of edits) {
          const p = at % (t.length + 1);
          t = t.slice(0, p) + ins + t.slice(p + len);
        }
        return t;
      }),
    value.map((v) => stringify(v)),
  );

  test('exit code ∈ {0, 1, 2}, never an internal error or a stack trace', async () => {
    const f = join(tmp, 'fuzz.yaml');
    await fc.assert(
      fc.asyncProperty(fc.array(doc, { minLength: 1, maxLength: 4 }), async (docs) => {
        writeFileSync(f, docs.join('\n---\n'));
        const r = await inProcess('validate', '-f', f);
        if (![0, 1, 2].includes(r.code ?? -1)) throw new Error(`exit ${r.code}: ${r.stderr}`);
        expectNoStack(r);
        if (r.code === 1) {
          // One line per problem, each starting with <Kind>/.
          const n = Number(/^(\d+) problems? found$/m.exec(r.stderr)?.[1]);
          expect(lines(r.stdout)).toHaveLength(n);
          for (const l of lines(r.stdout)) expect(l).toMatch(/^[A-Z][A-Za-z0-9]*\//);
        }
        if (r.code === 2) expect(r.stderr).toContain('fuzz.yaml');
      }),
      { numRuns: 200, seed: 20260719 },
    );
  }, 180_000);
});
