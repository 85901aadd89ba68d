/**
 * IPv4 and IPv6 addresses and prefixes on BigInt.
 *
 * Parsing is strict on purpose: anything a human could read two ways (leading zeros in an IPv4
 * octet, IPv4-mapped IPv6, zones, a prefix length with leading zeros) is refused with a reason,
 * because these strings end up in pool definitions and in frr.conf.
 */

export type Family = 4 | 6;

export interface IPAddress {
  readonly family: Family;
  readonly value: bigint;
}

/** A network: `base` has no host bits set. */
export interface Prefix {
  readonly family: Family;
  readonly base: bigint;
  readonly length: number;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

export function familyBits(family: Family): number {
  return family === 4 ? 32 : 128;
}

const MAX = { 4: (1n << 32n) - 1n, 6: (1n << 128n) - 1n } as const;

export function maxValue(family: Family): bigint {
  return MAX[family];
}

function fail<T>(reason: string): ParseResult<T> {
  return { ok: false, reason };
}

const V4_OCTET = /^(0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseV4Value(text: string): bigint | string {
  const parts = text.split('.');
  if (parts.length !== 4) return 'an IPv4 address has four dot-separated numbers';
  let v = 0n;
  for (const p of parts) {
    if (!V4_OCTET.test(p)) {
      return /^0[0-9]/.test(p) ? `octet "${p}" has a leading zero` : `"${p}" is not a number 0-255`;
    }
    const n = Number(p);
    if (n > 255) return `octet ${p} is larger than 255`;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6Value(text: string): bigint | string {
  if (text.includes('%')) return 'zoned IPv6 addresses are not accepted';
  const dbl = text.indexOf('::');
  if (dbl !== -1 && text.indexOf('::', dbl + 1) !== -1) return '"::" may appear only once';
  const groups: bigint[] = [];
  const parseSide = (side: string, allowV4Tail: boolean): bigint[] | string => {
    if (side === '') return [];
    const items = side.split(':');
    const out: bigint[] = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      if (allowV4Tail && i === items.length - 1 && it.includes('.')) {
        const v4 = parseV4Value(it);
        if (typeof v4 === 'string') return `embedded IPv4 part: ${v4}`;
        out.push(v4 >> 16n, v4 & 0xffffn);
        continue;
      }
      if (!HEX_GROUP.test(it)) return `"${it}" is not a group of 1-4 hex digits`;
      out.push(BigInt('0x' + it));
    }
    return out;
  };
  if (dbl === -1) {
    const all = parseSide(text, true);
    if (typeof all === 'string') return all;
    if (all.length !== 8) return 'an IPv6 address has eight groups (or uses "::")';
    groups.push(...all);
  } else {
    const head = parseSide(text.slice(0, dbl), false);
    if (typeof head === 'string') return head;
    const tail = parseSide(text.slice(dbl + 2), true);
    if (typeof tail === 'string') return tail;
    if (head.length + tail.length > 7) return 'too many groups around "::"';
    groups.push(...head, ...new Array<bigint>(8 - head.length - tail.length).fill(0n), ...tail);
  }
  let v = 0n;
  for (const g of groups) v = (v << 16n) | g;
  return v;
}

/** Parses one address literal, refusing ambiguous spellings. */
export function parseIP(text: string): ParseResult<IPAddress> {
  if (typeof text !== 'string' || text.length === 0) return fail('empty address');
  if (text.trim() !== text) return fail('address has surrounding whitespace');
  if (text.includes(':')) {
    const v = parseV6Value(text);
    if (typeof v === 'string') return fail(v);
    if (v >> 32n === 0xffffn) return fail('IPv4-mapped IPv6 addresses are ambiguous; write the IPv4 address');
    return { ok: true, value: { family: 6, value: v } };
  }
  const v = parseV4Value(text);
  if (typeof v === 'string') return fail(v);
  return { ok: true, value: { family: 4, value: v } };
}

/** Like parseIP but returns undefined instead of a reason. */
export function ipOrUndefined(text: string): IPAddress | undefined {
  const r = parseIP(text);
  return r.ok ? r.value : undefined;
}

export function ip(text: string): IPAddress {
  const r = parseIP(text);
  if (!r.ok) throw new Error(`invalid IP "${text}": ${r.reason}`);
  return r.value;
}

export function formatValue(family: Family, value: bigint): string {
  if (family === 4) {
    const n = Number(value);
    return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestLen < 2) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

/** Canonical text: dotted IPv4, RFC 5952 IPv6. */
export function formatIP(a: IPAddress): string {
  return formatValue(a.family, a.value);
}

export function compareIP(a: IPAddress, b: IPAddress): number {
  if (a.family !== b.family) return a.family - b.family;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

export function hostMask(family: Family, length: number): bigint {
  return (1n << BigInt(familyBits(family) - length)) - 1n;
}

export function makePrefix(family: Family, value: bigint, length: number): Prefix {
  return { family, base: value & ~hostMask(family, length) & MAX[family], length };
}

/** The network an address belongs to at a prefix length (used for BGP aggregation). */
export function maskIP(a: IPAddress, length: number): Prefix {
  return makePrefix(a.family, a.value, length);
}

export interface ParsedPrefix {
  prefix: Prefix;
  /** true when the text had host bits set (the prefix was normalised). */
  normalised: boolean;
}

export function parsePrefix(text: string): ParseResult<ParsedPrefix> {
  if (typeof text !== 'string') return fail('not a string');
  const slash = text.indexOf('/');
  if (slash === -1) return fail('missing "/<length>"');
  const addr = parseIP(text.slice(0, slash));
  if (!addr.ok) return fail(addr.reason);
  const lenText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText)) return fail(`prefix length "${lenText}" is not a plain number`);
  const length = Number(lenText);
  const fam = addr.value.family;
  if (length > familyBits(fam)) return fail(`prefix length ${length} exceeds ${familyBits(fam)}`);
  const prefix = makePrefix(fam, addr.value.value, length);
  return { ok: true, value: { prefix, normalised: prefix.base !== addr.value.value } };
}

export function prefix(text: string): Prefix {
  const r = parsePrefix(text);
  if (!r.ok) throw new Error(`invalid prefix "${text}": ${r.reason}`);
  return r.value.prefix;
}

export function formatPrefix(p: Prefix): string {
  return `${formatValue(p.family, p.base)}/${p.length}`;
}

export function prefixFirst(p: Prefix): bigint {
  return p.base;
}

export function prefixLast(p: Prefix): bigint {
  return p.base | hostMask(p.family, p.length);
}

export function prefixSize(p: Prefix): bigint {
  return 1n << BigInt(familyBits(p.family) - p.length);
}

export function prefixContains(p: Prefix, a: IPAddress): boolean {
  return p.family === a.family && a.value >= p.base && a.value <= prefixLast(p);
}

export function prefixCoversPrefix(outer: Prefix, inner: Prefix): boolean {
  return (
    outer.family === inner.family &&
    outer.length <= inner.length &&
    inner.base >= outer.base &&
    prefixLast(inner) <= prefixLast(outer)
  );
}

export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  return a.family === b.family && a.base <= prefixLast(b) && b.base <= prefixLast(a);
}

/** Minimal list of prefixes covering exactly [start, end], ascending. */
export function rangeToPrefixes(family: Family, start: bigint, end: bigint): Prefix[] {
  const width = familyBits(family);
  const out: Prefix[] = [];
  let cur = start;
  while (cur <= end) {
    // Largest aligned block starting at cur that stays within end.
    let size = cur === 0n ? 1n << BigInt(width) : cur & -cur;
    while (cur + size - 1n > end) size >>= 1n;
    let len = width;
    for (let s = size; s > 1n; s >>= 1n) len--;
    out.push({ family, base: cur, length: len });
    cur += size;
  }
  return out;
}

/** One `spec.addresses` entry: a CIDR or an inclusive `start-end` range. */
export function parseAddressEntry(text: string): ParseResult<Prefix[]> {
  if (typeof text !== 'string') return fail('not a string');
  const out = (prefixes: Prefix[]): ParseResult<Prefix[]> =>
    prefixes.some((p) => prefixesOverlap(p, V4_MAPPED))
      ? fail(`"${text}" overlaps ::ffff:0:0/96, whose IPv4-mapped addresses are ambiguous`)
      : { ok: true, value: prefixes };
  if (text.includes('/')) {
    const r = parsePrefix(text);
    if (!r.ok) return fail(`invalid CIDR "${text}": ${r.reason}`);
    return out([r.value.prefix]);
  }
  const dash = text.indexOf('-');
  if (dash === -1) return fail(`"${text}" is neither a CIDR nor a start-end range`);
  const a = parseIP(text.slice(0, dash).trim());
  if (!a.ok) return fail(`invalid range start in "${text}": ${a.reason}`);
  const b = parseIP(text.slice(dash + 1).trim());
  if (!b.ok) return fail(`invalid range end in "${text}": ${b.reason}`);
  if (a.value.family !== b.value.family) return fail(`range "${text}" mixes IPv4 and IPv6`);
  if (a.value.value > b.value.value) return fail(`range "${text}" starts after it ends`);
  return out(rangeToPrefixes(a.value.family, a.value.value, b.value.value));
}

const V4_MAPPED: Prefix = { family: 6, base: 0xffffn << 32n, length: 96 };

/** IPv4 addresses ending in .0 or .255, which some old clients mishandle. */
export function isBuggyV4(value: bigint): boolean {
  const last = value & 0xffn;
  return last === 0n || last === 255n;
}
