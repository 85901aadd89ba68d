/**
 * `ironlb controller`: the allocator on the Kubernetes API, behind Lease leader election. Each
 * time this replica becomes leader a fresh Controller rebuilds its state from the API (existing
 * IPs first), so a replica that lost and regained leadership never acts on stale allocations.
 */
import { hostname } from 'node:os';
import { Controller } from '../controller/controller.js';
import {
  DEFAULT_CERT_DIR,
  DEFAULT_WEBHOOK_PORT,
  DEFAULT_WEBHOOK_SECRET,
  DEFAULT_WEBHOOK_SERVICE,
  startWebhook,
} from '../controller/webhook.js';
import { CrdSchemas } from '../config/schema.js';
import { DEFAULT_NAMESPACE } from '../config/parse.js';
import { randomBytes } from 'node:crypto';
import { ApiError, KubeClient, RESOURCES } from '../k8s/client.js';
import { EventRecorder } from '../k8s/events.js';
import { LeaderElector } from '../k8s/leader.js';
import { createLogger } from '../util/log.js';
import { one, parseFlags, UsageError, type Io } from './io.js';
import { newMetrics } from '../observability/metrics.js';
import { portFlag } from './io.js';
import { startObservability, untilSignal } from './speaker.js';

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
    { name: 'ml-secret-name' },
    { name: 'port' },
    { name: 'health-probe-port' },
    { name: 'host' },
    { name: 'webhook-mode' },
    { name: 'webhook-port' },
    { name: 'webhook-host' },
    { name: 'webhook-cert-dir' },
    { name: 'webhook-secret' },
    { name: 'disable-cert-rotation', boolean: true },
    { name: 'cert-service-name' },
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
  const webhookMode = one(flags, 'webhook-mode') ?? 'enabled';
  if (!['enabled', 'disabled', 'onlywebhook'].includes(webhookMode))
    throw new UsageError('--webhook-mode must be enabled, disabled or onlywebhook');
  const webhookPort = portFlag(one(flags, 'webhook-port'), 'webhook-port', DEFAULT_WEBHOOK_PORT);
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
  // The webhook runs on every replica, not only on the leader. With `enabled` it starts beside the
  // controller and a failure to start is logged, not fatal; `onlywebhook` runs nothing else.
  const webhookAbort = new AbortController();
  const webhookHost = one(flags, 'webhook-host');
  const webhook =
    webhookMode === 'disabled'
      ? undefined
      : startWebhook({
          client,
          namespace,
          schemas,
          log,
          ...(webhookHost ? { host: webhookHost } : {}),
          port: webhookPort,
          certRotation: !flags['disable-cert-rotation'],
          certDir: one(flags, 'webhook-cert-dir') ?? DEFAULT_CERT_DIR,
          serviceName: one(flags, 'cert-service-name') ?? DEFAULT_WEBHOOK_SERVICE,
          secretName: one(flags, 'webhook-secret') ?? DEFAULT_WEBHOOK_SECRET,
          signal: webhookAbort.signal,
        });
  if (webhookMode === 'onlywebhook') {
    try {
      await webhook;
    } catch (e) {
      await stopObservability();
      client.close();
      throw e;
    }
  }
  void webhook?.catch((e: unknown) => {
    if (!webhookAbort.signal.aborted)
      log.error('webhook not started; continuing without it', {
        error: e instanceof Error ? e.message : String(e),
      });
  });
  let controller: Controller | undefined;
  const mlSecret = one(flags, 'ml-secret-name') ?? process.env.METALLB_ML_SECRET_NAME ?? 'memberlist';
  const onStart = async () => {
    await ensureMemberlistSecret(client, namespace, mlSecret).catch((e: unknown) =>
      log.warn('memberlist Secret not ensured', { error: e instanceof Error ? e.message : String(e) }),
    );
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
  const leaseClient =
    flags['no-leader-election'] || webhookMode === 'onlywebhook'
      ? undefined
      : await KubeClient.fromKubeConfig(kubeconfig);
  if (webhookMode === 'onlywebhook') log.info('webhook-only mode: no IP allocation');
  else if (!leaseClient) await onStart();
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
  log.info('controller started', { namespace, webhookMode });
  const why = await untilSignal(signal);
  log.info('controller stopping', { signal: why });
  if (elector) await elector.stop();
  else await onStop();
  webhookAbort.abort();
  const runningWebhook = await webhook?.catch(() => undefined);
  await runningWebhook?.stop();
  await recorder.flush();
  await stopObservability();
  client.close();
  leaseClient?.close();
  return 0;
}

/**
 * The speakers' membership key (spec f.1): created once, 16 random bytes under `secretkey`,
 * never rotated by us (a rotation would split running speakers).
 */
export async function ensureMemberlistSecret(
  client: KubeClient,
  namespace: string,
  name: string,
): Promise<void> {
  try {
    await client.get(RESOURCES.secrets, namespace, name);
    return;
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 404) throw e;
  }
  try {
    await client.create(RESOURCES.secrets, namespace, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace },
      type: 'Opaque',
      data: { secretkey: randomBytes(16).toString('base64') },
    });
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 409) throw e;
  }
}
