#!/usr/bin/env node
// Generates src/config/crd-types.generated.ts from the CRD schemas in deploy/crds/*.yaml.
//
//   node scripts/gen-crd-types.mjs            write the file
//   node scripts/gen-crd-types.mjs --check    exit 1 when the committed file is stale
//   node scripts/gen-crd-types.mjs --stdout   print instead of writing
//
// The YAML files are the single source of truth; test/unit/crd-schema.test.ts calls
// generateCrdTypes() and fails when the committed output differs.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { compile } from 'json-schema-to-typescript';
import * as prettier from 'prettier';
import { parseAllDocuments } from 'yaml';

export const OUTPUT_FILE = 'src/config/crd-types.generated.ts';

const GROUP = 'metallb.io';

/** Interfaces to emit, in file order. `name` is the top-level interface name. */
const TARGETS = [
  { kind: 'IPAddressPool', version: 'v1beta1', name: 'IPAddressPool' },
  { kind: 'L2Advertisement', version: 'v1beta1', name: 'L2Advertisement' },
  { kind: 'BGPAdvertisement', version: 'v1beta1', name: 'BGPAdvertisement' },
  { kind: 'BGPPeer', version: 'v1beta2', name: 'BGPPeer' },
  { kind: 'BGPPeer', version: 'v1beta1', name: 'BGPPeerV1beta1' },
  { kind: 'Community', version: 'v1beta1', name: 'Community' },
  { kind: 'BFDProfile', version: 'v1beta1', name: 'BFDProfile' },
  { kind: 'ServiceL2Status', version: 'v1beta1', name: 'ServiceL2Status' },
  { kind: 'ServiceBGPStatus', version: 'v1beta1', name: 'ServiceBGPStatus' },
  { kind: 'ConfigurationState', version: 'v1beta1', name: 'ConfigurationState' },
];

/** Names for nested object schemas, by `<top-level name>:<dotted schema path>` ([] = array items). */
const NESTED_TITLES = {
  'IPAddressPool:spec.serviceAllocation': 'ServiceAllocation',
  'L2Advertisement:spec.preferredNodeSelectors[]': 'PreferredNodeSelector',
  'BGPPeer:spec.passwordSecret': 'SecretReference',
  'BGPPeerV1beta1:spec.nodeSelectors[]': 'BGPPeerV1beta1NodeSelector',
  'Community:spec.communities[]': 'CommunityAlias',
  'ServiceL2Status:status.interfaces[]': 'InterfaceInfo',
  'ConfigurationState:status.conditions[]': 'Condition',
};

/**
 * json-schema-to-typescript capitalises a letter that follows a digit; these names keep the
 * Kubernetes version spelling.
 */
const RENAMES = [[/\bBGPPeerV1Beta1/g, 'BGPPeerV1beta1']];

const BANNER = `/**
 * GENERATED FILE, DO NOT EDIT.
 *
 * Produced by scripts/gen-crd-types.mjs (\`npm run gen:types\`) from the CRD schemas in
 * deploy/crds/*.yaml, which are the single source of truth. Edit the YAML and regenerate.
 */`;

const OBJECT_META = `/** Object metadata, typed loosely: only the fields ironlb reads are named. */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  generateName?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  labels?: { [k: string]: string };
  annotations?: { [k: string]: string };
  ownerReferences?: {
    apiVersion: string;
    kind: string;
    name: string;
    uid: string;
    controller?: boolean;
    blockOwnerDeletion?: boolean;
  }[];
  [k: string]: unknown;
}`;

/** Walks up from this script to the folder holding package.json and deploy/crds. */
export function packageRoot(from = dirname(fileURLToPath(import.meta.url))) {
  let dir = resolve(from);
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'deploy', 'crds'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package root with deploy/crds above ${from}`);
    dir = parent;
  }
}

/** Reads every CustomResourceDefinition in deploy/crds, keyed by kind. */
function readCrds(root) {
  const dir = join(root, 'deploy', 'crds');
  const out = new Map();
  for (const file of readdirSync(dir).sort()) {
    if (!/\.ya?ml$/.test(file)) continue;
    for (const doc of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0].message}`);
      const crd = doc.toJS();
      if (crd?.kind !== 'CustomResourceDefinition' || crd.spec?.group !== GROUP) continue;
      out.set(crd.spec.names.kind, crd);
    }
  }
  return out;
}

const clone = (v) => structuredClone(v);

function stripDescriptions(node) {
  if (Array.isArray(node)) return node.map(stripDescriptions);
  if (node === null || typeof node !== 'object') return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) if (k !== 'description') out[k] = stripDescriptions(v);
  return out;
}

const sameShape = (a, b) => JSON.stringify(stripDescriptions(a)) === JSON.stringify(stripDescriptions(b));

const isEmptyObjectSchema = (s) =>
  s.type === 'object' &&
  s.properties === undefined &&
  s.additionalProperties === undefined &&
  s['x-kubernetes-preserve-unknown-fields'] !== true;

/**
 * Rewrites one node of an openAPIV3Schema for json-schema-to-typescript: shared label selectors
 * become references to LabelSelector, empty objects become Record<string, never>, and chosen
 * nested objects get a title (and so their own interface).
 */
function rewrite(node, ctx, path) {
  if (node === null || typeof node !== 'object') return node;
  if (ctx.labelSelector && sameShape(node, ctx.labelSelector)) {
    return node.description ? { description: node.description, tsType: 'LabelSelector' } : { tsType: 'LabelSelector' };
  }
  const out = { ...node };
  if (out.default !== undefined && out.description) {
    out.description = `${out.description}\n\n@default ${JSON.stringify(out.default)}`;
  }
  const title = NESTED_TITLES[`${ctx.name}:${path}`];
  if (title) out.title = title;
  if (isEmptyObjectSchema(out)) out.tsType = 'Record<string, never>';
  if (out.properties) {
    out.properties = Object.fromEntries(
      Object.entries(out.properties).map(([k, v]) => [k, rewrite(v, ctx, path ? `${path}.${k}` : k)]),
    );
  }
  if (out.items && !Array.isArray(out.items)) out.items = rewrite(out.items, ctx, `${path}[]`);
  if (out.additionalProperties && typeof out.additionalProperties === 'object') {
    out.additionalProperties = rewrite(out.additionalProperties, ctx, `${path}{}`);
  }
  return out;
}

/** The canonical LabelSelector schema: the one used for IPAddressPool service selectors. */
function canonicalLabelSelector(crds) {
  const pool = crds.get('IPAddressPool');
  const schema = pool?.spec.versions.find((v) => v.name === 'v1beta1')?.schema.openAPIV3Schema;
  const sel = schema?.properties?.spec?.properties?.serviceAllocation?.properties?.serviceSelectors?.items;
  if (!sel) throw new Error('IPAddressPool spec.serviceAllocation.serviceSelectors has no item schema');
  return sel;
}

const compileOptions = {
  bannerComment: '',
  additionalProperties: false,
  declareExternallyReferenced: true,
  format: false,
  ignoreMinAndMaxItems: true,
  strictIndexSignatures: false,
  unknownAny: true,
  unreachableDefinitions: false,
};

async function labelSelectorTypes(canonical) {
  const schema = clone(canonical);
  schema.title = 'LabelSelector';
  const req = schema.properties?.matchExpressions?.items;
  if (req) req.title = 'LabelSelectorRequirement';
  return compile(schema, 'LabelSelector', compileOptions);
}

async function kindTypes(crds, target, canonical) {
  const crd = crds.get(target.kind);
  if (!crd) throw new Error(`no CRD for kind ${target.kind}`);
  const version = crd.spec.versions.find((v) => v.name === target.version);
  if (!version) throw new Error(`CRD ${target.kind} has no version ${target.version}`);
  const ctx = { name: target.name, labelSelector: canonical };
  const schema = rewrite(clone(version.schema.openAPIV3Schema), ctx, '');
  schema.title = target.name;
  const props = schema.properties;
  props.apiVersion = { ...props.apiVersion, tsType: `'${GROUP}/${target.version}'` };
  props.kind = { ...props.kind, tsType: `'${target.kind}'` };
  props.metadata = { tsType: 'ObjectMeta' };
  for (const part of ['spec', 'status']) {
    if (props[part]) props[part] = { ...props[part], title: `${target.name}${part === 'spec' ? 'Spec' : 'Status'}` };
  }
  schema.required = [...new Set(['apiVersion', 'kind', 'metadata', ...(schema.required ?? [])])];
  return compile(schema, target.name, compileOptions);
}

/** Returns the full, prettier-formatted text of src/config/crd-types.generated.ts. */
export async function generateCrdTypes(root = packageRoot()) {
  const crds = readCrds(root);
  const canonical = canonicalLabelSelector(crds);
  const parts = [BANNER, OBJECT_META, await labelSelectorTypes(canonical)];
  for (const target of TARGETS) parts.push(await kindTypes(crds, target, canonical));
  let text = parts.map((p) => p.trim()).join('\n\n') + '\n';
  for (const [from, to] of RENAMES) text = text.replace(from, to);
  const outPath = join(root, OUTPUT_FILE);
  const config = (await prettier.resolveConfig(outPath)) ?? {};
  return prettier.format(text, { ...config, filepath: outPath });
}

async function main(argv) {
  const root = packageRoot();
  const text = await generateCrdTypes(root);
  const outPath = join(root, OUTPUT_FILE);
  if (argv.includes('--stdout')) {
    process.stdout.write(text);
  } else if (argv.includes('--check')) {
    const current = existsSync(outPath) ? readFileSync(outPath, 'utf8') : '';
    if (current !== text) {
      console.error(`${OUTPUT_FILE} is stale; run npm run gen:types`);
      process.exitCode = 1;
    }
  } else {
    writeFileSync(outPath, text);
    console.log(`wrote ${OUTPUT_FILE}`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
