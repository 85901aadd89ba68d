/** `ironlb validate`: the full (speaker-level) configuration parse over files and directories. */
import { loadPaths, sortObjects } from '../config/load.js';
import { ConfigParser, DEFAULT_NAMESPACE } from '../config/parse.js';
import { formatProblem } from '../config/problems.js';
import { CrdSchemas } from '../config/schema.js';
import { one, parseFlags, UsageError, type Io } from './io.js';

export async function runValidate(args: string[], io: Io): Promise<number> {
  const flags = parseFlags(args, [
    { name: 'file', short: 'f', repeat: true },
    { name: 'namespace', short: 'n' },
  ]);
  const files = flags.file ?? [];
  if (files.length === 0) throw new UsageError('at least one -f PATH is required');
  const objects = sortObjects(await loadPaths(files));
  const parser = new ConfigParser(CrdSchemas.load());
  const res = parser.parse(objects.config, {
    namespace: one(flags, 'namespace') ?? DEFAULT_NAMESPACE,
    scope: 'full',
  });
  if (res.problems.length) {
    for (const p of res.problems) io.out(`${formatProblem(p)}\n`);
    io.err(`${res.problems.length} problem${res.problems.length === 1 ? '' : 's'} found\n`);
    return 1;
  }
  const c = res.config!;
  io.err(
    `valid: ${c.pools.size} IPAddressPool(s), ${c.peers.length} BGPPeer(s), ${c.bfdProfiles.size} BFDProfile(s), ${c.communities.size} community alias(es)\n`,
  );
  return 0;
}
