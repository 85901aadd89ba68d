/**
 * Inputs that must NOT produce an frr.conf: values that would inject configuration into FRR's
 * line-and-token format (whitespace, newlines, control characters), and other layer-3 errors.
 * For each: the ConfigParser (scope "full", as `ironlb render` uses it) reports a problem naming
 * the object and the field, returns no Config, and `ironlb render` exits 1 without writing its
 * output file. Also: a file written with -o has mode 0600.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

import { main } from '../../src/cli/main.js';
import { parseYamlObjects, sortObjects } from '../../src/config/load.js';
import { ConfigParser, DEFAULT_NAMESPACE, type ParseResult } from '../../src/config/parse.js';
import { formatProblem } from '../../src/config/problems.js';
import { CrdSchemas } from '../../src/config/schema.js';

const NS = DEFAULT_NAMESPACE;
type Obj = Record<string, unknown>;

function mlb(kind: string, name: string, spec: Obj, version = 'v1beta1'): Obj {
  return { apiVersion: `metallb.io/${version}`, kind, metadata: { name, namespace: NS }, spec };
}

function peer(name: string, spec: Obj): Obj {
  return mlb('BGPPeer', name, { myASN: 64500, peerASN: 64501, peerAddress: '192.0.2.1', ...spec }, 'v1beta2');
}

/** A valid node-a setup the bad objects are added to. */
const BASE: Obj[] = [
  mlb('IPAddressPool', 'public-v4', { addresses: ['203.0.113.0/24'] }),
  mlb('BGPAdvertisement', 'all-pools', {}),
  { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', labels: { rack: 'r1' } } },
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'default' },
    spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }] },
    status: { loadBalancer: { ingress: [{ ip: '203.0.113.10' }] } },
  },
];

function basicAuth(name: string, password: string): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: NS },
    type: 'kubernetes.io/basic-auth',
    data: { password: Buffer.from(password, 'utf8').toString('base64') },
  };
}

interface Case {
  title: string;
  objects: Obj[];
  /** The problem that must be reported (kind, object name, field path, reason pattern). */
  kind: string;
  name: string;
  path: string;
  reason: RegExp;
  /** Must never appear in any output (passwords are not echoed). */
  secret?: string;
}

const INJECT = 'x\nrouter bgp 1';

const CASES: Case[] = [
  {
    title: 'IPv6 routerID (FRR only takes an IPv4 router ID)',
    objects: [peer('p', { routerID: '2001:db8::ff' })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.routerID',
    reason: /IPv4/,
  },
  {
    title: 'password with a newline',
    objects: [peer('p', { password: `pw${INJECT}` })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.password',
    reason: /newline/,
    secret: `pw${INJECT}`,
  },
  {
    title: 'password with a space',
    objects: [peer('p', { password: 'pass word' })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.password',
    reason: /whitespace/,
    secret: 'pass word',
  },
  {
    title: 'password with a tab',
    objects: [peer('p', { password: 'pass\tword' })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.password',
    reason: /control character|whitespace/,
    secret: 'pass\tword',
  },
  {
    title: 'password with a carriage return',
    objects: [peer('p', { password: 'pass\rword' })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.password',
    reason: /newline/,
    secret: 'pass\rword',
  },
  {
    title: 'password longer than 80 bytes (TCP-MD5 limit)',
    objects: [peer('p', { password: 'A'.repeat(81) })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.password',
    reason: /80/,
    secret: 'A'.repeat(81),
  },
  {
    title: 'password with non-ASCII characters',
    objects: [peer('p', { password: 'pässwörd' })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.password',
    reason: /printable ASCII/,
    secret: 'pässwörd',
  },
  {
    title: 'passwordSecret whose password holds a newline',
    objects: [peer('p', { passwordSecret: { name: 'auth' } }), basicAuth('auth', `sec${INJECT}`)],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.passwordSecret.name',
    reason: /newline/,
    secret: `sec${INJECT}`,
  },
  {
    title: 'passwordSecret whose password holds a space',
    objects: [peer('p', { passwordSecret: { name: 'auth' } }), basicAuth('auth', 'sec ret')],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.passwordSecret.name',
    reason: /whitespace/,
    secret: 'sec ret',
  },
  {
    title: 'passwordSecret of the wrong type',
    objects: [
      peer('p', { passwordSecret: { name: 'auth' } }),
      { ...basicAuth('auth', 'fine'), type: 'Opaque' },
    ],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.passwordSecret.name',
    reason: /basic-auth/,
  },
  {
    title: 'passwordSecret that does not exist (transient)',
    objects: [peer('p', { passwordSecret: { name: 'missing' } })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.passwordSecret.name',
    reason: /not found/,
  },
  {
    title: 'password and passwordSecret together',
    objects: [peer('p', { password: 'a', passwordSecret: { name: 'auth' } }), basicAuth('auth', 'b')],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.passwordSecret',
    reason: /mutually exclusive/,
  },
  {
    title: 'VRF with a space',
    objects: [peer('p', { vrf: 'red blue' })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.vrf',
    reason: /whitespace/,
  },
  {
    title: 'VRF with a newline',
    objects: [peer('p', { vrf: `red${INJECT}` })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.vrf',
    reason: /newline/,
  },
  {
    title: 'interface name with a newline',
    objects: [peer('p', { peerAddress: undefined, interface: `eth0${INJECT}`, peerASN: 64501 })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.interface',
    reason: /newline/,
  },
  {
    title: 'interface name with a space',
    objects: [peer('p', { peerAddress: undefined, interface: 'eth 0' })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.interface',
    reason: /whitespace/,
  },
  {
    title: 'interface name longer than 15 bytes',
    objects: [peer('p', { peerAddress: undefined, interface: 'a-very-long-ifname0' })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.interface',
    reason: /does not match/,
  },
  {
    title: 'peerAddress carrying a second command',
    objects: [peer('p', { peerAddress: '192.0.2.1 remote-as 1' })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.peerAddress',
    reason: /invalid IP address/,
  },
  {
    title: 'sourceAddress with a newline',
    objects: [peer('p', { sourceAddress: `192.0.2.100${INJECT}` })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.sourceAddress',
    reason: /invalid IP address/,
  },
  {
    title: 'routerID with a newline',
    objects: [peer('p', { routerID: `192.0.2.254${INJECT}` })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.routerID',
    reason: /invalid IP address/,
  },
  {
    title: 'bfdProfile naming a missing profile (transient)',
    objects: [peer('p', { bfdProfile: `fast${INJECT}` })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.bfdProfile',
    reason: /not found/,
  },
  {
    title: 'holdTime below 3s',
    objects: [peer('p', { holdTime: '2s' })],
    kind: 'BGPPeer',
    name: 'p',
    path: 'spec.holdTime',
    reason: /at least 3s/,
  },
  {
    title: 'Community alias with whitespace',
    objects: [mlb('Community', 'aliases', { communities: [{ name: 'no export', value: '65535:65281' }] })],
    kind: 'Community',
    name: 'aliases',
    path: 'spec.communities[0].name',
    reason: /whitespace/,
  },
  {
    title: 'Community alias with a newline',
    objects: [mlb('Community', 'aliases', { communities: [{ name: `tag${INJECT}`, value: '65535:65281' }] })],
    kind: 'Community',
    name: 'aliases',
    path: 'spec.communities[0].name',
    reason: /newline/,
  },
  {
    title: 'Community value with a newline',
    objects: [mlb('Community', 'aliases', { communities: [{ name: 'tag', value: `64500:1${INJECT}` }] })],
    kind: 'Community',
    name: 'aliases',
    path: 'spec.communities[0].value',
    reason: /.+/,
  },
  {
    title: 'BGPAdvertisement community literal with a newline',
    objects: [mlb('BGPAdvertisement', 'tagged', { communities: [`64500:1${INJECT}`] })],
    kind: 'BGPAdvertisement',
    name: 'tagged',
    path: 'spec.communities[0]',
    reason: /.+/,
  },
  {
    title: 'BGPAdvertisement community with a space (no such alias, transient)',
    objects: [mlb('BGPAdvertisement', 'tagged', { communities: ['no export'] })],
    kind: 'BGPAdvertisement',
    name: 'tagged',
    path: 'spec.communities[0]',
    reason: /alias/,
  },
  {
    title: 'BFDProfile whose name has a space',
    objects: [mlb('BFDProfile', 'fast profile', { receiveInterval: 100 })],
    kind: 'BFDProfile',
    name: 'fast profile',
    path: 'metadata.name',
    reason: /.+/,
  },
  {
    title: 'BGPPeer whose name has a newline',
    objects: [peer(`p${INJECT}`, {})],
    kind: 'BGPPeer',
    name: `p${INJECT}`,
    path: 'metadata.name',
    reason: /.+/,
  },
  {
    title: 'BFD echo mode towards a peer that receives an IPv6 pool',
    objects: [
      mlb('IPAddressPool', 'public-v6', { addresses: ['2001:db8:100::/64'] }),
      mlb('BFDProfile', 'echo', { echoMode: true }),
      peer('p', { bfdProfile: 'echo' }),
    ],
    kind: 'BGPAdvertisement',
    name: 'all-pools',
    path: 'spec.peers',
    reason: /echo/,
  },
];

function toYaml(objects: Obj[]): string {
  return objects.map((o) => stringify(JSON.parse(JSON.stringify(o)))).join('---\n');
}

const parser = new ConfigParser(CrdSchemas.load());

function parse(text: string): ParseResult {
  const objs = sortObjects(parseYamlObjects(text, 'input.yaml'));
  return parser.parse(objs.config, { namespace: NS, scope: 'full', nodeName: 'node-a' });
}

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ironlb-frr-invalid-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('inputs that must not render', () => {
  test('the base input alone is valid and renders', async () => {
    const input = join(dir, 'base.yaml');
    writeFileSync(input, toYaml([...BASE, peer('p', {})]));
    expect(parse(readFileSync(input, 'utf8')).problems).toEqual([]);
    const r = await cli(['render', '-f', input, '--node', 'node-a']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('neighbor 192.0.2.1 remote-as 64501\n');
  });

  describe.each(CASES.map((c) => [c.title, c] as const))('%s', (_title, c) => {
    const text = toYaml([...BASE, ...c.objects]);

    test('ConfigParser reports the object and field, and returns no config', () => {
      const res = parse(text);
      expect(res.config).toBeUndefined();
      const match = res.problems.filter((p) => p.kind === c.kind && p.name === c.name && p.path === c.path);
      if (match.length === 0) {
        throw new Error(
          `no problem for ${c.kind}/${JSON.stringify(c.name)} at ${c.path}; got:\n${res.problems.map(formatProblem).join('\n')}`,
        );
      }
      expect(match.map((p) => p.reason).some((r) => c.reason.test(r))).toBe(true);
      if (c.secret !== undefined) {
        for (const p of res.problems) expect(formatProblem(p)).not.toContain(c.secret);
      }
    });

    test('every problem is one line ("one line per problem"): values with newlines cannot forge lines', async () => {
      const res = parse(text);
      const bad = res.problems.map(formatProblem).filter((l) => /[\r\n]/.test(l));
      if (bad.length)
        throw new Error(`multi-line problem(s):\n${bad.map((l) => JSON.stringify(l)).join('\n')}`);
      const input = join(mkdtempSync(join(dir, 'lines-')), 'input.yaml');
      writeFileSync(input, text);
      const r = await cli(['render', '-f', input, '--node', 'node-a']);
      expect(r.out.split('\n').filter((l) => l !== '')).toHaveLength(res.problems.length);
    });

    test('ironlb render exits 1 and writes no output file', async () => {
      const sub = mkdtempSync(join(dir, 'case-'));
      const input = join(sub, 'input.yaml');
      const out = join(sub, 'frr.conf');
      writeFileSync(input, text);
      const r = await cli(['render', '-f', input, '--node', 'node-a', '-o', out]);
      expect(r.code).toBe(1);
      expect(existsSync(out)).toBe(false);
      expect(readdirSync(sub)).toEqual(['input.yaml']);
      expect(r.err).toMatch(/invalid configuration/);
      expect(r.out).toContain(`${c.kind}/`);
      expect(r.out).toContain(c.path);
      // Nothing of an frr.conf on stdout either.
      expect(r.out).not.toContain('log stdout');
      expect(r.out).not.toContain('ip nht resolve-via-default');
      if (c.secret !== undefined) {
        expect(r.out).not.toContain(c.secret);
        expect(r.err).not.toContain(c.secret);
      }
    });
  });

  test('an invalid input leaves an existing output file untouched', async () => {
    const sub = mkdtempSync(join(dir, 'keep-'));
    const input = join(sub, 'input.yaml');
    const out = join(sub, 'frr.conf');
    writeFileSync(input, toYaml([...BASE, peer('p', { password: 'pass word' })]));
    writeFileSync(out, 'previous good config\n');
    const r = await cli(['render', '-f', input, '--node', 'node-a', '-o', out]);
    expect(r.code).toBe(1);
    expect(readFileSync(out, 'utf8')).toBe('previous good config\n');
    expect(readdirSync(sub).sort()).toEqual(['frr.conf', 'input.yaml']);
  });

  test('a --hostname that is not a single token is refused: exit 1, no output file', async () => {
    const sub = mkdtempSync(join(dir, 'host-'));
    const input = join(sub, 'input.yaml');
    const out = join(sub, 'frr.conf');
    writeFileSync(input, toYaml([...BASE, peer('p', {})]));
    for (const hostname of ['bad host', `node-a${INJECT}`]) {
      const r = await cli(['render', '-f', input, '--node', 'node-a', '--hostname', hostname, '-o', out]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/hostname/);
      expect(existsSync(out)).toBe(false);
      expect(readdirSync(sub)).toEqual(['input.yaml']);
    }
  });

  test('a --node that is not a valid node name is a usage error (exit 2), no output file', async () => {
    const sub = mkdtempSync(join(dir, 'node-'));
    const input = join(sub, 'input.yaml');
    const out = join(sub, 'frr.conf');
    writeFileSync(input, toYaml([...BASE, peer('p', {})]));
    const r = await cli(['render', '-f', input, '--node', 'node a', '-o', out]);
    expect(r.code).toBe(2);
    expect(existsSync(out)).toBe(false);
  });
});

describe('ironlb render -o', () => {
  test('writes the file with mode 0600, also over an existing 0644 file', async () => {
    const sub = mkdtempSync(join(dir, 'mode-'));
    const input = join(sub, 'input.yaml');
    const out = join(sub, 'frr.conf');
    writeFileSync(input, toYaml([...BASE, peer('p', { password: 'S3cret' })]));

    const first = await cli(['render', '-f', input, '--node', 'node-a', '-o', out]);
    expect(first).toEqual({ code: 0, out: '', err: '' });
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const text = readFileSync(out, 'utf8');
    expect(text).toContain('neighbor 192.0.2.1 password S3cret\n');

    await chmod(out, 0o644);
    const second = await cli(['render', '-f', input, '--node', 'node-a', '-o', out]);
    expect(second.code).toBe(0);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(readFileSync(out, 'utf8')).toBe(text);
    expect(readdirSync(sub).sort()).toEqual(['frr.conf', 'input.yaml']);
  });
});
