/**
 * Allocation rules of spec sections (b) and (c) and the IPAddressPool rules of a.1, as table tests
 * on the allocator, AllocationCore.converge and convergeAll. Pools go through ConfigParser, Services
 * through serviceInfoFrom (test/unit/helpers/alloc-fixtures.ts).
 *
 * Tests that show a deviation of src/ from the spec live in the describe
 * "spec deviations found in src/ (expected to fail until fixed)" at the end of the file.
 */
import fc from 'fast-check';

import { Allocator, INT64_MAX, poolCompatible, type AllocRequest } from '../../src/allocator/allocator.js';
import { convergeAll } from '../../src/allocator/batch.js';
import { AllocationCore } from '../../src/allocator/converge.js';
import {
  annotation,
  classMatches,
  requestedIPs,
  serviceInfoFrom,
  type ServiceInfo,
} from '../../src/allocator/service.js';
import type { Pool } from '../../src/config/model.js';
import { formatIP, ip, isBuggyV4, parseAddressEntry, prefixContains } from '../../src/ip/ip.js';
import {
  CIP4,
  CIP6,
  Cluster,
  pools,
  reasons,
  svc,
  svcObj,
  tryPools,
  type PoolDefs,
  type SvcOpts,
} from './helpers/alloc-fixtures.js';

const DUAL_POOL: PoolDefs = { p: { addresses: ['192.0.2.0/24', '2001:db8:1::/120'] } };

/** Converges one Service against a fresh core with the given pools. */
function once(defs: PoolDefs, name: string, o: SvcOpts = {}) {
  const c = new Cluster(pools(defs));
  return { c, out: c.add(name, o) };
}

// ---------------------------------------------------------------------------------------------
describe('b: family from spec.clusterIPs', () => {
  it.each<{ title: string; o: SvcOpts; ips: string[]; result: string; events: string[] }>([
    {
      title: 'one IPv4 ClusterIP → IPv4',
      o: { family: 4 },
      ips: ['192.0.2.0'],
      result: 'ok',
      events: ['IPAllocated'],
    },
    {
      title: 'one IPv6 ClusterIP → IPv6',
      o: { family: 6 },
      ips: ['2001:db8:1::'],
      result: 'ok',
      events: ['IPAllocated'],
    },
    {
      title: 'dual (RequireDualStack) → both, IPv4 first',
      o: { family: 'dual', policy: 'RequireDualStack' },
      ips: ['192.0.2.0', '2001:db8:1::'],
      result: 'ok',
      events: ['IPAllocated'],
    },
    {
      title: 'dual with ipFamilies[0]=IPv6 → still IPv4 first in status',
      o: { family: 'dual6', policy: 'RequireDualStack' },
      ips: ['192.0.2.0', '2001:db8:1::'],
      result: 'ok',
      events: ['IPAllocated'],
    },
    {
      title: 'dual (PreferDualStack) with a dual pool → both',
      o: { family: 'dual6', policy: 'PreferDualStack' },
      ips: ['192.0.2.0', '2001:db8:1::'],
      result: 'ok',
      events: ['IPAllocated'],
    },
    { title: 'no ClusterIP → no IP, error', o: { family: 'none' }, ips: [], result: 'error', events: [] },
    { title: 'headless "None" → no IP', o: { family: ['None'] }, ips: [], result: 'error', events: [] },
    {
      title: 'two IPv4 ClusterIPs → unknown family',
      o: { family: [CIP4, '198.51.100.253'], policy: 'RequireDualStack' },
      ips: [],
      result: 'error',
      events: ['noclusterIPsIPFamily'],
    },
    {
      title: 'unparsable ClusterIP → unknown family',
      o: { family: ['not-an-ip'] },
      ips: [],
      result: 'error',
      events: ['noclusterIPsIPFamily'],
    },
  ])('$title', ({ o, ips, result, events }) => {
    const { c, out } = once(DUAL_POOL, 's', o);
    expect(out.ips).toEqual(ips);
    expect(out.result).toBe(result);
    expect(reasons(out)).toEqual(events);
    if (!ips.length) {
      expect(out.error).not.toBeNull();
      expect(c.allocator.allocation('default/s')).toBeUndefined();
    }
  });

  it('spec.clusterIP alone (no clusterIPs) decides the family', () => {
    const o = svcObj('s', { family: 'none' });
    o.spec.clusterIP = CIP6;
    expect(serviceInfoFrom(o).clusterFamily).toBe(6);
  });

  it.each<{ ipFamilies: string[] | undefined; fam: unknown; primary: number; count: number }>([
    { ipFamilies: undefined, fam: 4, primary: 4, count: 1 },
    { ipFamilies: ['IPv6'], fam: 6, primary: 6, count: 1 },
    { ipFamilies: ['IPv4', 'IPv6'], fam: 'dual', primary: 4, count: 2 },
    { ipFamilies: ['IPv6', 'IPv4'], fam: 'dual', primary: 6, count: 2 },
    { ipFamilies: ['IPv4', 'IPv4'], fam: 'unknown', primary: 4, count: 2 },
  ])(
    'offline serviceInfoFrom: ipFamilies $ipFamilies → family $fam',
    ({ ipFamilies, fam, primary, count }) => {
      const o = svcObj('s', { family: 'none', ...(ipFamilies ? { ipFamilies } : {}) });
      const info = serviceInfoFrom(o, true);
      expect(info.clusterFamily).toBe(fam);
      expect(info.primaryFamily).toBe(primary);
      expect(info.clusterIPCount).toBe(count);
      // Online, a Service without ClusterIPs has no family.
      expect(serviceInfoFrom(o).clusterFamily).toBe('none');
    },
  );

  it('hostname-only ingress entries are not current IPs and are overwritten', () => {
    const o = svcObj('s');
    o.status = { loadBalancer: { ingress: [{ hostname: 'lb.example.org' }] } };
    expect(serviceInfoFrom(o).ingressIPs).toEqual([]);
    const c = new Cluster(pools(DUAL_POOL));
    const out = c.apply(o);
    expect(out.ips).toEqual(['192.0.2.0']);
    expect(out.changed).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
describe('b/c.2 step 5: RequireDualStack with fewer than two ClusterIPs', () => {
  it.each<[string, SvcOpts['family']]>([
    ['one IPv4 ClusterIP', 4],
    ['one IPv6 ClusterIP', 6],
  ])('%s → Warning "not enough clusterips", no IP', (_t, family) => {
    const { out } = once(DUAL_POOL, 's', { family, policy: 'RequireDualStack' });
    expect(out.ips).toEqual([]);
    expect(out.result).toBe('error');
    expect(out.events).toEqual([
      expect.objectContaining({ type: 'Warning', reason: 'not enough clusterips' }),
    ]);
  });

  it('a held IP is released and the status cleared', () => {
    const c = new Cluster(pools(DUAL_POOL));
    expect(c.add('s', { family: 4 }).ips).toEqual(['192.0.2.0']);
    const out = c.edit('default/s', (o) => (o.spec.ipFamilyPolicy = 'RequireDualStack'));
    expect(out.ips).toEqual([]);
    expect(out.pool).toBeNull();
    expect(out.changed).toBe(true);
    expect(c.allocator.allocation('default/s')).toBeUndefined();
    expect(c.allocator.counters('p')!.assignedIPv4).toBe(0n);
  });
});

// ---------------------------------------------------------------------------------------------
describe('c.4: PreferDualStack fallbacks and the additional family', () => {
  const SPLIT: PoolDefs = {
    a4: { addresses: ['192.0.2.0/30'] },
    b6: { addresses: ['2001:db8:1::/126'] },
  };

  it.each<{ title: string; defs: PoolDefs; family: 'dual' | 'dual6'; ips: string[]; pool: string }>([
    { title: 'no dual pool, primary IPv4', defs: SPLIT, family: 'dual', ips: ['192.0.2.0'], pool: 'a4' },
    {
      title: 'no dual pool, primary IPv6 (ipFamilies[0])',
      defs: SPLIT,
      family: 'dual6',
      ips: ['2001:db8:1::'],
      pool: 'b6',
    },
    {
      title: 'only IPv6 available, primary IPv4 → secondary',
      defs: { b6: SPLIT.b6! },
      family: 'dual',
      ips: ['2001:db8:1::'],
      pool: 'b6',
    },
    {
      title: 'only IPv4 available, primary IPv6 → secondary',
      defs: { a4: SPLIT.a4! },
      family: 'dual6',
      ips: ['192.0.2.0'],
      pool: 'a4',
    },
    {
      title: 'a dual pool later in name order wins over single-family pools',
      defs: { ...SPLIT, zz: { addresses: ['203.0.113.0/30', '2001:db8:2::/126'] } },
      family: 'dual6',
      ips: ['203.0.113.0', '2001:db8:2::'],
      pool: 'zz',
    },
  ])('$title', ({ defs, family, ips, pool }) => {
    const { out } = once(defs, 's', { family, policy: 'PreferDualStack' });
    expect(out.ips).toEqual(ips);
    expect(out.pool).toBe(pool);
  });

  it('RequireDualStack without a dual pool fails (no single-family fallback)', () => {
    const { out } = once(SPLIT, 's', { family: 'dual', policy: 'RequireDualStack' });
    expect(out.ips).toEqual([]);
    expect(reasons(out)).toEqual(['AllocationFailed']);
  });

  it('AdditionalAssignFailed on every pass; the added family is appended later from the same pool', () => {
    const c = new Cluster(pools(SPLIT));
    const first = c.add('s', { family: 'dual', policy: 'PreferDualStack' });
    expect(first.ips).toEqual(['192.0.2.0']);
    for (let i = 0; i < 2; i++) {
      const again = c.converge('default/s');
      expect(again.ips).toEqual(['192.0.2.0']);
      expect(reasons(again)).toEqual(['AdditionalAssignFailed']);
      expect(again.changed).toBe(false);
    }
    // b6 still has IPv6 space: the Service never moves to another pool to become dual-stack.
    expect(c.allocator.counters('b6')!.assignedIPv6).toBe(0n);
    c.setPools(pools({ ...SPLIT, a4: { addresses: ['192.0.2.0/30', '2001:db8:2::/126'] } }));
    const added = c.converge('default/s');
    expect(added.ips).toEqual(['192.0.2.0', '2001:db8:2::']);
    expect(added.pool).toBe('a4');
    expect(reasons(added)).toEqual(['IPAllocated']);
  });

  it('added IPv4 is written after an existing IPv6 (status order)', () => {
    const c = new Cluster(pools(SPLIT));
    expect(c.add('s', { family: 'dual6', policy: 'PreferDualStack' }).ips).toEqual(['2001:db8:1::']);
    c.setPools(pools({ ...SPLIT, b6: { addresses: ['2001:db8:1::/126', '203.0.113.0/30'] } }));
    expect(c.converge('default/s').ips).toEqual(['2001:db8:1::', '203.0.113.0']);
  });

  it('a single current IP is kept under PreferDualStack even when a dual pool exists elsewhere', () => {
    const defs: PoolDefs = { a4: SPLIT.a4!, dual: { addresses: ['203.0.113.0/30', '2001:db8:2::/126'] } };
    const { out } = once(defs, 's', { family: 'dual', policy: 'PreferDualStack', status: ['192.0.2.1'] });
    expect(out.ips).toEqual(['192.0.2.1']);
    expect(out.pool).toBe('a4');
    expect(reasons(out)).toEqual(['AdditionalAssignFailed']);
  });

  it('RequireDualStack with a single current IP: released and re-allocated dual', () => {
    const { out } = once(DUAL_POOL, 's', {
      family: 'dual',
      policy: 'RequireDualStack',
      status: ['192.0.2.9'],
    });
    expect(out.ips).toEqual(['192.0.2.0', '2001:db8:1::']);
  });

  it.each<{ title: string; o: SvcOpts; ips: string[] }>([
    { title: 'IPv4 Service holding IPv6', o: { family: 4, status: ['2001:db8:1::9'] }, ips: ['192.0.2.0'] },
    {
      title: 'IPv4 PreferDualStack Service holding IPv6 (exception needs dual ClusterIPs)',
      o: { family: 4, policy: 'PreferDualStack', status: ['2001:db8:1::9'] },
      ips: ['192.0.2.0'],
    },
    {
      title: 'IPv6 PreferDualStack Service holding IPv4',
      o: { family: 6, policy: 'PreferDualStack', status: ['192.0.2.9'] },
      ips: ['2001:db8:1::'],
    },
    {
      title: 'IPv4 Service holding two IPs',
      o: { family: 4, status: ['192.0.2.9', '2001:db8:1::9'] },
      ips: ['192.0.2.0'],
    },
  ])('current IPs of another family than the ClusterIPs are dropped: $title', ({ o, ips }) => {
    const { c, out } = once(DUAL_POOL, 's', o);
    expect(out.ips).toEqual(ips);
    expect(reasons(out)).toEqual(['IPAllocated']);
    expect(c.allocator.counters('p')).toMatchObject({
      assignedIPv4: ips[0]!.includes(':') ? 0n : 1n,
      assignedIPv6: ips[0]!.includes(':') ? 1n : 0n,
    });
  });

  it('unparsable current IP → Warning nolbIPsIPFamily, re-allocated', () => {
    const { out } = once(DUAL_POOL, 's', { family: 4, status: ['192.0.2.300'] });
    expect(reasons(out)).toEqual(['nolbIPsIPFamily', 'IPAllocated']);
    expect(out.ips).toEqual(['192.0.2.0']);
  });

  describe('[quirk] the additional family is added only when ClusterIPs are dual', () => {
    it.each<[string, SvcOpts]>([
      ['single IPv4 ClusterIP, PreferDualStack', { family: 4, policy: 'PreferDualStack' }],
      ['single IPv6 ClusterIP, PreferDualStack', { family: 6, policy: 'PreferDualStack' }],
    ])('%s → one IP, stable across passes, no event', (_t, o) => {
      const c = new Cluster(pools(DUAL_POOL));
      const first = c.add('s', o);
      expect(first.ips).toHaveLength(1);
      for (let i = 0; i < 3; i++) {
        const again = c.converge('default/s');
        expect(again.ips).toEqual(first.ips);
        expect(again.events).toEqual([]);
        expect(again.changed).toBe(false);
      }
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe('b: spec.loadBalancerIP', () => {
  const DEFS: PoolDefs = {
    p: { addresses: ['192.0.2.0/24', '2001:db8:1::/120'] },
    q: { addresses: ['203.0.113.0/24'] },
  };

  it.each<{ title: string; o: SvcOpts; ips: string[]; events: string[]; err?: RegExp }>([
    { title: 'valid IPv4 in a pool', o: { lbIP: '192.0.2.7' }, ips: ['192.0.2.7'], events: ['IPAllocated'] },
    {
      title: 'valid IPv6 in a pool',
      o: { family: 6, lbIP: '2001:db8:1::7' },
      ips: ['2001:db8:1::7'],
      events: ['IPAllocated'],
    },
    {
      title: 'other pool works too',
      o: { lbIP: '203.0.113.9' },
      ips: ['203.0.113.9'],
      events: ['IPAllocated'],
    },
    {
      title: 'IPv6 for an IPv4 Service',
      o: { lbIP: '2001:db8:1::7' },
      ips: [],
      events: ['AllocationFailed'],
      err: /IPv6.*IPv4/,
    },
    { title: 'unparsable', o: { lbIP: 'banana' }, ips: [], events: ['AllocationFailed'] },
    {
      title: 'outside every pool',
      o: { lbIP: '198.51.100.7' },
      ips: [],
      events: ['AllocationFailed'],
      err: /not allowed/,
    },
    {
      title: 'single IP for dual ClusterIPs, even PreferDualStack',
      o: { family: 'dual', policy: 'PreferDualStack', lbIP: '192.0.2.7' },
      ips: [],
      events: ['AllocationFailed'],
    },
    {
      title: 'set together with the loadBalancerIPs annotation',
      o: { lbIP: '192.0.2.7', ann: { 'metallb.io/loadBalancerIPs': '192.0.2.7' } },
      ips: [],
      events: ['AllocationFailed'],
      err: /both/,
    },
  ])('$title', ({ o, ips, events, err }) => {
    const { c, out } = once(DEFS, 's', o);
    expect(out.ips).toEqual(ips);
    expect(reasons(out)).toEqual(events);
    if (err) expect(out.error).toMatch(err);
    if (!ips.length) expect(c.allocator.allocation('default/s')).toBeUndefined();
  });

  it('removing loadBalancerIP keeps the IP', () => {
    const c = new Cluster(pools(DEFS));
    expect(c.add('s', { lbIP: '192.0.2.7' }).ips).toEqual(['192.0.2.7']);
    const out = c.edit('default/s', (o) => delete o.spec.loadBalancerIP);
    expect(out.ips).toEqual(['192.0.2.7']);
    expect(out.events).toEqual([]);
    expect(out.changed).toBe(false);
  });

  it('a changed request re-allocates and frees the old IP (reprocessAll)', () => {
    const c = new Cluster(pools(DEFS));
    c.add('s', { lbIP: '192.0.2.7' });
    const out = c.edit('default/s', (o) => (o.spec.loadBalancerIP = '203.0.113.9'));
    expect(out.ips).toEqual(['203.0.113.9']);
    expect(out.pool).toBe('q');
    expect(out.result).toBe('reprocessAll');
    expect(c.allocator.counters('p')!.assignedIPv4).toBe(0n);
    expect(c.allocator.counters('q')!.assignedIPv4).toBe(1n);
  });

  it.each<[string, (o: ReturnType<typeof svcObj>) => void]>([
    ['unparsable', (o) => (o.spec.loadBalancerIP = 'banana')],
    [
      'both loadBalancerIP and annotation',
      (o) => (o.metadata.annotations = { 'metallb.io/loadBalancerIPs': '192.0.2.8' }),
    ],
  ])('request becomes invalid (%s) while an IP is held → LoadBalancerFailed, IP kept', (_t, mutate) => {
    const c = new Cluster(pools(DEFS));
    c.add('s', { lbIP: '192.0.2.7' });
    const out = c.edit('default/s', mutate);
    expect(out.ips).toEqual(['192.0.2.7']);
    expect(out.result).toBe('error');
    expect(reasons(out)).toEqual(['LoadBalancerFailed']);
    expect(c.allocator.allocation('default/s')?.ips.map(formatIP)).toEqual(['192.0.2.7']);
  });
});

// ---------------------------------------------------------------------------------------------
describe('b: metallb.io/loadBalancerIPs annotation', () => {
  const DEFS: PoolDefs = {
    p: { addresses: ['192.0.2.0/24', '2001:db8:1::/120'] },
    q: { addresses: ['2001:db8:2::/120'] },
  };
  const A = 'metallb.io/loadBalancerIPs';

  it.each<{ value: string; family: SvcOpts['family']; ips: string[]; err?: RegExp }>([
    { value: ' 192.0.2.5 ', family: 4, ips: ['192.0.2.5'] },
    { value: '192.0.2.5 ,  2001:db8:1::5', family: 'dual', ips: ['192.0.2.5', '2001:db8:1::5'] },
    { value: '2001:db8:1::5,192.0.2.5', family: 'dual', ips: ['2001:db8:1::5', '192.0.2.5'] },
    { value: '2001:db8:1::5', family: 6, ips: ['2001:db8:1::5'] },
    { value: '192.0.2.5,192.0.2.6', family: 'dual', ips: [], err: /same family/ },
    { value: '2001:db8:1::5,2001:db8:1::6', family: 'dual', ips: [], err: /same family/ },
    { value: '192.0.2.5,2001:db8:1::5,192.0.2.6', family: 'dual', ips: [], err: /more than two/ },
    { value: '192.0.2.5,banana', family: 'dual', ips: [], err: /banana/ },
    { value: '192.0.2.5,', family: 4, ips: [], err: /item/ },
    { value: '192.0.2.5,2001:db8:1::5', family: 4, ips: [], err: /dual-stack but the Service is IPv4/ },
    { value: '192.0.2.5', family: 'dual', ips: [], err: /IPv4 but the Service is dual-stack/ },
    { value: '2001:db8:1::5', family: 4, ips: [], err: /IPv6 but the Service is IPv4/ },
    { value: '192.0.2.5,2001:db8:2::5', family: 'dual', ips: [], err: /not allowed/ },
  ])('"$value" for family $family → $ips', ({ value, family, ips, err }) => {
    const { out } = once(DEFS, 's', {
      family,
      ...(family === 'dual' ? { policy: 'RequireDualStack' as const } : {}),
      ann: { [A]: value },
    });
    expect(out.ips).toEqual(ips);
    expect(reasons(out)).toEqual([ips.length ? 'IPAllocated' : 'AllocationFailed']);
    if (err) expect(out.error).toMatch(err);
  });

  it('requested IPs equal to the current set in another order: kept, status order unchanged', () => {
    const c = new Cluster(pools(DEFS));
    c.add('s', { family: 'dual', policy: 'RequireDualStack', ann: { [A]: '192.0.2.5,2001:db8:1::5' } });
    const out = c.edit('default/s', (o) => (o.metadata.annotations![A] = '2001:db8:1::5, 192.0.2.5'));
    expect(out.ips).toEqual(['192.0.2.5', '2001:db8:1::5']);
    expect(out.events).toEqual([]);
    expect(out.result).toBe('ok');
  });

  it.each<{ ann: Record<string, string>; lbIP?: string; want: ReturnType<typeof requestedIPs>['kind'] }>([
    { ann: {}, want: 'none' },
    { ann: { [A]: '   ' }, want: 'none' },
    { ann: { [A]: '', 'metallb.universe.tf/loadBalancerIPs': '192.0.2.5' }, want: 'none' },
    { ann: { 'metallb.universe.tf/loadBalancerIPs': '192.0.2.5' }, want: 'ips' },
    { ann: { [A]: '192.0.2.5' }, lbIP: '192.0.2.5', want: 'error' },
    { ann: {}, lbIP: '192.0.2.5', want: 'ips' },
  ])('requestedIPs($ann, lbIP=$lbIP) → $want', ({ ann, lbIP, want }) => {
    expect(requestedIPs(svc('s', { ann, ...(lbIP ? { lbIP } : {}) })).kind).toBe(want);
  });
});

// ---------------------------------------------------------------------------------------------
describe('b: metallb.io/address-pool annotation', () => {
  const DEFS: PoolDefs = {
    a: { addresses: ['192.0.2.0/28'] },
    b: { addresses: ['203.0.113.0/28'], autoAssign: false },
    c: { addresses: ['198.51.100.0/28'] },
    team: { addresses: ['198.51.100.16/28'], serviceAllocation: { namespaces: ['team-a'] } },
  };
  const AP = 'metallb.io/address-pool';

  it.each<{ title: string; o: SvcOpts; ips: string[]; pool: string | null; err?: RegExp }>([
    { title: 'unknown pool → error', o: { ann: { [AP]: 'nope' } }, ips: [], pool: null, err: /nope/ },
    { title: 'autoAssign:false pool usable', o: { ann: { [AP]: 'b' } }, ips: ['203.0.113.0'], pool: 'b' },
    { title: 'regular pool', o: { ann: { [AP]: 'c' } }, ips: ['198.51.100.0'], pool: 'c' },
    {
      title: 'explicit IP in that pool',
      o: { ann: { [AP]: 'a' }, lbIP: '192.0.2.5' },
      ips: ['192.0.2.5'],
      pool: 'a',
    },
    {
      title: 'explicit IP in another pool → error, no IP',
      o: { ann: { [AP]: 'b' }, lbIP: '192.0.2.5' },
      ips: [],
      pool: null,
      err: /belongs to pool "a"/,
    },
    {
      title: 'explicit IP via annotation in another pool → error',
      o: { ann: { [AP]: 'c', 'metallb.io/loadBalancerIPs': '203.0.113.5' } },
      ips: [],
      pool: null,
    },
    {
      title: 'serviceAllocation still enforced',
      o: { ann: { [AP]: 'team' } },
      ips: [],
      pool: null,
      err: /namespace "default"/,
    },
    {
      title: 'compatible namespace',
      o: { ns: 'team-a', ann: { [AP]: 'team' } },
      ips: ['198.51.100.16'],
      pool: 'team',
    },
  ])('$title', ({ o, ips, pool, err }) => {
    const { c, out } = once(DEFS, 's', o);
    expect(out.ips).toEqual(ips);
    expect(out.pool).toBe(pool);
    expect(reasons(out)).toEqual([ips.length ? 'IPAllocated' : 'AllocationFailed']);
    if (err) expect(out.error).toMatch(err);
    if (!ips.length) expect(c.allocator.allocation(`${o.ns ?? 'default'}/s`)).toBeUndefined();
  });

  it('changing it re-allocates from the new pool', () => {
    const c = new Cluster(pools(DEFS));
    expect(c.add('s').ips).toEqual(['192.0.2.0']);
    const out = c.edit(
      'default/s',
      (o) => (o.metadata.annotations = { ...o.metadata.annotations, [AP]: 'b' }),
    );
    expect(out.ips).toEqual(['203.0.113.0']);
    expect(out.pool).toBe('b');
    expect(out.result).toBe('reprocessAll');
    expect(c.allocator.counters('a')!.assignedIPv4).toBe(0n);
  });

  it('setting it to the pool already holding the IP changes nothing', () => {
    const c = new Cluster(pools(DEFS));
    c.add('s');
    const out = c.edit(
      'default/s',
      (o) => (o.metadata.annotations = { ...o.metadata.annotations, [AP]: 'a' }),
    );
    expect(out.ips).toEqual(['192.0.2.0']);
    expect(out.changed).toBe(false);
    expect(out.events).toEqual([]);
  });

  it('removing it keeps the current IP (even from an autoAssign:false pool)', () => {
    const c = new Cluster(pools(DEFS));
    expect(c.add('s', { ann: { [AP]: 'b' } }).ips).toEqual(['203.0.113.0']);
    const out = c.edit('default/s', (o) => delete o.metadata.annotations![AP]);
    expect(out.ips).toEqual(['203.0.113.0']);
    expect(out.pool).toBe('b');
    expect(out.changed).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
describe('b: annotation prefixes (metallb.io/ wins when present, even empty)', () => {
  it.each<{ ann: Record<string, string>; want: { value: string; deprecated: boolean } | undefined }>([
    { ann: {}, want: undefined },
    { ann: { 'metallb.io/address-pool': 'a' }, want: { value: 'a', deprecated: false } },
    { ann: { 'metallb.universe.tf/address-pool': 'b' }, want: { value: 'b', deprecated: true } },
    {
      ann: { 'metallb.io/address-pool': 'a', 'metallb.universe.tf/address-pool': 'b' },
      want: { value: 'a', deprecated: false },
    },
    {
      ann: { 'metallb.io/address-pool': '', 'metallb.universe.tf/address-pool': 'b' },
      want: { value: '', deprecated: false },
    },
  ])('annotation($ann)', ({ ann, want }) => {
    expect(annotation(ann, 'address-pool')).toEqual(want);
  });

  const DEFS: PoolDefs = {
    a: { addresses: ['192.0.2.0/28'] },
    b: { addresses: ['203.0.113.0/28'], autoAssign: false },
  };

  it.each<{ title: string; ann: Record<string, string>; ips: string[] }>([
    {
      title: 'deprecated address-pool honoured',
      ann: { 'metallb.universe.tf/address-pool': 'b' },
      ips: ['203.0.113.0'],
    },
    {
      title: 'empty metallb.io/address-pool hides the deprecated one',
      ann: { 'metallb.io/address-pool': '', 'metallb.universe.tf/address-pool': 'b' },
      ips: ['192.0.2.0'],
    },
    {
      title: 'deprecated loadBalancerIPs honoured',
      ann: { 'metallb.universe.tf/loadBalancerIPs': '203.0.113.4' },
      ips: ['203.0.113.4'],
    },
    {
      title: 'empty metallb.io/loadBalancerIPs hides the deprecated one',
      ann: { 'metallb.io/loadBalancerIPs': '', 'metallb.universe.tf/loadBalancerIPs': '203.0.113.4' },
      ips: ['192.0.2.0'],
    },
    {
      title: 'metallb.io/address-pool wins over a different deprecated one',
      ann: { 'metallb.io/address-pool': 'a', 'metallb.universe.tf/address-pool': 'b' },
      ips: ['192.0.2.0'],
    },
  ])('$title', ({ ann, ips }) => {
    expect(once(DEFS, 's', { ann }).out.ips).toEqual(ips);
  });

  it.each<{ title: string; ann: Record<string, string>; shares: boolean }>([
    {
      title: 'deprecated allow-shared-ip honoured',
      ann: { 'metallb.universe.tf/allow-shared-ip': 'k' },
      shares: true,
    },
    {
      title: 'empty metallb.io/allow-shared-ip hides the deprecated key (no sharing)',
      ann: { 'metallb.io/allow-shared-ip': '', 'metallb.universe.tf/allow-shared-ip': 'k' },
      shares: false,
    },
  ])('$title', ({ ann, shares }) => {
    const c = new Cluster(pools(DEFS));
    c.add('one', { lbIP: '192.0.2.3', ann: { 'metallb.io/allow-shared-ip': 'k' }, ports: ['TCP/80'] });
    const out = c.add('two', { lbIP: '192.0.2.3', ann, ports: ['TCP/443'] });
    expect(out.ips).toEqual(shares ? ['192.0.2.3'] : []);
  });

  it('deprecatedAnnotation: one Warning per metallb.universe.tf/ key, only on writes', () => {
    const c = new Cluster(pools(DEFS));
    const ann = {
      'metallb.universe.tf/allow-shared-ip': 'k',
      'metallb.universe.tf/address-pool': 'a',
      'metallb.io/loadBalancerIPs': '192.0.2.9',
    };
    const first = c.add('s', { ann });
    expect(first.changed).toBe(true);
    const dep = first.events.filter((e) => e.reason === 'deprecatedAnnotation');
    expect(dep).toHaveLength(2);
    expect(dep.every((e) => e.type === 'Warning')).toBe(true);
    expect(dep.map((e) => e.message).join('\n')).toMatch(/address-pool[\s\S]*allow-shared-ip/);
    const noop = c.converge('default/s');
    expect(noop.changed).toBe(false);
    expect(noop.events).toEqual([]);
  });

  it('no deprecatedAnnotation for metallb.io/ keys only', () => {
    const out = once(DEFS, 's', { ann: { 'metallb.io/address-pool': 'a' } }).out;
    expect(reasons(out)).toEqual(['IPAllocated']);
  });
});

// ---------------------------------------------------------------------------------------------
describe('a.1 spec.autoAssign', () => {
  it('autoAssign:false is never auto-chosen, even when it sorts first or has a priority', () => {
    const defs: PoolDefs = {
      'a-manual': { addresses: ['192.0.2.0/31'], autoAssign: false },
      'b-manual-prio': { addresses: ['192.0.2.8/31'], autoAssign: false, serviceAllocation: { priority: 1 } },
      'c-auto': { addresses: ['203.0.113.0/31'] },
    };
    const c = new Cluster(pools(defs));
    expect(c.add('s1').ips).toEqual(['203.0.113.0']);
    expect(c.add('s2').ips).toEqual(['203.0.113.1']);
    const s3 = c.add('s3');
    expect(s3.ips).toEqual([]);
    expect(reasons(s3)).toEqual(['AllocationFailed']);
    expect(c.allocator.counters('a-manual')!.assignedIPv4).toBe(0n);
    expect(c.allocator.counters('b-manual-prio')!.assignedIPv4).toBe(0n);
  });

  it('default is true', () => {
    expect(pools({ p: { addresses: ['192.0.2.0/30'] } }).get('p')!.autoAssign).toBe(true);
    expect(once({ p: { addresses: ['192.0.2.0/30'] } }, 's').out.ips).toEqual(['192.0.2.0']);
  });

  it.each<[string, SvcOpts]>([
    ['explicit IP', { lbIP: '192.0.2.1' }],
    ['address-pool', { ann: { 'metallb.io/address-pool': 'm' } }],
  ])('autoAssign:false pool usable through %s', (_t, o) => {
    const { out } = once({ m: { addresses: ['192.0.2.0/30'], autoAssign: false } }, 's', o);
    expect(out.ips).toHaveLength(1);
    expect(out.pool).toBe('m');
  });
});

// ---------------------------------------------------------------------------------------------
describe('a.1/c.4 avoidBuggyIPs, network and broadcast addresses', () => {
  it.each<{ title: string; addresses: string[]; avoid: boolean; sequence: string[] }>([
    {
      title: '/24 without flag: .0 is a candidate',
      addresses: ['192.0.2.0/24'],
      avoid: false,
      sequence: ['192.0.2.0', '192.0.2.1'],
    },
    {
      title: '/24 with flag: .0 skipped',
      addresses: ['192.0.2.0/24'],
      avoid: true,
      sequence: ['192.0.2.1', '192.0.2.2'],
    },
    {
      title: '/31 at .254 without flag: .255 is a candidate',
      addresses: ['192.0.2.254/31'],
      avoid: false,
      sequence: ['192.0.2.254', '192.0.2.255', ''],
    },
    {
      title: '/31 at .254 with flag: .255 skipped',
      addresses: ['192.0.2.254/31'],
      avoid: true,
      sequence: ['192.0.2.254', ''],
    },
    {
      title: 'broadcast /32 without flag',
      addresses: ['198.51.100.255/32'],
      avoid: false,
      sequence: ['198.51.100.255', ''],
    },
    { title: 'network /32 with flag: nothing', addresses: ['198.51.100.0/32'], avoid: true, sequence: [''] },
    {
      title: '/25 upper half network .128 is a candidate',
      addresses: ['203.0.113.128/25'],
      avoid: true,
      sequence: ['203.0.113.128'],
    },
    {
      title: 'IPv6 unaffected',
      addresses: ['2001:db8:1::/120'],
      avoid: true,
      sequence: ['2001:db8:1::', '2001:db8:1::1'],
    },
  ])('$title', ({ addresses, avoid, sequence }) => {
    const v6 = addresses[0]!.includes(':');
    const c = new Cluster(pools({ p: { addresses, avoidBuggyIPs: avoid } }));
    sequence.forEach((want, i) => {
      const out = c.add(`s${i}`, { family: v6 ? 6 : 4 });
      expect(out.ips).toEqual(want ? [want] : []);
    });
  });

  it.each<[string, boolean, string, boolean]>([
    ['.0 with flag', true, '192.0.2.0', false],
    ['.255 with flag', true, '192.0.2.255', false],
    ['.0 without flag', false, '192.0.2.0', true],
    ['.255 without flag', false, '192.0.2.255', true],
    ['IPv6 ::ff with flag', true, '2001:db8:1::ff', true],
    ['IPv6 ::100 with flag', true, '2001:db8:1::100', true],
  ])('explicit request for %s → allowed=%s', (_t, avoid, want, ok) => {
    const defs: PoolDefs = { p: { addresses: ['192.0.2.0/24', '2001:db8:1::/119'], avoidBuggyIPs: avoid } };
    const { out } = once(defs, 's', { family: want.includes(':') ? 6 : 4, lbIP: want });
    expect(out.ips).toEqual(ok ? [want] : []);
    if (!ok) expect(out.error).toMatch(/not allowed/);
  });

  it('switching the flag on takes .0 away from its holder (setPools + reconverge)', () => {
    const off: PoolDefs = { p: { addresses: ['192.0.2.0/24'] } };
    const c = new Cluster(pools(off));
    expect(c.add('zero').ips).toEqual(['192.0.2.0']);
    expect(c.add('one').ips).toEqual(['192.0.2.1']);
    const released = c.setPools(pools({ p: { ...off.p!, avoidBuggyIPs: true } }));
    expect(released).toEqual(['default/zero']);
    expect(c.allocator.counters('p')).toEqual({
      assignedIPv4: 1n,
      availableIPv4: 253n,
      assignedIPv6: 0n,
      availableIPv6: 0n,
    });
    const out = c.converge('default/zero');
    expect(reasons(out)).toEqual(['ClearAssignment', 'IPAllocated']);
    expect(out.ips).toEqual(['192.0.2.2']);
    // The lost .0 is outside every pool now: nobody else can use it, no reprocess needed.
    expect(out.result).toBe('ok');
    expect(c.converge('default/one').ips).toEqual(['192.0.2.1']);
  });

  it('switching the flag on with an explicit request for .255 → ClearAssignment then AllocationFailed', () => {
    const c = new Cluster(pools({ p: { addresses: ['192.0.2.0/24'] } }));
    expect(c.add('s', { lbIP: '192.0.2.255' }).ips).toEqual(['192.0.2.255']);
    c.setPools(pools({ p: { addresses: ['192.0.2.0/24'], avoidBuggyIPs: true } }));
    const out = c.converge('default/s');
    expect(reasons(out)).toEqual(['ClearAssignment', 'AllocationFailed']);
    expect(out.ips).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
describe('c.3 serviceAllocation: pinned pools, priority and the unpinned fallback', () => {
  it('priority: positive ascending, then 0 / unset / {} / [quirk] negative, ties by name, then unpinned', () => {
    const defs: PoolDefs = {
      'a-empty': { addresses: ['192.0.2.1/32'], serviceAllocation: {} },
      'b-neg': { addresses: ['192.0.2.2/32'], serviceAllocation: { priority: -5 } },
      'c-ten': { addresses: ['192.0.2.3/32'], serviceAllocation: { priority: 10 } },
      'd-two': { addresses: ['192.0.2.4/32'], serviceAllocation: { priority: 2 } },
      'e-zero': { addresses: ['192.0.2.5/32'], serviceAllocation: { priority: 0 } },
      'f-ten': { addresses: ['192.0.2.6/32'], serviceAllocation: { priority: 10 } },
      '0-plain': { addresses: ['192.0.2.0/32'] },
    };
    const c = new Cluster(pools(defs));
    const got = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => c.add(`s${i}`).pool);
    expect(got).toEqual(['d-two', 'c-ten', 'f-ten', 'a-empty', 'b-neg', 'e-zero', '0-plain', null]);
  });

  it('[quirk] negative priority is stored as unset', () => {
    const p = pools({ n: { addresses: ['192.0.2.0/30'], serviceAllocation: { priority: -1 } } });
    expect(p.get('n')!.serviceAllocation!.priority).toBe(0);
  });

  const NS = { 'team-a': { team: 'red' }, 'team-b': { team: 'blue' }, default: {} };
  const DEFS: PoolDefs = {
    'by-ns': { addresses: ['192.0.2.0/30'], serviceAllocation: { namespaces: ['team-a'] } },
    'by-nssel': {
      addresses: ['192.0.2.4/30'],
      serviceAllocation: { namespaceSelectors: [{ matchLabels: { team: 'blue' } }] },
    },
    'by-svcsel': {
      addresses: ['192.0.2.8/30'],
      serviceAllocation: {
        serviceSelectors: [
          { matchLabels: { app: 'web' } },
          { matchExpressions: [{ key: 'tier', operator: 'In', values: ['db'] }] },
        ],
      },
    },
    'ns-and-sel': {
      addresses: ['192.0.2.12/30'],
      serviceAllocation: {
        priority: 1,
        namespaces: ['team-a'],
        serviceSelectors: [{ matchLabels: { app: 'api' } }],
      },
    },
    plain: { addresses: ['203.0.113.0/30'] },
  };

  it.each<{ title: string; o: SvcOpts; pool: string }>([
    { title: 'namespaces: listed namespace', o: { ns: 'team-a' }, pool: 'by-ns' },
    { title: 'namespaceSelectors resolved against Namespace labels', o: { ns: 'team-b' }, pool: 'by-nssel' },
    { title: 'serviceSelectors: first selector', o: { labels: { app: 'web' } }, pool: 'by-svcsel' },
    { title: 'serviceSelectors are OR-ed', o: { labels: { tier: 'db' } }, pool: 'by-svcsel' },
    {
      title: 'namespace AND selector both needed (priority 1 first)',
      o: { ns: 'team-a', labels: { app: 'api' } },
      pool: 'ns-and-sel',
    },
    {
      title: 'selector without namespace → not that pool',
      o: { ns: 'team-b', labels: { app: 'api' } },
      pool: 'by-nssel',
    },
    { title: 'nothing matches → unpinned fallback', o: { labels: { app: 'other' } }, pool: 'plain' },
    { title: 'namespace without labels → unpinned fallback', o: { ns: 'default' }, pool: 'plain' },
  ])('$title → $pool', ({ o, pool }) => {
    const { out } = once2(DEFS, NS, o);
    expect(out.pool).toBe(pool);
  });

  function once2(defs: PoolDefs, ns: Record<string, Record<string, string>>, o: SvcOpts) {
    const c = new Cluster(pools(defs, ns));
    return { c, out: c.add('s', o) };
  }

  it('pinned pools are tried before unpinned ones regardless of name and address', () => {
    const defs: PoolDefs = {
      a: { addresses: ['192.0.2.0/30'] },
      z: { addresses: ['203.0.113.0/30'], serviceAllocation: { namespaces: ['default'] } },
    };
    expect(once(defs, 's').out.pool).toBe('z');
  });

  it('a pool with only a priority is pinned for everyone, before pools without serviceAllocation', () => {
    const defs: PoolDefs = {
      a: { addresses: ['192.0.2.0/30'] },
      z: { addresses: ['203.0.113.0/30'], serviceAllocation: { priority: 100 } },
    };
    for (const ns of ['default', 'kube-system', 'x']) expect(once(defs, 's', { ns }).out.pool).toBe('z');
  });

  it('a pool with serviceAllocation is never in the unpinned fallback', () => {
    const defs: PoolDefs = {
      team: { addresses: ['192.0.2.0/30'], serviceAllocation: { namespaces: ['team-a'] } },
    };
    const { out } = once(defs, 's');
    expect(out.ips).toEqual([]);
    expect(reasons(out)).toEqual(['AllocationFailed']);
  });

  describe('[quirk] namespaceSelectors matching no namespace', () => {
    const GHOST: PoolDefs = {
      ghost: {
        addresses: ['192.0.2.0/30'],
        serviceAllocation: { namespaceSelectors: [{ matchLabels: { team: 'nobody' } }] },
      },
    };
    it('never auto-assigned', () => {
      expect(once(GHOST, 's').out.ips).toEqual([]);
      expect(once({ ...GHOST, plain: { addresses: ['203.0.113.0/30'] } }, 's').out.pool).toBe('plain');
    });
    it.each<[string, SvcOpts]>([
      ['explicit IP, namespace default', { lbIP: '192.0.2.2' }],
      ['explicit IP, any namespace', { ns: 'anything', lbIP: '192.0.2.2' }],
      ['address-pool', { ns: 'anything', ann: { 'metallb.io/address-pool': 'ghost' } }],
    ])('compatible for %s', (_t, o) => {
      expect(once(GHOST, 's', o).out.pool).toBe('ghost');
    });
  });

  it('exhausted pinned pools fall through to unpinned, never to incompatible pinned pools', () => {
    const defs: PoolDefs = {
      p1: { addresses: ['192.0.2.0/32'], serviceAllocation: { namespaces: ['team-a'] } },
      p2: { addresses: ['192.0.2.1/32'], serviceAllocation: { priority: 1, namespaces: ['team-b'] } },
      p3: {
        addresses: ['192.0.2.2/32'],
        serviceAllocation: { serviceSelectors: [{ matchLabels: { app: 'x' } }] },
      },
      u: { addresses: ['203.0.113.0/32'] },
    };
    const c = new Cluster(pools(defs));
    expect(c.add('s1', { ns: 'team-a' }).pool).toBe('p1');
    expect(c.add('s2', { ns: 'team-a' }).pool).toBe('u');
    const s3 = c.add('s3', { ns: 'team-a' });
    expect(s3.ips).toEqual([]);
    expect(c.allocator.counters('p2')!.assignedIPv4).toBe(0n);
    expect(c.allocator.counters('p3')!.assignedIPv4).toBe(0n);
  });

  it('[quirk] unpinned pools are tried in pool-name order (not address order)', () => {
    const defs: PoolDefs = {
      'b-low': { addresses: ['192.0.2.0/31'] },
      'a-high': { addresses: ['203.0.113.0/31'] },
    };
    const c = new Cluster(pools(defs));
    expect(['s1', 's2', 's3'].map((n) => c.add(n).ips[0])).toEqual([
      '203.0.113.0',
      '203.0.113.1',
      '192.0.2.0',
    ]);
  });

  it('explicit IP in an incompatible pool → AllocationFailed', () => {
    const { out } = once(DEFS, 's', { ns: 'team-b', lbIP: '192.0.2.1' });
    expect(out.ips).toEqual([]);
    expect(out.error).toMatch(/does not allow namespace "team-b"/);
  });

  it.each<{
    title: string;
    sa: PoolDefs[string]['serviceAllocation'];
    ns: string;
    labels: Record<string, string>;
    ok: boolean;
  }>([
    { title: 'no serviceAllocation', sa: undefined, ns: 'x', labels: {}, ok: true },
    { title: 'empty serviceAllocation', sa: {}, ns: 'x', labels: {}, ok: true },
    { title: 'priority only', sa: { priority: 3 }, ns: 'x', labels: {}, ok: true },
    { title: 'namespace listed', sa: { namespaces: ['x'] }, ns: 'x', labels: {}, ok: true },
    { title: 'namespace not listed', sa: { namespaces: ['x'] }, ns: 'y', labels: {}, ok: false },
    {
      title: 'selector matches',
      sa: { serviceSelectors: [{ matchLabels: { a: '1' } }] },
      ns: 'x',
      labels: { a: '1' },
      ok: true,
    },
    {
      title: 'selector does not match',
      sa: { serviceSelectors: [{ matchLabels: { a: '1' } }] },
      ns: 'x',
      labels: { a: '2' },
      ok: false,
    },
    {
      title: 'namespace ok, selector not',
      sa: { namespaces: ['x'], serviceSelectors: [{ matchLabels: { a: '1' } }] },
      ns: 'x',
      labels: {},
      ok: false,
    },
    {
      title: 'c.6.2: empty resolved namespace set + selector → only the selector counts',
      sa: {
        namespaceSelectors: [{ matchLabels: { team: 'nobody' } }],
        serviceSelectors: [{ matchLabels: { a: '1' } }],
      },
      ns: 'anything',
      labels: { a: '1' },
      ok: true,
    },
  ])('poolCompatible: $title → $ok', ({ sa, ns, labels, ok }) => {
    const p = pools({ p: { addresses: ['192.0.2.0/30'], ...(sa ? { serviceAllocation: sa } : {}) } }).get(
      'p',
    )!;
    expect(poolCompatible(p, ns, labels)).toBe(ok);
  });
});

// ---------------------------------------------------------------------------------------------
describe('c.5 sharing', () => {
  const DEFS: PoolDefs = { p: { addresses: ['192.0.2.0/29', '2001:db8:1::/125'] } };
  const K = 'metallb.io/allow-shared-ip';

  it.each<{ title: string; a: SvcOpts; b: SvcOpts; ok: boolean }>([
    {
      title: 'same key, disjoint ports',
      a: { ann: { [K]: 'k' } },
      b: { ann: { [K]: 'k' }, ports: ['TCP/443'] },
      ok: true,
    },
    { title: 'second not opted in', a: { ann: { [K]: 'k' } }, b: { ports: ['TCP/443'] }, ok: false },
    { title: 'first not opted in', a: {}, b: { ann: { [K]: 'k' }, ports: ['TCP/443'] }, ok: false },
    {
      title: 'different keys',
      a: { ann: { [K]: 'k' } },
      b: { ann: { [K]: 'K' }, ports: ['TCP/443'] },
      ok: false,
    },
    {
      title: 'empty key on both = no sharing',
      a: { ann: { [K]: '' } },
      b: { ann: { [K]: '' }, ports: ['TCP/443'] },
      ok: false,
    },
    {
      title: 'TCP/53 and UDP/53 share',
      a: { ann: { [K]: 'k' }, ports: ['TCP/53'] },
      b: { ann: { [K]: 'k' }, ports: ['UDP/53'] },
      ok: true,
    },
    {
      title: 'same port refused',
      a: { ann: { [K]: 'k' }, ports: ['UDP/53'] },
      b: { ann: { [K]: 'k' }, ports: ['UDP/53'] },
      ok: false,
    },
    {
      title: 'one common port among several refused',
      a: { ann: { [K]: 'k' }, ports: ['TCP/80', 'TCP/8080'] },
      b: { ann: { [K]: 'k' }, ports: ['TCP/443', 'TCP/8080'] },
      ok: false,
    },
    {
      title: 'ETP Local, same selector in another key order',
      a: { ann: { [K]: 'k' }, etp: 'Local', selector: { app: 'x', tier: 'fe' } },
      b: { ann: { [K]: 'k' }, etp: 'Local', selector: { tier: 'fe', app: 'x' }, ports: ['TCP/443'] },
      ok: true,
    },
    {
      title: 'ETP Local, different selectors',
      a: { ann: { [K]: 'k' }, etp: 'Local', selector: { app: 'x' } },
      b: { ann: { [K]: 'k' }, etp: 'Local', selector: { app: 'y' }, ports: ['TCP/443'] },
      ok: false,
    },
    {
      title: 'ETP Local vs Cluster',
      a: { ann: { [K]: 'k' }, etp: 'Local', selector: { app: 'x' } },
      b: { ann: { [K]: 'k' }, selector: { app: 'x' }, ports: ['TCP/443'] },
      ok: false,
    },
    {
      title: 'ETP Cluster ignores selectors',
      a: { ann: { [K]: 'k' }, selector: { app: 'x' } },
      b: { ann: { [K]: 'k' }, selector: { app: 'y' }, ports: ['TCP/443'] },
      ok: true,
    },
  ])('$title → shared=$ok', ({ a, b, ok }) => {
    const c = new Cluster(pools(DEFS));
    expect(c.add('a', { ...a, lbIP: '192.0.2.3' }).ips).toEqual(['192.0.2.3']);
    const out = c.add('b', { ...b, lbIP: '192.0.2.3' });
    expect(out.ips).toEqual(ok ? ['192.0.2.3'] : []);
    expect(reasons(out)).toEqual([ok ? 'IPAllocated' : 'AllocationFailed']);
    // A shared IP counts once.
    expect(c.allocator.counters('p')!.assignedIPv4).toBe(1n);
  });

  it('the sole user may change its key in place (reprocessAll because keys changed)', () => {
    const c = new Cluster(pools(DEFS));
    c.add('a', { lbIP: '192.0.2.3', ann: { [K]: 'k' } });
    const out = c.edit('default/a', (o) => (o.metadata.annotations![K] = 'k2'));
    expect(out.ips).toEqual(['192.0.2.3']);
    expect(out.result).toBe('reprocessAll');
    expect(c.allocator.allocation('default/a')!.sharingKey).toBe('k2');
    expect(c.add('old', { lbIP: '192.0.2.3', ann: { [K]: 'k' }, ports: ['TCP/443'] }).ips).toEqual([]);
    expect(c.add('new', { lbIP: '192.0.2.3', ann: { [K]: 'k2' }, ports: ['TCP/443'] }).ips).toEqual([
      '192.0.2.3',
    ]);
  });

  it('the sole user may switch to ETP Local in place (backend key change)', () => {
    const c = new Cluster(pools(DEFS));
    c.add('a', { lbIP: '192.0.2.3', ann: { [K]: 'k' }, selector: { app: 'x' } });
    const out = c.edit('default/a', (o) => (o.spec.externalTrafficPolicy = 'Local'));
    expect(out.ips).toEqual(['192.0.2.3']);
    expect(out.result).toBe('reprocessAll');
    expect(c.allocator.allocation('default/a')!.backendKey).toBe('app=x');
  });

  it('a sharing user that changes its key loses the shared IP', () => {
    const c = new Cluster(pools(DEFS));
    c.add('a', { ann: { [K]: 'k' } });
    c.add('b', { ann: { [K]: 'k' }, ports: ['TCP/443'] });
    expect(c.ips('default/b')).toEqual(['192.0.2.0']);
    const out = c.edit('default/b', (o) => (o.metadata.annotations![K] = 'other'));
    expect(reasons(out)).toEqual(['ClearAssignment', 'IPAllocated']);
    expect(out.ips).toEqual(['192.0.2.1']);
    expect(out.result).toBe('reprocessAll');
    expect(c.converge('default/a').ips).toEqual(['192.0.2.0']);
  });

  it('port collision is checked against other Services only (re-assert with same ports)', () => {
    const c = new Cluster(pools(DEFS));
    c.add('a', { ann: { [K]: 'k' }, ports: ['TCP/80'] });
    const again = c.converge('default/a');
    expect(again.ips).toEqual(['192.0.2.0']);
    expect(again.events).toEqual([]);
  });

  it('dual-stack Services are checked per IP', () => {
    const c = new Cluster(pools(DEFS));
    c.add('v4', { lbIP: '192.0.2.1', ann: { [K]: 'k' } });
    c.add('v6', { family: 6, lbIP: '2001:db8:1::1' });
    const A = 'metallb.io/loadBalancerIPs';
    const o = (ips: string): SvcOpts => ({
      family: 'dual',
      policy: 'RequireDualStack',
      ann: { [K]: 'k', [A]: ips },
      ports: ['TCP/443'],
    });
    const refused = c.add('d1', o('192.0.2.1,2001:db8:1::1'));
    expect(refused.ips).toEqual([]);
    expect(refused.error).toMatch(/2001:db8:1::1/);
    expect(c.add('d2', o('192.0.2.1,2001:db8:1::2')).ips).toEqual(['192.0.2.1', '2001:db8:1::2']);
  });

  it('automatic allocation takes the lowest acceptable address, which may be a shared one', () => {
    const c = new Cluster(pools(DEFS));
    // A free address below a shareable one wins: sharing is not preferred.
    c.add('k-at-3', { lbIP: '192.0.2.3', ann: { [K]: 'k' }, ports: ['TCP/80'] });
    expect(c.add('k1', { ann: { [K]: 'k' }, ports: ['TCP/443'] }).ips).toEqual(['192.0.2.0']);
    // .0 is now shareable for key k with a port other than 443.
    expect(c.add('k2', { ann: { [K]: 'k' }, ports: ['TCP/80'] }).ips).toEqual(['192.0.2.0']);
    // Port 80 taken on .0 and on .3 → lowest free.
    expect(c.add('k3', { ann: { [K]: 'k' }, ports: ['TCP/80'] }).ips).toEqual(['192.0.2.1']);
    expect(c.add('nokey', { ports: ['TCP/9'] }).ips).toEqual(['192.0.2.2']);
    // .1 (k3 on port 80) is shareable for port 443 and lower than .3 and the next free .4.
    expect(c.add('k4', { ann: { [K]: 'k' }, ports: ['TCP/443'] }).ips).toEqual(['192.0.2.1']);
    expect(c.add('k5', { ann: { [K]: 'k' }, ports: ['TCP/9'] }).ips).toEqual(['192.0.2.0']);
    expect(c.allocator.counters('p')!.assignedIPv4).toBe(4n);
  });

  it('dual-stack automatic allocation shares per family', () => {
    const c = new Cluster(pools(DEFS));
    const d = { family: 'dual' as const, policy: 'RequireDualStack' as const, ann: { [K]: 'k' } };
    expect(c.add('d1', { ...d, ports: ['TCP/80'] }).ips).toEqual(['192.0.2.0', '2001:db8:1::']);
    expect(c.add('d2', { ...d, ports: ['TCP/443'] }).ips).toEqual(['192.0.2.0', '2001:db8:1::']);
    expect(c.add('d3', { ...d, ports: ['TCP/80'] }).ips).toEqual(['192.0.2.1', '2001:db8:1::1']);
    expect(c.allocator.counters('p')).toMatchObject({ assignedIPv4: 2n, assignedIPv6: 2n });
  });

  it('sharing partners released one by one: the IP stays in use until the last one goes', () => {
    const c = new Cluster(pools(DEFS));
    c.add('a', { ann: { [K]: 'k' } });
    c.add('b', { ann: { [K]: 'k' }, ports: ['TCP/443'] });
    expect(c.delete('default/a')).toBe(true);
    expect(c.allocator.counters('p')!.assignedIPv4).toBe(1n);
    expect(c.add('c', { ports: ['TCP/1'] }).ips).toEqual(['192.0.2.1']);
    expect(c.delete('default/b')).toBe(true);
    expect(c.allocator.counters('p')!.assignedIPv4).toBe(1n);
    expect(c.add('d', { ports: ['TCP/1'] }).ips).toEqual(['192.0.2.0']);
  });
});

// ---------------------------------------------------------------------------------------------
describe('c.8 start-up: keeping current IPs (convergeAll)', () => {
  const DEFS: PoolDefs = { p: { addresses: ['192.0.2.0/30', '2001:db8:1::/126'] } };
  const fresh = () => svc('fresh');
  const one = () => svc('one', { status: ['192.0.2.1'] });
  const two = () =>
    svc('two', { family: 'dual', policy: 'RequireDualStack', status: ['192.0.2.2', '2001:db8:1::2'] });

  it.each([
    ['fresh, one, two', () => [fresh(), one(), two()]],
    ['two, one, fresh', () => [two(), one(), fresh()]],
    ['one, fresh, two', () => [one(), fresh(), two()]],
  ])('a new Service cannot steal an existing IP (input order %s)', (_t, input) => {
    const res = convergeAll(pools(DEFS), input());
    const byName = new Map(res.outcomes.map((o) => [o.key, o.ips]));
    expect(byName.get('default/fresh')).toEqual(['192.0.2.0']);
    expect(byName.get('default/one')).toEqual(['192.0.2.1']);
    expect(byName.get('default/two')).toEqual(['192.0.2.2', '2001:db8:1::2']);
    expect(res.passes).toBe(1);
    expect(res.pools).toEqual([
      { name: 'p', assignedIPv4: 3n, availableIPv4: 1n, assignedIPv6: 1n, availableIPv6: 3n },
    ]);
  });

  it('a Service with two IPs is re-asserted before one with one IP claiming the same address', () => {
    const single = svc('single', { status: ['192.0.2.2'] });
    const res = convergeAll(pools(DEFS), [single, fresh(), two()]);
    // Order of work: two (2 IPs), single (1 IP, loses .2 → lowest free .0), fresh (→ .1).
    expect(res.outcomes.map((o) => o.ips)).toEqual([
      ['192.0.2.0'],
      ['192.0.2.1'],
      ['192.0.2.2', '2001:db8:1::2'],
    ]);
    // The loser lost an IP still inside a pool → reprocessAll → a second pass.
    expect(res.passes).toBe(2);
  });

  it('the loser gets ClearAssignment and reprocessAll (step-by-step)', () => {
    const c = new Cluster(pools(DEFS));
    c.apply(
      svcObj('two', { family: 'dual', policy: 'RequireDualStack', status: ['192.0.2.2', '2001:db8:1::2'] }),
    );
    const out = c.apply(svcObj('single', { status: ['192.0.2.2'] }));
    expect(reasons(out)).toEqual(['ClearAssignment', 'IPAllocated']);
    expect(out.ips).toEqual(['192.0.2.0']);
    expect(out.result).toBe('reprocessAll');
  });

  it.each<{ title: string; defs: PoolDefs; o: SvcOpts; ips: string[]; result: string }>([
    {
      title: 'current IP outside every pool → ClearAssignment, new IP, no reprocess',
      defs: DEFS,
      o: { status: ['198.51.100.7'] },
      ips: ['192.0.2.0'],
      result: 'ok',
    },
    {
      title: 'current IP in a pool now incompatible → ClearAssignment, reprocessAll',
      defs: { team: { addresses: ['203.0.113.0/30'], serviceAllocation: { namespaces: ['x'] } }, ...DEFS },
      o: { status: ['203.0.113.1'] },
      ips: ['192.0.2.0'],
      result: 'reprocessAll',
    },
    {
      title: 'current IPs spanning two pools → ClearAssignment',
      defs: { ...DEFS, q: { addresses: ['2001:db8:2::/126'] } },
      o: { family: 'dual', policy: 'RequireDualStack', status: ['192.0.2.1', '2001:db8:2::1'] },
      ips: ['192.0.2.0', '2001:db8:1::'],
      result: 'reprocessAll',
    },
  ])('$title', ({ defs, o, ips, result }) => {
    const { out } = once(defs, 's', o);
    expect(reasons(out)).toEqual(['ClearAssignment', 'IPAllocated']);
    expect(out.ips).toEqual(ips);
    expect(out.result).toBe(result);
  });

  it('valid current IPs are re-asserted silently; pool annotation written once', () => {
    const c = new Cluster(pools(DEFS));
    const out = c.apply(svcObj('s', { status: ['192.0.2.3'] }));
    expect(out.events).toEqual([]);
    expect(out.ips).toEqual(['192.0.2.3']);
    expect(out.changed).toBe(true); // pool annotation was missing
    expect(c.pool('default/s')).toBe('p');
    expect(c.converge('default/s').changed).toBe(false);
  });

  it('configuration never loaded → Service left untouched', () => {
    const core = new AllocationCore();
    const out = core.converge(svc('s', { status: ['192.0.2.3'] }));
    expect(out).toMatchObject({ ips: ['192.0.2.3'], result: 'ok', changed: false, events: [] });
    expect(core.allocator.allocation('default/s')).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
describe('c.7 configuration changes', () => {
  it('pool rename keeps the IP, moves the allocation and updates the pool annotation', () => {
    const c = new Cluster(pools({ old: { addresses: ['192.0.2.0/28'] } }));
    c.add('s');
    expect(c.setPools(pools({ renamed: { addresses: ['192.0.2.0/28'] } }))).toEqual([]);
    expect(c.allocator.allocation('default/s')!.pool).toBe('renamed');
    expect(c.allocator.counters('renamed')!.assignedIPv4).toBe(1n);
    expect(c.allocator.counters('old')).toBeUndefined();
    const out = c.converge('default/s');
    expect(out).toMatchObject({ ips: ['192.0.2.0'], pool: 'renamed', changed: true, events: [] });
    expect(c.pool('default/s')).toBe('renamed');
  });

  it('pool split keeps each IP in its new owner', () => {
    const c = new Cluster(pools({ a: { addresses: ['192.0.2.0/28'] } }));
    c.add('low');
    c.apply(svcObj('high', { status: ['192.0.2.9'] }));
    c.setPools(pools({ a: { addresses: ['192.0.2.0/29'] }, b: { addresses: ['192.0.2.8/29'] } }));
    expect(c.converge('default/high')).toMatchObject({ ips: ['192.0.2.9'], pool: 'b' });
    expect(c.converge('default/low')).toMatchObject({ ips: ['192.0.2.0'], pool: 'a' });
  });

  it('shrink releases the IP left outside; the Service is re-allocated', () => {
    const c = new Cluster(pools({ a: { addresses: ['192.0.2.0/28'] } }));
    c.add('low');
    c.apply(svcObj('high', { status: ['192.0.2.9'] }));
    expect(c.setPools(pools({ a: { addresses: ['192.0.2.0/29'] } }))).toEqual(['default/high']);
    expect(c.allocator.counters('a')!.assignedIPv4).toBe(1n);
    const out = c.converge('default/high');
    expect(reasons(out)).toEqual(['ClearAssignment', 'IPAllocated']);
    expect(out.ips).toEqual(['192.0.2.1']);
  });

  it('pool deleted → released, re-allocated from what is left; or AllocationFailed when nothing is', () => {
    const c = new Cluster(
      pools({ a: { addresses: ['192.0.2.0/31'] }, b: { addresses: ['203.0.113.0/32'] } }),
    );
    c.add('s1');
    c.add('s2');
    c.add('s3');
    expect(c.ips('default/s3')).toEqual(['203.0.113.0']);
    expect(c.setPools(pools({ a: { addresses: ['192.0.2.0/31'] } }))).toEqual(['default/s3']);
    const out = c.converge('default/s3');
    expect(reasons(out)).toEqual(['ClearAssignment', 'AllocationFailed']);
    expect(out).toMatchObject({ ips: [], pool: null, changed: true });
  });

  it('all pools deleted → every status cleared', () => {
    const c = new Cluster(pools({ a: { addresses: ['192.0.2.0/30'] } }));
    c.add('s1');
    c.add('s2', { lbIP: '192.0.2.3' });
    expect(c.setPools(new Map()).sort()).toEqual(['default/s1', 'default/s2']);
    for (const out of c.reprocessAll().values()) {
      expect(out).toMatchObject({ ips: [], pool: null, result: 'error', changed: true });
    }
    expect(c.ips('default/s1')).toEqual([]);
    expect(c.pool('default/s1')).toBeUndefined();
  });

  it('no moving to "better" pools when priorities or new pools appear', () => {
    const c = new Cluster(pools({ plain: { addresses: ['192.0.2.0/30'] } }));
    c.add('s1');
    const next = pools({
      plain: { addresses: ['192.0.2.0/30'] },
      vip: { addresses: ['203.0.113.0/30'], serviceAllocation: { priority: 1 } },
    });
    expect(c.setPools(next)).toEqual([]);
    expect(c.converge('default/s1')).toMatchObject({ ips: ['192.0.2.0'], pool: 'plain', changed: false });
    expect(c.add('s2').pool).toBe('vip');
  });

  it('pool becoming incompatible → ClearAssignment on reprocess, reallocated elsewhere', () => {
    const c = new Cluster(
      pools({ a: { addresses: ['192.0.2.0/30'] }, b: { addresses: ['203.0.113.0/30'] } }),
    );
    c.add('s');
    c.setPools(
      pools({
        a: { addresses: ['192.0.2.0/30'], serviceAllocation: { namespaces: ['other'] } },
        b: { addresses: ['203.0.113.0/30'] },
      }),
    );
    const out = c.converge('default/s');
    expect(reasons(out)).toEqual(['ClearAssignment', 'IPAllocated']);
    expect(out).toMatchObject({ ips: ['203.0.113.0'], pool: 'b', result: 'reprocessAll' });
  });
});

// ---------------------------------------------------------------------------------------------
describe('c.8 deletion and waiting Services', () => {
  it('delete releases (true → reprocess) and a waiting Service gets the IP on the next pass', () => {
    const c = new Cluster(pools({ p: { addresses: ['192.0.2.7/32'] } }));
    expect(c.add('holder').ips).toEqual(['192.0.2.7']);
    const waiting = c.add('waiting');
    expect(waiting).toMatchObject({ ips: [], result: 'error' });
    expect(reasons(waiting)).toEqual(['AllocationFailed']);
    expect(c.delete('default/waiting')).toBe(false); // held nothing
    c.add('waiting');
    expect(c.delete('default/holder')).toBe(true);
    expect(c.delete('default/holder')).toBe(false);
    const out = c.reprocessAll().get('default/waiting')!;
    expect(out.ips).toEqual(['192.0.2.7']);
    expect(reasons(out)).toEqual(['IPAllocated']);
  });

  it.each(['ClusterIP', 'NodePort', 'ExternalName'])(
    'type %s → released, status and pool annotation cleared',
    (type) => {
      const c = new Cluster(pools({ p: { addresses: ['192.0.2.7/32'] } }));
      c.add('s');
      const out = c.edit('default/s', (o) => (o.spec.type = type));
      expect(out).toMatchObject({ ips: [], pool: null, changed: true, events: [] });
      expect(c.allocator.allocation('default/s')).toBeUndefined();
      expect(c.pool('default/s')).toBeUndefined();
      expect(c.add('other').ips).toEqual(['192.0.2.7']);
      // Never a LoadBalancer: nothing to write.
      expect(once({ p: { addresses: ['192.0.2.7/32'] } }, 'np', { type }).out).toMatchObject({
        changed: false,
        result: 'ok',
      });
    },
  );

  it('no pools at all → cleared, error', () => {
    const c = new Cluster(new Map());
    expect(c.add('s', { status: ['192.0.2.1'] })).toMatchObject({
      ips: [],
      pool: null,
      result: 'error',
      changed: true,
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe('b: LoadBalancerClass filter (classMatches)', () => {
  it.each<[string, string | undefined, boolean]>([
    ['', undefined, true],
    ['', 'example.org/lb', false],
    ['example.org/lb', 'example.org/lb', true],
    ['example.org/lb', undefined, false],
    ['example.org/lb', 'other.example/lb', false],
  ])('--lb-class=%p, Service class %p → %p', (flag, cls, want) => {
    expect(classMatches(svc('s', cls === undefined ? {} : { lbClass: cls }), flag)).toBe(want);
  });
});

// ---------------------------------------------------------------------------------------------
describe('a.1 status counters', () => {
  it.each<{ title: string; addresses: string[]; avoid?: boolean; v4: bigint; v6: bigint }>([
    { title: '/24', addresses: ['192.0.2.0/24'], v4: 256n, v6: 0n },
    {
      title: '/24 avoidBuggyIPs (≤/24: 2 per /24)',
      addresses: ['192.0.2.0/24'],
      avoid: true,
      v4: 254n,
      v6: 0n,
    },
    {
      title: 'three /24s avoidBuggyIPs',
      addresses: ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24'],
      avoid: true,
      v4: 762n,
      v6: 0n,
    },
    {
      title: '/25 at .0 avoidBuggyIPs (first .0)',
      addresses: ['192.0.2.0/25'],
      avoid: true,
      v4: 127n,
      v6: 0n,
    },
    {
      title: '/25 at .128 avoidBuggyIPs (last .255)',
      addresses: ['192.0.2.128/25'],
      avoid: true,
      v4: 127n,
      v6: 0n,
    },
    { title: '/26 in the middle avoidBuggyIPs', addresses: ['192.0.2.64/26'], avoid: true, v4: 64n, v6: 0n },
    { title: '/32 .0 avoidBuggyIPs', addresses: ['192.0.2.0/32'], avoid: true, v4: 0n, v6: 0n },
    { title: '/32 .255 avoidBuggyIPs', addresses: ['192.0.2.255/32'], avoid: true, v4: 0n, v6: 0n },
    { title: '/31 .254 avoidBuggyIPs', addresses: ['192.0.2.254/31'], avoid: true, v4: 1n, v6: 0n },
    { title: '/32 .0 without flag', addresses: ['192.0.2.0/32'], v4: 1n, v6: 0n },
    { title: 'range summarised', addresses: ['192.0.2.1-192.0.2.6'], v4: 6n, v6: 0n },
    {
      title: 'range covering a /24, avoidBuggyIPs',
      addresses: ['192.0.2.0-192.0.2.255'],
      avoid: true,
      v4: 254n,
      v6: 0n,
    },
    {
      title: 'range up to .255, avoidBuggyIPs',
      addresses: ['192.0.2.250-192.0.2.255'],
      avoid: true,
      v4: 5n,
      v6: 0n,
    },
    { title: 'IPv6 /120', addresses: ['2001:db8::/120'], v4: 0n, v6: 256n },
    {
      title: 'IPv6 /120 avoidBuggyIPs: no effect',
      addresses: ['2001:db8::/120'],
      avoid: true,
      v4: 0n,
      v6: 256n,
    },
    { title: 'IPv6 /67 (61 host bits)', addresses: ['2001:db8::/67'], v4: 0n, v6: 1n << 61n },
    { title: 'two IPv6 /67', addresses: ['2001:db8::/67', '2001:db8:0:0:2000::/67'], v4: 0n, v6: 1n << 62n },
    { title: 'IPv6 /66 (62 host bits) → 2^63−1', addresses: ['2001:db8::/66'], v4: 0n, v6: INT64_MAX },
    { title: 'IPv6 /64 → 2^63−1', addresses: ['2001:db8::/64'], v4: 0n, v6: INT64_MAX },
    {
      title: '/64 then /67 saturates',
      addresses: ['2001:db8::/64', '2001:db8:1::/67'],
      v4: 0n,
      v6: INT64_MAX,
    },
    {
      title: '/67 then /64 saturates',
      addresses: ['2001:db8:1::/67', '2001:db8::/64'],
      v4: 0n,
      v6: INT64_MAX,
    },
    { title: 'two /64 saturate', addresses: ['2001:db8::/64', '2001:db8:1::/64'], v4: 0n, v6: INT64_MAX },
    { title: 'dual pool', addresses: ['192.0.2.0/28', '2001:db8::/124'], avoid: true, v4: 15n, v6: 16n },
  ])('$title', ({ addresses, avoid, v4, v6 }) => {
    const a = new Allocator();
    a.setPools(pools({ p: { addresses, avoidBuggyIPs: avoid ?? false } }));
    expect(a.counters('p')).toEqual({
      assignedIPv4: 0n,
      availableIPv4: v4,
      assignedIPv6: 0n,
      availableIPv6: v6,
    });
  });

  it('assigned/available per family, shared IP counted once, saturated IPv6 minus assigned', () => {
    const c = new Cluster(
      pools({ p: { addresses: ['192.0.2.0/24', '2001:db8::/64'], avoidBuggyIPs: true } }),
    );
    const K = { 'metallb.io/allow-shared-ip': 'k' };
    c.add('a', { ann: K, ports: ['TCP/80'] });
    c.add('b', { ann: K, ports: ['TCP/443'] });
    c.add('c', { family: 'dual', policy: 'RequireDualStack' });
    expect(c.ips('default/a')).toEqual(['192.0.2.1']);
    expect(c.ips('default/b')).toEqual(['192.0.2.1']);
    expect(c.ips('default/c')).toEqual(['192.0.2.2', '2001:db8::']);
    expect(c.allocator.counters('p')).toEqual({
      assignedIPv4: 2n,
      availableIPv4: 252n,
      assignedIPv6: 1n,
      availableIPv6: INT64_MAX - 1n,
    });
    const res = convergeAll(
      pools({ p: { addresses: ['192.0.2.0/24', '2001:db8::/64'], avoidBuggyIPs: true } }),
      ['a', 'b', 'c'].map((n) => serviceInfoFrom(c.object(`default/${n}`))),
    );
    expect(res.pools).toEqual([{ name: 'p', ...c.allocator.counters('p')! }]);
  });
});

// ---------------------------------------------------------------------------------------------
describe('a.1 IPAddressPool addresses and validation (through ConfigParser)', () => {
  it('host bits are normalised: 192.0.2.5/24 means 192.0.2.0/24', () => {
    const c = new Cluster(pools({ p: { addresses: ['192.0.2.5/24'] } }));
    expect(c.add('s').ips).toEqual(['192.0.2.0']);
    expect(c.allocator.counters('p')!.availableIPv4).toBe(255n);
  });

  it('ranges (whitespace trimmed) are summarised and scanned in ascending order', () => {
    expect(parseAddressEntry(' 192.0.2.1 -  192.0.2.6 ')).toEqual(parseAddressEntry('192.0.2.1-192.0.2.6'));
    const c = new Cluster(pools({ p: { addresses: ['192.0.2.10 - 192.0.2.12'] } }));
    expect(['a', 'b', 'c', 'd'].map((n) => c.add(n).ips[0] ?? null)).toEqual([
      '192.0.2.10',
      '192.0.2.11',
      '192.0.2.12',
      null,
    ]);
  });

  it('CIDRs are walked in spec.addresses order, not numeric order', () => {
    const c = new Cluster(pools({ p: { addresses: ['203.0.113.0/31', '192.0.2.0/31'] } }));
    expect(['a', 'b', 'c'].map((n) => c.add(n).ips[0])).toEqual(['203.0.113.0', '203.0.113.1', '192.0.2.0']);
  });

  it.each<{ title: string; defs: PoolDefs; path?: RegExp }>([
    { title: 'empty address list', defs: { p: { addresses: [] } }, path: /addresses/ },
    { title: 'unparsable CIDR', defs: { p: { addresses: ['192.0.2.0/33'] } }, path: /addresses/ },
    { title: 'neither CIDR nor range', defs: { p: { addresses: ['banana'] } }, path: /addresses/ },
    { title: 'range with bad start', defs: { p: { addresses: ['192.0.2.x-192.0.2.5'] } }, path: /addresses/ },
    { title: 'range with bad end', defs: { p: { addresses: ['192.0.2.1-192.0.2.y'] } }, path: /addresses/ },
    {
      title: 'range start after end',
      defs: { p: { addresses: ['192.0.2.9-192.0.2.1'] } },
      path: /addresses/,
    },
    {
      title: '[quirk] mixed-family range rejected',
      defs: { p: { addresses: ['192.0.2.1-2001:db8::1'] } },
      path: /addresses/,
    },
    {
      title: 'overlap inside one pool',
      defs: { p: { addresses: ['192.0.2.0/24', '192.0.2.128/25'] } },
      path: /addresses/,
    },
    {
      title: 'overlap of a range and a CIDR in one pool',
      defs: { p: { addresses: ['192.0.2.0/30', '192.0.2.3-192.0.2.9'] } },
    },
    {
      title: 'overlap across pools',
      defs: { a: { addresses: ['2001:db8::/64'] }, b: { addresses: ['2001:db8::8/125'] } },
      path: /addresses/,
    },
    {
      title: 'duplicate namespace',
      defs: { p: { addresses: ['192.0.2.0/30'], serviceAllocation: { namespaces: ['a', 'a'] } } },
      path: /namespaces/,
    },
    {
      title: 'duplicate namespaceSelectors',
      defs: {
        p: {
          addresses: ['192.0.2.0/30'],
          serviceAllocation: {
            namespaceSelectors: [{ matchLabels: { a: 'b' } }, { matchLabels: { a: 'b' } }],
          },
        },
      },
      path: /namespaceSelectors/,
    },
    {
      title: 'duplicate match expressions',
      defs: {
        p: {
          addresses: ['192.0.2.0/30'],
          serviceAllocation: {
            namespaceSelectors: [
              {
                matchExpressions: [
                  { key: 'a', operator: 'In', values: ['x'] },
                  { key: 'a', operator: 'In', values: ['x'] },
                ],
              },
            ],
          },
        },
      },
      path: /namespaceSelectors/,
    },
    {
      title: 'duplicate values in one expression',
      defs: {
        p: {
          addresses: ['192.0.2.0/30'],
          serviceAllocation: {
            serviceSelectors: [{ matchExpressions: [{ key: 'a', operator: 'In', values: ['x', 'x'] }] }],
          },
        },
      },
      path: /serviceSelectors/,
    },
    {
      title: 'invalid operator',
      defs: {
        p: {
          addresses: ['192.0.2.0/30'],
          serviceAllocation: {
            serviceSelectors: [{ matchExpressions: [{ key: 'a', operator: 'Near', values: ['x'] }] }],
          },
        },
      },
      path: /serviceSelectors/,
    },
    {
      title: 'duplicate serviceSelectors',
      defs: {
        p: {
          addresses: ['192.0.2.0/30'],
          serviceAllocation: { serviceSelectors: [{ matchLabels: { a: 'b' } }, { matchLabels: { a: 'b' } }] },
        },
      },
      path: /serviceSelectors/,
    },
  ])('invalid: $title', ({ defs, path }) => {
    const r = tryPools(defs);
    expect(r.pools).toBeUndefined();
    expect(r.problems.length).toBeGreaterThan(0);
    expect(r.problems.every((p) => p.kind === 'IPAddressPool')).toBe(true);
    if (path) expect(r.problems.some((p) => path.test(p.path))).toBe(true);
  });

  it('adjacent but non-overlapping CIDRs and ranges are fine', () => {
    expect(
      tryPools({
        a: { addresses: ['192.0.2.0/25', '192.0.2.128-192.0.2.130'] },
        b: { addresses: ['192.0.2.131/32'] },
      }).problems,
    ).toEqual([]);
  });

  it('namespaceSelectors are unioned with namespaces', () => {
    const p = pools(
      {
        p: {
          addresses: ['192.0.2.0/30'],
          serviceAllocation: {
            namespaces: ['listed'],
            namespaceSelectors: [{ matchLabels: { team: 'red' } }],
          },
        },
      },
      { red1: { team: 'red' }, red2: { team: 'red' }, blue: { team: 'blue' }, listed: {} },
    );
    expect([...p.get('p')!.serviceAllocation!.namespaces].sort()).toEqual(['listed', 'red1', 'red2']);
  });
});

// ---------------------------------------------------------------------------------------------
describe('determinism', () => {
  const DEFS: PoolDefs = {
    a: { addresses: ['192.0.2.0/29', '2001:db8:1::/125'], avoidBuggyIPs: true },
    b: { addresses: ['203.0.113.0/30'], serviceAllocation: { priority: 2, namespaces: ['team'] } },
    c: { addresses: ['198.51.100.0/30'], autoAssign: false },
  };
  const K = 'metallb.io/allow-shared-ip';
  const input = (): ServiceInfo[] => [
    svc('n1'),
    svc('t1', { ns: 'team' }),
    svc('d1', { family: 'dual', policy: 'PreferDualStack', ann: { [K]: 'x' } }),
    svc('d2', { family: 'dual6', policy: 'RequireDualStack', ann: { [K]: 'x' }, ports: ['UDP/53'] }),
    svc('old', { status: ['192.0.2.5'] }),
    svc('m', { ann: { 'metallb.io/address-pool': 'c' } }),
    svc('bad', { lbIP: '203.0.113.1' }),
    svc('req', { lbIP: '198.51.100.3' }),
  ];

  it('same input twice → identical output', () => {
    const r1 = convergeAll(pools(DEFS), input());
    const r2 = convergeAll(pools(DEFS), input());
    expect(r2).toEqual(r1);
    expect(r1.outcomes.map((o) => [o.key, o.ips])).toEqual([
      ['default/n1', ['192.0.2.1']],
      ['team/t1', ['203.0.113.0']],
      ['default/d1', ['192.0.2.2', '2001:db8:1::']],
      ['default/d2', ['192.0.2.2', '2001:db8:1::']],
      ['default/old', ['192.0.2.5']],
      ['default/m', ['198.51.100.0']],
      ['default/bad', []],
      ['default/req', ['198.51.100.3']],
    ]);
  });

  it('an allocator fed the same operations ends in the same state', () => {
    const run = () => {
      const c = new Cluster(pools(DEFS));
      for (const s of ['x', 'y', 'z']) c.add(s);
      c.delete('default/y');
      c.add('w');
      return ['x', 'z', 'w'].map((n) => c.ips(`default/${n}`));
    };
    expect(run()).toEqual(run());
  });
});

// ---------------------------------------------------------------------------------------------
describe('property: random allocate/assign/release sequences keep the allocator consistent', () => {
  const variant = (avoid: boolean) =>
    pools({
      p1: { addresses: ['192.0.2.0/29'], avoidBuggyIPs: avoid },
      p2: { addresses: ['203.0.113.254/31', '2001:db8:1::/126'], avoidBuggyIPs: avoid },
      p3: { addresses: ['198.51.100.0/30', '2001:db8:2::/127'], autoAssign: false },
    });
  const VARIANTS = [variant(false), variant(true)];
  const CANDIDATES = [
    ...[0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => `192.0.2.${i}`),
    '203.0.113.254',
    '203.0.113.255',
    ...[0, 1, 2, 3].map((i) => `2001:db8:1::${i}`),
    '198.51.100.0',
    '198.51.100.3',
    '2001:db8:2::1',
    '2001:db8:3::1',
  ].map(ip);
  const PORTS = [
    { protocol: 'TCP', port: 80 },
    { protocol: 'UDP', port: 80 },
    { protocol: 'TCP', port: 443 },
  ];

  const reqArb = fc.record({
    svc: fc.integer({ min: 0, max: 5 }),
    sharingKey: fc.constantFrom('', 'k1', 'k2'),
    backendKey: fc.constantFrom('', 'app=x'),
    ports: fc.subarray(PORTS),
  });
  const poolArb = fc.option(fc.constantFrom('p1', 'p2', 'p3', 'nope'), { nil: undefined });
  const opArb = fc.oneof(
    fc.record({
      op: fc.constant('allocate' as const),
      req: reqArb,
      fam: fc.constantFrom<4 | 6 | 'dual'>(4, 6, 'dual'),
      policy: fc.constantFrom<'SingleStack' | 'PreferDualStack' | 'RequireDualStack'>(
        'SingleStack',
        'PreferDualStack',
        'RequireDualStack',
      ),
      primary: fc.constantFrom<4 | 6>(4, 6),
      pool: poolArb,
    }),
    fc.record({
      op: fc.constant('assign' as const),
      req: reqArb,
      ips: fc.array(fc.integer({ min: 0, max: CANDIDATES.length - 1 }), { minLength: 1, maxLength: 2 }),
      pool: poolArb,
    }),
    fc.record({ op: fc.constant('release' as const), svc: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ op: fc.constant('additional' as const), svc: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ op: fc.constant('setPools' as const), variant: fc.integer({ min: 0, max: 1 }) }),
  );

  const toReq = (r: {
    svc: number;
    sharingKey: string;
    backendKey: string;
    ports: typeof PORTS;
  }): AllocRequest => ({
    key: `default/s${r.svc}`,
    namespace: 'default',
    labels: {},
    ports: r.ports,
    sharingKey: r.sharingKey,
    backendKey: r.backendKey,
  });

  /** Usable addresses of a pool, counted one by one (pools here are tiny). */
  function recountUsable(p: Pool): { 4: bigint; 6: bigint } {
    const out = { 4: 0n, 6: 0n };
    for (const c of p.cidrs) {
      const size = 1n << BigInt((c.family === 4 ? 32 : 128) - c.length);
      for (let v = c.base; v < c.base + size; v++) {
        if (!(p.avoidBuggyIPs && c.family === 4 && isBuggyV4(v))) out[c.family]++;
      }
    }
    return out;
  }

  function check(a: Allocator, cfg: ReadonlyMap<string, Pool>): void {
    expect(a.checkInvariants()).toEqual([]);
    const keys = [0, 1, 2, 3, 4, 5].map((i) => `default/s${i}`);
    const holders = new Map<string, string[]>();
    const assigned = new Map<string, Set<string>>();
    for (const k of keys) {
      const al = a.allocation(k);
      if (!al) continue;
      expect(al.ips.length).toBeGreaterThan(0);
      expect(al.ips.length).toBeLessThanOrEqual(2);
      if (al.ips.length === 2) expect(al.ips[0]!.family).not.toBe(al.ips[1]!.family);
      // Every IP lies inside its pool (a.1: buggy addresses are outside when avoidBuggyIPs).
      expect(a.poolNameOf(al.ips)).toBe(al.pool);
      for (const x of al.ips) {
        expect(cfg.get(al.pool)!.cidrs.some((c) => prefixContains(c, x))).toBe(true);
        const t = formatIP(x);
        holders.set(t, [...(holders.get(t) ?? []), k]);
        const set = assigned.get(al.pool) ?? new Set<string>();
        set.add(`${x.family}|${t}`);
        assigned.set(al.pool, set);
      }
    }
    // c.5: an IP is held by several Services only if they may share it.
    for (const [, hs] of holders) {
      for (let i = 0; i < hs.length; i++) {
        for (let j = i + 1; j < hs.length; j++) {
          const x = a.allocation(hs[i]!)!;
          const y = a.allocation(hs[j]!)!;
          expect(x.sharingKey).not.toBe('');
          expect(x.sharingKey).toBe(y.sharingKey);
          expect(x.backendKey).toBe(y.backendKey);
          for (const p of x.ports) {
            expect(y.ports.some((q) => q.port === p.port && q.protocol === p.protocol)).toBe(false);
          }
        }
      }
    }
    // a.1 counters equal a recount.
    for (const [name, p] of cfg) {
      const used = [...(assigned.get(name) ?? [])];
      const a4 = BigInt(used.filter((u) => u.startsWith('4|')).length);
      const a6 = BigInt(used.filter((u) => u.startsWith('6|')).length);
      const usable = recountUsable(p);
      expect(a.counters(name)).toEqual({
        assignedIPv4: a4,
        assignedIPv6: a6,
        availableIPv4: usable[4] - a4,
        availableIPv6: usable[6] - a6,
      });
    }
  }

  it('checkInvariants() stays empty, no unshareable double use, counters match a recount', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1 }), fc.array(opArb, { maxLength: 40 }), (start, ops) => {
        const a = new Allocator();
        let cfg = VARIANTS[start]!;
        a.setPools(cfg);
        for (const o of ops) {
          switch (o.op) {
            case 'allocate': {
              const r = a.allocate(toReq(o.req), o.fam, o.policy, o.primary, o.pool);
              if (r.ok) {
                expect(a.allocation(toReq(o.req).key)).toEqual(r.value);
                const fams = r.value.ips.map((x) => x.family);
                if (o.fam !== 'dual') expect(fams).toEqual([o.fam]);
                else if (o.policy === 'PreferDualStack') expect([[4, 6], [4], [6]]).toContainEqual(fams);
                else expect(fams).toEqual([4, 6]);
                // autoAssign:false pools are only used when named.
                if (o.pool === undefined) expect(r.value.pool).not.toBe('p3');
                else expect(r.value.pool).toBe(o.pool);
              }
              break;
            }
            case 'assign': {
              const ips = o.ips.map((i) => CANDIDATES[i]!);
              const r = a.assign(toReq(o.req), ips, o.pool);
              if (r.ok) expect(r.value.ips).toEqual(ips);
              break;
            }
            case 'release':
              a.release(`default/s${o.svc}`);
              expect(a.allocation(`default/s${o.svc}`)).toBeUndefined();
              break;
            case 'additional': {
              const key = `default/s${o.svc}`;
              const cur = a.allocation(key);
              if (!cur || cur.ips.length !== 1) break;
              const req: AllocRequest = {
                key,
                namespace: 'default',
                labels: {},
                ports: cur.ports,
                sharingKey: cur.sharingKey,
                backendKey: cur.backendKey,
              };
              const other = cur.ips[0]!.family === 4 ? 6 : 4;
              const r = a.allocateAdditional(req, other);
              if (r.ok) {
                expect(r.value.ips[0]).toEqual(cur.ips[0]);
                expect(r.value.ips[1]!.family).toBe(other);
                expect(r.value.pool).toBe(cur.pool);
              } else expect(a.allocation(key)).toEqual(cur);
              break;
            }
            case 'setPools':
              cfg = VARIANTS[o.variant]!;
              for (const k of a.setPools(cfg)) expect(a.allocation(k)).toBeUndefined();
              break;
          }
          check(a, cfg);
        }
      }),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
describe('spec deviations found in src/ (expected to fail until fixed)', () => {
  it('c.2 step 11 + b spec.type: a Service that held an IP and stops being a LoadBalancer → reprocessAll', () => {
    const c = new Cluster(pools({ p: { addresses: ['192.0.2.7/32'] } }));
    expect(c.add('holder').ips).toEqual(['192.0.2.7']);
    expect(c.add('waiting').ips).toEqual([]);
    const out = c.edit('default/holder', (o) => (o.spec.type = 'ClusterIP'));
    expect(out.ips).toEqual([]);
    // The freed IP is still inside a pool: the waiting Service must be reprocessed (c.2 step 11,
    // as for deletion in c.8). Otherwise it stays without IP until an unrelated event.
    expect(out.result).toBe('reprocessAll');
  });

  it('c.2 steps 6 + 11: an IP dropped because its family no longer matches → reprocessAll', () => {
    const c = new Cluster(
      pools({
        a4: { addresses: ['192.0.2.10/32'] },
        d: { addresses: ['203.0.113.0/30', '2001:db8:1::/126'] },
      }),
    );
    const s = c.apply(svcObj('s', { family: 'dual', policy: 'PreferDualStack', status: ['192.0.2.10'] }));
    expect(s.ips).toEqual(['192.0.2.10']);
    const w = c.add('w', { ann: { 'metallb.io/address-pool': 'a4' } });
    expect(w.ips).toEqual([]);
    const out = c.edit('default/s', (o) => (o.spec.ipFamilyPolicy = 'RequireDualStack'));
    expect(out.ips).toEqual(['203.0.113.0', '2001:db8:1::']);
    expect(c.allocator.counters('a4')!.assignedIPv4).toBe(0n);
    // 192.0.2.10 was lost and is still inside pool a4, where w is waiting.
    expect(out.result).toBe('reprocessAll');
  });
});
