/**
 * Reading multi-document YAML files and directories into Kubernetes objects, and sorting them by
 * kind. Errors name the file and the line; nothing here throws anything but InputError.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
import type { NamespaceInfo, NodeInfo } from './model.js';
import { asArray, asRecord, asString, asStringMap } from '../util/shape.js';
import { emptyInput, type ConfigInput, type RawObject } from './parse.js';

/** Unreadable or unparsable input (CLI exit code 2). */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

export interface LoadedObject {
  readonly obj: RawObject;
  readonly file: string;
  readonly line: number;
}

async function expand(path: string): Promise<string[]> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    throw new InputError(`${path}: cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (!st.isDirectory()) return [path];
  const names = (await readdir(path)).filter((n) => /\.ya?ml$/.test(n)).sort();
  const files: string[] = [];
  for (const n of names) {
    const p = join(path, n);
    if ((await stat(p)).isFile()) files.push(p);
  }
  return files;
}

/** Parses YAML text; `file` is only used in messages. */
export function parseYamlObjects(text: string, file: string): LoadedObject[] {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  const out: LoadedObject[] = [];
  if (!Array.isArray(docs)) {
    throw new InputError(`${file}: not a YAML document stream`);
  }
  for (const doc of docs) {
    const err = doc.errors[0];
    if (err) {
      const pos = lc.linePos(err.pos[0]);
      const msg = err.message.split('\n')[0];
      throw new InputError(`${file}:${pos.line}:${pos.col}: invalid YAML: ${msg}`);
    }
    const line = doc.contents ? lc.linePos(doc.contents.range[0]).line : 1;
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      throw new InputError(`${file}:${line}: invalid YAML: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value)) {
      throw new InputError(`${file}:${line}: a document must be a Kubernetes object (a mapping)`);
    }
    const obj = value as RawObject;
    if (obj.kind === 'List' && Array.isArray(obj.items)) {
      for (const item of obj.items as unknown[]) {
        if (item && typeof item === 'object' && !Array.isArray(item))
          out.push({ obj: item as RawObject, file, line });
        else throw new InputError(`${file}:${line}: a List item must be a Kubernetes object`);
      }
      continue;
    }
    out.push({ obj, file, line });
  }
  return out;
}

/** Loads files and directories (*.yaml / *.yml in name order, not recursive). */
export async function loadPaths(paths: readonly string[]): Promise<LoadedObject[]> {
  const out: LoadedObject[] = [];
  for (const p of paths) {
    for (const f of await expand(p)) {
      let text: string;
      try {
        text = await readFile(f, 'utf8');
      } catch (e) {
        throw new InputError(`${f}: cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
      }
      out.push(...parseYamlObjects(text, f));
    }
  }
  return out;
}

export interface SortedObjects {
  readonly config: ConfigInput;
  readonly services: RawObject[];
  readonly endpointSlices: RawObject[];
  /** Kinds we do not read, as `Kind/name (file:line)`. */
  readonly ignored: string[];
}

const CONFIG_KINDS: Record<string, keyof ConfigInput> = {
  IPAddressPool: 'ipAddressPools',
  L2Advertisement: 'l2Advertisements',
  BGPAdvertisement: 'bgpAdvertisements',
  BGPPeer: 'bgpPeers',
  Community: 'communities',
  BFDProfile: 'bfdProfiles',
  Secret: 'secrets',
  ConfigMap: 'configMaps',
};

export function nodeInfo(o: RawObject): NodeInfo {
  const meta = asRecord(o.metadata);
  const conds = asArray(asRecord(o.status).conditions).map(asRecord);
  return {
    name: asString(meta.name) ?? '',
    labels: asStringMap(meta.labels),
    networkUnavailable: conds.some((c) => c.type === 'NetworkUnavailable' && c.status === 'True'),
  };
}

export function namespaceInfo(o: RawObject): NamespaceInfo {
  const meta = asRecord(o.metadata);
  return { name: asString(meta.name) ?? '', labels: asStringMap(meta.labels) };
}

export function sortObjects(objs: readonly LoadedObject[]): SortedObjects {
  const config = emptyInput() as unknown as { -readonly [K in keyof ConfigInput]-?: unknown[] };
  const services: RawObject[] = [];
  const endpointSlices: RawObject[] = [];
  const ignored: string[] = [];
  for (const { obj, file, line } of objs) {
    const kind = typeof obj.kind === 'string' ? obj.kind : '';
    const slot = Object.hasOwn(CONFIG_KINDS, kind) ? CONFIG_KINDS[kind] : undefined;
    if (slot) config[slot].push(obj);
    else if (kind === 'Node') config.nodes.push(nodeInfo(obj));
    else if (kind === 'Namespace') config.namespaces.push(namespaceInfo(obj));
    else if (kind === 'Service') services.push(obj);
    else if (kind === 'EndpointSlice') endpointSlices.push(obj);
    else ignored.push(`${kind || '(no kind)'}/${obj.metadata?.name ?? '?'} (${file}:${line})`);
  }
  return { config: config as unknown as ConfigInput, services, endpointSlices, ignored };
}
