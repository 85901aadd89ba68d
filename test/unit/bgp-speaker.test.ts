/** BgpSpeaker's write path: coalescing, A → B → A inside one window, drain always ends. */
import { BgpSpeaker, type FrrConfigSink } from '../../src/speaker/bgp-speaker.js';
import { CrdSchemas } from '../../src/config/schema.js';
import { FrrRenderer } from '../../src/frr/render.js';
import { parseYamlObjects } from '../../src/config/load.js';
import { silentLogger } from '../../src/util/log.js';

const BASE = `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p, namespace: metallb-system}
spec: {addresses: [203.0.113.0/24]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: a, namespace: metallb-system}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: r, namespace: metallb-system}
spec: {myASN: 64510, peerASN: 64500, peerAddress: 192.0.2.1}
---
apiVersion: v1
kind: Node
metadata: {name: node-a}
`;
const svc = (ip?: string) => `
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer}
${ip ? `status: {loadBalancer: {ingress: [{ip: ${ip}}]}}` : ''}
`;

function speaker(writes: string[]) {
  const sink: FrrConfigSink = { write: (t) => Promise.resolve(void writes.push(t)) };
  return new BgpSpeaker({
    node: 'node-a',
    schemas: CrdSchemas.load(),
    renderer: new FrrRenderer(),
    sink,
    log: silentLogger,
    debounceMs: 30,
  });
}
const objs = (extra: string) => parseYamlObjects(BASE + '---' + extra, 'test');

describe('BgpSpeaker writes', () => {
  it('a burst of changes is written once, with the last text', async () => {
    const writes: string[] = [];
    const sp = speaker(writes);
    for (let i = 1; i <= 20; i++) sp.update(objs(svc(`203.0.113.${i}`)));
    await sp.drain();
    expect(writes).toHaveLength(1);
    expect(writes[0]).toContain('network 203.0.113.20/32');
    await sp.stop();
  });

  it('A → B → A inside one window writes nothing more and drain() returns', async () => {
    const writes: string[] = [];
    const sp = speaker(writes);
    sp.update(objs(svc()));
    await sp.drain();
    expect(writes).toHaveLength(1);
    sp.update(objs(svc('203.0.113.1')));
    sp.update(objs(svc()));
    await new Promise((r) => setTimeout(r, 80));
    await sp.drain();
    expect(writes).toHaveLength(1);
    expect(sp.status().generation).toBe(1);
    await sp.stop();
  });

  it('keeps the last good config when the new one is invalid', async () => {
    const writes: string[] = [];
    const sp = speaker(writes);
    sp.update(objs(svc('203.0.113.7')));
    await sp.drain();
    const bad = objs(svc('203.0.113.8')).map((o) =>
      o.obj.kind === 'BGPPeer'
        ? { ...o, obj: { ...o.obj, spec: { ...(o.obj.spec as object), holdTime: '2s' } } }
        : o,
    );
    sp.update(bad);
    await sp.drain();
    expect(sp.status().configStale).toBe(true);
    expect(sp.status().problems.join('\n')).toMatch(/BGPPeer\/r: spec.holdTime/);
    // Services still follow, rendered with the last good configuration.
    expect(writes[writes.length - 1]).toContain('network 203.0.113.8/32');
    await sp.stop();
  });
});
