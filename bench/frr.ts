/**
 * `npm run bench:frr` — what one Service change costs end to end, as the number of Services grows.
 *
 * Per size N (default 10, 1 000, 10 000; IRONLB_BENCH_N=10,1000 to choose), in fresh network
 * namespaces (test/lab): one node running FRR 8.4 with the REAL pipeline — `ironlb speaker`
 * (directory of objects -> frr.conf) and `ironlb frr-reloader` (frr.conf -> FRR) as processes in
 * the node's namespace — and a BIRD router with eBGP sessions over IPv4 and IPv6.
 *
 * 1. load N Services (IPv4 /32 from 198.51.100.0/24 + 203.0.113.0/24 first, minus 8 addresses kept
 *    for the measured changes, the rest IPv6 /128 from 2001:db8:100::/64) in files of 1 000, and
 *    wait until BIRD has all N routes;
 * 2. single changes, incremental reloader (default): one Service file written -> its route at
 *    BIRD (polled every 10 ms over BIRD's control socket), file deleted -> route gone; for an IPv4
 *    and an IPv6 prefix that sorts in the MIDDLE of its list (the spec renumbers every later
 *    entry) and an IPv6 prefix that sorts LAST; IRONLB_BENCH_REPS times each (default 5);
 * 3. a burst: IRONLB_BENCH_BURST (1 000) Service files written at once -> all routes at BIRD, and
 *    the number of applies the reloader did; then the same files deleted;
 * 4. the same single changes with the reloader forced to full frr-reload.py
 *    (IRONLB_FRR_APPLY_MODE=full; IRONLB_BENCH_FULL_REPS, default 3) — last, because a change that
 *    runs into its bound is killed and leaves FRR in an unknown state.
 *
 * Every wait is bounded (IRONLB_BENCH_*_TIMEOUT_S); what could not be measured is printed.
 * A benchmark, not a test: nothing asserts on timing. Needs root, FRR 8.4 and BIRD 2 (see
 * test/lab/README.md). FRR runs zebra, bgpd and staticd (the config has no BFD; set
 * IRONLB_BENCH_BFDD=1 to run bfdd too — every prefix-list entry then costs a third more).
 * IRONLB_BENCH_JSON=FILE also writes every figure as JSON. IRONLB_BENCH_SKIP_STAGES=1 skips the
 * per-stage timings (each reads FRR's whole running config).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BirdControl,
  readReloaderStatus,
  removeFile,
  serviceYaml,
  startPipelineProcess,
  timeUntil,
  writeAtomic,
  type PipelineProcess,
  type ReloaderStatus,
} from '../test/lab/pipeline.js';
import {
  labUnavailableReason,
  startBird,
  startFrr,
  Topology,
  type BirdInstance,
  type FrrDaemon,
  type FrrInstance,
} from '../test/lab/index.js';
import {
  diffConfigs,
  entryCheckCommands,
  prefixListEntries,
  renderVtyshScript,
  verifyFull,
} from '../src/frr/config-diff.js';
import { parseConfig } from '../src/frr/config-tree.js';
import { VtyshExecutor } from '../src/frr/vtysh.js';

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

const env = process.env;
const num = (name: string, dflt: number) => {
  const v = Number(env[name]);
  return Number.isFinite(v) && v > 0 ? v : dflt;
};
const SIZES = (env.IRONLB_BENCH_N ?? '10,1000,10000')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isInteger(n) && n > 0);
const REPS = num('IRONLB_BENCH_REPS', 5);
const FULL_REPS = num('IRONLB_BENCH_FULL_REPS', 3);
const BURST = num('IRONLB_BENCH_BURST', 1000);
const SKIP_FULL = env.IRONLB_BENCH_SKIP_FULL === '1';
const SKIP_BURST = env.IRONLB_BENCH_SKIP_BURST === '1';
/** Bounds, in seconds; the defaults grow with N. */
const loadTimeoutS = (n: number) =>
  num('IRONLB_BENCH_LOAD_TIMEOUT_S', n >= 5000 ? 3600 : n >= 500 ? 900 : 120);
const changeTimeoutS = (n: number) => num('IRONLB_BENCH_CHANGE_TIMEOUT_S', n >= 5000 ? 120 : 60);
const fullChangeTimeoutS = (n: number) => num('IRONLB_BENCH_FULL_TIMEOUT_S', n >= 5000 ? 600 : 300);
const burstTimeoutS = (n: number) => num('IRONLB_BENCH_BURST_TIMEOUT_S', n >= 5000 ? 2400 : 900);
const QUIET_TIMEOUT_MS = 120_000;

const ROUTER = { name: 'rt', v4: '192.0.2.1', v6: '2001:db8:0:1::1' };
const NODE = { name: 'n1', v4: '192.0.2.11', v6: '2001:db8:0:1::11' };
const HOSTNAME = 'n1';

// ---------------------------------------------------------------------------------------------
// Addresses (documentation ranges only)
// ---------------------------------------------------------------------------------------------

const V4_ALL = Array.from({ length: 512 }, (_, i) => (i < 256 ? `198.51.100.${i}` : `203.0.113.${i - 256}`));
const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const v4Sorted = [...V4_ALL].sort((a, b) => byString(`${a}/32`, `${b}/32`));
/** Kept out of the load for the measured IPv4 changes, spread over the sorted order. */
const V4_RESERVED = Array.from({ length: 8 }, (_, k) => v4Sorted[32 + 64 * k]!);
const V4_POOL = V4_ALL.filter((a) => !V4_RESERVED.includes(a));
/** 2001:db8:100::/64: base j -> 16+4j, burst j -> 16+4j+2, measured -> 16+4j+1 or ::ffff. */
const v6 = (value: number) => `2001:db8:100::${value.toString(16)}`;
const pfx = (ip: string) => `${ip}/${ip.includes(':') ? 128 : 32}`;

interface Plan {
  n: number;
  n4: number;
  n6: number;
  base: string[];
  burst: string[];
}

function plan(n: number): Plan {
  const n4 = Math.min(n, V4_POOL.length);
  const n6 = n - n4;
  const base = [...V4_POOL.slice(0, n4), ...Array.from({ length: n6 }, (_, j) => v6(16 + 4 * j))];
  const free4 = V4_POOL.slice(n4);
  const burst = [
    ...free4.slice(0, BURST),
    ...Array.from({ length: Math.max(0, BURST - free4.length) }, (_, j) => v6(16 + 4 * j + 2)),
  ];
  return { n, n4, n6, base, burst };
}

/** Position (0-based) `p` would take in the sorted list of `list` (what the renderer numbers). */
function rankOf(p: string, list: string[]): number {
  const sorted = list.map(pfx).sort(byString);
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < pfx(p)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

interface Variant {
  name: string;
  ip: string;
  /** Entries in the list the prefix goes into before the change (0: that list is `deny any`). */
  listSize: number;
  /** Where it sorts: the renderer renumbers listSize - rank later entries. */
  rank: number;
}

function variants(p: Plan): Variant[] {
  const v4base = p.base.filter((a) => !a.includes(':'));
  const v6base = p.base.filter((a) => a.includes(':'));
  const out: Variant[] = [];
  // IPv4: the reserved address that sorts closest to the middle of the loaded IPv4 prefixes.
  let best = V4_RESERVED[0]!;
  for (const a of V4_RESERVED) {
    if (Math.abs(rankOf(a, v4base) - v4base.length / 2) < Math.abs(rankOf(best, v4base) - v4base.length / 2))
      best = a;
  }
  out.push({ name: 'IPv4 middle', ip: best, listSize: v4base.length, rank: rankOf(best, v4base) });
  if (v6base.length === 0) {
    const ip = v6(17);
    out.push({ name: 'IPv6 (deny any <-> 1 permit)', ip, listSize: 0, rank: 0 });
  } else {
    // The odd neighbour of the loaded prefix at the middle of the string order.
    const sorted = [...v6base].sort((a, b) => byString(pfx(a), pfx(b)));
    const mid = sorted[Math.floor(sorted.length / 2)]!;
    const ip = v6(parseInt(mid.split('::')[1]!, 16) + 1);
    out.push({ name: 'IPv6 middle', ip, listSize: v6base.length, rank: rankOf(ip, v6base) });
    const last = v6(0xffff);
    out.push({ name: 'IPv6 last', ip: last, listSize: v6base.length, rank: rankOf(last, v6base) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------------

const CONFIG_YAML = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bench-v4, namespace: metallb-system}
spec:
  addresses: [198.51.100.0/24, 203.0.113.0/24]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bench-v6, namespace: metallb-system}
spec:
  addresses: ['2001:db8:100::/64']
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bench, namespace: metallb-system}
spec: {}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: rt-v4, namespace: metallb-system}
spec: {myASN: 64510, peerASN: 64500, peerAddress: ${ROUTER.v4}, holdTime: 9s, keepaliveTime: 3s, connectTime: 2s}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: rt-v6, namespace: metallb-system}
spec: {myASN: 64510, peerASN: 64500, peerAddress: '${ROUTER.v6}', holdTime: 9s, keepaliveTime: 3s, connectTime: 2s}
`;

const BIRD_CONF = `router id ${ROUTER.v4};
protocol device { scan time 10; }
template bgp ebgp4 {
  local ${ROUTER.v4} as 64500; hold time 9; keepalive time 3;
  connect retry time 2; error wait time 1,5; connect delay time 1; graceful restart off;
  ipv4 { import all; export none; };
}
template bgp ebgp6 {
  local ${ROUTER.v6} as 64500; hold time 9; keepalive time 3;
  connect retry time 2; error wait time 1,5; connect delay time 1; graceful restart off;
  ipv6 { import all; export none; };
}
protocol bgp n1_4 from ebgp4 { neighbor ${NODE.v4} as 64510; }
protocol bgp n1_6 from ebgp6 { neighbor ${NODE.v6} as 64510; }
`;

async function writeServices(dir: string, prefix: string, ips: string[], perFile: number): Promise<void> {
  for (let f = 0; f * perFile < ips.length; f++) {
    const docs = ips
      .slice(f * perFile, (f + 1) * perFile)
      .map((ip, i) => serviceYaml(`${prefix}-${String(f * perFile + i).padStart(5, '0')}`, ip));
    await writeAtomic(dir, `${prefix}-${String(f).padStart(3, '0')}.yaml`, docs.join('---\n'));
  }
}

// ---------------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------------

interface Change {
  variant: string;
  mode: 'incremental' | 'full';
  op: 'add' | 'delete';
  /** File written/deleted -> route present/gone at BIRD; null = not within the bound. */
  ms: number | null;
  /** File written -> the speaker logged `frr.conf written`. */
  speakerMs?: number;
  /** The reloader's step durations of the apply (its status file). */
  timings?: Record<string, number>;
  appliedMode?: string;
}

/** Each step of an apply on its own, median of 3 (ms): what the old and the new path cost. */
interface StageProbe {
  /** `vtysh -C` of the whole frr.conf (old: every apply; new: full reloads only). */
  dryRunFullMs: number;
  /** `vtysh -C` of a one-Service script (new). */
  dryRunScriptMs: number;
  /** `show running-config` (old: after every apply; new: lazily, once per burst). */
  showRunningMs: number;
  /** Parsing that output. */
  parseRunningMs: number;
  /** One targeted `show … prefix-list … seq N json` (new: after every Service change). */
  showEntryMs: number;
  /** Parsing the rendered frr.conf (every apply). */
  parseConfigMs: number;
  /** diffConfigs for one Service against FRR's entries (every apply). */
  diffMs: number;
  /** verifyFull of the whole config against the running one (the lazy check, new). */
  verifyFullMs: number;
  configLines: number;
}

interface SizeResult {
  n: number;
  n4: number;
  n6: number;
  loadMs: number | null;
  loadNote?: string;
  changes: Change[];
  variants: Variant[];
  burst?: {
    addMs: number | null;
    addApplies?: number;
    deleteMs: number | null;
    deleteApplies?: number;
    note?: string;
  };
  notes: string[];
  loadavg: number[];
  stages?: StageProbe;
}

const totalApplies = (s: ReloaderStatus | undefined) =>
  s ? Object.values(s.counts ?? {}).reduce((a, b) => a + (typeof b === 'number' ? b : 0), 0) : 0;

class Node {
  speaker: PipelineProcess | undefined;
  reloader: PipelineProcess | undefined;
  constructor(
    readonly topo: Topology,
    readonly frr: FrrInstance,
    readonly bird: BirdInstance,
    readonly ctl: BirdControl,
    readonly src: string,
    readonly frrDir: string,
    readonly logDir: string,
  ) {}

  startSpeaker(): void {
    this.speaker = startPipelineProcess({
      ns: this.topo.host('n1').ns,
      args: [
        'speaker',
        '--node',
        'n1',
        '--source',
        `dir:${this.src}`,
        '--frr-dir',
        this.frrDir,
        '--hostname',
        HOSTNAME,
      ],
      logFile: join(this.logDir, 'speaker.log'),
    });
  }

  startReloader(mode: 'incremental' | 'full'): void {
    this.reloader = startPipelineProcess({
      ns: this.topo.host('n1').ns,
      hostname: HOSTNAME,
      args: ['frr-reloader', '--dir', this.frrDir, '--pathspace', this.frr.name],
      env: {
        IRONLB_FRR_APPLY_MODE: mode === 'full' ? 'full' : 'auto',
        // The initial load of 10 000 prefixes takes FRR 8.4 far longer than the default bound.
        IRONLB_FRR_RELOAD_TIMEOUT_MS: String(loadTimeoutS(100_000) * 1000),
      },
      logFile: join(this.logDir, `reloader-${mode}.log`),
    });
  }

  status(): Promise<ReloaderStatus | undefined> {
    return readReloaderStatus(this.frrDir);
  }

  /** Applied what it was given, not applying, and (when the reloader reports it) checked. */
  async quiet(timeoutMs = QUIET_TIMEOUT_MS): Promise<boolean> {
    const t = await timeUntil(
      async () => {
        const s = await this.status();
        if (!s || s.applying || s.appliedGeneration !== s.desiredGeneration || s.desiredGeneration === 0)
          return false;
        const v = s.verifiedGeneration;
        return typeof v !== 'number' || v === s.appliedGeneration;
      },
      { timeoutMs, intervalMs: 50 },
    );
    return t !== null;
  }

  async routes(): Promise<number> {
    return (await this.ctl.routeCount('n1_4')) + (await this.ctl.routeCount('n1_6'));
  }

  async stopPipeline(): Promise<void> {
    await this.reloader?.stop(15_000);
    await this.speaker?.stop(15_000);
  }
}

/** One write or delete of a single Service file, timed until BIRD agrees. */
async function measureOne(
  node: Node,
  v: Variant,
  mode: Change['mode'],
  op: Change['op'],
  rep: number,
  timeoutMs: number,
): Promise<Change> {
  const file = `m-${v.ip.replace(/[.:]/g, '-')}.yaml`;
  const before = await node.status();
  const gen0 = before?.desiredGeneration ?? 0;
  const speakerRec = node
    .speaker!.nextRecord((r) => r.msg === 'frr.conf written', timeoutMs)
    .catch(() => undefined);
  const t0 = Date.now();
  if (op === 'add')
    await writeAtomic(
      node.src,
      file,
      serviceYaml(`m-${rep}-${v.ip.replace(/[.:]/g, '')}`.slice(0, 60), v.ip),
    );
  else await removeFile(node.src, file);
  const want = op === 'add';
  const ms = await timeUntil(async () => (await node.ctl.hasRoute(pfx(v.ip))) === want, {
    timeoutMs,
    intervalMs: 10,
    since: t0,
  });
  const sp = await speakerRec;
  const change: Change = { variant: v.name, mode, op, ms };
  if (sp) change.speakerMs = sp.t - t0;
  // The reloader's own figures for that apply.
  const s = await timeUntil(
    async () => {
      const x = await node.status();
      return !!x && x.desiredGeneration > gen0 && x.appliedGeneration === x.desiredGeneration && !x.applying;
    },
    { timeoutMs: ms === null ? 1000 : 30_000, intervalMs: 20 },
  );
  if (s !== null) {
    const st = await node.status();
    if (st?.lastTimings) change.timings = st.lastTimings;
    if (st?.mode) change.appliedMode = st.mode;
  }
  return change;
}

async function measureSingles(
  node: Node,
  vs: Variant[],
  mode: Change['mode'],
  reps: number,
  timeoutMs: number,
  res: SizeResult,
): Promise<boolean> {
  for (const v of vs) {
    for (let rep = 0; rep < reps; rep++) {
      for (const op of ['add', 'delete'] as const) {
        if (!(await node.quiet()))
          res.notes.push(
            `${mode} ${v.name}: the reloader did not settle within ${QUIET_TIMEOUT_MS / 1000} s`,
          );
        const c = await measureOne(node, v, mode, op, rep, timeoutMs);
        res.changes.push(c);
        const st = c.timings ? ` ${JSON.stringify(c.timings)}` : '';
        log(
          `  ${mode} ${v.name} ${op}: ${c.ms === null ? `> ${timeoutMs} ms (bound)` : `${c.ms} ms`} speaker ${c.speakerMs ?? '-'} ms${st}`,
        );
        if (c.ms === null) {
          res.notes.push(
            `${mode} ${v.name} ${op}: no route change at BIRD within ${timeoutMs / 1000} s (bound); stopped measuring ${mode} at N=${res.n}`,
          );
          return false;
        }
      }
    }
  }
  return true;
}

async function burst(node: Node, p: Plan, res: SizeResult): Promise<void> {
  const bound = burstTimeoutS(p.n) * 1000;
  await node.quiet();
  const s0 = await node.status();
  const target = p.n + p.burst.length;
  log(`  burst: writing ${p.burst.length} Service files at once`);
  const t0 = Date.now();
  const names = p.burst.map((_, i) => `u-${String(i).padStart(5, '0')}.yaml`);
  for (let i = 0; i < p.burst.length; i += 100) {
    await Promise.all(
      p.burst
        .slice(i, i + 100)
        .map((ip, k) => writeAtomic(node.src, names[i + k]!, serviceYaml(`u-${i + k}`, ip))),
    );
  }
  const writtenMs = Date.now() - t0;
  let last = 0;
  const addMs = await timeUntil(
    async () => {
      last = await node.routes();
      return last === target;
    },
    { timeoutMs: bound, intervalMs: 100, since: t0 },
  );
  await node.quiet(addMs === null ? 5000 : QUIET_TIMEOUT_MS);
  const s1 = await node.status();
  res.burst = { addMs, addApplies: totalApplies(s1) - totalApplies(s0), deleteMs: null };
  log(
    `  burst add: ${addMs === null ? `not done within ${bound / 1000} s (${last - p.n} of ${p.burst.length} routes at BIRD)` : `${addMs} ms`}` +
      ` (files written in ${writtenMs} ms), ${res.burst.addApplies} applies, last ${JSON.stringify(s1?.lastTimings)}`,
  );
  if (addMs === null) {
    res.burst.note = `burst add not done within ${bound / 1000} s: ${last - p.n} of ${p.burst.length} routes at BIRD`;
    return;
  }
  const t1 = Date.now();
  for (let i = 0; i < names.length; i += 100)
    await Promise.all(names.slice(i, i + 100).map((f) => removeFile(node.src, f)));
  const deleteMs = await timeUntil(
    async () => {
      last = await node.routes();
      return last === p.n;
    },
    { timeoutMs: bound, intervalMs: 100, since: t1 },
  );
  await node.quiet(deleteMs === null ? 5000 : QUIET_TIMEOUT_MS);
  const s2 = await node.status();
  res.burst.deleteMs = deleteMs;
  res.burst.deleteApplies = totalApplies(s2) - totalApplies(s1);
  log(
    `  burst delete: ${deleteMs === null ? `not done within ${bound / 1000} s` : `${deleteMs} ms`}, ${res.burst.deleteApplies} applies`,
  );
}

async function medianOf(times: number, f: () => unknown): Promise<number> {
  const ts: number[] = [];
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    await f();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

/** Times every step of an apply on its own against the loaded FRR (nothing is changed). */
async function probeStages(pathspace: string, confPath: string, v: Variant): Promise<StageProbe> {
  const exec = new VtyshExecutor({ pathspace });
  const text = await readFile(confPath, 'utf8');
  const tree = parseConfig(text);
  // What one more Service looks like: the rendered config with its entry and network line.
  const fam = v.ip.includes(':') ? 'ipv6' : 'ip';
  const lists = prefixListEntries(tree).filter(
    (l) => l.startsWith(`${fam} prefix-list `) && / permit /.test(l),
  );
  const list = /^\S+ prefix-list (\S+) /.exec(lists[0] ?? '')?.[1] ?? 'none';
  const more = parseConfig(
    `${text}${fam} prefix-list ${list} seq 999999 permit ${pfx(v.ip)}\n` +
      `router bgp 64510\n  address-family ${fam === 'ip' ? 'ipv4' : 'ipv6'} unicast\n    network ${pfx(v.ip)}\n`,
  );
  let runningText = '';
  const showRunningMs = await medianOf(3, async () => (runningText = await exec.runningConfig()));
  const running = parseConfig(runningText);
  const frrLists = prefixListEntries(running);
  const diff = diffConfigs(tree, more, { running: frrLists });
  const script = renderVtyshScript(diff.changes);
  const cmds = entryCheckCommands(diff.entryChecks) ?? [];
  return {
    dryRunFullMs: await medianOf(3, () => exec.dryRun(text)),
    dryRunScriptMs: await medianOf(3, () => exec.dryRun(script)),
    showRunningMs,
    parseRunningMs: await medianOf(3, () => parseConfig(runningText)),
    showEntryMs: await medianOf(3, () => exec.show(cmds)),
    parseConfigMs: await medianOf(3, () => parseConfig(text)),
    diffMs: await medianOf(3, () => diffConfigs(tree, more, { running: frrLists })),
    verifyFullMs: await medianOf(3, () => verifyFull(tree, running)),
    configLines: text.split('\n').length,
  };
}

async function runSize(n: number): Promise<SizeResult> {
  const p = plan(n);
  const vs = variants(p);
  const res: SizeResult = {
    n,
    n4: p.n4,
    n6: p.n6,
    loadMs: null,
    changes: [],
    variants: vs,
    notes: [],
    loadavg: loadavg(),
  };
  log(
    `\n== N = ${n} (${p.n4} IPv4 + ${p.n6} IPv6), load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  const work = await mkdtemp(join(tmpdir(), `ironlb-bench-frr-${n}-`));
  const src = join(work, 'objects');
  const frrDir = join(work, 'frr');
  let topo: Topology | undefined;
  let frr: FrrInstance | undefined;
  let bird: BirdInstance | undefined;
  let node: Node | undefined;
  const ctl: { c?: BirdControl } = {};
  try {
    topo = await Topology.create({ hosts: [ROUTER, NODE] });
    bird = await startBird({ ns: topo.host('rt').ns, config: BIRD_CONF });
    const daemons: FrrDaemon[] = [
      'zebra',
      'bgpd',
      'staticd',
      ...(env.IRONLB_BENCH_BFDD === '1' ? (['bfdd'] as FrrDaemon[]) : []),
    ];
    frr = await startFrr({
      ns: topo.host('n1').ns,
      config: 'frr defaults traditional\nlog stdout informational\n',
      hostname: HOSTNAME,
      daemons,
    });
    ctl.c = new BirdControl(bird.socketPath);
    node = new Node(topo, frr, bird, ctl.c, src, frrDir, work);
    await writeAtomic(src, '00-config.yaml', CONFIG_YAML);
    await writeServices(src, 'base', p.base, 1000);

    // 1. Load.
    const t0 = Date.now();
    node.startSpeaker();
    node.startReloader('incremental');
    let last = 0;
    let lastLog = Date.now();
    res.loadMs = await timeUntil(
      async () => {
        last = await node!.routes().catch(() => last);
        if (Date.now() - lastLog > 60_000) {
          lastLog = Date.now();
          const s = await node!.status();
          log(
            `  load: ${last} of ${n} routes at BIRD after ${((Date.now() - t0) / 1000).toFixed(0)} s (reloader: ${s?.applying ? 'applying' : 'idle'}, ${s?.lastError ?? 'no error'})`,
          );
        }
        return last === n;
      },
      { timeoutMs: loadTimeoutS(n) * 1000, intervalMs: 250, since: t0 },
    );
    const ls = await node.status();
    log(
      `  load: ${res.loadMs === null ? `NOT done within ${loadTimeoutS(n)} s (${last} of ${n} routes at BIRD)` : `${res.loadMs} ms`} first apply ${JSON.stringify(ls?.lastTimings)}`,
    );
    if (res.loadMs === null) {
      res.loadNote = `load of ${n} Services not done within ${loadTimeoutS(n)} s: ${last} of ${n} routes at BIRD, reloader ${ls?.applying ? 'still applying' : 'idle'}${ls?.lastError ? `, lastError: ${ls.lastError}` : ''}`;
      res.notes.push(res.loadNote);
      return res;
    }

    // Each stage on its own (the pipeline is idle).
    await node.quiet();
    // Optional: a stage that runs into its bound (FRR 8.4 prints a 10 000-Service config for
    // minutes) is noted; the end-to-end measurements below still run.
    if (env.IRONLB_BENCH_SKIP_STAGES === '1') {
      res.notes.push(`N=${n}: stages not probed (IRONLB_BENCH_SKIP_STAGES=1)`);
    } else {
      try {
        res.stages = await probeStages(frr.name, join(frrDir, 'frr.conf'), vs[1] ?? vs[0]!);
        log(`  stages: ${JSON.stringify(res.stages)}`);
      } catch (e) {
        const why = e instanceof Error ? e.message.split('\n')[0]! : String(e);
        res.notes.push(`N=${n}: stages not measured: ${why}`);
        log(`  stages not measured: ${why}`);
      }
    }

    // 2. Single changes, incremental.
    await measureSingles(node, vs, 'incremental', REPS, changeTimeoutS(n) * 1000, res);

    // 3. Burst.
    if (!SKIP_BURST) await burst(node, p, res);

    // 4. Forced full reloads.
    if (!SKIP_FULL) {
      await node.reloader!.stop(30_000);
      node.startReloader('full');
      const first = await timeUntil(
        async () => (await node!.quiet(1000)) && (await node!.status())?.mode === 'full',
        {
          timeoutMs: fullChangeTimeoutS(n) * 1000,
          intervalMs: 200,
        },
      );
      if (first === null)
        res.notes.push(
          `full mode: the reloader's first frr-reload did not finish within ${fullChangeTimeoutS(n)} s`,
        );
      else {
        log(
          `  full mode: first frr-reload (no change) ${first} ms ${JSON.stringify((await node.status())?.lastTimings)}`,
        );
        // Appending (cheap for frr-reload.py too) first: a change that hits the bound ends this part.
        const order = [...vs].sort((a, b) => b.rank / (b.listSize || 1) - a.rank / (a.listSize || 1));
        await measureSingles(node, order, 'full', FULL_REPS, fullChangeTimeoutS(n) * 1000, res);
      }
    }
    return res;
  } catch (e) {
    res.notes.push(`N=${n} aborted: ${e instanceof Error ? e.message : String(e)}`);
    log(`  N=${n} aborted: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    return res;
  } finally {
    ctl.c?.close();
    if (node?.reloader?.running) await node.reloader.kill().catch(() => undefined);
    await node?.stopPipeline().catch(() => undefined);
    await frr?.stop().catch((e: unknown) => log(`  FRR stop: ${String(e)}`));
    await bird?.stop().catch((e: unknown) => log(`  BIRD stop: ${String(e)}`));
    await topo?.teardown().catch((e: unknown) => log(`  teardown: ${String(e)}`));
    await rm(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

function log(s: string): void {
  process.stdout.write(`${s}\n`);
}

const median = (xs: number[]) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (x: number | null | undefined, d = 0) =>
  x === null || x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d);

interface Row {
  n: number;
  variant: string;
  mode: string;
  op: string;
  count: number;
  failed: number;
  median: number;
  max: number;
  speaker: number;
  reloader: number;
  stages: string;
}

function rows(results: SizeResult[]): Row[] {
  const out: Row[] = [];
  for (const r of results) {
    const keys = [...new Set(r.changes.map((c) => `${c.variant}|${c.mode}|${c.op}`))];
    for (const k of keys) {
      const [variant, mode, op] = k.split('|') as [string, string, string];
      const cs = r.changes.filter((c) => c.variant === variant && c.mode === mode && c.op === op);
      const ok = cs.filter((c) => c.ms !== null).map((c) => c.ms!);
      const stageNames = ['parseMs', 'diffMs', 'dryRunMs', 'applyMs', 'verifyMs', 'reloadTestMs', 'reloadMs'];
      const stages = stageNames
        .map(
          (s) =>
            [
              s,
              median(cs.map((c) => c.timings?.[s]).filter((x): x is number => typeof x === 'number')),
            ] as const,
        )
        .filter(([, v]) => !Number.isNaN(v))
        .map(([s, v]) => `${s.replace(/Ms$/, '')} ${v.toFixed(0)}`)
        .join(', ');
      out.push({
        n: r.n,
        variant,
        mode,
        op,
        count: cs.length,
        failed: cs.length - ok.length,
        median: median(ok),
        max: ok.length ? Math.max(...ok) : NaN,
        speaker: median(cs.map((c) => c.speakerMs).filter((x): x is number => typeof x === 'number')),
        reloader: median(cs.map((c) => c.timings?.totalMs).filter((x): x is number => typeof x === 'number')),
        stages,
      });
    }
  }
  return out;
}

function report(results: SizeResult[]): void {
  const rs = rows(results);
  const pad = (x: string, w: number) => x.padEnd(w);
  log('\n== Single Service change: file written/deleted -> route present/withdrawn at BIRD (ms)');
  log(
    `${pad('N', 7)}${pad('change', 30)}${pad('mode', 13)}${pad('op', 8)}${pad('runs', 6)}${pad('median', 9)}${pad('max', 9)}${pad('speaker', 9)}${pad('reloader', 10)}reloader stages (median ms)`,
  );
  for (const r of rs) {
    log(
      `${pad(String(r.n), 7)}${pad(r.variant, 30)}${pad(r.mode, 13)}${pad(r.op, 8)}${pad(`${r.count - r.failed}/${r.count}`, 6)}${pad(fmt(r.median), 9)}${pad(fmt(r.max), 9)}${pad(fmt(r.speaker), 9)}${pad(fmt(r.reloader), 10)}${r.stages}`,
    );
  }
  log('\n== Ratios (medians)');
  for (const r of rs.filter((x) => x.mode === 'full')) {
    const inc = rs.find(
      (x) => x.n === r.n && x.variant === r.variant && x.op === r.op && x.mode === 'incremental',
    );
    if (inc)
      log(`N=${r.n} ${r.variant} ${r.op}: frr-reload / incremental = ${fmt(r.median / inc.median, 1)}x`);
  }
  const small = Math.min(...results.map((r) => r.n));
  for (const r of rs.filter((x) => x.n !== small)) {
    const s = rs.find(
      (x) =>
        x.n === small &&
        x.mode === r.mode &&
        x.op === r.op &&
        x.variant.split(' ')[0] === r.variant.split(' ')[0],
    );
    if (s)
      log(
        `${r.mode} ${r.variant} ${r.op}: N=${r.n} / N=${small} (${s.variant}) = ${fmt(r.median / s.median, 1)}x`,
      );
  }
  log(
    '\n== Each stage on its own (median of 3, ms; old path: dry-run full + show running-config; new: dry-run script + targeted show, full check lazily)',
  );
  log(
    `${pad('N', 7)}${pad('lines', 8)}${pad('parse', 8)}${pad('diff', 8)}${pad('dry full', 10)}${pad('dry script', 12)}${pad('show run', 10)}${pad('parse run', 11)}${pad('show seq', 10)}verifyFull`,
  );
  for (const r of results) {
    const s = r.stages;
    if (!s) continue;
    log(
      `${pad(String(r.n), 7)}${pad(String(s.configLines), 8)}${pad(fmt(s.parseConfigMs), 8)}${pad(fmt(s.diffMs), 8)}${pad(fmt(s.dryRunFullMs), 10)}${pad(fmt(s.dryRunScriptMs), 12)}${pad(fmt(s.showRunningMs), 10)}${pad(fmt(s.parseRunningMs), 11)}${pad(fmt(s.showEntryMs), 10)}${fmt(s.verifyFullMs)}`,
    );
  }
  log('\n== Load and burst');
  for (const r of results) {
    log(`N=${r.n}: load ${r.loadMs === null ? 'not done' : `${fmt(r.loadMs / 1000, 1)} s`}`);
    for (const v of r.variants)
      log(
        `   ${v.name}: ${pfx(v.ip)} sorts at position ${v.rank + 1} of ${v.listSize + 1} (the render renumbers ${v.listSize - v.rank} entries)`,
      );
    if (r.burst) {
      log(
        `   burst of ${BURST}: all at BIRD after ${r.burst.addMs === null ? 'not done' : `${fmt(r.burst.addMs / 1000, 2)} s`} with ${r.burst.addApplies ?? '-'} applies; ` +
          `deleting them: ${r.burst.deleteMs === null ? 'not done' : `${fmt(r.burst.deleteMs / 1000, 2)} s`} with ${r.burst.deleteApplies ?? '-'} applies`,
      );
    }
    log(`   load average at start: ${r.loadavg.map((x) => x.toFixed(2)).join(' ')}`);
  }
  const notes = results.flatMap((r) => r.notes);
  if (notes.length) {
    log('\n== Not measured / bounds hit');
    for (const n of notes) log(`- ${n}`);
  }
}

async function main(): Promise<number> {
  const why = await labUnavailableReason();
  if (why) {
    log(`bench:frr needs the lab: ${why}`);
    return 1;
  }
  log(
    `bench:frr sizes ${SIZES.join(', ')}; ${REPS} runs per change (${FULL_REPS} with frr-reload); burst ${BURST}`,
  );
  const results: SizeResult[] = [];
  for (const n of SIZES) {
    results.push(await runSize(n));
    // Figures so far, in case a later (long) size does not finish.
    if (env.IRONLB_BENCH_JSON) await writeFile(env.IRONLB_BENCH_JSON, JSON.stringify(results, null, 2));
  }
  report(results);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`bench:frr failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
