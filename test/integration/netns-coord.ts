// The coordination lab: test/system/topo.sh's namespaces, a real 3-member etcd in the `etcd`
// namespace (10.9.0.1-3, fast raft flags by default), real `sandwich run` processes for lb1 and lb2,
// VIP-holder samplers in lb1/lb2, a neighbour sampler and an ARP capture in the client namespace.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { readEvents, type SandwichEvent } from '../../controller/events';
import { sh, sleep, trySh, waitFor } from '../system/harness';
import { monoMs, Sampler } from './netns-sampler';

/** The repository (also when run compiled from dist/, as bench/failover.ts is). */
function repoRoot(): string {
  for (let d = __dirname; ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json'))) return d;
    if (dirname(d) === d) throw new Error(`no package.json above ${__dirname}`);
  }
}
const ROOT = repoRoot();
const TOPO = join(ROOT, 'test', 'system', 'topo.sh');
const BIN = join(ROOT, 'bin', 'sandwich');
export const VIP = '192.0.2.254';

export interface CoordOptions {
  leaseTtlS?: number;
  /** etcd raft flags; default fast (10/100 ms). */
  heartbeatMs?: number;
  electionMs?: number;
  callTimeoutMs?: number;
  /** Port the controllers use for etcd (a proxy in front of 2379, bench/delay-proxy.ts); default 2379. */
  etcdClientPort?: number;
  /** The fast leadership profile; absent = lease profile. */
  fast?: { renewIntervalMs: number; takeoverAfterMs: number; marginMs: number };
}

export function coordConfig(o: CoordOptions = {}): string {
  return `
cluster: coord
store: { kind: etcd, endpoints: [${[1, 2, 3].map((i) => `http://10.9.0.${i}:${o.etcdClientPort ?? 2379}`).join(', ')}], callTimeoutMs: ${o.callTimeoutMs ?? 500}, leaseTtlS: ${o.leaseTtlS ?? 1}, etcdElectionTimeoutMs: ${o.electionMs ?? 100}${o.fast ? `, leadership: { mode: fast, renewIntervalMs: ${o.fast.renewIntervalMs}, takeoverAfterMs: ${o.fast.takeoverAfterMs}, marginMs: ${o.fast.marginMs} }` : ''} }
timing: { decideIntervalMs: 100, reconcileIntervalMs: 2000, holdDownMs: 1000, observationStaleMs: 4000 }
nodes:
  - name: lb1
    role: ingress
    interfaces: { client: cli, firewall: fwn }
    probe: { interface: firewall, sources: { fw1: 10.1.0.21, fw2: 10.1.0.22 } }
  - name: lb2
    role: ingress
    interfaces: { client: cli, firewall: fwn }
    probe: { interface: firewall, sources: { fw1: 10.1.0.31, fw2: 10.1.0.32 } }
firewalls:
  - { name: fw1, ingressAddress: 10.1.0.11, egressAddress: 10.2.0.11, egressMac: "02:00:00:00:f1:0e", mark: 1, table: 101 }
  - { name: fw2, ingressAddress: 10.1.0.12, egressAddress: 10.2.0.12, egressMac: "02:00:00:00:f2:0e", mark: 2, table: 102 }
checks:
  - { name: ingress-leg, kind: icmp, scope: leg, from: ingress, intervalMs: 1000, timeoutMs: 500, rise: 1, fall: 2 }
vipGroups:
  - name: ingress
    role: ingress
    addresses:
      - { address: ${VIP}/24, interface: client }
    garp: { count: 1, repeatAfterMs: 300, refreshIntervalMs: 0 }
egress: { routes: [default] }
events: { file: "@DIR@/{node}/events.log" }
runtimeDir: "@DIR@/run"
`;
}

interface Proc {
  proc: ChildProcess;
  output: string;
}

export class CoordLab {
  readonly dir: string;
  readonly configFile: string;
  /** etcd data on tmpfs: fsync on a busy shared disk stalls raft for seconds. */
  readonly etcdDir: string;
  readonly etcd: (Proc | null)[] = [null, null, null];
  readonly controllers = new Map<string, Proc>();
  samplers: { lb1: Sampler; lb2: Sampler; neigh: Sampler } | null = null;
  private capture: ChildProcess | null = null;
  readonly captureFile: string;
  /** Date.now() − monoMs(), to place tcpdump's wall-clock stamps on the samplers' clock. */
  readonly wallOffset = Date.now() - monoMs();

  constructor(readonly prefix: string, readonly opts: CoordOptions = {}) {
    this.dir = mkdtempSync(join(tmpdir(), `sandwich-${prefix}-`));
    this.configFile = join(this.dir, 'config.yaml');
    this.etcdDir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `sandwich-${prefix}-etcd-`));
    this.captureFile = join(this.dir, 'arp.txt');
  }

  ns(name: string): string {
    return `${this.prefix}-${name}`;
  }

  async up(): Promise<void> {
    sh(null, [TOPO, 'up', this.prefix], 60_000);
    writeFileSync(this.configFile, coordConfig(this.opts).replaceAll('@DIR@', this.dir));
    sh(this.ns('etcd'), ['ip', 'addr', 'add', '10.9.0.2/24', 'dev', 'mgmt']);
    sh(this.ns('etcd'), ['ip', 'addr', 'add', '10.9.0.3/24', 'dev', 'mgmt']);
    for (let i = 0; i < 3; i++) this.startEtcd(i, 'new');
    await waitFor('etcd healthy', () => trySh(this.ns('lb1'), ['curl', '-sf', '-m', '1', 'http://10.9.0.1:2379/health']).out.includes('true'), 30_000, 100);
    // A client neighbour entry for the VIP must exist for gratuitous ARP to update it (arp_accept=0).
    this.samplers = {
      lb1: new Sampler(this.ns('lb1'), 'holder', VIP, join(this.dir, 'lb1.samples')),
      lb2: new Sampler(this.ns('lb2'), 'holder', VIP, join(this.dir, 'lb2.samples')),
      neigh: new Sampler(this.ns('c'), 'neigh', VIP, join(this.dir, 'c.samples')),
    };
    const cap = spawn('ip', ['netns', 'exec', this.ns('c'), 'tcpdump', '-l', '-n', '-e', '-tt', '-i', 'lan', 'arp'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let text = '';
    cap.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      writeFileSync(this.captureFile, text);
    });
    this.capture = cap;
  }

  private etcdArgs(i: number, state: 'new' | 'existing'): string[] {
    const ip = `10.9.0.${i + 1}`;
    return ['etcd', `--name=e${i}`, `--data-dir=${join(this.etcdDir, `etcd${i}`)}`,
      `--listen-client-urls=http://${ip}:2379`, `--advertise-client-urls=http://${ip}:2379`,
      `--listen-peer-urls=http://${ip}:2380`, `--initial-advertise-peer-urls=http://${ip}:2380`,
      '--initial-cluster=e0=http://10.9.0.1:2380,e1=http://10.9.0.2:2380,e2=http://10.9.0.3:2380',
      `--initial-cluster-state=${state}`, `--initial-cluster-token=${this.prefix}`,
      `--heartbeat-interval=${this.opts.heartbeatMs ?? 10}`, `--election-timeout=${this.opts.electionMs ?? 100}`, '--log-level=warn'];
  }

  startEtcd(i: number, state: 'new' | 'existing' = 'existing'): void {
    // `ip netns exec` execs etcd: the child's pid is etcd's, so signals reach it directly.
    const log = openSync(join(this.dir, `etcd${i}.log`), 'a');
    // Nice −10 (nice and ip exec in turn: the pid is etcd's): in production etcd has its own CPUs.
    const proc = spawn('nice', ['-n', '-10', 'ip', 'netns', 'exec', this.ns('etcd'), ...this.etcdArgs(i, state)], { stdio: ['ignore', log, log] });
    closeSync(log);
    const p: Proc = { proc, output: '' };
    this.etcd[i] = p;
  }

  async killEtcd(i: number): Promise<void> {
    const p = this.etcd[i];
    if (!p) return;
    this.etcd[i] = null;
    if (p.proc.exitCode !== null || p.proc.signalCode !== null) return;
    const exited = new Promise((r) => p.proc.once('exit', r));
    p.proc.kill('SIGCONT');
    p.proc.kill('SIGKILL');
    await exited;
  }

  signalEtcd(i: number, sig: 'SIGSTOP' | 'SIGCONT'): void {
    this.etcd[i]?.proc.kill(sig);
  }

  async etcdHealthy(i: number, timeoutMs = 20_000): Promise<void> {
    await waitFor(`etcd member ${i} healthy`, () => trySh(this.ns('lb1'), ['curl', '-sf', '-m', '1', `http://10.9.0.${i + 1}:2379/health`]).out.includes('true'), timeoutMs, 100);
  }

  /** Index (0-2) of the raft leader. */
  async etcdLeader(): Promise<number> {
    const { value } = await waitFor('etcd raft leader', () => {
      const r = trySh(this.ns('lb1'), ['etcdctl', '--endpoints=http://10.9.0.1:2379,http://10.9.0.2:2379,http://10.9.0.3:2379', '--command-timeout=1s', 'endpoint', 'status', '-w', 'json'], 5000);
      if (!r.out.trim().startsWith('[')) return null;
      const st = JSON.parse(r.out) as { Endpoint: string; Status: { header: { member_id: number | string }; leader: number | string } }[];
      const lead = st.find((s) => String(s.Status.header.member_id) === String(s.Status.leader));
      return lead ? { i: Number(/10\.9\.0\.(\d)/.exec(lead.Endpoint)![1]) - 1 } : null;
    }, 10_000, 100);
    return value!.i;
  }

  start(node: string): Proc {
    // Nice −10 as deploy/sandwich.service sets it.
    const proc = spawn('nice', ['-n', '-10', 'ip', 'netns', 'exec', this.ns(node), process.execPath, BIN, 'run', '--node', node, '--config', this.configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SANDWICH_EVENTS_STDOUT: '0' },
    });
    const p: Proc = { proc, output: '' };
    proc.stdout!.on('data', (d: Buffer) => (p.output = (p.output + d.toString()).slice(-8000)));
    proc.stderr!.on('data', (d: Buffer) => (p.output = (p.output + d.toString()).slice(-8000)));
    this.controllers.set(node, p);
    return p;
  }

  signal(node: string, sig: NodeJS.Signals): void {
    this.controllers.get(node)?.proc.kill(sig);
  }

  /** Sends `sig` (SIGTERM or SIGKILL) and waits for the exit; returns the exit code. */
  async stop(node: string, sig: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<number | null> {
    const c = this.controllers.get(node);
    if (!c || c.proc.exitCode !== null || c.proc.signalCode !== null) return c?.proc.exitCode ?? null;
    const exited = new Promise<number | null>((r) => c.proc.once('exit', (code) => r(code)));
    c.proc.kill('SIGCONT');
    c.proc.kill(sig);
    const code = await Promise.race([exited, sleep(10_000).then(() => 'timeout' as const)]);
    if (code === 'timeout') {
      c.proc.kill('SIGKILL');
      throw new Error(`${node} did not stop within 10 s after ${sig}: ${c.output}`);
    }
    return code;
  }

  cli(args: string[], ns = 'lb1'): { ok: boolean; out: string } {
    return trySh(this.ns(ns), [process.execPath, BIN, ...args, '--config', this.configFile], 20_000);
  }

  /** lb1/lb2 per the samplers (null: none, 'both' never expected). */
  holder(): string | null {
    const s = this.samplers!;
    const a = s.lb1.current() === '1' || s.lb1.current() === 'u';
    const b = s.lb2.current() === '1' || s.lb2.current() === 'u';
    return a && b ? 'both' : a ? 'lb1' : b ? 'lb2' : null;
  }

  /**
   * The node that has had the VIP address for `stableMs` while the other had none (address only: on a
   * loaded host the fence element can lapse for a moment before a late renewal refreshes it, which
   * interrupts ARP replies, not the data path; the at-most-one-holder check counts the fence).
   */
  steadyHolder(stableMs: number): string | null {
    const s = this.samplers!;
    const since = (n: 'lb1' | 'lb2') => {
      const last = s[n].addressChanges().pop();
      return last?.value === '1' ? last.t : null;
    };
    const a = since('lb1');
    const b = since('lb2');
    if ((a === null) === (b === null)) return null;
    const [node, t] = a !== null ? ['lb1', a] : ['lb2', b!];
    const h = this.holder();
    return monoMs() - t >= stableMs && h !== 'both' && h !== (node === 'lb1' ? 'lb2' : 'lb1') ? node : null;
  }

  /** Waits until `node` has held the VIP address without interruption for `stableMs`. */
  async holdsSteadily(node: string, stableMs = 2000, timeoutMs = 30_000): Promise<void> {
    await waitFor(`${node} holds the VIP steadily for ${stableMs} ms`, () => this.steadyHolder(stableMs) === node, timeoutMs, 50);
  }

  /** The VIP address on the node's interface (regardless of the fence). */
  hasAddress(node: string): boolean {
    return sh(this.ns(node), ['ip', '-o', 'addr', 'show', 'dev', 'cli']).includes(`${VIP}/24`);
  }

  mac(node: string): string {
    return (JSON.parse(sh(this.ns(node), ['ip', '-j', 'link', 'show', 'dev', 'cli'])) as { address: string }[])[0]!.address;
  }

  /** The client's neighbour entry for the VIP, from its sampler. */
  neighbour(): string | null {
    const v = this.samplers!.neigh.current();
    return v && v !== '-' ? v : null;
  }

  /** Makes sure the client has a neighbour entry for the VIP (one ping). */
  touchNeighbour(): void {
    trySh(this.ns('c'), ['ping', '-c', '1', '-W', '1', VIP], 5000);
  }

  /** ARP packets captured in the client namespace: monotonic time, source MAC, the line. */
  arp(): { t: number; mac: string; line: string }[] {
    let text = '';
    try {
      text = readFileSync(this.captureFile, 'utf8');
    } catch {
      return [];
    }
    return text.split('\n').filter(Boolean).map((line) => {
      const [ts, mac] = line.split(' ');
      return { t: Number(ts) * 1000 - this.wallOffset, mac: mac ?? '', line };
    });
  }

  /** ARP packets that announce the VIP (gratuitous requests or replies with the VIP as sender) from `mac` after `since`. */
  /**
   * Requests for the VIP (not gratuitous ones) answered by more than one MAC, since `since`: each
   * request groups the replies captured before the next request.
   */
  arpAnsweredTwice(since: number): { t: number; macs: string[] }[] {
    const bad: { t: number; macs: string[] }[] = [];
    let group: { t: number; macs: Set<string> } | null = null;
    const close = () => {
      if (group && group.macs.size > 1) bad.push({ t: group.t, macs: [...group.macs] });
    };
    for (const p of this.arp().filter((x) => x.t >= since)) {
      if (p.line.includes(`Request who-has ${VIP}`) && !p.line.includes(`tell ${VIP},`)) {
        close();
        group = { t: p.t, macs: new Set() };
      } else if (group && p.line.includes(`Reply ${VIP} is-at`)) {
        group.macs.add(p.mac);
      }
    }
    close();
    return bad;
  }

  vipAnnouncements(mac: string, since: number): { t: number; line: string }[] {
    return this.arp().filter((p) => p.t >= since && p.mac === mac && (p.line.includes(`tell ${VIP},`) || p.line.includes(`Reply ${VIP} is-at`)));
  }

  events(node: string, onBad?: (msg: string) => void): SandwichEvent[] {
    return readEvents(join(this.dir, node, 'events.log'), {}, onBad);
  }

  status(node: string): { lifecycle?: string; leader?: boolean; holdsVips?: boolean; observations?: { state: string }[] } | null {
    try {
      return JSON.parse(readFileSync(join(this.dir, 'run', `${node}.status.json`), 'utf8')) as ReturnType<CoordLab['status']>;
    } catch {
      return null;
    }
  }

  /** The node is running and its probes see both firewalls up (a valid switchover target). */
  ready(node: string): boolean {
    const s = this.status(node);
    return s?.lifecycle === 'RUNNING' && (s.observations?.length ?? 0) >= 2 && s.observations!.every((o) => o.state === 'up');
  }

  async down(): Promise<void> {
    const keep = process.env.SANDWICH_KEEP;
    for (const n of this.controllers.keys()) await this.stop(n, 'SIGKILL').catch(() => undefined);
    if (this.samplers) await Promise.all(Object.values(this.samplers).map((s) => s.stop()));
    this.capture?.kill('SIGKILL');
    for (let i = 0; i < 3; i++) await this.killEtcd(i);
    trySh(null, [TOPO, 'down', this.prefix], 60_000);
    if (keep) {
      mkdirSync(keep, { recursive: true });
      sh(null, ['cp', '-r', this.dir, join(keep, this.prefix)]);
    }
    rmSync(this.dir, { recursive: true, force: true });
    rmSync(this.etcdDir, { recursive: true, force: true });
  }
}
