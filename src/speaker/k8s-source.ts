/**
 * The Kubernetes API as the speaker's object source: one informer per kind the speaker reads
 * (Appendix B), merged into the same object list a DirSource produces, so the speaker core does
 * not know where its objects come from. Changes are coalesced by a short debounce.
 */
import type { LoadedObject } from '../config/load.js';
import { RESOURCES, apiVersionOf, type KObject, type KubeClient, type Resource } from '../k8s/client.js';
import { Informer } from '../k8s/informer.js';
import type { Logger } from '../util/log.js';
import type { ObjectSource } from './dir-source.js';

export interface K8sSourceOptions {
  readonly client: KubeClient;
  /** The MetalLB namespace (metallb.io objects, Secrets, ConfigMaps). */
  readonly namespace: string;
  readonly log: Logger;
  readonly debounceMs?: number;
}

export class K8sSource implements ObjectSource {
  private readonly informers: Array<{ r: Resource; inf: Informer<KObject> }> = [];
  private timer: NodeJS.Timeout | undefined;
  private onChange: ((objects: readonly LoadedObject[]) => void) | undefined;
  private readonly unsub: Array<() => void> = [];

  constructor(private readonly o: K8sSourceOptions) {
    const cluster: Resource[] = [
      RESOURCES.services,
      RESOURCES.endpointSlices,
      RESOURCES.nodes,
      RESOURCES.namespaces,
    ];
    const local: Resource[] = [
      RESOURCES.ipAddressPools,
      RESOURCES.l2Advertisements,
      RESOURCES.bgpAdvertisements,
      RESOURCES.bgpPeers,
      RESOURCES.communities,
      RESOURCES.bfdProfiles,
      RESOURCES.secrets,
      RESOURCES.configMaps,
    ];
    for (const r of cluster) this.informers.push({ r, inf: new Informer(o.client, r, { log: o.log }) });
    for (const r of local) {
      this.informers.push({ r, inf: new Informer(o.client, r, { log: o.log, namespace: o.namespace }) });
    }
  }

  async start(onChange: (objects: readonly LoadedObject[]) => void): Promise<void> {
    this.onChange = onChange;
    for (const { inf } of this.informers) {
      this.unsub.push(
        inf.onEvent((type) => {
          if (type !== 'resync') this.schedule();
        }),
      );
    }
    await Promise.all(this.informers.map(({ inf }) => inf.start()));
    this.emit();
  }

  async stop(): Promise<void> {
    for (const u of this.unsub.splice(0)) u();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await Promise.all(this.informers.map(({ inf }) => inf.stop()));
  }

  private schedule(): void {
    if (this.timer || !this.informers.every(({ inf }) => inf.hasSynced)) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.emit();
    }, this.o.debounceMs ?? 20);
  }

  /** Every cached object, with apiVersion/kind filled in (list items carry neither). */
  private emit(): void {
    const out: LoadedObject[] = [];
    for (const { r, inf } of this.informers) {
      for (const obj of inf.list()) {
        out.push({ obj: { ...obj, apiVersion: apiVersionOf(r), kind: r.kind }, file: 'api', line: 0 });
      }
    }
    this.onChange?.(out);
  }
}
