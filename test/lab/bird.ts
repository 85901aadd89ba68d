/**
 * BIRD 2 as the upstream router of the lab: started in a namespace with its own config, control
 * socket and pid file in a private temp dir; birdc access; and parsers for the (non-JSON) text of
 * `show route all` and `show protocols`.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registerExitCleanup } from './cleanup.js';
import { exec, ExecError, run } from './netns.js';
import { isAlive, procArgv, signal } from './proc.js';
import { waitFor } from './wait.js';

// ---------------------------------------------------------------------------------------------
// Parsers
// ---------------------------------------------------------------------------------------------

export interface BirdNextHop {
  /** Gateway address (`via X`); absent for device routes (`dev X`). */
  gateway?: string;
  /** Outgoing interface (`on X` / `dev X`). */
  iface?: string;
  /** ECMP weight, when shown (`weight N`, multipath routes only). */
  weight?: number;
}

export interface BirdBgpAttrs {
  origin?: string;
  /** AS numbers in order (AS sets flattened); empty for iBGP routes without AS_PATH. */
  asPath: number[];
  /** `BGP.next_hop` (may hold a global and a link-local address for IPv6). */
  nextHop: string[];
  med?: number;
  localPref?: number;
  /** Standard communities as "ASN:VALUE". */
  communities: string[];
  /** Large communities as "GLOBAL:LOCAL1:LOCAL2". */
  largeCommunities: string[];
  /** Extended communities, the text inside each "(...)", e.g. "rt, 64510, 1". */
  extCommunities: string[];
}

export interface BirdRoute {
  /** Routing table, e.g. master4 / master6. */
  table: string;
  prefix: string;
  /** Route type column: unicast, blackhole, unreachable, prohibit. */
  type: string;
  /** Protocol that supplied this path (e.g. the BGP session name). */
  protocol: string;
  /** Time column inside the brackets. */
  since: string;
  /** `from X` inside the brackets, when shown. */
  from?: string;
  /** Marked `*`: the best path of this prefix. */
  primary: boolean;
  preference: number;
  /** Second number of "(pref/metric)", when shown. */
  metric?: number;
  /** Trailing bracket, e.g. "AS64510i". */
  originInfo?: string;
  nextHops: BirdNextHop[];
  /** Every "Name: value" line of the route, e.g. { Type: 'BGP univ', 'BGP.local_pref': '100' }. */
  attributes: Record<string, string>;
  /** Present when the route has BGP.* attributes. */
  bgp?: BirdBgpAttrs;
}

export interface BirdProtocol {
  name: string;
  proto: string;
  table: string;
  /** up / down / start / stop / ... */
  state: string;
  since: string;
  /** Info column, e.g. "Established", "Active        Socket: Connection refused". */
  info: string;
  /** For BGP: first word of info (Idle, Connect, Active, OpenSent, OpenConfirm, Established). */
  bgpState?: string;
  /** BGP protocol with state up and info Established. */
  established: boolean;
}

const ROUTE_RE =
  /^(\S+)?\s+(\w+)\s+\[(\S+)\s+([^\]]*?)(?:\s+from\s+(\S+))?\]\s*(\*)?\s*\((\d+)(?:\/([^)]*))?\)(?:\s+\[([^\]]*)\])?\s*$/;

function bgpAttrs(attrs: Record<string, string>): BirdBgpAttrs | undefined {
  if (!Object.keys(attrs).some((k) => k.startsWith('BGP.'))) return undefined;
  const num = (k: string) => {
    const v = attrs[k];
    return v !== undefined && /^\d+$/.test(v.trim()) ? Number(v.trim()) : undefined;
  };
  const b: BirdBgpAttrs = {
    asPath: (attrs['BGP.as_path'] ?? '').match(/\d+/g)?.map(Number) ?? [],
    nextHop: (attrs['BGP.next_hop'] ?? '').split(/\s+/).filter(Boolean),
    communities: [...(attrs['BGP.community'] ?? '').matchAll(/\((\d+),\s*(\d+)\)/g)].map(
      (m) => `${m[1]}:${m[2]}`,
    ),
    largeCommunities: [...(attrs['BGP.large_community'] ?? '').matchAll(/\((\d+),\s*(\d+),\s*(\d+)\)/g)].map(
      (m) => `${m[1]}:${m[2]}:${m[3]}`,
    ),
    extCommunities: [...(attrs['BGP.ext_community'] ?? '').matchAll(/\(([^)]*)\)/g)].map((m) =>
      (m[1] ?? '').trim(),
    ),
  };
  if (attrs['BGP.origin'] !== undefined) b.origin = attrs['BGP.origin'].trim();
  const med = num('BGP.med');
  if (med !== undefined) b.med = med;
  const lp = num('BGP.local_pref');
  if (lp !== undefined) b.localPref = lp;
  return b;
}

/** Converts `birdc -v` output (reply codes "1007-", "0001 ", 5-space continuations) to plain text lines. */
function verboseToPlain(raw: string): string[] {
  const out: string[] = [];
  for (const line of raw.split('\n')) {
    if (/^0001 /.test(line)) continue; // banner
    if (/^\d{4}[ -]/.test(line) || line.startsWith('     ')) out.push(line.slice(5));
    else out.push(line);
  }
  return out;
}

/** Lines of plain birdc output (or of `birdc -v` output, detected by its "0001 BIRD" banner), banner removed. */
function plainLines(text: string): string[] {
  const first = text.split('\n').find((l) => l.trim() !== '') ?? '';
  if (/^0001 BIRD /.test(first)) return verboseToPlain(text);
  return text.split('\n').filter((l) => !/^BIRD [\d.]+ ready\.$/.test(l));
}

/**
 * Parses `show route all [...]` output (plain or `birdc -v`) into one entry per path. Paths of the
 * same prefix (ECMP candidates from several peers) are separate entries; a multipath route
 * (`via A ... weight 1` / `via B ... weight 1`) is one entry with several nextHops.
 */
export function parseBirdRoutes(text: string): BirdRoute[] {
  const routes: BirdRoute[] = [];
  let table = '';
  let prefix = '';
  let cur: BirdRoute | null = null;
  let lastAttr: string | null = null;
  const finish = () => {
    if (cur) {
      const b = bgpAttrs(cur.attributes);
      if (b) cur.bgp = b;
      routes.push(cur);
    }
    cur = null;
    lastAttr = null;
  };
  for (const line of plainLines(text)) {
    if (!line.trim()) continue;
    const t = /^Table (\S+):\s*$/.exec(line);
    if (t) {
      finish();
      table = t[1] ?? '';
      continue;
    }
    if (!line.startsWith('\t')) {
      const m = ROUTE_RE.exec(line);
      if (!m) continue; // e.g. "Network not found", counts
      finish();
      if (m[1]) prefix = m[1];
      const r: BirdRoute = {
        table,
        prefix,
        type: m[2] ?? '',
        protocol: m[3] ?? '',
        since: (m[4] ?? '').trim(),
        primary: m[6] === '*',
        preference: Number(m[7]),
        nextHops: [],
        attributes: {},
      };
      if (m[5]) r.from = m[5];
      if (m[8] !== undefined && /^\d+$/.test(m[8])) r.metric = Number(m[8]);
      if (m[9] !== undefined) r.originInfo = m[9];
      cur = r;
      continue;
    }
    const route: BirdRoute | null = cur;
    if (!route) continue;
    if (line.startsWith('\t\t')) {
      // Continuation of a long attribute (community lists are wrapped this way).
      if (lastAttr !== null)
        route.attributes[lastAttr] = `${route.attributes[lastAttr] ?? ''} ${line.trim()}`.trim();
      continue;
    }
    const body = line.slice(1);
    const via = /^via (\S+)(?: on (\S+))?(.*)$/.exec(body);
    if (via) {
      const nh: BirdNextHop = { gateway: via[1] ?? '' };
      if (via[2]) nh.iface = via[2];
      const w = /\bweight (\d+)/.exec(via[3] ?? '');
      if (w) nh.weight = Number(w[1]);
      route.nextHops.push(nh);
      lastAttr = null;
      continue;
    }
    const dev = /^dev (\S+)(.*)$/.exec(body);
    if (dev) {
      const nh: BirdNextHop = { iface: dev[1] ?? '' };
      const w = /\bweight (\d+)/.exec(dev[2] ?? '');
      if (w) nh.weight = Number(w[1]);
      route.nextHops.push(nh);
      lastAttr = null;
      continue;
    }
    const attr = /^([A-Za-z][\w.]*):\s?(.*)$/.exec(body);
    if (attr) {
      lastAttr = attr[1] ?? '';
      route.attributes[lastAttr] = (attr[2] ?? '').trim();
    }
  }
  finish();
  return routes;
}

/** Parses `show protocols` (also `show protocols all`: indented detail lines are skipped). */
export function parseBirdProtocols(text: string): BirdProtocol[] {
  const out: BirdProtocol[] = [];
  let seenHeader = false;
  for (const line of plainLines(text)) {
    if (/^Name\s+Proto\s+Table\s+State\s+Since\s+Info/.test(line)) {
      seenHeader = true;
      continue;
    }
    if (!seenHeader || !line.trim() || /^\s/.test(line)) continue;
    // Name Proto Table State Since Info; Since is "hh:mm:ss.sss", a date, or "YYYY-MM-DD hh:mm:ss".
    const m = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d{4}-\d{2}-\d{2} \d{2}:\S+|\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const tok = [m[1], m[2], m[3], m[4]];
    const since = m[5] ?? '';
    const info = (m[6] ?? '').trim();
    const p: BirdProtocol = {
      name: tok[0] ?? '',
      proto: tok[1] ?? '',
      table: tok[2] ?? '',
      state: tok[3] ?? '',
      since,
      info,
      established: false,
    };
    if (p.proto === 'BGP') {
      p.bgpState = info.split(/\s+/)[0] ?? '';
      p.established = p.state === 'up' && p.bgpState === 'Established';
    }
    out.push(p);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Instance
// ---------------------------------------------------------------------------------------------

export interface BirdReply {
  /** Reply text without codes and banner. */
  text: string;
  /** Error reply (codes 8xxx run-time, 9xxx parse-time, or a birdc client error), if any. */
  error?: { code: number; message: string };
  /** birdc's raw `-v` output. */
  raw: string;
}

export class BirdcError extends Error {
  constructor(
    readonly command: string,
    readonly reply: BirdReply,
  ) {
    super(`birdc '${command}': ${reply.error ? `${reply.error.code} ${reply.error.message}` : 'failed'}`);
    this.name = 'BirdcError';
  }
}

export interface BirdOptions {
  /** Network namespace BIRD runs in. */
  ns: string;
  /**
   * bird.conf text, or a function of the instance's private directory (for `log "<dir>/bird.log"`).
   * Without a `log` statement, `log "<dir>/bird.log" all;` is prepended.
   */
  config: string | ((dir: string) => string);
  /** Upper bound for start-up (default 15 000 ms). */
  timeoutMs?: number;
}

export class BirdInstance {
  readonly ns: string;
  /** Private directory: bird.conf, bird.ctl, bird.pid, bird.log. */
  readonly dir: string;
  readonly configPath: string;
  readonly socketPath: string;
  readonly pidPath: string;
  readonly logPath: string;
  pid = 0;
  private unregisterExit: (() => void) | null = null;
  private stopped = false;

  private constructor(ns: string) {
    this.ns = ns;
    this.dir = mkdtempSync(join(tmpdir(), `ilbird-${ns}-`));
    this.configPath = join(this.dir, 'bird.conf');
    this.socketPath = join(this.dir, 'bird.ctl');
    this.pidPath = join(this.dir, 'bird.pid');
    this.logPath = join(this.dir, 'bird.log');
  }

  /** Checks the config (`bird -p`), starts BIRD in `ns` and waits until birdc answers. */
  static async start(opts: BirdOptions): Promise<BirdInstance> {
    const inst = new BirdInstance(opts.ns);
    inst.unregisterExit = registerExitCleanup(`BIRD in ${opts.ns}`, () => inst.stopSync());
    try {
      await inst.launch(opts);
    } catch (e) {
      await inst.stop();
      throw e;
    }
    return inst;
  }

  private async launch(opts: BirdOptions): Promise<void> {
    const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
    let conf = typeof opts.config === 'function' ? opts.config(this.dir) : opts.config;
    if (!/^\s*log\s/m.test(conf)) conf = `log "${this.logPath}" all;\n${conf}`;
    await writeFile(this.configPath, conf);
    await checkBirdConfigFile(this.configPath);
    const r = await exec(
      this.ns,
      ['bird', '-c', this.configPath, '-s', this.socketPath, '-P', this.pidPath],
      {
        timeoutMs: Math.max(1000, deadline - Date.now()),
      },
    );
    if (r.code !== 0) throw new ExecError(r);
    this.pid = await waitFor(
      async () => {
        const n = Number((await readFile(this.pidPath, 'utf8').catch(() => '')).trim());
        return n > 0 && isAlive(n) ? n : 0;
      },
      {
        timeoutMs: Math.max(0, deadline - Date.now()),
        intervalMs: 20,
        what: `BIRD pid file ${this.pidPath}`,
      },
    );
    await waitFor(async () => !(await this.birdcRaw('show status')).error, {
      timeoutMs: Math.max(0, deadline - Date.now()),
      intervalMs: 50,
      what: `birdc on ${this.socketPath}`,
    });
  }

  /** Runs one birdc command; never throws for BIRD error replies (see `error`). */
  async birdcRaw(cmd: string, timeoutMs = 15_000): Promise<BirdReply> {
    const r = await run(['birdc', '-v', '-s', this.socketPath, cmd.trim()], { timeoutMs });
    const raw = r.stdout;
    const reply: BirdReply = { text: verboseToPlain(raw).join('\n').replace(/\n+$/, ''), raw };
    for (const line of raw.split('\n')) {
      const m = /^(\d{4})[ -](.*)$/.exec(line);
      if (m && Number(m[1]) >= 8000) {
        reply.error = { code: Number(m[1]), message: (m[2] ?? '').trim() };
        break;
      }
    }
    if (!reply.error && r.code !== 0) {
      // Client-side errors ("No such command. Press `?' for help.", socket problems) have no code.
      const msg = [...raw.split('\n').filter((l) => l && !/^\d{4}[ -]/.test(l)), r.stderr.trim()]
        .filter(Boolean)
        .join(' ');
      reply.error = { code: r.code ?? -1, message: msg || `birdc exited with code ${r.code}` };
    }
    return reply;
  }

  /** Runs one birdc command (e.g. 'show route all 198.51.100.10/32'); returns the text, throws BirdcError on an error reply. */
  async birdc(cmd: string): Promise<string> {
    const reply = await this.birdcRaw(cmd);
    if (reply.error) throw new BirdcError(cmd, reply);
    return reply.text;
  }

  /**
   * `show route all <args>` parsed; [] when BIRD answers "Network not found".
   * Examples: showRoutes('198.51.100.10/32'), showRoutes('protocol n1_4'), showRoutes('table master6').
   */
  async showRoutes(args = ''): Promise<BirdRoute[]> {
    const cmd = `show route all ${args}`.trim();
    const reply = await this.birdcRaw(cmd);
    if (reply.error?.code === 8001) return [];
    if (reply.error) throw new BirdcError(cmd, reply);
    return parseBirdRoutes(reply.text);
  }

  /** `show protocols` parsed. */
  async showProtocols(): Promise<BirdProtocol[]> {
    return parseBirdProtocols(await this.birdc('show protocols'));
  }

  /** Replaces the config (checked with `bird -p` first) and runs `birdc configure`. */
  async configure(config: string | ((dir: string) => string)): Promise<void> {
    let conf = typeof config === 'function' ? config(this.dir) : config;
    if (!/^\s*log\s/m.test(conf)) conf = `log "${this.logPath}" all;\n${conf}`;
    const tmp = `${this.configPath}.new`;
    await writeFile(tmp, conf);
    await checkBirdConfigFile(tmp);
    await writeFile(this.configPath, conf);
    await rm(tmp, { force: true });
    const out = await this.birdc('configure');
    if (!/Reconfigured|Reconfiguration in progress|Nothing to do/.test(out)) {
      throw new Error(`birdc configure: ${out}`);
    }
  }

  /** BIRD's log file (when the default log statement is in use). */
  async log(): Promise<string> {
    return readFile(this.logPath, 'utf8').catch(() => '');
  }

  private isOurs(): boolean {
    const argv = procArgv(this.pid);
    return !!argv && (argv[0] ?? '').endsWith('bird') && argv.includes(this.configPath);
  }

  /** Stops the BIRD it started (SIGTERM, SIGKILL after 5 s) and removes its directory. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    if (this.pid > 0 && isAlive(this.pid) && this.isOurs()) {
      signal(this.pid, 'SIGTERM');
      const pid = this.pid;
      try {
        await waitFor(() => !isAlive(pid), { timeoutMs: 5000, intervalMs: 25, what: `BIRD ${pid} to exit` });
      } catch {
        signal(pid, 'SIGKILL');
      }
    }
    await rm(this.dir, { recursive: true, force: true });
    this.stopped = true;
    this.unregisterExit?.();
    this.unregisterExit = null;
  }

  /** Synchronous, for process-exit handlers. */
  stopSync(): void {
    if (this.pid > 0 && isAlive(this.pid) && this.isOurs()) signal(this.pid, 'SIGKILL');
    if (existsSync(this.dir)) rmSync(this.dir, { recursive: true, force: true });
    this.stopped = true;
  }
}

/** Starts BIRD (see BirdInstance.start). */
export function startBird(opts: BirdOptions): Promise<BirdInstance> {
  return BirdInstance.start(opts);
}

async function checkBirdConfigFile(path: string): Promise<void> {
  const r = await run(['bird', '-p', '-c', path], { timeoutMs: 15_000 }).catch((e: Error) => {
    throw new Error(`${e.message} (is BIRD 2 installed? run scripts/install-lab-deps.sh as root)`);
  });
  if (r.code !== 0) throw new Error(`bird -p rejected ${path}: ${(r.stderr || r.stdout).trim()}`);
}

/** Syntax-checks bird.conf text with `bird -p` (no running BIRD needed). */
export async function birdConfigCheck(text: string): Promise<{ ok: boolean; error?: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ilbird-check-'));
  try {
    const p = join(dir, 'bird.conf');
    await writeFile(p, text);
    const r = await run(['bird', '-p', '-c', p], { timeoutMs: 15_000 });
    return r.code === 0 ? { ok: true } : { ok: false, error: (r.stderr || r.stdout).trim() };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
