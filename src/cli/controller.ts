/**
 * `ironlb controller`: the allocator on the Kubernetes API, behind Lease leader election. Each
 * time this replica becomes leader a fresh Controller rebuilds its state from the API (existing
 * IPs first), so a replica that lost and regained leadership never acts on stale allocations.
 */
import { hostname } from 'node:os';
import { Controller } from '../controller/controller.js';
import { CrdSchemas } from '../config/schema.js';
import { DEFAULT_NAMESPACE } from '../config/parse.js';
import { KubeClient } from '../k8s/client.js';
import { EventRecorder } from '../k8s/events.js';
import { LeaderElector } from '../k8s/leader.js';
import { createLogger } from '../util/log.js';
import { one, parseFlags, UsageError, type Io } from './io.js';
import { newMetrics, portFlag, startObservability, untilSignal } from './speaker.js';

export async function runController(args: string[], io: Io, signal?: AbortSignal): Promise<number> {
  const flags = parseFlags(args, [
    { name: 'kubeconfig' },
    { name: 'namespace', short: 'n' },
    { name: 'lb-class' },
    { name: 'log-level' },
    { name: 'identity' },
    { name: 'lease-name' },
    { name: 'lease-duration-ms' },
    { name: 'renew-ms' },
    { name: 'no-leader-election', boolean: true },
    { name: 'port' },
    { name: 'health-probe-port' },
    { name: 'host' },
  ]);
  const namespace = one(flags, 'namespace') ?? process.env.METALLB_NAMESPACE ?? DEFAULT_NAMESPACE;
  const level = one(flags, 'log-level') ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(level))
    throw new UsageError('--log-level must be debug, info, warn or error');
  const num = (name: string, dflt: number) => {
    const v = Number(one(flags, name) ?? dflt);
    if (!Number.isInteger(v) || v <= 0)
      throw new UsageError(`--${name} must be a positive number of milliseconds`);
    return v;
  };
  const leaseMs = num('lease-duration-ms', 15_000);
  const renewMs = num('renew-ms', 5_000);
  if (renewMs >= leaseMs) throw new UsageError('--renew-ms must be shorter than --lease-duration-ms');
  const metricsPort = portFlag(one(flags, 'port'), 'port', 9120);
  const healthPort = portFlag(one(flags, 'health-probe-port'), 'health-probe-port', 17472);
  const identity = one(flags, 'identity') ?? process.env.METALLB_POD_NAME ?? `${hostname()}-${process.pid}`;
  const log = createLogger({
    level: level as 'debug' | 'info' | 'warn' | 'error',
    write: (l) => io.err(l),
    base: { component: 'controller', identity },
  });
  const kubeconfig = one(flags, 'kubeconfig') ?? process.env.KUBECONFIG;
  let client: KubeClient;
  try {
    client = await KubeClient.fromKubeConfig(kubeconfig);
  } catch (e) {
    throw new UsageError(`cannot load kubeconfig: ${e instanceof Error ? e.message : String(e)}`);
  }
  const schemas = CrdSchemas.load();
  const recorder = new EventRecorder(client, 'metallb-controller', log);
  const metrics = newMetrics(['allocator', 'k8s', 'ironlb'], log);
  const host = one(flags, 'host') ?? process.env.METALLB_HOST ?? '';
  const stopObservability = await startObservability({
    metrics,
    port: metricsPort,
    healthPort,
    host,
    healthHost: host,
    log,
  });
  let controller: Controller | undefined;
  const onStart = async () => {
    controller = new Controller({
      client,
      namespace,
      schemas,
      recorder,
      log,
      lbClass: one(flags, 'lb-class') ?? '',
      hooks: {
        onPoolCounters: (name, c) => metrics.setPoolCounters(name, c),
        onPoolDeleted: (name) => metrics.deletePool(name),
        onConfig: (loaded, stale) => {
          metrics.setConfigLoaded(loaded);
          metrics.setConfigStale(stale);
        },
        onReconcile: (ok) => metrics.recordUpdate(ok),
        onAssigned: (seconds) => metrics.observeServiceIpAssign(seconds),
      },
      ...(elector ? { canAct: () => elector!.canAct() } : {}),
      ...(process.env.METALLB_POD_NAME ? { podName: process.env.METALLB_POD_NAME } : {}),
      ...(process.env.METALLB_POD_UID ? { podUID: process.env.METALLB_POD_UID } : {}),
    });
    await controller.start();
  };
  const onStop = async () => {
    await controller?.stop();
    controller = undefined;
  };
  let elector: LeaderElector | undefined;
  // The lease has its own connection pool so renewals never queue behind controller traffic.
  const leaseClient = flags['no-leader-election'] ? undefined : await KubeClient.fromKubeConfig(kubeconfig);
  if (!leaseClient) await onStart();
  else {
    elector = new LeaderElector({
      client: leaseClient,
      namespace,
      name: one(flags, 'lease-name') ?? 'metallb-controller',
      identity,
      log,
      leaseMs,
      renewMs,
      retryMs: Math.max(200, Math.floor(renewMs / 2)),
      onStart,
      onStop,
    });
    elector.start();
  }
  log.info('controller started', { namespace });
  const why = await untilSignal(signal);
  log.info('controller stopping', { signal: why });
  if (elector) await elector.stop();
  else await onStop();
  await recorder.flush();
  await stopObservability();
  client.close();
  leaseClient?.close();
  return 0;
}
