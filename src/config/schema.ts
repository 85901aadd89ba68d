/**
 * Schema validation of metallb.io objects against the CRD YAML in deploy/crds, the single
 * source of the schemas (the TypeScript types in crd-types.generated.ts are derived from it).
 *
 * This is validation layer (1) of the spec (a.0): what the API server itself enforces from
 * the CRD, i.e. the OpenAPI schema, its defaults and its CEL rules. Ajv runs the OpenAPI part;
 * the CEL rules (x-kubernetes-validations) have hand-written equivalents below, looked up by
 * their exact rule text, so a CEL rule added to the YAML without an implementation here makes
 * CrdSchemas.load() throw.
 *
 * Differences from the API server, on purpose:
 * - fields the schema does not know are reported as "unknown field" (the API server prunes
 *   them silently, which hides typos);
 * - metadata is not checked beyond being an object.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Ajv, type ErrorObject, type FuncKeywordDefinition, type ValidateFunction } from 'ajv';
import { parseAllDocuments } from 'yaml';

export const METALLB_GROUP = 'metallb.io';

/** One problem found in an object, e.g. `{ path: 'spec.addresses[0]', reason: 'must be a string' }`. */
export interface SchemaProblem {
  /** Dotted field path (`spec.nodeSelectors[0].matchLabels["kubernetes.io/os"]`); `(root)` for the object. */
  path: string;
  reason: string;
}

export interface SchemaValidation {
  /** A copy of the input with schema defaults applied and null fields dropped, as the API server stores it. */
  value: unknown;
  problems: SchemaProblem[];
  /** Non-fatal notes, e.g. the deprecation warning of a deprecated version. */
  warnings: string[];
}

export interface ValidateOptions {
  /** The stored object this one replaces; enables CEL transition rules (`self == oldSelf`). */
  old?: unknown;
}

export interface PrinterColumn {
  name: string;
  jsonPath: string;
  type: string;
  priority?: number;
  format?: string;
  description?: string;
}

export interface CrdVersionInfo {
  name: string;
  served: boolean;
  storage: boolean;
  deprecated: boolean;
  deprecationWarning?: string;
  printerColumns: PrinterColumn[];
}

export interface CrdInfo {
  kind: string;
  group: string;
  plural: string;
  singular: string;
  listKind: string;
  scope: string;
  /** Name of the storage version. */
  storageVersion: string;
  versions: CrdVersionInfo[];
  /** File in deploy/crds the CRD was read from. */
  file: string;
}

type JsonObject = Record<string, unknown>;

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Finds the package root: the nearest folder at or above `from` holding both package.json and
 * deploy/crds. Works from src/config (ts-jest) and from dist/src/config (built).
 */
export function findPackageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = resolve(from);
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'deploy', 'crds'))) return dir;
    const parent = dirname(dir);
    if (parent === dir)
      throw new Error(`cannot find the ironlb package root (package.json + deploy/crds) above ${from}`);
    dir = parent;
  }
}

// ------------------------------------------------------------------------------ Go durations

const NS_PER_UNIT: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n, // U+00B5 micro sign
  μs: 1_000n, // U+03BC Greek mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};
const MAX_INT64 = (1n << 63n) - 1n;

/**
 * Parses a Go duration string (time.ParseDuration, as used by metav1.Duration and CEL's
 * duration()) into nanoseconds. Returns undefined when Go would reject it.
 */
export function parseGoDuration(text: string): bigint | undefined {
  let s = text;
  let negative = false;
  if (s.startsWith('-') || s.startsWith('+')) {
    negative = s.startsWith('-');
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') return undefined;
  let total = 0n;
  while (s !== '') {
    const m = /^([0-9]*)(?:\.([0-9]*))?/.exec(s);
    const whole = m?.[1] ?? '';
    const frac = m?.[2];
    if (whole === '' && (frac === undefined || frac === '')) return undefined;
    s = s.slice(m?.[0].length ?? 0);
    const unitMatch = /^[^0-9.]+/.exec(s);
    if (!unitMatch) return undefined;
    const unit = NS_PER_UNIT[unitMatch[0]];
    if (unit === undefined) return undefined;
    s = s.slice(unitMatch[0].length);
    let v = BigInt(whole === '' ? '0' : whole) * unit;
    if (frac) v += (BigInt(frac) * unit) / 10n ** BigInt(frac.length);
    total += v;
    if (total > MAX_INT64 + (negative ? 1n : 0n)) return undefined;
  }
  return negative ? -total : total;
}

// ------------------------------------------------------------------------------ CEL rules

interface CelResult {
  ok: boolean;
  /** Replaces the rule's message, e.g. for a runtime error such as an unparsable duration. */
  error?: string;
}

interface CelImpl {
  /** Transition rules reference oldSelf and run only on updates where both values exist. */
  transition: boolean;
  check(self: unknown, oldSelf: unknown): CelResult;
}

const PASS: CelResult = { ok: true };

/** Evaluates CEL's duration(self) and returns [getSeconds(), getMilliseconds()]. */
function celDuration(self: unknown): [bigint, bigint] | CelResult {
  if (typeof self !== 'string') return PASS; // the type error is reported by the schema
  const ns = parseGoDuration(self);
  if (ns === undefined) return { ok: false, error: `invalid duration ${JSON.stringify(self)}` };
  return [ns / 1_000_000_000n, ns / 1_000_000n];
}

/**
 * Hand-written equivalents of the CEL rules in deploy/crds, keyed by exact rule text.
 * Values that have the wrong type pass here: the schema check already reports them.
 */
const CEL_RULES: Record<string, CelImpl> = {
  'self == oldSelf': {
    transition: true,
    check: (self, oldSelf) => ({ ok: JSON.stringify(self) === JSON.stringify(oldSelf) }),
  },
  '!has(self.serviceSelectors) || size(self.serviceSelectors) == 0 || ((!has(self.aggregationLength) || self.aggregationLength == 32) && (!has(self.aggregationLengthV6) || self.aggregationLengthV6 == 128))':
    {
      transition: false,
      check: (self) => {
        if (!isObject(self)) return PASS;
        const selectors = self.serviceSelectors;
        if (!Array.isArray(selectors) || selectors.length === 0) return PASS;
        const v4 = self.aggregationLength;
        const v6 = self.aggregationLengthV6;
        return { ok: (v4 === undefined || v4 === 32) && (v6 === undefined || v6 === 128) };
      },
    },
  'duration(self).getSeconds() >= 1 && duration(self).getSeconds() <= 65535': {
    transition: false,
    check: (self) => {
      const d = celDuration(self);
      if (!Array.isArray(d)) return d;
      return { ok: d[0] >= 1n && d[0] <= 65535n };
    },
  },
  'duration(self).getMilliseconds() % 1000 == 0': {
    transition: false,
    check: (self) => {
      const d = celDuration(self);
      if (!Array.isArray(d)) return d;
      return { ok: d[1] % 1000n === 0n };
    },
  },
};

/** A CEL rule found in a schema, at a path of property names ('[]' = every array item). */
interface CelRule {
  at: string[];
  rule: string;
  message: string;
  impl: CelImpl;
}

function collectCelRules(node: unknown, at: string[], out: CelRule[], where: string): void {
  if (!isObject(node)) return;
  const rules = node['x-kubernetes-validations'];
  if (Array.isArray(rules)) {
    for (const r of rules) {
      const rule = isObject(r) && typeof r.rule === 'string' ? r.rule : undefined;
      if (rule === undefined) throw new Error(`${where}: x-kubernetes-validations entry without a rule`);
      const impl = CEL_RULES[rule];
      if (!impl) throw new Error(`${where}: CEL rule has no implementation in src/config/schema.ts: ${rule}`);
      const message = isObject(r) && typeof r.message === 'string' ? r.message : `failed rule: ${rule}`;
      out.push({ at, rule, message, impl });
    }
  }
  if (isObject(node.properties)) {
    for (const [k, v] of Object.entries(node.properties)) collectCelRules(v, [...at, k], out, where);
  }
  if (isObject(node.items)) collectCelRules(node.items, [...at, '[]'], out, where);
  if (isObject(node.additionalProperties))
    collectCelRules(node.additionalProperties, [...at, '{}'], out, where);
}

/** Yields [value, oldValue, path] for every value the rule applies to. Old values are only tracked through properties. */
function* celTargets(
  value: unknown,
  old: unknown,
  at: readonly string[],
  path: string,
): Generator<[unknown, unknown, string]> {
  if (at.length === 0) {
    yield [value, old, path];
    return;
  }
  const [head, ...rest] = at as [string, ...string[]];
  if (head === '[]') {
    if (!Array.isArray(value)) return;
    for (let i = 0; i < value.length; i++) yield* celTargets(value[i], undefined, rest, `${path}[${i}]`);
  } else if (head === '{}') {
    if (!isObject(value)) return;
    for (const [k, v] of Object.entries(value)) yield* celTargets(v, undefined, rest, joinKey(path, k));
  } else {
    if (!isObject(value) || value[head] === undefined) return;
    yield* celTargets(value[head], isObject(old) ? old[head] : undefined, rest, joinKey(path, head));
  }
}

// ------------------------------------------------------------------------------ paths and errors

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

function joinKey(path: string, key: string): string {
  if (IDENT.test(key)) return path === '' ? key : `${path}.${key}`;
  return `${path}[${JSON.stringify(key)}]`;
}

/** Converts an ajv JSON pointer into a dotted path, using the data to tell array indexes from keys. */
function pointerToPath(pointer: string, data: unknown): string {
  if (pointer === '') return '';
  let path = '';
  let cur: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) {
      path += `[${seg}]`;
      cur = cur[Number(seg)];
    } else {
      path = joinKey(path, seg);
      cur = isObject(cur) ? cur[seg] : undefined;
    }
  }
  return path;
}

const displayPath = (path: string): string => (path === '' ? '(root)' : path);

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean',
  array: 'a list',
  object: 'an object',
  null: 'null',
};

const FORMAT_NAMES: Record<string, string> = {
  'date-time': 'an RFC 3339 date-time',
  byte: 'base64 data',
};

function plural(n: unknown, word: string): string {
  return `${String(n)} ${word}${n === 1 ? '' : 's'}`;
}

function ajvErrorToProblem(e: ErrorObject, data: unknown): SchemaProblem {
  const base = pointerToPath(e.instancePath, data);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return { path: joinKey(base, String(p.missingProperty)), reason: 'is required' };
    case 'additionalProperties':
      return { path: joinKey(base, String(p.additionalProperty)), reason: 'unknown field' };
    case 'enum': {
      const allowed = Array.isArray(p.allowedValues) ? p.allowedValues.map(String) : [];
      return { path: displayPath(base), reason: `must be one of ${allowed.join(', ')}` };
    }
    case 'type': {
      const types = String(p.type)
        .split(',')
        .map((t) => TYPE_NAMES[t] ?? t);
      return { path: displayPath(base), reason: `must be ${types.join(' or ')}` };
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return { path: displayPath(base), reason: `must be ${String(p.comparison)} ${String(p.limit)}` };
    case 'minItems':
      return { path: displayPath(base), reason: `must have at least ${plural(p.limit, 'item')}` };
    case 'maxItems':
      return { path: displayPath(base), reason: `must have at most ${plural(p.limit, 'item')}` };
    case 'minLength':
      return { path: displayPath(base), reason: `must be at least ${plural(p.limit, 'character')} long` };
    case 'maxLength':
      return { path: displayPath(base), reason: `must be at most ${plural(p.limit, 'character')} long` };
    case 'pattern':
      return { path: displayPath(base), reason: `must match ${String(p.pattern)}` };
    case 'format': {
      const f = String(p.format);
      return { path: displayPath(base), reason: `must be ${FORMAT_NAMES[f] ?? `a valid ${f}`}` };
    }
    default:
      return { path: displayPath(base), reason: e.message ?? `failed ${e.keyword} check` };
  }
}

// ------------------------------------------------------------------------------ schema preparation

/**
 * Turns a CRD openAPIV3Schema into the schema ajv compiles: objects with a fixed set of
 * properties (and empty objects, which the API server prunes to {}) reject unknown fields,
 * except the root `metadata`; OpenAPI 3.0 boolean exclusiveMinimum/Maximum become numbers.
 */
function toAjvSchema(node: unknown, isRootMetadata = false): unknown {
  if (!isObject(node)) return node;
  const out: JsonObject = { ...node };
  if (isObject(out.properties)) {
    out.properties = Object.fromEntries(Object.entries(out.properties).map(([k, v]) => [k, toAjvSchema(v)]));
  }
  if (isObject(out.items)) out.items = toAjvSchema(out.items);
  if (isObject(out.additionalProperties)) out.additionalProperties = toAjvSchema(out.additionalProperties);
  for (const key of ['allOf', 'anyOf', 'oneOf'] as const) {
    const list = out[key];
    if (Array.isArray(list)) out[key] = list.map((s) => toAjvSchema(s));
  }
  if (isObject(out.not)) out.not = toAjvSchema(out.not);
  for (const [flag, limit] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const) {
    if (typeof out[flag] === 'boolean') {
      if (out[flag] === true && typeof out[limit] === 'number') {
        out[flag] = out[limit];
        delete out[limit];
      } else {
        delete out[flag];
      }
    }
  }
  const isObjectType = out.type === 'object' || out.properties !== undefined;
  if (
    isObjectType &&
    !isRootMetadata &&
    out.additionalProperties === undefined &&
    out['x-kubernetes-preserve-unknown-fields'] !== true
  ) {
    out.additionalProperties = false;
  }
  return out;
}

/** toAjvSchema for a whole openAPIV3Schema: the root metadata object stays open. */
function rootToAjvSchema(schema: JsonObject): JsonObject {
  const prepared = toAjvSchema(schema) as JsonObject;
  const props = prepared.properties;
  const originalProps = schema.properties;
  if (isObject(props) && isObject(originalProps) && isObject(originalProps.metadata)) {
    props.metadata = toAjvSchema(originalProps.metadata, true);
  }
  return prepared;
}

/** Drops null-valued properties unless the schema says nullable, as the API server does before defaulting. */
function pruneNulls(value: unknown, schema: unknown): void {
  if (!isObject(schema)) return;
  if (Array.isArray(value)) {
    for (const item of value) pruneNulls(item, schema.items);
    return;
  }
  if (!isObject(value)) return;
  const props = isObject(schema.properties) ? schema.properties : undefined;
  for (const [k, v] of Object.entries(value)) {
    const sub = props ? props[k] : schema.additionalProperties;
    if (v === null) {
      if (props && !(isObject(sub) && sub.nullable === true)) delete value[k];
    } else {
      pruneNulls(v, sub);
    }
  }
}

type KeywordValidator = ReturnType<NonNullable<FuncKeywordDefinition['compile']>>;

const ANNOTATION_KEYWORDS = [
  'x-kubernetes-validations',
  'x-kubernetes-map-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-int-or-string',
  'x-kubernetes-embedded-resource',
];

const RFC3339 =
  /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$/;

function newAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, strictTypes: false });
  for (const keyword of ANNOTATION_KEYWORDS) ajv.addKeyword({ keyword });
  ajv.addKeyword({
    keyword: 'x-kubernetes-list-type',
    type: 'array',
    schemaType: 'string',
    errors: true,
    compile(listType: string, parentSchema) {
      const keys = Array.isArray(parentSchema['x-kubernetes-list-map-keys'])
        ? (parentSchema['x-kubernetes-list-map-keys'] as unknown[]).map(String)
        : [];
      const check = (data: unknown[], cxt?: { instancePath: string }): boolean => {
        if (listType !== 'set' && listType !== 'map') return true;
        const seen = new Map<string, number>();
        const errors: Partial<ErrorObject>[] = [];
        data.forEach((item, i) => {
          const id =
            listType === 'set'
              ? JSON.stringify(item)
              : JSON.stringify(keys.map((k) => (isObject(item) ? item[k] : undefined)));
          const first = seen.get(id);
          if (first === undefined) {
            seen.set(id, i);
            return;
          }
          const what =
            listType === 'set'
              ? 'duplicate entry'
              : `duplicate entry for key ${keys.map((k) => `${k}=${JSON.stringify(isObject(item) ? item[k] : undefined)}`).join(', ')}`;
          errors.push({
            keyword: 'x-kubernetes-list-type',
            instancePath: `${cxt?.instancePath ?? ''}/${i}`,
            message: `${what} (same as item ${first})`,
            params: {},
          });
        });
        check.errors = errors;
        return errors.length === 0;
      };
      check.errors = [] as Partial<ErrorObject>[];
      return check as KeywordValidator;
    },
  });
  ajv.addFormat('int32', { type: 'number', validate: () => true });
  ajv.addFormat('int64', { type: 'number', validate: () => true });
  ajv.addFormat('float', { type: 'number', validate: () => true });
  ajv.addFormat('double', { type: 'number', validate: () => true });
  ajv.addFormat('date-time', RFC3339);
  ajv.addFormat('byte', /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/);
  return ajv;
}

// ------------------------------------------------------------------------------ CrdSchemas

interface CompiledVersion {
  info: CrdVersionInfo;
  schema: JsonObject;
  validate: ValidateFunction;
  cel: CelRule[];
}

interface LoadedCrd {
  info: CrdInfo;
  document: JsonObject;
  versions: Map<string, CompiledVersion>;
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') throw new Error(`${what} must be a non-empty string`);
  return v;
}

function parsePrinterColumns(v: unknown, where: string): PrinterColumn[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new Error(`${where}: additionalPrinterColumns must be a list`);
  return v.map((c, i) => {
    if (!isObject(c)) throw new Error(`${where}: additionalPrinterColumns[${i}] must be an object`);
    const col: PrinterColumn = {
      name: str(c.name, `${where}: printer column name`),
      jsonPath: str(c.jsonPath, `${where}: printer column jsonPath`),
      type: str(c.type, `${where}: printer column type`),
    };
    if (typeof c.priority === 'number') col.priority = c.priority;
    if (typeof c.format === 'string') col.format = c.format;
    if (typeof c.description === 'string') col.description = c.description;
    return col;
  });
}

export class CrdSchemas {
  private static readonly cache = new Map<string, CrdSchemas>();

  private constructor(
    /** Package root the CRDs were read from. */
    readonly root: string,
    private readonly crds: Map<string, LoadedCrd>,
  ) {}

  /** Reads and compiles deploy/crds/*.yaml under `root` (default: the package root); cached per root. */
  static load(root?: string): CrdSchemas {
    const dir = resolve(root ?? findPackageRoot());
    const cached = CrdSchemas.cache.get(dir);
    if (cached) return cached;
    const loaded = new CrdSchemas(dir, CrdSchemas.read(dir));
    CrdSchemas.cache.set(dir, loaded);
    return loaded;
  }

  private static read(root: string): Map<string, LoadedCrd> {
    const dir = join(root, 'deploy', 'crds');
    const ajv = newAjv();
    const crds = new Map<string, LoadedCrd>();
    const files = readdirSync(dir)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort();
    for (const file of files) {
      for (const doc of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
        const firstError = doc.errors[0];
        if (firstError) throw new Error(`deploy/crds/${file}: ${firstError.message}`);
        const crd: unknown = doc.toJS();
        if (!isObject(crd) || crd.kind !== 'CustomResourceDefinition') continue;
        const spec = crd.spec;
        if (!isObject(spec) || spec.group !== METALLB_GROUP) continue;
        const loaded = CrdSchemas.compileCrd(ajv, crd, spec, file);
        if (crds.has(loaded.info.kind))
          throw new Error(`deploy/crds/${file}: kind ${loaded.info.kind} defined twice`);
        crds.set(loaded.info.kind, loaded);
      }
    }
    if (crds.size === 0) throw new Error(`no ${METALLB_GROUP} CustomResourceDefinitions in ${dir}`);
    return crds;
  }

  private static compileCrd(ajv: Ajv, crd: JsonObject, spec: JsonObject, file: string): LoadedCrd {
    const where = `deploy/crds/${file}`;
    const names = isObject(spec.names) ? spec.names : {};
    const kind = str(names.kind, `${where}: spec.names.kind`);
    if (!Array.isArray(spec.versions)) throw new Error(`${where}: spec.versions must be a list`);
    const versions = new Map<string, CompiledVersion>();
    let storageVersion: string | undefined;
    for (const v of spec.versions as unknown[]) {
      if (!isObject(v)) throw new Error(`${where}: version entries must be objects`);
      const name = str(v.name, `${where}: version name`);
      const vwhere = `${where} ${kind} ${name}`;
      const schemaHolder = v.schema;
      const schema = isObject(schemaHolder) ? schemaHolder.openAPIV3Schema : undefined;
      if (!isObject(schema)) throw new Error(`${vwhere}: no schema.openAPIV3Schema`);
      const info: CrdVersionInfo = {
        name,
        served: v.served === true,
        storage: v.storage === true,
        deprecated: v.deprecated === true,
        printerColumns: parsePrinterColumns(v.additionalPrinterColumns, vwhere),
      };
      if (typeof v.deprecationWarning === 'string') info.deprecationWarning = v.deprecationWarning;
      if (info.storage) storageVersion = name;
      let validate: ValidateFunction;
      try {
        validate = ajv.compile(rootToAjvSchema(schema));
      } catch (err) {
        throw new Error(`${vwhere}: schema does not compile: ${(err as Error).message}`);
      }
      const cel: CelRule[] = [];
      collectCelRules(schema, [], cel, vwhere);
      versions.set(name, { info, schema, validate, cel });
    }
    if (storageVersion === undefined) throw new Error(`${where}: no storage version`);
    const info: CrdInfo = {
      kind,
      group: METALLB_GROUP,
      plural: str(names.plural, `${where}: spec.names.plural`),
      singular: typeof names.singular === 'string' ? names.singular : kind.toLowerCase(),
      listKind: typeof names.listKind === 'string' ? names.listKind : `${kind}List`,
      scope: typeof spec.scope === 'string' ? spec.scope : 'Namespaced',
      storageVersion,
      versions: [...versions.values()].map((cv) => cv.info),
      file,
    };
    return { info, document: crd, versions };
  }

  /** Known kinds, sorted. */
  kinds(): string[] {
    return [...this.crds.keys()].sort();
  }

  /** Served versions of a kind, in CRD order ([] for an unknown kind). */
  versions(kind: string): string[] {
    const crd = this.crds.get(kind);
    return crd ? crd.info.versions.filter((v) => v.served).map((v) => v.name) : [];
  }

  /** Names, scope, versions and printer columns of a kind. */
  crd(kind: string): CrdInfo | undefined {
    const crd = this.crds.get(kind);
    return crd ? structuredClone(crd.info) : undefined;
  }

  /** The kind whose plural resource name is `plural` (e.g. `bgppeers` → `BGPPeer`). */
  kindForPlural(plural: string): string | undefined {
    for (const crd of this.crds.values()) if (crd.info.plural === plural) return crd.info.kind;
    return undefined;
  }

  /** Printer columns of one version ([] when none or unknown). */
  printerColumns(kind: string, version: string): PrinterColumn[] {
    const v = this.crds.get(kind)?.versions.get(version);
    return v ? structuredClone(v.info.printerColumns) : [];
  }

  /** The CustomResourceDefinition documents as parsed from YAML (copies), ordered by kind. */
  documents(): JsonObject[] {
    return this.kinds().map((k) => structuredClone(this.crds.get(k)!.document));
  }

  /** The openAPIV3Schema of one version as written in the YAML (a copy). */
  openApiSchema(kind: string, version: string): JsonObject | undefined {
    const v = this.crds.get(kind)?.versions.get(version);
    return v ? structuredClone(v.schema) : undefined;
  }

  /**
   * Validates `obj` as `kind` at `apiVersion` (`metallb.io/v1beta1` or just `v1beta1`), like the
   * API server would on create (or on update, when `options.old` is given). Never throws.
   */
  validate(kind: string, apiVersion: string, obj: unknown, options: ValidateOptions = {}): SchemaValidation {
    const crd = this.crds.get(kind);
    if (!crd) {
      return {
        value: obj,
        problems: [
          {
            path: 'kind',
            reason: `unknown kind ${JSON.stringify(kind)} (known: ${this.kinds().join(', ')})`,
          },
        ],
        warnings: [],
      };
    }
    const slash = apiVersion.lastIndexOf('/');
    const group = slash >= 0 ? apiVersion.slice(0, slash) : METALLB_GROUP;
    const versionName = slash >= 0 ? apiVersion.slice(slash + 1) : apiVersion;
    const version = crd.versions.get(versionName);
    if (group !== METALLB_GROUP || !version?.info.served) {
      const served = this.versions(kind).map((v) => `${METALLB_GROUP}/${v}`);
      return {
        value: obj,
        problems: [
          {
            path: 'apiVersion',
            reason: `${kind} is not served as ${apiVersion} (use ${served.join(' or ')})`,
          },
        ],
        warnings: [],
      };
    }
    const warnings: string[] = [];
    if (version.info.deprecated) {
      warnings.push(
        version.info.deprecationWarning ?? `${METALLB_GROUP}/${versionName} ${kind} is deprecated`,
      );
    }
    if (!isObject(obj)) {
      return { value: obj, problems: [{ path: '(root)', reason: 'must be an object' }], warnings };
    }

    const value = structuredClone(obj);
    pruneNulls(value, version.schema);
    const problems: SchemaProblem[] = [];
    if (typeof value.kind === 'string' && value.kind !== kind) {
      problems.push({ path: 'kind', reason: `must be ${kind}` });
    }
    if (typeof value.apiVersion === 'string' && value.apiVersion !== `${METALLB_GROUP}/${versionName}`) {
      problems.push({ path: 'apiVersion', reason: `must be ${METALLB_GROUP}/${versionName}` });
    }
    if (!version.validate(value)) {
      for (const e of version.validate.errors ?? []) problems.push(ajvErrorToProblem(e, value));
    }
    const old = isObject(options.old) ? options.old : undefined;
    for (const rule of version.cel) {
      for (const [self, oldSelf, path] of celTargets(value, old, rule.at, '')) {
        if (rule.impl.transition && oldSelf === undefined) continue;
        const result = rule.impl.check(self, oldSelf);
        if (!result.ok) problems.push({ path: displayPath(path), reason: result.error ?? rule.message });
      }
    }
    return { value, problems: dedupe(problems), warnings };
  }
}

function dedupe(problems: SchemaProblem[]): SchemaProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.path}\u0000${p.reason}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Formats problems one per line as `path: reason`. */
export function formatProblems(problems: readonly SchemaProblem[]): string {
  return problems.map((p) => `${p.path}: ${p.reason}`).join('\n');
}
