/**
 * A renderer for the small subset of Helm's template language that deploy/helm/ironlb uses, so
 * the tests can render the chart without a helm binary. Anything outside the subset is an error
 * (TemplateError, with the template name and line), never a silent difference from Helm.
 *
 * Supported (Go text/template semantics unless noted):
 *   text, {{ pipeline }}, trim markers {{- and -}}, comments {{/* … *\/}} (also with trim markers)
 *   {{ if P }} … {{ else if P }} … {{ else }} … {{ end }}
 *   {{ range P }} … {{ end }}, {{ range $v := P }}, {{ range $k, $v := P }} (lists; maps in key order)
 *   {{ define "name" }} … {{ end }} (top level only; from every template, as Helm does)
 *   operands: .Values.a.b, .Release.Name|Namespace|Service|IsInstall|IsUpgrade|Revision,
 *             .Chart.Name|Version|AppVersion|Description|Type, . (dot), $ (root), $var, $.Values.x,
 *             $var.field, "strings" (Go escapes), `raw strings`, integers, true, false, ( pipeline )
 *   pipelines: a | f b c  (the piped value is the last argument)
 *   functions: include NAME DOT, quote, default DEFAULT VALUE, toYaml, nindent N, indent N,
 *              not, and, or (short-circuit, return an operand), eq, ne (scalars of one type)
 *
 * Stricter than Helm (deliberately): printing a missing/null value is an error (Helm prints an
 * empty string), as is printing a map or list (Helm prints Go syntax: use toYaml), reading a
 * field of a missing value (Helm: "nil pointer evaluating"), and eq/ne of different types.
 * toYaml sorts map keys, does not indent list items under their key and quotes YAML 1.1 booleans,
 * like Helm's (sigs.k8s.io/yaml); rendered documents are parsed as YAML 1.1, as Kubernetes does.
 *
 * Chart handling: Chart.yaml, values.yaml, values.schema.json (validated with ajv, as Helm does),
 * templates/*.yaml|*.yml|*.tpl (files starting with "_" and NOTES.txt produce no output), value
 * overrides merged like Helm's coalescing (maps merge, null deletes a key, lists replace), output
 * split into YAML documents and sorted in Helm's install order (kind, then file name, then
 * position), as `helm template` prints them.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';

export class TemplateError extends Error {
  constructor(
    readonly template: string,
    readonly line: number,
    message: string,
  ) {
    super(`${template}:${line}: ${message}`);
    this.name = 'TemplateError';
  }
}

export class ValuesError extends Error {
  constructor(readonly problems: string[]) {
    super(`values do not match values.schema.json:\n  ${problems.join('\n  ')}`);
    this.name = 'ValuesError';
  }
}

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

type Tok =
  | { t: 'field'; path: string[] } // .a.b (path [] = dot)
  | { t: 'var'; name: string; path: string[] } // $ / $x / $x.a.b (name '' = $)
  | { t: 'ident'; v: string }
  | { t: 'str'; v: string }
  | { t: 'num'; v: number }
  | { t: 'bool'; v: boolean }
  | { t: 'punct'; v: '(' | ')' | '|' | ':=' | ',' };

interface RawAction {
  kind: 'action';
  toks: Tok[];
  line: number;
}
interface RawText {
  kind: 'text';
  text: string;
}

const WS = new Set([' ', '\t', '\r', '\n']);

function lex(name: string, src: string): Array<RawAction | RawText> {
  const out: Array<RawAction | RawText> = [];
  let pos = 0;
  let trimNext = false;
  const lineAt = (i: number) => src.slice(0, i).split('\n').length;
  while (pos <= src.length) {
    const open = src.indexOf('{{', pos);
    let text = open === -1 ? src.slice(pos) : src.slice(pos, open);
    if (trimNext) text = text.replace(/^[ \t\r\n]+/, '');
    trimNext = false;
    if (open === -1) {
      if (text) out.push({ kind: 'text', text });
      break;
    }
    const line = lineAt(open);
    let i = open + 2;
    if (src[i] === '-' && WS.has(src[i + 1] ?? '')) {
      text = text.replace(/[ \t\r\n]+$/, '');
      i += 2;
    } else if (src[i] === '-') {
      throw new TemplateError(name, line, '"{{-" must be followed by a space');
    }
    if (text) out.push({ kind: 'text', text });
    while (WS.has(src[i] ?? '')) i++;
    // Comment: {{/* … */}} with optional trim markers.
    if (src.startsWith('/*', i)) {
      const end = src.indexOf('*/', i + 2);
      if (end === -1) throw new TemplateError(name, line, 'unclosed comment');
      let j = end + 2;
      while (WS.has(src[j] ?? '')) j++;
      if (src.startsWith('-}}', j) && WS.has(src[j - 1] ?? '')) {
        trimNext = true;
        j += 3;
      } else if (src.startsWith('}}', j)) j += 2;
      else throw new TemplateError(name, line, 'a comment must end with "*/}}"');
      pos = j;
      continue;
    }
    const toks: Tok[] = [];
    for (;;) {
      while (WS.has(src[i] ?? '')) i++;
      if (i >= src.length) throw new TemplateError(name, line, 'unclosed action');
      if (src.startsWith('}}', i)) {
        i += 2;
        break;
      }
      if (src.startsWith('-}}', i) && WS.has(src[i - 1] ?? '')) {
        trimNext = true;
        i += 3;
        break;
      }
      const c = src[i]!;
      if (c === '"') {
        let j = i + 1;
        let s = '';
        for (;;) {
          const d = src[j];
          if (d === undefined || d === '\n') throw new TemplateError(name, line, 'unterminated string');
          if (d === '"') break;
          if (d === '\\') {
            const e = src[j + 1];
            const map: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"' };
            if (e === undefined || !(e in map)) {
              throw new TemplateError(name, line, `unsupported escape \\${e ?? ''} in a string`);
            }
            s += map[e];
            j += 2;
            continue;
          }
          s += d;
          j++;
        }
        toks.push({ t: 'str', v: s });
        i = j + 1;
      } else if (c === '`') {
        const end = src.indexOf('`', i + 1);
        if (end === -1) throw new TemplateError(name, line, 'unterminated raw string');
        toks.push({ t: 'str', v: src.slice(i + 1, end) });
        i = end + 1;
      } else if (c === '(' || c === ')' || c === '|' || c === ',') {
        toks.push({ t: 'punct', v: c });
        i++;
      } else if (src.startsWith(':=', i)) {
        toks.push({ t: 'punct', v: ':=' });
        i += 2;
      } else if (c === '=') {
        throw new TemplateError(name, line, 'variable assignment ("=") is not supported');
      } else if (c === '.' || c === '$') {
        const m = /^(\$[A-Za-z0-9_]*)?((?:\.[A-Za-z_][A-Za-z0-9_]*)*)(\.?)/.exec(src.slice(i))!;
        const whole = m[0];
        if (!whole) throw new TemplateError(name, line, `unexpected "${c}"`);
        const path = m[2] ? m[2].slice(1).split('.') : [];
        if (m[1] !== undefined) {
          if (m[3]) throw new TemplateError(name, line, `bad variable reference "${whole}"`);
          toks.push({ t: 'var', name: m[1].slice(1), path });
        } else {
          if (m[2] && m[3]) throw new TemplateError(name, line, `bad field reference "${whole}"`);
          toks.push({ t: 'field', path });
        }
        i += whole.length;
      } else if (/[0-9-]/.test(c)) {
        const m = /^-?[0-9]+(?![.0-9A-Za-z_])/.exec(src.slice(i));
        if (!m) throw new TemplateError(name, line, 'only decimal integers are supported as numbers');
        toks.push({ t: 'num', v: Number(m[0]) });
        i += m[0].length;
      } else if (/[A-Za-z_]/.test(c)) {
        const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i))!;
        const w = m[0];
        if (w === 'true' || w === 'false') toks.push({ t: 'bool', v: w === 'true' });
        else toks.push({ t: 'ident', v: w });
        i += w.length;
      } else {
        throw new TemplateError(name, line, `unexpected character "${c}" in an action`);
      }
    }
    if (!toks.length) throw new TemplateError(name, line, 'empty action');
    out.push({ kind: 'action', toks, line });
    pos = i;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

type Operand =
  | { k: 'field'; path: string[] }
  | { k: 'var'; name: string; path: string[] }
  | { k: 'lit'; v: unknown }
  | { k: 'pipe'; pipe: Pipeline };

/** First command: an operand or a call; later commands are calls (the piped value goes last). */
interface Command {
  fn?: string;
  args: Operand[];
}
interface Pipeline {
  cmds: Command[];
  line: number;
}

type Node =
  | { n: 'text'; text: string }
  | { n: 'out'; pipe: Pipeline }
  | { n: 'if'; branches: Array<{ cond: Pipeline; body: Node[] }>; orElse: Node[] }
  | { n: 'range'; keyVar?: string; valVar?: string; pipe: Pipeline; body: Node[] };

const FUNCTIONS = new Set([
  'include',
  'quote',
  'default',
  'toYaml',
  'nindent',
  'indent',
  'not',
  'and',
  'or',
  'eq',
  'ne',
]);
const UNSUPPORTED_KEYWORDS = new Set(['with', 'template', 'block', 'break', 'continue', 'tpl', 'nil']);

class Parser {
  private i = 0;
  constructor(
    private readonly name: string,
    private readonly items: Array<RawAction | RawText>,
    private readonly defines: Map<string, Node[]>,
  ) {}

  parseTop(): Node[] {
    const body = this.parseList(true);
    if (this.i < this.items.length) {
      const a = this.items[this.i] as RawAction;
      throw this.err(a.line, `unexpected {{ ${keyword(a)} }}`);
    }
    return body;
  }

  private err(line: number, msg: string): TemplateError {
    return new TemplateError(this.name, line, msg);
  }

  /** Parses until {{ end }} / {{ else … }} (left for the caller) or the end of input. */
  private parseList(top: boolean): Node[] {
    const out: Node[] = [];
    while (this.i < this.items.length) {
      const it = this.items[this.i]!;
      if (it.kind === 'text') {
        out.push({ n: 'text', text: it.text });
        this.i++;
        continue;
      }
      const kw = keyword(it);
      if (kw === 'end' || kw === 'else') return out;
      this.i++;
      if (kw === 'if') out.push(this.parseIf(it));
      else if (kw === 'range') out.push(this.parseRange(it));
      else if (kw === 'define') {
        if (!top) throw this.err(it.line, '"define" is only supported at the top level');
        const n = it.toks[1];
        if (it.toks.length !== 2 || n?.t !== 'str') throw this.err(it.line, 'use {{ define "name" }}');
        const body = this.parseList(false);
        this.expectEnd(it);
        if (this.defines.has(n.v)) throw this.err(it.line, `template "${n.v}" is defined twice`);
        this.defines.set(n.v, body);
      } else if (kw && UNSUPPORTED_KEYWORDS.has(kw)) {
        throw this.err(it.line, `"${kw}" is not supported by test/helm/render.ts`);
      } else {
        out.push({ n: 'out', pipe: this.parsePipeline(it.toks, 0, it.line) });
      }
    }
    return out;
  }

  private expectEnd(open: RawAction): void {
    const it = this.items[this.i];
    if (!it || it.kind !== 'action' || keyword(it) !== 'end') {
      throw this.err(open.line, `{{ ${keyword(open)} }} without {{ end }}`);
    }
    if (it.toks.length !== 1) throw this.err(it.line, '{{ end }} takes no arguments');
    this.i++;
  }

  private parseIf(open: RawAction): Node {
    const branches: Array<{ cond: Pipeline; body: Node[] }> = [];
    let cond = this.parsePipeline(open.toks, 1, open.line);
    let orElse: Node[] = [];
    for (;;) {
      const body = this.parseList(false);
      branches.push({ cond, body });
      const it = this.items[this.i];
      if (it?.kind === 'action' && keyword(it) === 'else') {
        this.i++;
        if (it.toks.length === 1) {
          orElse = this.parseList(false);
          break;
        }
        const second = it.toks[1];
        if (second?.t !== 'ident' || second.v !== 'if') {
          throw this.err(it.line, 'only {{ else }} and {{ else if … }} are supported');
        }
        cond = this.parsePipeline(it.toks, 2, it.line);
        continue;
      }
      break;
    }
    this.expectEnd(open);
    return { n: 'if', branches, orElse };
  }

  private parseRange(open: RawAction): Node {
    const t = open.toks;
    let keyVar: string | undefined;
    let valVar: string | undefined;
    let start = 1;
    const isDecl = (k: number) => t[k]?.t === 'var' && (t[k] as { path: string[] }).path.length === 0;
    if (isDecl(1) && t[2]?.t === 'punct' && t[2].v === ':=') {
      valVar = (t[1] as { name: string }).name;
      start = 3;
    } else if (isDecl(1) && t[2]?.t === 'punct' && t[2].v === ',' && isDecl(3) && t[4]?.t === 'punct') {
      if (t[4].v !== ':=') throw this.err(open.line, 'expected ":=" in range');
      keyVar = (t[1] as { name: string }).name;
      valVar = (t[3] as { name: string }).name;
      start = 5;
    }
    if (keyVar === '' || valVar === '') throw this.err(open.line, 'cannot declare "$" in range');
    const pipe = this.parsePipeline(t, start, open.line);
    const body = this.parseList(false);
    const it = this.items[this.i];
    if (it?.kind === 'action' && keyword(it) === 'else') {
      throw this.err(it.line, '{{ else }} inside range is not supported');
    }
    this.expectEnd(open);
    return { n: 'range', ...(keyVar ? { keyVar } : {}), ...(valVar ? { valVar } : {}), pipe, body };
  }

  private parsePipeline(toks: Tok[], from: number, line: number): Pipeline {
    for (const t of toks.slice(from)) {
      if (t.t === 'punct' && t.v === ':=')
        throw this.err(line, 'variable declarations are only supported in range');
    }
    const cmds: Command[] = [];
    let k = from;
    const operand = (): Operand => {
      const tk = toks[k];
      if (!tk) throw this.err(line, 'missing operand');
      k++;
      switch (tk.t) {
        case 'field':
          return { k: 'field', path: tk.path };
        case 'var':
          return { k: 'var', name: tk.name, path: tk.path };
        case 'str':
        case 'num':
        case 'bool':
          return { k: 'lit', v: tk.v };
        case 'punct': {
          if (tk.v !== '(') throw this.err(line, `unexpected "${tk.v}"`);
          let depth = 1;
          const startK = k;
          while (k < toks.length && depth) {
            const x = toks[k]!;
            if (x.t === 'punct' && x.v === '(') depth++;
            if (x.t === 'punct' && x.v === ')') depth--;
            k++;
          }
          if (depth) throw this.err(line, 'unclosed "("');
          const inner = toks.slice(startK, k - 1);
          const next = toks[k];
          if (next && (next.t === 'field' || next.t === 'var') && next.path.length) {
            throw this.err(line, 'field access on a parenthesised pipeline is not supported');
          }
          return { k: 'pipe', pipe: this.parsePipeline(inner, 0, line) };
        }
        case 'ident':
          throw this.err(line, `function "${tk.v}" used as an argument: wrap it in parentheses`);
      }
    };
    while (k < toks.length) {
      const tk = toks[k]!;
      let cmd: Command;
      if (tk.t === 'ident') {
        if (UNSUPPORTED_KEYWORDS.has(tk.v) || !FUNCTIONS.has(tk.v)) {
          throw this.err(line, `function "${tk.v}" is not supported by test/helm/render.ts`);
        }
        k++;
        cmd = { fn: tk.v, args: [] };
      } else {
        if (cmds.length) throw this.err(line, 'only a function can follow "|"');
        cmd = { args: [operand()] };
      }
      while (k < toks.length && !(toks[k]!.t === 'punct' && (toks[k] as { v: string }).v === '|')) {
        if (!cmd.fn) throw this.err(line, 'an operand cannot take arguments (methods are not supported)');
        cmd.args.push(operand());
      }
      cmds.push(cmd);
      if (k < toks.length) {
        k++; // "|"
        if (k >= toks.length) throw this.err(line, 'missing command after "|"');
      }
    }
    if (!cmds.length) throw this.err(line, 'missing pipeline');
    return { cmds, line };
  }
}

function keyword(a: RawAction): string | undefined {
  const t = a.toks[0];
  return t?.t === 'ident' ? t.v : undefined;
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

type Vars = Map<string, unknown>;

interface Scope {
  dot: unknown;
  vars: Vars;
}

const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Go's truth: false, 0, "", nil, empty map/list are false. */
function truthy(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (isMap(v)) return Object.keys(v).length > 0;
  return true;
}

/**
 * Like Helm's toYaml (sigs.k8s.io/yaml, go-yaml): sorted keys, list items not indented under their
 * key, no folding, and YAML 1.1 scalars, so strings such as "n", "yes" or "on" are quoted.
 */
export function toYaml(v: unknown): string {
  if (v === undefined) return 'null';
  const s = stringifyYaml(v, {
    version: '1.1',
    sortMapEntries: true,
    indentSeq: false,
    lineWidth: 0,
    minContentWidth: 0,
  });
  return s.replace(/\n$/, '');
}

function indent(n: number, s: string): string {
  const pad = ' '.repeat(n);
  return pad + s.split('\n').join('\n' + pad);
}

function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + '"';
}

export class Engine {
  private readonly defines = new Map<string, Node[]>();
  private readonly trees = new Map<string, Node[]>();
  private includeDepth = 0;

  /** Parses every template (name → source); defines are collected from all of them. */
  constructor(templates: ReadonlyMap<string, string>) {
    for (const [name, src] of templates) {
      this.trees.set(name, new Parser(name, lex(name, src), this.defines).parseTop());
    }
  }

  templateNames(): string[] {
    return [...this.trees.keys()];
  }

  render(name: string, root: unknown): string {
    const tree = this.trees.get(name);
    if (!tree) throw new Error(`no template ${name}`);
    return this.exec(name, tree, { dot: root, vars: new Map([['', root]]) });
  }

  private exec(tpl: string, nodes: Node[], scope: Scope): string {
    let out = '';
    for (const n of nodes) {
      switch (n.n) {
        case 'text':
          out += n.text;
          break;
        case 'out': {
          const v = this.pipe(tpl, n.pipe, scope);
          out += this.print(tpl, n.pipe.line, v);
          break;
        }
        case 'if': {
          let done = false;
          for (const b of n.branches) {
            if (truthy(this.pipe(tpl, b.cond, scope))) {
              out += this.exec(tpl, b.body, scope);
              done = true;
              break;
            }
          }
          if (!done) out += this.exec(tpl, n.orElse, scope);
          break;
        }
        case 'range': {
          const v = this.pipe(tpl, n.pipe, scope);
          let entries: Array<[unknown, unknown]>;
          if (v === undefined || v === null) entries = [];
          else if (Array.isArray(v)) entries = v.map((x, i) => [i, x]);
          else if (isMap(v))
            entries = Object.keys(v)
              .sort()
              .map((k) => [k, v[k]]);
          else throw new TemplateError(tpl, n.pipe.line, `range over ${typeof v} (only lists and maps)`);
          for (const [k, x] of entries) {
            const vars = new Map(scope.vars);
            if (n.keyVar) vars.set(n.keyVar, k);
            if (n.valVar) vars.set(n.valVar, x);
            out += this.exec(tpl, n.body, { dot: x, vars });
          }
          break;
        }
      }
    }
    return out;
  }

  private print(tpl: string, line: number, v: unknown): string {
    if (v === undefined || v === null) {
      throw new TemplateError(
        tpl,
        line,
        'the value is missing or null (Helm would print nothing; use "default")',
      );
    }
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    throw new TemplateError(tpl, line, `cannot print a ${Array.isArray(v) ? 'list' : 'map'} (use toYaml)`);
  }

  private field(tpl: string, line: number, base: unknown, path: string[], what: string): unknown {
    let v = base;
    let walked = what;
    for (const p of path) {
      if (!isMap(v)) {
        if (v === undefined || v === null) {
          throw new TemplateError(tpl, line, `nil pointer evaluating ${walked}.${p} (${walked} is missing)`);
        }
        throw new TemplateError(tpl, line, `${walked} is not a map, cannot read .${p}`);
      }
      v = v[p];
      walked += `.${p}`;
    }
    return v;
  }

  private operand(tpl: string, line: number, o: Operand, scope: Scope): unknown {
    switch (o.k) {
      case 'lit':
        return o.v;
      case 'pipe':
        return this.pipe(tpl, o.pipe, scope);
      case 'field':
        return this.field(tpl, line, scope.dot, o.path, '');
      case 'var': {
        if (!scope.vars.has(o.name)) throw new TemplateError(tpl, line, `undefined variable $${o.name}`);
        return this.field(tpl, line, scope.vars.get(o.name), o.path, `$${o.name}`);
      }
    }
  }

  private pipe(tpl: string, p: Pipeline, scope: Scope): unknown {
    let acc: unknown;
    let first = true;
    for (const c of p.cmds) {
      if (!c.fn) {
        acc = this.operand(tpl, p.line, c.args[0]!, scope);
      } else {
        const lazy = c.args.map((a) => () => this.operand(tpl, p.line, a, scope));
        if (!first) lazy.push(() => acc);
        acc = this.call(tpl, p.line, c.fn, lazy);
      }
      first = false;
    }
    return acc;
  }

  private call(tpl: string, line: number, fn: string, args: Array<() => unknown>): unknown {
    const fail = (m: string) => new TemplateError(tpl, line, `${fn}: ${m}`);
    const arity = (n: number) => {
      if (args.length !== n) throw fail(`takes ${n} argument${n === 1 ? '' : 's'}, got ${args.length}`);
    };
    const int = (v: unknown) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw fail('needs a non-negative integer');
      return v;
    };
    const str = (v: unknown) => {
      if (typeof v !== 'string')
        throw fail(`needs a string, got ${v === undefined ? 'a missing value' : typeof v}`);
      return v;
    };
    switch (fn) {
      case 'include': {
        arity(2);
        const name = str(args[0]!());
        const body = this.defines.get(name);
        if (!body) throw fail(`no template named "${name}"`);
        if (++this.includeDepth > 50) throw fail('include nested too deeply');
        try {
          const dot = args[1]!();
          // Named templates see the caller's $ only through their argument, as in Go.
          return this.exec(tpl, body, { dot, vars: new Map([['', dot]]) });
        } finally {
          this.includeDepth--;
        }
      }
      case 'quote': {
        arity(1);
        const v = args[0]!();
        if (v === undefined || v === null) throw fail('the value is missing or null');
        if (typeof v === 'string') return goQuote(v);
        if (typeof v === 'number' || typeof v === 'boolean') return goQuote(String(v));
        throw fail('cannot quote a map or list');
      }
      case 'default': {
        arity(2);
        const v = args[1]!();
        return truthy(v) ? v : args[0]!();
      }
      case 'toYaml':
        arity(1);
        return toYaml(args[0]!());
      case 'nindent':
        arity(2);
        return '\n' + indent(int(args[0]!()), str(args[1]!()));
      case 'indent':
        arity(2);
        return indent(int(args[0]!()), str(args[1]!()));
      case 'not':
        arity(1);
        return !truthy(args[0]!());
      case 'and': {
        if (args.length < 2) throw fail('takes at least 2 arguments');
        let v: unknown;
        for (const a of args) {
          v = a();
          if (!truthy(v)) return v;
        }
        return v;
      }
      case 'or': {
        if (args.length < 2) throw fail('takes at least 2 arguments');
        let v: unknown;
        for (const a of args) {
          v = a();
          if (truthy(v)) return v;
        }
        return v;
      }
      case 'eq':
      case 'ne': {
        arity(2);
        const a = args[0]!();
        const b = args[1]!();
        for (const x of [a, b]) {
          if (!['string', 'number', 'boolean'].includes(typeof x)) {
            throw fail(
              `compares strings, numbers or booleans, got ${x === undefined || x === null ? 'a missing value' : typeof x}`,
            );
          }
        }
        if (typeof a !== typeof b) throw fail(`incompatible types for comparison (${typeof a}, ${typeof b})`);
        return fn === 'eq' ? a === b : a !== b;
      }
    }
    throw fail('not supported');
  }
}

// ---------------------------------------------------------------------------------------------
// Charts
// ---------------------------------------------------------------------------------------------

export interface Chart {
  dir: string;
  /** Chart.yaml as parsed. */
  meta: Record<string, unknown>;
  /** values.yaml as parsed. */
  values: Record<string, unknown>;
  schema?: Record<string, unknown>;
  /** "templates/x.yaml" → source. */
  templates: Map<string, string>;
}

export function loadChart(dir: string): Chart {
  const meta = parseYaml(readFileSync(join(dir, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
  const values = (parseYaml(readFileSync(join(dir, 'values.yaml'), 'utf8')) ?? {}) as Record<string, unknown>;
  let schema: Record<string, unknown> | undefined;
  try {
    schema = JSON.parse(readFileSync(join(dir, 'values.schema.json'), 'utf8')) as Record<string, unknown>;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const templates = new Map<string, string>();
  const tdir = join(dir, 'templates');
  for (const f of readdirSync(tdir).sort()) {
    if (statSync(join(tdir, f)).isDirectory()) {
      throw new Error(`templates/${f}: sub-directories are not supported by test/helm/render.ts`);
    }
    if (f === 'NOTES.txt') continue;
    if (!/\.(ya?ml|tpl)$/.test(f)) throw new Error(`templates/${f}: unexpected file`);
    templates.set(`templates/${f}`, readFileSync(join(tdir, f), 'utf8'));
  }
  return { dir, meta, values, ...(schema ? { schema } : {}), templates };
}

/** Helm's value coalescing: maps merge recursively, null deletes a key, anything else replaces. */
export function mergeValues(base: unknown, over: unknown): unknown {
  if (!isMap(base) || !isMap(over)) return structuredClone(over);
  const out: Record<string, unknown> = structuredClone(base);
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k];
    else out[k] = k in out ? mergeValues(out[k], v) : structuredClone(v);
  }
  return out;
}

/** `--set a.b.c=value` as an object to merge: setPath('a.b', 1) → { a: { b: 1 } }. */
export function setPath(path: string, value: unknown): Record<string, unknown> {
  const parts = path.split('.');
  let v: unknown = value;
  for (const p of parts.reverse()) v = { [p]: v };
  return v as Record<string, unknown>;
}

const validators = new WeakMap<object, ValidateFunction>();

export function validateValues(schema: Record<string, unknown>, values: unknown): string[] {
  let validate = validators.get(schema);
  if (!validate) {
    validate = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(schema);
    validators.set(schema, validate);
  }
  if (validate(values)) return [];
  return (validate.errors ?? []).map((e) => {
    const where = e.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : '(root)';
    const extra =
      e.keyword === 'additionalProperties'
        ? ` "${(e.params as { additionalProperty: string }).additionalProperty}"`
        : e.keyword === 'enum'
          ? ` (${(e.params as { allowedValues: unknown[] }).allowedValues.map((x) => JSON.stringify(x)).join(', ')})`
          : '';
    return `${where}: ${e.message ?? e.keyword}${extra}`;
  });
}

/** Helm's install order (pkg/releaseutil/kind_sorter.go); unknown kinds go last. */
export const INSTALL_ORDER = [
  'PriorityClass',
  'Namespace',
  'NetworkPolicy',
  'ResourceQuota',
  'LimitRange',
  'PodSecurityPolicy',
  'PodDisruptionBudget',
  'ServiceAccount',
  'Secret',
  'SecretList',
  'ConfigMap',
  'StorageClass',
  'PersistentVolume',
  'PersistentVolumeClaim',
  'CustomResourceDefinition',
  'ClusterRole',
  'ClusterRoleList',
  'ClusterRoleBinding',
  'ClusterRoleBindingList',
  'Role',
  'RoleList',
  'RoleBinding',
  'RoleBindingList',
  'Service',
  'DaemonSet',
  'Pod',
  'ReplicationController',
  'ReplicaSet',
  'Deployment',
  'HorizontalPodAutoscaler',
  'StatefulSet',
  'Job',
  'CronJob',
  'IngressClass',
  'Ingress',
  'APIService',
  'MutatingWebhookConfiguration',
  'ValidatingWebhookConfiguration',
];

export interface RenderedDoc {
  /** "ironlb/templates/x.yaml", as in helm template's "# Source:" lines. */
  source: string;
  /** The document's text (trimmed). */
  text: string;
  /** The parsed object. */
  obj: KubeObject;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

export interface RenderOptions {
  /** Value overrides (like -f file), merged in order. */
  values?: Array<Record<string, unknown>>;
  /** Like --set: path → value. */
  set?: Record<string, unknown>;
  release?: { name?: string; namespace?: string };
}

export interface RenderResult {
  values: Record<string, unknown>;
  docs: RenderedDoc[];
}

export function renderChart(chart: Chart, opts: RenderOptions = {}): RenderResult {
  let values: unknown = chart.values;
  for (const v of opts.values ?? []) values = mergeValues(values, v);
  for (const [k, v] of Object.entries(opts.set ?? {})) values = mergeValues(values, setPath(k, v));
  if (chart.schema) {
    const problems = validateValues(chart.schema, values);
    if (problems.length) throw new ValuesError(problems);
  }
  const m = chart.meta;
  const root = {
    Values: values,
    Release: {
      Name: opts.release?.name ?? 'ironlb',
      Namespace: opts.release?.namespace ?? 'metallb-system',
      Service: 'Helm',
      IsInstall: true,
      IsUpgrade: false,
      Revision: 1,
    },
    Chart: {
      Name: m.name,
      Version: m.version,
      AppVersion: m.appVersion,
      Description: m.description,
      Type: m.type,
    },
  };
  const engine = new Engine(chart.templates);
  const chartName = String(m.name);
  const docs: Array<RenderedDoc & { order: number }> = [];
  let n = 0;
  for (const name of engine.templateNames()) {
    const base = name.split('/').pop()!;
    const out = engine.render(name, root);
    if (base.startsWith('_')) continue;
    for (const part of out.split(/(?:^|\n)---[ \t]*(?=\n|$)/)) {
      const text = part.trim();
      if (!text) continue;
      let obj: unknown;
      try {
        obj = parseYaml(text, { version: '1.1' });
      } catch (e) {
        throw new Error(`${name}: the rendered YAML does not parse: ${(e as Error).message}\n${text}`);
      }
      if (obj === null || obj === undefined) continue;
      if (!isMap(obj) || typeof obj.kind !== 'string' || typeof obj.apiVersion !== 'string') {
        throw new Error(`${name}: a rendered document is not a Kubernetes object:\n${text}`);
      }
      docs.push({ source: `${chartName}/${name}`, text, obj: obj as unknown as KubeObject, order: n++ });
    }
  }
  const rank = (k: string) => {
    const i = INSTALL_ORDER.indexOf(k);
    return i === -1 ? INSTALL_ORDER.length : i;
  };
  docs.sort((a, b) => rank(a.obj.kind) - rank(b.obj.kind) || a.order - b.order);
  return {
    values: values as Record<string, unknown>,
    docs: docs.map(({ source, text, obj }) => ({ source, text, obj })),
  };
}

/** The documents as `helm template` prints them. */
export function formatDocs(docs: readonly RenderedDoc[]): string {
  return docs.map((d) => `---\n# Source: ${d.source}\n${d.text}\n`).join('');
}
