// Host system-test harness: the sandwich of topo.sh in network namespaces, a one-member etcd in
// its own namespace, an HTTP server behind the egress router, and real `sandwich run` processes.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const TOPO = join(__dirname, 'topo.sh');
const BIN = join(ROOT, 'bin', 'sandwich');

export function sh(ns: string | null, args: string[], timeoutMs = 10_000): string {
  const full = ns ? ['ip', 'netns', 'exec', ns, ...args] : args;
  return execFileSync(full[0]!, full.slice(1), { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
}

export function trySh(ns: string | null, args: string[], timeoutMs = 10_000): { ok: boolean; out: string } {
  try {
    return { ok: true, out: sh(ns, args, timeoutMs) };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return { ok: false, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every `everyMs` until it returns a truthy value; returns it and the time it took. */
export async function waitFor<T>(what: string, probe: () => T | Promise<T>, timeoutMs = 15_000, everyMs = 20): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  for (;;) {
    const v = await probe();
    if (v) return { value: v, ms: performance.now() - start };
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(everyMs);
  }
}

export interface Controller {
  node: string;
  proc: ChildProcess;
  output: () => string;
}

export class NetnsSandwich {
  readonly dir: string;
  readonly configFile: string;
  private procs: ChildProcess[] = [];
  readonly controllers = new Map<string, Controller>();

  constructor(readonly prefix: string) {
    this.dir = mkdtempSync(join(tmpdir(), `sandwich-${prefix}-`));
    this.configFile = join(this.dir, 'config.yaml');
  }

  ns(name: string): string {
    return `${this.prefix}-${name}`;
  }

  async up(configYaml: string): Promise<void> {
    sh(null, [TOPO, 'up', this.prefix], 60_000);
    writeFileSync(this.configFile, configYaml.replaceAll('@DIR@', this.dir));
    // HTTP service behind the egress router.
    const www = join(this.dir, 'www');
    mkdirSync(www);
    writeFileSync(join(www, 'health'), 'ok\n');
    this.background('srv', ['/usr/bin/python3', '-m', 'http.server', '80', '--bind', '198.51.100.10', '--directory', www]);
    // One etcd member on the management network.
    this.background('etcd', ['etcd', '--name', 's1', '--data-dir', join(this.dir, 'etcd'),
      '--listen-client-urls', 'http://10.9.0.1:2379', '--advertise-client-urls', 'http://10.9.0.1:2379',
      '--listen-peer-urls', 'http://10.9.0.1:2380', '--initial-advertise-peer-urls', 'http://10.9.0.1:2380',
      '--initial-cluster', 's1=http://10.9.0.1:2380', '--heartbeat-interval=10', '--election-timeout=100', '--log-level=error']);
    await waitFor('etcd healthy', () => trySh(this.ns('lb1'), ['curl', '-sf', '-m', '1', 'http://10.9.0.1:2379/health']).out.includes('true'), 20_000, 100);
    await waitFor('HTTP server up', () => trySh(this.ns('er1'), ['curl', '-sf', '-m', '1', 'http://198.51.100.10/health']).ok, 20_000, 100);
  }

  private background(ns: string, args: string[]): ChildProcess {
    const p = spawn('ip', ['netns', 'exec', this.ns(ns), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    // Read it: an unread pipe fills after 64 KB and blocks the writer (http.server logs every request).
    p.stderr!.resume();
    this.procs.push(p);
    return p;
  }

  start(node: string, ns = node): Controller {
    let out = '';
    const proc = spawn('ip', ['netns', 'exec', this.ns(ns), process.execPath, BIN, 'run', '--node', node, '--config', this.configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SANDWICH_EVENTS_STDOUT: '0' },
    });
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const c = { node, proc, output: () => out };
    this.controllers.set(node, c);
    return c;
  }

  async stop(node: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const c = this.controllers.get(node);
    // Already gone (exited, or killed by a signal: then exitCode stays null and signalCode is set).
    if (!c || c.proc.exitCode !== null || c.proc.signalCode !== null) return c?.proc.exitCode ?? null;
    const exited = new Promise<number | null>((r) => c.proc.once('exit', (code) => r(code)));
    c.proc.kill(signal);
    const code = await Promise.race([exited, sleep(10_000).then(() => 'timeout' as const)]);
    if (code === 'timeout') {
      c.proc.kill('SIGKILL');
      throw new Error(`${node} did not stop within 10 s after ${signal}`);
    }
    return code;
  }

  /** `sandwich <args>` run inside a namespace (the store is reachable only from there). */
  cli(args: string[], ns = 'lb1'): { ok: boolean; out: string } {
    return trySh(this.ns(ns), [process.execPath, BIN, ...args, '--config', this.configFile], 20_000);
  }

  /** Keeps the event logs and status files for a post-mortem (SANDWICH_KEEP=dir). */
  keepLogs(): void {
    const dest = process.env.SANDWICH_KEEP;
    if (dest) cpSync(this.dir, join(dest, this.prefix), { recursive: true, filter: (f) => !f.includes('/etcd') });
  }

  async down(): Promise<void> {
    this.keepLogs();
    for (const n of this.controllers.keys()) await this.stop(n, 'SIGKILL').catch(() => undefined);
    for (const p of this.procs) p.kill('SIGKILL');
    trySh(null, [TOPO, 'down', this.prefix], 60_000);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
