/**
 * Speaker liveness (spec d.2) without the API server: a SWIM-style failure detector over UDP
 * with suspicion/refutation by incarnation numbers, piggy-backed gossip, periodic full-state
 * sync, authenticated encryption, replay protection and self-fencing.
 *
 * `members()` is the set of live speakers (alive + suspect, this node included) that the L2
 * election (election.ts) takes as `speakers`. `isolated()` is the fence: while it is true the
 * L2 speaker must not answer ARP/NDP for any IP. A node isolates itself when it has had no
 * round-trip contact with any peer for `fenceTimeoutMs`, which is shorter than the earliest time
 * the others can declare it dead; after contact returns it stays isolated until every live peer
 * has listed it alive at its current incarnation, it has their view, and `holdDownMs` has passed
 * (see README.md in this directory for the protocol, wire format, timings and the bound).
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';

export const DEFAULT_PORT = 7946;

/** Tunables. All durations in milliseconds. */
export interface Timings {
  /** One member is probed per period (SWIM protocol period). */
  probeIntervalMs: number;
  /** Wait for a direct ack before asking `indirectChecks` members to probe (ping-req). */
  probeTimeoutMs: number;
  /** Members asked to probe indirectly when the direct probe times out. */
  indirectChecks: number;
  /** Suspicion timeout for clusters of up to 10 members; scaled by log10(n) above that. */
  suspicionMs: number;
  /** No round-trip contact with any peer for this long → isolated. Must be < suspicionMs. */
  fenceTimeoutMs: number;
  /** After the last peer has listed us alive again, stay isolated this much longer. */
  holdDownMs: number;
  /** Give up waiting for unreachable peers' confirmations after this long (logged). */
  holdDownMaxMs: number;
  /** Piggy-back queue flush: gossip messages to `gossipFanout` random members. */
  gossipIntervalMs: number;
  gossipFanout: number;
  /** Each update is retransmitted retransmitMult × ceil(log10(n+1)) times. */
  retransmitMult: number;
  /** Full-state sync with one random live member (and one dead one, so partitions heal). */
  syncIntervalMs: number;
  /** Re-join through the seeds (spec: every 1 min). */
  rejoinIntervalMs: number;
  /** How long start()/join() wait for a seed's answer. */
  joinTimeoutMs: number;
  /** Dead/left members (and unanswered seeds) are forgotten after this long. */
  deadReapMs: number;
  /** stop(): bound on waiting for the leave datagrams to go out (spec: leave within 1 s). */
  leaveTimeoutMs: number;
  /** Accepted difference between a datagram's timestamp and our clock. */
  replayWindowMs: number;
  /** Largest datagram we send (fits an Ethernet MTU with IPv6 + UDP headers). */
  maxDatagramBytes: number;
}

export const DEFAULT_TIMINGS: Readonly<Timings> = Object.freeze({
  probeIntervalMs: 200,
  probeTimeoutMs: 100,
  indirectChecks: 3,
  suspicionMs: 800,
  fenceTimeoutMs: 500,
  holdDownMs: 1000,
  holdDownMaxMs: 30_000,
  gossipIntervalMs: 100,
  gossipFanout: 3,
  retransmitMult: 4,
  syncIntervalMs: 5_000,
  rejoinIntervalMs: 60_000,
  joinTimeoutMs: 2_000,
  deadReapMs: 30_000,
  leaveTimeoutMs: 500,
  replayWindowMs: 30_000,
  maxDatagramBytes: 1400,
});

/** Checks the relations the fence relies on; returns warnings, throws on unsafe values. */
export function validateTimings(t: Timings): string[] {
  for (const [k, v] of Object.entries(t) as [keyof Timings, number][]) {
    const ok = k === 'deadReapMs' ? v > 0 : Number.isFinite(v) && v >= 0;
    if (!ok || Number.isNaN(v)) throw new Error(`membership: timing ${k} must be a non-negative number`);
  }
  if (t.probeIntervalMs <= 0 || t.probeTimeoutMs <= 0)
    throw new Error('membership: probe timings must be > 0');
  if (t.probeTimeoutMs >= t.probeIntervalMs) {
    throw new Error('membership: probeTimeoutMs must be smaller than probeIntervalMs');
  }
  if (t.fenceTimeoutMs >= t.suspicionMs) {
    throw new Error(
      'membership: fenceTimeoutMs must be smaller than suspicionMs (an isolated node must fence itself before the others can declare it dead)',
    );
  }
  if (t.maxDatagramBytes < 512 || t.maxDatagramBytes > 65_000) {
    throw new Error('membership: maxDatagramBytes must be within 512..65000');
  }
  const warnings: string[] = [];
  if (t.fenceTimeoutMs <= t.probeIntervalMs + t.probeTimeoutMs) {
    warnings.push(
      'fenceTimeoutMs <= probeIntervalMs + probeTimeoutMs: a single failed probe can isolate a healthy node',
    );
  }
  return warnings;
}

// ---------------------------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------------------------

export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';
export type MessageType = 'ping' | 'ack' | 'nack' | 'ping-req' | 'sync-req' | 'sync-resp' | 'gossip';
export type DropReason =
  | 'malformed'
  | 'version'
  | 'cluster'
  | 'auth'
  | 'checksum'
  | 'stale'
  | 'replay'
  | 'misdirected'
  | 'self'
  | 'filtered';
export const DROP_REASONS: readonly DropReason[] = [
  'malformed',
  'version',
  'cluster',
  'auth',
  'checksum',
  'stale',
  'replay',
  'misdirected',
  'self',
  'filtered',
];

/** One member's state as gossiped. */
export interface WireEntry {
  readonly name: string;
  readonly state: MemberState;
  readonly inc: number;
  readonly address: string;
  readonly port: number;
}

export interface WireHeader {
  readonly from: string;
  /** Destination member name; '' only for a join (sync-req) to a seed whose name is unknown. */
  readonly to: string;
  /** Sender's boot id (ms timestamp of its start); seq restarts at 1 with every boot. */
  readonly boot: number;
  readonly seq: number;
  /** Sender's wall clock (ms since the epoch). */
  readonly ts: number;
  /** Highest seq the sender has accepted from the destination, and that boot (0 = none). */
  readonly echoBoot: number;
  readonly echoSeq: number;
  /** The sender's view of the destination (null = unknown). */
  readonly yourState: MemberState | null;
  readonly yourInc: number;
}

export type WireBody =
  | { readonly type: 'ping'; readonly probe: number; readonly target: string }
  | { readonly type: 'ack'; readonly probe: number }
  | { readonly type: 'nack'; readonly probe: number }
  | {
      readonly type: 'ping-req';
      readonly probe: number;
      readonly target: string;
      readonly address: string;
      readonly port: number;
    }
  | {
      readonly type: 'sync-req' | 'sync-resp';
      readonly id: number;
      readonly part: number;
      readonly parts: number;
      readonly entries: readonly WireEntry[];
    }
  | { readonly type: 'gossip' };

export interface WireMessage {
  readonly header: WireHeader;
  readonly body: WireBody;
  /** Piggy-backed membership updates. */
  readonly gossip: readonly WireEntry[];
}

export class WireError extends Error {}

const STATES: readonly MemberState[] = ['alive', 'suspect', 'dead', 'left'];
const TYPES: readonly MessageType[] = ['ping', 'ack', 'nack', 'ping-req', 'sync-req', 'sync-resp', 'gossip'];
const U48_MAX = 2 ** 48 - 1;

class Writer {
  private buf = Buffer.allocUnsafe(256);
  private n = 0;
  private need(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + k));
    this.buf.copy(b, 0, 0, this.n);
    this.buf = b;
  }
  u8(v: number): void {
    this.need(1);
    this.n = this.buf.writeUInt8(v, this.n);
  }
  u16(v: number): void {
    this.need(2);
    this.n = this.buf.writeUInt16BE(v, this.n);
  }
  u32(v: number): void {
    this.need(4);
    this.n = this.buf.writeUInt32BE(v, this.n);
  }
  u48(v: number): void {
    this.need(6);
    this.n = this.buf.writeUIntBE(v, this.n, 6);
  }
  str8(s: string): void {
    const len = Buffer.byteLength(s, 'utf8');
    if (len > 255) throw new WireError(`string too long (${len} bytes)`);
    this.u8(len);
    this.need(len);
    this.n += this.buf.write(s, this.n, 'utf8');
  }
  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.n));
  }
}

class Reader {
  private pos = 0;
  constructor(private readonly b: Buffer) {}
  private take(k: number): number {
    if (this.pos + k > this.b.length) throw new WireError('truncated message');
    const p = this.pos;
    this.pos += k;
    return p;
  }
  u8(): number {
    return this.b.readUInt8(this.take(1));
  }
  u16(): number {
    return this.b.readUInt16BE(this.take(2));
  }
  u32(): number {
    return this.b.readUInt32BE(this.take(4));
  }
  u48(): number {
    return this.b.readUIntBE(this.take(6), 6);
  }
  str8(): string {
    const len = this.u8();
    const p = this.take(len);
    return this.b.toString('utf8', p, p + len);
  }
  end(): void {
    if (this.pos !== this.b.length) throw new WireError('trailing bytes');
  }
}

function stateCode(s: MemberState | null): number {
  return s === null ? 0 : STATES.indexOf(s) + 1;
}

function stateOf(code: number, allowNull: boolean): MemberState | null {
  if (code === 0 && allowNull) return null;
  const s = STATES[code - 1];
  if (!s) throw new WireError(`bad member state ${code}`);
  return s;
}

function writeEntry(w: Writer, e: WireEntry): void {
  w.str8(e.name);
  w.u8(stateCode(e.state));
  w.u32(e.inc);
  w.str8(e.address);
  w.u16(e.port);
}

function readEntry(r: Reader): WireEntry {
  const name = r.str8();
  const state = stateOf(r.u8(), false)!;
  const inc = r.u32();
  const address = r.str8();
  const port = r.u16();
  return { name, state, inc, address, port };
}

/** Encoded size of one entry (for packing datagrams). */
export function entrySize(e: WireEntry): number {
  return 1 + Buffer.byteLength(e.name) + 1 + 4 + 1 + Buffer.byteLength(e.address) + 2;
}

/**
 * Encodes the inner (pre-encryption) message:
 * from:str8 to:str8 boot:u48 seq:u48 ts:u48 echoBoot:u48 echoSeq:u48 yourState:u8 yourInc:u32
 * type:u8 payload gossipCount:u8 entry*; entry = name:str8 state:u8 inc:u32 address:str8 port:u16.
 */
export function encodeMessage(m: WireMessage): Buffer {
  const w = new Writer();
  const h = m.header;
  w.str8(h.from);
  w.str8(h.to);
  w.u48(h.boot);
  w.u48(h.seq);
  w.u48(h.ts);
  w.u48(h.echoBoot);
  w.u48(h.echoSeq);
  w.u8(stateCode(h.yourState));
  w.u32(h.yourInc);
  const b = m.body;
  w.u8(TYPES.indexOf(b.type) + 1);
  switch (b.type) {
    case 'ping':
      w.u32(b.probe);
      w.str8(b.target);
      break;
    case 'ack':
    case 'nack':
      w.u32(b.probe);
      break;
    case 'ping-req':
      w.u32(b.probe);
      w.str8(b.target);
      w.str8(b.address);
      w.u16(b.port);
      break;
    case 'sync-req':
    case 'sync-resp':
      if (b.entries.length > 0xffff) throw new WireError('too many entries');
      w.u32(b.id);
      w.u8(b.part);
      w.u8(b.parts);
      w.u16(b.entries.length);
      for (const e of b.entries) writeEntry(w, e);
      break;
    case 'gossip':
      break;
  }
  if (m.gossip.length > 255) throw new WireError('too many gossip entries');
  w.u8(m.gossip.length);
  for (const e of m.gossip) writeEntry(w, e);
  return w.finish();
}

export function decodeMessage(buf: Buffer): WireMessage {
  const r = new Reader(buf);
  const header: WireHeader = {
    from: r.str8(),
    to: r.str8(),
    boot: r.u48(),
    seq: r.u48(),
    ts: r.u48(),
    echoBoot: r.u48(),
    echoSeq: r.u48(),
    yourState: stateOf(r.u8(), true),
    yourInc: r.u32(),
  };
  if (header.from === '') throw new WireError('empty sender');
  const type = TYPES[r.u8() - 1];
  let body: WireBody;
  switch (type) {
    case 'ping':
      body = { type, probe: r.u32(), target: r.str8() };
      break;
    case 'ack':
    case 'nack':
      body = { type, probe: r.u32() };
      break;
    case 'ping-req':
      body = { type, probe: r.u32(), target: r.str8(), address: r.str8(), port: r.u16() };
      break;
    case 'sync-req':
    case 'sync-resp': {
      const id = r.u32();
      const part = r.u8();
      const parts = r.u8();
      const n = r.u16();
      if (parts === 0 || part >= parts) throw new WireError('bad sync part');
      const entries: WireEntry[] = [];
      for (let i = 0; i < n; i++) entries.push(readEntry(r));
      body = { type, id, part, parts, entries };
      break;
    }
    case 'gossip':
      body = { type };
      break;
    default:
      throw new WireError('unknown message type');
  }
  const n = r.u8();
  const gossip: WireEntry[] = [];
  for (let i = 0; i < n; i++) gossip.push(readEntry(r));
  r.end();
  return { header, body, gossip };
}

/*
 * Datagram envelope:
 *   0..1 magic "iL" (0x69 0x4c) | 2 version (1) | 3 flags (bit 0: encrypted) | 4..7 cluster tag
 *   encrypted: 12-byte random nonce | AES-256-GCM ciphertext | 16-byte tag   (AAD = bytes 0..7)
 *   plaintext: message | 8 bytes of SHA-256(bytes 0..end-8)                   (integrity only)
 */
const MAGIC0 = 0x69;
const MAGIC1 = 0x4c;
export const WIRE_VERSION = 1;
const FLAG_ENCRYPTED = 1;
const ENVELOPE = 8;
const NONCE = 12;
const GCM_TAG = 16;
const CHECKSUM = 8;

/** Bytes the envelope adds around a message. */
export function envelopeOverhead(encrypted: boolean): number {
  return ENVELOPE + (encrypted ? NONCE + GCM_TAG : CHECKSUM);
}

/** First 4 bytes of SHA-256("ironlb-cluster:" + name): datagrams of other clusters are dropped. */
export function clusterTag(cluster: string): Buffer {
  return createHash('sha256').update(`ironlb-cluster:${cluster}`, 'utf8').digest().subarray(0, 4);
}

export type KeyDerivation = 'hkdf' | 'memberlist';
/** HKDF info string of the default key derivation (salt is empty). */
export const HKDF_INFO = 'ironlb membership v1 aes-256-gcm';

/**
 * The AES-256 key for a shared secret. `hkdf` (default): HKDF-SHA256(secret, salt = empty,
 * info = HKDF_INFO, 32 bytes). `memberlist`: MetalLB's derivation (spec d.2 quirk) — the first
 * 32 bytes of secret ‖ SHA-256("") — so one `memberlist` Secret yields the same key bytes as
 * upstream. The wire format is ours either way: upstream speakers cannot join.
 */
export function deriveKey(secret: Buffer, how: KeyDerivation = 'hkdf'): Buffer {
  if (secret.length === 0) throw new Error('membership: the secret is empty');
  if (how === 'memberlist') {
    return Buffer.concat([secret, createHash('sha256').update('').digest()]).subarray(0, 32);
  }
  return Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), HKDF_INFO, 32));
}

export function sealDatagram(message: Buffer, key: Buffer | null, tag: Buffer): Buffer {
  const head = Buffer.from([MAGIC0, MAGIC1, WIRE_VERSION, key ? FLAG_ENCRYPTED : 0, 0, 0, 0, 0]);
  tag.copy(head, 4, 0, 4);
  if (key) {
    const nonce = randomBytes(NONCE);
    const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG });
    c.setAAD(head);
    const ct = Buffer.concat([c.update(message), c.final()]);
    return Buffer.concat([head, nonce, ct, c.getAuthTag()]);
  }
  const sum = createHash('sha256').update(head).update(message).digest().subarray(0, CHECKSUM);
  return Buffer.concat([head, message, sum]);
}

export function openDatagram(
  dg: Buffer,
  key: Buffer | null,
  tag: Buffer,
): { readonly message: Buffer } | { readonly drop: DropReason } {
  if (dg.length < ENVELOPE + CHECKSUM || dg[0] !== MAGIC0 || dg[1] !== MAGIC1) return { drop: 'malformed' };
  if (dg[2] !== WIRE_VERSION) return { drop: 'version' };
  if (!dg.subarray(4, 8).equals(tag.subarray(0, 4))) return { drop: 'cluster' };
  const encrypted = (dg[3]! & FLAG_ENCRYPTED) !== 0;
  // A node with a secret accepts nothing in clear, and one without cannot read ciphertext.
  if (encrypted !== (key !== null)) return { drop: 'auth' };
  const head = dg.subarray(0, ENVELOPE);
  if (key) {
    if (dg.length < ENVELOPE + NONCE + GCM_TAG) return { drop: 'malformed' };
    try {
      const d = createDecipheriv('aes-256-gcm', key, dg.subarray(ENVELOPE, ENVELOPE + NONCE), {
        authTagLength: GCM_TAG,
      });
      d.setAAD(head);
      d.setAuthTag(dg.subarray(dg.length - GCM_TAG));
      const ct = dg.subarray(ENVELOPE + NONCE, dg.length - GCM_TAG);
      return { message: Buffer.concat([d.update(ct), d.final()]) };
    } catch {
      return { drop: 'auth' };
    }
  }
  const body = dg.subarray(ENVELOPE, dg.length - CHECKSUM);
  const sum = createHash('sha256').update(head).update(body).digest().subarray(0, CHECKSUM);
  if (!sum.equals(dg.subarray(dg.length - CHECKSUM))) return { drop: 'checksum' };
  return { message: Buffer.from(body) };
}

// ---------------------------------------------------------------------------------------------
// Replay protection
// ---------------------------------------------------------------------------------------------

const SEQ_WINDOW = 128;
const SEQ_MASK = (1n << BigInt(SEQ_WINDOW)) - 1n;

interface ReplayRecord {
  boot: number;
  max: number;
  mask: bigint;
  seenMono: number;
}

/**
 * Per-sender replay state: datagrams outside ±windowMs of our clock are `stale`; inside, a
 * sender's boot must not go backwards and each (boot, seq) is accepted once (sliding window of
 * 128 sequence numbers, so moderate UDP reordering is tolerated).
 */
export class ReplayGuard {
  private readonly recs = new Map<string, ReplayRecord>();
  constructor(private readonly windowMs: number) {}

  /** Checks and records; returns the drop reason, or undefined when accepted. */
  accept(
    from: string,
    boot: number,
    seq: number,
    ts: number,
    wallNow: number,
    monoNow: number,
  ): DropReason | undefined {
    if (Math.abs(wallNow - ts) > this.windowMs) return 'stale';
    const r = this.recs.get(from);
    if (!r || boot > r.boot) {
      this.recs.set(from, { boot, max: seq, mask: 1n, seenMono: monoNow });
      return undefined;
    }
    if (boot < r.boot) return 'replay';
    if (seq > r.max) {
      const shift = seq - r.max;
      r.mask = shift >= SEQ_WINDOW ? 1n : ((r.mask << BigInt(shift)) | 1n) & SEQ_MASK;
      r.max = seq;
    } else {
      const d = r.max - seq;
      if (d >= SEQ_WINDOW) return 'replay';
      const bit = 1n << BigInt(d);
      if ((r.mask & bit) !== 0n) return 'replay';
      r.mask |= bit;
    }
    r.seenMono = monoNow;
    return undefined;
  }

  /** The latest (boot, seq) accepted from a sender: echoed back as round-trip evidence. */
  latest(from: string): { readonly boot: number; readonly seq: number } | undefined {
    const r = this.recs.get(from);
    return r ? { boot: r.boot, seq: r.max } : undefined;
  }

  /**
   * Forgets senders silent for more than 2 windows: every datagram of theirs we accepted is then
   * `stale`, so no replay can get through.
   */
  prune(monoNow: number): void {
    for (const [k, r] of this.recs) if (monoNow - r.seenMono > 2 * this.windowMs + 1000) this.recs.delete(k);
  }
}

/** Send times of our own recent datagrams, by seq (consecutive), for echo evidence. */
class SentLog {
  private readonly seqs: Float64Array;
  private readonly times: Float64Array;
  constructor(private readonly cap = 8192) {
    this.seqs = new Float64Array(cap).fill(-1);
    this.times = new Float64Array(cap);
  }
  record(seq: number, t: number): void {
    const i = seq % this.cap;
    this.seqs[i] = seq;
    this.times[i] = t;
  }
  time(seq: number): number | undefined {
    const i = seq % this.cap;
    return this.seqs[i] === seq ? this.times[i] : undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Membership
// ---------------------------------------------------------------------------------------------

export interface MembershipLog {
  debug?(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface Clock {
  /** Wall clock, ms since the epoch (datagram timestamps, boot ids). */
  wallMs(): number;
  /** Monotonic ms (all internal durations). */
  monoMs(): number;
}

export const SYSTEM_CLOCK: Clock = { wallMs: () => Date.now(), monoMs: () => performance.now() };

/** What the packet filter sees (inbound: after authentication, before processing). */
export interface PacketInfo {
  readonly dir: 'in' | 'out';
  readonly address: string;
  readonly port: number;
  readonly type: MessageType;
  readonly from: string;
  readonly to: string;
}

export interface MembershipOptions {
  /** Member name = node name (≤ 253 bytes). */
  readonly name: string;
  /** IPv4 or IPv6 address to bind (normally the pod/node IP). */
  readonly bindAddress: string;
  /** UDP port (default 7946; 0 = ephemeral, for tests). */
  readonly port?: number;
  /** Address/port announced to peers; required when bindAddress is a wildcard. */
  readonly advertiseAddress?: string;
  readonly advertisePort?: number;
  /** `host:port`, `[v6]:port`, bare host or bare IPv6 (default port). */
  readonly seeds?: readonly string[];
  /** Shared secret; without it datagrams are plaintext (integrity-checked only). */
  readonly secret?: Buffer;
  readonly keyDerivation?: KeyDerivation;
  /** Cluster name: datagrams carrying another cluster's tag are dropped. Default 'ironlb'. */
  readonly cluster?: string;
  readonly timings?: Partial<Timings>;
  readonly log: MembershipLog;
  readonly clock?: Clock;
  /** Uniform [0,1) source for target selection (nonces always use crypto). */
  readonly random?: () => number;
  /** Return false to drop a datagram (tests: partitions, loss). */
  readonly packetFilter?: (p: PacketInfo) => boolean;
  /**
   * Declare a member dead when two pings in a row are refused (ICMP port unreachable: its host is
   * up but nothing listens on its port, i.e. the speaker process is gone). Default true.
   */
  readonly deadOnRefusal?: boolean;
}

export type Phase = 'stopped' | 'joining' | 'fenced' | 'hold-down' | 'ok';

export interface MembershipStats {
  sent: number;
  received: number;
  bytesSent: number;
  bytesReceived: number;
  sendErrors: number;
  dropped: Record<DropReason, number>;
  events: {
    joined: number;
    suspected: number;
    refuted: number;
    dead: number;
    left: number;
    fenced: number;
    holdDowns: number;
    /** Members declared dead because their port refused our pings. */
    refused: number;
  };
  incarnation: number;
}

export interface MemberInfo {
  readonly name: string;
  readonly state: MemberState;
  readonly incarnation: number;
  readonly address: string;
  readonly port: number;
}

export interface MembershipSnapshot {
  readonly members: ReadonlySet<string>;
  readonly isolated: boolean;
}

interface Member {
  readonly name: string;
  address: string;
  port: number;
  state: MemberState;
  inc: number;
  /** Monotonic ms of the last state change. */
  since: number;
  /** Suspect/dead claimed by us while fenced: not authoritative, not gossiped. */
  localClaim: boolean;
  /**
   * Dead because its host refused our pings (its process is gone, we reach its host): it cannot
   * be answering for any IP, so it does not keep us fenced while it waits to be reaped.
   */
  refused?: boolean;
}

interface Dest {
  readonly address: string;
  readonly port: number;
  readonly name?: string;
}

interface Probe {
  readonly target: string;
  acked: boolean;
  readonly relays: Set<string>;
}

/**
 * A UDP socket connected to one member, for direct pings: the kernel reports an ICMP port
 * unreachable on a connected socket only (ECONNREFUSED), which tells "process gone" apart from
 * "host or path gone" within a round trip.
 */
interface ProbeSocket {
  readonly sock: dgram.Socket;
  readonly address: string;
  readonly port: number;
  /** connect() has completed: sends go through this socket (before: the main one). */
  ready: boolean;
  /** Refusals since the last datagram from the member, and when the first came. */
  refusals: number;
  firstRefusalAt: number;
}

interface Relay {
  readonly requester: Dest;
  readonly probe: number;
  readonly target: string;
  forwarded: boolean;
}

interface PendingSync {
  readonly at: number;
  readonly parts: Set<number>;
  onAnswer?: () => void;
}

interface HoldDown {
  readonly since: number;
  /** When a complete full-state answer arrived. */
  viewAt?: number;
  /** First message from each peer listing us alive at our incarnation `inc`. */
  readonly confirmed: Map<string, { inc: number; at: number }>;
}

const MAX_NAME = 253;
let lastBoot = 0;

/** Parses `host:port`, `[v6]:port`, `host` or a bare IPv6 address. */
export function parseHostPort(s: string, defaultPort: number): { host: string; port: number } {
  const t = s.trim();
  let host: string;
  let port = defaultPort;
  const br = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  if (br) {
    host = br[1]!;
    if (br[2] !== undefined) port = Number(br[2]);
  } else if ((t.match(/:/g) ?? []).length === 1) {
    const i = t.indexOf(':');
    host = t.slice(0, i);
    port = Number(t.slice(i + 1));
  } else {
    host = t;
  }
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new Error(`bad seed address "${s}"`);
  return { host, port };
}

function isWildcard(a: string): boolean {
  return a === '0.0.0.0' || a === '::' || a === '0:0:0:0:0:0:0:0';
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class Membership {
  readonly name: string;
  private readonly t: Timings;
  private readonly log: MembershipLog;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly filter?: (p: PacketInfo) => boolean;
  private readonly deadOnRefusal: boolean;
  /** Connected sockets for direct pings, by member name (see ProbeSocket). */
  private readonly probeSockets = new Map<string, ProbeSocket>();
  private readonly key: Buffer | null;
  private readonly tag: Buffer;
  private readonly family: 4 | 6;
  private readonly bindAddress: string;
  private readonly bindPort: number;
  private readonly advertisePortFixed: boolean;
  private seeds: { host: string; port: number }[];
  private resolvedSeeds: Dest[] = [];

  private socket?: dgram.Socket;
  private running = false;
  private used = false;
  private stopping = false;
  private boot = 0;
  private seq = 0;
  private probeSeq = 0;
  private startedAt = 0;
  private readonly table = new Map<string, Member>();
  private self: Member;
  private readonly replay: ReplayGuard;
  private readonly sent = new SentLog();
  private readonly queue = new Map<string, { entry: WireEntry; transmits: number }>();
  private readonly probes = new Map<number, Probe>();
  private readonly relays = new Map<number, Relay>();
  private readonly pendingSync = new Map<number, PendingSync>();
  private readonly suspicion = new Map<string, NodeJS.Timeout>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly immediates = new Set<NodeJS.Immediate>();
  private readonly joinAborts = new Set<(ok: boolean) => void>();
  private readonly drainWaiters = new Set<() => void>();
  private readonly listeners = new Set<(s: MembershipSnapshot) => void>();
  private probeOrder: string[] = [];
  private probeIdx = 0;
  private inflight = 0;

  private lastContact = -Infinity;
  private fenced = false;
  private holdDown: HoldDown | null = null;
  private hadPeers = false;
  private expected = false;
  private evalTimer?: NodeJS.Timeout;
  private evalDue = Infinity;

  private dirty = true;
  private liveCache: ReadonlySet<string>;
  private lastIsolated = true;
  private readonly lastDropWarn = new Map<DropReason, number>();
  private readonly counters: MembershipStats;

  constructor(opts: MembershipOptions) {
    if (!opts.name || Buffer.byteLength(opts.name) > MAX_NAME) {
      throw new Error('membership: name must be 1..253 bytes');
    }
    this.name = opts.name;
    this.t = { ...DEFAULT_TIMINGS, ...opts.timings };
    this.log = opts.log;
    for (const w of validateTimings(this.t)) this.log.warn(`membership: ${w}`);
    this.clock = opts.clock ?? SYSTEM_CLOCK;
    this.random = opts.random ?? Math.random;
    if (opts.packetFilter) this.filter = opts.packetFilter;
    this.deadOnRefusal = opts.deadOnRefusal ?? true;
    this.key = opts.secret ? deriveKey(opts.secret, opts.keyDerivation) : null;
    this.tag = clusterTag(opts.cluster ?? 'ironlb');
    const fam = isIP(opts.bindAddress);
    if (fam === 0) throw new Error(`membership: bind address "${opts.bindAddress}" is not an IP address`);
    this.family = fam as 4 | 6;
    this.bindAddress = opts.bindAddress;
    this.bindPort = opts.port ?? DEFAULT_PORT;
    const adv = opts.advertiseAddress ?? opts.bindAddress;
    if (isWildcard(adv)) throw new Error('membership: a wildcard bind address needs advertiseAddress');
    if (isIP(adv) !== this.family) throw new Error('membership: advertiseAddress must be of the bind family');
    this.seeds = (opts.seeds ?? []).map((s) => parseHostPort(s, DEFAULT_PORT));
    this.self = {
      name: this.name,
      address: adv,
      port: opts.advertisePort ?? this.bindPort,
      state: 'alive',
      inc: 0,
      since: 0,
      localClaim: false,
    };
    this.advertisePortFixed = opts.advertisePort !== undefined;
    this.table.set(this.name, this.self);
    this.replay = new ReplayGuard(this.t.replayWindowMs);
    this.liveCache = new Set([this.name]);
    const dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
    this.counters = {
      sent: 0,
      received: 0,
      bytesSent: 0,
      bytesReceived: 0,
      sendErrors: 0,
      dropped,
      events: {
        joined: 0,
        suspected: 0,
        refuted: 0,
        dead: 0,
        left: 0,
        fenced: 0,
        holdDowns: 0,
        refused: 0,
      },
      incarnation: 0,
    };
  }

  // ---- public API ---------------------------------------------------------------------------

  /** Binds, joins through the seeds (waits up to joinTimeoutMs) and starts the detector. */
  async start(): Promise<void> {
    if (this.used) throw new Error('membership: an instance can be started once; create a new one');
    this.used = true;
    const sock = dgram.createSocket({
      type: this.family === 6 ? 'udp6' : 'udp4',
      ipv6Only: this.family === 6,
    });
    this.socket = sock;
    sock.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo));
    sock.on('error', (err) => this.log.error('membership: socket error', { err: String(err) }));
    await new Promise<void>((resolve, reject) => {
      const onErr = (err: Error) => reject(err);
      sock.once('error', onErr);
      sock.bind(this.bindPort, this.bindAddress, () => {
        sock.off('error', onErr);
        resolve();
      });
    }).catch((err: unknown) => {
      this.socket = undefined;
      sock.close();
      throw err;
    });
    if (!this.advertisePortFixed) this.self.port = sock.address().port;
    const now = this.mono();
    this.boot = Math.max(Math.floor(this.clock.wallMs()), lastBoot + 1);
    lastBoot = this.boot;
    this.seq = 0;
    this.startedAt = now;
    this.self.since = now;
    this.running = true;
    this.stopping = false;
    this.seeds = this.seeds.filter((s) => !this.isSelfAddress(s.host, s.port));
    this.fenced = this.seeds.length > 0;
    this.expected = this.fenced;
    this.dirty = true;
    this.every(this.t.probeIntervalMs, () => this.tick());
    this.every(this.t.gossipIntervalMs, () => this.gossipTick());
    this.every(this.t.syncIntervalMs, () => this.syncTick());
    this.every(this.t.rejoinIntervalMs, () => void this.join());
    this.log.info('membership: started', {
      name: this.name,
      address: this.self.address,
      port: this.self.port,
      encrypted: this.key !== null,
      seeds: this.seeds.length,
    });
    this.guard(() => undefined);
    if (this.seeds.length > 0) {
      const ok = await this.join();
      if (!ok && this.running) this.log.warn('membership: no seed answered; retrying in the background');
    }
  }

  /** Graceful leave: isolates at once, tells every peer `left`, then closes (≤ ~1 s). */
  async stop(): Promise<void> {
    if (!this.running || this.stopping) return;
    this.stopping = true;
    this.emitIfChanged(); // the L2 speaker stops answering before peers move our IPs
    this.self.state = 'left';
    const left = this.entryOf(this.self);
    const peers = this.livePeers();
    const t0 = this.mono();
    for (let round = 0; round < 2 && this.running; round++) {
      for (const p of peers) this.sendMsg(p, { type: 'gossip' }, { extra: [left], noGossip: true });
      if (round === 0) await sleep(Math.min(20, this.t.leaveTimeoutMs / 4));
    }
    const rest = this.t.leaveTimeoutMs - (this.mono() - t0);
    if (this.inflight > 0 && rest > 0) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.drainWaiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, rest);
        this.drainWaiters.add(done);
      });
    }
    this.log.info('membership: left', { name: this.name, peers: peers.length });
    this.terminate();
  }

  /** Abrupt stop (no leave): clears every timer and closes the socket, like a crash. */
  terminate(): void {
    if (!this.socket && !this.running) return;
    this.running = false;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const im of this.immediates) clearImmediate(im);
    this.immediates.clear();
    this.suspicion.clear();
    this.probes.clear();
    this.relays.clear();
    this.pendingSync.clear();
    this.evalTimer = undefined;
    this.evalDue = Infinity;
    for (const abort of [...this.joinAborts]) abort(false);
    for (const d of [...this.drainWaiters]) d();
    const sock = this.socket;
    this.socket = undefined;
    try {
      sock?.close();
    } catch {
      // already closed
    }
    for (const name of [...this.probeSockets.keys()]) this.closeProbeSocket(name);
    this.emitIfChanged();
  }

  /** Live members (alive + suspect), this node included. */
  members(): ReadonlySet<string> {
    return this.dirty ? this.computeLive() : this.liveCache;
  }

  /** True while this node must not answer for any IP (fenced, hold-down, joining, stopped). */
  isolated(): boolean {
    return !this.running || this.stopping || this.fenced || this.holdDown !== null;
  }

  /**
   * How much longer (ms) this node may keep answering if no further contact arrives: 0 when
   * isolated, Infinity in a 1-node cluster. Meant as a dead-man lease for an out-of-process
   * responder, so that a stalled event loop cannot keep answering past the fence.
   */
  lease(): number {
    if (this.isolated()) return 0;
    const now = this.mono();
    if (!this.expectsPeers(now)) return Infinity;
    return Math.max(0, this.lastContact + this.t.fenceTimeoutMs - now);
  }

  phase(): Phase {
    if (!this.running || this.stopping) return 'stopped';
    if (this.fenced) return this.hadPeers ? 'fenced' : 'joining';
    return this.holdDown ? 'hold-down' : 'ok';
  }

  /** Called (synchronously) whenever members() or isolated() changes. */
  onChange(cb: (s: MembershipSnapshot) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  stats(): MembershipStats {
    const c = this.counters;
    return {
      ...c,
      dropped: { ...c.dropped },
      events: { ...c.events },
      incarnation: this.self.inc,
    };
  }

  /** Every known member (including dead/left tombstones), for diagnostics. */
  memberStates(): MemberInfo[] {
    return [...this.table.values()]
      .map((m) => ({ name: m.name, state: m.state, incarnation: m.inc, address: m.address, port: m.port }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The advertised address and the bound port (after start). */
  localAddress(): { address: string; port: number } {
    return { address: this.self.address, port: this.self.port };
  }

  setSeeds(seeds: readonly string[]): void {
    const parsed = seeds.map((s) => parseHostPort(s, DEFAULT_PORT));
    this.seeds = this.running ? parsed.filter((s) => !this.isSelfAddress(s.host, s.port)) : parsed;
  }

  /** Sends a sync request to every seed; true when one answered within joinTimeoutMs. */
  async join(): Promise<boolean> {
    if (!this.running || this.stopping) return false;
    const targets = await this.resolveSeeds();
    if (!this.running || targets.length === 0) return false;
    return new Promise<boolean>((resolve) => {
      let done = false;
      const ids: number[] = [];
      const finish = (ok: boolean) => {
        if (done) return;
        done = true;
        this.cancel(timer);
        this.joinAborts.delete(finish);
        for (const id of ids) {
          const p = this.pendingSync.get(id);
          if (p) delete p.onAnswer;
        }
        resolve(ok);
      };
      this.joinAborts.add(finish);
      const timer = this.after(this.t.joinTimeoutMs, () => finish(false));
      this.guard(() => {
        for (const d of targets) {
          ids.push(this.sendSync(d, 'sync-req', undefined, !this.fenced, () => finish(true)));
        }
      });
    });
  }

  // ---- timers -------------------------------------------------------------------------------

  private mono(): number {
    return this.clock.monoMs();
  }

  /**
   * One-shot timer whose callback runs after the I/O poll phase that follows its expiry: when
   * the event loop was late, datagrams that arrived meanwhile (acks, refutations, contact) are
   * processed before a probe verdict, a suspicion timeout or the fence decision.
   */
  private after(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(
      () => {
        const im = setImmediate(() => {
          this.immediates.delete(im);
          if (!this.timers.delete(t)) return; // cancelled meanwhile
          if (this.running) this.guard(fn);
        });
        this.immediates.add(im);
      },
      Math.max(0, ms),
    );
    this.timers.add(t);
    return t;
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(() => {
      if (this.running && !this.stopping) this.guard(fn);
    }, ms);
    this.timers.add(t);
  }

  private cancel(t: NodeJS.Timeout | undefined): void {
    if (!t) return;
    clearTimeout(t);
    this.timers.delete(t);
  }

  /** Runs fn, then re-evaluates the fence and notifies listeners; never throws. */
  private guard(fn: () => void): void {
    try {
      fn();
      this.evaluate();
      this.emitIfChanged();
    } catch (err) {
      this.log.error('membership: internal error', { err: err instanceof Error ? err.stack : String(err) });
    }
  }

  // ---- receive path -------------------------------------------------------------------------

  private onDatagram(dg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (!this.running) return;
    this.counters.bytesReceived += dg.length;
    const opened = openDatagram(dg, this.key, this.tag);
    if ('drop' in opened) return this.drop(opened.drop, rinfo);
    let msg: WireMessage;
    try {
      msg = decodeMessage(opened.message);
    } catch {
      return this.drop('malformed', rinfo);
    }
    const h = msg.header;
    if (h.from === this.name) return this.drop('self', rinfo);
    if (h.to !== this.name && !(h.to === '' && msg.body.type === 'sync-req')) {
      return this.drop('misdirected', rinfo);
    }
    if (
      this.filter &&
      !this.filter({
        dir: 'in',
        address: rinfo.address,
        port: rinfo.port,
        type: msg.body.type,
        from: h.from,
        to: h.to,
      })
    ) {
      return this.drop('filtered', rinfo);
    }
    const verdict = this.replay.accept(h.from, h.boot, h.seq, h.ts, this.clock.wallMs(), this.mono());
    if (verdict) return this.drop(verdict, rinfo);
    this.counters.received++;
    this.guard(() => this.handle(msg, rinfo));
  }

  private drop(reason: DropReason, rinfo: dgram.RemoteInfo): void {
    this.counters.dropped[reason]++;
    const now = this.mono();
    const last = this.lastDropWarn.get(reason);
    const quiet = reason === 'filtered' || reason === 'self';
    if (!quiet && (last === undefined || now - last > 60_000)) {
      this.lastDropWarn.set(reason, now);
      this.log.warn('membership: dropping datagrams', { reason, from: `${rinfo.address}:${rinfo.port}` });
    } else {
      this.log.debug?.('membership: dropped datagram', { reason, from: `${rinfo.address}:${rinfo.port}` });
    }
  }

  private handle(msg: WireMessage, rinfo: dgram.RemoteInfo): void {
    const now = this.mono();
    const h = msg.header;
    const ps = this.probeSockets.get(h.from);
    if (ps) ps.refusals = 0;
    // Round-trip evidence: the sender has seen one of our datagrams of this boot, and it neither
    // suspects us nor holds us dead (those may be about to answer, or answering, for our IPs).
    if (h.echoBoot === this.boot && h.echoSeq > 0) {
      const sentAt = this.sent.time(h.echoSeq);
      const viewOk = h.yourState === null || h.yourState === 'alive';
      if (sentAt !== undefined && viewOk && sentAt > this.lastContact) this.lastContact = sentAt;
    }
    this.evaluate(now);
    const hd = this.holdDown;
    if (hd && !this.fenced && h.yourState === 'alive' && h.yourInc === this.self.inc) {
      if (hd.confirmed.get(h.from)?.inc !== h.yourInc) hd.confirmed.set(h.from, { inc: h.yourInc, at: now });
    }
    for (const e of msg.gossip) this.applyEntry(e, false, now);
    this.emitIfChanged(); // listeners see state changes before we answer anybody
    const b = msg.body;
    const sender: Dest = { address: rinfo.address, port: rinfo.port, name: h.from };
    switch (b.type) {
      case 'ping':
        if (b.target === this.name && !this.stopping) this.sendMsg(sender, { type: 'ack', probe: b.probe });
        break;
      case 'ack': {
        const p = this.probes.get(b.probe);
        if (p) {
          if (p.target === h.from || p.relays.has(h.from)) p.acked = true;
          break;
        }
        const r = this.relays.get(b.probe);
        if (r && r.target === h.from && !r.forwarded) {
          r.forwarded = true;
          this.sendMsg(r.requester, { type: 'ack', probe: r.probe });
        }
        break;
      }
      case 'nack':
        break; // its only use is the round-trip evidence above
      case 'ping-req':
        if (!this.stopping) this.relay(sender, b.probe, b.target, b.address, b.port);
        break;
      case 'sync-req':
        for (const e of b.entries) this.applyEntry(e, true, now);
        this.emitIfChanged();
        if (b.part === 0 && !this.stopping) this.sendSync(sender, 'sync-resp', b.id, !this.fenced);
        break;
      case 'sync-resp': {
        for (const e of b.entries) this.applyEntry(e, true, now);
        const p = this.pendingSync.get(b.id);
        if (p) {
          p.parts.add(b.part);
          const cb = p.onAnswer;
          delete p.onAnswer;
          if (p.parts.size >= b.parts) {
            this.pendingSync.delete(b.id);
            if (this.holdDown && this.holdDown.viewAt === undefined && !this.fenced)
              this.holdDown.viewAt = now;
          }
          cb?.();
        }
        break;
      }
      case 'gossip':
        break;
    }
  }

  // ---- membership state ---------------------------------------------------------------------

  private applyEntry(e: WireEntry, fromSync: boolean, now: number): void {
    if (e.name === this.name) return this.aboutSelf(e, now);
    if (!e.name || Buffer.byteLength(e.name) > MAX_NAME) return;
    // Full-state pushes may be stale: treat their `dead` as `suspect` (as memberlist does); the
    // member then refutes, or our own timer declares it dead.
    const state: MemberState = fromSync && e.state === 'dead' ? 'suspect' : e.state;
    const cur = this.table.get(e.name);
    switch (state) {
      case 'alive':
        if (!cur) {
          if (isIP(e.address) !== this.family || e.port < 1) return;
          const m: Member = { ...e, state: 'alive', since: now, localClaim: false };
          this.table.set(e.name, m);
          this.hadPeers = true;
          this.counters.events.joined++;
          this.dirty = true;
          this.broadcast(m);
          this.log.info('membership: member joined', { member: e.name, address: e.address, port: e.port });
        } else if (e.inc > cur.inc || (cur.localClaim && e.inc >= cur.inc && cur.state !== 'alive')) {
          if (isIP(e.address) !== this.family || e.port < 1) return;
          const was = cur.state;
          this.setAlive(cur, e.inc, e.address, e.port, now);
          this.broadcast(cur);
          if (was !== 'alive') this.log.info('membership: member alive', { member: e.name, inc: e.inc, was });
        }
        return;
      case 'suspect':
        if (!cur || e.inc < cur.inc || cur.state === 'dead' || cur.state === 'left') return;
        if (cur.state === 'suspect') {
          if (e.inc > cur.inc) {
            cur.inc = e.inc;
            this.broadcast(cur);
          }
          return;
        }
        this.setSuspect(cur, e.inc, now);
        return;
      case 'dead':
        if (!cur || e.inc < cur.inc || cur.state === 'left') return;
        if (cur.state === 'dead') {
          cur.localClaim = false;
          cur.inc = e.inc;
          return;
        }
        this.setDead(cur, e.inc, now, false);
        return;
      case 'left':
        if (!cur || e.inc < cur.inc || cur.state === 'left') return;
        this.setLeft(cur, e.inc, now);
        return;
    }
  }

  /** Someone's claim about this node: refute suspicion/death by bumping the incarnation. */
  private aboutSelf(e: WireEntry, now: number): void {
    if (this.stopping) return;
    const me = this.self;
    if (e.state === 'alive') {
      if (e.inc > me.inc) {
        // a previous life of ours is known with a higher incarnation
        me.inc = e.inc + 1;
        this.broadcast(me);
      }
      return;
    }
    if (e.inc < me.inc) return;
    me.inc = e.inc + 1;
    this.counters.events.refuted++;
    this.broadcast(me);
    this.log.info('membership: refuting', { claim: e.state, inc: me.inc });
    if ((e.state === 'dead' || e.state === 'left') && !this.fenced) {
      // whoever believed that may be answering for our IPs: stop until they list us again
      this.startHoldDown(now, `a peer declared this node ${e.state}`);
    }
  }

  private setAlive(m: Member, inc: number, address: string, port: number, now: number): void {
    this.cancel(this.suspicion.get(m.name));
    this.suspicion.delete(m.name);
    m.state = 'alive';
    m.inc = inc;
    m.address = address;
    m.port = port;
    m.since = now;
    m.localClaim = false;
    m.refused = false;
    this.dirty = true;
  }

  private setSuspect(m: Member, inc: number, now: number): void {
    m.state = 'suspect';
    m.refused = false;
    m.inc = inc;
    m.since = now;
    m.localClaim = this.fenced;
    this.counters.events.suspected++;
    this.broadcast(m);
    this.log.debug?.('membership: suspect', { member: m.name, inc });
    this.cancel(this.suspicion.get(m.name));
    const timer = this.after(this.suspicionTimeout(), () => {
      this.suspicion.delete(m.name);
      if (this.table.get(m.name) === m && m.state === 'suspect') this.setDead(m, m.inc, this.mono(), true);
    });
    this.suspicion.set(m.name, timer);
  }

  private setDead(m: Member, inc: number, now: number, byUs: boolean, refused = false): void {
    m.refused = refused;
    this.cancel(this.suspicion.get(m.name));
    this.suspicion.delete(m.name);
    m.state = 'dead';
    m.inc = inc;
    m.since = now;
    m.localClaim = byUs && this.fenced;
    this.counters.events.dead++;
    this.dirty = true;
    this.closeProbeSocket(m.name);
    this.broadcast(m);
    this.log.info('membership: member dead', { member: m.name, inc, byUs, local: m.localClaim, refused });
  }

  private setLeft(m: Member, inc: number, now: number): void {
    this.cancel(this.suspicion.get(m.name));
    this.suspicion.delete(m.name);
    m.state = 'left';
    m.inc = inc;
    m.since = now;
    m.localClaim = false;
    this.counters.events.left++;
    this.dirty = true;
    this.closeProbeSocket(m.name);
    this.broadcast(m);
    this.log.info('membership: member left', { member: m.name });
  }

  /** Lifeguard-style scaling: suspicionMs up to 10 members, × log10(n) beyond. */
  private suspicionTimeout(): number {
    let n = 0;
    for (const m of this.table.values()) if (m.state === 'alive' || m.state === 'suspect') n++;
    return this.t.suspicionMs * Math.max(1, Math.log10(Math.max(1, n)));
  }

  private entryOf(m: Member): WireEntry {
    return { name: m.name, state: m.state, inc: m.inc, address: m.address, port: m.port };
  }

  private broadcast(m: Member): void {
    if (m.localClaim || (this.fenced && m !== this.self)) return;
    this.queue.set(m.name, { entry: this.entryOf(m), transmits: 0 });
  }

  private livePeers(): Member[] {
    const out: Member[] = [];
    for (const m of this.table.values()) {
      if (m !== this.self && (m.state === 'alive' || m.state === 'suspect')) out.push(m);
    }
    return out;
  }

  private computeLive(): ReadonlySet<string> {
    const s = new Set<string>([this.name]);
    for (const m of this.table.values()) if (m.state === 'alive' || m.state === 'suspect') s.add(m.name);
    return s;
  }

  private emitIfChanged(): void {
    const iso = this.isolated();
    if (!this.dirty && iso === this.lastIsolated) return;
    const live = this.dirty ? this.computeLive() : this.liveCache;
    this.dirty = false;
    const same =
      iso === this.lastIsolated &&
      live.size === this.liveCache.size &&
      [...live].every((n) => this.liveCache.has(n));
    if (same) return;
    this.liveCache = live;
    this.lastIsolated = iso;
    const snap: MembershipSnapshot = { members: live, isolated: iso };
    for (const cb of [...this.listeners]) {
      try {
        cb(snap);
      } catch (err) {
        this.log.error('membership: onChange listener failed', { err: String(err) });
      }
    }
  }

  // ---- fencing ------------------------------------------------------------------------------

  /** Peers we should be able to reach: any non-left member not yet reaped, or unanswered seeds. */
  private expectsPeers(now: number): boolean {
    for (const m of this.table.values())
      if (m !== this.self && m.state !== 'left' && !(m.state === 'dead' && m.refused)) return true;
    return !this.hadPeers && this.seeds.length > 0 && now - this.startedAt < this.t.deadReapMs;
  }

  private evaluate(nowArg?: number): void {
    if (!this.running || this.stopping) return;
    const now = nowArg ?? this.mono();
    const expects = this.expectsPeers(now);
    if (expects && !this.expected && this.lastContact < now) {
      this.lastContact = now; // a first peer appeared: give the round trip fenceTimeoutMs
    }
    this.expected = expects;
    const fresh = now - this.lastContact < this.t.fenceTimeoutMs;
    if (this.fenced) {
      if (!expects) {
        this.fenced = false;
        this.holdDown = null;
        this.log.warn('membership: no peer left to reach; continuing as a single-node cluster');
      } else if (fresh) {
        this.fenced = false;
        this.startHoldDown(now, 'contact regained');
      }
    } else if (expects && !fresh) {
      this.enterFence(now);
    }
    if (!this.fenced && this.holdDown) this.checkHoldDown(now, expects);
    let due = Infinity;
    if (!this.fenced && expects) due = this.lastContact + this.t.fenceTimeoutMs;
    if (this.holdDown && !this.fenced) due = Math.min(due, this.holdDownDue(now));
    if (due < this.evalDue || !this.evalTimer) {
      if (due === Infinity) return;
      this.cancel(this.evalTimer);
      this.evalDue = due;
      const timer = this.after(due - now + 1, () => {
        if (this.evalTimer === timer) {
          this.evalTimer = undefined;
          this.evalDue = Infinity;
        }
        this.evaluate();
      });
      this.evalTimer = timer;
    }
  }

  private enterFence(now: number): void {
    this.fenced = true;
    this.holdDown = null;
    this.counters.events.fenced++;
    // Others will declare us dead at the incarnation they know: come back with a higher one.
    this.self.inc++;
    for (const k of [...this.queue.keys()]) if (k !== this.name) this.queue.delete(k);
    // Our suspicions from before are not worth spreading once we know we were the cut-off one.
    for (const m of this.table.values()) if (m.state === 'suspect') m.localClaim = true;
    this.log.warn('membership: no contact with any peer; isolated', {
      lastContactMsAgo: Math.round(now - this.lastContact),
      inc: this.self.inc,
    });
  }

  private startHoldDown(now: number, reason: string): void {
    this.holdDown = { since: now, confirmed: new Map() };
    this.counters.events.holdDowns++;
    this.log.info('membership: hold-down', { reason, inc: this.self.inc });
    for (const p of this.pick(this.livePeers(), 3)) this.sendSync(p, 'sync-req', undefined, false);
  }

  /**
   * Live peers that have not yet listed us alive at our current incarnation during this
   * hold-down, and the latest of their first confirmations (or the view's arrival, if later).
   */
  private unconfirmed(hd: HoldDown): { missing: Member[]; last: number } {
    const missing: Member[] = [];
    let last = hd.viewAt ?? Infinity;
    for (const m of this.livePeers()) {
      const c = hd.confirmed.get(m.name);
      if (c && c.inc === this.self.inc) last = Math.max(last, c.at);
      else missing.push(m);
    }
    return { missing, last };
  }

  private holdDownDue(now: number): number {
    const hd = this.holdDown!;
    const { missing, last } = this.unconfirmed(hd);
    if (missing.length === 0 && last !== Infinity) return last + this.t.holdDownMs;
    return Math.max(now + this.t.probeIntervalMs, hd.since + this.t.holdDownMaxMs);
  }

  private checkHoldDown(now: number, expects: boolean): void {
    const hd = this.holdDown!;
    if (!expects) {
      this.holdDown = null;
      return;
    }
    const { missing, last } = this.unconfirmed(hd);
    if (missing.length === 0 && last !== Infinity) {
      if (now >= last + this.t.holdDownMs) {
        this.holdDown = null;
        this.log.info('membership: hold-down over; answering again', {
          heldMs: Math.round(now - hd.since),
          inc: this.self.inc,
        });
      }
    } else if (now - hd.since >= this.t.holdDownMaxMs && hd.viewAt !== undefined) {
      this.holdDown = null;
      this.log.warn('membership: hold-down cap reached without confirmation from every peer', {
        unconfirmed: missing.map((m) => m.name),
      });
    }
  }

  // ---- periodic work ------------------------------------------------------------------------

  private tick(): void {
    const now = this.mono();
    this.reap(now);
    if (this.fenced) {
      // Look for a way back: any known member (dead ones too) or seed.
      const cands: Dest[] = [...this.table.values()].filter((m) => m !== this.self && m.state !== 'left');
      cands.push(...this.resolvedSeeds);
      const d = this.pick(cands, 1)[0];
      if (d) this.sendSync(d, 'sync-req', undefined, false);
    } else if (this.holdDown) {
      // Until a full view has arrived ask for one; then nudge peers that have not listed us yet
      // with a ping carrying our entry (their ack shows their view of us).
      const hd = this.holdDown;
      const { missing } = this.unconfirmed(hd);
      const self = this.entryOf(this.self);
      for (const p of this.pick(missing, 3)) {
        if (hd.viewAt === undefined) this.sendSync(p, 'sync-req', undefined, false);
        else this.sendMsg(p, { type: 'ping', probe: this.newProbeId(), target: p.name }, { extra: [self] });
      }
    }
    this.probe();
  }

  private probe(): void {
    const target = this.nextTarget();
    if (!target) return;
    const id = this.newProbeId();
    const p: Probe = { target: target.name, acked: false, relays: new Set() };
    this.probes.set(id, p);
    this.sendMsg(
      target,
      { type: 'ping', probe: id, target: target.name },
      { via: this.probeSocketFor(target) },
    );
    this.after(this.t.probeTimeoutMs, () => {
      if (p.acked) return;
      const relays = this.pick(
        this.livePeers().filter((m) => m.name !== p.target && m.state === 'alive'),
        this.t.indirectChecks,
      );
      for (const r of relays) {
        p.relays.add(r.name);
        this.sendMsg(r, {
          type: 'ping-req',
          probe: id,
          target: target.name,
          address: target.address,
          port: target.port,
        });
      }
    });
    this.after(this.t.probeIntervalMs, () => {
      this.probes.delete(id);
      if (p.acked) return;
      const m = this.table.get(p.target);
      if (m && m.state === 'alive' && !this.stopping) this.setSuspect(m, m.inc, this.mono());
    });
  }

  /** The member's connected ping socket (created on first use; undefined when turned off). */
  private probeSocketFor(m: Member): ProbeSocket | undefined {
    if (!this.deadOnRefusal || !this.running) return undefined;
    const cur = this.probeSockets.get(m.name);
    if (cur && cur.address === m.address && cur.port === m.port) return cur;
    if (cur) this.closeProbeSocket(m.name);
    const sock = dgram.createSocket({
      type: this.family === 6 ? 'udp6' : 'udp4',
      ipv6Only: this.family === 6,
    });
    const ps = { sock, address: m.address, port: m.port, refusals: 0, firstRefusalAt: 0, ready: false };
    this.probeSockets.set(m.name, ps);
    sock.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') this.guard(() => this.onRefused(m.name, ps));
      else this.log.debug?.('membership: ping socket error', { member: m.name, err: String(err) });
    });
    try {
      sock.connect(m.port, m.address, () => {
        ps.ready = true;
      });
    } catch (err) {
      this.log.debug?.('membership: ping socket connect failed', { member: m.name, err: String(err) });
      this.closeProbeSocket(m.name);
      return undefined;
    }
    return ps;
  }

  private closeProbeSocket(name: string): void {
    const ps = this.probeSockets.get(name);
    if (!ps) return;
    this.probeSockets.delete(name);
    try {
      ps.sock.close();
    } catch {
      // already closed
    }
  }

  /**
   * A ping to `name` was refused: its host answered that nothing listens on the port. One more
   * ping at once; a second refusal within two periods (with no datagram from it in between) and
   * it is dead without waiting for the suspicion timeout. A partition cannot cause this (no ICMP
   * crosses it either), so the fencing bound is unaffected.
   */
  private onRefused(name: string, ps: ProbeSocket): void {
    if (!this.running || this.stopping || this.probeSockets.get(name) !== ps) return;
    const m = this.table.get(name);
    if (!m || (m.state !== 'alive' && m.state !== 'suspect')) return;
    const now = this.mono();
    if (ps.refusals === 0 || now - ps.firstRefusalAt > 2 * this.t.probeIntervalMs) {
      ps.refusals = 1;
      ps.firstRefusalAt = now;
      this.sendMsg(
        m,
        { type: 'ping', probe: this.newProbeId(), target: m.name },
        { via: ps, noGossip: true },
      );
      return;
    }
    ps.refusals++;
    this.counters.events.refused++;
    this.log.info('membership: pings refused (nothing listens on its port)', {
      member: name,
      address: `${m.address}:${m.port}`,
    });
    this.setDead(m, m.inc, now, true, true);
  }

  private relay(requester: Dest, probe: number, target: string, address: string, port: number): void {
    if (target === this.name || isIP(address) !== this.family) return;
    const id = this.newProbeId();
    const r: Relay = { requester, probe, target, forwarded: false };
    this.relays.set(id, r);
    this.sendMsg({ address, port, name: target }, { type: 'ping', probe: id, target });
    this.after(this.t.probeTimeoutMs * 0.8, () => {
      if (!r.forwarded) this.sendMsg(requester, { type: 'nack', probe });
    });
    this.after(this.t.probeIntervalMs, () => this.relays.delete(id));
  }

  private nextTarget(): Member | undefined {
    for (let round = 0; round < 2; round++) {
      while (this.probeIdx < this.probeOrder.length) {
        const m = this.table.get(this.probeOrder[this.probeIdx++]!);
        if (m && m !== this.self && (m.state === 'alive' || m.state === 'suspect')) return m;
      }
      this.probeOrder = this.shuffle(this.livePeers().map((m) => m.name));
      this.probeIdx = 0;
      if (this.probeOrder.length === 0) return undefined;
    }
    return undefined;
  }

  private gossipTick(): void {
    if (this.queue.size === 0 || this.fenced) return;
    for (const p of this.pick(this.livePeers(), this.t.gossipFanout)) {
      if (this.queue.size === 0) break;
      this.sendMsg(p, { type: 'gossip' });
    }
  }

  private syncTick(): void {
    const now = this.mono();
    for (const [id, p] of this.pendingSync) if (now - p.at > 10_000) this.pendingSync.delete(id);
    this.replay.prune(now);
    if (this.fenced) return; // tick() is already looking for a way back
    const live = this.livePeers();
    const [peer] = this.pick(live, 1);
    if (peer) this.sendSync(peer, 'sync-req', undefined, true);
    const dead = [...this.table.values()].filter((m) => m.state === 'dead');
    const [ghost] = this.pick(dead, 1);
    if (ghost) this.sendSync(ghost, 'sync-req', undefined, true); // heals partitions
    if (live.length === 0 && this.seeds.length > 0) void this.join();
  }

  private reap(now: number): void {
    for (const m of [...this.table.values()]) {
      if ((m.state === 'dead' || m.state === 'left') && now - m.since >= this.t.deadReapMs) {
        this.table.delete(m.name);
        this.queue.delete(m.name);
        this.closeProbeSocket(m.name);
        this.log.info('membership: forgot member', { member: m.name, state: m.state });
      }
    }
  }

  private async resolveSeeds(): Promise<Dest[]> {
    const out: Dest[] = [];
    for (const s of this.seeds) {
      if (isIP(s.host)) {
        if (isIP(s.host) === this.family) out.push({ address: s.host, port: s.port });
        continue;
      }
      try {
        const r = await lookup(s.host, { family: this.family });
        if (!this.isSelfAddress(r.address, s.port)) out.push({ address: r.address, port: s.port });
      } catch (err) {
        this.log.warn('membership: cannot resolve seed', { seed: s.host, err: String(err) });
      }
    }
    this.resolvedSeeds = out;
    return out;
  }

  private isSelfAddress(host: string, port: number): boolean {
    if (port !== this.self.port && port !== this.bindPort) return false;
    return host === this.self.address || host === this.bindAddress;
  }

  // ---- send path ----------------------------------------------------------------------------

  private newProbeId(): number {
    this.probeSeq = (this.probeSeq + 1) >>> 0;
    return this.probeSeq;
  }

  private get maxMessage(): number {
    return this.t.maxDatagramBytes - envelopeOverhead(this.key !== null);
  }

  private header(dest: Dest): WireHeader {
    const peer = dest.name ? this.table.get(dest.name) : undefined;
    const echo = dest.name ? this.replay.latest(dest.name) : undefined;
    return {
      from: this.name,
      to: dest.name ?? '',
      boot: this.boot,
      seq: Math.min(this.seq + 1, U48_MAX),
      ts: Math.floor(this.clock.wallMs()),
      echoBoot: echo?.boot ?? 0,
      echoSeq: echo?.seq ?? 0,
      yourState: peer?.state ?? null,
      yourInc: peer?.inc ?? 0,
    };
  }

  private sendMsg(
    dest: Dest,
    body: WireBody,
    opt: { extra?: WireEntry[]; noGossip?: boolean; via?: ProbeSocket } = {},
  ): void {
    const sock = this.socket;
    if (!sock || !this.running) return;
    const header = this.header(dest);
    const extra = opt.extra ?? [];
    let gossip = extra;
    if (!opt.noGossip && this.queue.size > 0) {
      const base = encodeMessage({ header, body, gossip: extra }).length;
      gossip = [...extra, ...this.takeGossip(this.maxMessage - base, 255 - extra.length)];
    }
    this.seq = header.seq;
    this.sent.record(header.seq, this.mono());
    if (
      this.filter &&
      !this.filter({
        dir: 'out',
        address: dest.address,
        port: dest.port,
        type: body.type,
        from: this.name,
        to: header.to,
      })
    ) {
      this.counters.dropped.filtered++;
      return;
    }
    const dg = sealDatagram(encodeMessage({ header, body, gossip }), this.key, this.tag);
    this.counters.sent++;
    this.counters.bytesSent += dg.length;
    this.inflight++;
    const done = (err?: Error | null) => {
      this.inflight--;
      if (err) {
        this.counters.sendErrors++;
        this.log.debug?.('membership: send failed', { to: `${dest.address}:${dest.port}`, err: String(err) });
      }
      if (this.inflight === 0) for (const d of [...this.drainWaiters]) d();
    };
    try {
      if (opt.via?.ready) opt.via.sock.send(dg, done);
      else sock.send(dg, dest.port, dest.address, done);
    } catch (err) {
      done(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private takeGossip(budget: number, maxCount: number): WireEntry[] {
    let live = 0;
    for (const m of this.table.values()) if (m.state === 'alive' || m.state === 'suspect') live++;
    const limit = this.t.retransmitMult * Math.max(1, Math.ceil(Math.log10(live + 1)));
    const items = [...this.queue.values()].sort((a, b) => a.transmits - b.transmits);
    const out: WireEntry[] = [];
    let used = 0;
    for (const it of items) {
      if (out.length >= maxCount) break;
      const s = entrySize(it.entry);
      if (used + s > budget) continue;
      out.push(it.entry);
      used += s;
      if (++it.transmits >= limit) this.queue.delete(it.entry.name);
    }
    return out;
  }

  /** Sends our state (everything, or just our own entry) in as many datagrams as needed. */
  private sendSync(
    dest: Dest,
    type: 'sync-req' | 'sync-resp',
    respondTo: number | undefined,
    full: boolean,
    onAnswer?: () => void,
  ): number {
    const id = respondTo ?? this.newProbeId();
    if (type === 'sync-req') {
      const p: PendingSync = { at: this.mono(), parts: new Set() };
      if (onAnswer) p.onAnswer = onAnswer;
      this.pendingSync.set(id, p);
    }
    const entries = [this.entryOf(this.self)];
    if (full) {
      for (const m of this.table.values())
        if (m !== this.self && !m.localClaim) entries.push(this.entryOf(m));
    }
    const base = encodeMessage({
      header: this.header(dest),
      body: { type, id, part: 0, parts: 1, entries: [] },
      gossip: [],
    }).length;
    const budget = this.maxMessage - base;
    const chunks: WireEntry[][] = [[]];
    let used = 0;
    for (const e of entries) {
      const s = entrySize(e);
      if (used + s > budget && chunks[chunks.length - 1]!.length > 0) {
        chunks.push([]);
        used = 0;
      }
      chunks[chunks.length - 1]!.push(e);
      used += s;
    }
    if (chunks.length > 255) {
      this.log.warn('membership: state too large for one sync; truncated', { members: entries.length });
      chunks.length = 255;
    }
    chunks.forEach((c, part) => {
      this.sendMsg(dest, { type, id, part, parts: chunks.length, entries: c }, { noGossip: true });
    });
    return id;
  }

  private pick<T>(xs: readonly T[], k: number): T[] {
    return this.shuffle([...xs]).slice(0, Math.max(0, k));
  }

  private shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  }
}
