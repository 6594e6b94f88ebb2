// A real etcd cluster for integration tests: N members of /usr/bin/etcd on free loopback ports,
// temporary data dirs, fast raft timing (heartbeat 10 ms, election 100 ms → 1 s lease TTL floor),
// and fault injection (SIGKILL / SIGSTOP / SIGCONT, restart).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type MemberState = 'running' | 'stopped' | 'exited';

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  state: MemberState;
  process: ChildProcess | null;
}

export interface EtcdClusterOptions {
  size?: number;
  etcdBin?: string;
  heartbeatMs?: number;
  electionMs?: number;
  /** How long start() and restart() wait for /health. */
  startTimeoutMs?: number;
}

/** Free TCP ports on 127.0.0.1: bind :0 for all of them at once, then release. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  })));
  const ports = servers.map((s) => {
    const a = s.address();
    if (a === null || typeof a === 'string') throw new Error('no port');
    return a.port;
  });
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class EtcdCluster {
  readonly members: EtcdMember[] = [];
  private readonly root: string;
  private readonly logs = new Map<string, WriteStream>();
  private readonly token = `sandwich-test-${process.pid}-${Date.now()}`;
  private readonly onExit = () => this.killAllSync();

  private constructor(private readonly opts: Required<EtcdClusterOptions>, ports: number[]) {
    this.root = mkdtempSync(join(tmpdir(), 'sandwich-etcd-'));
    for (let i = 0; i < opts.size; i++) {
      this.members.push({
        name: `m${i}`,
        clientUrl: `http://127.0.0.1:${ports[2 * i]}`,
        peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`,
        dataDir: join(this.root, `m${i}.etcd`),
        state: 'exited',
        process: null,
      });
    }
    process.once('exit', this.onExit);
  }

  static async start(options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    const opts: Required<EtcdClusterOptions> = {
      size: 3, etcdBin: '/usr/bin/etcd', heartbeatMs: 10, electionMs: 100, startTimeoutMs: 15_000, ...options,
    };
    const cluster = new EtcdCluster(opts, await freePorts(2 * opts.size));
    try {
      for (const m of cluster.members) cluster.spawnMember(m, 'new');
      await Promise.all(cluster.members.map((m) => cluster.waitHealthy(m, opts.startTimeoutMs)));
    } catch (e) {
      await cluster.destroy();
      throw e;
    }
    return cluster;
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  member(i: number): EtcdMember {
    const m = this.members[i];
    if (!m) throw new Error(`no member ${i}`);
    return m;
  }

  private spawnMember(m: EtcdMember, state: 'new' | 'existing'): void {
    const initialCluster = this.members.map((x) => `${x.name}=${x.peerUrl}`).join(',');
    const args = [
      `--name=${m.name}`, `--data-dir=${m.dataDir}`,
      `--listen-client-urls=${m.clientUrl}`, `--advertise-client-urls=${m.clientUrl}`,
      `--listen-peer-urls=${m.peerUrl}`, `--initial-advertise-peer-urls=${m.peerUrl}`,
      `--initial-cluster=${initialCluster}`, `--initial-cluster-state=${state}`, `--initial-cluster-token=${this.token}`,
      `--heartbeat-interval=${this.opts.heartbeatMs}`, `--election-timeout=${this.opts.electionMs}`,
      '--logger=zap', '--log-outputs=stderr', '--log-level=warn',
    ];
    let log = this.logs.get(m.name);
    if (!log) {
      log = createWriteStream(join(this.root, `${m.name}.log`), { flags: 'a' });
      this.logs.set(m.name, log);
    }
    const child = spawn(this.opts.etcdBin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/bin:/bin' } });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    child.once('exit', () => {
      if (m.process === child) {
        m.state = 'exited';
        m.process = null;
      }
    });
    m.process = child;
    m.state = 'running';
  }

  /** GET /health on the member until it says true (it needs a leader and a quorum). */
  async waitHealthy(m: EtcdMember, timeoutMs = this.opts.startTimeoutMs): Promise<void> {
    const end = performance.now() + timeoutMs;
    let last = '';
    while (performance.now() < end) {
      if (m.state === 'exited') throw new Error(`etcd member ${m.name} exited; see ${join(this.root, `${m.name}.log`)}`);
      try {
        const r = await fetch(`${m.clientUrl}/health`, { signal: AbortSignal.timeout(500) });
        const body = await r.text();
        if (r.ok && /"health":\s*"true"/.test(body)) return;
        last = body;
      } catch (e) {
        last = String(e);
      }
      await sleep(50);
    }
    throw new Error(`etcd member ${m.name} not healthy after ${timeoutMs} ms: ${last}`);
  }

  /** Member id and the leader id it knows, from the v3 HTTP gateway. */
  private async status(m: EtcdMember): Promise<{ id: string; leader: string }> {
    const r = await fetch(`${m.clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(500) });
    const j = await r.json() as { header?: { member_id?: string }; leader?: string };
    return { id: j.header?.member_id ?? '', leader: j.leader ?? '' };
  }

  /** Index of the raft leader, as seen by running members (waits up to timeoutMs for one). */
  async leaderIndex(timeoutMs = 5000): Promise<number> {
    const end = performance.now() + timeoutMs;
    while (performance.now() < end) {
      const running = this.members.filter((m) => m.state === 'running');
      const st = await Promise.all(running.map((m) => this.status(m).catch(() => null)));
      const ids = new Map<string, number>();
      st.forEach((s, i) => { if (s) ids.set(s.id, this.members.indexOf(running[i]!)); });
      for (const s of st) {
        const idx = s && s.leader !== '0' ? ids.get(s.leader) : undefined;
        if (idx !== undefined) return idx;
      }
      await sleep(50);
    }
    throw new Error(`no etcd leader within ${timeoutMs} ms`);
  }

  /** SIGKILL: the member dies (restart() brings it back with its data). SIGSTOP/SIGCONT: freeze/thaw. */
  async kill(i: number, signal: 'SIGKILL' | 'SIGSTOP' | 'SIGCONT' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
    const m = this.member(i);
    const p = m.process;
    if (!p) throw new Error(`etcd member ${m.name} is not running`);
    if (signal === 'SIGKILL' || signal === 'SIGTERM') {
      const exited = new Promise((r) => p.once('exit', r));
      if (m.state === 'stopped') p.kill('SIGCONT');
      p.kill(signal);
      await exited;
      return;
    }
    p.kill(signal);
    m.state = signal === 'SIGSTOP' ? 'stopped' : 'running';
  }

  async restart(i: number, waitHealthy = true): Promise<void> {
    const m = this.member(i);
    if (m.process) await this.kill(i, 'SIGKILL');
    this.spawnMember(m, 'existing');
    if (waitHealthy) await this.waitHealthy(m);
  }

  private killAllSync(): void {
    for (const m of this.members) {
      if (!m.process) continue;
      try {
        m.process.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  /** Kill every member, remove the data dirs. */
  async destroy(): Promise<void> {
    process.removeListener('exit', this.onExit);
    await Promise.all(this.members.map(async (m) => {
      const p = m.process;
      if (!p) return;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await exited;
    }));
    await Promise.all([...this.logs.values()].map((l) => new Promise((r) => l.end(r))));
    rmSync(this.root, { recursive: true, force: true });
  }
}
