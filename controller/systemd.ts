// sd_notify without a native addon: Node cannot send unix datagrams, so `systemd-notify` sends them,
// through the CommandRunner like every other command. systemd-notify (systemd ≥ 246) waits until
// systemd has read the message (BARRIER=1), so the message is attributed to this unit even though
// the sender exits at once; the unit needs NotifyAccess=all because the sender is a child process.
import { ExecRunner, type CommandRunner } from '../failover/runner';

export interface Notifier {
  ready(status: string): Promise<void>;
  stopping(status: string): Promise<void>;
  /** Starts WATCHDOG=1 keep-alives at half of WATCHDOG_USEC while `healthy()` holds; returns a stop function. */
  startWatchdog(healthy: () => boolean): () => void;
}

export interface NotifierOptions {
  env?: NodeJS.ProcessEnv;
  runner?: CommandRunner;
  pid?: number;
  onError?: (message: string) => void;
}

const STATUS_RE = /[^\x20-\x7e]/g;

/** A notifier for the environment systemd gave us; does nothing when NOTIFY_SOCKET is unset (not under systemd). */
export function systemdNotifier(opts: NotifierOptions = {}): Notifier {
  const env = opts.env ?? process.env;
  const socket = env.NOTIFY_SOCKET;
  const pid = opts.pid ?? process.pid;
  const runner = opts.runner ?? new ExecRunner(5000, { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', ...(socket ? { NOTIFY_SOCKET: socket } : {}) });
  const onError = opts.onError ?? (() => undefined);
  const send = async (args: string[]) => {
    if (!socket) return;
    try {
      await runner.run('systemd-notify', args);
    } catch (e) {
      onError(`systemd-notify ${args.join(' ')}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  const clean = (s: string) => s.replace(STATUS_RE, '?').slice(0, 200);
  const watchdogMs = watchdogIntervalMs(env, pid);
  return {
    ready: (status) => send(['--ready', `--status=${clean(status)}`]),
    stopping: (status) => send(['STOPPING=1', `--status=${clean(status)}`]),
    startWatchdog(healthy) {
      if (watchdogMs === 0) return () => undefined;
      let inFlight = false;
      const t = setInterval(() => {
        if (inFlight || !healthy()) return;
        inFlight = true;
        void send(['WATCHDOG=1']).finally(() => (inFlight = false));
      }, watchdogMs);
      return () => clearInterval(t);
    },
  };
}

/** The keep-alive period the notifier will use (0: no watchdog), for logs and tests. */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid = process.pid): number {
  const usec = Number(env.WATCHDOG_USEC);
  const watchdogPid = env.WATCHDOG_PID ? Number(env.WATCHDOG_PID) : pid;
  return env.NOTIFY_SOCKET && Number.isFinite(usec) && usec > 0 && watchdogPid === pid ? Math.max(100, Math.floor(usec / 2000)) : 0;
}
