/** `ironlb allocate`: converge the input Services as the controller does at start-up. */
import { stringify } from 'yaml';
import { convergeAll, type BatchResult } from '../allocator/batch.js';
import { classMatches, serviceInfoFrom, type ServiceInfo } from '../allocator/service.js';
import { loadPaths, sortObjects } from '../config/load.js';
import { ConfigParser, DEFAULT_NAMESPACE } from '../config/parse.js';
import { formatProblem } from '../config/problems.js';
import { CrdSchemas } from '../config/schema.js';
import { one, parseFlags, UsageError, type Io } from './io.js';

export interface AllocateReport {
  services: Array<{
    namespace: string;
    name: string;
    ips: string[];
    pool: string | null;
    error: string | null;
  }>;
  pools: Array<{
    name: string;
    assignedIPv4: bigint;
    availableIPv4: bigint;
    assignedIPv6: bigint;
    availableIPv6: bigint;
  }>;
}

export function buildReport(services: readonly ServiceInfo[], res: BatchResult): AllocateReport {
  return {
    services: services.map((s, i) => {
      const o = res.outcomes[i]!;
      return {
        namespace: s.namespace,
        name: s.name,
        ips: [...o.ips],
        pool: o.pool,
        error: o.ips.length ? null : o.error,
      };
    }),
    pools: res.pools.map((p) => ({
      name: p.name,
      assignedIPv4: p.assignedIPv4,
      availableIPv4: p.availableIPv4,
      assignedIPv6: p.assignedIPv6,
      availableIPv6: p.availableIPv6,
    })),
  };
}

/** JSON with bigint counters written as plain (exact) numbers. */
export function toJson(value: unknown): string {
  const marker = '\u0000big:';
  const text = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${marker}${v}` : v), 2);
  return text.replace(/"\\u0000big:(-?\d+)"/g, '$1');
}

export function toTable(r: AllocateReport): string {
  const rows: string[][] = [['NAMESPACE', 'NAME', 'IPS', 'POOL', 'STATUS']];
  for (const s of r.services) {
    rows.push([
      s.namespace,
      s.name,
      s.ips.join(',') || '-',
      s.pool ?? '-',
      s.ips.length ? 'allocated' : `no IP: ${s.error ?? 'unknown'}`,
    ]);
  }
  const pools: string[][] = [['POOL', 'IPV4 ASSIGNED', 'IPV4 AVAILABLE', 'IPV6 ASSIGNED', 'IPV6 AVAILABLE']];
  for (const p of r.pools) {
    pools.push([
      p.name,
      String(p.assignedIPv4),
      String(p.availableIPv4),
      String(p.assignedIPv6),
      String(p.availableIPv6),
    ]);
  }
  return `${align(rows)}\n${align(pools)}`;
}

function align(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return (
    rows
      .map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  '))
      .join('\n') + '\n'
  );
}

export async function runAllocate(args: string[], io: Io): Promise<number> {
  const flags = parseFlags(args, [
    { name: 'file', short: 'f', repeat: true },
    { name: 'output', short: 'o' },
    { name: 'lb-class' },
    { name: 'namespace', short: 'n' },
  ]);
  const files = flags.file ?? [];
  if (files.length === 0) throw new UsageError('at least one -f PATH is required');
  const output = one(flags, 'output') ?? 'table';
  if (!['json', 'yaml', 'table'].includes(output))
    throw new UsageError(`-o must be json, yaml or table, not "${output}"`);
  const lbClass = one(flags, 'lb-class') ?? '';
  const objects = sortObjects(await loadPaths(files));
  const parser = new ConfigParser(CrdSchemas.load());
  const res = parser.parse(objects.config, {
    namespace: one(flags, 'namespace') ?? DEFAULT_NAMESPACE,
    scope: 'controller',
  });
  if (!res.config) {
    for (const p of res.problems) io.out(`${formatProblem(p)}\n`);
    io.err(`invalid configuration: ${res.problems.length} problem(s)\n`);
    return 1;
  }
  const services = objects.services
    .map((o) => serviceInfoFrom(o, true))
    .filter((s) => s.type === 'LoadBalancer' && classMatches(s, lbClass));
  const report = buildReport(services, convergeAll(res.config.pools, services));
  if (output === 'json') io.out(`${toJson(report)}\n`);
  else if (output === 'yaml') io.out(stringify(report, { intAsBigInt: true }));
  else io.out(toTable(report));
  return 0;
}
