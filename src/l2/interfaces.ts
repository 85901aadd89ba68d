/**
 * Which interfaces L2 may answer on (spec d.1 "Eligible interfaces"): up, not enslaved to a
 * bridge or bond, not NOARP, not matching the exclusion list. ARP needs the broadcast flag; NDP
 * needs an IPv6 link-local address. Read from /sys and /proc of the speaker's network namespace.
 */
import { readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/** Upstream's default `announcedInterfacesToExclude` (ConfigMap metallb-excludel2). */
export const DEFAULT_EXCLUDES = [
  '^docker.*',
  '^cbr.*',
  '^dummy.*',
  '^virbr.*',
  '^lxcbr.*',
  '^veth.*',
  '^lo$',
  '^cali.*',
  '^tunl.*',
  '^flannel.*',
  '^kube-ipvs.*',
  '^cni.*',
  '^nodelocaldns.*',
  '^lxc.*',
];

const IFF_UP = 0x1;
const IFF_BROADCAST = 0x2;
const IFF_NOARP = 0x80;

export interface InterfaceInfo {
  readonly name: string;
  readonly up: boolean;
  readonly broadcast: boolean;
  readonly noarp: boolean;
  readonly enslaved: boolean;
  readonly hasLinkLocal6: boolean;
}

export interface EligibleInterface {
  readonly name: string;
  readonly arp: boolean;
  readonly ndp: boolean;
}

/** Pure rule: which scanned interfaces are eligible, and for which protocol. */
export function eligibleInterfaces(
  all: readonly InterfaceInfo[],
  excludes: readonly RegExp[],
): EligibleInterface[] {
  return all
    .filter((i) => i.up && !i.enslaved && !i.noarp && !excludes.some((re) => re.test(i.name)))
    .map((i) => ({ name: i.name, arp: i.broadcast, ndp: i.hasLinkLocal6 }))
    .filter((i) => i.arp || i.ndp)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Compiles the exclusion list; an invalid regular expression is reported, not thrown. */
export function compileExcludes(patterns: readonly string[]): { regexps: RegExp[]; problems: string[] } {
  const regexps: RegExp[] = [];
  const problems: string[] = [];
  for (const p of patterns) {
    try {
      regexps.push(new RegExp(p));
    } catch (e) {
      problems.push(`invalid interface exclusion "${p}": ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return { regexps, problems };
}

/** Reads the current interfaces of this network namespace. */
export async function scanInterfaces(
  sysNet = '/sys/class/net',
  ifInet6 = '/proc/net/if_inet6',
): Promise<InterfaceInfo[]> {
  const linkLocal = new Set<string>();
  try {
    for (const line of (await readFile(ifInet6, 'utf8')).split('\n')) {
      const f = line.trim().split(/\s+/);
      // address, ifindex, prefix length, scope (0x20 = link), flags, name
      if (f.length >= 6 && f[3] === '20') linkLocal.add(f[5]!);
    }
  } catch {
    // No IPv6 in this namespace.
  }
  const out: InterfaceInfo[] = [];
  for (const name of await readdir(sysNet)) {
    const dir = join(sysNet, name);
    let flags = 0;
    try {
      flags = parseInt((await readFile(join(dir, 'flags'), 'utf8')).trim(), 16);
    } catch {
      continue;
    }
    let enslaved = false;
    try {
      await readlink(join(dir, 'master'));
      enslaved = true;
    } catch {
      enslaved = false;
    }
    out.push({
      name,
      up: (flags & IFF_UP) !== 0,
      broadcast: (flags & IFF_BROADCAST) !== 0,
      noarp: (flags & IFF_NOARP) !== 0,
      enslaved,
      hasLinkLocal6: linkLocal.has(name),
    });
  }
  return out;
}
