/**
 * Layer-2 lab on top of netns.ts (shared/lab/l2-lab.md sections 2, 3 and 7): a client and two
 * speaker nodes on one bridge with fixed MACs, the node sysctls a speaker needs (arp_ignore=1,
 * arp_announce=2), optionally a second link client <-> node1, plus parsers for arping (Habets
 * 2.23), ndisc6 1.0.5 and `ip -j neigh`.
 */
import { execOk, exec, Topology, type ExecResult, type LabHost } from './netns.js';

export const CLIENT_MAC = '02:00:00:00:00:10';
export const NODE1_MAC = '02:00:00:00:00:11';
export const NODE2_MAC = '02:00:00:00:00:12';
/** MACs of the optional second link (node1 side, client side). */
export const NODE1_B_MAC = '02:00:00:00:01:11';
export const CLIENT_B_MAC = '02:00:00:00:01:10';

/** Sysctls of a speaker node (l2-lab section 3); the effective value is max(all, interface). */
export const NODE_SYSCTLS: Record<string, string> = {
  'net.ipv4.conf.all.arp_ignore': '1',
  'net.ipv4.conf.all.arp_announce': '2',
  'net.ipv4.ip_forward': '0',
  'net.ipv6.conf.all.forwarding': '0',
};

/**
 * Client sysctls: a plain host (the kernel answers ARP for its own addresses and uses a local source
 * address as ARP sender). Its links also get NUD's first probe after 1 s instead of 5 s (for
 * unicast-probe tests), see tuneClientLink.
 */
export const CLIENT_SYSCTLS: Record<string, string> = {
  'net.ipv4.conf.all.arp_ignore': '0',
  'net.ipv4.conf.default.arp_ignore': '0',
  'net.ipv4.conf.all.arp_announce': '0',
  'net.ipv4.conf.default.arp_announce': '0',
  'net.ipv4.ip_forward': '0',
  'net.ipv6.conf.all.forwarding': '0',
};

/** Per-interface client settings (neigh.default.* exists only in the root namespace). */
export async function tuneClientLink(ns: string, ifname: string): Promise<void> {
  await execOk(ns, [
    'sysctl',
    '-qw',
    `net.ipv4.neigh.${ifname}.delay_first_probe_time=1`,
    `net.ipv6.neigh.${ifname}.delay_first_probe_time=1`,
  ]);
}

export interface L2Host extends LabHost {
  mac: string;
}

export interface L2Lab {
  topo: Topology;
  client: L2Host;
  node1: L2Host;
  node2: L2Host;
  /** The second link (when requested): node1's end and the client's end. */
  second?: SecondLink;
  teardown(): Promise<void>;
}

export interface L2LabOptions {
  /** Adds a veth node1 <-> client (198.51.100.0/24, 2001:db8:1::/64) outside the bridge. */
  secondLink?: boolean;
}

async function setMac(ns: string, ifname: string, mac: string): Promise<void> {
  await execOk(null, ['ip', '-n', ns, 'link', 'set', 'dev', ifname, 'address', mac]);
}

/** Builds client (192.0.2.10), node1 (.11) and node2 (.12) on a bridge; all names carry the run's prefix. */
export async function createL2Lab(opts: L2LabOptions = {}): Promise<L2Lab> {
  const topo = await Topology.create({
    hosts: [
      { name: 'c', v4: '192.0.2.10', v6: '2001:db8::10', sysctls: CLIENT_SYSCTLS },
      { name: 'n1', v4: '192.0.2.11', v6: '2001:db8::11', sysctls: NODE_SYSCTLS },
      { name: 'n2', v4: '192.0.2.12', v6: '2001:db8::12', sysctls: NODE_SYSCTLS },
    ],
  });
  try {
    const macs: Record<string, string> = { c: CLIENT_MAC, n1: NODE1_MAC, n2: NODE2_MAC };
    const hosts: Record<string, L2Host> = {};
    for (const h of topo.hosts) {
      const mac = macs[h.name]!;
      await setMac(h.ns, h.ifname, mac); // veth allows a live MAC change
      hosts[h.name] = { ...h, mac };
    }
    await tuneClientLink(hosts.c!.ns, hosts.c!.ifname);
    const lab: L2Lab = {
      topo,
      client: hosts.c!,
      node1: hosts.n1!,
      node2: hosts.n2!,
      teardown: () => topo.teardown(),
    };
    if (opts.secondLink) lab.second = await addSecondLink(topo.prefix, lab.node1.ns, lab.client.ns);
    return lab;
  } catch (e) {
    await topo.teardown();
    throw e;
  }
}

/** `ip addr add ip/32|128 dev lo` (or del) in the host's namespace: how the owner accepts VIP traffic. */
export async function vipOnLo(host: LabHost, ip: string, present: boolean): Promise<void> {
  const len = ip.includes(':') ? 128 : 32;
  const r = await exec(host.ns, ['ip', 'addr', present ? 'add' : 'del', `${ip}/${len}`, 'dev', 'lo']);
  if (r.code !== 0 && !/File exists|already assigned|address not found|Cannot assign/i.test(r.stderr)) {
    throw new Error(`ip addr ${present ? 'add' : 'del'} ${ip} dev lo: ${r.stderr.trim()}`);
  }
}

// ------------------------------------------------------------------------------------- arping

/** MACs printed by `arping -r` (one reply per line), lower-cased. */
export function parseArpingRaw(stdout: string): string[] {
  return stdout
    .split('\n')
    .map((l) => l.trim().toLowerCase())
    .filter((l) => /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(l));
}

export interface ArpingOptions {
  /** Requests to send (default 1). */
  count?: number;
  /** Overall deadline in seconds (default count + 1). */
  deadlineS?: number;
  /** RFC 5227 probe: sender IP 0.0.0.0 (-0). */
  probe?: boolean;
  /** 802.1Q tag to add (-V). */
  vlan?: number;
  /** Unicast to this MAC instead of broadcast (-t). */
  targetMac?: string;
  /** Sender IP (-S), e.g. when the target is not on a connected subnet. */
  source?: string;
}

export interface ProbeAnswers {
  macs: string[];
  result: ExecResult;
}

/** Habets arping 2.23 from `host` on `iface`; returns the MAC of every reply. */
export async function arping(
  ns: string,
  iface: string,
  ip: string,
  o: ArpingOptions = {},
): Promise<ProbeAnswers> {
  const count = o.count ?? 1;
  const argv = ['arping', '-r', '-c', String(count), '-w', String(o.deadlineS ?? count + 1), '-i', iface];
  if (o.probe) argv.push('-0');
  if (o.vlan !== undefined) argv.push('-V', String(o.vlan));
  if (o.targetMac) argv.push('-t', o.targetMac);
  if (o.source) argv.push('-S', o.source);
  argv.push(ip);
  const result = await exec(ns, argv, { timeoutMs: ((o.deadlineS ?? count + 1) + 5) * 1000 });
  return { macs: parseArpingRaw(result.stdout), result };
}

// ------------------------------------------------------------------------------------- ndisc6

/** MACs printed by `ndisc6 -q [-m]` (upper-case hex there), lower-cased. */
export function parseNdisc6Quiet(stdout: string): string[] {
  return parseArpingRaw(stdout);
}

/** ndisc6 1.0.5 (`-q -m`: every answer within the wait) for ip on iface. */
export async function ndisc6(
  ns: string,
  iface: string,
  ip: string,
  o: { tries?: number; waitMs?: number } = {},
): Promise<ProbeAnswers> {
  const argv = ['ndisc6', '-q', '-m', '-r', String(o.tries ?? 1), '-w', String(o.waitMs ?? 500), ip, iface];
  const result = await exec(ns, argv, { timeoutMs: 15_000 });
  return { macs: parseNdisc6Quiet(result.stdout), result };
}

// ------------------------------------------------------------------------------------- ip neigh

export interface NeighEntry {
  dst: string;
  lladdr?: string;
  state: string[];
}

/** Parses `ip -j neigh show ...` (INCOMPLETE/FAILED entries have no lladdr). */
export function parseIpNeighJson(stdout: string): NeighEntry[] {
  const text = stdout.trim();
  if (!text) return [];
  const raw = JSON.parse(text) as unknown;
  if (!Array.isArray(raw)) throw new Error(`ip -j neigh: not an array: ${text.slice(0, 200)}`);
  return raw.map((e: Record<string, unknown>) => {
    const entry: NeighEntry = {
      dst: String(e.dst),
      state: Array.isArray(e.state) ? e.state.map(String) : [],
    };
    if (typeof e.lladdr === 'string') entry.lladdr = e.lladdr.toLowerCase();
    return entry;
  });
}

/** The client's neighbour entry for ip on dev, or null. */
export async function neighEntry(ns: string, ip: string, dev: string): Promise<NeighEntry | null> {
  const out = await execOk(ns, [
    'ip',
    '-j',
    ip.includes(':') ? '-6' : '-4',
    'neigh',
    'show',
    'to',
    ip,
    'dev',
    dev,
  ]);
  return parseIpNeighJson(out)[0] ?? null;
}

/** One ping (v4 or v6) with a short deadline; resolves with whether a reply came. */
export async function pingOnce(ns: string, ip: string, opts: { source?: string } = {}): Promise<boolean> {
  const argv = ['ping', ip.includes(':') ? '-6' : '-4', '-c', '1', '-W', '1', '-n', '-q'];
  if (opts.source) argv.push('-I', opts.source);
  argv.push(ip);
  const r = await exec(ns, argv, { timeoutMs: 5_000 });
  return r.code === 0;
}

export interface SecondLink {
  node1If: string;
  clientIf: string;
  node1V4: string;
  clientV4: string;
  node1V6: string;
}

/** A second link between node1 and the client (198.51.100.0/24, 2001:db8:1::/64) for `interfaces` tests. */
export async function addSecondLink(prefix: string, n1: string, c: string): Promise<SecondLink> {
  const n1If = `${prefix}-n1b`;
  const cIf = `${prefix}-cb`;
  // Both ends created straight into their namespaces: nothing touches the root namespace.
  await execOk(null, [
    'ip',
    'link',
    'add',
    n1If,
    'netns',
    n1,
    'address',
    NODE1_B_MAC,
    'type',
    'veth',
    'peer',
    'name',
    cIf,
    'netns',
    c,
    'address',
    CLIENT_B_MAC,
  ]);
  await execOk(null, ['ip', '-n', n1, 'addr', 'add', '198.51.100.11/24', 'dev', n1If]);
  await execOk(null, ['ip', '-n', n1, 'addr', 'add', '2001:db8:1::11/64', 'dev', n1If, 'nodad']);
  await execOk(null, ['ip', '-n', c, 'addr', 'add', '198.51.100.10/24', 'dev', cIf]);
  await execOk(null, ['ip', '-n', c, 'addr', 'add', '2001:db8:1::10/64', 'dev', cIf, 'nodad']);
  await execOk(null, ['ip', '-n', n1, 'link', 'set', n1If, 'up']);
  await execOk(null, ['ip', '-n', c, 'link', 'set', cIf, 'up']);
  await tuneClientLink(c, cIf);
  return {
    node1If: n1If,
    clientIf: cIf,
    node1V4: '198.51.100.11',
    clientV4: '198.51.100.10',
    node1V6: '2001:db8:1::11',
  };
}
