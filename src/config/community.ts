/** BGP community values: `A:B` (two uint16) and `large:A:B:C` (three uint32). */
import type { CommunityValue } from './model.js';

export type CommunityParse =
  | { ok: true; value: CommunityValue }
  /** `shape: false` when the text does not even look like a literal (may be an alias). */
  | { ok: false; shape: boolean; reason: string };

const DIGITS = /^[0-9]+$/;

function num(text: string, max: number): number | undefined {
  if (!DIGITS.test(text)) return undefined;
  const n = Number(text);
  return n <= max ? n : undefined;
}

export function parseCommunity(text: string): CommunityParse {
  const parts = text.split(':');
  if (parts[0] === 'large') {
    if (parts.length !== 4) {
      return { ok: false, shape: false, reason: `"${text}" is not large:A:B:C` };
    }
    const nums = parts.slice(1).map((p) => num(p, 0xffffffff));
    if (nums.some((n) => n === undefined)) {
      return {
        ok: false,
        shape: true,
        reason: `"${text}": each part of a large community must be 0-4294967295`,
      };
    }
    const [a, b, c] = nums as [number, number, number];
    return {
      ok: true,
      value: {
        kind: 'large',
        text: `large:${a}:${b}:${c}`,
        sortKey: (BigInt(a) << 64n) | (BigInt(b) << 32n) | BigInt(c),
      },
    };
  }
  if (parts.length !== 2) {
    return { ok: false, shape: false, reason: `"${text}" is neither A:B nor large:A:B:C` };
  }
  const a = num(parts[0]!, 0xffff);
  const b = num(parts[1]!, 0xffff);
  if (a === undefined || b === undefined) {
    return { ok: false, shape: true, reason: `"${text}": each part of a standard community must be 0-65535` };
  }
  return { ok: true, value: { kind: 'standard', text: `${a}:${b}`, sortKey: BigInt(a * 65536 + b) << 64n } };
}

export function compareCommunity(x: CommunityValue, y: CommunityValue): number {
  if (x.sortKey !== y.sortKey) return x.sortKey < y.sortKey ? -1 : 1;
  return x.text < y.text ? -1 : x.text > y.text ? 1 : 0;
}
