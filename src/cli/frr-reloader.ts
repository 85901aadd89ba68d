/**
 * `ironlb frr-reloader --dir DIR [--pathspace NS]`: the FRR-container side of the sidecar
 * layout. Watches DIR for the frr.conf the speaker writes, applies each new version to the local
 * FRR (incrementally through vtysh when it can, frr-reload.py otherwise) and keeps a JSON status
 * file next to it. Runs until SIGTERM or SIGINT; SIGHUP re-reads the config at once.
 *
 * Environment (upstream names, spec e.3 / Appendix A): FRR_CONFIG_FILE (the config path; its
 * directory is the default --dir, its name the default --config-file), FRR_RELOADER_PID_FILE
 * (where the PID goes; default DIR/reloader.pid).
 *
 * `--metrics-port N` (0 = off, the default) also makes it upstream's FRR metrics sidecar: on
 * every scrape it asks the local FRR (`show bgp vrf all neighbors json`, `show bfd peers [counters]
 * json`) and serves the `metallb_bgp_*` and `metallb_bfd_*` series on /metrics, with /livez
 * failing unless every daemon of `--required-daemons` runs (`show daemons`).
 */
import { basename, dirname } from 'node:path';
import { DEFAULT_CONFIG_FILE, runReloader } from '../frr/reloader.js';
import { VtyshExecutor } from '../frr/vtysh.js';
import { parseBfdPeerCounters, parseBfdPeers, parseBgpNeighbors } from '../observability/frr-stats.js';
import { newMetrics } from '../observability/metrics.js';
import { ObservabilityServer } from '../observability/server.js';
import { createLogger, type Logger } from '../util/log.js';
import { one, parseFlags, portFlag, UsageError, type Io } from './io.js';

/** What `show daemons` must list for /livez to pass (upstream also wants bfdd and watchfrr). */
export const DEFAULT_REQUIRED_DAEMONS = ['zebra', 'bgpd', 'staticd'];

/**
 * Serves FRR's BGP and BFD state as MetalLB's metrics (read at scrape time) and /livez.
 * Returns the function that stops the listener.
 */
export async function startFrrMetrics(o: {
  host: string;
  port: number;
  exec: Pick<VtyshExecutor, 'show'>;
  requiredDaemons: readonly string[];
  log: Logger;
}): Promise<{ stop: () => Promise<void>; url: string }> {
  const metrics = newMetrics(['bgp', 'bfd'], o.log);
  const json = async (cmd: string): Promise<unknown> => JSON.parse(await o.exec.show([cmd])) as unknown;
  metrics.addCollector('frr', async () => {
    metrics.setBgpNeighbors(parseBgpNeighbors(await json('show bgp vrf all neighbors json')));
    let peers;
    try {
      peers = parseBfdPeers(await json('show bfd peers json'));
    } catch {
      metrics.clearBfd(); // bfdd not running: no BFD series, as upstream
      return;
    }
    const counters = await json('show bfd peers counters json').then(
      (j) => parseBfdPeerCounters(j),
      () => undefined,
    );
    metrics.setBfdPeers(peers, counters);
  });
  const server = new ObservabilityServer({
    host: o.host,
    port: o.port,
    metrics,
    endpoints: ['metrics', 'health'],
    liveness: async () => {
      try {
        const running = new Set((await o.exec.show(['show daemons'])).trim().split(/\s+/));
        const missing = o.requiredDaemons.filter((d) => !running.has(d));
        return missing.length ? { ok: false, reason: `not running: ${missing.join(', ')}` } : { ok: true };
      } catch (e) {
        return { ok: false, reason: e instanceof Error ? e.message : String(e) };
      }
    },
    log: o.log,
  });
  await server.start();
  o.log.info('serving', { endpoints: ['metrics', 'health'], url: server.url() });
  return { stop: () => server.stop(), url: server.url() ?? '' };
}

/** Resolves on the first SIGTERM/SIGINT (or when `signal` aborts); SIGHUP calls `onHup`. */
function untilStopped(onHup: () => void, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    const done = (s: string) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      process.off('SIGHUP', onHup);
      resolve(s);
    };
    const onTerm = () => done('SIGTERM');
    const onInt = () => done('SIGINT');
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onInt);
    process.on('SIGHUP', onHup);
    if (signal?.aborted) done('abort');
    signal?.addEventListener('abort', () => done('abort'), { once: true });
  });
}

export async function runFrrReloader(args: string[], io: Io, signal?: AbortSignal): Promise<number> {
  const flags = parseFlags(args, [
    { name: 'dir' },
    { name: 'pathspace', short: 'N' },
    { name: 'config-file' },
    { name: 'status-file' },
    { name: 'pid-file' },
    { name: 'vtysh' },
    { name: 'frr-reload' },
    { name: 'log-level' },
    { name: 'poll', boolean: true },
    { name: 'metrics-port' },
    { name: 'metrics-host' },
    { name: 'required-daemons' },
  ]);
  const envConfig = process.env.FRR_CONFIG_FILE;
  const dir = one(flags, 'dir') ?? (envConfig ? dirname(envConfig) : undefined);
  if (!dir) throw new UsageError('--dir DIR is required (or set FRR_CONFIG_FILE)');
  const configFile = one(flags, 'config-file') ?? (envConfig ? basename(envConfig) : DEFAULT_CONFIG_FILE);
  if (basename(configFile) !== configFile)
    throw new UsageError('--config-file must be a file name inside --dir');
  const pathspace = one(flags, 'pathspace');
  if (pathspace !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(pathspace)) {
    throw new UsageError('--pathspace must be 1-64 letters, digits, ".", "_" or "-"');
  }
  const level = one(flags, 'log-level') ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(level)) {
    throw new UsageError('--log-level must be one of debug, info, warn, error');
  }
  const log = createLogger({
    level: level as 'debug' | 'info' | 'warn' | 'error',
    write: (l) => io.err(l),
    base: { component: 'frr-reloader' },
  });
  const pidFile = one(flags, 'pid-file') ?? process.env.FRR_RELOADER_PID_FILE;
  const statusFile = one(flags, 'status-file');
  const vtysh = one(flags, 'vtysh');
  const frrReload = one(flags, 'frr-reload');
  const metricsPort = portFlag(one(flags, 'metrics-port'), 'metrics-port', 0);
  const requiredDaemons = (one(flags, 'required-daemons') ?? DEFAULT_REQUIRED_DAEMONS.join(','))
    .split(',')
    .map((d) => d.trim())
    .filter(Boolean);
  if (requiredDaemons.some((d) => !/^[a-z0-9]{1,32}$/.test(d)))
    throw new UsageError('--required-daemons must be a comma-separated list of FRR daemon names');
  const reloader = await runReloader({
    dir,
    log,
    configFile,
    ...(pathspace !== undefined ? { pathspace } : {}),
    ...(statusFile !== undefined ? { statusFile } : {}),
    ...(pidFile !== undefined ? { pidFile } : {}),
    ...(vtysh !== undefined ? { vtysh } : {}),
    ...(frrReload !== undefined ? { frrReload } : {}),
    usePolling: flags.poll !== undefined,
  });
  const frrMetrics = metricsPort
    ? await startFrrMetrics({
        host: one(flags, 'metrics-host') ?? '0.0.0.0',
        port: metricsPort,
        exec: new VtyshExecutor({
          ...(pathspace !== undefined ? { pathspace } : {}),
          ...(vtysh !== undefined ? { vtysh } : {}),
          timeouts: { showMs: 10_000 },
        }),
        requiredDaemons,
        log,
      }).catch((e: unknown) => {
        log.error('cannot serve FRR metrics; continuing without', {
          port: metricsPort,
          error: e instanceof Error ? e.message : String(e),
        });
        return undefined;
      })
    : undefined;
  const why = await untilStopped(() => {
    log.info('SIGHUP: re-reading the FRR config');
    reloader.rescan();
  }, signal);
  log.info('stopping', { signal: why });
  await frrMetrics?.stop();
  await reloader.stop();
  return 0;
}
