/**
 * `ironlb speaker`: the standalone speaker. Watches a directory of objects (`--source dir:PATH`).
 * BGP (with `--frr-dir`): renders this node's frr.conf on every change for the FRR reloader
 * (`ironlb frr-reloader`) to apply. L2 (with `--l2`): elects one owner per IP and drives the
 * native ARP/NDP helper; with `--ml-bind-addr` liveness comes from the speakers' own membership
 * protocol (UDP), else every known Node counts as live. Runs until SIGTERM or SIGINT.
 */
import { CrdSchemas } from '../config/schema.js';
import { nodeNameProblem } from '../config/grammar.js';
import { DEFAULT_NAMESPACE } from '../config/parse.js';
import { FrrRenderer } from '../frr/render.js';
import { FRR_LEVELS, type LogLevel } from '../frr/viewmodel.js';
import { BgpSpeaker, DirectorySink } from '../speaker/bgp-speaker.js';
import { DirSource, type ObjectSource } from '../speaker/dir-source.js';
import { K8sSource } from '../speaker/k8s-source.js';
import { KubeClient } from '../k8s/client.js';
import { readFile } from 'node:fs/promises';
import { createLogger, type Logger } from '../util/log.js';
import { L2Announcer, NodeListLiveness } from '../l2/announcer.js';
import { L2Helper } from '../l2/helper.js';
import { compileExcludes, DEFAULT_EXCLUDES, scanInterfaces } from '../l2/interfaces.js';
import { DEFAULT_PORT, Membership } from '../l2/membership.js';
import { one, parseFlags, UsageError, type Flags, type Io } from './io.js';

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
    { name: 'kubeconfig' },
    { name: 'source' },
    { name: 'frr-dir' },
    { name: 'hostname' },
    { name: 'log-level' },
    { name: 'lb-class' },
    { name: 'namespace', short: 'n' },
    { name: 'bgp-debounce-timeout' },
    { name: 'ignore-exclude-lb', boolean: true },
    { name: 'l2', boolean: true },
    { name: 'l2-exclude', repeat: true },
    { name: 'l2-no-probe', boolean: true },
    { name: 'ml-bind-addr' },
    { name: 'ml-bind-port' },
    { name: 'ml-seeds' },
    { name: 'ml-secret-file' },
  ]);
  const node = one(flags, 'node') ?? one(flags, 'node-name') ?? process.env.METALLB_NODE_NAME;
  if (!node) throw new UsageError('--node NAME is required');
  const np = nodeNameProblem(node);
  if (np) throw new UsageError(`--node: ${np}`);
  const source = one(flags, 'source') ?? 'k8s';
  if (source !== 'k8s' && (!source.startsWith('dir:') || source.length <= 4)) {
    throw new UsageError('--source must be k8s (the API, default) or dir:PATH');
  }
  const frrDir = one(flags, 'frr-dir');
  const l2Enabled = flags.l2 !== undefined;
  if (!frrDir && !l2Enabled) throw new UsageError('enable BGP with --frr-dir DIR, L2 with --l2, or both');
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
  // Schema compilation takes a while: do it before membership starts its sub-second timers.
  const schemas = CrdSchemas.load();
  const renderer = new FrrRenderer();
  const l2 = l2Enabled ? await startL2(flags, node, log) : undefined;
  const speaker = new BgpSpeaker({
    node,
    schemas,
    renderer,
    ...(frrDir ? { sink: new DirectorySink(frrDir) } : {}),
    ...(l2 ? { l2: l2.announcer } : {}),
    ...(l2?.nodeLiveness ? { nodeLiveness: l2.nodeLiveness } : {}),
    log,
    namespace: one(flags, 'namespace') ?? DEFAULT_NAMESPACE,
    hostname: one(flags, 'hostname') ?? node,
    logLevel: level as LogLevel,
    ...(process.env.FRR_LOGGING_LEVEL ? { frrLogLevel: process.env.FRR_LOGGING_LEVEL } : {}),
    lbClass: one(flags, 'lb-class') ?? '',
    ignoreExcludeLabel: flags['ignore-exclude-lb'] !== undefined,
    debounceMs,
  });
  let client: KubeClient | undefined;
  let dir: ObjectSource;
  if (source === 'k8s') {
    try {
      client = await KubeClient.fromKubeConfig(one(flags, 'kubeconfig') ?? process.env.KUBECONFIG);
    } catch (e) {
      throw new UsageError(`cannot load kubeconfig: ${e instanceof Error ? e.message : String(e)}`);
    }
    dir = new K8sSource({ client, namespace: one(flags, 'namespace') ?? DEFAULT_NAMESPACE, log });
  } else dir = new DirSource(source.slice(4), log);
  await dir.start((objs) => speaker.update(objs));
  log.info('speaker started', { source, frrDir });
  const why = await untilSignal(signal);
  log.info('speaker stopping', { signal: why });
  await dir.stop();
  await speaker.drain();
  await speaker.stop();
  await l2?.stop();
  client?.close();
  return 0;
}

interface L2Parts {
  announcer: L2Announcer;
  nodeLiveness?: NodeListLiveness;
  stop(): Promise<void>;
}

/** Membership (optional), the native helper and the announcer, started in that order. */
async function startL2(flags: Flags, node: string, log: Logger): Promise<L2Parts> {
  const bind = one(flags, 'ml-bind-addr') ?? process.env.METALLB_ML_BIND_ADDR;
  let membership: Membership | undefined;
  let nodeLiveness: NodeListLiveness | undefined;
  if (bind) {
    const port = Number(one(flags, 'ml-bind-port') ?? process.env.METALLB_ML_BIND_PORT ?? DEFAULT_PORT);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new UsageError('--ml-bind-port must be 0-65535');
    const secretFile = one(flags, 'ml-secret-file') ?? process.env.METALLB_ML_SECRET_KEY_PATH;
    const secret = secretFile ? await readSecret(secretFile) : undefined;
    const seeds = (one(flags, 'ml-seeds') ?? '')
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
    membership = new Membership({
      name: node,
      bindAddress: bind,
      port,
      seeds,
      ...(secret ? { secret } : {}),
      log: log.child({ part: 'membership' }),
    });
    await membership.start();
  } else {
    nodeLiveness = new NodeListLiveness();
  }
  const helper = new L2Helper({ logger: log.child({ part: 'l2-helper' }) });
  await helper.start();
  const ex = compileExcludes([...DEFAULT_EXCLUDES, ...(flags['l2-exclude'] ?? [])]);
  if (ex.problems.length) throw new UsageError(ex.problems.join('; '));
  const announcer = new L2Announcer({
    node,
    helper,
    liveness: membership ?? nodeLiveness!,
    log: log.child({ part: 'l2' }),
    scan: () => scanInterfaces(),
    excludes: ex.regexps,
    probeBeforeClaim: flags['l2-no-probe'] === undefined,
  });
  await announcer.start();
  return {
    announcer,
    ...(nodeLiveness ? { nodeLiveness } : {}),
    async stop() {
      await announcer.stop();
      await helper.stop();
      await membership?.stop();
    },
  };
}

async function readSecret(path: string): Promise<Buffer> {
  try {
    const b = await readFile(path);
    if (b.length === 0) throw new UsageError(`${path}: the membership secret is empty`);
    return b;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(
      `${path}: cannot read the membership secret (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}
