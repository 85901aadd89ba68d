/**
 * `ironlb speaker`: the standalone speaker. Watches a directory of objects (`--source dir:PATH`).
 * BGP (with `--frr-dir`): renders this node's frr.conf on every change for the FRR reloader
 * (`ironlb frr-reloader`) to apply. L2 (with `--l2`): elects one owner per IP and drives the
 * native ARP/NDP helper; with `--ml-bind-addr` liveness comes from the speakers' own membership
 * protocol (UDP), else every known Node counts as live. With `--source k8s` it also writes its
 * status objects and events (speaker/status-writer.ts). Metrics on `--port` (default 9120, 0
 * disables), /healthz and /readyz on 127.0.0.1:`--health-probe-port` (default 17472). Runs until
 * SIGTERM or SIGINT.
 */
import { CrdSchemas } from '../config/schema.js';
import { nodeNameProblem } from '../config/grammar.js';
import { DEFAULT_NAMESPACE } from '../config/parse.js';
import { FrrRenderer } from '../frr/render.js';
import { FRR_LEVELS, type LogLevel } from '../frr/viewmodel.js';
import { BgpSpeaker, DirectorySink, type BgpSpeakerStatus } from '../speaker/bgp-speaker.js';
import { DirSource, type ObjectSource } from '../speaker/dir-source.js';
import { K8sSource } from '../speaker/k8s-source.js';
import { speakerServiceFrom } from '../speaker/inputs.js';
import {
  StatusWriter,
  type L2Announcement,
  type ServiceRef,
  type SpeakerState,
} from '../speaker/status-writer.js';
import type { LoadedObject } from '../config/load.js';
import { formatIP } from '../ip/ip.js';
import { KubeClient, RESOURCES, type KObject } from '../k8s/client.js';
import { EventRecorder } from '../k8s/events.js';
import { newMetrics, type AnnounceProtocol, type Metrics } from '../observability/metrics.js';
import { ObservabilityServer } from '../observability/server.js';
import { readFile } from 'node:fs/promises';
import { createLogger, type Logger } from '../util/log.js';
import { asRecord, asString } from '../util/shape.js';
import { L2Announcer, NodeListLiveness, type AnnouncerStatus } from '../l2/announcer.js';
import { L2Helper } from '../l2/helper.js';
import { compileExcludes, DEFAULT_EXCLUDES, scanInterfaces } from '../l2/interfaces.js';
import { DEFAULT_PORT, Membership } from '../l2/membership.js';
import { one, parseFlags, portFlag, UsageError, type Flags, type Io } from './io.js';

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
    { name: 'port' },
    { name: 'health-probe-port' },
    { name: 'host' },
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
  const metricsPort = portFlag(one(flags, 'port'), 'port', 9120);
  const healthPort = portFlag(one(flags, 'health-probe-port'), 'health-probe-port', 17472);
  const log = createLogger({
    level: level === 'debug' || level === 'all' ? 'debug' : 'info',
    write: (l) => io.err(l),
    base: { component: 'speaker', node },
  });
  const metrics = newMetrics(['k8s', 'speaker', 'layer2', 'ironlb'], log);
  // Schema compilation takes a while: do it before membership starts its sub-second timers.
  const schemas = CrdSchemas.load();
  const renderer = new FrrRenderer();
  const namespace = one(flags, 'namespace') ?? DEFAULT_NAMESPACE;
  let client: KubeClient | undefined;
  if (source === 'k8s') {
    try {
      client = await KubeClient.fromKubeConfig(one(flags, 'kubeconfig') ?? process.env.KUBECONFIG);
    } catch (e) {
      throw new UsageError(`cannot load kubeconfig: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const discover = client ? speakerPodSeeds(client, namespace) : undefined;
  const l2 = l2Enabled ? await startL2(flags, node, log, discover) : undefined;
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
  let dir: ObjectSource;
  let writer: StatusWriter | undefined;
  let recorder: EventRecorder | undefined;
  if (client) {
    dir = new K8sSource({ client, namespace, log });
    recorder = new EventRecorder(client, 'metallb-speaker', log);
    writer = new StatusWriter({
      client,
      namespace,
      node,
      log: log.child({ part: 'status' }),
      recorder,
      ...(process.env.METALLB_POD_NAME ? { podName: process.env.METALLB_POD_NAME } : {}),
      ...(process.env.METALLB_POD_UID ? { podUID: process.env.METALLB_POD_UID } : {}),
    });
    writer.start();
  } else dir = new DirSource(source.slice(4), log);
  const stopObservability = await startObservability({
    metrics,
    port: metricsPort,
    healthPort,
    host: one(flags, 'host') ?? process.env.METALLB_HOST ?? '',
    healthHost: '127.0.0.1',
    log,
  });
  // Status objects, events and metrics follow the speaker's state, off its update path: one
  // coalesced publish after a burst of updates (and after every L2 reconcile).
  let objects: readonly LoadedObject[] = [];
  let publishTimer: NodeJS.Timeout | undefined;
  const series = new AnnouncedSeries(metrics, node);
  const publish = () => {
    publishTimer = undefined;
    try {
      const state = speakerState(objects, speaker.status(), l2?.announcer.status());
      series.sync(state);
      writer?.update(state);
    } catch (e) {
      log.error('publishing the speaker state failed', { error: e instanceof Error ? e.message : String(e) });
    }
  };
  const schedulePublish = () => {
    publishTimer ??= setTimeout(publish, 20);
  };
  const unsubL2 = l2?.announcer.onChange(schedulePublish);
  const l2Stats = l2 ? pollLayer2Stats(l2.helper, metrics, log) : undefined;
  await dir.start((objs) => {
    speaker.update(objs);
    objects = objs;
    const st = speaker.status();
    metrics.recordUpdate(!st.configStale);
    metrics.setConfigLoaded(st.configLoaded);
    metrics.setConfigStale(st.configStale);
    schedulePublish();
  });
  log.info('speaker started', { source, frrDir });
  const why = await untilSignal(signal);
  log.info('speaker stopping', { signal: why });
  await dir.stop();
  unsubL2?.();
  if (l2Stats) clearInterval(l2Stats);
  if (publishTimer) clearTimeout(publishTimer);
  await writer?.stop();
  await speaker.drain();
  await speaker.stop();
  await l2?.stop();
  await recorder?.flush();
  await stopObservability();
  client?.close();
  return 0;
}

/**
 * The metrics listener (`port`, all of /metrics) and the health listener (`healthPort` on
 * `healthHost`: /healthz, /livez, /readyz), as upstream. A port of 0 disables that listener. A
 * listener that cannot bind is logged and left out: the component keeps running (its liveness
 * probe then fails where one is configured). Returns the function that stops both.
 */
export async function startObservability(o: {
  metrics: Metrics;
  port: number;
  healthPort: number;
  host: string;
  healthHost: string;
  log: Logger;
}): Promise<() => Promise<void>> {
  const servers: ObservabilityServer[] = [];
  const want: Array<{ host: string; port: number; endpoints: Array<'metrics' | 'health'> }> = [];
  if (o.port) want.push({ host: o.host, port: o.port, endpoints: ['metrics'] });
  if (o.healthPort) {
    if (o.healthPort === o.port) want[0]!.endpoints.push('health');
    else want.push({ host: o.healthHost, port: o.healthPort, endpoints: ['health'] });
  }
  for (const w of want) {
    const srv = new ObservabilityServer({ ...w, metrics: o.metrics, log: o.log });
    try {
      await srv.start();
      servers.push(srv);
      o.log.info('serving', { endpoints: w.endpoints, url: srv.url() });
    } catch (e) {
      o.log.error('cannot listen; continuing without', {
        endpoints: w.endpoints,
        port: w.port,
        error: e instanceof Error ? e.message : String(e),
      });
    }
  }
  return async () => {
    await Promise.all(servers.map((s) => s.stop()));
  };
}

/** The speaker's state for the status writer and the metrics. */
function speakerState(
  objects: readonly LoadedObject[],
  bgp: BgpSpeakerStatus,
  l2: AnnouncerStatus | undefined,
): SpeakerState {
  const wanted = new Set<string>(bgp.announced.keys());
  for (const k of l2?.served.keys() ?? []) wanted.add(k);
  for (const f of l2?.announceFailed ?? []) wanted.add(f.split(' ')[0]!);
  const services = new Map<string, ServiceRef>();
  if (wanted.size) {
    for (const { obj } of objects) {
      if (obj.kind !== 'Service') continue;
      const meta = asRecord(obj.metadata);
      const namespace = asString(meta.namespace) ?? 'default';
      const name = asString(meta.name) ?? '';
      const key = `${namespace}/${name}`;
      if (!wanted.has(key)) continue;
      const uid = asString(meta.uid);
      const ips = speakerServiceFrom(obj).ips.map(formatIP);
      services.set(key, { namespace, name, ips, ...(uid ? { uid } : {}) });
    }
  }
  const l2Map = new Map<string, L2Announcement>();
  for (const [key, restriction] of l2?.served ?? []) {
    const ips = (services.get(key)?.ips ?? []).filter((ip) => l2!.owned.has(ip));
    if (ips.length === 0) continue;
    if (restriction === 'all') l2Map.set(key, { ips });
    else {
      const ifaces = [...new Set(ips.flatMap((ip) => l2!.owned.get(ip) ?? []))].sort();
      l2Map.set(key, { ips, interfaces: ifaces });
    }
  }
  return {
    configLoaded: bgp.configLoaded,
    configStale: bgp.configStale,
    problems: bgp.problems,
    bgp: bgp.announced,
    l2: l2Map,
    announceFailed: l2?.announceFailed ?? [],
    services,
  };
}

/** `metallb_speaker_announced`: one series per (Service, protocol, IP) announced from this node. */
class AnnouncedSeries {
  private current = new Map<string, { service: string; protocol: AnnounceProtocol; ip: string }>();
  constructor(
    private readonly metrics: Metrics,
    private readonly node: string,
  ) {}

  sync(state: SpeakerState): void {
    const next = new Map<string, { service: string; protocol: AnnounceProtocol; ip: string }>();
    const add = (service: string, protocol: AnnounceProtocol, ips: readonly string[]) => {
      for (const ip of ips) next.set(`${protocol}\u0000${service}\u0000${ip}`, { service, protocol, ip });
    };
    for (const key of state.bgp.keys()) add(key, 'bgp', state.services.get(key)?.ips ?? []);
    for (const [key, a] of state.l2) add(key, 'layer2', a.ips);
    for (const [k, s] of this.current)
      if (!next.has(k)) this.metrics.deleteAnnounced({ ...s, node: this.node });
    for (const [k, s] of next) if (!this.current.has(k)) this.metrics.setAnnounced({ ...s, node: this.node });
    this.current = next;
  }
}

/** The L2 helper's packet counters into the layer2 metrics, every few seconds. */
function pollLayer2Stats(helper: L2Helper, metrics: Metrics, log: Logger): NodeJS.Timeout {
  let busy = false;
  const t = setInterval(() => {
    if (busy) return;
    busy = true;
    helper
      .stats()
      .then((s) => metrics.recordLayer2Stats(s))
      .catch((e: unknown) => log.debug('L2 helper stats failed', { error: String(e) }))
      .finally(() => (busy = false));
  }, 5000);
  t.unref();
  return t;
}

interface L2Parts {
  announcer: L2Announcer;
  helper: L2Helper;
  nodeLiveness?: NodeListLiveness;
  stop(): Promise<void>;
}

/** Membership (optional), the native helper and the announcer, started in that order. */
/**
 * Membership seeds from the speaker Pods (spec d.2: pods matching METALLB_ML_LABELS in the
 * MetalLB namespace, their Pod IPs on the membership port).
 */
function speakerPodSeeds(client: KubeClient, namespace: string): (port: number) => Promise<string[]> {
  const labels = process.env.METALLB_ML_LABELS ?? 'app=metallb,component=speaker';
  return async (port) => {
    const pods = await client.listPage<KObject & { status?: { podIP?: string; phase?: string } }>(
      RESOURCES.pods,
      {
        namespace,
        labelSelector: labels,
      },
    );
    return pods.items
      .filter((p) => p.status?.podIP && p.status.phase === 'Running')
      .map((p) =>
        p.status!.podIP!.includes(':') ? `[${p.status!.podIP}]:${port}` : `${p.status!.podIP}:${port}`,
      );
  };
}

async function startL2(
  flags: Flags,
  node: string,
  log: Logger,
  discover?: (port: number) => Promise<string[]>,
): Promise<L2Parts> {
  const bind = one(flags, 'ml-bind-addr') ?? process.env.METALLB_ML_BIND_ADDR;
  let membership: Membership | undefined;
  let nodeLiveness: NodeListLiveness | undefined;
  let rediscover: NodeJS.Timeout | undefined;
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
    // Without explicit seeds, speakers find each other through their Pods (every minute).
    const found = async (): Promise<string[]> => {
      if (seeds.length || !discover) return seeds;
      try {
        return await discover(port);
      } catch (e) {
        log.warn('listing speaker pods for membership failed', {
          error: e instanceof Error ? e.message : String(e),
        });
        return [];
      }
    };
    const initialSeeds = await found();
    membership = new Membership({
      name: node,
      bindAddress: bind,
      port,
      seeds: initialSeeds,
      ...(secret ? { secret } : {}),
      log: log.child({ part: 'membership' }),
    });
    await membership.start();
    if (!seeds.length && discover) {
      const m = membership;
      rediscover = setInterval(() => {
        void found().then((s) => {
          m.setSeeds(s);
          return m.join();
        });
      }, 60_000);
      rediscover.unref();
    }
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
    helper,
    ...(nodeLiveness ? { nodeLiveness } : {}),
    async stop() {
      if (rediscover) clearInterval(rediscover);
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
