/**
 * Best-effort cleanup when the test process exits or is killed by a signal before the tests' own
 * teardown ran (a crash, a jest timeout that kills the worker, Ctrl-C). Only synchronous work is
 * possible there, so each lab object registers a synchronous variant of its teardown, and
 * unregisters it once its normal asynchronous teardown has run.
 */

type SyncCleanup = () => void;

const tasks = new Map<number, { what: string; fn: SyncCleanup }>();
let nextId = 1;
let installed = false;

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function installHandlers(): void {
  if (installed) return;
  installed = true;
  process.once('exit', runExitCleanupsSync);
  for (const sig of SIGNALS) {
    const handler = () => {
      runExitCleanupsSync();
      // If nobody else handles the signal, restore the default behaviour (terminate).
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, handler);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, handler);
  }
}

/** Registers a synchronous cleanup; returns the function that unregisters it. Runs newest first. */
export function registerExitCleanup(what: string, fn: SyncCleanup): () => void {
  installHandlers();
  const id = nextId++;
  tasks.set(id, { what, fn });
  return () => {
    tasks.delete(id);
  };
}

/** Runs (and forgets) every registered cleanup, newest first. Errors are printed, not thrown. */
export function runExitCleanupsSync(): void {
  const list = [...tasks.entries()].reverse();
  tasks.clear();
  for (const [, t] of list) {
    try {
      t.fn();
    } catch (e) {
      process.stderr.write(
        `lab cleanup of ${t.what} failed: ${e instanceof Error ? e.message : String(e)}\n`,
      );
    }
  }
}
