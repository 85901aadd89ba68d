/**
 * Converging a whole set of Services the way the controller does at start-up (spec c.8): Services
 * holding two IPs first, then one, then none, so existing IPs are re-asserted before new Services
 * can take them; passes repeat while any Service asks for a full reprocess.
 */
import type { Pool } from '../config/model.js';
import type { PoolCounters } from './allocator.js';
import { AllocationCore, type ServiceOutcome } from './converge.js';
import type { ServiceInfo } from './service.js';

export interface BatchResult {
  /** In input order. */
  readonly outcomes: ServiceOutcome[];
  /** Pools by name order. */
  readonly pools: Array<{ name: string } & PoolCounters>;
  readonly passes: number;
}

const MAX_PASSES = 10;

export function convergeAll(
  pools: ReadonlyMap<string, Pool>,
  services: readonly ServiceInfo[],
  core: AllocationCore = new AllocationCore(),
): BatchResult {
  core.setPools(pools);
  const current = services.map((s) => ({ ...s }));
  const order = current
    .map((s, i) => ({ s, i }))
    .sort((a, b) => Math.min(b.s.ingressIPs.length, 2) - Math.min(a.s.ingressIPs.length, 2) || a.i - b.i);
  const outcomes: ServiceOutcome[] = new Array<ServiceOutcome>(services.length);
  let passes = 0;
  for (;;) {
    passes++;
    let again = false;
    for (const { i } of order) {
      const out = core.converge(current[i]!);
      outcomes[i] = out;
      // What the controller would write back to the Service before the next pass.
      current[i] = {
        ...current[i]!,
        ingressIPs: out.ips,
        annotations: withPoolAnnotation(current[i]!.annotations, out.pool),
      };
      if (out.result === 'reprocessAll') again = true;
    }
    if (!again || passes >= MAX_PASSES) break;
  }
  const poolStats = [...pools.keys()].sort().map((name) => ({ name, ...core.allocator.counters(name)! }));
  return { outcomes, pools: poolStats, passes };
}

function withPoolAnnotation(
  ann: Readonly<Record<string, string>>,
  pool: string | null,
): Record<string, string> {
  const out = { ...ann };
  if (pool === null) delete out['metallb.io/ip-allocated-from-pool'];
  else out['metallb.io/ip-allocated-from-pool'] = pool;
  return out;
}
