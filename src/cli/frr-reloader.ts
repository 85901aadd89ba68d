/**
 * `ironlb frr-reloader --dir DIR [--pathspace NS]`: the FRR-container side of the sidecar
 * layout. Watches DIR for the frr.conf the speaker writes, applies each new version to the local
 * FRR (incrementally through vtysh when it can, frr-reload.py otherwise) and keeps a JSON status
 * file next to it. Runs until SIGTERM or SIGINT; SIGHUP re-reads the config at once.
 *
 * Environment (upstream names, spec e.3 / Appendix A): FRR_CONFIG_FILE (the config path; its
 * directory is the default --dir, its name the default --config-file), FRR_RELOADER_PID_FILE
 * (where the PID goes; default DIR/reloader.pid).
 */
import { basename, dirname } from 'node:path';
import { DEFAULT_CONFIG_FILE, runReloader } from '../frr/reloader.js';
import { createLogger } from '../util/log.js';
import { one, parseFlags, UsageError, type Io } from './io.js';

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
  const why = await untilStopped(() => {
    log.info('SIGHUP: re-reading the FRR config');
    reloader.rescan();
  }, signal);
  log.info('stopping', { signal: why });
  await reloader.stop();
  return 0;
}
