/** `ironlb render`: the frr.conf one node would run, from files. */
import { writeFile, rename, chmod } from 'node:fs/promises';
import { loadPaths, sortObjects } from '../config/load.js';
import { ConfigParser, DEFAULT_NAMESPACE } from '../config/parse.js';
import { formatProblem } from '../config/problems.js';
import { CrdSchemas } from '../config/schema.js';
import { nodeNameProblem } from '../config/grammar.js';
import { FrrRenderer } from '../frr/render.js';
import { renderNodeConfig } from '../frr/node.js';
import { RenderError, type LogLevel } from '../frr/viewmodel.js';
import { endpointIndexFrom, EVERYWHERE, speakerServiceFrom } from '../speaker/inputs.js';
import { one, parseFlags, UsageError, type Io } from './io.js';

const LEVELS = ['all', 'debug', 'info', 'warn', 'error', 'none'];

export async function runRender(args: string[], io: Io): Promise<number> {
  const flags = parseFlags(args, [
    { name: 'file', short: 'f', repeat: true },
    { name: 'node' },
    { name: 'output', short: 'o' },
    { name: 'hostname' },
    { name: 'log-level' },
    { name: 'lb-class' },
    { name: 'namespace', short: 'n' },
    { name: 'ignore-exclude-lb', boolean: true },
  ]);
  const files = flags.file ?? [];
  if (files.length === 0) throw new UsageError('at least one -f PATH is required');
  const node = one(flags, 'node');
  if (!node) throw new UsageError('--node NAME is required');
  const np = nodeNameProblem(node);
  if (np) throw new UsageError(`--node: ${np}`);
  const level = one(flags, 'log-level') ?? 'info';
  if (!LEVELS.includes(level)) throw new UsageError(`--log-level must be one of ${LEVELS.join(', ')}`);
  const objects = sortObjects(await loadPaths(files));
  const nodes = [...objects.config.nodes];
  let me = nodes.find((n) => n.name === node);
  if (!me) {
    me = { name: node, labels: {} };
    nodes.push(me);
  }
  const parser = new ConfigParser(CrdSchemas.load());
  const res = parser.parse(
    { ...objects.config, nodes },
    { namespace: one(flags, 'namespace') ?? DEFAULT_NAMESPACE, scope: 'full', nodeName: node },
  );
  if (!res.config) {
    for (const p of res.problems) io.out(`${formatProblem(p)}\n`);
    io.err(`invalid configuration: ${res.problems.length} problem(s); nothing rendered\n`);
    return 1;
  }
  let text: string;
  try {
    text = renderNodeConfig(new FrrRenderer(), {
      config: res.config,
      node: me,
      services: objects.services.map(speakerServiceFrom),
      endpoints: objects.endpointSlices.length ? endpointIndexFrom(objects.endpointSlices) : EVERYWHERE,
      lbClass: one(flags, 'lb-class') ?? '',
      hostname: one(flags, 'hostname') ?? node,
      logLevel: level as LogLevel,
      ...(process.env.FRR_LOGGING_LEVEL ? { frrLogLevel: process.env.FRR_LOGGING_LEVEL } : {}),
      ignoreExcludeLabel: flags['ignore-exclude-lb'] !== undefined,
    }).text;
  } catch (e) {
    if (e instanceof RenderError) {
      io.err(`ironlb render: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  const out = one(flags, 'output');
  if (!out || out === '-') {
    io.out(text);
    return 0;
  }
  // The file may hold BGP passwords: create it 0600 and move it into place.
  const tmp = `${out}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, out);
  return 0;
}
