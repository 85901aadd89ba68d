/**
 * The difference between two parsed frr.conf trees as an ordered list of vtysh configuration
 * commands, each with the context it runs in, plus the lines that must (not) show up in
 * `show running-config` afterwards. Pure: no I/O.
 *
 * Order of the commands (one vtysh run applies all of them):
 *   1. top-level lines (log, debug, hostname, nht, …): removals, then additions;
 *   2. `bfd` profiles that are new or changed;
 *   3. prefix-list entries of lists that still exist, in an order that never hits FRR's silent
 *      duplicate check (see orderPrefixList);
 *   4. route-map entries that are new or changed (an action change is done in place: FRR
 *      changes `permit` to `deny` when the entry is entered with the other action);
 *   5. routers that are new or changed: `no neighbor X` for neighbors that disappear, other
 *      removals, additions (neighbor definitions first), then each address family;
 *   6. whole routers that disappear (VRF routers before the default one), route-map entries,
 *      prefix-lists and BFD profiles that disappear.
 * So whatever a router refers to exists before the router uses it, and is removed only after the
 * router stopped using it.
 *
 * A setting that merely changes value ("keyed" lines such as `neighbor X timers 3 9`,
 * `neighbor X route-map M out`, `set community …`, `ip prefix-list L seq 3 …`) is replaced by
 * sending the new line only: sending `no <old>` as well could reset it to the default.
 *
 * What the incremental path refuses (the diff is then `unsafe` and the caller must run a full
 * frr-reload.py): a parse problem in either tree; any change to a line this module does not know
 * (see KNOWN_*), or inside a context it does not know (`interface …`, `segment-routing`, BFD
 * `peer`, …); a router whose ASN changes (same VRF, other AS number); a `bgp router-id` that is
 * added, removed or changed in an existing router; removing the default router while VRF routers
 * stay; a neighbor that changes how it is defined (remote-as ↔ interface ↔ peer-group); a
 * prefix-list that would hold the same prefix twice, or an entry without `seq`; a route-map
 * sequence number present with both permit and deny.
 */
import {
  canonicalAddresses,
  contextKindOf,
  maskPasswords,
  walkPaths,
  type ConfigNode,
  type ConfigTree,
  type ContextKind,
} from './config-tree.js';

export type ChangeOp = 'add' | 'delete' | 'enter';

export interface ConfigChange {
  /** Context headers to be in, outermost first ([] = top level). */
  readonly context: readonly string[];
  /**
   * `add` / `delete`: the command to run in `context`. `enter`: no command; entering the context
   * creates it (an empty route-map entry or BFD profile) or changes its action (route-map).
   */
  readonly op: ChangeOp;
  readonly command: string;
}

export interface ConfigDiff {
  readonly changes: readonly ConfigChange[];
  /** Why this diff must not be applied incrementally (masked); empty when it can be. */
  readonly unsafe: readonly string[];
  /** Paths (context headers, then the line) that must be in the running config afterwards. */
  readonly expectPresent: readonly (readonly string[])[];
  /** Paths that must not be in the running config afterwards. */
  readonly expectAbsent: readonly (readonly string[])[];
}

// ---------------------------------------------------------------------------------------------
// Line grammar per context
// ---------------------------------------------------------------------------------------------

type LeafKind = ContextKind;

const KNOWN: Partial<Record<LeafKind, RegExp>> = {
  root: new RegExp(
    '^(?:no )?(?:log|hostname|debug|ip nht|ipv6 nht|ip route|ipv6 route|ip forwarding|ipv6 forwarding|' +
      'service|password|enable password|bgp community-list|bgp large-community-list|' +
      'bgp extcommunity-list|bgp as-path access-list|access-list|ipv6 access-list|ip protocol|' +
      'ipv6 protocol|agentx|ip router-id|ipv6 router-id|router-id|ip prefix-list|ipv6 prefix-list)(?: |$)',
  ),
  'router-bgp':
    /^(?:no )?(?:neighbor|bgp|timers bgp|coalesce-time|update-delay|read-quanta|write-quanta)(?: |$)/,
  'address-family':
    /^(?:no )?(?:neighbor|network|maximum-paths|redistribute|aggregate-address|table-map|distance|import vrf|bgp)(?: |$)/,
  'route-map': /^(?:no )?(?:match|set|on-match|call|description|continue)(?: |$)/,
  'bfd-profile':
    /^(?:(?:receive-interval|transmit-interval|detect-multiplier|echo receive-interval|echo transmit-interval|echo-interval|minimum-ttl) \d+|(?:no )?(?:echo-mode|passive-mode|shutdown))$/,
};

/** Lines that set one value of a setting: [pattern, key from the match]. */
const KEYED: Partial<Record<LeafKind, [RegExp, (m: RegExpExecArray) => string][]>> = {
  root: [
    [/^(hostname) \S+$/, (m) => m[1]!],
    [/^(log (?:stdout|syslog|monitor))(?: \S+)?$/, (m) => m[1]!],
    [/^(log file) \S+(?: \S+)?$/, (m) => m[1]!],
    [/^(log (?:timestamp precision|facility)) \S+$/, (m) => m[1]!],
  ],
  'router-bgp': [
    [/^(neighbor \S+ timers connect) \d+$/, (m) => m[1]!],
    [/^(neighbor \S+ timers) \d+ \d+$/, (m) => m[1]!],
    [
      /^(neighbor \S+ (?:password|port|update-source|local-as|description|advertisement-interval|ttl-security hops|bfd profile)) .+$/,
      (m) => m[1]!,
    ],
    [/^(neighbor \S+ ebgp-multihop)(?: \d+)?$/, (m) => m[1]!],
    [
      /^(bgp (?:router-id|route-map delay-timer|cluster-id|confederation identifier|default local-preference|graceful-restart (?:restart-time|stalepath-time|select-defer-time|rib-stale-time))) \S+$/,
      (m) => m[1]!,
    ],
    [/^(timers bgp) \d+ \d+$/, (m) => m[1]!],
  ],
  'address-family': [
    [
      /^(neighbor \S+ (?:route-map|prefix-list|filter-list|distribute-list|unsuppress-map)) \S+ (in|out)$/,
      (m) => `${m[1]} ${m[2]}`,
    ],
    [/^(neighbor \S+ (?:maximum-prefix|weight|allowas-in|default-originate))(?: .+)?$/, (m) => m[1]!],
    [/^(network \S+)(?: .+)?$/, (m) => m[1]!],
    [/^(maximum-paths(?: ibgp)?) \d+.*$/, (m) => m[1]!],
    [/^(redistribute \S+)(?: .+)?$/, (m) => m[1]!],
    [/^(table-map) \S+$/, (m) => m[1]!],
  ],
  'route-map': [
    [/^(match (?:ip|ipv6) (?:address|next-hop)(?: prefix-list)?) \S+$/, (m) => m[1]!],
    [
      /^(match (?:community|large-community|extcommunity|tag|metric|local-preference|origin|source-protocol|interface|peer|as-path)) .+$/,
      (m) => m[1]!,
    ],
    [
      /^(set (?:community|large-community|extcommunity rt|extcommunity soo|local-preference|metric|weight|origin|tag|as-path prepend|ip next-hop|ipv6 next-hop global|ipv6 next-hop local|src)) .+$/,
      (m) => m[1]!,
    ],
    [/^(on-match|call|description|continue)(?: .+)?$/, (m) => m[1]!],
  ],
  'bfd-profile': [
    [
      /^(receive-interval|transmit-interval|detect-multiplier|echo receive-interval|echo transmit-interval|echo-interval|minimum-ttl) \d+$/,
      (m) => m[1]!,
    ],
  ],
};

/** FRR 8.4 bfdd has no `no receive-interval` & co.: going back to the default means setting it. */
const BFD_PROFILE_DEFAULTS: Record<string, string> = {
  'receive-interval': 'receive-interval 300',
  'transmit-interval': 'transmit-interval 300',
  'detect-multiplier': 'detect-multiplier 3',
  'echo receive-interval': 'echo receive-interval 50',
  'echo transmit-interval': 'echo transmit-interval 50',
  'echo-interval': 'echo-interval 50',
  'minimum-ttl': 'no minimum-ttl',
};

function stripNo(line: string): string {
  return line.startsWith('no ') ? line.slice(3) : line;
}

/** How a neighbor line defines the neighbor, if it does. */
function neighborDefinition(line: string): { peer: string; form: string } | null {
  const m = /^neighbor (\S+) (.+)$/.exec(line);
  if (!m) return null;
  const rest = m[2]!;
  let form: string | null = null;
  if (/^remote-as \S+$/.test(rest)) form = 'remote-as';
  else if (/^interface(?: v6only)?(?: (?:remote-as|peer-group) \S+)?$/.test(rest)) form = 'interface';
  else if (rest === 'peer-group') form = 'peer-group';
  else if (/^peer-group \S+$/.test(rest)) form = 'member';
  return form ? { peer: m[1]!, form } : null;
}

function lineKey(kind: LeafKind, line: string): string {
  if (kind === 'router-bgp') {
    const def = neighborDefinition(line);
    if (def) return `neighbor ${def.peer} [${def.form}]`;
  }
  for (const [re, key] of KEYED[kind] ?? []) {
    const m = re.exec(line);
    if (m) return key(m);
  }
  return stripNo(line);
}

function isKnown(kind: LeafKind, line: string): boolean {
  // Entries without `seq` get a number from FRR: they cannot be compared or removed reliably.
  if (kind === 'root' && PREFIX_LIST_NO_SEQ.test(line)) return false;
  const re = KNOWN[kind];
  return !!re && re.test(line);
}

function deleteCommand(kind: LeafKind, line: string): string {
  if (kind === 'bfd-profile') {
    const m = /^(.+) \d+$/.exec(line);
    const d = m ? BFD_PROFILE_DEFAULTS[m[1]!] : undefined;
    if (d) return d;
  }
  if (kind === 'router-bgp') {
    const m = /^(neighbor \S+ password) .+$/.exec(line);
    if (m) return `no ${m[1]}`;
  }
  return line.startsWith('no ') ? line.slice(3) : `no ${line}`;
}

// ---------------------------------------------------------------------------------------------
// Diff
// ---------------------------------------------------------------------------------------------

const PREFIX_LIST_ENTRY =
  /^(ip|ipv6) prefix-list (\S+) seq (\d+) (permit|deny) (\S+(?: ge \d+)?(?: le \d+)?)$/;
const PREFIX_LIST_NO_SEQ = /^(?:ip|ipv6) prefix-list \S+ (?:permit|deny) /;
const ROUTE_MAP_HEADER = /^route-map (\S+) (permit|deny) (\d+)$/;
const ROUTER_HEADER = /^router bgp (\d+)(?: vrf (\S+))?$/;

interface Leaves {
  deletes: ConfigChange[];
  adds: ConfigChange[];
}

class DiffBuilder {
  readonly changes: ConfigChange[] = [];
  readonly unsafe: string[] = [];
  readonly expectPresent: string[][] = [];
  readonly expectAbsent: string[][] = [];

  refuse(context: readonly string[], reason: string): void {
    const where = context.length ? `${context.join(' > ')}: ` : '';
    this.unsafe.push(maskPasswords(`${where}${reason}`));
  }

  push(...changes: ConfigChange[]): void {
    for (const c of changes) this.changes.push(c);
  }

  /**
   * Leaf lines of one context: removals (skipping those `skipDelete` covers, and those replaced
   * by a new line with the same key) and additions. Also records the expectations.
   */
  leaves(
    kind: LeafKind,
    context: readonly string[],
    from: ConfigNode | undefined,
    to: ConfigNode | undefined,
    skipDelete: (line: string) => boolean = () => false,
  ): Leaves {
    const oldLines = leafTexts(from);
    const newLines = leafTexts(to);
    const oldSet = new Set(oldLines);
    const newSet = new Set(newLines);
    const removed = oldLines.filter((l) => !newSet.has(l));
    const added = newLines.filter((l) => !oldSet.has(l));
    const addedKeys = new Set(added.map((l) => lineKey(kind, l)));
    const out: Leaves = { deletes: [], adds: [] };
    for (const r of removed) {
      if (!isKnown(kind, r)) {
        this.refuse(context, `removing a line the incremental path does not know: ${r}`);
        continue;
      }
      this.expectAbsent.push([...context, r]);
      if (addedKeys.has(lineKey(kind, r)) || skipDelete(r)) continue;
      out.deletes.push({ context, op: 'delete', command: deleteCommand(kind, r) });
    }
    for (const a of added) {
      if (!isKnown(kind, a)) {
        this.refuse(context, `adding a line the incremental path does not know: ${a}`);
        continue;
      }
      this.expectPresent.push([...context, a]);
      out.adds.push({ context, op: 'add', command: a });
    }
    return out;
  }

  /** Unknown sub-contexts (kind opaque) must be identical. */
  opaque(context: readonly string[], from: ConfigNode | undefined, to: ConfigNode | undefined): void {
    const a = new Map(
      [...(from?.children.values() ?? [])].filter((c) => c.kind === 'opaque').map((c) => [c.text, c]),
    );
    const b = new Map(
      [...(to?.children.values() ?? [])].filter((c) => c.kind === 'opaque').map((c) => [c.text, c]),
    );
    for (const [text, node] of a) {
      const other = b.get(text);
      if (!other) this.refuse(context, `removing a block the incremental path does not know: ${text}`);
      else if (serialise(node) !== serialise(other))
        this.refuse(context, `changing a block the incremental path does not know: ${text}`);
    }
    for (const text of b.keys()) {
      if (!a.has(text)) this.refuse(context, `adding a block the incremental path does not know: ${text}`);
    }
  }
}

function leafTexts(node: ConfigNode | undefined): string[] {
  if (!node) return [];
  return [...node.children.values()].filter((c) => c.kind === 'line').map((c) => c.text);
}

function childrenOfKind(node: ConfigNode | undefined, kind: ContextKind): Map<string, ConfigNode> {
  const m = new Map<string, ConfigNode>();
  for (const c of node?.children.values() ?? []) if (c.kind === kind) m.set(c.text, c);
  return m;
}

function serialise(node: ConfigNode): string {
  return [...walkPaths(node)].map((p) => p.join('\n')).join('\n\n');
}

/** Computes the changes that turn the config `from` into the config `to`. */
export function diffConfigs(from: ConfigTree, to: ConfigTree): ConfigDiff {
  const b = new DiffBuilder();
  for (const [name, t] of [
    ['current', from],
    ['new', to],
  ] as const) {
    for (const p of t.problems) b.refuse([], `${name} config line ${p.lineNo} (${p.text}): ${p.reason}`);
  }
  b.opaque([], from.root, to.root);

  // 1. Top-level lines other than prefix-list entries.
  const isEntry = (l: string) => PREFIX_LIST_ENTRY.test(l);
  const top = b.leaves(
    'root',
    [],
    filtered(from.root, (l) => !isEntry(l)),
    filtered(to.root, (l) => !isEntry(l)),
  );
  b.push(...top.deletes, ...top.adds);

  // 2. BFD profiles.
  const lateBfd = diffBfd(b, from.root.children.get('bfd'), to.root.children.get('bfd'));

  // 3. Prefix-lists.
  const latePl = diffPrefixLists(b, leafTexts(from.root).filter(isEntry), leafTexts(to.root).filter(isEntry));

  // 4. Route-maps.
  const lateRm = diffRouteMaps(
    b,
    childrenOfKind(from.root, 'route-map'),
    childrenOfKind(to.root, 'route-map'),
  );

  // 5. Routers.
  const lateRouters = diffRouters(
    b,
    childrenOfKind(from.root, 'router-bgp'),
    childrenOfKind(to.root, 'router-bgp'),
  );

  // 6. Removals of whole things: routers, then what they referred to.
  b.push(...lateRouters, ...lateRm, ...latePl, ...lateBfd);

  return {
    changes: b.changes,
    unsafe: b.unsafe,
    expectPresent: b.expectPresent,
    expectAbsent: b.expectAbsent,
  };
}

function filtered(node: ConfigNode, keep: (line: string) => boolean): ConfigNode {
  const children = new Map<string, ConfigNode>();
  for (const [k, c] of node.children) if (c.kind === 'line' && keep(c.text)) children.set(k, c);
  return { text: node.text, kind: node.kind, lineNo: node.lineNo, children };
}

// --- BFD ---------------------------------------------------------------------------------------

function diffBfd(b: DiffBuilder, from: ConfigNode | undefined, to: ConfigNode | undefined): ConfigChange[] {
  const late: ConfigChange[] = [];
  if (!from && !to) return late;
  const ctx = ['bfd'];
  // Lines directly under `bfd` are not something the renderer writes: any change is unsafe.
  for (const l of leafTexts(from))
    if (!leafTexts(to).includes(l)) b.refuse(ctx, `removing unknown line ${l}`);
  for (const l of leafTexts(to)) if (!leafTexts(from).includes(l)) b.refuse(ctx, `adding unknown line ${l}`);
  b.opaque(ctx, from, to);
  const oldProfiles = childrenOfKind(from, 'bfd-profile');
  const newProfiles = childrenOfKind(to, 'bfd-profile');
  for (const [header, node] of newProfiles) {
    const prev = oldProfiles.get(header);
    const pctx = [...ctx, header];
    b.opaque(pctx, prev, node);
    const leaves = b.leaves('bfd-profile', pctx, prev, node);
    if (!prev) {
      b.expectPresent.push(pctx);
      if (!leaves.adds.length) b.push({ context: pctx, op: 'enter', command: '' });
    }
    b.push(...leaves.deletes, ...leaves.adds);
  }
  for (const header of oldProfiles.keys()) {
    if (newProfiles.has(header)) continue;
    b.expectAbsent.push([...ctx, header]);
    // `no bfd` would also work when the whole block goes, but removing the profiles one by one
    // leaves bfdd's sessions for `neighbor X bfd` alone; FRR then shows an empty `bfd` block.
    late.push({ context: ctx, op: 'delete', command: `no ${header}` });
  }
  return late;
}

// --- Prefix-lists ------------------------------------------------------------------------------

export interface PlEntry {
  seq: number;
  line: string;
  /** What FRR's duplicate check compares: the prefix with ge/le (the action is ignored here). */
  dupKey: string;
}

function groupPrefixLists(lines: string[]): Map<string, Map<number, PlEntry>> {
  const lists = new Map<string, Map<number, PlEntry>>();
  for (const line of lines) {
    const m = PREFIX_LIST_ENTRY.exec(line)!;
    const name = `${m[1]} prefix-list ${m[2]}`;
    const seq = Number(m[3]);
    let list = lists.get(name);
    if (!list) lists.set(name, (list = new Map<number, PlEntry>()));
    if (list.has(seq)) {
      // Two lines for one sequence number: mark it with an impossible key, checked below.
      list.set(-seq, { seq: -seq, line, dupKey: `\u0000${seq}` });
      continue;
    }
    list.set(seq, { seq, line, dupKey: m[5]! });
  }
  return lists;
}

function diffPrefixLists(b: DiffBuilder, fromLines: string[], toLines: string[]): ConfigChange[] {
  const late: ConfigChange[] = [];
  const from = groupPrefixLists(fromLines);
  const to = groupPrefixLists(toLines);
  for (const [name, list] of to) {
    if ([...list.keys()].some((s) => s < 0)) {
      b.refuse([], `${name}: one sequence number used twice`);
      continue;
    }
    const keys = new Set<string>();
    let dup = false;
    for (const e of list.values()) {
      if (keys.has(e.dupKey)) dup = true;
      keys.add(e.dupKey);
    }
    if (dup) {
      b.refuse([], `${name}: the same prefix twice (FRR would silently drop one)`);
      continue;
    }
    const prev = from.get(name) ?? new Map<number, PlEntry>();
    if ([...prev.keys()].some((s) => s < 0)) {
      b.refuse([], `${name}: one sequence number used twice in the current config`);
      continue;
    }
    for (const e of prev.values()) {
      const n = list.get(e.seq);
      if (!n || n.line !== e.line) b.expectAbsent.push([e.line]);
    }
    for (const e of list.values()) {
      if (prev.get(e.seq)?.line !== e.line) b.expectPresent.push([e.line]);
    }
    b.push(...orderPrefixList(prev, list));
  }
  for (const [name, list] of from) {
    if (to.has(name)) continue;
    for (const e of list.values()) if (e.seq > 0) b.expectAbsent.push([e.line]);
    late.push({ context: [], op: 'delete', command: `no ${name}` });
  }
  return late;
}

/**
 * Commands that turn prefix-list `from` into `to` (same list). FRR 8.4 changes an entry in place
 * when a sequence number is given again with another prefix, but silently ignores an entry whose
 * prefix is already in the list under another sequence number. Renumbering after an insertion or
 * removal moves prefixes between sequence numbers, so: removed sequence numbers go first; an
 * entry is written only once its prefix has left its old sequence number; a cycle (only possible
 * for lists not sorted the same way twice) is broken by deleting one entry first.
 */
export function orderPrefixList(from: Map<number, PlEntry>, to: Map<number, PlEntry>): ConfigChange[] {
  const out: ConfigChange[] = [];
  const del = (e: PlEntry): ConfigChange => ({ context: [], op: 'delete', command: `no ${e.line}` });
  const state = new Map(from); // seq -> entry currently in FRR
  const where = new Map<string, Set<number>>(); // dupKey -> seqs holding it
  const holdAt = (key: string, seq: number) => {
    let s = where.get(key);
    if (!s) where.set(key, (s = new Set()));
    s.add(seq);
  };
  const waiting = new Map<number, number[]>(); // blocking seq -> seqs waiting for it
  const wake: number[] = [];
  const release = (seq: number) => {
    const e = state.get(seq);
    if (e) where.get(e.dupKey)?.delete(seq);
    state.delete(seq);
    const w = waiting.get(seq);
    if (w) {
      waiting.delete(seq);
      wake.push(...w);
    }
  };
  for (const e of from.values()) holdAt(e.dupKey, e.seq);

  for (const e of [...from.values()].sort((x, y) => y.seq - x.seq)) {
    if (!to.has(e.seq)) {
      out.push(del(e));
      release(e.seq);
    }
  }
  const pending = new Map<number, PlEntry>();
  for (const e of [...to.values()].sort((x, y) => x.seq - y.seq)) {
    if (from.get(e.seq)?.line !== e.line) pending.set(e.seq, e);
  }
  const blocker = (e: PlEntry): number | undefined => {
    for (const s of where.get(e.dupKey) ?? []) if (s !== e.seq) return s;
    return undefined;
  };
  const tryWrite = (seq: number): void => {
    const e = pending.get(seq);
    if (!e) return;
    const blk = blocker(e);
    if (blk !== undefined) {
      const w = waiting.get(blk) ?? [];
      w.push(seq);
      waiting.set(blk, w);
      return;
    }
    pending.delete(seq);
    release(seq);
    out.push({ context: [], op: 'add', command: e.line });
    state.set(seq, e);
    holdAt(e.dupKey, seq);
  };
  for (const seq of [...pending.keys()]) {
    tryWrite(seq);
    while (wake.length) tryWrite(wake.shift()!);
  }
  while (pending.size) {
    // Every pending entry waits for another pending one: delete the lowest blocker first.
    let blk = Infinity;
    for (const k of waiting.keys()) blk = Math.min(blk, k);
    const e = state.get(blk)!;
    out.push(del(e));
    release(blk);
    while (wake.length) tryWrite(wake.shift()!);
  }
  return out;
}

// --- Route-maps --------------------------------------------------------------------------------

function routeMapEntries(
  b: DiffBuilder,
  nodes: Map<string, ConfigNode>,
  which: string,
): Map<string, ConfigNode> {
  const m = new Map<string, ConfigNode>();
  for (const [header, node] of nodes) {
    const r = ROUTE_MAP_HEADER.exec(header)!;
    const key = `${r[1]} ${r[3]}`;
    if (m.has(key))
      b.refuse([], `${which} config has route-map ${r[1]} sequence ${r[3]} as both permit and deny`);
    m.set(key, node);
  }
  return m;
}

function diffRouteMaps(
  b: DiffBuilder,
  fromNodes: Map<string, ConfigNode>,
  toNodes: Map<string, ConfigNode>,
): ConfigChange[] {
  const late: ConfigChange[] = [];
  const from = routeMapEntries(b, fromNodes, 'current');
  const to = routeMapEntries(b, toNodes, 'new');
  for (const [key, node] of to) {
    const prev = from.get(key);
    const ctx = [node.text];
    b.opaque(ctx, prev, node);
    const leaves = b.leaves(
      'route-map',
      ctx,
      prev?.text === node.text ? prev : prev ? renamed(prev, node.text) : undefined,
      node,
    );
    if (!prev || prev.text !== node.text) {
      b.expectPresent.push(ctx);
      if (prev) b.expectAbsent.push([prev.text]);
      if (!leaves.adds.length && !leaves.deletes.length) b.push({ context: ctx, op: 'enter', command: '' });
    }
    b.push(...leaves.deletes, ...leaves.adds);
  }
  for (const [key, node] of from) {
    if (to.has(key)) continue;
    b.expectAbsent.push([node.text]);
    late.push({ context: [], op: 'delete', command: `no ${node.text}` });
  }
  return late;
}

function renamed(node: ConfigNode, text: string): ConfigNode {
  return { ...node, text };
}

// --- Routers -----------------------------------------------------------------------------------

function definitions(router: ConfigNode | undefined): Map<string, Set<string>> {
  const defs = new Map<string, Set<string>>();
  for (const l of leafTexts(router)) {
    const d = neighborDefinition(l);
    if (!d) continue;
    let s = defs.get(d.peer);
    if (!s) defs.set(d.peer, (s = new Set()));
    s.add(d.form);
  }
  return defs;
}

/**
 * Router-wide lines (`bgp router-id`, …) first, then neighbor definitions (peer-groups before their
 * members), then the other neighbor lines; each group in the order of the file.
 */
function definitionsFirst(adds: ConfigChange[]): ConfigChange[] {
  const rank = (c: ConfigChange) => {
    const d = neighborDefinition(c.command);
    if (d) return d.form === 'peer-group' ? 1 : 2;
    return /^(?:no )?neighbor /.test(c.command) ? 3 : 0;
  };
  return adds
    .map((c, i) => ({ c, i, r: rank(c) }))
    .sort((x, y) => x.r - y.r || x.i - y.i)
    .map((x) => x.c);
}

function vrfOf(header: string): string {
  return ROUTER_HEADER.exec(header)?.[2] ?? '';
}

function diffRouters(
  b: DiffBuilder,
  from: Map<string, ConfigNode>,
  to: Map<string, ConfigNode>,
): ConfigChange[] {
  const oldByVrf = new Map([...from.keys()].map((h) => [vrfOf(h), h]));
  const newByVrf = new Map([...to.keys()].map((h) => [vrfOf(h), h]));
  // Default router first when adding, last when removing.
  const order = (hs: string[]) => [...hs].sort((x, y) => Number(vrfOf(x) !== '') - Number(vrfOf(y) !== ''));

  for (const header of order([...to.keys()])) {
    const node = to.get(header)!;
    const vrf = vrfOf(header);
    const prevHeader = oldByVrf.get(vrf);
    if (prevHeader !== undefined && prevHeader !== header) {
      b.refuse([header], `AS number of the router changes (was: ${prevHeader})`);
      continue;
    }
    diffRouter(b, header, from.get(header), node);
  }
  const late: ConfigChange[] = [];
  const removed = order([...from.keys()].filter((h) => !newByVrf.has(vrfOf(h)))).reverse();
  for (const header of removed) {
    if (vrfOf(header) === '' && [...newByVrf.keys()].some((v) => v !== '')) {
      b.refuse([header], 'the default router goes away while VRF routers stay');
      continue;
    }
    b.expectAbsent.push([header]);
    late.push({ context: [], op: 'delete', command: `no ${header}` });
  }
  return late;
}

function diffRouter(b: DiffBuilder, header: string, from: ConfigNode | undefined, to: ConfigNode): void {
  const ctx = [header];
  b.opaque(ctx, from, to);
  const oldDefs = definitions(from);
  const newDefs = definitions(to);
  const gone = new Set<string>();
  for (const [peer, forms] of oldDefs) {
    const now = newDefs.get(peer);
    if (!now) gone.add(peer);
    else if ([...forms].sort().join() !== [...now].sort().join())
      b.refuse(
        ctx,
        `neighbor ${peer} changes how it is defined (${[...forms].join(',')} -> ${[...now].join(',')})`,
      );
  }
  const oldLines = new Set(leafTexts(from));
  const newLines = new Set(leafTexts(to));
  const aboutGone = (line: string) => {
    const m = /^(?:no )?neighbor (\S+) /.exec(line);
    return !!m && gone.has(m[1]!);
  };
  const skipDelete = (line: string) => {
    if (aboutGone(line)) return true;
    // `no neighbor X bfd` removes the profile too; `no neighbor X bfd profile P` after it would
    // turn BFD back on (FRR 8.4).
    const m = /^(neighbor \S+ bfd) profile \S+$/.exec(line);
    return !!m && oldLines.has(m[1]!) && !newLines.has(m[1]!);
  };
  if (from) {
    const ridOld = leafTexts(from).filter((l) => l.startsWith('bgp router-id '));
    const ridNew = leafTexts(to).filter((l) => l.startsWith('bgp router-id '));
    if (ridOld.join() !== ridNew.join())
      b.refuse(ctx, `bgp router-id changes (${ridOld.join() || 'none'} -> ${ridNew.join() || 'none'})`);
  }
  const leaves = b.leaves('router-bgp', ctx, from, to, skipDelete);
  if (!from) {
    b.expectPresent.push(ctx);
    if (!leaves.adds.length) b.push({ context: ctx, op: 'enter', command: '' });
  }
  b.push(
    ...[...gone].map((peer): ConfigChange => ({
      context: ctx,
      op: 'delete',
      command: `no neighbor ${peer}`,
    })),
    ...leaves.deletes,
    ...definitionsFirst(leaves.adds),
  );
  const oldAfs = childrenOfKind(from, 'address-family');
  const newAfs = childrenOfKind(to, 'address-family');
  const afHeaders = [...newAfs.keys(), ...[...oldAfs.keys()].filter((h) => !newAfs.has(h))];
  for (const af of afHeaders) {
    const actx = [header, af];
    b.opaque(actx, oldAfs.get(af), newAfs.get(af));
    const l = b.leaves('address-family', actx, oldAfs.get(af), newAfs.get(af), aboutGone);
    b.push(...l.deletes, ...l.adds);
  }
  // Lines directly in the router that open unknown contexts were handled by opaque(); contexts
  // of other known kinds cannot occur under a router.
}

// ---------------------------------------------------------------------------------------------
// vtysh script
// ---------------------------------------------------------------------------------------------

function exitFor(header: string): string {
  return header.startsWith('address-family ') ? 'exit-address-family' : 'exit';
}

/**
 * The changes as a file for `vtysh -f` (already in configuration mode: no `configure terminal`).
 * Consecutive commands of one context share one entry into it; every context is left explicitly,
 * so no command depends on vtysh falling back to a parent context.
 */
export function renderVtyshScript(changes: readonly ConfigChange[]): string {
  const out: string[] = [];
  const cur: string[] = [];
  const ind = (n: number) => ' '.repeat(n);
  for (const ch of changes) {
    const target = ch.context;
    let common = 0;
    while (common < cur.length && common < target.length && cur[common] === target[common]) common++;
    // Being in a context already means it exists (a route-map entry whose action changes has
    // another header text, so it is entered anew).
    while (cur.length > common) {
      const h = cur.pop()!;
      out.push(`${ind(cur.length)}${exitFor(h)}`);
    }
    for (let i = common; i < target.length; i++) {
      out.push(`${ind(i)}${target[i]}`);
      cur.push(target[i]!);
    }
    if (ch.op !== 'enter') out.push(`${ind(cur.length)}${ch.command}`);
  }
  while (cur.length) {
    const h = cur.pop()!;
    out.push(`${ind(cur.length)}${exitFor(h)}`);
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

// ---------------------------------------------------------------------------------------------
// Verification against `show running-config`
// ---------------------------------------------------------------------------------------------

/**
 * How FRR 8.4 shows a line of ours in `show running-config`, or null when it does not show it at
 * all. Known rewrites (each seen in the lab):
 *   - `hostname X`: not applied without a UTS namespace (lab gotcha G1), so not checked;
 *   - `log stdout debugging` is shown as `log stdout` (debugging is the default level);
 *   - `debug bgp updates` is shown as `debug bgp updates in` + `debug bgp updates out`;
 *   - `neighbor X port 179` and `bgp route-map delay-timer 5` are defaults and not shown;
 *   - `neighbor X ebgp-multihop` is shown as `neighbor X ebgp-multihop 255`;
 *   - BFD profile defaults are not shown: `detect-multiplier 3`, `receive-interval 300`,
 *     `transmit-interval 300`, `echo receive-interval 50`, `echo transmit-interval 50`,
 *     `minimum-ttl 254`;
 *   - IPv6 addresses are printed in canonical form (lower case, `::`).
 */
export function runningForms(parentKind: ContextKind, line: string): string[] | null {
  switch (parentKind) {
    case 'root':
      if (/^hostname /.test(line)) return null;
      if (line === 'log stdout debugging') return ['log stdout'];
      if (line === 'debug bgp updates') return ['debug bgp updates in', 'debug bgp updates out'];
      break;
    case 'router-bgp': {
      if (/^neighbor \S+ port 179$/.test(line) || line === 'bgp route-map delay-timer 5') return null;
      const m = /^(neighbor \S+ ebgp-multihop)$/.exec(line);
      if (m) return [`${m[1]} 255`];
      break;
    }
    case 'bfd-profile':
      if (
        [
          'detect-multiplier 3',
          'receive-interval 300',
          'transmit-interval 300',
          'echo receive-interval 50',
          'echo transmit-interval 50',
          'minimum-ttl 254',
        ].includes(line)
      )
        return null;
      break;
    default:
      break;
  }
  return [line];
}

function parentKindOf(path: readonly string[]): ContextKind {
  let kind: ContextKind = 'root';
  for (const p of path.slice(0, -1)) kind = contextKindOf(kind, p) ?? 'opaque';
  return kind;
}

const SEP = '\u0000';

function canonicalPaths(path: readonly string[]): string[] | null {
  const forms = runningForms(parentKindOf(path), path[path.length - 1]!);
  if (!forms) return null;
  const ctx = path.slice(0, -1).map(canonicalAddresses);
  return forms.map((f) => [...ctx, canonicalAddresses(f)].join(SEP));
}

/**
 * Checks a running config against what a diff was meant to do. Returns one (masked) message per
 * expected line that is missing or per removed line that is still there; empty = as expected.
 */
export function verifyRunning(diff: ConfigDiff, running: ConfigTree): string[] {
  const have = new Set<string>();
  for (const p of walkPaths(running.root)) have.add(p.map(canonicalAddresses).join(SEP));
  const problems: string[] = [];
  const wanted = new Set<string>();
  for (const path of diff.expectPresent) {
    for (const k of canonicalPaths(path) ?? []) {
      wanted.add(k);
      if (!have.has(k)) problems.push(`missing: ${k.split(SEP).join(' > ')}`);
    }
  }
  for (const path of diff.expectAbsent) {
    for (const k of canonicalPaths(path) ?? []) {
      if (have.has(k) && !wanted.has(k)) problems.push(`still present: ${k.split(SEP).join(' > ')}`);
    }
  }
  return problems.map(maskPasswords);
}
