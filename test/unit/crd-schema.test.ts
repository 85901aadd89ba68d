import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  CrdSchemas,
  findPackageRoot,
  formatProblems,
  parseGoDuration,
  type SchemaValidation,
} from '../../src/config/schema.js';

const root = findPackageRoot();
const schemas = CrdSchemas.load();

type Json = Record<string, unknown>;

function obj(kind: string, version: string, body: Json): Json {
  return {
    apiVersion: `metallb.io/${version}`,
    kind,
    metadata: { name: 'test', namespace: 'metallb-system', labels: { a: 'b' }, uid: 'u-1' },
    ...body,
  };
}

function run(kind: string, version: string, body: Json, old?: Json): SchemaValidation {
  const o = obj(kind, version, body);
  return schemas.validate(kind, `metallb.io/${version}`, o, old ? { old: obj(kind, version, old) } : {});
}

/** Problems as `path: reason` lines. */
function problems(kind: string, version: string, body: Json, old?: Json): string[] {
  return run(kind, version, body, old).problems.map((p) => `${p.path}: ${p.reason}`);
}

/** The defaulted spec. */
function defaulted(kind: string, version: string, spec: Json): Json {
  const r = run(kind, version, { spec });
  expect(r.problems).toEqual([]);
  return (r.value as Json).spec as Json;
}

const pool = (spec: Json = {}): Json => ({ spec: { addresses: ['192.0.2.0/28'], ...spec } });
const peer = (spec: Json = {}): Json => ({
  spec: { myASN: 64500, peerASN: 64501, peerAddress: '192.0.2.1', ...spec },
});
const sel = {
  matchLabels: { 'kubernetes.io/os': 'linux' },
  matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }],
};

describe('type generation', () => {
  // The generator runs in a child process (its output is not written anywhere): prettier's
  // dynamic imports are unreliable inside jest's experimental ESM VM.
  let generated = '';
  beforeAll(() => {
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    generated = execFileSync(process.execPath, [join(root, 'scripts', 'gen-crd-types.mjs'), '--stdout'], {
      cwd: root,
      env,
      encoding: 'utf8',
    });
  });

  it('the committed crd-types.generated.ts is what the YAML generates', () => {
    const committed = readFileSync(join(root, 'src', 'config', 'crd-types.generated.ts'), 'utf8');
    // On failure run `npm run gen:types` and commit the result.
    expect(committed).toBe(generated);
  });

  it('emits every documented type name', () => {
    const text = generated;
    const names = [
      'IPAddressPool',
      'L2Advertisement',
      'BGPAdvertisement',
      'BGPPeer',
      'BGPPeerV1beta1',
      'Community',
      'BFDProfile',
      'ServiceL2Status',
      'ServiceBGPStatus',
      'ConfigurationState',
    ];
    for (const name of names) {
      expect(text).toMatch(new RegExp(`^export interface ${name} \\{`, 'm'));
      expect(text).toMatch(new RegExp(`^export (interface|type) ${name}Spec\\b`, 'm'));
    }
    expect(text).toMatch(/^export interface LabelSelector \{/m);
    expect(text.startsWith('/**\n * GENERATED FILE, DO NOT EDIT.')).toBe(true);
  });
});

describe('CRD documents', () => {
  const kinds = [
    'BFDProfile',
    'BGPAdvertisement',
    'BGPPeer',
    'Community',
    'ConfigurationState',
    'IPAddressPool',
    'L2Advertisement',
    'ServiceBGPStatus',
    'ServiceL2Status',
  ];

  it('defines the nine metallb.io kinds', () => {
    expect(schemas.kinds()).toEqual(kinds);
  });

  it('follows the rules common to all kinds (a.0)', () => {
    for (const doc of schemas.documents()) {
      const spec = doc.spec as Json;
      const names = spec.names as Json;
      expect(doc.apiVersion).toBe('apiextensions.k8s.io/v1');
      expect((doc.metadata as Json).name).toBe(`${String(names.plural)}.metallb.io`);
      expect(spec.group).toBe('metallb.io');
      expect(spec.scope).toBe('Namespaced');
      expect(names.shortNames).toBeUndefined();
      expect(names.categories).toBeUndefined();
      for (const v of spec.versions as Json[]) {
        expect(v.served).toBe(true);
        expect(v.subresources).toEqual({ status: {} });
      }
    }
  });

  it('serves only v1beta1 except BGPPeer', () => {
    for (const kind of kinds) {
      const info = schemas.crd(kind)!;
      if (kind === 'BGPPeer') {
        expect(schemas.versions(kind)).toEqual(['v1beta1', 'v1beta2']);
        expect(info.storageVersion).toBe('v1beta2');
        expect(info.versions.find((v) => v.name === 'v1beta1')?.deprecated).toBe(true);
        expect(info.versions.find((v) => v.name === 'v1beta2')?.deprecated).toBe(false);
      } else {
        expect(schemas.versions(kind)).toEqual(['v1beta1']);
        expect(info.storageVersion).toBe('v1beta1');
      }
    }
  });

  it('converts BGPPeer through the webhook at /convert', () => {
    const doc = schemas
      .documents()
      .find((d) => (d.spec as Json).names && ((d.spec as Json).names as Json).kind === 'BGPPeer')!;
    expect((doc.spec as Json).conversion).toEqual({
      strategy: 'Webhook',
      webhook: {
        clientConfig: {
          service: { name: 'metallb-webhook-service', namespace: 'metallb-system', path: '/convert' },
        },
        conversionReviewVersions: ['v1'],
      },
    });
    for (const d of schemas.documents()) {
      if (d !== doc && ((d.spec as Json).names as Json).kind !== 'BGPPeer') {
        expect((d.spec as Json).conversion).toBeUndefined();
      }
    }
  });

  it('maps plural resource names to kinds', () => {
    expect(schemas.kindForPlural('bgppeers')).toBe('BGPPeer');
    expect(schemas.kindForPlural('servicel2statuses')).toBe('ServiceL2Status');
    expect(schemas.kindForPlural('nope')).toBeUndefined();
  });
});

describe('printer columns', () => {
  const cols = (kind: string, version = 'v1beta1'): string[] =>
    schemas
      .printerColumns(kind, version)
      .map((c) => `${c.name}|${c.jsonPath}|${c.type}${c.priority === undefined ? '' : `|${c.priority}`}`);

  it('IPAddressPool', () => {
    expect(cols('IPAddressPool')).toEqual([
      'Auto Assign|.spec.autoAssign|boolean',
      'Avoid Buggy IPs|.spec.avoidBuggyIPs|boolean',
      'Addresses|.spec.addresses|string',
    ]);
  });

  it('L2Advertisement', () => {
    expect(cols('L2Advertisement')).toEqual([
      'IPAddressPools|.spec.ipAddressPools|string',
      'IPAddressPool Selectors|.spec.ipAddressPoolSelectors|string',
      'Interfaces|.spec.interfaces|string',
      'Node Selectors|.spec.nodeSelectors|string|10',
    ]);
  });

  it('BGPAdvertisement', () => {
    expect(cols('BGPAdvertisement')).toEqual([
      'IPAddressPools|.spec.ipAddressPools|string',
      'IPAddressPool Selectors|.spec.ipAddressPoolSelectors|string',
      'Peers|.spec.peers|string',
      'Node Selectors|.spec.nodeSelectors|string|10',
    ]);
  });

  it('BGPPeer, both versions', () => {
    const expected = [
      'Address|.spec.peerAddress|string',
      'ASN|.spec.peerASN|string',
      'BFD Profile|.spec.bfdProfile|string',
      'Multi Hops|.spec.ebgpMultiHop|string',
    ];
    expect(cols('BGPPeer', 'v1beta2')).toEqual(expected);
    expect(cols('BGPPeer', 'v1beta1')).toEqual(expected);
  });

  it('Community has none', () => {
    expect(cols('Community')).toEqual([]);
  });

  it('BFDProfile', () => {
    expect(cols('BFDProfile')).toEqual([
      'Passive Mode|.spec.passiveMode|boolean',
      'Transmit Interval|.spec.transmitInterval|integer',
      'Receive Interval|.spec.receiveInterval|integer',
      'Multiplier|.spec.detectMultiplier|integer',
    ]);
  });

  it('ServiceL2Status and ServiceBGPStatus', () => {
    expect(cols('ServiceL2Status')).toEqual([
      'Allocated Node|.status.node|string',
      'Service Name|.status.serviceName|string',
      'Service Namespace|.status.serviceNamespace|string',
    ]);
    expect(cols('ServiceBGPStatus')).toEqual([
      'Node|.status.node|string',
      'Service Name|.status.serviceName|string',
      'Service Namespace|.status.serviceNamespace|string',
    ]);
  });

  it('ConfigurationState', () => {
    expect(cols('ConfigurationState')).toEqual([
      'Result|.status.result|string',
      'ErrorSummary|.status.errorSummary|string',
      'Age|.metadata.creationTimestamp|date',
    ]);
  });
});

describe('validate: entry checks', () => {
  it('rejects an unknown kind', () => {
    const r = schemas.validate('Pool', 'metallb.io/v1beta1', {});
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]!.path).toBe('kind');
    expect(r.problems[0]!.reason).toMatch(/^unknown kind "Pool"/);
  });

  it('rejects an unserved version or foreign group', () => {
    expect(
      schemas.validate('IPAddressPool', 'metallb.io/v1beta2', obj('IPAddressPool', 'v1beta2', pool()))
        .problems,
    ).toEqual([
      {
        path: 'apiVersion',
        reason: 'IPAddressPool is not served as metallb.io/v1beta2 (use metallb.io/v1beta1)',
      },
    ]);
    expect(schemas.validate('IPAddressPool', 'example.com/v1beta1', {}).problems[0]!.path).toBe('apiVersion');
  });

  it('accepts a bare version name', () => {
    expect(
      schemas.validate('IPAddressPool', 'v1beta1', obj('IPAddressPool', 'v1beta1', pool())).problems,
    ).toEqual([]);
  });

  it('flags apiVersion/kind in the object that disagree with the arguments', () => {
    const o = {
      ...obj('IPAddressPool', 'v1beta1', pool()),
      kind: 'L2Advertisement',
      apiVersion: 'metallb.io/v1',
    };
    expect(schemas.validate('IPAddressPool', 'metallb.io/v1beta1', o).problems).toEqual([
      { path: 'kind', reason: 'must be IPAddressPool' },
      { path: 'apiVersion', reason: 'must be metallb.io/v1beta1' },
    ]);
  });

  it('rejects a non-object', () => {
    expect(schemas.validate('IPAddressPool', 'metallb.io/v1beta1', [1]).problems).toEqual([
      { path: '(root)', reason: 'must be an object' },
    ]);
  });

  it('reports unknown fields at any depth but leaves metadata alone', () => {
    expect(
      problems('IPAddressPool', 'v1beta1', {
        ...pool({ adresses: ['x'], serviceAllocation: { priority: 1, namespace: ['a'] } }),
        specs: {},
        metadata: { name: 'x', finalizers: ['f'], whatever: 1 },
      }),
    ).toEqual([
      'specs: unknown field',
      'spec.adresses: unknown field',
      'spec.serviceAllocation.namespace: unknown field',
    ]);
  });

  it('does not modify its input and returns a defaulted copy', () => {
    const input = obj('IPAddressPool', 'v1beta1', pool());
    const snapshot = JSON.stringify(input);
    const r = schemas.validate('IPAddressPool', 'metallb.io/v1beta1', input);
    expect(JSON.stringify(input)).toBe(snapshot);
    expect(r.value).not.toBe(input);
  });

  it('formats problems one per line', () => {
    expect(
      formatProblems([
        { path: 'spec.a', reason: 'is required' },
        { path: 'spec.b', reason: 'unknown field' },
      ]),
    ).toBe('spec.a: is required\nspec.b: unknown field');
  });
});

describe('IPAddressPool schema', () => {
  it('accepts a full object', () => {
    expect(
      problems('IPAddressPool', 'v1beta1', {
        spec: {
          addresses: ['192.0.2.0/28', '2001:db8::/120', '198.51.100.1 - 198.51.100.9'],
          autoAssign: false,
          avoidBuggyIPs: true,
          serviceAllocation: {
            priority: -3,
            namespaces: ['a'],
            namespaceSelectors: [sel],
            serviceSelectors: [{}],
          },
        },
        status: { assignedIPv4: 1, assignedIPv6: 0, availableIPv4: 15, availableIPv6: 256 },
      }),
    ).toEqual([]);
  });

  it('requires spec and spec.addresses', () => {
    expect(problems('IPAddressPool', 'v1beta1', {})).toEqual(['spec: is required']);
    expect(problems('IPAddressPool', 'v1beta1', { spec: {} })).toEqual(['spec.addresses: is required']);
  });

  it('checks field types', () => {
    expect(
      problems('IPAddressPool', 'v1beta1', {
        spec: { addresses: ['192.0.2.0/28', 7], autoAssign: 'yes', serviceAllocation: { priority: 1.5 } },
      }),
    ).toEqual([
      'spec.addresses[1]: must be a string',
      'spec.autoAssign: must be a boolean',
      'spec.serviceAllocation.priority: must be an integer',
    ]);
    expect(problems('IPAddressPool', 'v1beta1', { spec: { addresses: '192.0.2.0/28' } })).toEqual([
      'spec.addresses: must be a list',
    ]);
  });

  it('checks label selectors', () => {
    expect(
      problems(
        'IPAddressPool',
        'v1beta1',
        pool({
          serviceAllocation: {
            serviceSelectors: [
              {
                matchLabels: { 'app.kubernetes.io/name': 1 },
                matchExpressions: [{ key: 'k', value: ['x'] }],
              },
            ],
          },
        }),
      ),
    ).toEqual([
      'spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].operator: is required',
      'spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].value: unknown field',
      'spec.serviceAllocation.serviceSelectors[0].matchLabels["app.kubernetes.io/name"]: must be a string',
    ]);
  });

  it('requires the assigned counters and int64 counters in status', () => {
    expect(problems('IPAddressPool', 'v1beta1', { ...pool(), status: { availableIPv4: 'x' } })).toEqual([
      'status.assignedIPv4: is required',
      'status.assignedIPv6: is required',
      'status.availableIPv4: must be an integer',
    ]);
  });
});

describe('L2Advertisement schema', () => {
  it('accepts a full object and an empty spec', () => {
    expect(
      problems('L2Advertisement', 'v1beta1', {
        spec: {
          ipAddressPools: ['p'],
          ipAddressPoolSelectors: [sel],
          nodeSelectors: [sel],
          interfaces: ['eth0'],
          serviceSelectors: [sel],
          preferredNodeSelectors: [{ weight: 100, preference: {} }],
        },
      }),
    ).toEqual([]);
    expect(problems('L2Advertisement', 'v1beta1', { spec: {} })).toEqual([]);
    expect(problems('L2Advertisement', 'v1beta1', {})).toEqual([]);
  });

  it('bounds and requires preferredNodeSelectors weight and preference', () => {
    expect(
      problems('L2Advertisement', 'v1beta1', {
        spec: {
          preferredNodeSelectors: [{ weight: 0, preference: {} }, { weight: 101, preference: sel }, {}],
        },
      }),
    ).toEqual([
      'spec.preferredNodeSelectors[0].weight: must be >= 1',
      'spec.preferredNodeSelectors[1].weight: must be <= 100',
      'spec.preferredNodeSelectors[2].preference: is required',
      'spec.preferredNodeSelectors[2].weight: is required',
    ]);
  });

  it('rejects fields in status', () => {
    expect(problems('L2Advertisement', 'v1beta1', { spec: {}, status: { x: 1 } })).toEqual([
      'status.x: unknown field',
    ]);
  });
});

describe('BGPAdvertisement schema', () => {
  it('accepts a full object', () => {
    expect(
      problems('BGPAdvertisement', 'v1beta1', {
        spec: {
          aggregationLength: 24,
          aggregationLengthV6: 64,
          localPref: 4294967295,
          communities: ['65535:65282', 'large:1:2:3', 'alias'],
          ipAddressPools: ['p'],
          ipAddressPoolSelectors: [sel],
          nodeSelectors: [sel],
          peers: ['peer1'],
        },
      }),
    ).toEqual([]);
  });

  it('enforces aggregation length minimums (v6 minimum is our quirk)', () => {
    expect(
      problems('BGPAdvertisement', 'v1beta1', { spec: { aggregationLength: 0, aggregationLengthV6: 0 } }),
    ).toEqual(['spec.aggregationLength: must be >= 1', 'spec.aggregationLengthV6: must be >= 1']);
    // Upper bounds are layer 3 (config parse), not schema.
    expect(
      problems('BGPAdvertisement', 'v1beta1', { spec: { aggregationLength: 33, aggregationLengthV6: 129 } }),
    ).toEqual([]);
  });

  it('keeps localPref in uint32 range', () => {
    expect(problems('BGPAdvertisement', 'v1beta1', { spec: { localPref: -1 } })).toEqual([
      'spec.localPref: must be >= 0',
    ]);
    expect(problems('BGPAdvertisement', 'v1beta1', { spec: { localPref: 4294967296 } })).toEqual([
      'spec.localPref: must be <= 4294967295',
    ]);
  });

  it('CEL: rejects serviceSelectors with a non-default aggregation length', () => {
    const msg =
      'spec: serviceSelectors cannot be combined with a non-default aggregationLength or aggregationLengthV6';
    expect(
      problems('BGPAdvertisement', 'v1beta1', { spec: { serviceSelectors: [{}], aggregationLength: 24 } }),
    ).toEqual([msg]);
    expect(
      problems('BGPAdvertisement', 'v1beta1', { spec: { serviceSelectors: [sel], aggregationLengthV6: 64 } }),
    ).toEqual([msg]);
    expect(
      problems('BGPAdvertisement', 'v1beta1', {
        spec: { serviceSelectors: [sel], aggregationLength: 32, aggregationLengthV6: 128 },
      }),
    ).toEqual([]);
    expect(
      problems('BGPAdvertisement', 'v1beta1', { spec: { serviceSelectors: [], aggregationLength: 24 } }),
    ).toEqual([]);
    expect(problems('BGPAdvertisement', 'v1beta1', { spec: { serviceSelectors: [sel] } })).toEqual([]);
  });
});

describe('BGPPeer v1beta2 schema', () => {
  it('accepts a full object', () => {
    expect(
      problems('BGPPeer', 'v1beta2', {
        spec: {
          myASN: 4294967295,
          dynamicASN: 'external',
          localASN: 1,
          interface: 'eth1',
          sourceAddress: '192.0.2.2',
          peerPort: 16384,
          holdTime: '90s',
          keepaliveTime: '30s',
          connectTime: '65535s',
          routerID: '192.0.2.2',
          nodeSelectors: [sel],
          passwordSecret: { name: 's', namespace: 'metallb-system' },
          bfdProfile: 'b',
          enableGracefulRestart: true,
          ebgpMultiHop: true,
          vrf: 'red',
          disableMP: true,
          dualStackAddressFamily: true,
        },
      }),
    ).toEqual([]);
    expect(problems('BGPPeer', 'v1beta2', peer({ password: 'p' }))).toEqual([]);
  });

  it('requires myASN and keeps ASNs in uint32 range', () => {
    expect(problems('BGPPeer', 'v1beta2', { spec: { peerASN: 1, peerAddress: '192.0.2.1' } })).toEqual([
      'spec.myASN: is required',
    ]);
    expect(problems('BGPPeer', 'v1beta2', peer({ myASN: -1, peerASN: 4294967296 }))).toEqual([
      'spec.myASN: must be >= 0',
      'spec.peerASN: must be <= 4294967295',
    ]);
  });

  it('restricts dynamicASN to internal/external', () => {
    expect(problems('BGPPeer', 'v1beta2', peer({ dynamicASN: 'foo' }))).toEqual([
      'spec.dynamicASN: must be one of internal, external',
    ]);
  });

  it('bounds localASN to 1..4294967295', () => {
    expect(problems('BGPPeer', 'v1beta2', peer({ localASN: 0 }))).toEqual(['spec.localASN: must be >= 1']);
    expect(problems('BGPPeer', 'v1beta2', peer({ localASN: 4294967296 }))).toEqual([
      'spec.localASN: must be <= 4294967295',
    ]);
  });

  it('bounds peerPort to 1..16384', () => {
    expect(problems('BGPPeer', 'v1beta2', peer({ peerPort: 0 }))).toEqual(['spec.peerPort: must be >= 1']);
    expect(problems('BGPPeer', 'v1beta2', peer({ peerPort: 16385 }))).toEqual([
      'spec.peerPort: must be <= 16384',
    ]);
  });

  it('passwordSecret is a SecretReference', () => {
    expect(problems('BGPPeer', 'v1beta2', peer({ passwordSecret: { name: 's', key: 'password' } }))).toEqual([
      'spec.passwordSecret.key: unknown field',
    ]);
  });

  it('CEL: connectTime between 1s and 65535s, whole seconds', () => {
    const range = 'spec.connectTime: connectTime must be between 1s and 65535s';
    const whole = 'spec.connectTime: connectTime must be a whole number of seconds';
    expect(problems('BGPPeer', 'v1beta2', peer({ connectTime: '1s' }))).toEqual([]);
    expect(problems('BGPPeer', 'v1beta2', peer({ connectTime: '2m' }))).toEqual([]);
    expect(problems('BGPPeer', 'v1beta2', peer({ connectTime: '500ms' }))).toEqual([range, whole]);
    expect(problems('BGPPeer', 'v1beta2', peer({ connectTime: '0s' }))).toEqual([range]);
    expect(problems('BGPPeer', 'v1beta2', peer({ connectTime: '65536s' }))).toEqual([range]);
    expect(problems('BGPPeer', 'v1beta2', peer({ connectTime: '1.5s' }))).toEqual([whole]);
    expect(problems('BGPPeer', 'v1beta2', peer({ connectTime: '10' }))).toEqual([
      'spec.connectTime: invalid duration "10"',
    ]);
    expect(problems('BGPPeer', 'v1beta2', peer({ connectTime: 10 }))).toEqual([
      'spec.connectTime: must be a string',
    ]);
  });

  it('CEL: enableGracefulRestart cannot change on update', () => {
    const msg = 'spec.enableGracefulRestart: enableGracefulRestart cannot be changed after creation';
    expect(problems('BGPPeer', 'v1beta2', peer({ enableGracefulRestart: true }))).toEqual([]);
    expect(
      problems(
        'BGPPeer',
        'v1beta2',
        peer({ enableGracefulRestart: true }),
        peer({ enableGracefulRestart: false }),
      ),
    ).toEqual([msg]);
    expect(
      problems(
        'BGPPeer',
        'v1beta2',
        peer({ enableGracefulRestart: true }),
        peer({ enableGracefulRestart: true }),
      ),
    ).toEqual([]);
    // Transition rules only run when both the old and the new value exist.
    expect(problems('BGPPeer', 'v1beta2', peer({ enableGracefulRestart: true }), peer())).toEqual([]);
    expect(problems('BGPPeer', 'v1beta2', peer(), peer({ enableGracefulRestart: true }))).toEqual([]);
  });
});

describe('BGPPeer v1beta1 schema', () => {
  it('accepts a full object and warns that the version is deprecated', () => {
    const r = run(
      'BGPPeer',
      'v1beta1',
      peer({
        sourceAddress: '192.0.2.2',
        routerID: '192.0.2.2',
        password: 'p',
        bfdProfile: 'b',
        ebgpMultiHop: false,
        peerPort: 0,
        holdTime: '90s',
        keepaliveTime: '30s',
        nodeSelectors: [
          { matchLabels: { a: 'b' }, matchExpressions: [{ key: 'k', operator: 'In', values: ['v'] }] },
        ],
      }),
    );
    expect(r.problems).toEqual([]);
    expect(r.warnings).toEqual(['metallb.io/v1beta1 BGPPeer is deprecated; use metallb.io/v1beta2']);
    expect(run('BGPPeer', 'v1beta2', peer()).warnings).toEqual([]);
  });

  it('requires myASN, peerASN and peerAddress', () => {
    expect(problems('BGPPeer', 'v1beta1', { spec: {} })).toEqual([
      'spec.myASN: is required',
      'spec.peerASN: is required',
      'spec.peerAddress: is required',
    ]);
  });

  it('uses the legacy node selector shape', () => {
    expect(
      problems(
        'BGPPeer',
        'v1beta1',
        peer({
          nodeSelectors: [
            {
              matchExpressions: [
                { key: 'k', operator: 'In', values: [] },
                { key: 'k', operator: 'Exists' },
              ],
            },
          ],
        }),
      ),
    ).toEqual([
      'spec.nodeSelectors[0].matchExpressions[0].values: must have at least 1 item',
      'spec.nodeSelectors[0].matchExpressions[1].values: is required',
    ]);
  });

  it('bounds peerPort to 0..16384 and knows no v1beta2 field', () => {
    expect(problems('BGPPeer', 'v1beta1', peer({ peerPort: -1 }))).toEqual(['spec.peerPort: must be >= 0']);
    expect(problems('BGPPeer', 'v1beta1', peer({ peerPort: 16385 }))).toEqual([
      'spec.peerPort: must be <= 16384',
    ]);
    expect(problems('BGPPeer', 'v1beta1', peer({ dynamicASN: 'internal', vrf: 'red' }))).toEqual([
      'spec.dynamicASN: unknown field',
      'spec.vrf: unknown field',
    ]);
  });
});

describe('Community schema', () => {
  it('accepts aliases and checks their shape', () => {
    expect(
      problems('Community', 'v1beta1', { spec: { communities: [{ name: 'a', value: '1:2' }] } }),
    ).toEqual([]);
    expect(
      problems('Community', 'v1beta1', { spec: { communities: [{ name: 1, value: '1:2', alias: 'x' }] } }),
    ).toEqual(['spec.communities[0].alias: unknown field', 'spec.communities[0].name: must be a string']);
  });
});

describe('BFDProfile schema', () => {
  const ranges: [string, number, number][] = [
    ['receiveInterval', 10, 60000],
    ['transmitInterval', 10, 60000],
    ['detectMultiplier', 2, 255],
    ['echoInterval', 10, 60000],
    ['minimumTtl', 1, 254],
  ];

  it.each(ranges)('%s is within %d..%d', (field, min, max) => {
    expect(problems('BFDProfile', 'v1beta1', { spec: { [field]: min } })).toEqual([]);
    expect(problems('BFDProfile', 'v1beta1', { spec: { [field]: max } })).toEqual([]);
    expect(problems('BFDProfile', 'v1beta1', { spec: { [field]: min - 1 } })).toEqual([
      `spec.${field}: must be >= ${min}`,
    ]);
    expect(problems('BFDProfile', 'v1beta1', { spec: { [field]: max + 1 } })).toEqual([
      `spec.${field}: must be <= ${max}`,
    ]);
  });

  it('echoMode and passiveMode are booleans', () => {
    expect(problems('BFDProfile', 'v1beta1', { spec: { echoMode: true, passiveMode: false } })).toEqual([]);
    expect(problems('BFDProfile', 'v1beta1', { spec: { echoMode: 'true' } })).toEqual([
      'spec.echoMode: must be a boolean',
    ]);
  });
});

describe.each(['ServiceL2Status', 'ServiceBGPStatus'])('%s schema', (kind) => {
  const status = { node: 'n1', serviceName: 'svc', serviceNamespace: 'default' };

  it('accepts a status and has an empty spec', () => {
    const extra = kind === 'ServiceL2Status' ? { interfaces: [{ name: 'eth0' }] } : { peers: ['p1', 'p2'] };
    expect(problems(kind, 'v1beta1', { spec: {}, status: { ...status, ...extra } })).toEqual([]);
    expect(problems(kind, 'v1beta1', { spec: { node: 'x' } })).toEqual(['spec.node: unknown field']);
  });

  it('CEL: node, serviceName and serviceNamespace are immutable', () => {
    const changed = { node: 'n2', serviceName: 'other', serviceNamespace: 'kube-system' };
    expect(problems(kind, 'v1beta1', { status: changed }, { status })).toEqual([
      'status.node: node cannot be changed once set',
      'status.serviceName: serviceName cannot be changed once set',
      'status.serviceNamespace: serviceNamespace cannot be changed once set',
    ]);
    expect(problems(kind, 'v1beta1', { status }, { status })).toEqual([]);
    expect(problems(kind, 'v1beta1', { status: changed })).toEqual([]);
    expect(problems(kind, 'v1beta1', { status: changed }, { status: {} })).toEqual([]);
  });
});

describe('ServiceL2Status / ServiceBGPStatus specifics', () => {
  it('interfaces are {name} objects', () => {
    expect(problems('ServiceL2Status', 'v1beta1', { status: { interfaces: ['eth0'] } })).toEqual([
      'status.interfaces[0]: must be an object',
    ]);
  });

  it('peers are strings', () => {
    expect(problems('ServiceBGPStatus', 'v1beta1', { status: { peers: [{ name: 'p' }] } })).toEqual([
      'status.peers[0]: must be a string',
    ]);
  });
});

describe('ConfigurationState schema', () => {
  const cond = (type: string, extra: Json = {}): Json => ({
    type,
    status: 'True',
    reason: 'Reconciled',
    message: '',
    lastTransitionTime: '2026-07-19T10:00:00Z',
    ...extra,
  });

  it('accepts a valid status', () => {
    expect(
      problems('ConfigurationState', 'v1beta1', {
        status: {
          conditions: [
            cond('configReconcilerValid', { observedGeneration: 3 }),
            cond('poolReconcilerValid', { status: 'False', reason: 'ConfigurationError', message: 'bad' }),
          ],
          result: 'Invalid',
          errorSummary: 'bad',
        },
      }),
    ).toEqual([]);
  });

  it('restricts result to Valid/Invalid/Unknown', () => {
    expect(problems('ConfigurationState', 'v1beta1', { status: { result: 'Ok' } })).toEqual([
      'status.result: must be one of Valid, Invalid, Unknown',
    ]);
  });

  it('conditions follow metav1.Condition', () => {
    expect(
      problems('ConfigurationState', 'v1beta1', {
        status: {
          conditions: [
            { type: 'a' },
            cond('b', {
              status: 'Maybe',
              reason: '',
              lastTransitionTime: 'yesterday',
              observedGeneration: -1,
            }),
          ],
        },
      }),
    ).toEqual([
      'status.conditions[0].lastTransitionTime: is required',
      'status.conditions[0].message: is required',
      'status.conditions[0].reason: is required',
      'status.conditions[0].status: is required',
      'status.conditions[1].lastTransitionTime: must be an RFC 3339 date-time',
      'status.conditions[1].observedGeneration: must be >= 0',
      'status.conditions[1].reason: must be at least 1 character long',
      'status.conditions[1].reason: must match ^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
      'status.conditions[1].status: must be one of True, False, Unknown',
    ]);
  });

  it('conditions are a list-map keyed by type', () => {
    expect(
      problems('ConfigurationState', 'v1beta1', {
        status: { conditions: [cond('a'), cond('b'), cond('a', { status: 'False' })] },
      }),
    ).toEqual(['status.conditions[2]: duplicate entry for key type="a" (same as item 0)']);
  });
});

describe('defaults', () => {
  it('IPAddressPool: autoAssign true, avoidBuggyIPs false', () => {
    expect(defaulted('IPAddressPool', 'v1beta1', { addresses: ['192.0.2.0/28'] })).toEqual({
      addresses: ['192.0.2.0/28'],
      autoAssign: true,
      avoidBuggyIPs: false,
    });
    expect(defaulted('IPAddressPool', 'v1beta1', { addresses: [], autoAssign: false })).toMatchObject({
      autoAssign: false,
    });
  });

  it('BGPAdvertisement: aggregationLength 32, aggregationLengthV6 128', () => {
    expect(defaulted('BGPAdvertisement', 'v1beta1', {})).toEqual({
      aggregationLength: 32,
      aggregationLengthV6: 128,
    });
    expect(defaulted('BGPAdvertisement', 'v1beta1', { aggregationLength: 24 })).toEqual({
      aggregationLength: 24,
      aggregationLengthV6: 128,
    });
  });

  it('BGPPeer v1beta2: peerPort 179, disableMP and dualStackAddressFamily false', () => {
    expect(defaulted('BGPPeer', 'v1beta2', { myASN: 1, peerASN: 2, peerAddress: '192.0.2.1' })).toEqual({
      myASN: 1,
      peerASN: 2,
      peerAddress: '192.0.2.1',
      peerPort: 179,
      disableMP: false,
      dualStackAddressFamily: false,
    });
  });

  it('BGPPeer v1beta1 has no defaults', () => {
    expect(defaulted('BGPPeer', 'v1beta1', { myASN: 1, peerASN: 2, peerAddress: '192.0.2.1' })).toEqual({
      myASN: 1,
      peerASN: 2,
      peerAddress: '192.0.2.1',
    });
  });

  it('does not default inside an absent parent', () => {
    expect((run('BGPAdvertisement', 'v1beta1', {}).value as Json).spec).toBeUndefined();
  });

  it('drops null fields before defaulting, like the API server', () => {
    expect(
      defaulted('IPAddressPool', 'v1beta1', { addresses: ['192.0.2.0/28'], autoAssign: null }),
    ).toMatchObject({
      autoAssign: true,
    });
    expect(
      defaulted('BGPPeer', 'v1beta2', { myASN: 1, interface: 'eth0', dynamicASN: 'internal', vrf: null }),
    ).not.toHaveProperty('vrf');
  });
});

describe('parseGoDuration', () => {
  it.each([
    ['0', 0n],
    ['1s', 1_000_000_000n],
    ['1.5s', 1_500_000_000n],
    ['-2m', -120_000_000_000n],
    ['1h2m3s', 3_723_000_000_000n],
    ['300ms', 300_000_000n],
    ['10us', 10_000n],
    ['10µs', 10_000n],
    ['7ns', 7n],
    ['.5s', 500_000_000n],
  ])('%s', (text, ns) => {
    expect(parseGoDuration(text)).toBe(ns);
  });

  it.each(['', '10', 's', '1x', '1.s.', '.s', '1 s', '+', '9999999999999999999h'])('rejects %j', (text) => {
    expect(parseGoDuration(text)).toBeUndefined();
  });
});

describe('loading', () => {
  it('finds the package root from src and dist locations', () => {
    expect(findPackageRoot(join(root, 'src', 'config'))).toBe(root);
    expect(findPackageRoot(join(root, 'dist', 'src', 'config'))).toBe(root);
  });

  it('caches per root', () => {
    expect(CrdSchemas.load(root)).toBe(schemas);
  });

  it('refuses a CEL rule that has no implementation', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ironlb-crd-'));
    try {
      mkdirSync(join(dir, 'deploy', 'crds'), { recursive: true });
      writeFileSync(join(dir, 'package.json'), '{}');
      writeFileSync(
        join(dir, 'deploy', 'crds', 'x.yaml'),
        [
          'apiVersion: apiextensions.k8s.io/v1',
          'kind: CustomResourceDefinition',
          'metadata: {name: things.metallb.io}',
          'spec:',
          '  group: metallb.io',
          '  names: {kind: Thing, plural: things}',
          '  scope: Namespaced',
          '  versions:',
          '  - name: v1beta1',
          '    served: true',
          '    storage: true',
          '    schema:',
          '      openAPIV3Schema:',
          '        type: object',
          '        x-kubernetes-validations: [{rule: "self.x > 1", message: m}]',
        ].join('\n'),
      );
      expect(() => CrdSchemas.load(dir)).toThrow(/CEL rule has no implementation.*self\.x > 1/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
