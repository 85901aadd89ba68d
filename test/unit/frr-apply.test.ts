/**
 * FrrApplier with a fake executor (no FRR): first apply full, then incremental; fallbacks;
 * dry-run rejection; keep-last-good with back-off; coalescing of bursts; password masking; the
 * prefix-list set diff against FRR's own sequence numbers; targeted checks and the lazy
 * whole-config check. Also the sidecar reloader (directory watch -> applier -> status file) and
 * its CLI wrapper.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFrrReloader } from '../../src/cli/frr-reloader.js';
import { UsageError } from '../../src/cli/io.js';
import {
  FrrApplier,
  networksOf,
  summariseOutput,
  sweepDelayFor,
  type CheckResult,
  type ExecOutcome,
  type FrrExecutor,
} from '../../src/frr/apply.js';
import { splitForDaemons } from '../../src/frr/config-diff.js';
import {
  contextKindOf,
  formatTree,
  parseConfig,
  walkPaths,
  type ConfigNode,
  type ContextKind,
} from '../../src/frr/config-tree.js';
import { runReloader, type ReloaderStatusFile } from '../../src/frr/reloader.js';
import { createLogger, silentLogger } from '../../src/util/log.js';

type Op = 'dryRun' | 'reloadTest' | 'reload' | 'applyScript' | 'runningConfig' | 'show';
type Call = { op: Op; text: string; daemon?: string };

const PL = /^(ip|ipv6) prefix-list (\S+) seq (\d+) (permit|deny) (\S+)$/;

/**
 * A pretend FRR 8.4. Its running config is a context tree; a full reload replaces it with the
 * file (unless told to fail); a vtysh script is interpreted line by line the way FRR does it:
 * contexts are entered and left, `no X` removes X, a prefix-list entry replaces the one with the
 * same sequence number, is silently ignored when its prefix is already in the list under another
 * number, and `no … seq N …` removes number N whatever it holds. `show … prefix-list L seq N json`
 * answers as zebra and bgpd do.
 */
class FakeFrr implements FrrExecutor {
  root: ConfigNode = parseConfig('').root;
  calls: Call[] = [];
  script: 'obey' | 'fail' | 'ignore' = 'obey';
  reloadFails: (config: string) => boolean = () => false;
  reloadOutput = '';
  delayMs = 0;
  /** Delay of runningConfig only (to abort a lazy check while it runs). */
  runningDelayMs = 0;
  syntaxError: (config: string) => string | undefined = (c) =>
    c.includes('bogus') ? 'line 3: % Unknown command[4]: bogus' : undefined;

  private async pause(ms = this.delayMs): Promise<void> {
    if (ms) await new Promise((r) => setTimeout(r, ms));
  }

  ops(): Op[] {
    return this.calls.map((c) => c.op);
  }

  async dryRun(config: string): Promise<CheckResult> {
    this.calls.push({ op: 'dryRun', text: config });
    await this.pause();
    const err = this.syntaxError(config);
    if (err) return { ok: false, errors: [err] };
    return { ok: true, errors: [] };
  }

  async reloadTest(config: string): Promise<ExecOutcome> {
    this.calls.push({ op: 'reloadTest', text: config });
    await this.pause();
    return { ok: true, output: 'Lines To Add\n...', durationMs: 1 };
  }

  async reload(config: string): Promise<ExecOutcome> {
    this.calls.push({ op: 'reload', text: config });
    await this.pause();
    if (this.reloadFails(config)) {
      return { ok: false, output: this.reloadOutput || 'exited with code 1', durationMs: 1 };
    }
    this.root = parseConfig(config).root;
    return { ok: true, output: '', durationMs: 1 };
  }

  async applyScript(script: string, opts?: { daemon?: 'bgpd' }): Promise<ExecOutcome> {
    this.calls.push({ op: 'applyScript', text: script, ...(opts?.daemon ? { daemon: opts.daemon } : {}) });
    await this.pause();
    if (this.script === 'fail')
      return { ok: false, output: 'line 2: % Unknown command[4]: x', durationMs: 1 };
    if (this.script === 'obey') this.interpret(script);
    return { ok: true, output: '', durationMs: 1 };
  }

  async runningConfig(signal?: AbortSignal): Promise<string> {
    this.calls.push({ op: 'runningConfig', text: '' });
    const ms = this.runningDelayMs || this.delayMs;
    await new Promise<void>((resolve, reject) => {
      const aborted = () => reject(Object.assign(new Error('vtysh aborted'), { name: 'AbortError' }));
      if (signal?.aborted) return aborted();
      const t = setTimeout(resolve, ms);
      signal?.addEventListener('abort', () => (clearTimeout(t), aborted()), { once: true });
    });
    return `Building configuration...\n\nCurrent configuration:\n!\nfrr version 8.4.4\n${formatTree({ root: this.root, problems: [] })}end\n`;
  }

  async show(commands: readonly string[]): Promise<string> {
    this.calls.push({ op: 'show', text: commands.join('\n') });
    await this.pause();
    let out = '';
    for (const c of commands) {
      const m = /^show (ip|ipv6) prefix-list (\S+) seq (\d+) json$/.exec(c);
      if (!m) throw new Error(`fake FRR: unexpected show ${c}`);
      const list = this.entries().filter((e) => e.fam === m[1] && e.name === m[2]);
      if (!list.length) continue;
      const entries = list
        .filter((e) => e.seq === Number(m[3]))
        .map((e) => ({
          sequenceNumber: e.seq,
          type: e.action,
          prefix: e.prefix,
          hitCount: 0,
          referenceCount: 0,
        }));
      for (const d of ['ZEBRA', 'BGP'])
        out += `${JSON.stringify({ [d]: { [m[2]!]: { entries } } }, null, 2)}\n`;
    }
    return out;
  }

  /** Prefix-list entries FRR has. */
  entries(): { fam: string; name: string; seq: number; action: string; prefix: string; line: string }[] {
    return [...this.root.children.values()]
      .filter((n) => n.kind === 'line' && PL.test(n.text))
      .map((n) => {
        const m = PL.exec(n.text)!;
        return { fam: m[1]!, name: m[2]!, seq: Number(m[3]), action: m[4]!, prefix: m[5]!, line: n.text };
      });
  }

  /** What FRR runs, with prefix-list sequence numbers left out (they may differ from the render's). */
  summary(): string {
    return summary(formatTree({ root: this.root, problems: [] }));
  }

  /** Interprets a vtysh -f script. */
  interpret(script: string): void {
    const stack: ConfigNode[] = [this.root];
    for (const raw of script.split('\n')) {
      const line = raw.trim();
      if (!line) continue;
      if (/^exit/.test(line)) {
        stack.pop();
        continue;
      }
      const ctx = stack[stack.length - 1]!;
      const kind: ContextKind = ctx.kind === 'line' ? 'opaque' : ctx.kind;
      const opens = contextKindOf(kind, line);
      if (opens) {
        let n = ctx.children.get(line);
        if (!n) ctx.children.set(line, (n = { text: line, kind: opens, children: new Map(), lineNo: 0 }));
        stack.push(n);
        continue;
      }
      if (ctx === this.root && PL.test(line.replace(/^no /, ''))) {
        this.prefixList(line);
        continue;
      }
      if (line.startsWith('no ')) {
        const what = line.slice(3);
        if (ctx === this.root && /^(?:ip|ipv6) prefix-list \S+$/.test(what)) {
          for (const e of this.entries())
            if (`${e.fam} prefix-list ${e.name}` === what) this.root.children.delete(e.line);
          continue;
        }
        const nb = /^neighbor (\S+)$/.exec(what);
        if (nb) {
          const drop = (n: ConfigNode) => {
            for (const [k, c] of n.children) {
              if (k.startsWith(`neighbor ${nb[1]} `)) n.children.delete(k);
              else if (c.kind !== 'line') drop(c);
            }
          };
          drop(ctx);
          continue;
        }
        ctx.children.delete(what);
        continue;
      }
      if (!ctx.children.has(line))
        ctx.children.set(line, { text: line, kind: 'line', children: new Map(), lineNo: 0 });
    }
  }

  private prefixList(line: string): void {
    const no = line.startsWith('no ');
    const m = PL.exec(no ? line.slice(3) : line)!;
    const same = this.entries().filter((e) => e.fam === m[1] && e.name === m[2]);
    const atSeq = same.find((e) => e.seq === Number(m[3]));
    if (no) {
      if (atSeq) this.root.children.delete(atSeq.line);
      return;
    }
    if (same.some((e) => e.prefix === m[5] && e.seq !== Number(m[3]))) return; // duplicate: silently ignored
    if (atSeq) this.root.children.delete(atSeq.line);
    const text = `${m[1]} prefix-list ${m[2]} seq ${m[3]} ${m[4]} ${m[5]}`;
    this.root.children.set(text, { text, kind: 'line', children: new Map(), lineNo: 0 });
  }
}

/** A config as sorted paths, prefix-list sequence numbers left out. */
function summary(text: string): string {
  return [...walkPaths(parseConfig(text).root)]
    .map((p) => p.map((x) => x.replace(/^((?:ip|ipv6) prefix-list \S+) seq \d+ /, '$1 ')).join(' > '))
    .filter((p) => !/^(?:hostname|frr |service )/.test(p))
    .sort()
    .join('\n');
}

function conf(prefixes: string[], extra: string[] = []): string {
  const s = [...prefixes].sort();
  return [
    'log stdout informational',
    ...(s.length
      ? s.map((p, i) => `ip prefix-list n-allowed-ipv4 seq ${i + 1} permit ${p}`)
      : ['ip prefix-list n-allowed-ipv4 seq 1 deny any']),
    'route-map n-out permit 1',
    '  match ip address prefix-list n-allowed-ipv4',
    'router bgp 64510',
    '  bgp router-id 192.0.2.11',
    '  neighbor 192.0.2.1 remote-as 64500',
    ...extra,
    '  address-family ipv4 unicast',
    '    neighbor 192.0.2.1 activate',
    '    neighbor 192.0.2.1 route-map n-out out',
    ...s.map((p) => `    network ${p}`),
    '  exit-address-family',
    '',
  ].join('\n');
}

const A = conf(['198.51.100.10/32']);
const B = conf(['198.51.100.10/32', '198.51.100.11/32']);
const C = conf(['198.51.100.12/32']);

/** The lazy check and the withdrawal sweep are off unless a test turns them on. */
const applier = (fake: FakeFrr, extra: Partial<ConstructorParameters<typeof FrrApplier>[0]> = {}) => {
  const a = new FrrApplier({
    executor: fake,
    initialBackoffMs: 20,
    maxBackoffMs: 80,
    checkDelayMs: -1,
    withdrawSweepMs: -1,
    ...extra,
  });
  a.start();
  return a;
};

let live: FrrApplier[] = [];
afterEach(async () => {
  await Promise.all(live.map((a) => a.stop()));
  live = [];
});
const make = (fake: FakeFrr, extra: Partial<ConstructorParameters<typeof FrrApplier>[0]> = {}) => {
  const a = applier(fake, extra);
  live.push(a);
  return a;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('FrrApplier', () => {
  test('first apply is a full reload (--test, then --reload), later ones: vtysh -C and -f of the script, one targeted check', async () => {
    const fake = new FakeFrr();
    const a = make(fake);
    expect(a.status()).toMatchObject({ desiredGeneration: 0, appliedGeneration: 0, applying: false });
    expect(a.submit(A)).toBe(1);
    await a.whenIdle();
    // The running config is read for FRR's prefix-list numbers (none yet: the text is unchanged).
    expect(fake.ops()).toEqual(['dryRun', 'runningConfig', 'reloadTest', 'reload']);
    expect(fake.calls[0]!.text).toBe(A); // the whole config through the parser
    expect(fake.calls[3]!.text).toBe(A);
    expect(a.status()).toMatchObject({ desiredGeneration: 1, appliedGeneration: 1, mode: 'full' });
    expect(a.status().lastError).toBeUndefined();
    expect(a.status().lastAppliedAt).toEqual(expect.any(Number));

    fake.calls = [];
    a.submit(B);
    await a.whenIdle();
    expect(fake.ops()).toEqual(['dryRun', 'applyScript', 'show']);
    const script = [
      'ip prefix-list n-allowed-ipv4 seq 2 permit 198.51.100.11/32',
      'router bgp 64510',
      ' address-family ipv4 unicast',
      '  network 198.51.100.11/32',
      ' exit-address-family',
      'exit',
      '',
    ].join('\n');
    expect(fake.calls[0]!.text).toBe(script); // only the script through the parser
    expect(fake.calls[1]!.text).toBe(script);
    expect(fake.calls[2]!.text).toBe('show ip prefix-list n-allowed-ipv4 seq 2 json');
    expect(a.status()).toMatchObject({
      desiredGeneration: 2,
      appliedGeneration: 2,
      mode: 'incremental',
      lastVerify: 'entries',
    });
    expect(a.status().counts).toEqual({
      incremental: 1,
      full: 1,
      unchanged: 0,
      failed: 0,
      rejected: 0,
      sweeps: 0,
      sweptNetworks: 0,
    });
    expect(a.status().lastTimings).toMatchObject({
      parseMs: expect.any(Number),
      diffMs: expect.any(Number),
      dryRunMs: expect.any(Number),
      applyMs: expect.any(Number),
      verifyMs: expect.any(Number),
    });
    expect(fake.summary()).toBe(summary(B));
  });

  test('an identical config costs nothing', async () => {
    const fake = new FakeFrr();
    const a = make(fake);
    a.submit(A);
    await a.whenIdle();
    fake.calls = [];
    a.submit(A);
    await a.whenIdle();
    expect(fake.ops()).toEqual([]);
    expect(a.status()).toMatchObject({ desiredGeneration: 2, appliedGeneration: 2 });
    expect(a.status().counts.unchanged).toBe(1);
  });

  test('a diff the incremental path refuses (router-id change) goes to frr-reload', async () => {
    const fake = new FakeFrr();
    const a = make(fake);
    a.submit(A);
    await a.whenIdle();
    fake.calls = [];
    a.submit(A.replace('bgp router-id 192.0.2.11', 'bgp router-id 192.0.2.99'));
    await a.whenIdle();
    expect(fake.ops()).toEqual(['dryRun', 'runningConfig', 'reloadTest', 'reload']);
    expect(a.status()).toMatchObject({ appliedGeneration: 2, mode: 'full' });
  });

  test('a change other than prefix-list entries and network lines is checked against show running-config at once', async () => {
    const fake = new FakeFrr();
    const a = make(fake);
    a.submit(A);
    await a.whenIdle();
    fake.calls = [];
    a.submit(conf(['198.51.100.10/32'], ['  neighbor 192.0.2.1 timers 3 9']));
    await a.whenIdle();
    expect(fake.ops()).toEqual(['dryRun', 'applyScript', 'runningConfig']);
    expect(a.status()).toMatchObject({
      appliedGeneration: 2,
      verifiedGeneration: 2,
      mode: 'incremental',
      lastVerify: 'running-config',
    });
  });

  test.each([
    ['vtysh -f fails', 'fail' as const, ['applyScript']],
    [
      'vtysh -f "works" but FRR does not change (targeted check fails)',
      'ignore' as const,
      ['applyScript', 'show'],
    ],
  ])('%s: falls back to a full reload', async (_name, behaviour, tail) => {
    const fake = new FakeFrr();
    const a = make(fake);
    a.submit(A);
    await a.whenIdle();
    fake.calls = [];
    fake.script = behaviour;
    a.submit(B);
    await a.whenIdle();
    expect(fake.ops()).toEqual(['dryRun', ...tail, 'dryRun', 'runningConfig', 'reloadTest', 'reload']);
    expect(fake.calls[fake.calls.length - 4]!.text).toBe(B); // the full reload checks the whole config
    expect(a.status()).toMatchObject({ appliedGeneration: 2, mode: 'full' });
    expect(fake.summary()).toBe(summary(B));
  });

  test('a config the dry-run parser rejects is never applied and not retried', async () => {
    const fake = new FakeFrr();
    const a = make(fake);
    a.submit(A);
    await a.whenIdle();
    fake.calls = [];
    a.submit(conf(['198.51.100.10/32'], ['  bogus']));
    await a.whenIdle();
    expect(fake.ops()).toEqual(['dryRun']);
    const s = a.status();
    expect(s).toMatchObject({ desiredGeneration: 2, appliedGeneration: 1, rejectedGeneration: 2 });
    expect(s.lastError).toMatch(/generation 2 rejected by FRR's parser.*Unknown command/);
    expect(s.nextRetryAt).toBeUndefined();
    await sleep(60);
    expect(fake.ops()).toEqual(['dryRun']);
    expect(fake.summary()).toBe(summary(A));
    // The next good config clears the error.
    a.submit(B);
    await a.whenIdle();
    expect(a.status()).toMatchObject({ appliedGeneration: 3 });
    expect(a.status().lastError).toBeUndefined();
    expect(a.status().rejectedGeneration).toBeUndefined();
  });

  test('a change script the parser rejects is never applied either', async () => {
    const fake = new FakeFrr();
    fake.syntaxError = (c) => (c.includes('198.51.100.66') ? 'line 1: % Unknown command[4]: …' : undefined);
    const a = make(fake);
    a.submit(A);
    await a.whenIdle();
    fake.calls = [];
    a.submit(conf(['198.51.100.10/32', '198.51.100.66/32']));
    await a.whenIdle();
    expect(fake.ops()).toEqual(['dryRun']);
    expect(a.status()).toMatchObject({ appliedGeneration: 1, rejectedGeneration: 2 });
  });

  test('FRR rejects it too: last good re-applied, lastError set, retried with back-off until it works', async () => {
    const fake = new FakeFrr();
    const a = make(fake);
    a.submit(A);
    await a.whenIdle();
    fake.calls = [];
    const bad = conf(['198.51.100.10/32'], ['  neighbor 192.0.2.98 timers 3 9']);
    fake.script = 'fail';
    fake.reloadFails = (c) => c === bad;
    fake.reloadOutput = 'line 12: % Specify remote-as or peer-group commands first';
    a.submit(bad);
    await a.whenIdle();
    expect(fake.ops()).toEqual([
      'dryRun',
      'applyScript',
      'dryRun',
      'runningConfig',
      'reloadTest',
      'reload',
      'runningConfig',
      'reload',
    ]);
    expect(fake.calls[7]!.text).toBe(A); // the last good config, put back
    expect(fake.summary()).toBe(summary(A));
    const s = a.status();
    expect(s).toMatchObject({ desiredGeneration: 2, appliedGeneration: 1, failedGeneration: 2 });
    expect(s.lastError).toContain('generation 2 failed');
    expect(s.lastError).toContain('Specify remote-as');
    expect(s.lastError).toContain('kept generation 1');
    expect(s.nextRetryAt).toEqual(expect.any(Number));

    // Retries happen on their own; let FRR "accept" it after a while.
    await sleep(100);
    const reloadsOfBad = fake.calls.filter((c) => c.op === 'reload' && c.text === bad).length;
    expect(reloadsOfBad).toBeGreaterThanOrEqual(2);
    fake.reloadFails = () => false;
    await sleep(200);
    await a.whenIdle();
    expect(a.status()).toMatchObject({ appliedGeneration: 2, mode: 'full' });
    expect(a.status().lastError).toBeUndefined();
    expect(a.status().nextRetryAt).toBeUndefined();
    expect(fake.summary()).toBe(summary(bad));
  });

  test('back-off doubles from the initial delay and stops at the maximum', async () => {
    const fake = new FakeFrr();
    fake.reloadFails = () => true;
    const times: number[] = [];
    const orig = fake.reloadTest.bind(fake);
    fake.reloadTest = (c: string) => {
      times.push(Date.now());
      return orig(c);
    };
    const a = make(fake, { initialBackoffMs: 40, maxBackoffMs: 160 });
    a.submit(A);
    await sleep(1000);
    await a.stop();
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    // 40, 80, 160, 160, …
    expect(gaps.length).toBeGreaterThanOrEqual(4);
    expect(gaps[0]).toBeGreaterThanOrEqual(35);
    expect(gaps[0]).toBeLessThan(150);
    expect(gaps[1]).toBeGreaterThanOrEqual(75);
    expect(gaps[2]).toBeGreaterThanOrEqual(150);
    for (const g of gaps.slice(3)) {
      expect(g).toBeGreaterThanOrEqual(150);
      expect(g).toBeLessThan(400);
    }
    // No last good config yet: nothing to put back; every attempt is a full reload.
    expect(fake.ops().filter((o) => o === 'applyScript')).toEqual([]);
    expect(a.status()).toMatchObject({ appliedGeneration: 0, failedGeneration: 1 });
  });

  test('a different config submitted during the back-off is tried at once', async () => {
    const fake = new FakeFrr();
    fake.reloadFails = (c) => c === B;
    const a = make(fake, { initialBackoffMs: 10_000, maxBackoffMs: 10_000 });
    a.submit(A);
    await a.whenIdle();
    a.submit(B.replace('bgp router-id 192.0.2.11', 'bgp router-id 192.0.2.12'));
    fake.reloadFails = (c) => c.includes('192.0.2.12');
    await a.whenIdle();
    expect(a.status().nextRetryAt).toEqual(expect.any(Number));
    const t0 = Date.now();
    a.submit(C);
    await a.whenIdle();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(a.status()).toMatchObject({ appliedGeneration: 3 });
    expect(a.status().nextRetryAt).toBeUndefined();
  });

  test('a burst of 1000 submissions is coalesced into a few applies; the last one wins', async () => {
    const fake = new FakeFrr();
    fake.delayMs = 5;
    const a = make(fake);
    const configs = Array.from({ length: 1000 }, (_, i) =>
      conf([`198.51.100.${i % 250}/32`, `203.0.113.${(i * 7) % 250}/32`]),
    );
    for (const c of configs) a.submit(c);
    await a.whenIdle();
    const attempts = fake.ops().filter((o) => o === 'dryRun').length;
    expect(attempts).toBeLessThanOrEqual(3);
    expect(a.status()).toMatchObject({ desiredGeneration: 1000, appliedGeneration: 1000 });
    expect(fake.summary()).toBe(summary(configs[999]!));

    // Submissions arriving while an apply runs: still only the latest is applied next.
    fake.calls = [];
    for (let i = 0; i < 200; i++) {
      a.submit(configs[i]!);
      if (i % 50 === 0) await sleep(3);
    }
    await a.whenIdle();
    expect(fake.ops().filter((o) => o === 'dryRun').length).toBeLessThanOrEqual(6);
    expect(a.status().appliedGeneration).toBe(1200);
    expect(fake.summary()).toBe(summary(configs[199]!));
  });

  test('passwords never reach lastError or the log', async () => {
    const fake = new FakeFrr();
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', write: (l) => lines.push(l) });
    const a = make(fake, { log });
    const withPw = conf(['198.51.100.10/32'], ['  neighbor 192.0.2.1 password hunter2']);
    fake.syntaxError = (c) =>
      c.includes('bogus')
        ? `line 9: % Unknown command: neighbor 192.0.2.1 password hunter2 bogus`
        : undefined;
    a.submit(`${withPw}bogus\n`);
    await a.whenIdle();
    expect(a.status().lastError).toContain('password <redacted>');
    fake.reloadFails = () => true;
    fake.reloadOutput = 'line 7: % bad: neighbor 192.0.2.1 password hunter2';
    a.submit(withPw);
    await a.whenIdle();
    await a.stop();
    expect(a.status().lastError).toContain('password <redacted>');
    const everything = [JSON.stringify(a.status()), ...lines].join('\n');
    expect(everything).not.toContain('hunter2');
    expect(lines.length).toBeGreaterThan(0);
  });

  test('an executor that throws counts as a failure; stop() ends retries', async () => {
    const fake = new FakeFrr();
    fake.reloadTest = () => Promise.reject(new Error('cannot run /usr/lib/frr/frr-reload.py: ENOENT'));
    const a = make(fake);
    a.submit(A);
    await a.whenIdle();
    expect(a.status().lastError).toContain('ENOENT');
    expect(a.status().appliedGeneration).toBe(0);
    await a.stop();
    const n = fake.calls.length;
    await sleep(100);
    expect(fake.calls.length).toBe(n);
    expect(a.status().nextRetryAt).toBeUndefined();
  });

  test('submissions before start() wait for it', async () => {
    const fake = new FakeFrr();
    const a = new FrrApplier({ executor: fake });
    live.push(a);
    a.submit(A);
    await sleep(20);
    expect(fake.calls).toEqual([]);
    a.start();
    await a.whenIdle();
    expect(a.status().appliedGeneration).toBe(1);
  });

  test('summariseOutput keeps FRR error lines and masks passwords', () => {
    expect(
      summariseOutput(
        'Lines To Add\n neighbor 192.0.2.1 password x\nline 5: % Unknown command: password secret\nok',
      ),
    ).toBe('line 5: % Unknown command: password <redacted>');
    expect(summariseOutput('a\nb\n')).toBe('a\nb');
    expect(summariseOutput('% x\n% x\n2026 \u001b[91mWARNING\u001b[0m: frr-reload.py failed')).toBe(
      '% x\n2026 WARNING: frr-reload.py failed',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Prefix-lists as sets against FRR's own numbers; the lazy whole-config check; forced full mode
// ---------------------------------------------------------------------------------------------

const many = (n: number, from = 20) => Array.from({ length: n }, (_, i) => `198.51.100.${from + i}/32`);

describe('FrrApplier: prefix-lists against what FRR has', () => {
  test("a Service that sorts first: one entry above FRR's highest number, nothing renumbered", async () => {
    const fake = new FakeFrr();
    const a = make(fake);
    a.submit(conf(many(40)));
    await a.whenIdle();
    fake.calls = [];
    a.submit(conf(['198.51.100.2/32', ...many(40)])); // sorts before all 40: the render renumbers them
    await a.whenIdle();
    expect(fake.ops()).toEqual(['dryRun', 'applyScript', 'show']);
    expect(fake.calls[1]!.text.split('\n').filter((l) => l.includes('prefix-list'))).toEqual([
      'ip prefix-list n-allowed-ipv4 seq 41 permit 198.51.100.2/32',
    ]);
    expect(fake.summary()).toBe(summary(conf(['198.51.100.2/32', ...many(40)])));
  });

  test("removals use FRR's numbers, not the render's (which renumbered)", async () => {
    const fake = new FakeFrr();
    const a = make(fake);
    a.submit(conf(many(10)));
    await a.whenIdle();
    a.submit(conf(['198.51.100.2/32', ...many(10)])); // FRR: .2 at seq 11
    await a.whenIdle();
    fake.calls = [];
    // .20 goes: the render had it at seq 2, FRR at seq 1; .2 goes: render seq 1, FRR seq 11.
    a.submit(conf(many(9, 21)));
    await a.whenIdle();
    const pl = fake.calls[1]!.text.split('\n').filter((l) => l.includes('prefix-list'));
    expect(pl.sort()).toEqual([
      'no ip prefix-list n-allowed-ipv4 seq 1 permit 198.51.100.20/32',
      'no ip prefix-list n-allowed-ipv4 seq 11 permit 198.51.100.2/32',
    ]);
    expect(fake.calls[2]!.text.split('\n').sort()).toEqual([
      'show ip prefix-list n-allowed-ipv4 seq 1 json',
      'show ip prefix-list n-allowed-ipv4 seq 11 json',
    ]);
    expect(fake.summary()).toBe(summary(conf(many(9, 21))));
    expect(a.status().mode).toBe('incremental');
  });

  test('deny any <-> permits: the last Service goes and comes back, all incremental', async () => {
    const fake = new FakeFrr();
    const a = make(fake);
    a.submit(A);
    await a.whenIdle();
    for (const c of [conf([]), A, conf([]), B]) {
      a.submit(c);
      await a.whenIdle();
      expect(a.status()).toMatchObject({ mode: 'incremental', lastVerify: 'entries' });
      expect(fake.summary()).toBe(summary(c));
    }
    expect(a.status().counts).toMatchObject({ full: 1, incremental: 4, failed: 0 });
  });

  test("a full reload keeps FRR's numbers: frr-reload.py gets the config numbered as FRR has it", async () => {
    const fake = new FakeFrr();
    const a = make(fake);
    a.submit(conf(many(5)));
    await a.whenIdle();
    a.submit(conf(['198.51.100.2/32', ...many(5)])); // FRR: .2 at seq 6, the render: seq 1
    await a.whenIdle();
    fake.calls = [];
    // router-id change: full reload. The render renumbers all six; what frr-reload.py gets does not.
    const full = conf(['198.51.100.2/32', ...many(5)]).replace('192.0.2.11', '192.0.2.12');
    a.submit(full);
    await a.whenIdle();
    expect(a.status().mode).toBe('full');
    expect(fake.ops()).toEqual(['dryRun', 'runningConfig', 'reloadTest', 'reload']);
    expect(fake.calls[0]!.text).toBe(full); // the parser sees the render
    const reloaded = fake.calls[3]!.text.split('\n').filter((l) => l.startsWith('ip prefix-list n-allowed'));
    expect(reloaded).toEqual([
      'ip prefix-list n-allowed-ipv4 seq 6 permit 198.51.100.2/32',
      ...many(5).map((p, i) => `ip prefix-list n-allowed-ipv4 seq ${i + 1} permit ${p}`),
    ]);
    expect(fake.summary()).toBe(summary(full));
    // The next diff knows those numbers.
    fake.calls = [];
    a.submit(conf(many(5)).replace('192.0.2.11', '192.0.2.12'));
    await a.whenIdle();
    expect(fake.calls[1]!.text.split('\n').filter((l) => l.includes('prefix-list'))).toEqual([
      'no ip prefix-list n-allowed-ipv4 seq 6 permit 198.51.100.2/32',
    ]);
  });

  test('the lazy check: one show running-config after a burst of Service changes, then verified', async () => {
    const fake = new FakeFrr();
    const a = make(fake, { checkDelayMs: 30 });
    a.submit(A);
    await a.whenIdle();
    await sleep(100); // the check after the full reload (the first read was for the reload itself)
    expect(fake.ops().filter((o) => o === 'runningConfig')).toHaveLength(2);
    expect(a.status()).toMatchObject({ verifiedGeneration: 1, checks: { ok: 1, failed: 0 } });
    fake.calls = [];
    for (let i = 0; i < 5; i++) {
      a.submit(conf(['198.51.100.10/32', ...many(i + 1)]));
      await a.whenIdle();
    }
    expect(fake.ops().filter((o) => o === 'runningConfig')).toHaveLength(0);
    expect(a.status()).toMatchObject({ appliedGeneration: 6, verifiedGeneration: 1 });
    await sleep(100);
    expect(fake.ops().filter((o) => o === 'runningConfig')).toHaveLength(1);
    expect(a.status()).toMatchObject({
      appliedGeneration: 6,
      verifiedGeneration: 6,
      checks: { ok: 2, failed: 0 },
    });
  });

  test('the lazy check waits at least 10 times as long as the previous one took', async () => {
    const fake = new FakeFrr();
    const a = make(fake, { checkDelayMs: 10 });
    a.submit(A);
    await a.whenIdle();
    fake.runningDelayMs = 60; // a big config: FRR takes a while to print it
    await sleep(150);
    expect(a.status()).toMatchObject({ verifiedGeneration: 1 });
    const took = a.status().lastCheck!.durationMs;
    expect(took).toBeGreaterThanOrEqual(55);
    fake.calls = [];
    a.submit(B);
    await a.whenIdle();
    await sleep(8 * took); // well past checkDelayMs, not yet 10 × took
    expect(fake.ops().filter((o) => o === 'runningConfig')).toHaveLength(0);
    await sleep(4 * took + 100);
    expect(fake.ops().filter((o) => o === 'runningConfig')).toHaveLength(1);
    expect(a.status()).toMatchObject({ verifiedGeneration: 2 });
  });

  test('a new submission aborts a lazy check under way; the check runs again afterwards', async () => {
    const fake = new FakeFrr();
    fake.runningDelayMs = 200;
    const a = make(fake, { checkDelayMs: 10 });
    a.submit(A);
    await a.whenIdle();
    await sleep(50); // the check is running now
    expect(a.status().applying).toBe(true);
    const t0 = Date.now();
    a.submit(B);
    await a.whenIdle();
    expect(Date.now() - t0).toBeLessThan(150);
    expect(a.status()).toMatchObject({ appliedGeneration: 2, mode: 'incremental' });
    expect(a.status().verifiedGeneration).toBeUndefined();
    await sleep(400);
    expect(a.status()).toMatchObject({ verifiedGeneration: 2 });
  });

  test('the lazy check finds prefix-list entries missing: re-applied from what FRR has, incrementally', async () => {
    const fake = new FakeFrr();
    const a = make(fake, { checkDelayMs: 20 });
    a.submit(conf(many(5)));
    await a.whenIdle();
    await sleep(60);
    expect(a.status().verifiedGeneration).toBe(1);
    // Someone removes two entries behind our back (vtysh by hand).
    fake.interpret(
      'no ip prefix-list n-allowed-ipv4 seq 2 permit 198.51.100.21/32\nno ip prefix-list n-allowed-ipv4 seq 4 permit 198.51.100.23/32\n',
    );
    a.submit(conf(many(6))); // an ordinary change; its targeted check passes
    await a.whenIdle();
    await sleep(100);
    expect(a.status().checks).toMatchObject({ failed: 1 });
    await a.whenIdle();
    await sleep(100);
    expect(a.status()).toMatchObject({ appliedGeneration: 2, verifiedGeneration: 2, checks: { failed: 1 } });
    expect(a.status().counts).toMatchObject({ full: 1, failed: 0 });
    expect(a.status().lastError).toBeUndefined();
    expect(fake.summary()).toBe(summary(conf(many(6))));
  });

  test('the lazy check finds another line missing: full reload', async () => {
    const fake = new FakeFrr();
    const a = make(fake, { checkDelayMs: 20 });
    a.submit(A);
    await a.whenIdle();
    a.submit(B);
    await a.whenIdle();
    fake.interpret('route-map n-out permit 1\n no match ip address prefix-list n-allowed-ipv4\nexit\n');
    await sleep(150);
    await a.whenIdle();
    await sleep(100);
    expect(a.status().checks.failed).toBeGreaterThanOrEqual(1);
    expect(a.status().counts.full).toBe(2);
    expect(fake.summary()).toBe(summary(B));
    expect(a.status().verifiedGeneration).toBe(2);
  });

  test('mode full: every apply through frr-reload.py, never a check', async () => {
    const fake = new FakeFrr();
    const a = make(fake, { mode: 'full', checkDelayMs: 5 });
    a.submit(A);
    await a.whenIdle();
    a.submit(B);
    await a.whenIdle();
    await sleep(50);
    expect(fake.ops()).toEqual(['dryRun', 'reloadTest', 'reload', 'dryRun', 'reloadTest', 'reload']);
    expect(a.status()).toMatchObject({ appliedGeneration: 2, mode: 'full', counts: { full: 2 } });
  });
});

// ---------------------------------------------------------------------------------------------
// The sidecar reloader: directory watch -> FrrApplier -> status file
// ---------------------------------------------------------------------------------------------

async function until<T>(f: () => Promise<T | undefined>, what: string, timeoutMs = 5000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() - t0 > timeoutMs)
      throw new Error(`timed out waiting for ${what}: ${String(await f().catch((e: unknown) => e))}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** What the speaker does: write a temp file (0600) and rename it over frr.conf. */
async function writeAtomically(dir: string, text: string): Promise<void> {
  const tmp = join(dir, '.frr.conf.tmp');
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, join(dir, 'frr.conf'));
}

const sha = (t: string) => createHash('sha256').update(t).digest('hex');

describe('FrrApplier: new prefix-list entries go to bgpd only', () => {
  test('a Service added: one `vtysh -d bgpd -f`; removed: one `vtysh -f` to all daemons; replaced: both, in order', async () => {
    const fake = new FakeFrr();
    const a = make(fake);
    a.submit(A);
    await a.whenIdle();
    const parts = () =>
      fake.calls
        .filter((c) => c.op === 'applyScript')
        .map((c) => [c.daemon ?? 'all', c.text.trim().split('\n')]);
    fake.calls = [];
    a.submit(B); // .11 added
    await a.whenIdle();
    expect(parts()).toEqual([
      [
        'bgpd',
        [
          'ip prefix-list n-allowed-ipv4 seq 2 permit 198.51.100.11/32',
          'router bgp 64510',
          ' address-family ipv4 unicast',
          '  network 198.51.100.11/32',
          ' exit-address-family',
          'exit',
        ],
      ],
    ]);
    fake.calls = [];
    a.submit(A); // .11 removed
    await a.whenIdle();
    expect(parts().map(([d]) => d)).toEqual(['all']);
    fake.calls = [];
    a.submit(C); // .10 replaced by .12: removal to all first, then the addition to bgpd
    await a.whenIdle();
    const p = parts();
    expect(p.map(([d]) => d)).toEqual(['all', 'bgpd']);
    expect(p[0]![1]).toContain('no ip prefix-list n-allowed-ipv4 seq 1 permit 198.51.100.10/32');
    expect(p[1]![1]).toContain('ip prefix-list n-allowed-ipv4 seq 2 permit 198.51.100.12/32');
    expect(p[1]![1]).toContain('  no network 198.51.100.10/32'); // router lines join the run
    expect(a.status()).toMatchObject({ appliedGeneration: 4, mode: 'incremental', counts: { full: 1 } });
    expect(summary(formatTree({ root: fake.root, problems: [] }))).toBe(summary(C));
  });

  test('splitForDaemons keeps the order and joins router changes to the run before them', () => {
    const ch = (context: string[], op: 'add' | 'delete', command: string) => ({ context, op, command });
    const r = ['router bgp 64510', 'address-family ipv4 unicast'];
    const parts = splitForDaemons([
      ch([], 'delete', 'no ip prefix-list L seq 1 permit 198.51.100.1/32'),
      ch(r, 'delete', 'no network 198.51.100.1/32'),
      ch([], 'add', 'ip prefix-list L seq 2 permit 198.51.100.2/32'),
      ch(r, 'add', 'network 198.51.100.2/32'),
      ch(['route-map L-out permit 1'], 'add', 'match ip address prefix-list L'),
    ]);
    expect(parts.map((p) => [p.daemon ?? 'all', p.changes.map((c) => c.command)])).toEqual([
      ['all', ['no ip prefix-list L seq 1 permit 198.51.100.1/32', 'no network 198.51.100.1/32']],
      ['bgpd', ['ip prefix-list L seq 2 permit 198.51.100.2/32', 'network 198.51.100.2/32']],
      ['all', ['match ip address prefix-list L']],
    ]);
    expect(splitForDaemons([ch(r, 'add', 'network 198.51.100.2/32')])).toEqual([
      { daemon: 'bgpd', changes: [ch(r, 'add', 'network 198.51.100.2/32')] },
    ]);
  });
});

describe('FrrApplier: withdrawal sweep (FRR 8.4 coalesce window)', () => {
  const scripts = (fake: FakeFrr) => fake.calls.filter((c) => c.op === 'applyScript').map((c) => c.text);
  const BOUNCE_11 = [
    'router bgp 64510',
    ' address-family ipv4 unicast',
    '  network 198.51.100.11/32',
    '  no network 198.51.100.11/32',
    ' exit-address-family',
    'exit',
    '',
  ].join('\n');

  test('a removed network is added and removed again once, after the delay; the running config is unchanged', async () => {
    const fake = new FakeFrr();
    const a = make(fake, { withdrawSweepMs: 40 });
    a.submit(B);
    await a.whenIdle();
    a.submit(A); // .11 goes
    await a.whenIdle();
    fake.calls = [];
    const running = formatTree({ root: fake.root, problems: [] });
    await sleep(15);
    expect(scripts(fake)).toEqual([]); // not before the delay
    await sleep(100);
    expect(scripts(fake)).toEqual([BOUNCE_11]);
    expect(fake.ops()).toEqual(['applyScript']); // no dry run, no check: nothing changes
    expect(formatTree({ root: fake.root, problems: [] })).toBe(running);
    expect(a.status().counts).toMatchObject({ sweeps: 1, sweptNetworks: 1 });
    await sleep(100);
    expect(scripts(fake)).toHaveLength(1); // once
  });

  test('removals in a burst are swept together; a network that came back is left alone', async () => {
    const fake = new FakeFrr();
    const a = make(fake, { withdrawSweepMs: 60 });
    a.submit(conf(['198.51.100.10/32', '198.51.100.11/32', '198.51.100.12/32', '198.51.100.13/32']));
    await a.whenIdle();
    a.submit(conf(['198.51.100.10/32', '198.51.100.13/32'])); // .11 and .12 go
    await a.whenIdle();
    a.submit(conf(['198.51.100.10/32', '198.51.100.12/32'])); // .12 back, .13 goes
    await a.whenIdle();
    fake.calls = [];
    await sleep(200);
    const s = scripts(fake);
    expect(s).toHaveLength(1);
    expect(s[0]).toContain('no network 198.51.100.11/32');
    expect(s[0]).toContain('no network 198.51.100.13/32');
    expect(s[0]).not.toContain('198.51.100.12/32');
    expect(a.status().counts).toMatchObject({ sweeps: 1, sweptNetworks: 2 });
  });

  test('no sweep when the router itself went, in full mode, or when turned off', async () => {
    for (const [extra, next] of [
      [{ withdrawSweepMs: 20 }, 'log stdout informational\n'],
      [{ withdrawSweepMs: 20, mode: 'full' as const }, A],
      [{ withdrawSweepMs: -1 }, A],
    ] as const) {
      const fake = new FakeFrr();
      const a = make(fake, extra);
      a.submit(B);
      await a.whenIdle();
      a.submit(next);
      await a.whenIdle();
      fake.calls = [];
      await sleep(80);
      expect(scripts(fake)).toEqual([]);
      expect(a.status().counts.sweeps).toBe(0);
    }
  });

  test('the default delay follows FRR 8.4 coalesce time: 1 s + 50 ms per neighbor (at most 10 s), plus 1 s', () => {
    const neighbors = (n: number) =>
      parseConfig(
        [
          'router bgp 64510',
          ...Array.from({ length: n }, (_, i) => ` neighbor 192.0.2.${i + 1} remote-as 64500`),
        ].join('\n'),
      );
    expect(sweepDelayFor(neighbors(0))).toBe(2000);
    expect(sweepDelayFor(neighbors(4))).toBe(2200);
    expect(sweepDelayFor(neighbors(200))).toBe(11_000);
  });

  test('networksOf: by router, address-family and prefix (unicast only)', () => {
    const t = parseConfig(
      [
        'router bgp 64510',
        ' address-family ipv4 unicast',
        '  network 198.51.100.10/32',
        ' exit-address-family',
        ' address-family ipv6 unicast',
        '  network 2001:db8::a/128',
        ' exit-address-family',
        'exit',
        'router bgp 64510 vrf red',
        ' address-family ipv4 unicast',
        '  network 198.51.100.10/32',
        ' exit-address-family',
        'exit',
      ].join('\n'),
    );
    expect([...networksOf(t).values()].map((n) => `${n.router} | ${n.af} | ${n.prefix}`)).toEqual([
      'router bgp 64510 | address-family ipv4 unicast | 198.51.100.10/32',
      'router bgp 64510 | address-family ipv6 unicast | 2001:db8::a/128',
      'router bgp 64510 vrf red | address-family ipv4 unicast | 198.51.100.10/32',
    ]);
  });
});

describe('FRR reloader (sidecar)', () => {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ironlb-reloader-test-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const readStatus = async (): Promise<ReloaderStatusFile> =>
    JSON.parse(await readFile(join(dir, 'frr-status.json'), 'utf8')) as ReloaderStatusFile;

  test('applies the existing file, then each new version; the status file follows', async () => {
    const fake = new FakeFrr();
    await writeAtomically(dir, A);
    const r = await runReloader({ dir, log: silentLogger, executor: fake, resyncMs: 0, checkDelayMs: -1 });
    try {
      await r.whenIdle();
      expect(fake.summary()).toBe(summary(A));
      expect(await readFile(join(dir, 'reloader.pid'), 'utf8')).toBe(`${process.pid}\n`);
      let s = await readStatus();
      expect(s).toMatchObject({
        desiredGeneration: 1,
        appliedGeneration: 1,
        mode: 'full',
        appliedSha256: sha(A),
      });
      expect(s.configFile).toBe(join(dir, 'frr.conf'));
      expect((await stat(join(dir, 'frr-status.json'))).mode & 0o777).toBe(0o644);

      await writeAtomically(dir, B);
      s = await until(async () => {
        const x = await readStatus();
        return x.appliedGeneration === 2 && !x.applying ? x : undefined;
      }, 'generation 2 in the status file');
      expect(s).toMatchObject({ mode: 'incremental', appliedSha256: sha(B), desiredSha256: sha(B) });
      expect(fake.summary()).toBe(summary(B));

      // Rewriting the same content is no new generation.
      await writeAtomically(dir, B);
      r.rescan();
      await r.whenIdle();
      expect((await readStatus()).desiredGeneration).toBe(2);

      // A config FRR rejects: the status file says so, without the password.
      fake.reloadFails = (c) => c.includes('192.0.2.98');
      fake.script = 'fail';
      fake.reloadOutput =
        '% Specify remote-as or peer-group commands first: neighbor 192.0.2.1 password hunter2';
      await writeAtomically(dir, conf(['198.51.100.10/32'], ['  neighbor 192.0.2.98 timers 3 9']));
      s = await until(async () => {
        const x = await readStatus();
        return x.failedGeneration === 3 && !x.applying ? x : undefined;
      }, 'failure in the status file');
      expect(s).toMatchObject({ desiredGeneration: 3, appliedGeneration: 2, appliedSha256: sha(B) });
      expect(s.lastError).toContain('Specify remote-as');
      expect(JSON.stringify(s)).not.toContain('hunter2');
      expect(s.nextRetryAt).toEqual(expect.any(Number));
    } finally {
      await r.stop();
    }
    await expect(stat(join(dir, 'reloader.pid'))).rejects.toThrow();
  });

  test('no config yet: waits for it', async () => {
    const fake = new FakeFrr();
    const r = await runReloader({
      dir,
      log: silentLogger,
      executor: fake,
      resyncMs: 0,
      pidFile: null,
      checkDelayMs: -1,
    });
    try {
      await r.whenIdle();
      expect(fake.calls).toEqual([]);
      expect(await readStatus()).toMatchObject({ desiredGeneration: 0, appliedGeneration: 0 });
      await writeAtomically(dir, A);
      await until(
        async () => ((await readStatus()).appliedGeneration === 1 ? true : undefined),
        'first apply',
      );
    } finally {
      await r.stop();
    }
  });
});

describe('ironlb frr-reloader (CLI)', () => {
  const io = () => {
    const err: string[] = [];
    return { err, io: { out: () => undefined, err: (t: string) => void err.push(t) } };
  };

  test('usage errors', async () => {
    const saved = process.env.FRR_CONFIG_FILE;
    delete process.env.FRR_CONFIG_FILE;
    try {
      await expect(runFrrReloader([], io().io)).rejects.toThrow(UsageError);
      await expect(runFrrReloader(['--dir', '/tmp', '--pathspace', 'a b'], io().io)).rejects.toThrow(
        /--pathspace/,
      );
      await expect(runFrrReloader(['--dir', '/tmp', '--config-file', 'x/frr.conf'], io().io)).rejects.toThrow(
        /--config-file/,
      );
      await expect(runFrrReloader(['--bogus'], io().io)).rejects.toThrow(/unknown flag/);
    } finally {
      if (saved !== undefined) process.env.FRR_CONFIG_FILE = saved;
    }
  });

  test('runs until stopped, writes pid and status files, removes the pid file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ironlb-reloader-cli-'));
    try {
      const ac = new AbortController();
      const { io: sink, err } = io();
      const done = runFrrReloader(['--dir', dir, '--vtysh', '/nonexistent/vtysh'], sink, ac.signal);
      await until(async () => ((await stat(join(dir, 'frr-status.json'))) ? true : undefined), 'status file');
      expect(await readFile(join(dir, 'reloader.pid'), 'utf8')).toBe(`${process.pid}\n`);
      ac.abort();
      expect(await done).toBe(0);
      await expect(stat(join(dir, 'reloader.pid'))).rejects.toThrow();
      expect(err.join('')).toContain('FRR reloader started');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
