/**
 * FrrApplier with a fake executor (no FRR): first apply full, then incremental; fallbacks;
 * dry-run rejection; keep-last-good with back-off; coalescing of bursts; password masking.
 * Also the sidecar reloader (directory watch -> applier -> status file) and its CLI wrapper.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFrrReloader } from '../../src/cli/frr-reloader.js';
import { UsageError } from '../../src/cli/io.js';
import {
  FrrApplier,
  summariseOutput,
  type CheckResult,
  type ExecOutcome,
  type FrrExecutor,
} from '../../src/frr/apply.js';
import { runReloader, type ReloaderStatusFile } from '../../src/frr/reloader.js';
import { createLogger, silentLogger } from '../../src/util/log.js';

type Call = { op: 'dryRun' | 'reloadTest' | 'reload' | 'applyScript' | 'runningConfig'; text: string };

/**
 * A pretend FRR. Its running config is text; a full reload sets it to the file (unless told to
 * fail); a vtysh script "works" by moving it to the config last dry-run (the applier always
 * dry-runs the config it is about to apply), or fails, or is silently ignored.
 */
class FakeFrr implements FrrExecutor {
  running = '';
  calls: Call[] = [];
  lastChecked = '';
  script: 'obey' | 'fail' | 'ignore' = 'obey';
  reloadFails: (config: string) => boolean = () => false;
  reloadOutput = '';
  delayMs = 0;
  syntaxError: (config: string) => string | undefined = (c) =>
    c.includes('bogus') ? 'line 3: % Unknown command[4]: bogus' : undefined;

  private async pause(): Promise<void> {
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
  }

  ops(): string[] {
    return this.calls.map((c) => c.op);
  }

  async dryRun(config: string): Promise<CheckResult> {
    this.calls.push({ op: 'dryRun', text: config });
    await this.pause();
    const err = this.syntaxError(config);
    if (err) return { ok: false, errors: [err] };
    this.lastChecked = config;
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
    this.running = config;
    return { ok: true, output: '', durationMs: 1 };
  }

  async applyScript(script: string): Promise<ExecOutcome> {
    this.calls.push({ op: 'applyScript', text: script });
    await this.pause();
    if (this.script === 'fail')
      return { ok: false, output: 'line 2: % Unknown command[4]: x', durationMs: 1 };
    if (this.script === 'obey') this.running = this.lastChecked;
    return { ok: true, output: '', durationMs: 1 };
  }

  async runningConfig(): Promise<string> {
    this.calls.push({ op: 'runningConfig', text: '' });
    await this.pause();
    return this.running;
  }
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

const applier = (fake: FakeFrr, extra: Partial<ConstructorParameters<typeof FrrApplier>[0]> = {}) => {
  const a = new FrrApplier({ executor: fake, initialBackoffMs: 20, maxBackoffMs: 80, ...extra });
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

describe('FrrApplier', () => {
  test('first apply is a full reload (--test, then --reload), later ones one vtysh -f plus one check', async () => {
    const fake = new FakeFrr();
    const a = make(fake);
    expect(a.status()).toMatchObject({ desiredGeneration: 0, appliedGeneration: 0, applying: false });
    expect(a.submit(A)).toBe(1);
    await a.whenIdle();
    expect(fake.ops()).toEqual(['dryRun', 'reloadTest', 'reload']);
    expect(a.status()).toMatchObject({ desiredGeneration: 1, appliedGeneration: 1, mode: 'full' });
    expect(a.status().lastError).toBeUndefined();
    expect(a.status().lastAppliedAt).toEqual(expect.any(Number));

    fake.calls = [];
    a.submit(B);
    await a.whenIdle();
    expect(fake.ops()).toEqual(['dryRun', 'applyScript', 'runningConfig']);
    expect(fake.calls[1]!.text).toBe(
      [
        'ip prefix-list n-allowed-ipv4 seq 2 permit 198.51.100.11/32',
        'router bgp 64510',
        ' address-family ipv4 unicast',
        '  network 198.51.100.11/32',
        ' exit-address-family',
        'exit',
        '',
      ].join('\n'),
    );
    expect(a.status()).toMatchObject({ desiredGeneration: 2, appliedGeneration: 2, mode: 'incremental' });
    expect(a.status().counts).toEqual({ incremental: 1, full: 1, unchanged: 0, failed: 0, rejected: 0 });
    expect(a.status().lastTimings).toMatchObject({
      dryRunMs: expect.any(Number),
      applyMs: expect.any(Number),
    });
    expect(fake.running).toBe(B);
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
    expect(fake.ops()).toEqual(['dryRun', 'reloadTest', 'reload']);
    expect(a.status()).toMatchObject({ appliedGeneration: 2, mode: 'full' });
  });

  test.each([
    ['vtysh -f fails', 'fail' as const],
    ['vtysh -f "works" but the running config does not change (check fails)', 'ignore' as const],
  ])('%s: falls back to a full reload', async (_name, behaviour) => {
    const fake = new FakeFrr();
    const a = make(fake);
    a.submit(A);
    await a.whenIdle();
    fake.calls = [];
    fake.script = behaviour;
    a.submit(B);
    await a.whenIdle();
    const tail = behaviour === 'fail' ? ['applyScript'] : ['applyScript', 'runningConfig'];
    expect(fake.ops()).toEqual(['dryRun', ...tail, 'reloadTest', 'reload']);
    expect(a.status()).toMatchObject({ appliedGeneration: 2, mode: 'full' });
    expect(fake.running).toBe(B);
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
    await new Promise((r) => setTimeout(r, 60));
    expect(fake.ops()).toEqual(['dryRun']);
    expect(fake.running).toBe(A);
    // The next good config clears the error.
    a.submit(B);
    await a.whenIdle();
    expect(a.status()).toMatchObject({ appliedGeneration: 3 });
    expect(a.status().lastError).toBeUndefined();
    expect(a.status().rejectedGeneration).toBeUndefined();
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
    expect(fake.ops()).toEqual(['dryRun', 'applyScript', 'reloadTest', 'reload', 'reload']);
    expect(fake.calls[4]!.text).toBe(A); // the last good config, put back
    expect(fake.running).toBe(A);
    const s = a.status();
    expect(s).toMatchObject({ desiredGeneration: 2, appliedGeneration: 1, failedGeneration: 2 });
    expect(s.lastError).toContain('generation 2 failed');
    expect(s.lastError).toContain('Specify remote-as');
    expect(s.lastError).toContain('kept generation 1');
    expect(s.nextRetryAt).toEqual(expect.any(Number));

    // Retries happen on their own; let FRR "accept" it after a while.
    await new Promise((r) => setTimeout(r, 100));
    const reloadsOfBad = fake.calls.filter((c) => c.op === 'reload' && c.text === bad).length;
    expect(reloadsOfBad).toBeGreaterThanOrEqual(2);
    fake.reloadFails = () => false;
    await new Promise((r) => setTimeout(r, 200));
    await a.whenIdle();
    expect(a.status()).toMatchObject({ appliedGeneration: 2, mode: 'full' });
    expect(a.status().lastError).toBeUndefined();
    expect(a.status().nextRetryAt).toBeUndefined();
    expect(fake.running).toBe(bad);
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
    await new Promise((r) => setTimeout(r, 1000));
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
    expect(fake.running).toBe(configs[999]);

    // Submissions arriving while an apply runs: still only the latest is applied next.
    fake.calls = [];
    for (let i = 0; i < 200; i++) {
      a.submit(configs[i]!);
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 3));
    }
    await a.whenIdle();
    expect(fake.ops().filter((o) => o === 'dryRun').length).toBeLessThanOrEqual(6);
    expect(a.status().appliedGeneration).toBe(1200);
    expect(fake.running).toBe(configs[199]);
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
    await new Promise((r) => setTimeout(r, 100));
    expect(fake.calls.length).toBe(n);
    expect(a.status().nextRetryAt).toBeUndefined();
  });

  test('submissions before start() wait for it', async () => {
    const fake = new FakeFrr();
    const a = new FrrApplier({ executor: fake });
    live.push(a);
    a.submit(A);
    await new Promise((r) => setTimeout(r, 20));
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
    const r = await runReloader({ dir, log: silentLogger, executor: fake, resyncMs: 0 });
    try {
      await r.whenIdle();
      expect(fake.running).toBe(A);
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
      expect(fake.running).toBe(B);

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
    const r = await runReloader({ dir, log: silentLogger, executor: fake, resyncMs: 0, pidFile: null });
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
