/**
 * The deployment artefacts: the Helm chart (deploy/helm/ironlb), rendered with test/helm/render.ts
 * because no helm binary exists here, and the plain manifests (deploy/manifests), which are
 * generated from the chart.
 *
 *   1. the renderer itself (the template subset, and clear errors outside it);
 *   2. values.yaml against values.schema.json, and values the schema must reject;
 *   3. the rendered objects: names, labels, RBAC rules, webhooks, env, args (only flags the ironlb
 *      CLI knows), ports, volumes, the FRR and excludel2 ConfigMaps, the CRDs (= deploy/crds), for
 *      the default values and for variants (FRR off, memberlist off, components off, …);
 *   4. generated files in sync: templates/crds.yaml (from deploy/crds) and deploy/manifests/*.yaml
 *      (from the chart). `UPDATE_MANIFESTS=1` rewrites both instead of failing:
 *        UPDATE_MANIFESTS=1 NODE_OPTIONS=--experimental-vm-modules npx jest test/integration/deploy.test.ts
 *   5. a real kube-apiserver (test/k8s): every rendered document of every variant and every
 *      document of deploy/manifests is accepted by a server-side dry-run apply; `kubectl apply
 *      --dry-run=server` takes the manifest files as a user would; the RBAC is applied for real and
 *      checked with SubjectAccessReviews (what each component needs is allowed, more is not); and
 *      the controller and the speaker's Kubernetes source run with their ServiceAccounts' tokens.
 *      Skipped when the binaries are missing, except under CI=true.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import {
  Engine,
  TemplateError,
  ValuesError,
  formatDocs,
  loadChart,
  mergeValues,
  renderChart,
  validateValues,
  type Chart,
  type KubeObject,
  type RenderOptions,
} from '../helm/render.js';
import { ControlPlane, k8sUnavailableReason, repoRoot } from '../k8s/controlplane.js';
import { DEFAULT_EXCLUDES } from '../../src/l2/interfaces.js';
import { KubeClient, RESOURCES, type KObject } from '../../src/k8s/client.js';
import { runController } from '../../src/cli/controller.js';
import { K8sSource } from '../../src/speaker/k8s-source.js';
import { createLogger } from '../../src/util/log.js';
import { waitFor } from '../lab/wait.js';

const ROOT = repoRoot();
const CHART_DIR = join(ROOT, 'deploy', 'helm', 'ironlb');
const CRDS_DIR = join(ROOT, 'deploy', 'crds');
const MANIFESTS_DIR = join(ROOT, 'deploy', 'manifests');
const CRDS_TEMPLATE = join(CHART_DIR, 'templates', 'crds.yaml');
const UPDATE = process.env.UPDATE_MANIFESTS === '1';
const NS = 'metallb-system';

// ---------------------------------------------------------------------------------------------
// Generated files
// ---------------------------------------------------------------------------------------------

const GENERATED_BY = `test/integration/deploy.test.ts; change the chart (or deploy/crds), then run
#   UPDATE_MANIFESTS=1 NODE_OPTIONS=--experimental-vm-modules npx jest test/integration/deploy.test.ts`;

/** templates/crds.yaml: every deploy/crds file, the conversion webhook namespace templated. */
function crdsTemplate(): string {
  // The comments sit inside the if: with crds.enabled=false the template renders to nothing.
  let out = `{{- if .Values.crds.enabled }}
# Generated from deploy/crds by ${GENERATED_BY}
# helm.sh/resource-policy: keep: helm uninstall leaves the CRDs (and every metallb.io object).\n`;
  for (const f of readdirSync(CRDS_DIR)
    .filter((x) => x.endsWith('.yaml'))
    .sort()) {
    let text = readFileSync(join(CRDS_DIR, f), 'utf8');
    if (text.includes('{{') || text.includes('}}')) throw new Error(`${f}: contains "{{" or "}}"`);
    const head =
      /^---\napiVersion: apiextensions\.k8s\.io\/v1\nkind: CustomResourceDefinition\nmetadata:\n {2}name: [a-z0-9.]+\n/;
    const m = head.exec(text);
    if (!m) throw new Error(`${f}: does not start with the expected CRD header`);
    text =
      m[0] +
      '  annotations:\n    helm.sh/resource-policy: keep\n' +
      text.slice(m[0].length).replace(/^(\s+namespace:) metallb-system$/gm, '$1 {{ .Release.Namespace }}');
    out += text.endsWith('\n') ? text : `${text}\n`;
  }
  return `${out}{{- end }}\n`;
}

const NAMESPACE_DOC = `apiVersion: v1
kind: Namespace
metadata:
  name: metallb-system
  labels:
    # hostNetwork and the FRR container's capabilities need the privileged Pod Security level.
    pod-security.kubernetes.io/audit: privileged
    pod-security.kubernetes.io/enforce: privileged
    pod-security.kubernetes.io/warn: privileged`;

interface ManifestFile {
  file: string;
  title: string;
  opts: RenderOptions;
  setText: string;
}

const MANIFEST_FILES: ManifestFile[] = [
  {
    file: 'ironlb-frr.yaml',
    title: 'controller + speaker with the FRR container (BGP, BFD) and L2',
    opts: {},
    setText: 'default values',
  },
  {
    file: 'ironlb-l2.yaml',
    title: 'controller + speaker, L2 only (no FRR container)',
    opts: { set: { 'speaker.frr.enabled': false } },
    setText: '--set speaker.frr.enabled=false',
  },
];

function manifestText(chart: Chart, m: ManifestFile): string {
  const r = renderChart(chart, m.opts);
  return `# ironlb ${String(chart.meta.appVersion)}: ${m.title}.
# Install: kubectl apply -f deploy/manifests/${m.file}   (see deploy/README.md)
# Generated from deploy/helm/ironlb (${m.setText}, namespace metallb-system) by
# ${GENERATED_BY}
---
# Source: not part of the chart (helm install --create-namespace, then label it)
${NAMESPACE_DOC}
${formatDocs(r.docs)}`;
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

// The shapes of the objects the assertions navigate (only the fields they read).
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: unknown;
}
interface Mount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
interface Container {
  name: string;
  image: string;
  imagePullPolicy?: string;
  command?: string[];
  args: string[];
  env?: EnvVar[];
  ports: Array<Record<string, unknown>>;
  resources?: unknown;
  securityContext: { capabilities?: unknown } & Record<string, unknown>;
  volumeMounts?: Mount[];
  livenessProbe?: { httpGet: unknown };
  readinessProbe?: { httpGet: unknown };
}
interface Volume {
  name: string;
  secret?: { secretName: string; defaultMode?: number };
  [k: string]: unknown;
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  serviceAccountName: string;
  hostNetwork?: boolean;
  shareProcessNamespace?: boolean;
  terminationGracePeriodSeconds?: number;
  securityContext?: unknown;
  nodeSelector?: Record<string, string>;
  tolerations?: unknown[];
  affinity?: { nodeAffinity?: unknown };
  priorityClassName?: string;
  imagePullSecrets?: unknown;
}
interface Workload extends KubeObject {
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
      spec: PodSpec;
    };
  };
}
interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
interface RoleObj extends KubeObject {
  rules: Rule[];
}
interface Binding extends KubeObject {
  roleRef: unknown;
  subjects: unknown;
}
interface Webhook {
  name: string;
  clientConfig: { service: { name: string; namespace: string; path: string }; caBundle?: string };
  rules: unknown;
  namespaceSelector?: unknown;
  objectSelector?: unknown;
}
interface WebhookConfig extends KubeObject {
  webhooks: Webhook[];
}
interface ServiceObj extends KubeObject {
  spec: { selector: Record<string, string> } & Record<string, unknown>;
}
interface Crd extends KubeObject {
  spec: { conversion: { webhook: { clientConfig: { service: { namespace?: string } } } } };
}
interface ConfigMapObj extends KubeObject {
  data: Record<string, string>;
}

const chart = loadChart(CHART_DIR);

function render(opts: RenderOptions = {}): KubeObject[] {
  return renderChart(chart, opts).docs.map((d) => d.obj);
}

function find<T extends KubeObject = KubeObject>(objs: KubeObject[], kind: string, name: string): T {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o)
    throw new Error(`no ${kind}/${name} in [${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}]`);
  return o as T;
}

const ids = (objs: KubeObject[]) => objs.map((o) => `${o.kind}/${o.metadata.name}`);

function container(w: Workload, name: string): Container {
  const pod = w.spec.template.spec;
  const c = [...pod.containers, ...(pod.initContainers ?? [])].find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name}`);
  return c;
}

function envOf(c: Container): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const e of c.env ?? []) out[e.name] = e.value ?? e.valueFrom;
  return out;
}

/** The flags `ironlb <cmd>` accepts, read from its parseFlags call (name → boolean?). */
function cliFlags(file: string): Map<string, boolean> {
  const src = readFileSync(join(ROOT, 'src', 'cli', file), 'utf8');
  const out = new Map<string, boolean>();
  for (const m of src.matchAll(
    /\{ name: '([a-z0-9-]+)'(?:, short: '.')?(, boolean: true)?(?:, repeat: true)? \}/g,
  )) {
    out.set(m[1]!, m[2] !== undefined);
  }
  if (out.size < 3) throw new Error(`cannot read the flags of src/cli/${file}`);
  return out;
}

function expectKnownFlags(c: Container, flags: Map<string, boolean>): void {
  for (const a of c.args.slice(1)) {
    const m = /^--([a-z0-9-]+)(=.*)?$/.exec(a);
    expect(m).not.toBeNull();
    const name = m![1]!;
    expect([name, flags.has(name)]).toEqual([name, true]);
    // Boolean flags take no value; the others are always written --name=value.
    expect([name, m![2] !== undefined]).toEqual([name, !flags.get(name)]);
  }
}

/** Rules flattened to "group/resource[name]: verbs" lines, sorted, for exact comparisons. */
function flatRules(role: RoleObj): string[] {
  const out: string[] = [];
  for (const r of role.rules) {
    for (const g of r.apiGroups)
      for (const res of r.resources) {
        const names = r.resourceNames ? `[${r.resourceNames.join(',')}]` : '';
        out.push(`${g || 'core'}/${res}${names}: ${[...r.verbs].sort().join(',')}`);
      }
  }
  return out.sort();
}

// ---------------------------------------------------------------------------------------------
// 1. The renderer
// ---------------------------------------------------------------------------------------------

describe('test/helm/render.ts: the template subset', () => {
  const run = (src: string, values: Record<string, unknown> = {}, extra: Record<string, string> = {}) => {
    const e = new Engine(new Map([['t.yaml', src], ...Object.entries(extra)]));
    return e.render('t.yaml', {
      Values: values,
      Release: { Namespace: 'ns', Name: 'rel' },
      Chart: { AppVersion: '1.2.3' },
    });
  };
  const fails = (src: string, re: RegExp, values: Record<string, unknown> = {}) => {
    expect(() => run(src, values)).toThrow(TemplateError);
    expect(() => run(src, values)).toThrow(re);
  };

  it('trims whitespace on the marked side only', () => {
    expect(run('a  \n  {{- "x" }}  \n b')).toBe('ax  \n b');
    expect(run('a  {{ "x" -}}  \n b')).toBe('a  xb');
    expect(run('a\n{{- /* note */ -}}\nb')).toBe('ab');
    expect(run('a{{/* multi\nline */}}b')).toBe('ab');
  });

  it('if / else if / else, Go truthiness, and / or / not / eq / ne', () => {
    const t = '{{ if .Values.a }}A{{ else if .Values.b }}B{{ else }}C{{ end }}';
    expect(run(t, { a: 1 })).toBe('A');
    expect(run(t, { a: 0, b: 'x' })).toBe('B');
    expect(run(t, { a: [], b: {} })).toBe('C');
    expect(run(t, {})).toBe('C');
    expect(run('{{ if and .Values.a (not .Values.b) }}y{{ end }}', { a: true, b: false })).toBe('y');
    expect(run('{{ or .Values.a .Values.b "z" }}', { a: '', b: 0 })).toBe('z');
    expect(run('{{ and .Values.a .Values.b }}', { a: 'p', b: 'q' })).toBe('q');
    expect(
      run('{{ if eq .Values.m "on" }}1{{ end }}{{ if ne .Values.n 3 }}2{{ end }}', { m: 'on', n: 4 }),
    ).toBe('12');
    // and/or short-circuit: the missing .Values.x.y is never evaluated.
    expect(run('{{ if and .Values.x .Values.x.y }}1{{ else }}0{{ end }}', {})).toBe('0');
  });

  it('range over lists and maps (key order), with variables and $', () => {
    expect(run('{{ range .Values.l }}[{{ . }}]{{ end }}', { l: ['a', 'b'] })).toBe('[a][b]');
    expect(run('{{ range $i, $v := .Values.l }}{{ $i }}={{ $v }};{{ end }}', { l: ['a', 'b'] })).toBe(
      '0=a;1=b;',
    );
    expect(
      run('{{ range $k, $v := .Values.m }}{{ $k }}={{ $v.x }}{{ $.Release.Namespace }};{{ end }}', {
        m: { b: { x: 2 }, a: { x: 1 } },
      }),
    ).toBe('a=1ns;b=2ns;');
    expect(run('{{ range $v := .Values.l }}{{ $v }}{{ end }}', { l: [] })).toBe('');
  });

  it('define / include, quote, default, toYaml, nindent, indent', () => {
    const helpers = { '_h.tpl': '{{- define "x.name" -}}\n{{ .Values.n | default "dflt" }}\n{{- end -}}' };
    expect(run('n: {{ include "x.name" . }}', {}, helpers)).toBe('n: dflt');
    expect(run('n: {{ include "x.name" . | quote }}', { n: 'v' }, helpers)).toBe('n: "v"');
    expect(run('{{ .Values.p | quote }} {{ "a\\"b" | quote }}', { p: 9120 })).toBe('"9120" "a\\"b"');
    expect(run('{{ .Values.t | default .Chart.AppVersion }}', { t: '' })).toBe('1.2.3');
    expect(run('k:{{ toYaml .Values.m | nindent 2 }}', { m: { b: [1, 2], a: { c: 'x' } } })).toBe(
      'k:\n  a:\n    c: x\n  b:\n  - 1\n  - 2',
    );
    expect(run('{{ toYaml .Values.m | indent 4 }}', { m: {} })).toBe('    {}');
    expect(run('{{ toYaml .Values.m }}', { m: [] })).toBe('[]');
    // YAML 1.1 booleans stay strings (Kubernetes parses manifests as YAML 1.1).
    expect(run('{{ toYaml .Values.m }}', { m: { a: 'n', b: 'yes', c: 'on', d: 'x' } })).toBe(
      'a: "n"\nb: "yes"\nc: "on"\nd: x',
    );
  });

  it('rejects what is outside the subset, with the template and line', () => {
    fails('a\n{{ printf "%s" "x" }}', /t\.yaml:2: function "printf" is not supported/);
    fails('{{ with .Values.a }}x{{ end }}', /"with" is not supported/);
    fails('{{ template "x" . }}', /"template" is not supported/);
    fails('{{ .Files.Get "a" }}', /methods are not supported/);
    fails('{{ $x := 1 }}', /only supported in range/);
    fails('{{ if .Values.a }}x', /without \{\{ end \}\}/);
    fails('{{ end }}', /unexpected \{\{ end \}\}/);
    fails('{{ .Values.a', /unclosed action/);
    fails('{{ .Values.a.b }}', /nil pointer evaluating \.Values\.a\.b/);
    fails('x: {{ .Values.missing }}', /missing or null/);
    fails('{{ .Values.m }}', /cannot print a map/, { m: { a: 1 } });
    fails('{{ if eq .Values.p "9120" }}{{ end }}', /incompatible types/, { p: 9120 });
    fails('{{ include "nope" . }}', /no template named "nope"/);
    fails('{{ range .Values.l }}{{ else }}{{ end }}', /else \}\} inside range/, { l: [] });
    fails('{{ nindent 2 }}', /takes 2 arguments/);
    fails('{{ $nope }}', /undefined variable \$nope/);
  });

  it('merges values like Helm (maps merge, null deletes, lists replace)', () => {
    expect(mergeValues({ a: { b: 1, c: 2 }, l: [1, 2], d: 1 }, { a: { c: 3 }, l: [9], d: null })).toEqual({
      a: { b: 1, c: 3 },
      l: [9],
    });
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Values and schema
// ---------------------------------------------------------------------------------------------

describe('values.yaml and values.schema.json', () => {
  it('the default values match the schema', () => {
    expect(validateValues(chart.schema!, chart.values)).toEqual([]);
  });

  it("keeps MetalLB's key names where the charts overlap", () => {
    const v = chart.values;
    for (const path of [
      'controller.enabled',
      'controller.image.repository',
      'controller.image.tag',
      'controller.image.pullPolicy',
      'controller.logLevel',
      'controller.resources',
      'controller.nodeSelector',
      'controller.tolerations',
      'controller.webhookMode',
      'controller.serviceAccount.create',
      'speaker.enabled',
      'speaker.image.repository',
      'speaker.frr.enabled',
      'speaker.frr.image.repository',
      'speaker.memberlist.enabled',
      'speaker.memberlist.mlBindPort',
      'speaker.tolerateMaster',
      'speaker.ignoreExcludeLB',
      'loadBalancerClass',
      'prometheus.metricsPort',
      'rbac.create',
      'crds.enabled',
      'crds.validationFailurePolicy',
      'imagePullSecrets',
      'nameOverride',
      'fullnameOverride',
    ]) {
      const got = path
        .split('.')
        .reduce<unknown>(
          (o, k) => (o && typeof o === 'object' && k in o ? (o as Record<string, unknown>)[k] : undefined),
          v,
        );
      expect([path, got === undefined]).toEqual([path, false]);
    }
    expect(v).toMatchObject({
      speaker: { memberlist: { mlBindPort: 7946 } },
      prometheus: { metricsPort: 9120 },
    });
  });

  it.each([
    [{ controller: { logLevel: 'all' } }, /controller\.logLevel: must be equal to one of the allowed values/],
    [{ speaker: { logLevel: 'loud' } }, /speaker\.logLevel/],
    [{ frrk8s: { enabled: true } }, /frrk8s\.enabled: must be equal to constant/],
    [{ speaker: { memberlist: { mlBindPort: 70000 } } }, /speaker\.memberlist\.mlBindPort: must be <= 65535/],
    [{ controler: { enabled: true } }, /must NOT have additional properties "controler"/],
    [{ speaker: { frr: { image: { tag: '' } } } }, /speaker\.frr\.image\.tag/],
    [{ crds: { validationFailurePolicy: 'Maybe' } }, /crds\.validationFailurePolicy/],
    [{ webhook: { timeoutSeconds: 31 } }, /webhook\.timeoutSeconds: must be <= 30/],
    [{ fullnameOverride: 'Bad_Name' }, /fullnameOverride: must match pattern/],
    [{ speaker: { nodeSelector: { a: 1 } } }, /speaker\.nodeSelector\.a: must be string/],
  ])('rejects %j', (override, re) => {
    expect(() => renderChart(chart, { values: [override] })).toThrow(ValuesError);
    expect(() => renderChart(chart, { values: [override] })).toThrow(re);
  });
});

// ---------------------------------------------------------------------------------------------
// 3. Rendered objects
// ---------------------------------------------------------------------------------------------

describe('the chart with default values', () => {
  const objs = render();
  const controller = find<Workload>(objs, 'Deployment', 'controller');
  const speaker = find<Workload>(objs, 'DaemonSet', 'speaker');

  it('renders exactly the expected objects, in install order', () => {
    expect(ids(objs)).toEqual([
      'ServiceAccount/controller',
      'ServiceAccount/speaker',
      'Secret/metallb-webhook-cert',
      'ConfigMap/metallb-excludel2',
      'ConfigMap/frr-startup',
      'CustomResourceDefinition/bfdprofiles.metallb.io',
      'CustomResourceDefinition/bgpadvertisements.metallb.io',
      'CustomResourceDefinition/bgppeers.metallb.io',
      'CustomResourceDefinition/communities.metallb.io',
      'CustomResourceDefinition/configurationstates.metallb.io',
      'CustomResourceDefinition/ipaddresspools.metallb.io',
      'CustomResourceDefinition/l2advertisements.metallb.io',
      'CustomResourceDefinition/servicebgpstatuses.metallb.io',
      'CustomResourceDefinition/servicel2statuses.metallb.io',
      'ClusterRole/metallb-system:controller',
      'ClusterRole/metallb-system:speaker',
      'ClusterRoleBinding/metallb-system:controller',
      'ClusterRoleBinding/metallb-system:speaker',
      'Role/controller',
      'Role/pod-lister',
      'RoleBinding/controller',
      'RoleBinding/pod-lister',
      'Service/metallb-webhook-service',
      'DaemonSet/speaker',
      'Deployment/controller',
      'ValidatingWebhookConfiguration/metallb-webhook-configuration',
    ]);
    for (const o of objs) {
      const clusterScoped = [
        'CustomResourceDefinition',
        'ClusterRole',
        'ClusterRoleBinding',
        'ValidatingWebhookConfiguration',
      ];
      expect([ids([o])[0], o.metadata.namespace]).toEqual([
        ids([o])[0],
        clusterScoped.includes(o.kind) ? undefined : NS,
      ]);
      if (o.kind !== 'CustomResourceDefinition') expect(o.metadata.labels?.app).toBe('metallb');
    }
    // No Secret `memberlist`: the controller creates it.
    expect(objs.filter((o) => o.kind === 'Secret').map((o) => o.metadata.name)).toEqual([
      'metallb-webhook-cert',
    ]);
  });

  it('the CRDs are deploy/crds (plus helm.sh/resource-policy: keep)', () => {
    const crds = objs.filter((o) => o.kind === 'CustomResourceDefinition');
    const expected = readdirSync(CRDS_DIR)
      .filter((f) => f.endsWith('.yaml'))
      .sort()
      .map((f) => parseYaml(readFileSync(join(CRDS_DIR, f), 'utf8')) as KubeObject);
    expect(crds.map((c) => c.metadata.annotations)).toEqual(
      crds.map(() => ({ 'helm.sh/resource-policy': 'keep' })),
    );
    const stripped = crds.map((c) => {
      const x = structuredClone(c);
      delete x.metadata.annotations;
      return x;
    });
    expect(stripped).toEqual(expected);
  });

  it('controller Deployment: labels, image, args, env, ports, probes, security', () => {
    expect(controller.metadata.labels).toEqual({ app: 'metallb', component: 'controller' });
    expect(controller.spec.selector.matchLabels).toEqual({ app: 'metallb', component: 'controller' });
    expect(controller.spec.template.metadata.labels).toEqual({ app: 'metallb', component: 'controller' });
    const pod = controller.spec.template.spec;
    expect(pod.serviceAccountName).toBe('controller');
    expect(pod.securityContext).toEqual({ runAsNonRoot: true, runAsUser: 65534, fsGroup: 65534 });
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(pod.containers).toHaveLength(1);
    const c = container(controller, 'controller');
    expect(c.image).toBe('ironlb:0.1.0');
    expect(c.args).toEqual(['controller', '--log-level=info', '--port=9120']);
    expectKnownFlags(c, cliFlags('controller.ts'));
    expect(envOf(c)).toEqual({
      METALLB_NAMESPACE: { fieldRef: { fieldPath: 'metadata.namespace' } },
      METALLB_POD_NAME: { fieldRef: { fieldPath: 'metadata.name' } },
      METALLB_POD_UID: { fieldRef: { fieldPath: 'metadata.uid' } },
      METALLB_DEPLOYMENT: 'controller',
      METALLB_ML_SECRET_NAME: 'memberlist',
    });
    expect(c.ports).toEqual([
      { name: 'monitoring', containerPort: 9120 },
      { name: 'webhook-server', containerPort: 9443, protocol: 'TCP' },
    ]);
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 17472 });
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 17472 });
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(c.volumeMounts).toEqual([
      { name: 'cert', mountPath: '/tmp/k8s-webhook-server/serving-certs', readOnly: true },
    ]);
    expect(pod.volumes).toEqual([
      { name: 'cert', secret: { secretName: 'metallb-webhook-cert', defaultMode: 420 } },
    ]);
  });

  it('speaker DaemonSet: pod, speaker and frr containers, init containers, volumes', () => {
    expect(speaker.metadata.labels).toEqual({ app: 'metallb', component: 'speaker' });
    expect(speaker.spec.selector.matchLabels).toEqual({ app: 'metallb', component: 'speaker' });
    expect(speaker.spec.template.metadata.labels).toEqual({ app: 'metallb', component: 'speaker' });
    const pod = speaker.spec.template.spec;
    expect(pod.hostNetwork).toBe(true);
    expect(pod.shareProcessNamespace).toBe(true);
    expect(pod.terminationGracePeriodSeconds).toBe(2);
    expect(pod.serviceAccountName).toBe('speaker');
    expect(pod.tolerations).toEqual([
      { key: 'node-role.kubernetes.io/master', effect: 'NoSchedule', operator: 'Exists' },
      { key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule', operator: 'Exists' },
    ]);
    expect(pod.containers.map((c: { name: string }) => c.name)).toEqual(['speaker', 'frr']);
    expect(pod.initContainers?.map((c) => c.name)).toEqual(['cp-frr-files', 'cp-reloader']);

    const s = container(speaker, 'speaker');
    expect(s.image).toBe('ironlb:0.1.0');
    expect(s.args).toEqual([
      'speaker',
      '--source=k8s',
      '--namespace=$(METALLB_NAMESPACE)',
      '--log-level=info',
      '--port=9120',
      '--l2',
      '--frr-dir=/etc/frr_reloader',
      '--ml-secret-file=/etc/ml_secret_key/secretkey',
    ]);
    expectKnownFlags(s, cliFlags('speaker.ts'));
    expect(envOf(s)).toEqual({
      METALLB_NODE_NAME: { fieldRef: { fieldPath: 'spec.nodeName' } },
      METALLB_POD_NAME: { fieldRef: { fieldPath: 'metadata.name' } },
      METALLB_NAMESPACE: { fieldRef: { fieldPath: 'metadata.namespace' } },
      METALLB_HOST: { fieldRef: { fieldPath: 'status.hostIP' } },
      METALLB_ML_BIND_ADDR: { fieldRef: { fieldPath: 'status.podIP' } },
      METALLB_ML_LABELS: 'app=metallb,component=speaker',
      METALLB_ML_BIND_PORT: '7946',
      METALLB_ML_SECRET_KEY_PATH: '/etc/ml_secret_key',
      METALLB_BGP_TYPE: 'frr',
      FRR_CONFIG_FILE: '/etc/frr_reloader/frr.conf',
      FRR_RELOADER_PID_FILE: '/etc/frr_reloader/reloader.pid',
    });
    // $(METALLB_NAMESPACE) in args is expanded by the kubelet: the variable must be in env.
    expect((s.env ?? []).findIndex((e) => e.name === 'METALLB_NAMESPACE')).toBeGreaterThanOrEqual(0);
    expect(s.ports).toEqual([
      { name: 'monitoring', containerPort: 9120 },
      { name: 'memberlist-tcp', containerPort: 7946, protocol: 'TCP' },
      { name: 'memberlist-udp', containerPort: 7946, protocol: 'UDP' },
    ]);
    expect(s.securityContext).toEqual({
      runAsUser: 0,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'], add: ['NET_RAW'] },
    });
    expect(s.volumeMounts).toEqual([
      { name: 'reloader', mountPath: '/etc/frr_reloader' },
      { name: 'memberlist', mountPath: '/etc/ml_secret_key', readOnly: true },
      { name: 'metallb-excludel2', mountPath: '/etc/metallb', readOnly: true },
    ]);

    const f = container(speaker, 'frr');
    expect(f.image).toBe('ironlb-frr:0.1.0');
    expect(f.command).toEqual(['/bin/bash', '/ironlb/frr/reloader-entrypoint.sh']);
    expect(f.securityContext.capabilities).toEqual({
      add: ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN', 'NET_BIND_SERVICE'],
    });
    expect(envOf(f)).toEqual({
      FRR_CONFIG_FILE: '/etc/frr_reloader/frr.conf',
      FRR_RELOADER_PID_FILE: '/etc/frr_reloader/reloader.pid',
      IRONLB_BIN: '/ironlb/bin/ironlb',
      // The reloader is also the FRR metrics sidecar (upstream's port) and the liveness check.
      IRONLB_RELOADER_ARGS: '--metrics-port 7473 --required-daemons zebra,bgpd,staticd,bfdd',
    });
    expect(f.ports).toEqual([{ name: 'frrmetrics', containerPort: 7473 }]);
    expect(f.livenessProbe?.httpGet).toEqual({ path: '/livez', port: 7473 });
    expect(f.volumeMounts).toEqual([
      { name: 'frr-sockets', mountPath: '/var/run/frr' },
      { name: 'frr-conf', mountPath: '/etc/frr' },
      { name: 'reloader', mountPath: '/etc/frr_reloader' },
      { name: 'ironlb', mountPath: '/ironlb', readOnly: true },
    ]);
    // The files the FRR container runs exist in the ironlb image (Dockerfile copies frr/ and bin/).
    expect(existsSync(join(ROOT, 'frr', 'reloader-entrypoint.sh'))).toBe(true);
    expect(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).toMatch(/^COPY frr \.\/frr$/m);
    expect(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).toMatch(/^WORKDIR \/app$/m);

    const cpFrr = container(speaker, 'cp-frr-files');
    expect(cpFrr.image).toBe('ironlb-frr:0.1.0');
    expect(cpFrr.volumeMounts?.map((m) => m.mountPath)).toEqual(['/tmp/frr', '/etc/frr']);
    const cpRel = container(speaker, 'cp-reloader');
    expect(cpRel.image).toBe('ironlb:0.1.0');
    expect(cpRel.command).toEqual(['/bin/sh', '-c', 'cp -a /app/. /ironlb/']);

    expect(pod.volumes).toEqual([
      { name: 'frr-sockets', emptyDir: {} },
      { name: 'frr-startup', configMap: { name: 'frr-startup' } },
      { name: 'frr-conf', emptyDir: {} },
      { name: 'reloader', emptyDir: {} },
      { name: 'ironlb', emptyDir: {} },
      { name: 'memberlist', secret: { secretName: 'memberlist', defaultMode: 420 } },
      { name: 'metallb-excludel2', configMap: { name: 'metallb-excludel2', defaultMode: 256 } },
    ]);
  });

  it('every volume is mounted and every mount has a volume (all variants)', () => {
    for (const opts of VARIANTS.map((v) => v.opts)) {
      for (const w of render(opts).filter(
        (o): o is Workload => o.kind === 'DaemonSet' || o.kind === 'Deployment',
      )) {
        const pod = w.spec.template.spec;
        const volumes = new Set<string>((pod.volumes ?? []).map((v) => v.name));
        const mounted = new Set<string>();
        for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
          for (const m of c.volumeMounts ?? []) {
            expect([w.metadata.name, c.name, m.name, volumes.has(m.name)]).toEqual([
              w.metadata.name,
              c.name,
              m.name,
              true,
            ]);
            mounted.add(m.name);
          }
        }
        expect([...volumes].sort()).toEqual([...mounted].sort());
      }
    }
  });

  it('the webhook Service selects the controller pods; the speakers carry the memberlist labels', () => {
    const svc = find<ServiceObj>(objs, 'Service', 'metallb-webhook-service');
    expect(svc.spec).toEqual({
      ports: [{ port: 443, targetPort: 9443 }],
      selector: { component: 'controller' },
    });
    const podLabels = controller.spec.template.metadata.labels;
    for (const [k, v] of Object.entries(svc.spec.selector)) expect(podLabels[k]).toBe(v);
    const ml = envOf(container(speaker, 'speaker')).METALLB_ML_LABELS as string;
    const speakerLabels = speaker.spec.template.metadata.labels;
    for (const kv of ml.split(',')) {
      const [k, v] = kv.split('=');
      expect(speakerLabels[k!]).toBe(v);
    }
  });

  it('ValidatingWebhookConfiguration: one webhook per kind at MetalLB paths', () => {
    const vwc = find<WebhookConfig>(objs, 'ValidatingWebhookConfiguration', 'metallb-webhook-configuration');
    const summary = vwc.webhooks.map((w) => ({
      name: w.name,
      path: w.clientConfig.service.path,
      service: `${w.clientConfig.service.namespace}/${w.clientConfig.service.name}`,
      rules: w.rules,
    }));
    const rule = (v: string, res: string, ops = ['CREATE', 'UPDATE']) => [
      { apiGroups: ['metallb.io'], apiVersions: [v], operations: ops, resources: [res] },
    ];
    const svc = `${NS}/metallb-webhook-service`;
    expect(summary).toEqual([
      {
        name: 'ipaddresspoolvalidationwebhook.metallb.io',
        path: '/validate-metallb-io-v1beta1-ipaddresspool',
        service: svc,
        rules: rule('v1beta1', 'ipaddresspools'),
      },
      {
        name: 'l2advertisementvalidationwebhook.metallb.io',
        path: '/validate-metallb-io-v1beta1-l2advertisement',
        service: svc,
        rules: rule('v1beta1', 'l2advertisements'),
      },
      {
        name: 'bgpadvertisementvalidationwebhook.metallb.io',
        path: '/validate-metallb-io-v1beta1-bgpadvertisement',
        service: svc,
        rules: rule('v1beta1', 'bgpadvertisements'),
      },
      {
        name: 'bgppeervalidationwebhook.metallb.io',
        path: '/validate-metallb-io-v1beta2-bgppeer',
        service: svc,
        rules: rule('v1beta2', 'bgppeers'),
      },
      {
        name: 'communityvalidationwebhook.metallb.io',
        path: '/validate-metallb-io-v1beta1-community',
        service: svc,
        rules: rule('v1beta1', 'communities'),
      },
      {
        name: 'bfdprofilevalidationwebhook.metallb.io',
        path: '/validate-metallb-io-v1beta1-bfdprofile',
        service: svc,
        rules: rule('v1beta1', 'bfdprofiles', ['CREATE', 'UPDATE', 'DELETE']),
      },
    ]);
    for (const w of vwc.webhooks) {
      expect(w).toMatchObject({
        failurePolicy: 'Fail',
        sideEffects: 'None',
        admissionReviewVersions: ['v1'],
        timeoutSeconds: 10,
      });
      expect(w.namespaceSelector).toBeUndefined();
      expect(w.objectSelector).toBeUndefined();
      expect(w.clientConfig.caBundle).toBeUndefined();
    }
    // The BGPPeer conversion webhook (in the CRD) points at the same Service.
    const peers = find<Crd>(objs, 'CustomResourceDefinition', 'bgppeers.metallb.io');
    expect(peers.spec.conversion.webhook.clientConfig.service).toEqual({
      name: 'metallb-webhook-service',
      namespace: NS,
      path: '/convert',
    });
  });

  it('RBAC: least privilege per component', () => {
    expect(flatRules(find<RoleObj>(objs, 'ClusterRole', 'metallb-system:controller'))).toEqual([
      'admissionregistration.k8s.io/validatingwebhookconfigurations[metallb-webhook-configuration]: get,patch',
      'apiextensions.k8s.io/customresourcedefinitions[bgppeers.metallb.io]: get,patch',
      'core/events: create,patch',
      'core/namespaces: list,watch',
      'core/nodes: list,watch',
      'core/services/status: patch,update',
      'core/services: get,list,watch',
    ]);
    expect(flatRules(find<RoleObj>(objs, 'Role', 'controller'))).toEqual([
      'apps/deployments[controller]: get',
      'coordination.k8s.io/leases: create,get,update',
      'core/secrets: create,get,list,patch,update,watch',
      'metallb.io/bfdprofiles: get,list,watch',
      'metallb.io/bgpadvertisements: get,list,watch',
      'metallb.io/bgppeers: get,list,watch',
      'metallb.io/communities: get,list,watch',
      'metallb.io/configurationstates/status: create,get,patch,update',
      'metallb.io/configurationstates: create,get,patch,update',
      'metallb.io/ipaddresspools/status: patch,update',
      'metallb.io/ipaddresspools: get,list,watch',
      'metallb.io/l2advertisements: get,list,watch',
    ]);
    expect(flatRules(find<RoleObj>(objs, 'ClusterRole', 'metallb-system:speaker'))).toEqual([
      'core/events: create,patch',
      'core/namespaces: get,list,watch',
      'core/nodes: get,list,watch',
      'core/services: get,list,watch',
      'discovery.k8s.io/endpointslices: get,list,watch',
    ]);
    const all = 'create,delete,get,list,patch,update,watch';
    expect(flatRules(find<RoleObj>(objs, 'Role', 'pod-lister'))).toEqual([
      'core/configmaps: get,list,watch',
      'core/pods: list',
      'core/secrets: get,list,watch',
      'metallb.io/bfdprofiles: get,list,watch',
      'metallb.io/bgpadvertisements: get,list,watch',
      'metallb.io/bgppeers: get,list,watch',
      'metallb.io/communities: get,list,watch',
      'metallb.io/configurationstates/status: create,get,patch,update',
      'metallb.io/configurationstates: create,get,patch,update',
      'metallb.io/ipaddresspools: get,list,watch',
      'metallb.io/l2advertisements: get,list,watch',
      `metallb.io/servicebgpstatuses/status: ${all}`,
      `metallb.io/servicebgpstatuses: ${all}`,
      `metallb.io/servicel2statuses/status: ${all}`,
      `metallb.io/servicel2statuses: ${all}`,
    ]);
    for (const [kind, name, roleKind, sa] of [
      ['ClusterRoleBinding', 'metallb-system:controller', 'ClusterRole', 'controller'],
      ['RoleBinding', 'controller', 'Role', 'controller'],
      ['ClusterRoleBinding', 'metallb-system:speaker', 'ClusterRole', 'speaker'],
      ['RoleBinding', 'pod-lister', 'Role', 'speaker'],
    ] as const) {
      const b = find<Binding>(objs, kind, name);
      expect(b.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: roleKind, name });
      expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: sa, namespace: NS }]);
    }
  });

  it('frr-startup is frr/daemons and frr/vtysh.conf; metallb-excludel2 is the default exclusion list', () => {
    expect(find<ConfigMapObj>(objs, 'ConfigMap', 'frr-startup').data).toEqual({
      daemons: readFileSync(join(ROOT, 'frr', 'daemons'), 'utf8'),
      'vtysh.conf': readFileSync(join(ROOT, 'frr', 'vtysh.conf'), 'utf8'),
    });
    const ex = parseYaml(
      find<ConfigMapObj>(objs, 'ConfigMap', 'metallb-excludel2').data['excludel2.yaml'] as string,
    );
    expect(ex).toEqual({ announcedInterfacesToExclude: DEFAULT_EXCLUDES });
  });
});

interface Variant {
  name: string;
  opts: RenderOptions;
}

const VARIANTS: Variant[] = [
  { name: 'defaults', opts: {} },
  { name: 'frr off', opts: { set: { 'speaker.frr.enabled': false } } },
  { name: 'memberlist off', opts: { set: { 'speaker.memberlist.enabled': false } } },
  { name: 'excludeInterfaces off', opts: { set: { 'speaker.excludeInterfaces.enabled': false } } },
  { name: 'controller off', opts: { set: { 'controller.enabled': false } } },
  { name: 'speaker off', opts: { set: { 'speaker.enabled': false } } },
  {
    name: 'rbac and service accounts off',
    opts: {
      set: {
        'rbac.create': false,
        'controller.serviceAccount.create': false,
        'speaker.serviceAccount.create': false,
      },
    },
  },
  { name: 'crds off', opts: { set: { 'crds.enabled': false } } },
  { name: 'webhooks off', opts: { set: { 'controller.webhookMode': 'disabled' } } },
  {
    name: 'everything set',
    opts: {
      release: { namespace: 'lb-system' },
      values: [
        {
          loadBalancerClass: 'example.com/lb',
          fullnameOverride: 'edge',
          nameOverride: 'edgelb',
          imagePullSecrets: [{ name: 'regcred' }],
          prometheus: { scrapeAnnotations: true, metricsPort: 9200 },
          crds: { validationFailurePolicy: 'Ignore' },
          webhook: { timeoutSeconds: 5 },
          controller: {
            logLevel: 'debug',
            image: { repository: 'registry.example.com/ironlb', tag: 'dev', pullPolicy: 'Always' },
            serviceAccount: { annotations: { 'example.com/role': 'lb' } },
            resources: { limits: { cpu: '100m', memory: '100Mi' } },
            nodeSelector: { 'node-role.kubernetes.io/control-plane': '' },
            tolerations: [{ key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' }],
            affinity: {
              nodeAffinity: {
                requiredDuringSchedulingIgnoredDuringExecution: {
                  nodeSelectorTerms: [{ matchExpressions: [{ key: 'lb', operator: 'Exists' }] }],
                },
              },
            },
            priorityClassName: 'system-cluster-critical',
            podAnnotations: { 'example.com/a': 'b' },
            labels: { team: 'net' },
            livenessProbe: { enabled: false },
          },
          speaker: {
            logLevel: 'debug',
            image: { repository: 'registry.example.com/ironlb', tag: 'dev' },
            ignoreExcludeLB: true,
            bgpDebounceTimeout: 3000,
            tolerateMaster: false,
            tolerations: [{ key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' }],
            memberlist: { mlBindPort: 7947, mlBindAddrOverride: '0.0.0.0', mlSecretKeyPath: '/etc/ml' },
            resources: { requests: { cpu: '50m' } },
            frr: {
              image: { repository: 'registry.example.com/frr-node', tag: '8.4.4-node20' },
              resources: { limits: { memory: '200Mi' } },
            },
            initContainers: { cpReloader: { resources: { limits: { cpu: '200m' } } } },
            securityContext: { fsGroup: 0 },
            podAnnotations: { 'example.com/s': 't' },
            labels: { team: 'net' },
          },
        },
      ],
    },
  },
];

describe('chart variants', () => {
  it('speaker.frr.enabled=false: an L2-only speaker, no FRR container or ConfigMap', () => {
    const objs = render({ set: { 'speaker.frr.enabled': false } });
    expect(ids(objs)).not.toContain('ConfigMap/frr-startup');
    const ds = find<Workload>(objs, 'DaemonSet', 'speaker');
    const pod = ds.spec.template.spec;
    expect(pod.containers.map((c: { name: string }) => c.name)).toEqual(['speaker']);
    expect(pod.initContainers).toBeUndefined();
    expect(pod.shareProcessNamespace).toBeUndefined();
    const s = container(ds, 'speaker');
    expect(s.args).toEqual([
      'speaker',
      '--source=k8s',
      '--namespace=$(METALLB_NAMESPACE)',
      '--log-level=info',
      '--port=9120',
      '--l2',
      '--ml-secret-file=/etc/ml_secret_key/secretkey',
    ]);
    const env = envOf(s);
    for (const k of ['METALLB_BGP_TYPE', 'FRR_CONFIG_FILE', 'FRR_RELOADER_PID_FILE'])
      expect(env[k]).toBeUndefined();
    expect(pod.volumes?.map((v) => v.name)).toEqual(['memberlist', 'metallb-excludel2']);
  });

  it('speaker.memberlist.enabled=false: no memberlist env, port, Secret mount or controller secret name', () => {
    const objs = render({ set: { 'speaker.memberlist.enabled': false } });
    const s = container(find<Workload>(objs, 'DaemonSet', 'speaker'), 'speaker');
    const env = envOf(s);
    for (const k of [
      'METALLB_ML_BIND_ADDR',
      'METALLB_ML_LABELS',
      'METALLB_ML_BIND_PORT',
      'METALLB_ML_SECRET_KEY_PATH',
    ]) {
      expect(env[k]).toBeUndefined();
    }
    expect(s.args).not.toContainEqual(expect.stringMatching(/^--ml-/));
    expect(s.ports).toEqual([{ name: 'monitoring', containerPort: 9120 }]);
    expect(s.volumeMounts?.map((m) => m.name)).toEqual(['reloader', 'metallb-excludel2']);
    expect(
      envOf(container(find<Workload>(objs, 'Deployment', 'controller'), 'controller')).METALLB_ML_SECRET_NAME,
    ).toBeUndefined();
  });

  it('components, RBAC, CRDs and webhooks can be switched off', () => {
    const noController = ids(render({ set: { 'controller.enabled': false } }));
    expect(noController.filter((x) => /controller|webhook/.test(x))).toEqual([]);
    expect(noController).toContain('DaemonSet/speaker');
    const noSpeaker = ids(render({ set: { 'speaker.enabled': false } }));
    expect(noSpeaker.filter((x) => /speaker|pod-lister|frr-startup|excludel2/.test(x))).toEqual([]);
    expect(noSpeaker).toContain('Deployment/controller');
    const noRbac = ids(render(VARIANTS[6]!.opts));
    expect(noRbac.filter((x) => /^(Cluster)?Role|^ServiceAccount/.test(x))).toEqual([]);
    expect(
      ids(render({ set: { 'crds.enabled': false } })).filter((x) => x.startsWith('CustomResource')),
    ).toEqual([]);
    const noHooks = ids(render({ set: { 'controller.webhookMode': 'disabled' } }));
    expect(noHooks).not.toContain('ValidatingWebhookConfiguration/metallb-webhook-configuration');
    expect(noHooks).toContain('Service/metallb-webhook-service'); // still serves the BGPPeer conversion
  });

  it('every value reaches its place (namespace, names, images, class, scheduling, resources)', () => {
    const v = VARIANTS.find((x) => x.name === 'everything set')!;
    const objs = render(v.opts);
    for (const o of objs) {
      if (o.metadata.namespace !== undefined) expect(o.metadata.namespace).toBe('lb-system');
      if (o.kind !== 'CustomResourceDefinition') expect(o.metadata.labels?.app).toBe('edgelb');
    }
    expect(ids(objs)).toEqual(
      expect.arrayContaining([
        'ServiceAccount/edge-controller',
        'ServiceAccount/edge-speaker',
        'ClusterRole/lb-system:edge-controller',
        'Role/edge-pod-lister',
        'Deployment/edge-controller',
        'DaemonSet/edge-speaker',
        'Service/metallb-webhook-service',
        'ValidatingWebhookConfiguration/metallb-webhook-configuration',
        'ConfigMap/frr-startup',
        'ConfigMap/metallb-excludel2',
      ]),
    );
    expect(find<KubeObject>(objs, 'ServiceAccount', 'edge-controller').metadata.annotations).toEqual({
      'example.com/role': 'lb',
    });
    expect(flatRules(find<RoleObj>(objs, 'Role', 'edge-controller'))).toContain(
      'apps/deployments[edge-controller]: get',
    );
    expect(find<Binding>(objs, 'RoleBinding', 'edge-pod-lister').subjects).toEqual([
      { kind: 'ServiceAccount', name: 'edge-speaker', namespace: 'lb-system' },
    ]);
    expect(
      find<Crd>(objs, 'CustomResourceDefinition', 'bgppeers.metallb.io').spec.conversion.webhook.clientConfig
        .service.namespace,
    ).toBe('lb-system');
    const vwc = find<WebhookConfig>(objs, 'ValidatingWebhookConfiguration', 'metallb-webhook-configuration');
    for (const w of vwc.webhooks) {
      expect(w).toMatchObject({ failurePolicy: 'Ignore', timeoutSeconds: 5 });
      expect(w.clientConfig.service.namespace).toBe('lb-system');
    }

    const dep = find<Workload>(objs, 'Deployment', 'edge-controller');
    expect(dep.spec.selector.matchLabels).toEqual({ app: 'edgelb', component: 'controller' });
    const dpod = dep.spec.template;
    expect(dpod.metadata.labels).toEqual({ app: 'edgelb', component: 'controller', team: 'net' });
    expect(dpod.metadata.annotations).toEqual({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '9200',
      'example.com/a': 'b',
    });
    expect(dpod.spec.imagePullSecrets).toEqual([{ name: 'regcred' }]);
    expect(dpod.spec.nodeSelector).toEqual({
      'kubernetes.io/os': 'linux',
      'node-role.kubernetes.io/control-plane': '',
    });
    expect(dpod.spec.tolerations).toEqual([{ key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(dpod.spec.affinity?.nodeAffinity).toBeDefined();
    expect(dpod.spec.priorityClassName).toBe('system-cluster-critical');
    const c = container(dep, 'controller');
    expect(c.image).toBe('registry.example.com/ironlb:dev');
    expect(c.imagePullPolicy).toBe('Always');
    expect(c.args).toEqual(['controller', '--log-level=debug', '--port=9200', '--lb-class=example.com/lb']);
    expectKnownFlags(c, cliFlags('controller.ts'));
    expect(c.resources).toEqual({ limits: { cpu: '100m', memory: '100Mi' } });
    expect(c.livenessProbe).toBeUndefined();
    expect(c.readinessProbe).toBeDefined();
    expect(c.ports[0]).toEqual({ name: 'monitoring', containerPort: 9200 });
    expect(envOf(c)).toMatchObject({
      METALLB_DEPLOYMENT: 'edge-controller',
      METALLB_ML_SECRET_NAME: 'edge-memberlist',
    });

    const ds = find<Workload>(objs, 'DaemonSet', 'edge-speaker');
    const spod = ds.spec.template.spec;
    expect(spod.tolerations).toEqual([{ key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(spod.securityContext).toEqual({ fsGroup: 0 });
    const s = container(ds, 'speaker');
    expect(s.args).toEqual([
      'speaker',
      '--source=k8s',
      '--namespace=$(METALLB_NAMESPACE)',
      '--log-level=debug',
      '--port=9200',
      '--l2',
      '--frr-dir=/etc/frr_reloader',
      '--ml-secret-file=/etc/ml/secretkey',
      '--lb-class=example.com/lb',
      '--ignore-exclude-lb',
      '--bgp-debounce-timeout=3000',
    ]);
    expectKnownFlags(s, cliFlags('speaker.ts'));
    expect(envOf(s)).toMatchObject({
      METALLB_ML_BIND_ADDR: '0.0.0.0',
      METALLB_ML_LABELS: 'app=edgelb,component=speaker',
      METALLB_ML_BIND_PORT: '7947',
      METALLB_ML_SECRET_KEY_PATH: '/etc/ml',
    });
    expect(s.ports.slice(1)).toEqual([
      { name: 'memberlist-tcp', containerPort: 7947, protocol: 'TCP' },
      { name: 'memberlist-udp', containerPort: 7947, protocol: 'UDP' },
    ]);
    expect(s.resources).toEqual({ requests: { cpu: '50m' } });
    expect(container(ds, 'frr').image).toBe('registry.example.com/frr-node:8.4.4-node20');
    expect(container(ds, 'frr').resources).toEqual({ limits: { memory: '200Mi' } });
    expect(s.image).toBe('registry.example.com/ironlb:dev');
    expect(container(ds, 'cp-reloader').image).toBe('registry.example.com/ironlb:dev');
    expect(container(ds, 'cp-reloader').resources).toEqual({ limits: { cpu: '200m' } });
    expect(spod.volumes?.find((x) => x.name === 'memberlist')?.secret?.secretName).toBe('edge-memberlist');
  });
});

// ---------------------------------------------------------------------------------------------
// 4. Generated files in sync
// ---------------------------------------------------------------------------------------------

describe('generated files', () => {
  function check(path: string, want: string) {
    const have = existsSync(path) ? readFileSync(path, 'utf8') : '';
    if (UPDATE) {
      if (have !== want) {
        writeFileSync(path, want);
        process.stderr.write(`UPDATE_MANIFESTS: rewrote ${path}\n`);
      }
      return;
    }
    if (have !== want) {
      throw new Error(
        `${path} is out of date with the chart / deploy/crds; run\n  UPDATE_MANIFESTS=1 NODE_OPTIONS=--experimental-vm-modules npx jest test/integration/deploy.test.ts`,
      );
    }
  }

  it('templates/crds.yaml is generated from deploy/crds', () => {
    check(CRDS_TEMPLATE, crdsTemplate());
  });

  it.each(MANIFEST_FILES.map((m) => [m.file, m] as const))(
    'deploy/manifests/%s is the rendered chart',
    (_f, m) => {
      const fresh = loadChart(CHART_DIR); // after a possible crds.yaml rewrite
      check(join(MANIFESTS_DIR, m.file), manifestText(fresh, m));
      // Semantically: the Namespace, then exactly the chart's objects.
      const docs = parseAllDocuments(readFileSync(join(MANIFESTS_DIR, m.file), 'utf8'), {
        version: '1.1',
      }).map((d) => d.toJSON() as KubeObject);
      expect(docs[0]).toMatchObject({ kind: 'Namespace', metadata: { name: NS } });
      expect(docs.slice(1)).toEqual(renderChart(fresh, m.opts).docs.map((d) => d.obj));
    },
  );

  it('deploy/manifests holds only generated files', () => {
    expect(readdirSync(MANIFESTS_DIR).sort()).toEqual(MANIFEST_FILES.map((m) => m.file).sort());
  });
});

// ---------------------------------------------------------------------------------------------
// 5. A real apiserver
// ---------------------------------------------------------------------------------------------

const unavailable = k8sUnavailableReason();
const isCI = process.env.CI === 'true';
if (unavailable && !isCI)
  console.warn(`deploy: apiserver part SKIPPED: ${unavailable} (CI=true never skips)`);
const describeK8s = unavailable && !isCI ? describe.skip : describe;

const hasKubectl = (() => {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

function freePorts(n: number): Promise<number[]> {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<number>((resolve, reject) => {
          const srv = net.createServer();
          srv.on('error', reject);
          srv.listen(0, '127.0.0.1', () => {
            const port = (srv.address() as net.AddressInfo).port;
            srv.close(() => resolve(port));
          });
        }),
    ),
  );
}

function httpGetStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

interface ApiResource {
  name: string;
  namespaced: boolean;
  kind: string;
}

describeK8s('on a real kube-apiserver', () => {
  let cp: ControlPlane;
  const discovery = new Map<string, { base: string; plural: string; namespaced: boolean }>();
  const tmp = mkdtempSync(join(tmpdir(), 'ironlb-deploy-'));

  async function resourceOf(o: KubeObject) {
    const key = `${o.apiVersion}/${o.kind}`;
    if (!discovery.has(key)) {
      const base = o.apiVersion.includes('/') ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`;
      const r = await cp.request('GET', base);
      expect([base, r.status]).toEqual([base, 200]);
      for (const res of r.json<{ resources: ApiResource[] }>().resources) {
        if (!res.name.includes('/'))
          discovery.set(`${o.apiVersion}/${res.kind}`, {
            base,
            plural: res.name,
            namespaced: res.namespaced,
          });
      }
    }
    const d = discovery.get(key);
    if (!d) throw new Error(`the apiserver does not serve ${key}`);
    return d;
  }

  function pathOf(d: { base: string; plural: string; namespaced: boolean }, o: KubeObject): string {
    if (d.namespaced && !o.metadata.namespace)
      throw new Error(`${o.kind}/${o.metadata.name}: namespaced object without a namespace`);
    const ns = d.namespaced ? `/namespaces/${o.metadata.namespace}` : '';
    return `${d.base}${ns}/${d.plural}/${encodeURIComponent(o.metadata.name)}`;
  }

  /** Server-side apply; dryRun=All unless `real`. */
  async function apply(o: KubeObject, real = false) {
    const d = await resourceOf(o);
    const q = `fieldManager=ironlb-deploy-test&force=true&fieldValidation=Strict${real ? '' : '&dryRun=All'}`;
    return cp.request('PATCH', `${pathOf(d, o)}?${q}`, JSON.stringify(o), {
      'content-type': 'application/apply-patch+yaml',
    });
  }

  async function expectAccepted(objs: KubeObject[], what: string) {
    const failures: string[] = [];
    for (const o of objs) {
      const r = await apply(o);
      if (r.status !== 200 && r.status !== 201)
        failures.push(`${what}: ${o.kind}/${o.metadata.name}: ${r.status} ${r.body.slice(0, 600)}`);
    }
    expect(failures).toEqual([]);
  }

  beforeAll(async () => {
    cp = await ControlPlane.start();
    for (const ns of [NS, 'lb-system']) {
      const r = await cp.request('POST', '/api/v1/namespaces', {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ns },
      });
      expect(r.status).toBe(201);
    }
  }, 180_000);

  afterAll(async () => {
    await cp?.stop();
    rmSync(tmp, { recursive: true, force: true });
  }, 60_000);

  it.each(VARIANTS.map((v) => [v.name, v] as const))(
    'server-side dry run accepts every rendered object: %s',
    async (_n, v) => {
      const objs = render(v.opts);
      expect(objs.length).toBeGreaterThan(0);
      await expectAccepted(objs, v.name);
    },
  );

  it.each(MANIFEST_FILES.map((m) => [m.file] as const))(
    'server-side dry run accepts every object of deploy/manifests/%s',
    async (file) => {
      const docs = parseAllDocuments(readFileSync(join(MANIFESTS_DIR, file), 'utf8'), { version: '1.1' })
        .map((d) => d.toJSON() as KubeObject)
        .filter(Boolean);
      expect(docs.length).toBeGreaterThan(20);
      await expectAccepted(docs, file);
    },
  );

  it('the dry run is a real check: broken objects and unknown fields are rejected', async () => {
    const dep = structuredClone(find<Workload>(render(), 'Deployment', 'controller'));
    dep.spec.template.spec.containers[0]!.imagePullPolicy = 'Sometimes';
    expect((await apply(dep)).status).toBe(422);
    const svc = structuredClone(find<ServiceObj>(render(), 'Service', 'metallb-webhook-service'));
    svc.spec.bogusField = true;
    const r = await apply(svc);
    // Server-side apply answers 500 "field not declared in schema" (kube-apiserver 1.35).
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.body).toMatch(/bogusField/);
  });

  (hasKubectl ? it : it.skip)('kubectl apply --dry-run=server takes deploy/crds and deploy/manifests', () => {
    for (const f of [CRDS_DIR, ...MANIFEST_FILES.map((m) => join(MANIFESTS_DIR, m.file))]) {
      const out = execFileSync(
        'kubectl',
        ['--kubeconfig', cp.kubeconfigPath, 'apply', '--dry-run=server', '-f', f],
        {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
          // Loopback only: no proxy.
          env: Object.fromEntries(
            Object.entries(process.env).filter(([k]) => !/^(https?|all|no)_proxy$/i.test(k)),
          ),
        },
      );
      expect(out).toMatch(/(created|configured|unchanged) \(server dry run\)/);
    }
  });

  describe('RBAC applied for real', () => {
    const objs = render();
    const sa = (name: string) => `system:serviceaccount:${NS}:${name}`;

    async function can(user: string, attrs: Record<string, string>): Promise<boolean> {
      const r = await cp.request('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user,
          groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'],
          resourceAttributes: attrs,
        },
      });
      expect(r.status).toBe(201);
      return r.json<{ status: { allowed: boolean } }>().status.allowed;
    }

    /** "verb group/resource[/sub] [ns] [name]" → allowed? */
    async function check(user: string, lines: string[]): Promise<string[]> {
      const out: string[] = [];
      for (const l of lines) {
        const [verb, gr, ns, name] = l.split(' ');
        const [group, resource, subresource] = gr!.split('/');
        const allowed = await can(user, {
          verb: verb!,
          group: group === 'core' ? '' : group!,
          resource: resource!,
          ...(subresource ? { subresource } : {}),
          ...(ns && ns !== '-' ? { namespace: ns } : {}),
          ...(name ? { name } : {}),
        });
        out.push(`${allowed ? 'allow' : 'deny'} ${l}`);
      }
      return out;
    }

    const tokens = new Map<string, string>();

    beforeAll(async () => {
      for (const o of objs.filter((x) =>
        /^(ServiceAccount|ClusterRole|ClusterRoleBinding|Role|RoleBinding)$/.test(x.kind),
      )) {
        const r = await apply(o, true);
        expect([o.kind, o.metadata.name, r.status < 300 ? 'ok' : r.body]).toEqual([
          o.kind,
          o.metadata.name,
          'ok',
        ]);
      }
      const pool = await cp.request('POST', `/apis/metallb.io/v1beta1/namespaces/${NS}/ipaddresspools`, {
        apiVersion: 'metallb.io/v1beta1',
        kind: 'IPAddressPool',
        metadata: { name: 'pool', namespace: NS },
        spec: { addresses: ['198.51.100.0/28'] },
      });
      expect(pool.status).toBe(201);
      for (const name of ['controller', 'speaker']) {
        const r = await cp.request('POST', `/api/v1/namespaces/${NS}/serviceaccounts/${name}/token`, {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { expirationSeconds: 3600 },
        });
        expect(r.status).toBe(201);
        tokens.set(name, r.json<{ status: { token: string } }>().status.token);
      }
    }, 60_000);

    function kubeconfigFor(name: string): string {
      const path = join(tmp, `${name}.kubeconfig`);
      writeFileSync(
        path,
        [
          'apiVersion: v1',
          'kind: Config',
          `clusters: [{name: c, cluster: {server: "${cp.server}", certificate-authority: "${cp.caPath}"}}]`,
          `users: [{name: u, user: {token: "${tokens.get(name)}"}}]`,
          'contexts: [{name: x, context: {cluster: c, user: u}}]',
          'current-context: x',
          '',
        ].join('\n'),
        { mode: 0o600 },
      );
      return path;
    }

    it('the controller may do what it needs and nothing more', async () => {
      const allow = [
        'list core/services',
        'watch core/services',
        'get core/services default web',
        'patch core/services/status default web',
        'update core/services/status default web',
        'create core/events default',
        'patch core/events default',
        'list core/namespaces',
        'watch core/namespaces',
        `list metallb.io/ipaddresspools ${NS}`,
        `watch metallb.io/communities ${NS}`,
        // The validating webhooks parse the whole configuration, with the Nodes.
        ...['l2advertisements', 'bgpadvertisements', 'bgppeers', 'bfdprofiles'].map(
          (r) => `watch metallb.io/${r} ${NS}`,
        ),
        'list core/nodes',
        'watch core/nodes',
        `patch metallb.io/ipaddresspools/status ${NS} pool`,
        `create metallb.io/configurationstates ${NS}`,
        `patch metallb.io/configurationstates/status ${NS} controller`,
        `create coordination.k8s.io/leases ${NS}`,
        `update coordination.k8s.io/leases ${NS} metallb-controller`,
        `create core/secrets ${NS}`,
        `get core/secrets ${NS} memberlist`,
        `patch core/secrets ${NS} metallb-webhook-cert`,
        `get apps/deployments ${NS} controller`,
        'patch admissionregistration.k8s.io/validatingwebhookconfigurations - metallb-webhook-configuration',
        'patch apiextensions.k8s.io/customresourcedefinitions - bgppeers.metallb.io',
      ];
      const deny = [
        'update core/services default web',
        'delete core/services default web',
        'list core/secrets',
        'get core/secrets default x',
        `delete core/secrets ${NS} memberlist`,
        'patch core/nodes - node-a',
        'list core/pods',
        `list metallb.io/bgppeers default`,
        `create metallb.io/bgppeers ${NS}`,
        `update metallb.io/ipaddresspools ${NS} pool`,
        'list metallb.io/ipaddresspools default',
        `get apps/deployments ${NS} speaker`,
        'patch admissionregistration.k8s.io/validatingwebhookconfigurations - other',
        'patch apiextensions.k8s.io/customresourcedefinitions - ipaddresspools.metallb.io',
        `create coordination.k8s.io/leases default`,
        'create core/namespaces',
      ];
      expect(await check(sa('controller'), allow)).toEqual(allow.map((l) => `allow ${l}`));
      expect(await check(sa('controller'), deny)).toEqual(deny.map((l) => `deny ${l}`));
    });

    it('the speaker may do what it needs and nothing more', async () => {
      const allow = [
        'list core/services',
        'watch discovery.k8s.io/endpointslices',
        'list core/nodes',
        'watch core/namespaces',
        'create core/events default',
        ...[
          'ipaddresspools',
          'l2advertisements',
          'bgpadvertisements',
          'bgppeers',
          'communities',
          'bfdprofiles',
        ].map((r) => `watch metallb.io/${r} ${NS}`),
        `list core/secrets ${NS}`,
        `watch core/configmaps ${NS}`,
        `list core/pods ${NS}`,
        `create metallb.io/servicel2statuses ${NS}`,
        `delete metallb.io/servicebgpstatuses ${NS} bgp-x`,
        `patch metallb.io/servicel2statuses/status ${NS} l2-x`,
        `patch metallb.io/configurationstates/status ${NS} speaker-node-a`,
      ];
      const deny = [
        'patch core/services/status default web',
        'list core/secrets',
        'list core/pods',
        `get core/pods ${NS} x`,
        `create metallb.io/ipaddresspools ${NS}`,
        `delete metallb.io/configurationstates ${NS} speaker-node-a`,
        `create coordination.k8s.io/leases ${NS}`,
        'patch core/nodes - node-a',
        'create core/secrets default',
      ];
      expect(await check(sa('speaker'), allow)).toEqual(allow.map((l) => `allow ${l}`));
      expect(await check(sa('speaker'), deny)).toEqual(deny.map((l) => `deny ${l}`));
    });

    it('the controller runs with the Deployment args and only its ServiceAccount token: allocates, answers the probes', async () => {
      const admin = await KubeClient.fromKubeConfig(cp.kubeconfigPath);
      const logs: string[] = [];
      const abort = new AbortController();
      const prevNs = process.env.METALLB_NAMESPACE;
      process.env.METALLB_NAMESPACE = NS; // the Deployment sets it from the downward API
      const dep = find<Workload>(objs, 'Deployment', 'controller');
      const c = container(dep, 'controller');
      // The manifest's args, on free loopback ports instead of 9120 / 17472.
      const [metricsPort, healthPort] = await freePorts(2);
      const args = [
        ...c.args.slice(1).map((a) => (a.startsWith('--port=') ? `--port=${metricsPort}` : a)),
        `--health-probe-port=${healthPort}`,
        '--host=127.0.0.1',
        '--kubeconfig',
        kubeconfigFor('controller'),
        '--lease-duration-ms',
        '3000',
        '--renew-ms',
        '1000',
      ];
      expect(c.args[0]).toBe('controller');
      const done = runController(
        args,
        { out: (t) => void logs.push(t), err: (t) => void logs.push(t) },
        abort.signal,
      );
      try {
        for (const probe of [c.livenessProbe, c.readinessProbe]) {
          const { path, port } = probe!.httpGet as { path: string; port: number };
          expect(port).toBe(17472);
          await waitFor(async () => (await httpGetStatus(`http://127.0.0.1:${healthPort}${path}`)) === 200, {
            timeoutMs: 10_000,
            what: `controller ${path}`,
          });
        }
        await admin.create(RESOURCES.services, 'default', {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: 'web', namespace: 'default' },
          spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }], selector: { app: 'web' } },
        });
        type Svc = KObject & { status?: { loadBalancer?: { ingress?: Array<{ ip?: string }> } } };
        await waitFor(
          async () => {
            const s = await admin.get<Svc>(RESOURCES.services, 'default', 'web');
            return (s.status?.loadBalancer?.ingress ?? []).length === 1;
          },
          { timeoutMs: 30_000, what: 'the controller (ServiceAccount token) allocates an IP' },
        );
        await waitFor(
          async () => {
            const st = await admin.get<KObject & { status?: { result?: string } }>(
              RESOURCES.configurationStates,
              NS,
              'controller',
            );
            return st.status?.result === 'Valid';
          },
          { timeoutMs: 15_000, what: 'ConfigurationState controller written' },
        );
      } finally {
        abort.abort();
        await done;
        if (prevNs === undefined) delete process.env.METALLB_NAMESPACE;
        else process.env.METALLB_NAMESPACE = prevNs;
        admin.close();
      }
      expect(logs.join('')).not.toMatch(/forbidden|\b403\b/i);
    }, 60_000);

    it("the speaker's Kubernetes source syncs with only its ServiceAccount token", async () => {
      const client = await KubeClient.fromKubeConfig(kubeconfigFor('speaker'));
      const lines: string[] = [];
      const log = createLogger({
        level: 'debug',
        write: (l) => void lines.push(l),
        base: { component: 'test' },
      });
      const source = new K8sSource({ client, namespace: NS, log });
      let kinds = new Set<string>();
      try {
        await source.start((objs) => (kinds = new Set(objs.map((o) => String(o.obj.kind)))));
        await waitFor(async () => Promise.resolve(kinds.has('IPAddressPool') && kinds.has('Namespace')), {
          timeoutMs: 15_000,
          what: 'the speaker source lists the pool and the Namespaces',
          describe: () => [...kinds].join(','),
        });
      } finally {
        await source.stop();
        client.close();
      }
      expect(lines.join('')).not.toMatch(/forbidden|\b403\b/i);
    }, 60_000);
  });
});
