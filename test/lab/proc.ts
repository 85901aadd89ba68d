/** Small /proc helpers: liveness and identity checks before signalling a PID we started. */
import { readFileSync } from 'node:fs';

function readProc(p: string): string | null {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return null;
  }
}

/** True while the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  const stat = readProc(`/proc/${pid}/stat`);
  if (stat === null) return false;
  // "pid (comm) S ...": the state letter follows the last ')'.
  const i = stat.lastIndexOf(')');
  const state = stat.slice(i + 2, i + 3);
  return state !== 'Z' && state !== 'X';
}

/** The process's argv, or null when it is gone. */
export function procArgv(pid: number): string[] | null {
  const cmd = readProc(`/proc/${pid}/cmdline`);
  if (!cmd) return null;
  const argv = cmd.split('\0');
  if (argv[argv.length - 1] === '') argv.pop();
  return argv;
}

/** Sends a signal, ignoring "no such process". Returns whether it was delivered. */
export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}
