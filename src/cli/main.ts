/**
 * The `ironlb` command line. Every failure ends in a one-line message and an exit code, never a
 * stack trace: 0 ok, 1 invalid configuration, 2 usage or unreadable input, 3 internal error.
 */
import { InputError } from '../config/load.js';
import { runAllocate } from './allocate.js';
import { runRender } from './render.js';
import { runSpeaker } from './speaker.js';
import { runFrrReloader } from './frr-reloader.js';
import { runController } from './controller.js';
import { UsageError, type Io, processIo } from './io.js';
import { runValidate } from './validate.js';

const HELP = `ironlb — a MetalLB-compatible load-balancer for bare-metal Kubernetes

Usage:
  ironlb validate -f PATH [-f PATH…] [--namespace NS]
      Check metallb.io objects (files or directories of *.yaml). Exit 0 when valid,
      1 with one line per problem ("<Kind>/<name>: <field>: <reason>"), 2 for bad input.
  ironlb allocate -f PATH… [-o json|yaml|table] [--lb-class CLASS] [--namespace NS]
      Allocate LoadBalancer IPs for the Services in the input as the controller would.
  ironlb render -f PATH… --node NAME [-o FILE] [--hostname H] [--log-level LEVEL]
      Print the frr.conf this node's FRR must run (metallb.io objects, Nodes, Services with
      status IPs, optional EndpointSlices and Secrets). Written 0600 with -o.
  ironlb speaker --node NAME --source dir:PATH [--frr-dir DIR] [--l2] [--ml-bind-addr A --ml-seeds H:P,…]
      Standalone speaker: watch a directory of objects; BGP keeps DIR/frr.conf up to date, L2 answers
      ARP/NDP for the IPs this node is elected for (liveness from the speakers' UDP membership).
  ironlb frr-reloader --dir DIR [--pathspace NS] [--metrics-port N]
      FRR sidecar: apply every new DIR/frr.conf to the running FRR (incrementally through vtysh,
      frr-reload.py as the fallback) and report the result in DIR/frr-status.json. With
      --metrics-port: FRR's BGP/BFD sessions as metallb_bgp_* / metallb_bfd_* metrics, and /livez.
  ironlb controller [--kubeconfig PATH] [--namespace NS] [--lb-class CLASS]
      Allocate Service IPs on a cluster (Lease leader election; one active replica).
  ironlb help | --help       This text.
  ironlb version | --version The version.
`;

type Command = (args: string[], io: Io) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  validate: runValidate,
  allocate: runAllocate,
  render: runRender,
  speaker: (args, io) => runSpeaker(args, io),
  'frr-reloader': (args, io) => runFrrReloader(args, io),
  controller: (args, io) => runController(args, io),
};

export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    io.out(HELP);
    return cmd ? 0 : 2;
  }
  if (cmd === 'version' || cmd === '--version') {
    io.out('ironlb 0.1.0\n');
    return 0;
  }
  const run = COMMANDS[cmd];
  if (!run) {
    io.err(`ironlb: unknown command "${cmd}" (see ironlb --help)\n`);
    return 2;
  }
  try {
    return await run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`ironlb ${cmd}: ${e.message} (see ironlb --help)\n`);
      return 2;
    }
    if (e instanceof InputError) {
      io.err(`ironlb ${cmd}: ${e.message}\n`);
      return 2;
    }
    io.err(`ironlb ${cmd}: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 3;
  }
}
