/**
 * A directory of YAML files as the speaker's object source (standalone mode, no Kubernetes).
 * Files are watched with chokidar; only changed files are re-read, so one new Service file costs
 * the same with 10 or 10 000 Services. A file that does not parse keeps its previous objects.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { InputError, parseYamlObjects, type LoadedObject } from '../config/load.js';
import type { Logger } from '../util/log.js';

export interface ObjectSource {
  /** Calls `onChange` with the full object set once at start and after every change. */
  start(onChange: (objects: readonly LoadedObject[]) => void): Promise<void>;
  stop(): Promise<void>;
}

const YAML = /\.ya?ml$/;

export class DirSource implements ObjectSource {
  private watcher: FSWatcher | undefined;
  private readonly files = new Map<string, LoadedObject[]>();
  private timer: NodeJS.Timeout | undefined;
  private onChange: ((objects: readonly LoadedObject[]) => void) | undefined;
  private pending = new Set<string>();
  private reading: Promise<void> = Promise.resolve();
  /** Until chokidar's initial scan is complete, events only collect paths (no partial sets). */
  private ready = false;

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
    private readonly debounceMs = 20,
  ) {}

  async start(onChange: (objects: readonly LoadedObject[]) => void): Promise<void> {
    this.onChange = onChange;
    const w = watch(this.dir, {
      depth: 0,
      ignoreInitial: false,
      awaitWriteFinish: false,
      ignored: (p: string, st?: { isFile(): boolean }) => !!st && st.isFile() && !YAML.test(p),
    });
    this.watcher = w;
    const ready = new Promise<void>((resolve) => w.once('ready', () => resolve()));
    w.on('add', (p: string) => this.mark(p));
    w.on('change', (p: string) => this.mark(p));
    w.on('unlink', (p: string) => this.mark(p));
    w.on('error', (e: unknown) => this.log.error('watch error', { dir: this.dir, error: String(e) }));
    await ready;
    this.ready = true;
    await this.flush();
  }

  private mark(path: string): void {
    if (!YAML.test(path) || basename(path).startsWith('.')) return;
    this.pending.add(path);
    if (!this.ready || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reading = this.reading.then(() => this.flush());
    }, this.debounceMs);
  }

  private async flush(): Promise<void> {
    const paths = [...this.pending].sort();
    this.pending.clear();
    for (const p of paths) {
      let text: string;
      try {
        text = await readFile(p, 'utf8');
      } catch {
        this.files.delete(p);
        continue;
      }
      try {
        this.files.set(p, parseYamlObjects(text, p));
      } catch (e) {
        const msg = e instanceof InputError ? e.message : String(e);
        this.log.warn('ignoring unparsable file, keeping its previous objects', { error: msg });
      }
    }
    const all: LoadedObject[] = [];
    for (const f of [...this.files.keys()].sort()) all.push(...this.files.get(f)!);
    this.onChange?.(all);
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.reading;
    await this.watcher?.close();
    this.watcher = undefined;
  }
}
