/**
 * `ironlb speaker`: the standalone speaker. Watches a directory of objects (`--source dir:PATH`),
 * renders this node's frr.conf on every change and writes it into `--frr-dir` for the FRR
 * reloader (`ironlb frr-reloader`) to apply. Runs until SIGTERM or SIGINT.
 */
import { CrdSchemas } from '../config/schema.js';
import { nodeNameProblem } from '../config/grammar.js';
import { DEFAULT_NAMESPACE } from '../config/parse.js';
import { FrrRenderer } from '../frr/render.js';
import { FRR_LEVELS, type LogLevel } from '../frr/viewmodel.js';
import { BgpSpeaker, DirectorySink } from '../speaker/bgp-speaker.js';
import { DirSource } from '../speaker/dir-source.js';
import { createLogger } from '../util/log.js';
import { one, parseFlags, UsageError, type Io } from './io.js';

const LEVELS = ['all', 'debug', 'info', 'warn', 'error', 'none'];

/** Resolves on the first SIGTERM/SIGINT (or when `signal` aborts, for tests). */
export function untilSignal(signal?: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    const done = (s: string) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      resolve(s);
    };
    const onTerm = () => done('SIGTERM');
    const onInt = () => done('SIGINT');
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onInt);
    signal?.addEventListener('abort', () => done('abort'), { once: true });
  });
}

export async function runSpeaker(args: string[], io: Io, signal?: AbortSignal): Promise<number> {
  const flags = parseFlags(args, [
    { name: 'node' },
    { name: 'node-name' },
    { name: 'source' },
    { name: 'frr-dir' },
    { name: 'hostname' },
    { name: 'log-level' },
    { name: 'lb-class' },
    { name: 'namespace', short: 'n' },
    { name: 'bgp-debounce-timeout' },
    { name: 'ignore-exclude-lb', boolean: true },
  ]);
  const node = one(flags, 'node') ?? one(flags, 'node-name') ?? process.env.METALLB_NODE_NAME;
  if (!node) throw new UsageError('--node NAME is required');
  const np = nodeNameProblem(node);
  if (np) throw new UsageError(`--node: ${np}`);
  const source = one(flags, 'source') ?? '';
  if (!source.startsWith('dir:') || source.length <= 4) {
    throw new UsageError('--source dir:PATH is required (the Kubernetes source comes with the controller)');
  }
  const frrDir = one(flags, 'frr-dir');
  if (!frrDir) throw new UsageError('--frr-dir DIR is required');
  const level = one(flags, 'log-level') ?? 'info';
  if (!LEVELS.includes(level)) throw new UsageError(`--log-level must be one of ${LEVELS.join(', ')}`);
  const frrLevel = process.env.FRR_LOGGING_LEVEL;
  if (frrLevel && !(FRR_LEVELS as readonly string[]).includes(frrLevel)) {
    throw new UsageError(`FRR_LOGGING_LEVEL must be one of ${FRR_LEVELS.join(', ')}`);
  }
  const debounceText = one(flags, 'bgp-debounce-timeout') ?? process.env.METALLB_BGP_DEBOUNCE_TIMEOUT ?? '50';
  const debounceMs = Number(debounceText);
  if (!Number.isInteger(debounceMs) || debounceMs <= 0) {
    throw new UsageError('--bgp-debounce-timeout must be a positive number of milliseconds');
  }
  const log = createLogger({
    level: level === 'debug' || level === 'all' ? 'debug' : 'info',
    write: (l) => io.err(l),
    base: { component: 'speaker', node },
  });
  const speaker = new BgpSpeaker({
    node,
    schemas: CrdSchemas.load(),
    renderer: new FrrRenderer(),
    sink: new DirectorySink(frrDir),
    log,
    namespace: one(flags, 'namespace') ?? DEFAULT_NAMESPACE,
    hostname: one(flags, 'hostname') ?? node,
    logLevel: level as LogLevel,
    ...(process.env.FRR_LOGGING_LEVEL ? { frrLogLevel: process.env.FRR_LOGGING_LEVEL } : {}),
    lbClass: one(flags, 'lb-class') ?? '',
    ignoreExcludeLabel: flags['ignore-exclude-lb'] !== undefined,
    debounceMs,
  });
  const dir = new DirSource(source.slice(4), log);
  await dir.start((objs) => speaker.update(objs));
  log.info('speaker started', { source, frrDir });
  const why = await untilSignal(signal);
  log.info('speaker stopping', { signal: why });
  await dir.stop();
  await speaker.drain();
  await speaker.stop();
  return 0;
}
