/**
 * MetalLB's webhooks (spec a.0, a.5, a.7, a.11, f.1), served by the controller on every replica:
 *
 * - validating webhooks (AdmissionReview v1) at `/validate-metallb-io-v1beta1-<kind>` and
 *   `/validate-metallb-io-v1beta2-bgppeer`: namespace of new objects, the CRD schema, and the
 *   layer-3 parse of `ironlb validate` over the current objects with the incoming one substituted,
 *   loading only the kinds a.11 lists for each webhook; BFDProfile deletion while referenced;
 * - the BGPPeer conversion webhook (ConversionReview v1) at `/convert` (a.5);
 * - the serving certificate: from files (reloaded on change), from memory, or a generated
 *   self-signed CA + serving certificate; and `ensureWebhookCerts`, MetalLB's cert rotation
 *   (Secret `metallb-webhook-cert`, caBundle in `metallb-webhook-configuration` and in the
 *   bgppeers CRD conversion config).
 *
 * Node 20's crypto cannot create certificates, so the few DER structures of an X.509 v3
 * certificate are written here (ECDSA P-256, signed with crypto.sign).
 */
import {
  X509Certificate,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  type KeyObject,
} from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';

import { parseIP } from '../ip/ip.js';
import { nodeInfo } from '../config/load.js';
import {
  ConfigParser,
  convertPeerV1beta1,
  emptyInput,
  type ConfigInput,
  type RawObject,
} from '../config/parse.js';
import { formatProblem, type Problem } from '../config/problems.js';
import { parseGoDuration, type SchemaValidation, type ValidateOptions } from '../config/schema.js';
import {
  ApiError,
  RESOURCES,
  resourcePath,
  type KObject,
  type KubeClient,
  type Resource,
} from '../k8s/client.js';
import { Informer } from '../k8s/informer.js';
import type { Logger } from '../util/log.js';
import { asRecord } from '../util/shape.js';

// =============================================================================================
// Names and paths
// =============================================================================================

/** The kinds with a validating webhook. */
export type WebhookKind =
  'IPAddressPool' | 'L2Advertisement' | 'BGPAdvertisement' | 'Community' | 'BFDProfile' | 'BGPPeer';

/** MetalLB's webhook paths (spec a.0). */
export const WEBHOOK_PATHS: Readonly<Record<string, WebhookKind>> = {
  '/validate-metallb-io-v1beta1-ipaddresspool': 'IPAddressPool',
  '/validate-metallb-io-v1beta1-l2advertisement': 'L2Advertisement',
  '/validate-metallb-io-v1beta1-bgpadvertisement': 'BGPAdvertisement',
  '/validate-metallb-io-v1beta1-community': 'Community',
  '/validate-metallb-io-v1beta1-bfdprofile': 'BFDProfile',
  '/validate-metallb-io-v1beta2-bgppeer': 'BGPPeer',
};
export const CONVERT_PATH = '/convert';

export const DEFAULT_WEBHOOK_PORT = 9443;
export const DEFAULT_WEBHOOK_SERVICE = 'metallb-webhook-service';
export const DEFAULT_WEBHOOK_SECRET = 'metallb-webhook-cert';
export const WEBHOOK_CONFIGURATION_NAME = 'metallb-webhook-configuration';
export const BGPPEER_CRD_NAME = 'bgppeers.metallb.io';
/** controller-runtime's default certificate directory. */
export const DEFAULT_CERT_DIR = '/tmp/k8s-webhook-server/serving-certs';

export const DISABLE_MP_WARNING =
  'spec.disableMP is deprecated and has no effect in FRR mode; use spec.dualStackAddressFamily';

// =============================================================================================
// X.509: a self-signed CA and a serving certificate (ECDSA P-256, SHA-256)
// =============================================================================================

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}
const seq = (...c: Buffer[]) => tlv(0x30, ...c);
const derSet = (...c: Buffer[]) => tlv(0x31, ...c);
const octets = (b: Buffer) => tlv(0x04, b);
const bitString = (b: Buffer, unused = 0) => tlv(0x03, Buffer.from([unused]), b);
const derTrue = () => tlv(0x01, Buffer.from([0xff]));
function derInteger(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  return tlv(0x02, (v[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}
function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}
function derTime(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  const year = d.getUTCFullYear();
  // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
  return year < 2050
    ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, 'ascii'))
    : tlv(0x18, Buffer.from(`${digits}Z`, 'ascii'));
}
const OID = {
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  subjectKeyId: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyId: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
};
function derName(cn: string): Buffer {
  return seq(
    derSet(seq(oid(OID.organization), tlv(0x0c, Buffer.from('ironlb', 'utf8')))),
    derSet(seq(oid(OID.commonName), tlv(0x0c, Buffer.from(cn, 'utf8')))),
  );
}
function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), derTrue(), octets(value)) : seq(oid(id), octets(value));
}
/** One DER element at `pos`: its tag, content bounds and where the next element starts. */
function derRead(buf: Buffer, pos: number): { tag: number; start: number; next: number } {
  const tag = buf[pos];
  let len = buf[pos + 1];
  if (tag === undefined || len === undefined) throw new Error('truncated DER');
  let p = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error('unsupported DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[p++] ?? 0);
  }
  if (p + len > buf.length) throw new Error('truncated DER');
  return { tag, start: p, next: p + len };
}
/** The contents' child elements of the element at `pos`, each as raw DER. */
function derChildren(buf: Buffer, pos = 0): Buffer[] {
  const el = derRead(buf, pos);
  const out: Buffer[] = [];
  for (let p = el.start; p < el.next;) {
    const c = derRead(buf, p);
    out.push(buf.subarray(p, c.next));
    p = c.next;
  }
  return out;
}
/** The subject Name of a certificate, byte for byte (a child's issuer must match it exactly). */
function subjectDer(cert: X509Certificate): Buffer {
  const tbs = derChildren(cert.raw)[0];
  if (!tbs) throw new Error('not a certificate');
  const fields = derChildren(tbs);
  const i = fields[0]?.[0] === 0xa0 ? 1 : 0; // optional [0] version
  const subject = fields[i + 4];
  if (!subject) throw new Error('certificate without a subject');
  return subject;
}
/** RFC 5280 key identifier, method 1: SHA-1 of the subjectPublicKey bits (as Go computes it). */
function keyId(pub: KeyObject): Buffer {
  const spki = pub.export({ type: 'spki', format: 'der' });
  const bits = derChildren(spki)[1];
  if (!bits) throw new Error('bad public key');
  const el = derRead(bits, 0);
  return createHash('sha1')
    .update(bits.subarray(el.start + 1, el.next))
    .digest();
}
/** The signature algorithm for a CA key: ECDSA or RSA (PKCS#1 v1.5), with SHA-256. */
function signatureAlgorithm(key: KeyObject): Buffer {
  if (key.asymmetricKeyType === 'ec') return seq(oid(OID.ecdsaWithSHA256));
  if (key.asymmetricKeyType === 'rsa') return seq(oid(OID.sha256WithRSA), tlv(0x05));
  throw new Error(`cannot sign certificates with a ${String(key.asymmetricKeyType)} key`);
}
function ipBytes(text: string): Buffer {
  const r = parseIP(text);
  if (!r.ok) throw new Error(`invalid IP address "${text}" for a certificate: ${r.reason}`);
  const len = r.value.family === 4 ? 4 : 16;
  const hex = r.value.value.toString(16).padStart(len * 2, '0');
  return Buffer.from(hex, 'hex');
}

interface CertSpec {
  subjectCN: string;
  subjectKey: KeyObject;
  /** The issuer's subject Name (DER); absent for a self-signed certificate. */
  issuerName?: Buffer;
  issuerKey: KeyObject;
  issuerPublic: KeyObject;
  notBefore: Date;
  notAfter: Date;
  ca: boolean;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
}

function issueCertificate(s: CertSpec): string {
  const pub = createPublicKey(s.subjectKey);
  const spki = pub.export({ type: 'spki', format: 'der' });
  const exts: Buffer[] = [
    extension(OID.basicConstraints, true, s.ca ? seq(derTrue()) : seq()),
    // digitalSignature (bit 0), plus keyCertSign (5) and cRLSign (6) for the CA.
    extension(
      OID.keyUsage,
      true,
      s.ca ? bitString(Buffer.from([0x86]), 1) : bitString(Buffer.from([0x80]), 7),
    ),
    extension(OID.subjectKeyId, false, octets(keyId(pub))),
  ];
  if (!s.ca) {
    exts.push(extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))));
    exts.push(extension(OID.authorityKeyId, false, seq(tlv(0x80, keyId(s.issuerPublic)))));
    const names = [
      ...(s.dnsNames ?? []).map((n) => tlv(0x82, Buffer.from(n, 'ascii'))),
      ...(s.ipAddresses ?? []).map((ip) => tlv(0x87, ipBytes(ip))),
    ];
    if (names.length) exts.push(extension(OID.subjectAltName, false, seq(...names)));
  }
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  const sigAlg = signatureAlgorithm(s.issuerKey);
  const subject = derName(s.subjectCN);
  const tbs = seq(
    tlv(0xa0, derInteger(Buffer.from([2]))),
    derInteger(serial),
    sigAlg,
    s.issuerName ?? subject,
    seq(derTime(s.notBefore), derTime(s.notAfter)),
    subject,
    spki,
    tlv(0xa3, seq(...exts)),
  );
  const signature = sign('sha256', tbs, s.issuerKey);
  const der = seq(tbs, sigAlg, bitString(signature));
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN CERTIFICATE-----\n${b64.replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
}

const newKey = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
const keyPem = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }).toString();
const DAY_MS = 86_400_000;

export interface GeneratedCA {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface GeneratedCerts {
  /** PEM of the CA that signed `certPem` (what goes into a caBundle). */
  readonly caPem: string;
  readonly caKeyPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

export interface GenerateOptions {
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  /** Sign with this CA instead of a new one. */
  readonly ca?: GeneratedCA;
  readonly now?: Date;
  readonly caValidityDays?: number;
  readonly certValidityDays?: number;
}

/** A self-signed CA (unless `ca` is given) and a serving certificate for the names and IPs. */
export function generateWebhookCerts(o: GenerateOptions = {}): GeneratedCerts {
  const now = o.now ?? new Date();
  const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000 - 3_600_000); // clock skew
  let caPem: string;
  let caKey: KeyObject;
  if (o.ca) {
    caPem = o.ca.certPem;
    caKey = createPrivateKey(o.ca.keyPem);
  } else {
    caKey = newKey();
    caPem = issueCertificate({
      subjectCN: 'ironlb-webhook-ca',
      subjectKey: caKey,
      issuerKey: caKey,
      issuerPublic: createPublicKey(caKey),
      notBefore,
      notAfter: new Date(notBefore.getTime() + (o.caValidityDays ?? 3650) * DAY_MS),
      ca: true,
    });
  }
  const ca = new X509Certificate(caPem);
  const leafKey = newKey();
  const dnsNames = o.dnsNames ?? [];
  const certPem = issueCertificate({
    subjectCN: dnsNames[0] ?? o.ipAddresses?.[0] ?? 'ironlb-webhook',
    subjectKey: leafKey,
    issuerName: subjectDer(ca),
    issuerKey: caKey,
    issuerPublic: ca.publicKey,
    notBefore,
    notAfter: new Date(
      Math.min(
        notBefore.getTime() + (o.certValidityDays ?? 365) * DAY_MS,
        Date.parse(ca.validTo) || Number.MAX_SAFE_INTEGER,
      ),
    ),
    ca: false,
    dnsNames,
    ipAddresses: o.ipAddresses ?? [],
  });
  return { caPem, caKeyPem: keyPem(caKey), certPem, keyPem: keyPem(leafKey) };
}

/** The DNS names a webhook Service is reached by from the API server. */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.cluster.local`,
    `${service}.${namespace}`,
    service,
  ];
}

/** Splits a PEM bundle into its certificates. */
function pemCerts(bundle: string): string[] {
  return (
    bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)?.map((c) => `${c}\n`) ?? []
  );
}

// =============================================================================================
// BGPPeer conversion (spec a.5)
// =============================================================================================

/** Go's time.Duration.String(), the way metav1.Duration values are written back. */
export function goDurationString(ns: bigint): string {
  if (ns === 0n) return '0s';
  const neg = ns < 0n;
  let u = neg ? -ns : ns;
  const frac = (v: bigint, div: bigint, width: number) => {
    const whole = v / div;
    const rem = v % div;
    if (rem === 0n) return whole.toString();
    return `${whole}.${rem.toString().padStart(width, '0').replace(/0+$/, '')}`;
  };
  let out: string;
  if (u < 1_000n) out = `${u}ns`;
  else if (u < 1_000_000n) out = `${frac(u, 1_000n, 3)}µs`;
  else if (u < 1_000_000_000n) out = `${frac(u, 1_000_000n, 6)}ms`;
  else {
    const h = u / 3_600_000_000_000n;
    u %= 3_600_000_000_000n;
    const m = u / 60_000_000_000n;
    u %= 60_000_000_000n;
    out = `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${frac(u, 1_000_000_000n, 9)}s`;
  }
  return neg ? `-${out}` : out;
}

/** A duration re-serialised as Go would after decoding it; unparsable text is kept as is. */
function normalDuration(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  const ns = parseGoDuration(v);
  return ns === undefined ? v : goDurationString(ns);
}

/** Fields of v1beta1 BGPPeer specs, in Go struct order. */
const V1BETA1_SCALARS = ['sourceAddress', 'routerID', 'password', 'bfdProfile'] as const;

/**
 * BGPPeer v1beta2 → v1beta1: every v1beta2-only field is dropped. As Go writes the v1beta1 struct,
 * myASN, peerASN and peerAddress are always present and the (non-pointer) timers are always
 * written, `0s` when unset.
 */
export function convertPeerV1beta2ToV1beta1(obj: RawObject): RawObject {
  const s = asRecord(obj.spec);
  const out: Record<string, unknown> = {
    myASN: typeof s.myASN === 'number' ? s.myASN : 0,
    peerASN: typeof s.peerASN === 'number' ? s.peerASN : 0,
    peerAddress: typeof s.peerAddress === 'string' ? s.peerAddress : '',
  };
  for (const k of V1BETA1_SCALARS) if (typeof s[k] === 'string' && s[k] !== '') out[k] = s[k];
  if (typeof s.peerPort === 'number' && s.peerPort !== 0) out.peerPort = s.peerPort;
  out.holdTime = s.holdTime === undefined ? '0s' : normalDuration(s.holdTime);
  out.keepaliveTime = s.keepaliveTime === undefined ? '0s' : normalDuration(s.keepaliveTime);
  if (s.ebgpMultiHop === true) out.ebgpMultiHop = true;
  if (Array.isArray(s.nodeSelectors) && s.nodeSelectors.length) {
    out.nodeSelectors = s.nodeSelectors.map((sel) => {
      const r = asRecord(sel);
      const legacy: Record<string, unknown> = {};
      if (r.matchLabels && Object.keys(asRecord(r.matchLabels)).length) legacy.matchLabels = r.matchLabels;
      if (Array.isArray(r.matchExpressions) && r.matchExpressions.length) {
        legacy.matchExpressions = r.matchExpressions.map((e) => {
          const x = asRecord(e);
          return { key: x.key, operator: x.operator, values: Array.isArray(x.values) ? x.values : [] };
        });
      }
      return legacy;
    });
  }
  return { ...obj, apiVersion: 'metallb.io/v1beta1', spec: out };
}

/** BGPPeer v1beta1 → v1beta2 (convertPeerV1beta1: explicit timers, `0s` when absent), Go-normalised timers. */
export function convertPeerToV1beta2(obj: RawObject): RawObject {
  const out = convertPeerV1beta1(obj);
  const spec = { ...asRecord(out.spec) };
  spec.holdTime = normalDuration(spec.holdTime);
  spec.keepaliveTime = normalDuration(spec.keepaliveTime);
  return { ...out, spec };
}

/** Converts one BGPPeer to `desired` (`metallb.io/v1beta1` or `metallb.io/v1beta2`). */
export function convertBGPPeer(obj: RawObject, desired: string): RawObject {
  const from = obj.apiVersion;
  if (obj.kind !== undefined && obj.kind !== 'BGPPeer')
    throw new Error(`cannot convert kind ${String(obj.kind)}`);
  if (from === desired) return obj;
  if (from === 'metallb.io/v1beta1' && desired === 'metallb.io/v1beta2') return convertPeerToV1beta2(obj);
  if (from === 'metallb.io/v1beta2' && desired === 'metallb.io/v1beta1')
    return convertPeerV1beta2ToV1beta1(obj);
  throw new Error(`cannot convert BGPPeer from ${String(from)} to ${desired}`);
}

/** Thrown for a request body that is not a review at all (HTTP 400). */
export class BadReviewError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BadReviewError';
  }
}

/** A ConversionReview v1 request → its response review. */
export function handleConversionReview(body: unknown): Record<string, unknown> {
  const review = asRecord(body);
  const req = asRecord(review.request);
  if (review.kind !== 'ConversionReview' || typeof req.uid !== 'string')
    throw new BadReviewError('expected a ConversionReview with request.uid');
  const apiVersion = typeof review.apiVersion === 'string' ? review.apiVersion : 'apiextensions.k8s.io/v1';
  const desired = typeof req.desiredAPIVersion === 'string' ? req.desiredAPIVersion : '';
  const objects = Array.isArray(req.objects) ? req.objects : [];
  let response: Record<string, unknown>;
  try {
    const convertedObjects = objects.map((o) => convertBGPPeer(asRecord(o) as RawObject, desired));
    response = { uid: req.uid, convertedObjects, result: { status: 'Success' } };
  } catch (e) {
    response = {
      uid: req.uid,
      convertedObjects: [],
      result: { status: 'Failure', message: e instanceof Error ? e.message : String(e) },
    };
  }
  return { apiVersion, kind: 'ConversionReview', response };
}

// =============================================================================================
// Admission
// =============================================================================================

/** What the validating webhooks read: the current objects (informer caches in production). */
export type SourceKind = WebhookKind | 'Node';

export interface ObjectSource {
  /** Current objects of a kind: MetalLB-namespace objects for metallb.io kinds, all Nodes. */
  list(kind: SourceKind): readonly RawObject[];
  /** Resolves once the lists are complete (e.g. informer caches synced). */
  waitReady?(): Promise<void>;
}

export interface WebhookSchemas {
  validate(kind: string, apiVersion: string, obj: unknown, options?: ValidateOptions): SchemaValidation;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; reason: string; message: string };
  warnings?: string[];
}

export interface WebhookHandlerOptions {
  /** The MetalLB namespace. */
  readonly namespace: string;
  readonly schemas: WebhookSchemas;
  readonly source: ObjectSource;
  readonly log?: Logger;
}

interface Decision {
  allowed: boolean;
  problems?: Problem[];
  message?: string;
  warnings: string[];
}

const metallbVersion = (kind: WebhookKind) => (kind === 'BGPPeer' ? 'v1beta2' : 'v1beta1');

/** Drops community items without a colon (aliases, not loaded by the BGPAdvertisement webhook, a.11). */
function dropAliases(ad: RawObject): RawObject {
  const spec = asRecord(ad.spec);
  if (!Array.isArray(spec.communities)) return ad;
  return {
    ...ad,
    spec: { ...spec, communities: spec.communities.filter((c) => typeof c !== 'string' || c.includes(':')) },
  };
}

/** bfdProfile and passwordSecret blanked, as the BGPPeer webhook does (a.11). */
function blankPeerRefs(peer: RawObject): RawObject {
  const spec = { ...asRecord(peer.spec) };
  delete spec.bfdProfile;
  delete spec.passwordSecret;
  return { ...peer, spec };
}

/** The list with `obj` in place of the object of the same name (or appended). */
function substitute(list: readonly RawObject[], obj: RawObject): RawObject[] {
  const name = obj.metadata?.name;
  return [...list.filter((o) => o.metadata?.name !== name), obj];
}

/**
 * The pure admission logic: AdmissionReview in, AdmissionReview out. Never throws for a well-formed
 * review; an internal failure becomes a denial with a one-line message.
 */
export class WebhookHandler {
  private readonly parser: ConfigParser;

  constructor(private readonly opts: WebhookHandlerOptions) {
    this.parser = new ConfigParser(opts.schemas);
  }

  /** Validates the review at `path` (one of WEBHOOK_PATHS); throws BadReviewError when it is not one. */
  admit(path: string, body: unknown): Record<string, unknown> {
    const kind = Object.hasOwn(WEBHOOK_PATHS, path) ? WEBHOOK_PATHS[path] : undefined;
    if (!kind) throw new BadReviewError(`no validating webhook at ${path}`);
    const review = asRecord(body);
    const req = asRecord(review.request);
    if (review.kind !== 'AdmissionReview' || typeof req.uid !== 'string')
      throw new BadReviewError('expected an AdmissionReview with request.uid');
    const apiVersion = typeof review.apiVersion === 'string' ? review.apiVersion : 'admission.k8s.io/v1';
    let d: Decision;
    try {
      d = this.decide(kind, req);
    } catch (e) {
      // Never a stack trace in the answer; the log gets it.
      this.opts.log?.error('webhook failed', {
        path,
        error: e instanceof Error ? (e.stack ?? e.message) : String(e),
      });
      d = {
        allowed: false,
        message: `internal error validating ${kind}: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`,
        warnings: [],
      };
    }
    const response: AdmissionResponse = { uid: req.uid, allowed: d.allowed };
    if (!d.allowed) {
      const message = d.message ?? (d.problems ?? []).map(formatProblem).join('\n');
      response.status = { code: 403, reason: 'Forbidden', message };
    }
    if (d.warnings.length) response.warnings = d.warnings;
    this.opts.log?.[d.allowed ? 'debug' : 'info'](d.allowed ? 'admission allowed' : 'admission denied', {
      kind,
      operation: req.operation,
      name: asRecord(asRecord(req.object ?? req.oldObject).metadata).name ?? req.name,
      ...(response.status ? { message: response.status.message } : {}),
    });
    return { apiVersion, kind: 'AdmissionReview', response };
  }

  private decide(kind: WebhookKind, req: Record<string, unknown>): Decision {
    const op = req.operation;
    const warnings: string[] = [];
    const obj = asRecord(op === 'DELETE' ? req.oldObject : req.object) as RawObject;
    const meta = asRecord(obj.metadata);
    const name = typeof meta.name === 'string' ? meta.name : typeof req.name === 'string' ? req.name : '';
    const deny = (problems: Problem[]): Decision => ({ allowed: false, problems, warnings });
    const reqKind = asRecord(req.kind);
    if (typeof reqKind.kind === 'string' && reqKind.kind !== kind)
      return deny([
        { kind, name, path: 'kind', reason: `this webhook validates ${kind}, not ${reqKind.kind}` },
      ]);

    if (op === 'DELETE') {
      if (kind !== 'BFDProfile') return { allowed: true, warnings };
      // a.7: the only DELETE the webhooks intercept.
      const users = this.opts.source
        .list('BGPPeer')
        .filter((p) => asRecord(p.spec).bfdProfile === name)
        .map((p) => p.metadata?.name ?? '?')
        .sort();
      return users.length
        ? deny(
            users.map((u) => ({ kind, name, path: '', reason: `cannot be deleted: used by BGPPeer/${u}` })),
          )
        : { allowed: true, warnings };
    }
    if (op !== 'CREATE' && op !== 'UPDATE') return { allowed: true, warnings };

    // [quirk] upstream returns early with only this warning; we validate normally and add it.
    if (kind === 'BGPPeer' && op === 'CREATE' && asRecord(obj.spec).disableMP === true)
      warnings.push(DISABLE_MP_WARNING);

    const ns = typeof req.namespace === 'string' ? req.namespace : meta.namespace;
    if (ns !== this.opts.namespace) {
      if (op === 'CREATE') {
        return deny([
          {
            kind,
            name,
            path: 'metadata.namespace',
            reason: `must be created in the MetalLB namespace "${this.opts.namespace}", not "${String(ns)}"`,
          },
        ]);
      }
      // Reconcilers ignore it; blocking edits (finalizers, clean-up) would help nobody.
      warnings.push(
        `${kind}/${name} is outside the MetalLB namespace "${this.opts.namespace}" and is ignored`,
      );
      return { allowed: true, warnings };
    }
    if (op === 'UPDATE' && meta.deletionTimestamp) return { allowed: true, warnings };

    // Layer 1 again (the API server has run it; this also covers the CEL transition rules).
    const apiVersion =
      typeof obj.apiVersion === 'string'
        ? obj.apiVersion
        : `metallb.io/${typeof reqKind.version === 'string' ? reqKind.version : metallbVersion(kind)}`;
    const sv = this.opts.schemas.validate(
      kind,
      apiVersion,
      obj,
      op === 'UPDATE' ? { old: req.oldObject } : {},
    );
    warnings.push(...sv.warnings);
    if (sv.problems.length)
      return deny(sv.problems.map((p) => ({ kind, name, path: p.path, reason: p.reason })));
    if (kind === 'BFDProfile') return { allowed: true, warnings }; // ranges: schema only (a.11)

    // Layer 3 over the kinds a.11 lists for this webhook. Transient problems reject too.
    const res = this.parser.parse(this.input(kind, op, obj), {
      scope: 'full',
      namespace: this.opts.namespace,
    });
    return res.problems.length ? deny(res.problems) : { allowed: true, warnings };
  }

  private input(kind: WebhookKind, op: unknown, obj: RawObject): ConfigInput {
    const src = this.opts.source;
    const nodes = () => src.list('Node').map((n) => nodeInfo(n));
    const base = emptyInput();
    switch (kind) {
      case 'IPAddressPool':
        // [quirk] updates are validated without advertisements (a.11).
        return op === 'CREATE'
          ? {
              ...base,
              ipAddressPools: substitute(src.list('IPAddressPool'), obj),
              bgpAdvertisements: src.list('BGPAdvertisement').map(dropAliases),
              nodes: nodes(),
            }
          : { ...base, ipAddressPools: substitute(src.list('IPAddressPool'), obj) };
      case 'L2Advertisement':
        return {
          ...base,
          l2Advertisements: substitute(src.list('L2Advertisement'), obj),
          ipAddressPools: src.list('IPAddressPool'),
        };
      case 'BGPAdvertisement':
        return {
          ...base,
          bgpAdvertisements: substitute(src.list('BGPAdvertisement'), obj).map(dropAliases),
          ipAddressPools: src.list('IPAddressPool'),
          nodes: nodes(),
        };
      case 'Community':
        return { ...base, communities: substitute(src.list('Community'), obj) };
      case 'BGPPeer':
        return { ...base, bgpPeers: substitute(src.list('BGPPeer'), obj).map(blankPeerRefs), nodes: nodes() };
      case 'BFDProfile':
        return base;
    }
  }
}

/** The current objects from informer caches: metallb.io kinds in the MetalLB namespace, and Nodes. */
export class InformerObjectSource implements ObjectSource {
  private readonly informers: Record<SourceKind, Informer<KObject>>;
  private synced: Promise<void> | undefined;

  constructor(client: KubeClient, opts: { namespace: string; log: Logger }) {
    const { namespace, log } = opts;
    const ns = (r: Resource) => new Informer<KObject>(client, r, { namespace, log });
    this.informers = {
      IPAddressPool: ns(RESOURCES.ipAddressPools),
      L2Advertisement: ns(RESOURCES.l2Advertisements),
      BGPAdvertisement: ns(RESOURCES.bgpAdvertisements),
      Community: ns(RESOURCES.communities),
      BFDProfile: ns(RESOURCES.bfdProfiles),
      BGPPeer: ns(RESOURCES.bgpPeers),
      Node: new Informer<KObject>(client, RESOURCES.nodes, { log }),
    };
  }

  /** Starts every informer; does not wait (see waitReady). */
  start(): void {
    if (this.synced) return;
    this.synced = Promise.all(Object.values(this.informers).map((i) => i.start())).then(() => undefined);
    // A stop before the first list rejects the waiters; that is not an unhandled failure.
    this.synced.catch(() => undefined);
  }

  waitReady(): Promise<void> {
    return this.synced ?? Promise.reject(new Error('object source not started'));
  }

  isReady(): boolean {
    return Object.values(this.informers).every((i) => i.hasSynced);
  }

  list(kind: SourceKind): readonly RawObject[] {
    return this.informers[kind].list();
  }

  async stop(): Promise<void> {
    await Promise.all(Object.values(this.informers).map((i) => i.stop()));
  }
}

// =============================================================================================
// The HTTPS server
// =============================================================================================

export type WebhookTls =
  /** tls.crt and tls.key (and ca.crt, when present, as caBundle) from a directory, reloaded on change. */
  | { readonly certDir: string; readonly reloadIntervalMs?: number }
  /** PEM in memory; replace with setCertificate(). */
  | { readonly cert: string; readonly key: string; readonly ca?: string }
  /** A new self-signed CA and serving certificate. */
  | {
      readonly generate: { readonly dnsNames?: readonly string[]; readonly ipAddresses?: readonly string[] };
    };

export interface WebhookServerOptions {
  /** Listen address; all interfaces when absent. */
  readonly host?: string;
  /** 0 picks a free port (see `port` after start). */
  readonly port: number;
  readonly tls: WebhookTls;
  readonly handler: WebhookHandler;
  /**
   * Admission waits this long for the source to be ready, then denies (default 5 s; the API
   * server's default webhook timeout is 10 s).
   */
  readonly readyTimeoutMs?: number;
  readonly source?: Pick<ObjectSource, 'waitReady'>;
  readonly log: Logger;
  /** Largest request body accepted (default 8 MiB: object + oldObject of a 3 MiB object). */
  readonly maxBodyBytes?: number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class WebhookServer {
  private server: Server | undefined;
  private cert = '';
  private key = '';
  private ca: string | undefined;
  private watcher: FSWatcher | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private reloadTimer: NodeJS.Timeout | undefined;
  private boundPort = 0;
  /** Bumped on every certificate change; each TLS socket remembers the one it was opened under. */
  private certGeneration = 0;
  private readonly socketGeneration = new WeakMap<object, number>();

  constructor(private readonly opts: WebhookServerOptions) {}

  /** The port listened on (after start). */
  get port(): number {
    return this.boundPort;
  }

  /** PEM of the CA that signed the serving certificate, when known (generated, in memory, or ca.crt). */
  get caBundle(): string | undefined {
    return this.ca;
  }

  /** The serving certificate in use (PEM). */
  get certificate(): string {
    return this.cert;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const t = this.opts.tls;
    if ('certDir' in t) {
      if (!(await this.loadCertDir())) throw new Error(`webhook: no usable tls.crt/tls.key in ${t.certDir}`);
    } else if ('generate' in t) {
      const g = generateWebhookCerts({
        dnsNames: t.generate.dnsNames ?? [],
        ipAddresses: t.generate.ipAddresses ?? [],
      });
      this.cert = g.certPem;
      this.key = g.keyPem;
      this.ca = g.caPem;
    } else {
      createSecureContext({ cert: t.cert, key: t.key });
      this.cert = t.cert;
      this.key = t.key;
      this.ca = t.ca;
    }
    const server = createServer({ cert: this.cert, key: this.key, minVersion: 'TLSv1.2' }, (req, res) => {
      void this.serve(req, res);
    });
    server.on('secureConnection', (socket) => this.socketGeneration.set(socket, this.certGeneration));
    server.requestTimeout = 30_000;
    server.headersTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => this.opts.log.error('webhook server error', { error: e.message }));
    this.server = server;
    this.boundPort = (server.address() as AddressInfo).port;
    if ('certDir' in t) this.watchCertDir(t.certDir, t.reloadIntervalMs ?? 10_000);
    this.opts.log.info('webhook server listening', { host: this.opts.host ?? '*', port: this.boundPort });
  }

  async stop(): Promise<void> {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.reloadTimer) clearTimeout(this.reloadTimer);
    this.pollTimer = this.reloadTimer = undefined;
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeIdleConnections();
    });
  }

  /**
   * Replaces the serving certificate: new TLS connections use it, idle kept-alive ones are closed.
   * Throws (and keeps the old one) when the pair is unusable.
   */
  setCertificate(cert: string, key: string, ca?: string): void {
    createSecureContext({ cert, key }); // throws on a bad or mismatched pair
    this.cert = cert;
    this.key = key;
    if (ca !== undefined) this.ca = ca;
    if (!this.server) return;
    this.server.setSecureContext({ cert, key, minVersion: 'TLSv1.2' });
    // Kept-alive connections would go on with the old certificate: idle ones are closed now, busy
    // ones after their current answer (see serve), so clients reconnect and see the new one.
    this.certGeneration++;
    this.server.closeIdleConnections();
  }

  /** Re-reads the cert directory; true when a new certificate is now served. */
  async reloadCertDir(): Promise<boolean> {
    const t = this.opts.tls;
    if (!('certDir' in t)) return false;
    const before = this.cert + this.key;
    const ok = await this.loadCertDir();
    return ok && this.cert + this.key !== before;
  }

  private async loadCertDir(): Promise<boolean> {
    const t = this.opts.tls;
    if (!('certDir' in t)) return false;
    let cert: string;
    let key: string;
    try {
      [cert, key] = await Promise.all([
        readFile(join(t.certDir, 'tls.crt'), 'utf8'),
        readFile(join(t.certDir, 'tls.key'), 'utf8'),
      ]);
    } catch (e) {
      this.opts.log.warn('webhook certificate not readable', { dir: t.certDir, error: (e as Error).message });
      return false;
    }
    const ca = await readFile(join(t.certDir, 'ca.crt'), 'utf8').catch(() => undefined);
    if (cert === this.cert && key === this.key) return true;
    try {
      this.setCertificate(cert, key, ca);
    } catch (e) {
      // Mid-update (one file written, not the other) or broken: keep serving the old pair.
      this.opts.log.warn('webhook certificate not usable, keeping the previous one', {
        dir: t.certDir,
        error: (e as Error).message,
      });
      return false;
    }
    if (this.server) this.opts.log.info('webhook certificate reloaded', { dir: t.certDir });
    return true;
  }

  private watchCertDir(dir: string, intervalMs: number): void {
    const schedule = () => {
      if (this.reloadTimer) clearTimeout(this.reloadTimer);
      this.reloadTimer = setTimeout(() => void this.reloadCertDir(), 200);
      this.reloadTimer.unref();
    };
    try {
      // Secret volumes swap a `..data` symlink: the directory sees the rename.
      this.watcher = watch(dir, schedule);
      this.watcher.on('error', () => undefined);
    } catch {
      // polling below still works
    }
    if (intervalMs > 0) {
      this.pollTimer = setInterval(() => void this.reloadCertDir(), intervalMs);
      this.pollTimer.unref();
    }
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    try {
      if (req.method === 'GET' && (path === '/healthz' || path === '/readyz')) {
        this.head(req, res, 200, 'text/plain').end('ok');
        return;
      }
      const isAdmission = Object.hasOwn(WEBHOOK_PATHS, path);
      if (!isAdmission && path !== CONVERT_PATH) throw new HttpError(404, `no webhook at ${path}`);
      if (req.method !== 'POST') throw new HttpError(405, 'only POST is accepted');
      const body = await this.readJson(req);
      let out: Record<string, unknown>;
      if (isAdmission) {
        const notReady = await this.waitReady();
        out = notReady ? this.notReady(body, notReady) : this.opts.handler.admit(path, body);
      } else {
        out = handleConversionReview(body);
      }
      const text = JSON.stringify(out);
      this.head(req, res, 200, 'application/json', Buffer.byteLength(text)).end(text);
    } catch (e) {
      const status = e instanceof HttpError ? e.status : e instanceof BadReviewError ? 400 : 500;
      const message = e instanceof Error ? e.message : String(e);
      if (status === 500) this.opts.log.error('webhook request failed', { path, error: message });
      if (!res.headersSent) this.head(req, res, status, 'text/plain');
      res.end(`${message.split('\n')[0]}\n`);
    }
  }

  /** Writes the head; a connection opened under a replaced certificate is closed after this answer. */
  private head(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    type: string,
    length?: number,
  ): ServerResponse {
    const stale = this.socketGeneration.get(req.socket) !== this.certGeneration;
    return res.writeHead(status, {
      'content-type': type,
      ...(length !== undefined ? { 'content-length': length } : {}),
      ...(stale ? { connection: 'close' } : {}),
    });
  }

  /** Undefined when ready, else why not. */
  private async waitReady(): Promise<string | undefined> {
    const wait = this.opts.source?.waitReady;
    if (!wait) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const ms = this.opts.readyTimeoutMs ?? 5_000;
    try {
      return await Promise.race([
        wait.call(this.opts.source).then(() => undefined),
        new Promise<string>((r) => (timer = setTimeout(() => r('object caches are not synced yet'), ms))),
      ]);
    } catch (e) {
      return e instanceof Error ? e.message : String(e);
    } finally {
      clearTimeout(timer);
    }
  }

  private notReady(body: unknown, why: string): Record<string, unknown> {
    const review = asRecord(body);
    const req = asRecord(review.request);
    if (review.kind !== 'AdmissionReview' || typeof req.uid !== 'string')
      throw new BadReviewError('expected an AdmissionReview with request.uid');
    return {
      apiVersion: review.apiVersion ?? 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: {
        uid: req.uid,
        allowed: false,
        status: { code: 503, reason: 'ServiceUnavailable', message: `metallb webhook not ready: ${why}` },
      },
    };
  }

  private readJson(req: IncomingMessage): Promise<unknown> {
    const max = this.opts.maxBodyBytes ?? 8 * 1024 * 1024;
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > max) {
          reject(new HttpError(413, `request body larger than ${max} bytes`));
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      req.on('error', reject);
      req.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch {
          reject(new HttpError(400, 'request body is not JSON'));
        }
      });
    });
  }
}

// =============================================================================================
// Cert rotation: Secret + caBundle injection (spec f.1)
// =============================================================================================

export const VALIDATING_WEBHOOK_CONFIGURATIONS: Resource = {
  group: 'admissionregistration.k8s.io',
  version: 'v1',
  plural: 'validatingwebhookconfigurations',
  kind: 'ValidatingWebhookConfiguration',
  namespaced: false,
};
export const CUSTOM_RESOURCE_DEFINITIONS: Resource = {
  group: 'apiextensions.k8s.io',
  version: 'v1',
  plural: 'customresourcedefinitions',
  kind: 'CustomResourceDefinition',
  namespaced: false,
};

export interface EnsureCertsOptions {
  /** The MetalLB namespace (Secret and Service). */
  readonly namespace: string;
  readonly secretName?: string;
  /** Service the API server calls; its DNS names go into the certificate. */
  readonly serviceName?: string;
  /** ValidatingWebhookConfiguration to patch; '' skips it. */
  readonly webhookConfigurationName?: string;
  /** CRD whose conversion webhook gets the caBundle; '' skips it. */
  readonly crdName?: string;
  readonly extraDnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly now?: Date;
  readonly caValidityDays?: number;
  readonly certValidityDays?: number;
  /** A certificate with less validity left than this is replaced (default 30 days). */
  readonly renewBeforeDays?: number;
  readonly log?: Logger;
}

export type InjectResult = 'unchanged' | 'patched' | 'missing' | 'skipped';

export interface WebhookCerts {
  /** CA bundle (PEM): the current CA first, then a previous CA still valid during a CA rotation. */
  readonly caBundle: string;
  readonly cert: string;
  readonly key: string;
  /** True when this call wrote a new certificate into the Secret. */
  readonly rotated: boolean;
  readonly webhookConfiguration: InjectResult;
  readonly crd: InjectResult;
}

type SecretObj = KObject & { type?: string; data?: Record<string, string> };

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: unknown) => (typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : '');

/**
 * Why the Secret's content cannot be served as is (undefined when it can). `caUsable` tells whether
 * its CA can still sign a new serving certificate.
 */
function checkSecretCerts(
  data: Record<string, string>,
  o: { dnsNames: readonly string[]; ips: readonly string[]; now: number; renewMs: number; certMs: number },
): { problem?: string; caUsable: boolean } {
  let ca: X509Certificate;
  let caKey: KeyObject;
  try {
    const first = pemCerts(unb64(data['ca.crt']))[0];
    if (!first) return { problem: 'no ca.crt', caUsable: false };
    ca = new X509Certificate(first);
    caKey = createPrivateKey(unb64(data['ca.key']));
  } catch (e) {
    return { problem: `bad CA: ${(e as Error).message}`, caUsable: false };
  }
  const caLeft = Date.parse(ca.validTo) - o.now;
  const caUsable =
    ca.ca &&
    (caKey.asymmetricKeyType === 'ec' || caKey.asymmetricKeyType === 'rsa') &&
    ca.checkPrivateKey(caKey) &&
    caLeft > o.certMs &&
    Date.parse(ca.validFrom) <= o.now;
  if (!caUsable) return { problem: 'CA expiring, invalid or not matching its key', caUsable };
  try {
    const cert = new X509Certificate(unb64(data['tls.crt']));
    const key = createPrivateKey(unb64(data['tls.key']));
    if (!cert.verify(ca.publicKey)) return { problem: 'tls.crt not signed by ca.crt', caUsable };
    if (!cert.checkPrivateKey(key)) return { problem: 'tls.key does not match tls.crt', caUsable };
    if (Date.parse(cert.validTo) - o.now < o.renewMs) return { problem: 'tls.crt expires soon', caUsable };
    if (Date.parse(cert.validFrom) > o.now) return { problem: 'tls.crt not yet valid', caUsable };
    for (const n of o.dnsNames)
      if (cert.checkHost(n) !== n) return { problem: `tls.crt lacks ${n}`, caUsable };
    for (const ip of o.ips) if (!cert.checkIP(ip)) return { problem: `tls.crt lacks ${ip}`, caUsable };
  } catch (e) {
    return { problem: `bad tls.crt/tls.key: ${(e as Error).message}`, caUsable };
  }
  return { caUsable };
}

/**
 * MetalLB's cert rotation, safe with several replicas: reuses the Secret's certificate while it is
 * valid for the Service names, else writes a new one (new CA only when the old one cannot sign it
 * any more; the previous CA then stays in the bundle while valid), with optimistic concurrency, and
 * patches the CA bundle into the ValidatingWebhookConfiguration and the bgppeers CRD conversion
 * config when it differs. Objects that do not exist are reported as 'missing', not created.
 */
export async function ensureWebhookCerts(client: KubeClient, o: EnsureCertsOptions): Promise<WebhookCerts> {
  const secretName = o.secretName ?? DEFAULT_WEBHOOK_SECRET;
  const service = o.serviceName ?? DEFAULT_WEBHOOK_SERVICE;
  const dnsNames = [...serviceDnsNames(service, o.namespace), ...(o.extraDnsNames ?? [])];
  const ips = [...(o.ipAddresses ?? [])];
  const certDays = o.certValidityDays ?? 365;
  const renewMs = (o.renewBeforeDays ?? 30) * DAY_MS;
  let result: { caBundle: string; cert: string; key: string; rotated: boolean } | undefined;
  for (let attempt = 0; !result; attempt++) {
    const now = o.now ?? new Date();
    let secret: SecretObj | undefined;
    try {
      secret = await client.get<SecretObj>(RESOURCES.secrets, o.namespace, secretName);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
    }
    const data = secret?.data ?? {};
    const check = checkSecretCerts(data, {
      dnsNames,
      ips,
      now: now.getTime(),
      renewMs,
      certMs: certDays * DAY_MS,
    });
    if (secret && !check.problem) {
      result = {
        caBundle: unb64(data['ca.crt']),
        cert: unb64(data['tls.crt']),
        key: unb64(data['tls.key']),
        rotated: false,
      };
      break;
    }
    const oldBundle = pemCerts(unb64(data['ca.crt']));
    const g = generateWebhookCerts({
      dnsNames,
      ipAddresses: ips,
      now,
      certValidityDays: certDays,
      caValidityDays: o.caValidityDays ?? 3650,
      ...(check.caUsable ? { ca: { certPem: oldBundle[0]!, keyPem: unb64(data['ca.key']) } } : {}),
    });
    // During a CA change the previous CA stays trusted while other replicas still serve its certs.
    const bundle = check.caUsable
      ? [oldBundle[0]!, ...oldBundle.slice(1).filter((c) => isValidAt(c, now))].join('')
      : [g.caPem, ...oldBundle.filter((c) => isValidAt(c, now))].slice(0, 2).join('');
    const newData = {
      ...data,
      'ca.crt': b64(bundle),
      'ca.key': b64(g.caKeyPem),
      'tls.crt': b64(g.certPem),
      'tls.key': b64(g.keyPem),
    };
    o.log?.info('writing webhook certificate', { secret: secretName, reason: check.problem ?? 'no Secret' });
    try {
      if (secret) await client.update<SecretObj>(RESOURCES.secrets, { ...secret, data: newData });
      else {
        await client.create(RESOURCES.secrets, o.namespace, {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: secretName, namespace: o.namespace },
          type: 'Opaque',
          data: newData,
        });
      }
      result = { caBundle: bundle, cert: g.certPem, key: g.keyPem, rotated: true };
    } catch (e) {
      // Another replica wrote first: read again and use its certificate.
      if (!(e instanceof ApiError && e.status === 409) || attempt >= 4) throw e;
    }
  }
  const caB64 = b64(result.caBundle);
  const webhookConfiguration =
    o.webhookConfigurationName === ''
      ? 'skipped'
      : await injectWebhookConfiguration(
          client,
          o.webhookConfigurationName ?? WEBHOOK_CONFIGURATION_NAME,
          caB64,
        );
  const crd = o.crdName === '' ? 'skipped' : await injectCrd(client, o.crdName ?? BGPPEER_CRD_NAME, caB64);
  if (webhookConfiguration === 'patched' || crd === 'patched')
    o.log?.info('webhook CA bundle injected', { webhookConfiguration, crd });
  return { ...result, webhookConfiguration, crd };
}

function isValidAt(pem: string, now: Date): boolean {
  try {
    return Date.parse(new X509Certificate(pem).validTo) > now.getTime();
  } catch {
    return false;
  }
}

/**
 * A strategic merge patch keyed by webhook name (needs only `patch`, like the CRD below, and leaves
 * every other field, including concurrent edits, alone).
 */
async function injectWebhookConfiguration(
  client: KubeClient,
  name: string,
  caB64: string,
): Promise<InjectResult> {
  let vwc: KObject & { webhooks?: Array<{ name?: string; clientConfig?: Record<string, unknown> }> };
  try {
    vwc = await client.get(VALIDATING_WEBHOOK_CONFIGURATIONS, undefined, name);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return 'missing';
    throw e;
  }
  const stale = (vwc.webhooks ?? []).filter((h) => h.name && h.clientConfig?.caBundle !== caB64);
  if (stale.length === 0) return 'unchanged';
  await client.request(
    'PATCH',
    resourcePath(VALIDATING_WEBHOOK_CONFIGURATIONS, undefined, name),
    { webhooks: stale.map((h) => ({ name: h.name, clientConfig: { caBundle: caB64 } })) },
    { contentType: 'application/strategic-merge-patch+json' },
  );
  return 'patched';
}

async function injectCrd(client: KubeClient, name: string, caB64: string): Promise<InjectResult> {
  let crd: KObject & {
    spec?: { conversion?: { strategy?: string; webhook?: { clientConfig?: { caBundle?: string } } } };
  };
  try {
    crd = await client.get(CUSTOM_RESOURCE_DEFINITIONS, undefined, name);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return 'missing';
    throw e;
  }
  const conv = crd.spec?.conversion;
  if (conv?.strategy !== 'Webhook') return 'skipped';
  if (conv.webhook?.clientConfig?.caBundle === caB64) return 'unchanged';
  await client.patch(CUSTOM_RESOURCE_DEFINITIONS, undefined, name, {
    spec: { conversion: { webhook: { clientConfig: { caBundle: caB64 } } } },
  });
  return 'patched';
}

/**
 * Re-runs ensureWebhookCerts every `intervalMs` (picks up a rotation by another replica, renews
 * before expiry, re-injects a caBundle that a re-applied manifest wiped) and swaps the server's
 * certificate when it changed.
 */
export function startCertRotation(
  client: KubeClient,
  server: WebhookServer,
  o: EnsureCertsOptions & { intervalMs?: number; log: Logger },
): { stop(): void } {
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      const c = await ensureWebhookCerts(client, o);
      if (c.cert !== server.certificate) {
        server.setCertificate(c.cert, c.key, c.caBundle);
        o.log.info('webhook serving certificate replaced');
      }
    } catch (e) {
      o.log.warn('webhook cert rotation failed', { error: e instanceof Error ? e.message : String(e) });
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), o.intervalMs ?? 5 * 60_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

// =============================================================================================
// The ValidatingWebhookConfiguration MetalLB installs
// =============================================================================================

const HOOKS: Array<{ name: string; path: string; resource: string; version: string; ops: string[] }> = [
  {
    name: 'bgppeervalidationwebhook',
    path: '/validate-metallb-io-v1beta2-bgppeer',
    resource: 'bgppeers',
    version: 'v1beta2',
    ops: ['CREATE', 'UPDATE'],
  },
  {
    name: 'bfdprofilevalidationwebhook',
    path: '/validate-metallb-io-v1beta1-bfdprofile',
    resource: 'bfdprofiles',
    version: 'v1beta1',
    ops: ['CREATE', 'DELETE'],
  },
  {
    name: 'bgpadvertisementvalidationwebhook',
    path: '/validate-metallb-io-v1beta1-bgpadvertisement',
    resource: 'bgpadvertisements',
    version: 'v1beta1',
    ops: ['CREATE', 'UPDATE'],
  },
  {
    name: 'communityvalidationwebhook',
    path: '/validate-metallb-io-v1beta1-community',
    resource: 'communities',
    version: 'v1beta1',
    ops: ['CREATE', 'UPDATE'],
  },
  {
    name: 'ipaddresspoolvalidationwebhook',
    path: '/validate-metallb-io-v1beta1-ipaddresspool',
    resource: 'ipaddresspools',
    version: 'v1beta1',
    ops: ['CREATE', 'UPDATE'],
  },
  {
    name: 'l2advertisementvalidationwebhook',
    path: '/validate-metallb-io-v1beta1-l2advertisement',
    resource: 'l2advertisements',
    version: 'v1beta1',
    ops: ['CREATE', 'UPDATE'],
  },
];

/**
 * MetalLB's `metallb-webhook-configuration` (failurePolicy Fail, sideEffects None), calling either
 * the webhook Service or, for tests, a base URL (`https://127.0.0.1:PORT`).
 */
export function metallbWebhookConfiguration(
  o: { namespace?: string; serviceName?: string; url?: string; caBundle?: string; name?: string } = {},
): Record<string, unknown> {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: o.name ?? WEBHOOK_CONFIGURATION_NAME },
    webhooks: HOOKS.map((h) => ({
      name: `${h.name}.metallb.io`,
      admissionReviewVersions: ['v1'],
      clientConfig: {
        ...(o.url
          ? { url: `${o.url.replace(/\/$/, '')}${h.path}` }
          : {
              service: {
                name: o.serviceName ?? DEFAULT_WEBHOOK_SERVICE,
                namespace: o.namespace ?? 'metallb-system',
                path: h.path,
              },
            }),
        ...(o.caBundle ? { caBundle: b64(o.caBundle) } : {}),
      },
      failurePolicy: 'Fail',
      sideEffects: 'None',
      rules: [
        { apiGroups: ['metallb.io'], apiVersions: [h.version], operations: h.ops, resources: [h.resource] },
      ],
    })),
  };
}

// =============================================================================================
// Everything the controller CLI runs for `--webhook-mode enabled|onlywebhook`
// =============================================================================================

export interface StartWebhookOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  readonly schemas: WebhookSchemas;
  readonly log: Logger;
  readonly host?: string;
  readonly port: number;
  /** MetalLB cert rotation (Secret + caBundle injection); false: serve `certDir`. */
  readonly certRotation: boolean;
  /** tls.crt/tls.key (reloaded on change) when cert rotation is disabled. */
  readonly certDir?: string;
  readonly serviceName?: string;
  readonly secretName?: string;
  readonly rotationIntervalMs?: number;
  /** How long start-up retries the first ensureWebhookCerts before giving up (default 60 s). */
  readonly certStartTimeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface RunningWebhook {
  readonly server: WebhookServer;
  readonly source: InformerObjectSource;
  stop(): Promise<void>;
}

/**
 * Starts the object caches, obtains the serving certificate (rotation: from the shared Secret,
 * written if needed, so every replica serves the same CA's certificate; else from the cert dir)
 * and starts the HTTPS server. Admission requests wait for the caches; conversion does not.
 */
export async function startWebhook(o: StartWebhookOptions): Promise<RunningWebhook> {
  const log = o.log.child({ component: 'webhook' });
  const source = new InformerObjectSource(o.client, { namespace: o.namespace, log });
  source.start();
  const handler = new WebhookHandler({ namespace: o.namespace, schemas: o.schemas, source, log });
  let rotation: { stop(): void } | undefined;
  const certOpts: EnsureCertsOptions = {
    namespace: o.namespace,
    ...(o.serviceName ? { serviceName: o.serviceName } : {}),
    ...(o.secretName ? { secretName: o.secretName } : {}),
    log,
  };
  let server: WebhookServer;
  try {
    let tls: WebhookTls;
    if (o.certRotation) {
      const c = await retryUntil(
        () => ensureWebhookCerts(o.client, certOpts),
        o.certStartTimeoutMs ?? 60_000,
        log,
        o.signal,
      );
      tls = { cert: c.cert, key: c.key, ca: c.caBundle };
    } else {
      tls = { certDir: o.certDir ?? DEFAULT_CERT_DIR };
    }
    server = new WebhookServer({
      ...(o.host ? { host: o.host } : {}),
      port: o.port,
      tls,
      handler,
      source,
      log,
    });
    await server.start();
  } catch (e) {
    await source.stop();
    throw e;
  }
  if (o.certRotation) {
    rotation = startCertRotation(o.client, server, {
      ...certOpts,
      log,
      ...(o.rotationIntervalMs ? { intervalMs: o.rotationIntervalMs } : {}),
    });
  }
  return {
    server,
    source,
    stop: async () => {
      rotation?.stop();
      await server.stop();
      await source.stop();
    },
  };
}

async function retryUntil<T>(
  f: () => Promise<T>,
  timeoutMs: number,
  log: Logger,
  signal?: AbortSignal,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 500; ; delay = Math.min(delay * 2, 10_000)) {
    try {
      return await f();
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (Date.now() + delay > deadline || signal?.aborted) throw new Error(`webhook certificate: ${msg}`);
      log.warn('webhook certificate not ready, retrying', { error: msg, retryMs: delay });
      await new Promise<void>((r) => {
        const t = setTimeout(r, delay);
        signal?.addEventListener('abort', () => (clearTimeout(t), r()), { once: true });
      });
    }
  }
}
