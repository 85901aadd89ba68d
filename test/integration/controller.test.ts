/**
 * The controller on a real kube-apiserver: allocation into Service status, the pool annotation,
 * events, IPAddressPool status, ConfigurationState, our condition, restart without renumbering,
 * and two replicas behind leader election never allocating twice.
 */
import { ControlPlane, k8sUnavailableReason } from '../k8s/controlplane.js';
import { KubeClient, RESOURCES, type KObject } from '../../src/k8s/client.js';
import { runController } from '../../src/cli/controller.js';
import { waitFor } from '../lab/wait.js';

const NS = 'metallb-system';
const unavailable = k8sUnavailableReason();
if (unavailable && process.env.CI === 'true')
  throw new Error(`control plane unavailable under CI=true: ${unavailable}`);
const d = unavailable ? describe.skip : describe;

type Svc = KObject & {
  status?: {
    loadBalancer?: { ingress?: Array<{ ip?: string }> };
    conditions?: Array<Record<string, string>>;
  };
};

function service(name: string, ns = 'default', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns },
    spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }], selector: { app: name }, ...extra },
  };
}

function quietIo(lines: string[]) {
  return { out: (t: string) => void lines.push(t), err: (t: string) => void lines.push(t) };
}

d('controller on a real apiserver', () => {
  let cp: ControlPlane;
  let client: KubeClient;
  const running: Array<{ abort: AbortController; done: Promise<number>; logs: string[] }> = [];

  function startController(extra: string[] = []) {
    const abort = new AbortController();
    const logs: string[] = [];
    const done = runController(
      [
        '--log-level',
        process.env.DEBUG_CONTROLLER ? 'debug' : 'info',
        '--webhook-mode',
        'disabled',
        '--port',
        '0',
        '--health-probe-port',
        '0',
        '--kubeconfig',
        cp.kubeconfigPath,
        '--lease-duration-ms',
        '3000',
        '--renew-ms',
        '1000',
        ...extra,
      ],
      quietIo(logs),
      abort.signal,
    );
    const h = { abort, done, logs };
    running.push(h);
    return h;
  }

  async function stopController(h: { abort: AbortController; done: Promise<number> }) {
    h.abort.abort();
    await h.done;
  }

  const ips = async (name: string, ns = 'default') =>
    ((await client.get<Svc>(RESOURCES.services, ns, name)).status?.loadBalancer?.ingress ?? []).map(
      (i) => i.ip,
    );

  beforeAll(async () => {
    cp = await ControlPlane.start();
    client = await KubeClient.fromKubeConfig(cp.kubeconfigPath);
    for (const ns of [NS, 'team-a']) {
      await client.create(RESOURCES.namespaces, undefined, {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ns },
      });
    }
    await client.create(RESOURCES.ipAddressPools, NS, {
      apiVersion: 'metallb.io/v1beta1',
      kind: 'IPAddressPool',
      metadata: { name: 'public', namespace: NS },
      spec: { addresses: ['203.0.113.0/24'] },
    });
  }, 180_000);

  afterAll(async () => {
    for (const h of running) if (!h.abort.signal.aborted) await stopController(h);
    client?.close();
    await cp?.stop();
  }, 60_000);

  it('allocates, writes status, the pool annotation, our condition, events and pool status', async () => {
    const c = startController();
    await client.create(RESOURCES.services, 'default', service('web'));
    await waitFor(async () => (await ips('web')).length === 1, { timeoutMs: 20_000, what: 'web gets an IP' });
    const svc = await client.get<Svc>(RESOURCES.services, 'default', 'web');
    expect(svc.status?.loadBalancer?.ingress?.map((i) => i.ip)).toEqual(['203.0.113.0']);
    expect(svc.metadata.annotations?.['metallb.io/ip-allocated-from-pool']).toBe('public');
    const cond = svc.status?.conditions?.find((x) => x.type === 'ironlb.io/IPAllocated');
    expect(cond).toMatchObject({ status: 'True', reason: 'IPAllocated' });
    await waitFor(
      async () => {
        const p = await client.get<KObject & { status?: Record<string, number> }>(
          RESOURCES.ipAddressPools,
          NS,
          'public',
        );
        return p.status?.assignedIPv4 === 1 && p.status?.availableIPv4 === 255;
      },
      { timeoutMs: 10_000, what: 'pool status counts' },
    );
    await waitFor(
      async () => {
        const evs = await client.listPage<KObject & { reason?: string }>(RESOURCES.events, {
          namespace: 'default',
        });
        return evs.items.some((e) => e.reason === 'IPAllocated');
      },
      { timeoutMs: 10_000, what: 'IPAllocated event' },
    );
    const state = await client.get<KObject & { status?: { result?: string } }>(
      RESOURCES.configurationStates,
      NS,
      'controller',
    );
    expect(state.status?.result).toBe('Valid');
    await stopController(c);
  }, 60_000);

  it('explains in a condition why a Service has no IP', async () => {
    const c = startController();
    await client.create(RESOURCES.services, 'default', service('nopool', 'default', {}));
    await client.patch(RESOURCES.services, 'default', 'nopool', {
      metadata: { annotations: { 'metallb.io/address-pool': 'missing' } },
    });
    await waitFor(
      async () => {
        const s = await client.get<Svc>(RESOURCES.services, 'default', 'nopool');
        return s.status?.conditions?.find((x) => x.type === 'ironlb.io/IPAllocated' && x.status === 'False');
      },
      { timeoutMs: 20_000, what: 'AllocationFailed condition' },
    );
    const s = await client.get<Svc>(RESOURCES.services, 'default', 'nopool');
    expect(s.status?.conditions?.find((x) => x.type === 'ironlb.io/IPAllocated')?.message).toMatch(/missing/);
    await client.delete(RESOURCES.services, 'default', 'nopool');
    await stopController(c);
  }, 60_000);

  it('a restart with 200 Services changes no IP', async () => {
    const c = startController();
    for (let i = 0; i < 200; i++)
      await client.create(RESOURCES.services, 'team-a', service(`s${i}`, 'team-a'));
    const all = async () => {
      const l = await client.listPage<Svc>(RESOURCES.services, { namespace: 'team-a' });
      return new Map(
        l.items.map((s) => [
          s.metadata.name,
          (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip).join(','),
        ]),
      );
    };
    await waitFor(async () => [...(await all()).values()].every((v) => v !== ''), {
      timeoutMs: 60_000,
      what: '200 IPs',
    });
    const before = await all();
    expect(new Set(before.values()).size).toBe(200);
    await stopController(c);
    // Delete one, add one while no controller runs: the new one must not take another's IP.
    await client.create(RESOURCES.services, 'team-a', service('late', 'team-a'));
    const c2 = startController();
    await waitFor(async () => (await ips('late', 'team-a')).length === 1, {
      timeoutMs: 30_000,
      what: 'late gets an IP',
    });
    const after = await all();
    for (const [k, v] of before) expect(after.get(k)).toBe(v);
    expect([...before.values()]).not.toContain((await ips('late', 'team-a'))[0]);
    await stopController(c2);
  }, 180_000);

  it('two replicas: one leader, no IP given twice', async () => {
    const a = startController(['--identity', 'replica-a']);
    const b = startController(['--identity', 'replica-b']);
    for (let i = 0; i < 30; i++) await client.create(RESOURCES.services, 'default', service(`dup${i}`));
    const list = async () => (await client.listPage<Svc>(RESOURCES.services, { namespace: 'default' })).items;
    await waitFor(
      async () =>
        (await list())
          .filter((s) => s.metadata.name.startsWith('dup'))
          .every((s) => s.status?.loadBalancer?.ingress?.length),
      {
        timeoutMs: 60_000,
        what: '30 IPs',
      },
    ).catch((e: unknown) => {
      console.error(`replica-a:\n${a.logs.join('')}\nreplica-b:\n${b.logs.join('')}`);
      throw e;
    });
    const all = (await list()).flatMap((s) => (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip));
    expect(new Set(all).size).toBe(all.length);
    const lease = await client.get<KObject & { spec?: { holderIdentity?: string } }>(
      RESOURCES.leases,
      NS,
      'metallb-controller',
    );
    expect(['replica-a', 'replica-b']).toContain(lease.spec?.holderIdentity);
    // The leader goes away: the other takes over and keeps serving.
    const leader = lease.spec?.holderIdentity === 'replica-a' ? a : b;
    await stopController(leader);
    await client.create(RESOURCES.services, 'default', service('after-failover'));
    await waitFor(async () => (await ips('after-failover')).length === 1, {
      timeoutMs: 30_000,
      what: 'IP after failover',
    });
    const all2 = (await list()).flatMap((s) => (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip));
    expect(new Set(all2).size).toBe(all2.length);
    await stopController(leader === a ? b : a);
  }, 180_000);
});
