/**
 * Strict grammars for every string that is later written into frr.conf or used as a kernel name.
 * FRR reads its configuration line by line and token by token, so a value carrying whitespace, a
 * control character or a newline could inject configuration: such values are refused here, long
 * before anything is rendered.
 */

/** Kubernetes object names (DNS subdomain, RFC 1123). Node names end up as the FRR hostname. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Linux interface names: 1-15 bytes, no slash, no whitespace, not "." or "..". */
const IFNAME = /^[A-Za-z0-9_.@-]{1,15}$/;
/** VRF device names follow the interface rules. */
const VRF = IFNAME;
/** Community aliases: one token, no colon (a colon would make it look like a literal). */
const ALIAS = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/;
/** TCP-MD5 keys: printable ASCII without spaces, at most 80 bytes (TCP_MD5SIG_MAXKEYLEN). */
const PASSWORD = /^[\x21-\x7e]{1,80}$/;

export type GrammarCheck = (value: string) => string | undefined;

function describeBad(value: string): string {
  if (/[\r\n]/.test(value)) return 'contains a newline';
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(value)) return 'contains a control character';
  if (/\s/.test(value)) return 'contains whitespace';
  return '';
}

function check(re: RegExp, what: string, value: unknown): string | undefined {
  if (typeof value !== 'string') return `${what} must be a string`;
  if (value === '') return `${what} must not be empty`;
  if (re.test(value)) return undefined;
  const bad = describeBad(value);
  return bad ? `${what} ${bad}` : `${what} "${value}" does not match ${re.source}`;
}

export const objectNameProblem: GrammarCheck = (v) => {
  if (typeof v === 'string' && v.length > 253) return 'name is longer than 253 characters';
  return check(DNS_SUBDOMAIN, 'name', v);
};
export const nodeNameProblem: GrammarCheck = (v) => {
  if (typeof v === 'string' && v.length > 253) return 'node name is longer than 253 characters';
  return check(DNS_SUBDOMAIN, 'node name', v);
};
export const interfaceNameProblem: GrammarCheck = (v) =>
  v === '.' || v === '..' ? 'interface name cannot be "." or ".."' : check(IFNAME, 'interface name', v);
export const vrfNameProblem: GrammarCheck = (v) =>
  v === '.' || v === '..' ? 'VRF name cannot be "." or ".."' : check(VRF, 'VRF name', v);
export const communityAliasProblem: GrammarCheck = (v) => check(ALIAS, 'community alias', v);
/** Never echoes the password itself. */
export const passwordProblem: GrammarCheck = (v) => {
  if (typeof v !== 'string') return 'password must be a string';
  if (v === '') return 'password must not be empty';
  if (PASSWORD.test(v)) return undefined;
  const bad = describeBad(v);
  if (bad) return `password ${bad}`;
  if (v.length > 80) return 'password is longer than 80 characters (TCP-MD5 limit)';
  return 'password may only contain printable ASCII characters';
};
