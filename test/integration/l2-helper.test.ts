/**
 * The native L2 helper (native/ironlb-l2) and its driver (src/l2/helper.ts) against real Linux
 * clients in network namespaces: a client and two speaker nodes on a bridge (l2-lab sections 2/3),
 * Habets arping 2.23 and ndisc6 1.0.5 as the clients' tools, `ip neigh` for the client's view.
 *
 * Needs root (skipped otherwise, never under CI=true) and the packages of scripts/install-lab-deps.sh.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  defaultHelperBinary,
  L2Helper,
  type ForeignEvent,
  type HelperLogger,
  type ReadyEvent,
} from '../../src/l2/helper.js';
import { exec, execOk, labUnavailableReason, listNetns, run, waitFor } from '../lab/index.js';
import {
  arping,
  CLIENT_MAC,
  createL2Lab,
  ndisc6,
  neighEntry,
  NODE1_B_MAC,
  NODE1_MAC,
  NODE2_MAC,
  parseArpingRaw,
  pingOnce,
  vipOnLo,
  type L2Host,
  type L2Lab,
} from '../lab/l2.js';

const unavailable = await labUnavailableReason();
const isCI = process.env.CI === 'true';
if (unavailable && !isCI) {
  console.warn(`l2-helper: SKIPPED: ${unavailable} (run as root; CI=true never skips)`);
}
const describeLab = unavailable && !isCI ? describe.skip : describe;

const VIP4 = '192.0.2.100';
const VIP6 = '2001:db8::100';

interface LogLine {
  level: string;
  msg: string;
  fields?: Record<string, unknown>;
}

function recordingLogger(lines: LogLine[]): HelperLogger {
  const rec = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
    lines.push({ level, msg, ...(fields ? { fields } : {}) });
  };
  return { info: rec('info'), warn: rec('warn'), error: rec('error') };
}

const sorted = (a: string[]) => [...a].sort();

/** Resolves like p, or rejects after ms (the timer is cleared either way). */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

describeLab('native L2 helper in network namespaces', () => {
  let lab: L2Lab;
  let h1: L2Helper;
  let h2: L2Helper;
  const logs: LogLine[] = [];
  const helpers: L2Helper[] = [];

  const newHelper = async (host: L2Host, extra: Partial<ConstructorParameters<typeof L2Helper>[0]> = {}) => {
    const h = new L2Helper({
      logger: recordingLogger(logs),
      launcher: ['ip', 'netns', 'exec', host.ns],
      restartInitialMs: 100,
      ...extra,
    });
    helpers.push(h);
    await h.start();
    return h;
  };

  /** node1 owns both VIPs on its bridge link (VIP on lo), node2 owns nothing. */
  const node1Owns = async () => {
    await vipOnLo(lab.node2, VIP4, false);
    await vipOnLo(lab.node2, VIP6, false);
    await vipOnLo(lab.node1, VIP4, true);
    await vipOnLo(lab.node1, VIP6, true);
    await h2.setOwned([], {});
    await h1.setOwned([lab.node1.ifname], { [lab.node1.ifname]: [VIP4, VIP6] });
  };

  const ipStats = async (h: L2Helper, ip: string, iface: string) => {
    const s = await h.stats();
    const e = s.ips.find((x) => x.ip === ip && x.iface === iface);
    if (!e) throw new Error(`no stats for ${ip} on ${iface}: ${JSON.stringify(s)}`);
    return e;
  };

  beforeAll(async () => {
    await run(['make', '-s', '-C', 'native'], { check: true, timeoutMs: 120_000 });
    lab = await createL2Lab({ secondLink: true });
    h1 = await newHelper(lab.node1);
    h2 = await newHelper(lab.node2);
  }, 180_000);

  afterAll(async () => {
    for (const h of helpers) await h.stop().catch(() => undefined);
    const prefix = lab?.topo.prefix;
    await lab?.teardown();
    if (prefix) expect((await listNetns()).filter((n) => n.startsWith(prefix))).toEqual([]);
  }, 60_000);

  test('answers ARP and NDP exactly once with the owner MAC: broadcast, RFC 5227 probe, unicast', async () => {
    await node1Owns();
    const c = lab.client;
    const before4 = await ipStats(h1, VIP4, lab.node1.ifname);
    const before6 = await ipStats(h1, VIP6, lab.node1.ifname);

    expect((await arping(c.ns, c.ifname, VIP4, { count: 2 })).macs).toEqual([NODE1_MAC, NODE1_MAC]);
    const probe = await arping(c.ns, c.ifname, VIP4, { probe: true });
    expect(probe.macs).toEqual([NODE1_MAC]);
    const unicast = await arping(c.ns, c.ifname, VIP4, { targetMac: NODE1_MAC });
    expect(unicast.macs).toEqual([NODE1_MAC]);
    const nd = await ndisc6(c.ns, c.ifname, VIP6);
    expect(nd.macs).toEqual([NODE1_MAC]);
    expect(nd.result.code).toBe(0);

    // Not owned: no answer from anyone (the node's kernel keeps quiet with arp_ignore=1).
    expect((await arping(c.ns, c.ifname, '192.0.2.101')).macs).toEqual([]);
    expect((await ndisc6(c.ns, c.ifname, '2001:db8::101')).macs).toEqual([]);

    const after4 = await ipStats(h1, VIP4, lab.node1.ifname);
    const after6 = await ipStats(h1, VIP6, lab.node1.ifname);
    expect(after4.requests - before4.requests).toBe(4);
    expect(after4.responses - before4.responses).toBe(4);
    expect(after6.requests - before6.requests).toBe(1);
    expect(after6.responses - before6.responses).toBe(1);
    const s = await h1.stats();
    expect(
      s.sockets.filter((x) => x.iface === lab.node1.ifname).map((x) => [x.proto, x.open, x.drops]),
    ).toEqual([
      ['arp', true, 0],
      ['ipv6', true, 0],
    ]);
  }, 60_000);

  test('answer workers: one per CPU; requests sent from each CPU are answered exactly once; --workers 0 too', async () => {
    const cpus = availableParallelism();
    await node1Owns();
    const c = lab.client;
    // The client's veth hands a frame to the receive path on the CPU that sent it, so pinning
    // arping to CPU k makes the request arrive on worker k's socket of the fanout group.
    const pinned = async (cpu: number, count: number) => {
      const r = await exec(c.ns, [
        'taskset',
        '-c',
        String(cpu),
        'arping',
        '-r',
        '-c',
        String(count),
        '-w',
        String(count + 1),
        '-i',
        c.ifname,
        VIP4,
      ]);
      return parseArpingRaw(r.stdout);
    };
    const check = async (h: L2Helper, mac: string, iface: string) => {
      const before = await ipStats(h, VIP4, iface);
      for (let cpu = 0; cpu < cpus; cpu++) expect(await pinned(cpu, 3)).toEqual([mac, mac, mac]);
      const after = await ipStats(h, VIP4, iface);
      expect(after.requests - before.requests).toBe(3 * cpus);
      expect(after.responses - before.responses).toBe(3 * cpus);
    };
    let ready: ReadyEvent | undefined;
    h1.on('ready', (e) => (ready = e));
    await check(h1, NODE1_MAC, lab.node1.ifname);
    // The default: one worker per CPU (the main thread answers on a 1-CPU machine).
    const h3Ready: ReadyEvent[] = [];
    const single = new L2Helper({
      logger: recordingLogger(logs),
      launcher: ['ip', 'netns', 'exec', lab.node2.ns],
      args: ['--workers', '0'],
    });
    single.on('ready', (e) => h3Ready.push(e));
    helpers.push(single);
    const multi = new L2Helper({
      logger: recordingLogger(logs),
      launcher: ['ip', 'netns', 'exec', lab.node2.ns],
    });
    const multiReady: ReadyEvent[] = [];
    multi.on('ready', (e) => multiReady.push(e));
    helpers.push(multi);
    await multi.start();
    expect(multiReady[0]?.workers).toBe(cpus > 1 ? cpus : 0);
    await multi.stop();
    // Single-threaded on node2 instead of node1: the same answers.
    await h1.setOwned([], {});
    await vipOnLo(lab.node1, VIP4, false);
    await vipOnLo(lab.node2, VIP4, true);
    await single.start();
    expect(h3Ready[0]?.workers).toBe(0);
    await single.setOwned([lab.node2.ifname], { [lab.node2.ifname]: [VIP4] });
    await check(single, NODE2_MAC, lab.node2.ifname);
    await single.stop();
    await vipOnLo(lab.node2, VIP4, false);
    expect(ready).toBeUndefined(); // h1 was not restarted meanwhile
  }, 90_000);

  test('answers unicast NUD probes (v4 and v6) and link-local targets', async () => {
    await node1Owns();
    const c = lab.client;
    await h1.setOwned([lab.node1.ifname], { [lab.node1.ifname]: [VIP4, VIP6, 'fe80::100'] });
    expect((await ndisc6(c.ns, c.ifname, 'fe80::100')).macs).toEqual([NODE1_MAC]);

    for (const ip of [VIP4, VIP6]) {
      const before = await ipStats(h1, ip, lab.node1.ifname);
      // A STALE entry + traffic -> DELAY (1 s here) -> PROBE: the kernel sends a unicast solicitation
      // to the cached MAC. Only an answer to that makes the entry REACHABLE again.
      await execOk(c.ns, [
        'ip',
        'neigh',
        'replace',
        ip,
        'lladdr',
        NODE1_MAC,
        'dev',
        c.ifname,
        'nud',
        'stale',
      ]);
      expect(await pingOnce(c.ns, ip)).toBe(true);
      await waitFor(async () => (await neighEntry(c.ns, ip, c.ifname))?.state.includes('REACHABLE'), {
        timeoutMs: 6_000,
        intervalMs: 100,
        what: `${ip} REACHABLE after a unicast probe`,
      });
      const after = await ipStats(h1, ip, lab.node1.ifname);
      expect(after.responses).toBeGreaterThan(before.responses);
      expect((await neighEntry(c.ns, ip, c.ifname))?.lladdr).toBe(NODE1_MAC);
    }
  }, 60_000);

  test('answers only on listed interfaces, each with its own MAC', async () => {
    await node1Owns();
    const c = lab.client;
    const second = lab.second!;
    // Only the bridge link is listed: the second link stays silent.
    expect((await arping(c.ns, second.clientIf, VIP4)).macs).toEqual([]);
    expect((await ndisc6(c.ns, second.clientIf, VIP6)).macs).toEqual([]);

    // Listed without IPs: still silent.
    await h1.setOwned([lab.node1.ifname, second.node1If], { [lab.node1.ifname]: [VIP4, VIP6] });
    expect((await arping(c.ns, second.clientIf, VIP4)).macs).toEqual([]);

    // Both listed with the VIPs: each link answers with its own MAC.
    await h1.setOwned([lab.node1.ifname, second.node1If], {
      [lab.node1.ifname]: [VIP4, VIP6],
      [second.node1If]: [VIP4, VIP6],
    });
    expect((await arping(c.ns, second.clientIf, VIP4)).macs).toEqual([NODE1_B_MAC]);
    expect((await ndisc6(c.ns, second.clientIf, VIP6)).macs).toEqual([NODE1_B_MAC]);
    expect((await arping(c.ns, c.ifname, VIP4)).macs).toEqual([NODE1_MAC]);
  }, 60_000);

  test('does not answer a VLAN-tagged request', async () => {
    await node1Owns();
    const c = lab.client;
    const before = await ipStats(h1, VIP4, lab.node1.ifname);
    const tagged = await arping(c.ns, c.ifname, VIP4, { vlan: 10 });
    expect(tagged.macs).toEqual([]);
    const after = await ipStats(h1, VIP4, lab.node1.ifname);
    expect(after.requests).toBe(before.requests);
    expect(after.responses).toBe(before.responses);
    // The same request untagged is answered (the test above is not vacuous).
    expect((await arping(c.ns, c.ifname, VIP4)).macs).toEqual([NODE1_MAC]);
  }, 30_000);

  test('takeover by node2 moves the client entries (v4 and v6) at once', async () => {
    await node1Owns();
    const c = lab.client;
    for (const ip of [VIP4, VIP6]) {
      expect(await pingOnce(c.ns, ip)).toBe(true);
      expect((await neighEntry(c.ns, ip, c.ifname))?.lladdr).toBe(NODE1_MAC);
    }
    // Release on node1 (stop answering first, then remove the VIP), claim on node2 (VIP first).
    await h1.setOwned([], {});
    await vipOnLo(lab.node1, VIP4, false);
    await vipOnLo(lab.node1, VIP6, false);
    await vipOnLo(lab.node2, VIP4, true);
    await vipOnLo(lab.node2, VIP6, true);
    await h2.setOwned([lab.node2.ifname], { [lab.node2.ifname]: [VIP4, VIP6] });
    const a4 = await h2.announce(VIP4, { count: 1 });
    const a6 = await h2.announce(VIP6, { count: 1 });
    expect(a4).toMatchObject({ ip: VIP4, round: 1, count: 1, ifaces: [lab.node2.ifname], frames: 2 });
    expect(a6).toMatchObject({ ip: VIP6, round: 1, ifaces: [lab.node2.ifname], frames: 1 });
    for (const ip of [VIP4, VIP6]) {
      await waitFor(async () => (await neighEntry(c.ns, ip, c.ifname))?.lladdr === NODE2_MAC, {
        timeoutMs: 1_000,
        intervalMs: 20,
        what: `client entry for ${ip} -> node2`,
      });
      expect(await pingOnce(c.ns, ip)).toBe(true);
    }
    const st = await ipStats(h2, VIP4, lab.node2.ifname);
    expect(st.gratuitous).toBeGreaterThanOrEqual(2);
  }, 60_000);

  test('repeats announcements count times at the interval', async () => {
    await node1Owns();
    const rounds: number[] = [];
    const off = h1.on('announced', (e) => {
      if (e.ip === VIP6) rounds.push(e.tsUs);
    });
    try {
      await h1.announce(VIP6, { count: 3, intervalMs: 150 });
      await waitFor(() => rounds.length === 3, { timeoutMs: 3_000, intervalMs: 20, what: '3 rounds' });
      const gaps = rounds.slice(1).map((t, i) => (t - rounds[i]!) / 1000);
      for (const g of gaps) {
        expect(g).toBeGreaterThanOrEqual(140);
        expect(g).toBeLessThan(400);
      }
    } finally {
      off();
    }
  }, 30_000);

  test('reports foreign responders: a second helper, and a client kernel using the IP', async () => {
    await node1Owns();
    const c = lab.client;
    const seen: ForeignEvent[] = [];
    const off = h1.on('foreign', (e) => seen.push(e));
    try {
      // node2's helper claims the same IPs and announces them.
      await h2.setOwned([lab.node2.ifname], { [lab.node2.ifname]: [VIP4, VIP6] });
      await h2.announce(VIP4);
      await h2.announce(VIP6);
      await waitFor(() => seen.some((e) => e.ip === VIP4) && seen.some((e) => e.ip === VIP6), {
        timeoutMs: 2_000,
        intervalMs: 20,
        what: 'foreign events for both VIPs',
      });
      for (const e of seen) expect(e).toMatchObject({ mac: NODE2_MAC, iface: lab.node1.ifname });
      expect(seen.filter((e) => e.ip === VIP6).map((e) => e.kind)).toContain('na');
      expect(seen.filter((e) => e.ip === VIP4).map((e) => e.kind)).toContain('arp-announce');
      // With two owners the client sees two answers: the "exactly one" checks above are not vacuous.
      expect(sorted((await arping(c.ns, c.ifname, VIP4)).macs)).toEqual([NODE1_MAC, NODE2_MAC]);
      expect(sorted((await ndisc6(c.ns, c.ifname, VIP6)).macs)).toEqual([NODE1_MAC, NODE2_MAC]);
      // node1 also saw node2's reply? (No: unicast to the client.) Only node2's gratuitous frames count.
      await h2.setOwned([], {});

      // The client's kernel with the VIPs configured uses them as its source towards node2.
      seen.length = 0;
      await execOk(c.ns, ['ip', 'addr', 'add', `${VIP4}/32`, 'dev', c.ifname]);
      await execOk(c.ns, ['ip', 'addr', 'add', `${VIP6}/128`, 'dev', c.ifname, 'nodad']);
      try {
        await exec(c.ns, ['ip', 'neigh', 'flush', 'dev', c.ifname]);
        await pingOnce(c.ns, lab.node2.v4!, { source: VIP4 });
        await pingOnce(c.ns, lab.node2.v6!, { source: VIP6 });
        await waitFor(() => seen.some((e) => e.ip === VIP4) && seen.some((e) => e.ip === VIP6), {
          timeoutMs: 3_000,
          intervalMs: 20,
          what: 'foreign events caused by the client kernel',
        });
        expect(seen.find((e) => e.ip === VIP4)).toMatchObject({ mac: CLIENT_MAC, kind: 'arp-request' });
        expect(seen.find((e) => e.ip === VIP6)).toMatchObject({ mac: CLIENT_MAC, kind: 'ns' });
      } finally {
        await exec(c.ns, ['ip', 'addr', 'del', `${VIP4}/32`, 'dev', c.ifname]);
        await exec(c.ns, ['ip', 'addr', 'del', `${VIP6}/128`, 'dev', c.ifname]);
        await exec(c.ns, ['ip', 'neigh', 'flush', 'dev', c.ifname]);
        await exec(lab.node2.ns, ['ip', 'neigh', 'flush', 'dev', lab.node2.ifname]);
        await exec(lab.node1.ns, ['ip', 'neigh', 'flush', 'dev', lab.node1.ifname]);
      }
    } finally {
      off();
    }
  }, 60_000);

  test('probe finds a host that already uses the IP, and nothing for a free one', async () => {
    await node1Owns();
    const c = lab.client;
    await execOk(c.ns, ['ip', 'addr', 'add', '192.0.2.150/32', 'dev', c.ifname]);
    await execOk(c.ns, ['ip', 'addr', 'add', '2001:db8::150/128', 'dev', c.ifname, 'nodad']);
    try {
      const [p4, p6, free4, free6] = await Promise.all([
        h1.probe('192.0.2.150', lab.node1.ifname, 500),
        h1.probe('2001:db8::150', lab.node1.ifname, 500),
        h1.probe('192.0.2.151', lab.node1.ifname, 300, 2),
        h1.probe('2001:db8::151', lab.node1.ifname, 300),
      ]);
      expect(p4).toMatchObject({ conflict: true, answers: [{ mac: CLIENT_MAC, kind: 'arp-reply' }] });
      expect(p6).toMatchObject({ conflict: true, answers: [{ mac: CLIENT_MAC, kind: 'na' }] });
      expect(free4).toMatchObject({ conflict: false, answers: [], sent: 2 });
      expect(free6).toMatchObject({ conflict: false, answers: [], sent: 1 });
      await expect(h1.probe('192.0.2.150', 'nosuchif0', 100)).rejects.toThrow(/nosuchif0/);
    } finally {
      await exec(c.ns, ['ip', 'addr', 'del', '192.0.2.150/32', 'dev', c.ifname]);
      await exec(c.ns, ['ip', 'addr', 'del', '2001:db8::150/128', 'dev', c.ifname]);
    }
  }, 30_000);

  test('bad commands and refused sets give errors, never a crash; the previous set stays', async () => {
    await node1Owns();
    const pid = h1.pid;
    const errors: string[] = [];
    const off = h1.on('error', (e) => errors.push(e.message));
    try {
      h1.sendRaw('garbage');
      h1.sendRaw('{"cmd":"set","interfaces":["x"],"ips":{"x":["not-an-ip"]}}');
      h1.sendRaw('{"cmd":"announce","ip":"192.0.2.100","count":0}');
      await waitFor(() => errors.length >= 3, { timeoutMs: 2_000, intervalMs: 20, what: '3 error events' });
      expect(errors[0]).toMatch(/bad command/);
      expect(errors[1]).toMatch(/not-an-ip/);
      expect(errors[2]).toMatch(/count/);
      await expect(h1.setOwned(['nosuchif0'], { nosuchif0: [VIP4] })).rejects.toThrow(/nosuchif0/);
      await expect(h1.announce('192.0.2.222')).rejects.toThrow(/not owned/);
      expect(h1.pid).toBe(pid);
      expect(h1.owned.ips[lab.node1.ifname]).toEqual([VIP4, VIP6]);
      expect((await arping(lab.client.ns, lab.client.ifname, VIP4)).macs).toEqual([NODE1_MAC]);
      expect((await h1.stats()).badCommands).toBeGreaterThanOrEqual(3);
    } finally {
      off();
    }
  }, 30_000);

  test('exits when stdin closes, and uses no CPU at idle', async () => {
    const child = spawn('ip', ['netns', 'exec', lab.node1.ns, defaultHelperBinary()], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    try {
      const lines = createInterface({ input: child.stdout });
      const events: Record<string, unknown>[] = [];
      lines.on('line', (l) => events.push(JSON.parse(l) as Record<string, unknown>));
      await waitFor(() => events.some((e) => e.event === 'ready'), { timeoutMs: 3_000, intervalMs: 20 });
      const ifname = lab.node1.ifname;
      child.stdin.write(
        `${JSON.stringify({ cmd: 'set', interfaces: [ifname], ips: { [ifname]: ['192.0.2.200'] } })}\n`,
      );
      await waitFor(() => events.some((e) => e.event === 'set'), { timeoutMs: 3_000, intervalMs: 20 });

      const sched = () => {
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
        const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return {
          wakeups: Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1]),
          cpuTicks: Number(fields[11]) + Number(fields[12]),
        };
      };
      const a = sched();
      await new Promise((r) => setTimeout(r, 1_500));
      const b = sched();
      expect(b.cpuTicks - a.cpuTicks).toBe(0);
      expect(b.wakeups - a.wakeups).toBeLessThanOrEqual(1);

      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      child.stdin.end();
      expect(await withTimeout(exited, 3_000, 'helper exit after stdin EOF')).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }, 30_000);

  test('the driver restarts a killed helper and re-sends the owned set', async () => {
    await node1Owns();
    const oldPid = h1.pid!;
    const restarted = new Promise<{ pid: number; restarts: number }>((r) => {
      const off = h1.on('restarted', (e) => {
        off();
        r(e);
      });
    });
    process.kill(oldPid, 'SIGKILL');
    const ev = await withTimeout(restarted, 5_000, 'driver restart');
    expect(ev.pid).not.toBe(oldPid);
    expect(h1.pid).toBe(ev.pid);
    expect(h1.restarts).toBe(1);
    expect((await arping(lab.client.ns, lab.client.ifname, VIP4)).macs).toEqual([NODE1_MAC]);
    expect((await ndisc6(lab.client.ns, lab.client.ifname, VIP6)).macs).toEqual([NODE1_MAC]);
    expect(logs.some((l) => l.level === 'error' && /died; restarting/.test(l.msg))).toBe(true);
  }, 30_000);

  test('runs as nobody with only CAP_NET_RAW; without it, it fails fatally', async () => {
    await node1Owns();
    await h1.setOwned([], {});
    const priv = (caps: string) => [
      'setpriv',
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      `--inh-caps=${caps}`,
      `--ambient-caps=${caps}`,
      `--bounding-set=${caps}`,
    ];
    const h = await newHelper(lab.node1, {
      launcher: ['ip', 'netns', 'exec', lab.node1.ns, ...priv('-all,+net_raw')],
    });
    try {
      const uid = /Uid:\s+(\d+)/.exec(readFileSync(`/proc/${h.pid}/status`, 'utf8'))?.[1];
      expect(uid).toBe('65534');
      await h.setOwned([lab.node1.ifname], { [lab.node1.ifname]: [VIP4, VIP6] });
      expect((await arping(lab.client.ns, lab.client.ifname, VIP4)).macs).toEqual([NODE1_MAC]);
      expect((await ndisc6(lab.client.ns, lab.client.ifname, VIP6)).macs).toEqual([NODE1_MAC]);
      await h.announce(VIP6);
    } finally {
      await h.stop();
    }
    const none = new L2Helper({
      logger: recordingLogger([]),
      launcher: ['ip', 'netns', 'exec', lab.node1.ns, ...priv('-all')],
    });
    await expect(none.start()).rejects.toThrow(/needs CAP_NET_RAW/);
  }, 30_000);

  test('large owned sets: 1,100 IPv6 (accept-all BPF fall-back) and 254 IPv4 addresses on one link', async () => {
    await node1Owns();
    const c = lab.client;
    const ifname = lab.node1.ifname;
    const v6 = Array.from({ length: 1100 }, (_, i) => `2001:db8::1:${i.toString(16)}`);
    const v4 = Array.from({ length: 254 }, (_, i) => `203.0.113.${i + 1}`);
    const t0 = Date.now();
    const ack = await h1.setOwned([ifname], { [ifname]: [VIP4, VIP6, ...v4, ...v6] });
    const setMs = Date.now() - t0;
    expect(ack.interfaces).toEqual([expect.objectContaining({ name: ifname, mac: NODE1_MAC, ips: 1356 })]);
    expect(setMs).toBeLessThan(2_000);
    expect((await ndisc6(c.ns, c.ifname, '2001:db8::1:3e7')).macs).toEqual([NODE1_MAC]);
    expect((await ndisc6(c.ns, c.ifname, '2001:db8::1:44b')).macs).toEqual([NODE1_MAC]);
    expect((await ndisc6(c.ns, c.ifname, '2001:db8::1:44c')).macs).toEqual([]);
    // 203.0.113.0/24 is not on the client's link: arping needs the source address given.
    expect((await arping(c.ns, c.ifname, '203.0.113.200', { source: lab.client.v4! })).macs).toEqual([
      NODE1_MAC,
    ]);
    const stats = await h1.stats();
    expect(stats.ips).toHaveLength(1356);
    // Back to the small set: the solicited-node memberships are left again.
    await node1Owns();
    const maddr = await execOk(lab.node1.ns, ['ip', '-6', 'maddr', 'show', 'dev', ifname]);
    expect(maddr).toContain('ff02::1:ff00:100');
    expect(maddr).not.toContain('ff02::1:ff01:3e7');
  }, 60_000);

  test('an interface that goes away is reported; the helper keeps serving the others', async () => {
    await node1Owns();
    const second = lab.second!;
    const ifname = lab.node1.ifname;
    await h1.setOwned([ifname, second.node1If], { [ifname]: [VIP4, VIP6], [second.node1If]: [VIP4] });
    const errors: string[] = [];
    const off = h1.on('error', (e) => errors.push(`${e.iface ?? ''}: ${e.message}`));
    try {
      await execOk(lab.node1.ns, ['ip', 'link', 'del', second.node1If]);
      await waitFor(() => errors.some((e) => e.includes(second.node1If) && /went away/.test(e)), {
        timeoutMs: 3_000,
        intervalMs: 20,
        what: 'interface-gone error',
      });
      const s = await h1.stats();
      expect(s.sockets.filter((x) => x.iface === second.node1If).map((x) => x.open)).toEqual([false, false]);
      expect((await arping(lab.client.ns, lab.client.ifname, VIP4)).macs).toEqual([NODE1_MAC]);
      // A set naming it again is refused as a whole; the previous set stays in force.
      await expect(
        h1.setOwned([ifname, second.node1If], { [ifname]: [VIP4], [second.node1If]: [VIP4] }),
      ).rejects.toThrow(/No such device/);
      expect((await ndisc6(lab.client.ns, lab.client.ifname, VIP6)).macs).toEqual([NODE1_MAC]);
    } finally {
      off();
    }
  }, 30_000);
});

/** Driver behaviour with stand-in helpers (shell scripts): runs without root. */
describe('L2Helper driver with stand-in helpers', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ironlb-l2-driver-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const script = (name: string, body: string) => {
    const p = join(dir, name);
    writeFileSync(p, `#!/bin/sh\n${body}\n`);
    chmodSync(p, 0o755);
    return p;
  };

  test('start() rejects with the fatal reason and does not restart', async () => {
    const logs: LogLine[] = [];
    const binary = script(
      'fatal.sh',
      `echo '{"event":"error","message":"socket(AF_PACKET): Operation not permitted (the helper needs CAP_NET_RAW)","fatal":true}'; exit 3`,
    );
    const h = new L2Helper({ logger: recordingLogger(logs), binary, restartInitialMs: 10 });
    const exits: unknown[] = [];
    h.on('exit', (e) => exits.push(e));
    await expect(h.start()).rejects.toThrow(/CAP_NET_RAW/);
    await new Promise((r) => setTimeout(r, 100));
    expect(h.running).toBe(false);
    expect(exits).toHaveLength(1);
    await h.stop();
  });

  test('start() rejects when the binary is missing', async () => {
    const h = new L2Helper({ logger: recordingLogger([]), binary: join(dir, 'missing') });
    await expect(h.start()).rejects.toThrow(/not found/);
  });

  test('a helper that keeps dying is restarted with doubling back-off until stop()', async () => {
    const binary = script('crash.sh', `echo '{"event":"ready","version":1,"pid":'$$'}'; exit 1`);
    const logs: LogLine[] = [];
    const h = new L2Helper({ logger: recordingLogger(logs), binary, restartInitialMs: 20, restartMaxMs: 80 });
    const delays: (number | null)[] = [];
    h.on('exit', (e) => delays.push(e.restartInMs));
    await h.start();
    await waitFor(() => delays.length >= 4, { timeoutMs: 5_000, intervalMs: 10, what: '4 exits' });
    await h.stop();
    expect(delays.slice(0, 4)).toEqual([20, 40, 80, 80]);
    const n = delays.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(delays.length).toBe(n);
    expect(logs.filter((l) => /died; restarting/.test(l.msg)).length).toBeGreaterThanOrEqual(4);
  });

  test('commands are correlated by id; an error answer rejects only its command', async () => {
    // Answers stats, rejects set, echoes ids: a tiny line-by-line stand-in.
    const binary = script(
      'echo.sh',
      [
        `echo '{"event":"ready","version":1,"pid":'$$'}'`,
        'while IFS= read -r line; do',
        '  id=$(printf %s "$line" | sed -n \'s/.*"id":\\([0-9]*\\).*/\\1/p\')',
        '  case "$line" in',
        '    *\'"cmd":"set"\'*) echo "{\\"event\\":\\"error\\",\\"id\\":$id,\\"cmd\\":\\"set\\",\\"message\\":\\"no\\"}" ;;',
        '    *\'"cmd":"stats"\'*) echo "{\\"event\\":\\"stats\\",\\"id\\":$id,\\"uptimeMs\\":1,\\"eventsDropped\\":0,\\"badCommands\\":0,\\"ips\\":[],\\"sockets\\":[]}" ;;',
        '  esac',
        'done',
      ].join('\n'),
    );
    const h = new L2Helper({ logger: recordingLogger([]), binary });
    await h.start();
    try {
      const [set, stats] = await Promise.allSettled([h.setOwned(['eth0'], { eth0: [VIP4] }), h.stats()]);
      expect(set.status).toBe('rejected');
      expect(stats).toMatchObject({ status: 'fulfilled', value: { event: 'stats', uptimeMs: 1 } });
      expect(h.owned).toEqual({ interfaces: [], ips: {} });
    } finally {
      await h.stop();
    }
  });
});
