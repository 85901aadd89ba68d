/**
 * The BGP half of the speaker: objects in, frr.conf out. Each object-set change is parsed into
 * the validated model (the last good one is kept when the new one is invalid), rendered for this
 * node and handed to the sink when the text changed. Bursts are coalesced by a short debounce.
 */
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sortObjects, type LoadedObject } from '../config/load.js';
import type { Config, NodeInfo } from '../config/model.js';
import { ConfigParser, DEFAULT_NAMESPACE, type SchemaValidator } from '../config/parse.js';
import { formatProblem } from '../config/problems.js';
import { renderNodeConfig } from '../frr/node.js';
import type { FrrRenderer } from '../frr/render.js';
import type { LogLevel } from '../frr/viewmodel.js';
import type { Logger } from '../util/log.js';
import type { L2Inputs, NodeListLiveness } from '../l2/announcer.js';
import {
  endpointIndexFrom,
  EVERYWHERE,
  poolOfIPs,
  speakerServiceFrom,
  type SpeakerService,
} from './inputs.js';

/** Where rendered configurations go (a shared directory, or an in-process applier). */
export interface FrrConfigSink {
  write(text: string): Promise<void>;
}

/** Writes `frr.conf` atomically with mode 0600 (it may hold BGP passwords). */
export class DirectorySink implements FrrConfigSink {
  constructor(
    private readonly dir: string,
    private readonly file = 'frr.conf',
  ) {}
  async write(text: string): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `.${this.file}.tmp-${process.pid}`);
    await writeFile(tmp, text, { mode: 0o600 });
    await chmod(tmp, 0o600);
    await rename(tmp, join(this.dir, this.file));
  }
}

export interface BgpSpeakerOptions {
  readonly node: string;
  readonly schemas: SchemaValidator;
  readonly renderer: FrrRenderer;
  /** BGP: where frr.conf goes; absent = BGP disabled on this speaker. */
  readonly sink?: FrrConfigSink;
  /** L2: the announcer fed with every parsed state; absent = L2 disabled. */
  readonly l2?: { update(inputs: L2Inputs): void };
  /** Without membership, every known Node is a live speaker. */
  readonly nodeLiveness?: NodeListLiveness;
  readonly log: Logger;
  readonly namespace?: string;
  readonly hostname?: string;
  readonly logLevel?: LogLevel;
  readonly frrLogLevel?: string;
  readonly lbClass?: string;
  readonly ignoreExcludeLabel?: boolean;
  /** Coalescing window for bursts of changes (ms). */
  readonly debounceMs?: number;
}

export interface BgpSpeakerStatus {
  readonly configLoaded: boolean;
  readonly configStale: boolean;
  readonly problems: readonly string[];
  /** Number of distinct texts handed to the sink. */
  readonly generation: number;
  readonly announced: ReadonlyMap<string, readonly string[]>;
  readonly lastWriteError?: string;
}

export class BgpSpeaker {
  private readonly parser: ConfigParser;
  private config: Config | undefined;
  private stale = false;
  private problems: string[] = [];
  private lastText: string | undefined;
  private pendingText: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private generation = 0;
  private announced = new Map<string, string[]>();
  private lastWriteError: string | undefined;
  private stopped = false;

  constructor(private readonly opts: BgpSpeakerOptions) {
    this.parser = new ConfigParser(opts.schemas);
  }

  status(): BgpSpeakerStatus {
    return {
      configLoaded: this.config !== undefined,
      configStale: this.stale,
      problems: this.problems,
      generation: this.generation,
      announced: this.announced,
      ...(this.lastWriteError ? { lastWriteError: this.lastWriteError } : {}),
    };
  }

  /** Feed the whole current object set (from a DirSource or the Kubernetes caches). */
  update(objects: readonly LoadedObject[]): void {
    if (this.stopped) return;
    const { node, log } = this.opts;
    const sorted = sortObjects(objects);
    const nodes = [...sorted.config.nodes];
    let me: NodeInfo | undefined = nodes.find((n) => n.name === node);
    if (!me) {
      me = { name: node, labels: {} };
      nodes.push(me);
    }
    const services = sorted.services.map(speakerServiceFrom);
    const res = this.parser.parse(
      { ...sorted.config, nodes },
      { namespace: this.opts.namespace ?? DEFAULT_NAMESPACE, scope: 'full', nodeName: node },
    );
    if (res.config) {
      const orphan = this.orphanedAnnouncement(res.config, services);
      if (orphan) {
        this.stale = true;
        this.problems = [`new configuration rejected: announced ${orphan} would belong to no IPAddressPool`];
        log.warn('keeping the previous configuration', { reason: this.problems[0] });
      } else {
        if (this.stale || !this.config) log.info('configuration loaded');
        this.config = res.config;
        this.stale = false;
        this.problems = [];
      }
    } else {
      this.stale = true;
      this.problems = res.problems.map(formatProblem);
      log.warn(this.config ? 'invalid configuration, keeping the last good one' : 'invalid configuration', {
        problems: this.problems,
      });
    }
    if (!this.config) return;
    const endpoints = sorted.endpointSlices.length ? endpointIndexFrom(sorted.endpointSlices) : EVERYWHERE;
    this.opts.nodeLiveness?.setNodes(nodes.map((n) => n.name));
    const lbClass = this.opts.lbClass ?? '';
    this.opts.l2?.update({
      config: this.config,
      nodes,
      services: services.filter((s) =>
        lbClass === '' ? !s.loadBalancerClass : s.loadBalancerClass === lbClass,
      ),
      endpoints,
    });
    if (!this.opts.sink) return;
    const out = renderNodeConfig(this.opts.renderer, {
      config: this.config,
      node: me,
      services,
      endpoints,
      lbClass: this.opts.lbClass ?? '',
      hostname: this.opts.hostname ?? node,
      ...(this.opts.logLevel ? { logLevel: this.opts.logLevel } : {}),
      ...(this.opts.frrLogLevel ? { frrLogLevel: this.opts.frrLogLevel } : {}),
      ...(this.opts.ignoreExcludeLabel ? { ignoreExcludeLabel: true } : {}),
    });
    const announced = new Map<string, string[]>();
    for (const d of out.decisions) {
      if (!d.announced) continue;
      const peers = out.peers.filter((p) =>
        d.routes.some((r) => r.peers.length === 0 || r.peers.includes(p.name)),
      );
      announced.set(d.service, peers.map((p) => p.name).sort());
    }
    this.announced = announced;
    this.schedule(out.text);
  }

  /** d.0: an IP announced now must still belong to a pool under a new configuration. */
  private orphanedAnnouncement(next: Config, services: readonly SpeakerService[]): string | undefined {
    for (const s of services) {
      if (!this.announced.has(s.key) || s.ips.length === 0) continue;
      if (!poolOfIPs(next, s.ips)) return s.key;
    }
    return undefined;
  }

  private schedule(text: string): void {
    if (text === this.lastText) {
      // Back to what FRR already has (A → B → A inside one window): nothing to write.
      this.pendingText = undefined;
      return;
    }
    if (text === this.pendingText) return;
    this.pendingText = text;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.writing = this.writing.then(() => this.flush());
    }, this.opts.debounceMs ?? 50);
  }

  private async flush(): Promise<void> {
    const text = this.pendingText;
    this.pendingText = undefined;
    if (text === undefined || text === this.lastText) return;
    try {
      await this.opts.sink!.write(text);
      this.lastText = text;
      this.generation++;
      this.lastWriteError = undefined;
      this.opts.log.info('frr.conf written', { generation: this.generation, bytes: text.length });
    } catch (e) {
      this.lastWriteError = e instanceof Error ? e.message : String(e);
      this.opts.log.error('writing frr.conf failed, retrying in 5s', { error: this.lastWriteError });
      if (this.pendingText === undefined) this.pendingText = text;
      if (!this.stopped && !this.timer) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.writing = this.writing.then(() => this.flush());
        }, 5000);
      }
    }
  }

  /** Resolves once every scheduled write has been attempted (tests, benchmarks, shutdown). */
  async drain(): Promise<void> {
    while (this.timer || this.pendingText !== undefined) {
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
      // Every round flushes: flush() always consumes the pending text, so this ends.
      this.writing = this.writing.then(() => this.flush());
      await this.writing;
      if (this.lastWriteError) break;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.writing;
  }
}
