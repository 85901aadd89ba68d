/**
 * Golden tests for frr.conf (spec section e): every directory under test/golden/frr/ holds an
 * `input.yaml` (metallb.io objects, Nodes, Services, optional EndpointSlices and Secrets), an
 * optional `args.json` and the `expected.conf` written by hand from the spec.
 *
 * 1. Each scenario is rendered in-process through the same path as `ironlb render` and must match
 *    expected.conf byte for byte; rendering twice must give identical bytes.
 * 2. The CLI itself (`ironlb render`, in-process) must print the same bytes.
 * 3. Every expected.conf must be accepted by real FRR's parser (`vtysh -C`). Skipped only when
 *    vtysh is absent and CI is not "true".
 *
 * `UPDATE_GOLDENS=1` rewrites expected.conf from the renderer (see test/golden/README.md): the
 * rewritten files must then be reviewed line by line against the spec before committing.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

import { parseYamlObjects, sortObjects } from '../../src/config/load.js';
import { ConfigParser, DEFAULT_NAMESPACE } from '../../src/config/parse.js';
import { formatProblem } from '../../src/config/problems.js';
import { CrdSchemas, findPackageRoot } from '../../src/config/schema.js';
import { main } from '../../src/cli/main.js';
import { renderNodeConfig } from '../../src/frr/node.js';
import { FrrRenderer } from '../../src/frr/render.js';
import type { LogLevel } from '../../src/frr/viewmodel.js';
import { endpointIndexFrom, EVERYWHERE, speakerServiceFrom } from '../../src/speaker/inputs.js';
import { frrDryRun } from '../lab/frr.js';

const ROOT = findPackageRoot();
const GOLDEN_DIR = join(ROOT, 'test', 'golden', 'frr');
const UPDATE = process.env.UPDATE_GOLDENS === '1';
const MIN_SCENARIOS = 45;

/** args.json: how `ironlb render` is invoked for the scenario (all optional). */
interface ScenarioArgs {
  /** --node (default "node-a"). */
  node?: string;
  /** --hostname (default: the node name). */
  hostname?: string;
  /** --log-level (default "info"). */
  logLevel?: LogLevel;
  /** --lb-class (default "": only Services without a class). */
  lbClass?: string;
  /** --ignore-exclude-lb. */
  ignoreExcludeLb?: boolean;
}

interface Scenario {
  name: string;
  dir: string;
  input: string;
  expected: string;
  args: Required<Omit<ScenarioArgs, 'hostname'>> & { hostname?: string };
}

const ARG_KEYS = new Set(['node', 'hostname', 'logLevel', 'lbClass', 'ignoreExcludeLb']);

function loadScenarios(): Scenario[] {
  if (!existsSync(GOLDEN_DIR)) return [];
  return readdirSync(GOLDEN_DIR)
    .filter((n) => statSync(join(GOLDEN_DIR, n)).isDirectory())
    .sort()
    .map((name) => {
      const dir = join(GOLDEN_DIR, name);
      const argsPath = join(dir, 'args.json');
      const raw: ScenarioArgs = existsSync(argsPath)
        ? (JSON.parse(readFileSync(argsPath, 'utf8')) as ScenarioArgs)
        : {};
      for (const k of Object.keys(raw)) {
        if (!ARG_KEYS.has(k)) throw new Error(`${argsPath}: unknown key "${k}"`);
      }
      return {
        name,
        dir,
        input: join(dir, 'input.yaml'),
        expected: join(dir, 'expected.conf'),
        args: {
          node: raw.node ?? 'node-a',
          ...(raw.hostname !== undefined ? { hostname: raw.hostname } : {}),
          logLevel: raw.logLevel ?? 'info',
          lbClass: raw.lbClass ?? '',
          ignoreExcludeLb: raw.ignoreExcludeLb ?? false,
        },
      };
    });
}

const parser = new ConfigParser(CrdSchemas.load());
const renderer = new FrrRenderer();

/** The `ironlb render` pipeline (src/cli/render.ts), in-process, without the file output. */
function render(s: Scenario): string {
  const objects = sortObjects(parseYamlObjects(readFileSync(s.input, 'utf8'), s.input));
  const nodes = [...objects.config.nodes];
  let me = nodes.find((n) => n.name === s.args.node);
  if (!me) {
    me = { name: s.args.node, labels: {} };
    nodes.push(me);
  }
  const res = parser.parse(
    { ...objects.config, nodes },
    { namespace: DEFAULT_NAMESPACE, scope: 'full', nodeName: s.args.node },
  );
  if (!res.config) {
    throw new Error(
      `${s.name}: input.yaml is not a valid configuration:\n${res.problems.map(formatProblem).join('\n')}`,
    );
  }
  return renderNodeConfig(renderer, {
    config: res.config,
    node: me,
    services: objects.services.map(speakerServiceFrom),
    endpoints: objects.endpointSlices.length ? endpointIndexFrom(objects.endpointSlices) : EVERYWHERE,
    lbClass: s.args.lbClass,
    hostname: s.args.hostname ?? s.args.node,
    logLevel: s.args.logLevel,
    ignoreExcludeLabel: s.args.ignoreExcludeLb,
  }).text;
}

function cliArgs(s: Scenario): string[] {
  const a = ['render', '-f', s.input, '--node', s.args.node, '--log-level', s.args.logLevel];
  if (s.args.hostname !== undefined) a.push('--hostname', s.args.hostname);
  if (s.args.lbClass !== '') a.push('--lb-class', s.args.lbClass);
  if (s.args.ignoreExcludeLb) a.push('--ignore-exclude-lb');
  return a;
}

/** Line diff (LCS), unified style with 3 lines of context and 1-based line numbers. */
function lineDiff(expected: string, actual: string): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  const n = a.length;
  const m = b.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const ops: Array<{ op: ' ' | '-' | '+'; text: string; ln: number }> = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      ops.push({ op: ' ', text: a[i]!, ln: i + 1 });
      i++;
      j++;
    } else if (j < m && (i === n || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) {
      ops.push({ op: '+', text: b[j]!, ln: j + 1 });
      j++;
    } else {
      ops.push({ op: '-', text: a[i]!, ln: i + 1 });
      i++;
    }
  }
  const keep = ops.map((o, k) => ops.slice(Math.max(0, k - 3), k + 4).some((x) => x.op !== ' '));
  const out: string[] = ['--- expected.conf', '+++ rendered'];
  let skipped = false;
  ops.forEach((o, k) => {
    if (!keep[k]) {
      if (!skipped) out.push('  ...');
      skipped = true;
      return;
    }
    skipped = false;
    const mark = o.op === '-' ? 'exp' : o.op === '+' ? 'got' : '   ';
    out.push(`${o.op} ${mark} ${String(o.ln).padStart(3)} | ${JSON.stringify(o.text).slice(1, -1)}`);
  });
  return out.join('\n');
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '')
    .split(delimiter)
    .filter(Boolean)
    .some((d) => existsSync(join(d, cmd)));
}

const scenarios = loadScenarios();
const CI = process.env.CI === 'true';
const HAVE_VTYSH = onPath('vtysh');

describe('frr.conf goldens', () => {
  test(`there are at least ${MIN_SCENARIOS} scenarios, each with input.yaml and expected.conf`, () => {
    expect(scenarios.length).toBeGreaterThanOrEqual(MIN_SCENARIOS);
    for (const s of scenarios) {
      expect(existsSync(s.input) ? s.name : `${s.name}: input.yaml missing`).toBe(s.name);
      if (!UPDATE) {
        expect(existsSync(s.expected) ? s.name : `${s.name}: expected.conf missing`).toBe(s.name);
      }
    }
  });

  test.each(scenarios.map((s) => [s.name, s] as const))('%s renders byte for byte', (_name, s) => {
    const first = render(s);
    const second = render(s);
    if (first !== second) {
      throw new Error(`${s.name}: rendering twice gave different bytes\n${lineDiff(first, second)}`);
    }
    if (UPDATE) {
      const old = existsSync(s.expected) ? readFileSync(s.expected, 'utf8') : undefined;
      if (old !== first) {
        writeFileSync(s.expected, first);
        process.stderr.write(`UPDATE_GOLDENS: rewrote ${s.expected} (review it against the spec)\n`);
      }
      return;
    }
    const expected = readFileSync(s.expected, 'utf8');
    if (first !== expected) {
      throw new Error(
        `${s.name}: rendered frr.conf differs from ${s.expected}\n${lineDiff(expected, first)}`,
      );
    }
  });

  test.each(scenarios.map((s) => [s.name, s] as const))(
    '%s: `ironlb render` prints the same bytes',
    async (_name, s) => {
      let out = '';
      let err = '';
      const code = await main(cliArgs(s), { out: (t) => void (out += t), err: (t) => void (err += t) });
      expect({ code, err }).toEqual({ code: 0, err: '' });
      const expected = readFileSync(s.expected, 'utf8');
      if (out !== expected) {
        throw new Error(`${s.name}: ironlb render output differs\n${lineDiff(expected, out)}`);
      }
    },
  );
});

const frrDescribe = HAVE_VTYSH || CI ? describe : describe.skip;

frrDescribe('real FRR accepts every expected.conf (vtysh -C)', () => {
  test('vtysh is installed (required under CI=true: run scripts/install-lab-deps.sh)', () => {
    expect(HAVE_VTYSH).toBe(true);
  });

  test.each(scenarios.map((s) => [s.name, s] as const))(
    '%s',
    async (_name, s) => {
      const text = readFileSync(s.expected, 'utf8');
      const r = await frrDryRun(text);
      if (!r.ok) {
        const lines = text.split('\n');
        const detail = r.errors.map((e) => {
          const m = /^line (\d+):/.exec(e);
          return m ? `${e}\n    expected.conf:${m[1]}: ${lines[Number(m[1]) - 1] ?? '?'}` : e;
        });
        throw new Error(`${s.name}: FRR rejected expected.conf:\n${detail.join('\n')}`);
      }
    },
    60_000,
  );
});
