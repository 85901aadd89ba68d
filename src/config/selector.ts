/**
 * Kubernetes label selectors: validation (syntax and MetalLB's duplicate rules), matching and a
 * canonical text form used to compare selectors and to sort output.
 */

export interface LabelSelectorRequirement {
  key: string;
  operator: string;
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export type Labels = Readonly<Record<string, string>>;

/** A compiled selector. An empty selector matches everything. */
export interface Selector {
  readonly text: string;
  matches(labels: Labels | undefined): boolean;
}

const NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Why a label key is invalid, or undefined when it is valid. */
export function labelKeyProblem(key: string): string | undefined {
  if (typeof key !== 'string' || key === '') return 'label key is empty';
  const slash = key.indexOf('/');
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (slash !== -1) {
    const pfx = key.slice(0, slash);
    if (pfx.length > 253 || !DNS_SUBDOMAIN.test(pfx))
      return `label key prefix "${pfx}" is not a DNS subdomain`;
  }
  if (name.length > 63 || !NAME_PART.test(name)) return `label key "${key}" is not a valid qualified name`;
  return undefined;
}

export function labelValueProblem(value: string): string | undefined {
  if (typeof value !== 'string') return 'label value is not a string';
  if (value.length > 63 || !LABEL_VALUE.test(value)) return `label value "${value}" is not valid`;
  return undefined;
}

const OPERATORS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);

function requirementText(r: LabelSelectorRequirement): string {
  const vals = [...(r.values ?? [])].sort();
  return `${r.key} ${r.operator} (${vals.join(',')})`;
}

/** Canonical text of a selector: keys and values sorted, so equal selectors give equal text. */
export function selectorText(s: LabelSelector | undefined): string {
  if (!s) return '';
  const parts: string[] = [];
  const ml = s.matchLabels ?? {};
  for (const k of Object.keys(ml).sort()) parts.push(`${k}=${ml[k]}`);
  for (const r of s.matchExpressions ?? []) parts.push(requirementText(r));
  return parts.join(',');
}

/**
 * Problems of one selector: syntax (bad operator, missing key, values where none are allowed) and
 * MetalLB's duplicate rules inside it (duplicate expression, duplicate value in one expression).
 * Returned as [relative path, reason].
 */
export function selectorProblems(s: LabelSelector): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (s === null || typeof s !== 'object') return [['', 'selector must be an object']];
  for (const [k, v] of Object.entries(s.matchLabels ?? {})) {
    const kp = labelKeyProblem(k);
    if (kp) out.push([`matchLabels`, kp]);
    const vp = labelValueProblem(v);
    if (vp) out.push([`matchLabels.${k}`, vp]);
  }
  const seen = new Map<string, number>();
  (s.matchExpressions ?? []).forEach((r, i) => {
    const p = `matchExpressions[${i}]`;
    if (!r.key) out.push([`${p}.key`, 'is required']);
    else {
      const kp = labelKeyProblem(r.key);
      if (kp) out.push([`${p}.key`, kp]);
    }
    if (!OPERATORS.has(r.operator)) {
      out.push([`${p}.operator`, `"${r.operator}" is not one of In, NotIn, Exists, DoesNotExist`]);
    } else if ((r.operator === 'In' || r.operator === 'NotIn') && !(r.values && r.values.length)) {
      out.push([`${p}.values`, `operator ${r.operator} needs at least one value`]);
    } else if ((r.operator === 'Exists' || r.operator === 'DoesNotExist') && r.values && r.values.length) {
      out.push([`${p}.values`, `operator ${r.operator} takes no values`]);
    }
    const vals = r.values ?? [];
    const dupVal = vals.find((v, j) => vals.indexOf(v) !== j);
    if (dupVal !== undefined) out.push([`${p}.values`, `duplicate value "${dupVal}"`]);
    for (const v of vals) {
      const vp = labelValueProblem(v);
      if (vp) out.push([`${p}.values`, vp]);
    }
    const t = requirementText(r);
    const prev = seen.get(t);
    if (prev !== undefined) out.push([p, `duplicate of matchExpressions[${prev}]`]);
    else seen.set(t, i);
  });
  return out;
}

/** Problems of a selector list, including duplicate selectors; paths are relative to `field`. */
export function selectorListProblems(
  field: string,
  list: LabelSelector[] | undefined,
): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const seen = new Map<string, number>();
  (list ?? []).forEach((s, i) => {
    for (const [p, r] of selectorProblems(s)) out.push([p ? `${field}[${i}].${p}` : `${field}[${i}]`, r]);
    const t = selectorText(s);
    const prev = seen.get(t);
    if (prev !== undefined) out.push([`${field}[${i}]`, `duplicate of ${field}[${prev}]`]);
    else seen.set(t, i);
  });
  return out;
}

/** Compiles a selector that has passed selectorProblems. */
export function compileSelector(s: LabelSelector | undefined): Selector {
  const ml = Object.entries(s?.matchLabels ?? {});
  const exprs = (s?.matchExpressions ?? []).map((r) => ({ ...r, set: new Set(r.values ?? []) }));
  return {
    text: selectorText(s),
    matches(labels) {
      const l = labels ?? {};
      for (const [k, v] of ml) if (l[k] !== v) return false;
      for (const r of exprs) {
        const has = Object.prototype.hasOwnProperty.call(l, r.key);
        switch (r.operator) {
          case 'In':
            if (!has || !r.set.has(l[r.key]!)) return false;
            break;
          case 'NotIn':
            if (has && r.set.has(l[r.key]!)) return false;
            break;
          case 'Exists':
            if (!has) return false;
            break;
          case 'DoesNotExist':
            if (has) return false;
            break;
          default:
            return false;
        }
      }
      return true;
    },
  };
}

export const MATCH_ALL: Selector = compileSelector({});

/** True when any selector of the list matches; an empty list matches nothing (callers decide). */
export function anyMatches(selectors: readonly Selector[], labels: Labels | undefined): boolean {
  return selectors.some((s) => s.matches(labels));
}
