/**
 * A set of disjoint, non-adjacent inclusive bigint intervals kept in a treap.
 *
 * The allocator stores each CIDR's *free* space here. Taking the lowest free address, pinning a
 * given address and releasing one all cost O(log k) in the number of intervals k, which grows
 * with the number of holes, never with the size of the CIDR: a /64 costs what a /24 does.
 */

interface Node {
  start: bigint;
  end: bigint;
  prio: number;
  left: Node | null;
  right: Node | null;
}

/** Deterministic priorities (xorshift) so the same operations always build the same tree. */
class Prio {
  private s = 0x9e3779b9;
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
}

export class IntervalSet {
  private root: Node | null = null;
  private readonly prio = new Prio();
  private count = 0n;
  private intervals = 0;

  /** Number of values in the set. */
  get size(): bigint {
    return this.count;
  }

  /** Number of disjoint intervals (for tests and benchmarks). */
  get intervalCount(): number {
    return this.intervals;
  }

  static of(start: bigint, end: bigint): IntervalSet {
    const s = new IntervalSet();
    s.addRange(start, end);
    return s;
  }

  /** Smallest value in the set, or undefined. */
  min(): bigint | undefined {
    let n = this.root;
    if (!n) return undefined;
    while (n.left) n = n.left;
    return n.start;
  }

  /** Smallest value >= x in the set, or undefined. */
  ceiling(x: bigint): bigint | undefined {
    let n = this.root;
    let best: Node | null = null;
    while (n) {
      if (n.end < x) n = n.right;
      else {
        best = n;
        if (n.start <= x) return x;
        n = n.left;
      }
    }
    return best ? best.start : undefined;
  }

  has(x: bigint): boolean {
    const n = this.floorNode(x);
    return !!n && n.end >= x;
  }

  /** Removes one value; returns false when it was not in the set. */
  delete(x: bigint): boolean {
    const n = this.floorNode(x);
    if (!n || n.end < x) return false;
    const { start, end } = n;
    this.root = this.remove(this.root, start);
    this.intervals--;
    if (start < x) this.insertNode(start, x - 1n);
    if (x < end) this.insertNode(x + 1n, end);
    this.count--;
    return true;
  }

  /** Adds one value; returns false when it was already present. */
  add(x: bigint): boolean {
    if (this.has(x)) return false;
    let start = x;
    let end = x;
    const left = x > 0n ? this.floorNode(x - 1n) : null;
    if (left && left.end === x - 1n) {
      start = left.start;
      this.root = this.remove(this.root, left.start);
      this.intervals--;
    }
    const right = this.floorNode(x + 1n);
    if (right && right.start === x + 1n) {
      end = right.end;
      this.root = this.remove(this.root, right.start);
      this.intervals--;
    }
    this.insertNode(start, end);
    this.count++;
    return true;
  }

  /** Adds a range that must not overlap existing content (used at construction). */
  addRange(start: bigint, end: bigint): void {
    if (end < start) return;
    this.insertNode(start, end);
    this.count += end - start + 1n;
  }

  /** All intervals in order (tests). */
  toArray(): Array<[bigint, bigint]> {
    const out: Array<[bigint, bigint]> = [];
    const walk = (n: Node | null) => {
      if (!n) return;
      walk(n.left);
      out.push([n.start, n.end]);
      walk(n.right);
    };
    walk(this.root);
    return out;
  }

  private floorNode(x: bigint): Node | null {
    let n = this.root;
    let best: Node | null = null;
    while (n) {
      if (n.start <= x) {
        best = n;
        n = n.right;
      } else n = n.left;
    }
    return best;
  }

  private insertNode(start: bigint, end: bigint): void {
    const node: Node = { start, end, prio: this.prio.next(), left: null, right: null };
    const [l, r] = this.split(this.root, start);
    this.root = this.merge(this.merge(l, node), r);
    this.intervals++;
  }

  /** Splits into (< key, >= key). */
  private split(n: Node | null, key: bigint): [Node | null, Node | null] {
    if (!n) return [null, null];
    if (n.start < key) {
      const [l, r] = this.split(n.right, key);
      n.right = l;
      return [n, r];
    }
    const [l, r] = this.split(n.left, key);
    n.left = r;
    return [l, n];
  }

  private merge(a: Node | null, b: Node | null): Node | null {
    if (!a) return b;
    if (!b) return a;
    if (a.prio > b.prio) {
      a.right = this.merge(a.right, b);
      return a;
    }
    b.left = this.merge(a, b.left);
    return b;
  }

  private remove(n: Node | null, start: bigint): Node | null {
    if (!n) return null;
    if (n.start === start) return this.merge(n.left, n.right);
    if (start < n.start) n.left = this.remove(n.left, start);
    else n.right = this.remove(n.right, start);
    return n;
  }
}
