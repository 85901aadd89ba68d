/**
 * The difference between two parsed frr.conf trees as an ordered list of vtysh configuration
 * commands, each with the context it runs in, plus the lines that must (not) show up in
 * `show running-config` afterwards. Pure: no I/O.
 *
 * Order of the commands (one vtysh run applies all of them):
 *   1. top-level lines (log, debug, hostname, nht, …): removals, then additions;
 *   2. `bfd` profiles that are new or changed;
 *   3. prefix-list entries of lists that still exist (see "Prefix-lists" below);
 *   4. route-map entries that are new or changed (an action change is done in place: FRR
 *      changes `permit` to `deny` when the entry is entered with the other action);
 *   5. routers that are new or changed: `no neighbor X` for neighbors that disappear, other
 *      removals, additions (neighbor definitions first), then each address family;
 *   6. whole routers that disappear (VRF routers before the default one), route-map entries,
 *      prefix-lists and BFD profiles that disappear.
 * So whatever a router refers to exists before the router uses it, and is removed only after the
 * router stopped using it.
 *
 * Prefix-lists. The renderer numbers entries 1, 2, 3… in sorted order (spec e.1), so one Service
 * that sorts early renumbers every later entry. What FRR runs need not use those numbers: in a list
 * whose entries are all `permit` (or that is a single `deny any`) order does not matter, so such
 * lists are diffed as SETS of (action, prefix): entries that go are removed by the sequence number
 * FRR actually has, new ones get fresh numbers above FRR's highest one. A change then costs the
 * same wherever the prefix sorts. Other list shapes keep the positional diff (orderPrefixList).
 * FRR's actual entries come from the caller (`DiffOptions.running`: parsed `show running-config`,
 * or what the previous diff predicted, `ConfigDiff.prefixListsAfter`); without them the entries of
 * `from` are taken as FRR's.
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
  canonicalToken,
  contextKindOf,
  maskPasswords,
  normaliseLine,
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
  /**
   * Prefix-lists diffed as sets: list (`ip prefix-list NAME`) -> the entries it must hold
   * afterwards as canonical `permit P` / `deny any`, whatever their sequence numbers. An empty set:
   * the list must not exist.
   */
  readonly expectPrefixListSets: ReadonlyMap<string, ReadonlySet<string>>;
  /** One check per prefix-list sequence number the changes touch (see entryCheckCommands). */
  readonly entryChecks: readonly EntryCheck[];
  /**
   * Every change is a prefix-list entry or a `network` line. vtysh reports a rejected `network`
   * line itself; what FRR can get wrong silently (a prefix-list entry dropped as a duplicate) is
   * covered by entryChecks, so the whole `show running-config` can wait.
   */
  readonly entriesOnly: boolean;
  /**
   * FRR's prefix-list entries (the lists this diff is about) once the changes are applied: pass
   * them as DiffOptions.running to the next diff.
   */
  readonly prefixListsAfter: readonly string[];
}

export interface DiffOptions {
  /**
   * FRR's actual prefix-list entries (`ip|ipv6 prefix-list NAME seq N …` lines, as `show
   * running-config` prints them or as ConfigDiff.prefixListsAfter predicted them). Only lists
   * named in `from` or `to` are looked at: lists someone else made are left alone.
   */
  readonly running?: readonly string[];
}

/** A prefix-list sequence number and what it must hold after the changes. */
export interface EntryCheck {
  readonly family: 'ip' | 'ipv6';
  readonly list: string;
  readonly seq: number;
  /** Canonical `permit P` / `deny any`, or null when nothing may be at this number. */
  readonly expect: string | null;
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

/**
 * Computes the changes that turn the config `from` into the config `to`; prefix-lists are diffed
 * against FRR's actual entries when `opts.running` gives them.
 */
export function diffConfigs(from: ConfigTree, to: ConfigTree, opts: DiffOptions = {}): ConfigDiff {
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
  const toEntries = leafTexts(to.root).filter(isEntry);
  // FRR's side, normalised once (what FRR prints; prefixListsAfter reuses these lines as they are).
  let fromEntries = leafTexts(from.root).filter(isEntry);
  if (opts.running) {
    const owned = new Set([...fromEntries, ...toEntries].map(listNameOf));
    fromEntries = opts.running.filter((l) => isEntry(l) && owned.has(listNameOf(l)));
  }
  fromEntries = fromEntries.map(normaliseEntry);
  const pl = diffPrefixLists(b, fromEntries, toEntries);

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
  b.push(...lateRouters, ...lateRm, ...pl.late, ...lateBfd);

  return {
    changes: b.changes,
    unsafe: b.unsafe,
    expectPresent: b.expectPresent,
    expectAbsent: b.expectAbsent,
    expectPrefixListSets: pl.sets,
    entryChecks: pl.checks,
    entriesOnly: b.changes.every(isEntryChange),
    prefixListsAfter: pl.after,
  };
}

const NETWORK_LINE = /^(?:no )?network \S+$/;

function isEntryChange(c: ConfigChange): boolean {
  if (c.op === 'enter') return false;
  if (c.context.length === 0) return PREFIX_LIST_ENTRY.test(stripNo(c.command));
  return (
    c.context.length === 2 &&
    ROUTER_HEADER.test(c.context[0]!) &&
    /^address-family (?:ipv4|ipv6) unicast$/.test(c.context[1]!) &&
    NETWORK_LINE.test(c.command)
  );
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
  /** The entry as a set member: canonical `ACTION PREFIX [ge N] [le N]` (default: from `line`). */
  key?: string;
}

const MAX_SEQ = 4_294_967_295;

/** `ip prefix-list NAME` of an entry line. */
function listNameOf(line: string): string {
  const m = /^((?:ip|ipv6) prefix-list \S+) /.exec(line);
  return m ? m[1]! : line;
}

/** An entry as FRR prints it: whitespace collapsed, IPv6 in canonical form. */
function normaliseEntry(line: string): string {
  const l = line.trim().replace(/\s+/g, ' ');
  const m = PREFIX_LIST_ENTRY.exec(l);
  return m
    ? `${m[1]} prefix-list ${m[2]} seq ${m[3]} ${m[4]} ${canonicalPrefix(m[5]!)}`
    : canonicalAddresses(l);
}

/** `P [ge N] [le N]` with P in canonical form. */
function canonicalPrefix(p: string): string {
  const i = p.indexOf(' ');
  return i < 0 ? canonicalToken(p) : `${canonicalToken(p.slice(0, i))}${p.slice(i)}`;
}

/** The entry's set key: canonical `ACTION PREFIX [ge N] [le N]`. */
function entryKey(line: string): string {
  const m = PREFIX_LIST_ENTRY.exec(line)!;
  return `${m[4]} ${canonicalPrefix(m[5]!)}`;
}

const keyOf = (e: PlEntry) => e.key ?? entryKey(e.line);

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
    const prefix = canonicalPrefix(m[5]!);
    list.set(seq, { seq, line, dupKey: prefix, key: `${m[4]} ${prefix}` });
  }
  return lists;
}

/**
 * A list whose order does not matter: only `permit` entries, or a single `deny any` (what the
 * renderer writes for a neighbour with nothing to announce), or nothing at all.
 */
export function isSetShaped(entries: Iterable<PlEntry>): boolean {
  const keys = [...entries].map(keyOf);
  if (keys.length === 1 && keys[0] === 'deny any') return true;
  return keys.every((k) => k.startsWith('permit '));
}

/**
 * The config text for a full reload (frr-reload.py), with the entries of every set-shaped
 * prefix-list renumbered to what FRR has: an entry FRR holds keeps FRR's number, a new one gets a
 * fresh number above FRR's highest. Without this, frr-reload.py would "renumber" FRR back to the
 * render's numbers after set-based applies: a delete and an add per entry, each O(list) in FRR 8.4,
 * with the route withdrawn in between (FRR deletes `no … seq N …` by number). Lists of any other
 * shape, and lines that are not prefix-list entries, are left as they are.
 */
export function alignPrefixLists(text: string, running: readonly string[]): string {
  const lines = text.split('\n');
  const at = new Map<string, number[]>(); // list -> indexes of its entry lines in `lines`
  const toLines: string[] = [];
  lines.forEach((raw, i) => {
    if (/^\s/.test(raw)) return;
    const l = normaliseLine(raw);
    if (!PREFIX_LIST_ENTRY.test(l)) return;
    const name = listNameOf(l);
    let idx = at.get(name);
    if (!idx) at.set(name, (idx = []));
    idx.push(i);
    toLines.push(l);
  });
  if (!at.size) return text;
  const to = groupPrefixLists(toLines);
  const frr = groupPrefixLists(
    running.filter((l) => PREFIX_LIST_ENTRY.test(l) && at.has(listNameOf(l))).map(normaliseEntry),
  );
  for (const [name, idx] of at) {
    const want = to.get(name)!;
    const have = frr.get(name) ?? new Map<number, PlEntry>();
    if ([...want.keys(), ...have.keys()].some((k) => k < 0)) continue;
    if (!isSetShaped(want.values()) || !isSetShaped(have.values())) continue;
    if (new Set([...want.values()].map(keyOf)).size !== want.size) continue; // a prefix twice
    const seqOf = new Map<string, number>();
    let top = 0;
    for (const e of have.values()) {
      seqOf.set(keyOf(e), e.seq);
      top = Math.max(top, e.seq);
    }
    const fresh = [...want.values()].filter((e) => !seqOf.has(keyOf(e))).length;
    if (top + fresh > MAX_SEQ) continue;
    for (const i of idx) {
      const m = PREFIX_LIST_ENTRY.exec(normaliseLine(lines[i]!))!;
      const key = `${m[4]} ${canonicalPrefix(m[5]!)}`;
      let seq = seqOf.get(key);
      if (seq === undefined) seqOf.set(key, (seq = ++top));
      lines[i] = `${m[1]} prefix-list ${m[2]} seq ${seq} ${m[4]} ${m[5]}`;
    }
  }
  return lines.join('\n');
}

interface PlDiff {
  /** Removals of whole lists (after the route-maps stopped using them). */
  late: ConfigChange[];
  sets: Map<string, Set<string>>;
  checks: EntryCheck[];
  after: string[];
}

function checkOf(name: string, seq: number, expect: string | null): EntryCheck {
  const m = /^(ip|ipv6) prefix-list (\S+)$/.exec(name)!;
  return { family: m[1] as 'ip' | 'ipv6', list: m[2]!, seq, expect };
}

function diffPrefixLists(b: DiffBuilder, fromLines: string[], toLines: string[]): PlDiff {
  const out: PlDiff = { late: [], sets: new Map(), checks: [], after: [] };
  const from = groupPrefixLists(fromLines);
  const to = groupPrefixLists(toLines);
  const keepAsIs = (name: string) => {
    for (const e of from.get(name)?.values() ?? []) if (e.seq > 0) out.after.push(e.line);
  };
  for (const [name, list] of to) {
    if ([...list.keys()].some((s) => s < 0)) {
      b.refuse([], `${name}: one sequence number used twice`);
      keepAsIs(name);
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
      keepAsIs(name);
      continue;
    }
    const prev = from.get(name) ?? new Map<number, PlEntry>();
    if ([...prev.keys()].some((s) => s < 0)) {
      b.refuse([], `${name}: one sequence number used twice in the current config`);
      keepAsIs(name);
      continue;
    }
    if (isSetShaped(prev.values()) && isSetShaped(list.values()))
      diffPrefixListAsSet(b, out, name, prev, list);
    else diffPrefixListByPosition(b, out, name, prev, list);
  }
  for (const [name, list] of from) {
    if (to.has(name)) continue;
    for (const e of list.values()) if (e.seq > 0) b.expectAbsent.push([e.line]);
    out.sets.set(name, new Set());
    out.late.push({ context: [], op: 'delete', command: `no ${name}` });
  }
  return out;
}

/**
 * Order does not matter on either side: remove the entries that go (by the number FRR has), then
 * add the new ones under fresh numbers above FRR's highest (or, should that run out, the lowest
 * free ones). Removing first also keeps FRR's silent duplicate check out of the way when a prefix
 * changes its action (`deny any` -> `permit …`).
 */
function diffPrefixListAsSet(
  b: DiffBuilder,
  out: PlDiff,
  name: string,
  prev: Map<number, PlEntry>,
  list: Map<number, PlEntry>,
): void {
  const want = new Map<string, PlEntry>();
  for (const e of list.values()) want.set(keyOf(e), e);
  const have = new Map<string, PlEntry>();
  for (const e of prev.values()) have.set(keyOf(e), e);
  const removed = [...prev.values()].filter((e) => !want.has(keyOf(e))).sort((x, y) => y.seq - x.seq);
  const added = [...list.values()].filter((e) => !have.has(keyOf(e))).sort((x, y) => x.seq - y.seq);
  out.sets.set(name, new Set(want.keys()));
  const keptSeqs = new Set([...prev.values()].filter((e) => want.has(keyOf(e))).map((e) => e.seq));
  for (const e of prev.values()) if (keptSeqs.has(e.seq)) out.after.push(e.line);
  for (const e of removed) {
    b.push({ context: [], op: 'delete', command: `no ${e.line}` });
    out.checks.push(checkOf(name, e.seq, null));
  }
  let top = 0;
  for (const seq of prev.keys()) top = Math.max(top, seq);
  let next = top + 1;
  const useGaps = top + added.length > MAX_SEQ;
  const taken = new Set(keptSeqs);
  const fresh = (): number => {
    if (!useGaps) return next++;
    if (next > top) next = 1;
    while (taken.has(next)) next++;
    taken.add(next);
    return next;
  };
  for (const e of added) {
    const seq = fresh();
    const m = PREFIX_LIST_ENTRY.exec(e.line)!;
    const line = `${m[1]} prefix-list ${m[2]} seq ${seq} ${m[4]} ${m[5]}`;
    b.push({ context: [], op: 'add', command: line });
    out.checks.push(checkOf(name, seq, keyOf(e)));
    out.after.push(normaliseEntry(line));
  }
  // A number both freed and reused would be checked twice with different expectations.
  const last = new Map<number, EntryCheck>();
  for (const c of out.checks) if (`${c.family} prefix-list ${c.list}` === name) last.set(c.seq, c);
  out.checks = out.checks.filter(
    (c) => `${c.family} prefix-list ${c.list}` !== name || last.get(c.seq) === c,
  );
}

function diffPrefixListByPosition(
  b: DiffBuilder,
  out: PlDiff,
  name: string,
  prev: Map<number, PlEntry>,
  list: Map<number, PlEntry>,
): void {
  for (const e of prev.values()) {
    const n = list.get(e.seq);
    if (!n || keyOf(n) !== keyOf(e)) {
      b.expectAbsent.push([e.line]);
      out.checks.push(checkOf(name, e.seq, n ? keyOf(n) : null));
    }
  }
  for (const e of list.values()) {
    const p = prev.get(e.seq);
    if (!p || keyOf(p) !== keyOf(e)) {
      b.expectPresent.push([e.line]);
      if (!p) out.checks.push(checkOf(name, e.seq, keyOf(e)));
    }
    out.after.push(normaliseEntry(e.line));
  }
  b.push(...orderPrefixList(prev, list));
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

/** One `vtysh -f` of a change script: to every daemon, or to bgpd only (`vtysh -d bgpd`). */
export interface ScriptPart {
  readonly daemon?: 'bgpd';
  readonly changes: readonly ConfigChange[];
}

/**
 * Splits the changes, keeping their order, into runs for `vtysh -f` (all daemons) and `vtysh -d
 * bgpd -f`. New prefix-list entries go to bgpd only: FRR 8.4 commits every entry in each daemon
 * that knows prefix-lists, at a cost that grows with the list, and zebra has no use for ours
 * (measured: 5 000-entry list, one entry + network 428 ms to all daemons, 251 ms to bgpd). Removals
 * go to all daemons (zebra may hold the entry from a full reload or FRR's start; a missing one is
 * not an error), so zebra's entries stay a subset of bgpd's and the merged `show running-config`
 * is bgpd's. `router bgp` contexts only reach bgpd anyway and join either kind of run.
 */
export function splitForDaemons(changes: readonly ConfigChange[]): ScriptPart[] {
  const parts: { daemon: 'bgpd' | 'all' | 'any'; changes: ConfigChange[] }[] = [];
  for (const c of changes) {
    const kind: 'bgpd' | 'all' | 'any' =
      c.context.length === 0 && c.op === 'add' && PREFIX_LIST_ENTRY.test(c.command)
        ? 'bgpd'
        : c.context.length > 0 && ROUTER_HEADER.test(c.context[0]!)
          ? 'any'
          : 'all';
    const cur = parts[parts.length - 1];
    if (cur && (kind === 'any' || cur.daemon === kind || cur.daemon === 'any')) {
      if (cur.daemon === 'any') cur.daemon = kind;
      cur.changes.push(c);
    } else {
      parts.push({ daemon: kind, changes: [c] });
    }
  }
  return parts.map((p) =>
    p.daemon === 'all' ? { changes: p.changes } : { daemon: 'bgpd', changes: p.changes },
  );
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

/** What verifyRunning checks: a diff's expectations. */
export type Expectations = Pick<ConfigDiff, 'expectPresent' | 'expectAbsent' | 'expectPrefixListSets'>;

/**
 * Checks a running config against what a diff was meant to do. Returns one (masked) message per
 * expected line that is missing or per removed line that is still there, and per prefix-list
 * diffed as a set whose entries (compared as sets, numbers ignored) differ; empty = as expected.
 */
export function verifyRunning(diff: Expectations, running: ConfigTree): string[] {
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
  if (diff.expectPrefixListSets.size) {
    const lists = prefixListSets(leafTexts(running.root).filter((l) => PREFIX_LIST_ENTRY.test(l)));
    for (const [name, want] of diff.expectPrefixListSets) {
      const got = lists.get(name) ?? new Set<string>();
      const missing = [...want].filter((k) => !got.has(k));
      const extra = [...got].filter((k) => !want.has(k));
      const some = (xs: string[]) =>
        `${xs.slice(0, 5).join(', ')}${xs.length > 5 ? ` (+${xs.length - 5} more)` : ''}`;
      if (missing.length) problems.push(`missing from ${name}: ${some(missing)}`);
      if (extra.length) problems.push(`still in ${name}: ${some(extra)}`);
    }
  }
  return problems.map(maskPasswords);
}

/** Entries of each list as set keys (canonical `permit P`). */
function prefixListSets(lines: readonly string[]): Map<string, Set<string>> {
  const lists = new Map<string, Set<string>>();
  for (const l of lines) {
    const name = listNameOf(l);
    let set = lists.get(name);
    if (!set) lists.set(name, (set = new Set()));
    set.add(entryKey(l));
  }
  return lists;
}

/** The prefix-list entry lines at the top of a config tree (e.g. a parsed `show running-config`). */
export function prefixListEntries(tree: ConfigTree): string[] {
  return leafTexts(tree.root)
    .filter((l) => PREFIX_LIST_ENTRY.test(l))
    .map(normaliseEntry);
}

/** A path that is one prefix-list entry (verifyFull compares prefix-lists as wholes). */
export function isPrefixListEntryPath(path: readonly string[]): boolean {
  return path.length === 1 && PREFIX_LIST_ENTRY.test(path[0]!);
}

/** `ip prefix-list NAME` of every prefix-list in a config tree. */
export function prefixListNames(tree: ConfigTree): Set<string> {
  return new Set(
    leafTexts(tree.root)
      .filter((l) => PREFIX_LIST_ENTRY.test(l))
      .map(listNameOf),
  );
}

const EMPTY: ConfigTree = { root: { text: '', kind: 'root', children: new Map(), lineNo: 0 }, problems: [] };

/**
 * Checks that FRR runs all of `desired`: every line (FRR's known rewrites normalised), every
 * prefix-list with exactly its entries (as sets for the lists that are diffed as sets, numbers
 * included for the others); plus what must be gone: `absent` paths (e.g. the expectAbsent of the
 * diffs applied since the last check, prefix-list entries left out) and lists in `goneLists` that
 * `desired` does not have. Empty = FRR runs it.
 */
export function verifyFull(
  desired: ConfigTree,
  running: ConfigTree,
  also: { absent?: readonly (readonly string[])[]; goneLists?: Iterable<string> } = {},
): string[] {
  const d = diffConfigs(EMPTY, desired);
  const sets = new Map(d.expectPrefixListSets);
  const have = prefixListNames(desired);
  for (const name of also.goneLists ?? []) if (!have.has(name)) sets.set(name, new Set());
  const problems = verifyRunning(
    {
      expectPresent: d.expectPresent,
      expectAbsent: (also.absent ?? []).filter((p) => !isPrefixListEntryPath(p)),
      expectPrefixListSets: sets,
    },
    running,
  );
  // Lists whose order matters: exactly the rendered entries, numbers included.
  const wantLines = new Set(prefixListEntries(desired));
  for (const l of prefixListEntries(running)) {
    const name = listNameOf(l);
    if (have.has(name) && !sets.has(name) && !wantLines.has(l))
      problems.push(maskPasswords(`still in ${name}: ${l}`));
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Targeted check of prefix-list entries (instead of a whole `show running-config`)
// ---------------------------------------------------------------------------------------------

/**
 * The vtysh commands that show each checked sequence number (`show ip prefix-list NAME seq N
 * json`: one JSON object per daemon that has prefix-lists, naming the list), or null when their
 * output could not be told apart (one name used in both families) or read (ge/le entries).
 */
export function entryCheckCommands(checks: readonly EntryCheck[]): string[] | null {
  const family = new Map<string, string>();
  for (const c of checks) {
    if ((family.get(c.list) ?? c.family) !== c.family) return null;
    family.set(c.list, c.family);
    if (c.expect && / ge \d+/.test(c.expect)) return null;
  }
  return checks.map((c) => `show ${c.family} prefix-list ${c.list} seq ${c.seq} json`);
}

/** Top-level JSON values of a text that holds several one after another (vtysh, one per daemon). */
export function splitJsonObjects(text: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    else if (ch === '{' || ch === '[') {
      if (depth === 0) start = i;
      depth++;
    } else if (ch === '}' || ch === ']') {
      depth--;
      if (depth === 0 && start >= 0) {
        out.push(JSON.parse(text.slice(start, i + 1)));
        start = -1;
      }
    } else if (depth === 0 && !/\s/.test(ch)) {
      throw new Error(`unexpected output: ${text.slice(i, i + 80).split('\n')[0]}`);
    }
  }
  if (depth !== 0) throw new Error('unexpected output: unbalanced JSON');
  return out;
}

interface ShownEntry {
  sequenceNumber?: number;
  type?: string;
  prefix?: string;
  maximumPrefixLength?: number;
}

/**
 * `permit P [le N]` / `deny any` from one entry of FRR's JSON (8.4 shows `any` as the zero prefix
 * with `maximumPrefixLength` 32 or 128, and `le N` as `maximumPrefixLength`).
 */
function shownKey(e: ShownEntry): string {
  const p = String(e.prefix ?? '');
  const le = e.maximumPrefixLength;
  if (p === 'any' || (p === '0.0.0.0/0' && le === 32) || (p === '::/0' && le === 128)) return `${e.type} any`;
  return canonicalAddresses(`${e.type} ${p}${le !== undefined ? ` le ${le}` : ''}`);
}

/**
 * Reads the output of entryCheckCommands: every daemon that answered for a list must hold exactly
 * the expected entry at each checked number (or nothing there). Returns the problems.
 */
export function verifyEntryChecks(checks: readonly EntryCheck[], output: string): string[] {
  let objects: unknown[];
  try {
    objects = splitJsonObjects(output);
  } catch (e) {
    return [e instanceof Error ? e.message : String(e)];
  }
  // daemon -> list -> seq -> key
  const seen = new Map<string, Map<string, Map<number, string>>>();
  for (const o of objects) {
    if (!o || typeof o !== 'object' || Array.isArray(o)) continue;
    for (const [daemon, lists] of Object.entries(o as Record<string, unknown>)) {
      if (!lists || typeof lists !== 'object') continue;
      let d = seen.get(daemon);
      if (!d) seen.set(daemon, (d = new Map<string, Map<number, string>>()));
      for (const [list, body] of Object.entries(lists as Record<string, { entries?: ShownEntry[] }>)) {
        let l = d.get(list);
        if (!l) d.set(list, (l = new Map<number, string>()));
        for (const e of body?.entries ?? [])
          if (typeof e.sequenceNumber === 'number') l.set(e.sequenceNumber, shownKey(e));
      }
    }
  }
  const problems: string[] = [];
  for (const c of checks) {
    const name = `${c.family} prefix-list ${c.list} seq ${c.seq}`;
    const answers = [...seen].filter(([, lists]) => lists.has(c.list));
    if (c.expect === null) {
      for (const [daemon, lists] of answers) {
        const got = lists.get(c.list)!.get(c.seq);
        if (got !== undefined) problems.push(`still present in ${daemon}: ${name} ${got}`);
      }
      continue;
    }
    if (answers.length === 0) problems.push(`missing: ${name} ${c.expect} (no daemon shows ${c.list})`);
    // New entries go to bgpd only (splitForDaemons): zebra's view of an addition does not count.
    const bgp = answers.filter(([daemon]) => /^bgp/i.test(daemon));
    for (const [daemon, lists] of bgp.length ? bgp : answers) {
      const got = lists.get(c.list)!.get(c.seq);
      if (got !== c.expect) problems.push(`${daemon}: ${name} is ${got ?? 'missing'}, want ${c.expect}`);
    }
  }
  return problems.map(maskPasswords);
}
