// Wiring for `sandwich run` and `sandwich plan`: store, runner, probes, actuator, events, signals.
import { ProbeEngine } from '../checks/engine';
import { probeJobs } from '../checks/jobs';
import { probeFactory } from '../checks/probes';
import { Actuator } from '../failover/actuator';
import { openAnnouncer } from '../failover/announcer';
import { openIpvsGenl } from '../failover/netlink/ipvs-genl';
import { KernelWatch } from '../failover/netlink/kernel-watch';
import { netlinkKernels } from '../failover/netlink/kernels';
import { ExecRunner, ExecSpawner } from '../failover/runner';
import { createApiHandler, readToken, startApi, type ApiServer } from './api';
import { ConfigError, eventLogPath, nodeByName, type Config } from './config';
import { createEventLog } from './events';
import { sizeHeapForDaemon } from './heap';
import { Metrics } from './metrics';
import { NodeController } from './node';
import { openStore } from './open-store';
import { systemdNotifier } from './systemd';

/** Runs until SIGTERM/SIGINT; returns the process exit code. Events are flushed before it returns. */
export async function runDaemon(config: Config, nodeName: string): Promise<number> {
  nodeByName(config, nodeName);
  sizeHeapForDaemon();
  const apiToken = config.api?.tokenFile ? readApiToken(config.api.tokenFile) : null;
  const metrics = new Metrics(config, nodeName);
  const events = metrics.tapEvents(createEventLog({
    file: eventLogPath(config, nodeName),
    maxSizeBytes: config.events.maxSizeBytes,
    maxFiles: config.events.maxFiles,
    stdout: process.env.SANDWICH_EVENTS_STDOUT === '1',
  }));
  const runner = new ExecRunner(config.timing.commandTimeoutMs);
  // The VIP driver asks the node, built below, before every gratuitous ARP; the ARP fence follows its validity.
  let canAnnounce = (): boolean => false;
  let fenceUntil = (): number => Number.NEGATIVE_INFINITY;
  // Active-active VIP groups: the node's health verdict (controller/active-active.ts).
  let wantPaths = (): boolean => false;
  let pathFenceUntil = (): number => Number.NEGATIVE_INFINITY;
  let leaseRenewed = (): void => undefined;
  const store = await openStore(config, events, nodeName, () => leaseRenewed());
  // Kernel access without processes: rules, routes and addresses (rtnetlink), IPVS (generic netlink, ingress
  // nodes), gratuitous ARP / neighbour advertisements (a packet socket). Where an addon cannot load, `ip`,
  // ipvsadm and arping commands (one process per read, change or announcement).
  const kernels = netlinkKernels(config.timing.commandTimeoutMs);
  if ('error' in kernels) events.emit({ event: 'kernel', level: 'warn', node: nodeName, reason: `${kernels.error}; rules, routes and addresses go through ip commands` });
  const ipvs = nodeByName(config, nodeName).role !== 'ingress' ? undefined : await openIpvsGenl(config.timing.commandTimeoutMs).catch((e: Error) => {
    events.emit({ event: 'kernel', level: 'warn', node: nodeName, reason: `IPVS through ipvsadm instead: ${e.message}` });
    return undefined;
  });
  const opened = openAnnouncer();
  const announcer = 'announcer' in opened ? opened.announcer : undefined;
  if ('error' in opened) events.emit({ event: 'vip', level: 'warn', node: nodeName, reason: `announcing VIPs through arping and IPv6 re-adds: the packet socket cannot be used: ${opened.error}` });
  const actuator = new Actuator(config, nodeName, runner, {
    kernel: { ...(ipvs ? { ipvs } : {}), ...('error' in kernels ? {} : { routes: kernels.routes, addresses: kernels.addresses }), ...(announcer ? { announcer } : {}) },
    canAnnounce: () => canAnnounce(),
    fenceUntil: () => fenceUntil(),
    canAnnouncePaths: () => wantPaths(),
    pathFenceUntil: () => pathFenceUntil(),
    spawner: new ExecSpawner(),
    log: ({ level, driver, message, durationMs }) => events.emit({ event: 'vip', level, node: nodeName, driver, reason: message, ...(typeof durationMs === 'number' ? { durationMs } : {}) }),
  });
  const node = new NodeController({
    config, node: nodeName, store, events,
    actuator: metrics.tapActuator({ reconcile: (d, o) => actuator.reconcile(d, o), releaseVips: async () => void (await actuator.release()), refreshFence: () => actuator.refreshFence(), takeVips: () => actuator.takeVips(), fenceRemainingMs: () => actuator.fenceRemainingMs(),
      releasePaths: async () => void (await actuator.releasePaths()), refreshPathFence: () => actuator.refreshPathFence() }),
    prober: (onObservation) => new ProbeEngine({
      jobs: probeJobs(config, nodeName),
      // ICMP through long-lived pings (checks/icmp-stream.ts): no process per probe.
      probe: probeFactory({ icmp: 'stream' }),
      onObservation: (o, changed) => {
        metrics.observation(o);
        onObservation(o, changed);
      },
      onError: (e) => events.emit({ event: 'error', level: 'error', node: nodeName, reason: `probe result handling: ${e instanceof Error ? e.message : String(e)}` }),
    }),
  });

  canAnnounce = node.canAnnounce;
  fenceUntil = node.fenceUntil;
  wantPaths = node.wantPaths;
  pathFenceUntil = node.pathFenceUntil;
  leaseRenewed = node.leaseRenewed;
  metrics.attach({ isLeader: () => node.isLeader, holdsPaths: () => node.holdsPaths });
  // A managed rule, route, address or interface changed behind our back: reconcile now (the periodic pass stays).
  const interest = actuator.kernelInterest();
  const watch = 'error' in kernels ? null : new KernelWatch(kernels.rtnl, () => interest, (c) => {
    events.emit({ event: 'kernel', node: nodeName, reason: `kernel notification: ${c.what}${c.count > 1 ? ` (+${c.count - 1} more)` : ''}; reconciling` });
    void node.requestReconcile();
  });
  const notifier = systemdNotifier({ onError: (m) => events.emit({ event: 'error', level: 'warn', node: nodeName, reason: m }) });

  let code = 0;
  const stopped = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('uncaughtException', (e) => {
      events.emit({ event: 'error', level: 'error', node: nodeName, reason: `internal error: ${e.stack ?? e.message}` });
      code = 70;
      resolve('internal error');
    });
  });
  let api: ApiServer | null = null;
  let stopWatchdog = (): void => undefined;
  try {
    if (config.api) {
      const handler = createApiHandler({ config, node: nodeName, store, events, metrics, token: apiToken });
      api = await startApi(config.api.listen, handler).catch((e: Error) => {
        throw new ConfigError('<config>', [{ path: 'api.listen', message: e.message }]);
      });
    }
    watch?.start();
    await node.start();
    await notifier.ready(`${nodeName} running as ${node.role} node${api ? `; API on ${api.address}` : ''}`);
    stopWatchdog = notifier.startWatchdog(() => node.state === 'RUNNING');
    const why = await stopped;
    stopWatchdog();
    await notifier.stopping(`${nodeName} stopping: ${why}`);
    await node.stop(why);
  } finally {
    stopWatchdog();
    watch?.close();
    await actuator.fence?.close();
    await actuator.pathFence?.close();
    announcer?.close();
    await api?.close();
    await store.close().catch(() => undefined);
    await events.close();
  }
  return code;
}

function readApiToken(file: string): string {
  try {
    return readToken(file);
  } catch (e) {
    throw new ConfigError(file, [{ path: 'api.tokenFile', message: (e as Error).message.replace(/^api\.tokenFile: /, '') }]);
  }
}

/** The commands reconcile would run now on this node (reads are real, writes are printed). */
export async function planNode(config: Config, nodeName: string, opts: { leader: boolean }): Promise<string[]> {
  nodeByName(config, nodeName);
  const runner = new ExecRunner(config.timing.commandTimeoutMs);
  let desired = null;
  if (config.store.kind === 'etcd') {
    const store = await openStore(config);
    try {
      desired = (await store.getDesired())?.value ?? null;
    } finally {
      await store.close();
    }
  }
  // Path addresses of active-active groups are planned as held (a healthy node).
  const kernels = netlinkKernels(config.timing.commandTimeoutMs);
  const plan = await Actuator.plan(config, nodeName, runner, desired, { holdsVips: opts.leader, holdsPaths: true }, 'error' in kernels ? {} : kernels);
  return [...plan.commands, ...plan.errors.map((e) => `# ${e.driver}: ${e.error.message}`)];
}
