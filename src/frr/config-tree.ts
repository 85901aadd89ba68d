/**
 * Parses an FRR integrated configuration into a context tree. Two input shapes are understood:
 *
 * - what the renderer writes (spec e.5): bodies indented by two spaces per level, no `!`, no
 *   `exit` lines, contexts closed by the next line that is indented less;
 * - FRR's own `show running-config` / `write` output: one space per level, `!` separators,
 *   `exit` / `exit-address-family` closing each context, `Building configuration...`,
 *   `Current configuration:`, `frr version`, `frr defaults` and `end`.
 *
 * Structure comes from indentation, plus the context keywords FRR itself uses (`router bgp`,
 * `route-map NAME permit|deny SEQ`, `bfd`, `address-family`, `profile`), so an empty route-map
 * entry such as `route-map X-in deny 20` is still a context. A line that has deeper-indented lines
 * under it but is not a context we know (`interface eth0`, `segment-routing srv6`, `peer …` in
 * `bfd`) becomes an `opaque` context: the diff treats any change inside it as unsafe.
 *
 * A context that appears twice at the same level is merged (spec e.5 has two
 * `address-family ipv4 unicast` blocks in one router); a line that appears twice in one context is
 * kept once. Pure: no I/O.
 */

export type ContextKind =
  'root' | 'router-bgp' | 'address-family' | 'route-map' | 'bfd' | 'bfd-profile' | 'opaque';

export interface ConfigNode {
  /** The line, trimmed, inner whitespace collapsed to one space ('' for the root). */
  readonly text: string;
  /** `line` for a leaf, otherwise the kind of context this line opens. */
  kind: ContextKind | 'line';
  /** Lines and sub-contexts by text, in first-seen order (always empty for a leaf). */
  readonly children: Map<string, ConfigNode>;
  /** 1-based line number of the first occurrence in the source (0 for the root). */
  readonly lineNo: number;
}

export interface ParseProblem {
  readonly lineNo: number;
  /** The offending line, passwords masked. */
  readonly text: string;
  readonly reason: string;
}

export interface ConfigTree {
  readonly root: ConfigNode;
  /** Value of a `frr version X` line, if any (metadata, not part of the tree). */
  readonly frrVersion?: string;
  /** Value of a `frr defaults X` line, if any (metadata, not part of the tree). */
  readonly frrDefaults?: string;
  /** Lines that could not be placed in the tree. A diff involving such a tree is unsafe. */
  readonly problems: ParseProblem[];
}

/** Masks the secret of `password X` (frr.conf lines, vtysh errors) inside free text. */
export function maskPasswords(text: string): string {
  return text.replace(/(password\s+)\S+/gi, '$1<redacted>');
}

/** Trims and collapses runs of whitespace to one space. */
export function normaliseLine(line: string): string {
  return line.trim().replace(/\s+/g, ' ');
}

const ROUTER_BGP = /^router bgp \d+(?: vrf \S+)?$/;
const ROUTE_MAP = /^route-map \S+ (?:permit|deny) \d+$/;
const EXIT = /^exit(?:-[a-z-]+)?$/;

/** Which context (if any) `text` opens when it appears directly inside a context of kind `parent`. */
export function contextKindOf(parent: ContextKind, text: string): ContextKind | null {
  switch (parent) {
    case 'root':
      if (ROUTER_BGP.test(text)) return 'router-bgp';
      if (ROUTE_MAP.test(text)) return 'route-map';
      if (text === 'bfd') return 'bfd';
      return null;
    case 'router-bgp':
      return /^address-family \S+(?: \S+)?$/.test(text) ? 'address-family' : null;
    case 'bfd':
      if (/^profile \S+$/.test(text)) return 'bfd-profile';
      if (/^peer \S+/.test(text)) return 'opaque';
      return null;
    default:
      return null;
  }
}

function newNode(text: string, kind: ContextKind | 'line', lineNo: number): ConfigNode {
  return { text, kind, children: new Map(), lineNo };
}

interface Frame {
  readonly node: ConfigNode;
  /** Indentation of the line that opened the context (-1 for the root). */
  readonly indent: number;
  /** Indentation of the first line of the body, once seen. */
  bodyIndent?: number;
  /** The child most recently added (or re-seen), for turning a leaf into an opaque context. */
  last?: ConfigNode;
}

function leadingWhitespace(raw: string): number {
  const m = /^[ \t]*/.exec(raw);
  return m ? m[0].length : 0;
}

/** Parses frr.conf text (renderer output or FRR's running-config) into a tree. */
export function parseConfig(text: string): ConfigTree {
  const root = newNode('', 'root', 0);
  const problems: ParseProblem[] = [];
  let frrVersion: string | undefined;
  let frrDefaults: string | undefined;
  const stack: Frame[] = [{ node: root, indent: -1, bodyIndent: 0 }];
  const top = (): Frame => stack[stack.length - 1]!;

  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const lineNo = i + 1;
    const t = normaliseLine(raw);
    if (!t || t.startsWith('!') || t.startsWith('#')) continue;
    if (t === 'Building configuration...' || t === 'Current configuration:') continue;
    const indent = leadingWhitespace(raw);
    if (t === 'end') {
      stack.length = 1;
      continue;
    }
    if (EXIT.test(t)) {
      // Contexts opened deeper than this line were closed by indentation (renderer style). FRR
      // writes an exit at the indentation of the line that opened the context; an exit indented
      // deeper than any open context closes an empty context we did not recognise.
      while (stack.length > 1 && top().indent > indent) stack.pop();
      if (stack.length > 1 && top().indent === indent) stack.pop();
      continue;
    }
    while (stack.length > 1 && top().indent >= indent) stack.pop();
    let frame = top();
    if (frame.bodyIndent === undefined) frame.bodyIndent = indent;
    if (indent > frame.bodyIndent) {
      // Deeper than its siblings: the previous leaf opens a context we do not know.
      const prev = frame.last;
      if (!prev || prev.kind !== 'line') {
        problems.push({
          lineNo,
          text: maskPasswords(t),
          reason: 'indented line without a context to belong to',
        });
        continue;
      }
      prev.kind = 'opaque';
      const opened: Frame = { node: prev, indent: frame.bodyIndent, bodyIndent: indent };
      stack.push(opened);
      frame = opened;
    }
    const parent = frame.node;
    if (parent === root) {
      const m = /^frr (version|defaults) (.+)$/.exec(t);
      if (m) {
        if (m[1] === 'version') frrVersion = m[2];
        else frrDefaults = m[2];
        continue;
      }
    }
    const parentKind = parent.kind === 'line' ? 'opaque' : parent.kind;
    const kind = contextKindOf(parentKind, t);
    let node = parent.children.get(t);
    if (!node) {
      node = newNode(t, kind ?? 'line', lineNo);
      parent.children.set(t, node);
    } else if (kind && node.kind === 'line') {
      node.kind = kind;
    }
    frame.last = node;
    if (kind) stack.push({ node, indent });
  }
  return {
    root,
    problems,
    ...(frrVersion !== undefined ? { frrVersion } : {}),
    ...(frrDefaults !== undefined ? { frrDefaults } : {}),
  };
}

/** True for a context (anything but a leaf line). */
export function isContext(node: ConfigNode): boolean {
  return node.kind !== 'line';
}

/** The node at `path` (context headers, then optionally a line), or undefined. */
export function findNode(tree: ConfigTree, path: readonly string[]): ConfigNode | undefined {
  let node: ConfigNode | undefined = tree.root;
  for (const p of path) {
    node = node.children.get(p);
    if (!node) return undefined;
  }
  return node;
}

/**
 * Writes the tree back in the renderer's shape (two spaces per level, no `!`, no exits except
 * `exit-address-family`). Mainly for messages and tests; passwords are not masked.
 */
export function formatTree(tree: ConfigTree): string {
  const out: string[] = [];
  const walk = (node: ConfigNode, depth: number) => {
    for (const c of node.children.values()) {
      out.push(`${'  '.repeat(depth)}${c.text}`);
      if (c.kind !== 'line') {
        walk(c, depth + 1);
        if (c.kind === 'address-family') out.push(`${'  '.repeat(depth)}exit-address-family`);
      }
    }
  };
  walk(tree.root, 0);
  return out.length ? `${out.join('\n')}\n` : '';
}

/** Every node as its path (context headers then the node's own text), depth first. */
export function* walkPaths(node: ConfigNode, prefix: readonly string[] = []): Generator<string[]> {
  for (const c of node.children.values()) {
    const p = [...prefix, c.text];
    yield p;
    if (c.kind !== 'line') yield* walkPaths(c, p);
  }
}

/**
 * Canonical spelling of IPv6 addresses inside a line (lower case, `::` compression), the way FRR
 * prints them. Only whole tokens that are an address or address/length are changed, so names
 * such as `2001:db8::1-out` stay as they are.
 */
export function canonicalAddresses(line: string): string {
  if (!line.includes(':')) return line;
  const hit = lineCache.get(line);
  if (hit !== undefined) return hit;
  const out = line.split(' ').map(canonicalToken).join(' ');
  if (lineCache.size >= CACHE_MAX) lineCache.clear();
  lineCache.set(line, out);
  return out;
}

/**
 * Lines and tokens seen before: the same prefixes come back on every apply and every check, and
 * the URL parser is slow. Each cache is cleared when it grows large.
 */
const CACHE_MAX = 200_000;
const lineCache = new Map<string, string>();
const tokenCache = new Map<string, string>();

/** canonicalAddresses for one token (an address or address/length; anything else is returned as is). */
export function canonicalToken(tok: string): string {
  if (!tok.includes(':')) return tok;
  const hit = tokenCache.get(tok);
  if (hit !== undefined) return hit;
  const m = /^([0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)(\/\d{1,3})?$/.exec(tok);
  let out = tok;
  if (m) {
    try {
      const host = new URL(`http://[${m[1]}]/`).hostname;
      out = `${host.slice(1, -1)}${m[2] ?? ''}`;
    } catch {
      out = tok;
    }
  }
  if (tokenCache.size >= CACHE_MAX) tokenCache.clear();
  tokenCache.set(tok, out);
  return out;
}
