// `sandwich` command line. User mistakes print one clear message and a non-zero exit, never a stack trace.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { Config } from './config';
import type { EventFilter, SandwichEvent } from './events';

// Each command requires the modules it uses when it runs: `--version` and `--help` load commander alone, the
// config (yaml, zod) is loaded by the commands that read it, etcd's client (grpc) only for an etcd store.
const activeActive = () => import('./active-active.js');
const configs = () => import('./config.js');
const daemon = () => import('./daemon.js');
const eventLogs = () => import('./events.js');
const stores = () => import('./open-store.js');
const statuses = () => import('./status.js');
const switchovers = () => import('./switchover.js');
const loadConfig = async (file: string): Promise<Config> => (await configs()).loadConfig(file);
const nodeByName = async (config: Config, node: string) => (await configs()).nodeByName(config, node);

const DEFAULT_CONFIG = process.env.SANDWICH_CONFIG ?? '/etc/sandwich/config.yaml';

/** An error meant for the operator: printed as is, no stack. */
export class UsageError extends Error {
  override name = 'UsageError';
}

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const stdio: Io = {
  out: (s) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`),
  err: (s) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`),
};

function configOption(): Option {
  return new Option('-c, --config <file>', 'config file').default(DEFAULT_CONFIG).env('SANDWICH_CONFIG');
}

export function buildProgram(io: Io, setCode: (c: number) => void): Command {
  const program = new Command('sandwich')
    .description('HA controller for Linux firewall sandwiches')
    .version(version(), '-V, --version', 'print the version')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError(false);

  program
    .command('check-config')
    .description('validate a config file; prints every error as path: message (line N)')
    .argument('[file]', 'config file', DEFAULT_CONFIG)
    .action(async (file: string) => {
      const c = await loadConfig(file);
      io.out(`${file}: ok (${c.nodes.length} nodes, ${c.firewalls.length} firewalls, ${c.checks.length} checks, ${c.services.length} services, ${c.vipGroups.length} VIP groups)`);
    });

  program
    .command('schema')
    .description('print the config JSON Schema (for editors)')
    .action(async () => io.out(JSON.stringify((await configs()).configJsonSchema(), null, 2)));

  program
    .command('run')
    .description('run the controller for one node until SIGTERM/SIGINT')
    .requiredOption('-n, --node <name>', 'this host\'s node name in the config')
    .addOption(configOption())
    .action(async (o: { node: string; config: string }) => {
      const config = await loadConfig(o.config);
      await nodeByName(config, o.node);
      setCode(await (await daemon()).runDaemon(config, o.node));
    });

  program
    .command('plan')
    .description('print the commands reconcile would run on this node, without running them')
    .requiredOption('-n, --node <name>', 'node name')
    .addOption(configOption())
    .option('--leader', 'plan as the holder of the VIP group')
    .action(async (o: { node: string; config: string; leader?: boolean }) => {
      const config = await loadConfig(o.config);
      await nodeByName(config, o.node);
      const lines = await (await daemon()).planNode(config, o.node, { leader: !!o.leader });
      io.out(lines.length ? lines.join('\n') : '# nothing to do: the kernel matches the desired state');
    });

  program
    .command('status')
    .description('leader, VIP holder, verdicts per firewall × check × observer, desired vs applied')
    .addOption(configOption())
    .option('--json', 'machine-readable output')
    .action(async (o: { config: string; json?: boolean }) => {
      const config = await loadConfig(o.config);
      const { collectStatus, formatStatus } = await statuses();
      const s = await collectStatus(config, (await stores()).openStore);
      io.out(o.json ? JSON.stringify(s, null, 2) : formatStatus(s));
    });

  program
    .command('events')
    .description('read health and failover events (rotated files included)')
    .addOption(configOption())
    .option('-f, --follow', 'keep printing new events')
    .option('--since <when>', 'only events since a duration ago (10m, 2h) or an ISO time')
    .option('--firewall <name>', 'only events about this firewall')
    .option('--node <name>', 'only events from this node')
    .option('--file <path>', 'event log file (default: events.file from the config)')
    .option('--json', 'print JSON lines')
    .action(async (o: { config: string; follow?: boolean; since?: string; firewall?: string; node?: string; file?: string; json?: boolean }) => {
      const { followEvents, formatEvent, parseSince, readEvents } = await eventLogs();
      const files = o.file ? [o.file] : (await configs()).eventLogPaths(await loadConfig(o.config));
      const filter: EventFilter = {};
      if (o.since) {
        try {
          filter.sinceMs = parseSince(o.since);
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
      }
      if (o.firewall) filter.firewall = o.firewall;
      if (o.node) filter.node = o.node;
      const print = (e: SandwichEvent) => io.out(o.json ? JSON.stringify(e) : formatEvent(e));
      if (!o.follow && !files.some((f) => existsSync(f))) throw new UsageError(`${files.join(', ')}: no event log yet`);
      const past = files.flatMap((f) => readEvents(f, filter, (m) => io.err(`warning: ${m}`)));
      for (const e of past.sort((a, b) => Date.parse(a.ts!) - Date.parse(b.ts!))) print(e);
      if (o.follow) {
        const stops = files.map((f) => followEvents(f, filter, print));
        const stop = () => stops.forEach((s) => s());
        await new Promise<void>((resolve) => {
          const done = () => { stop(); resolve(); };
          process.once('SIGINT', done);
          process.once('SIGTERM', done);
        });
      }
    });

  const needStore = async (config: Config) => {
    if (config.store.kind === 'memory') throw new UsageError('this command needs the shared store: set store.kind: etcd in the config');
    return (await stores()).openStore(config);
  };

  program
    .command('drain')
    .description('take a firewall out of new-flow service (weight 0); existing connections continue')
    .argument('<firewall>')
    .addOption(configOption())
    .option('--reason <text>', 'why', 'operator request')
    .option('--force', 'allow draining the last firewall in service')
    .action(async (fw: string, o: { config: string; reason: string; force?: boolean }) => {
      const config = await loadConfig(o.config);
      knownFirewall(config, fw);
      const store = await needStore(config);
      try {
        if (!o.force) {
          const drained = new Set((await store.listDrains()).map((d) => d.firewall));
          const desired = (await store.getDesired())?.value;
          const inService = config.firewalls.filter((f) => f.name !== fw && !drained.has(f.name) && (desired?.firewalls[f.name]?.state ?? 'up') === 'up');
          if (inService.length === 0) throw new UsageError(`refusing to drain ${fw}: no other firewall would be in service (use --force)`);
        }
        await store.putDrain({ firewall: fw, by: process.env.SUDO_USER ?? process.env.USER ?? 'operator', reason: o.reason, since: Date.now() });
        io.out(`${fw}: drain requested`);
      } finally {
        await store.close();
      }
    });

  program
    .command('undrain')
    .description('return a drained firewall to service')
    .argument('<firewall>')
    .addOption(configOption())
    .action(async (fw: string, o: { config: string }) => {
      const config = await loadConfig(o.config);
      knownFirewall(config, fw);
      const store = await needStore(config);
      try {
        io.out((await store.deleteDrain(fw)) ? `${fw}: undrained` : `${fw}: was not drained`);
      } finally {
        await store.close();
      }
    });

  const pathNode = async (config: Config, node: string) => {
    const n = await nodeByName(config, node);
    if (!(await configs()).pathGroupsOf(config, n).some((g) => g.paths.length > 0)) throw new UsageError(`node "${node}" has no path address in an active-active VIP group (docs/active-active.md)`);
    return n;
  };

  program
    .command('drain-node')
    .description('active-active: withdraw this node\'s path addresses while its controller keeps running (run on the node\'s host)')
    .requiredOption('-n, --node <name>', 'the node (this host)')
    .addOption(configOption())
    .option('--reason <text>', 'why', 'operator request')
    .action(async (o: { node: string; config: string; reason: string }) => {
      const config = await loadConfig(o.config);
      await pathNode(config, o.node);
      const { pathDrainFile, writePathDrain } = await activeActive();
      const file = pathDrainFile(config, o.node);
      writePathDrain(file, { by: process.env.SUDO_USER ?? process.env.USER ?? 'operator', reason: o.reason, since: Date.now() });
      io.out(`${o.node}: path drain requested (${file}); its controller withdraws the path within 0.1 s. Wait for the upstream router to stop using it (docs/active-active.md) before taking ${o.node} down.`);
    });

  program
    .command('undrain-node')
    .description('active-active: let this node hold its path addresses again (run on the node\'s host)')
    .requiredOption('-n, --node <name>', 'the node (this host)')
    .addOption(configOption())
    .action(async (o: { node: string; config: string }) => {
      const config = await loadConfig(o.config);
      await pathNode(config, o.node);
      const { pathDrainFile, removePathDrain } = await activeActive();
      io.out(removePathDrain(pathDrainFile(config, o.node)) ? `${o.node}: undrained; it holds its path again once healthy` : `${o.node}: was not drained`);
    });

  program
    .command('failover')
    .description('move the VIP group to another node of the role (manual switchover)')
    .addOption(configOption())
    .option('--to <node>', 'target node (default: any other healthy node)')
    .addOption(new Option('--role <role>', 'which pair').choices(['ingress', 'egress']).default('ingress'))
    .option('--wait <ms>', 'how long to wait for the leadership to move before withdrawing the request', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 100 || n > 600_000) throw new InvalidArgumentError('--wait must be a whole number of milliseconds, 100 to 600000');
      return n;
    }, 10_000)
    .action(async (o: { config: string; to?: string; role: 'ingress' | 'egress'; wait: number }) => {
      const config = await loadConfig(o.config);
      const store = await needStore(config);
      try {
        io.out(await (await switchovers()).requestSwitchover(config, store, o.role, o.to ?? null, process.env.SUDO_USER ?? process.env.USER ?? 'operator', o.wait));
      } finally {
        await store.close();
      }
    });

  return program;
}

function knownFirewall(config: Config, fw: string): void {
  if (!config.firewalls.some((f) => f.name === fw)) {
    throw new UsageError(`unknown firewall "${fw}" (known: ${config.firewalls.map((f) => f.name).join(', ')})`);
  }
}

/** Entry point for bin/sandwich. Returns the exit code. */
export async function main(argv: string[], io: Io = stdio): Promise<number> {
  let code = 0;
  const program = buildProgram(io, (c) => (code = c));
  try {
    await program.parseAsync(argv);
    return code;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2; // commander printed the message
    if (e instanceof Error && e.name === 'ConfigError') {   // controller/config.ts, not loaded by every command
      io.err(e.message);
      return 1;
    }
    if (e instanceof UsageError) {
      io.err(`sandwich: ${e.message}`);
      return 2;
    }
    if (e instanceof Error && ['StoreError', 'StoreDataError', 'CommandNotFoundError', 'CommandFailedError', 'CommandTimeoutError', 'KernelParseError'].includes(e.name)) {
      io.err(`sandwich: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

/** Version from package.json, for --version and events. */
export function version(): string {
  // dist/controller/cli.js (bin/sandwich) or controller/cli.ts (tests): the repository's package.json.
  for (const up of [['..'], ['..', '..']]) {
    try {
      return (JSON.parse(readFileSync(join(__dirname, ...up, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      // not there
    }
  }
  return 'unknown';
}

