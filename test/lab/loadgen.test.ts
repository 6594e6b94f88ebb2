// lab/loadgen.py against lab/httpd.py on loopback (host, no VM): bounded rate and duration,
// per-request records, long-lived connections, failures recorded as data.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LAB = join(__dirname, '..', '..', 'lab');
const dir = mkdtempSync(join(tmpdir(), 'sandwich-loadgen-'));
const PORT = 20000 + (process.pid % 20000);
let server: ChildProcess | null = null;

interface Rec { k: string; t: number; src?: string; port?: number; ok?: boolean; ms?: number; err?: string | null; requests?: number; long?: Record<string, string> }

function loadgen(out: string, args: string[]): Promise<Rec[]> {
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/python3', [join(LAB, 'loadgen.py'), '--out', out, '--host', '127.0.0.1', '--port', String(PORT),
      '--prefix', '127.0.0.', '--first', '1', '--last', '4', ...args], { timeout: 30_000 }, (err) => {
      if (err) return reject(err);
      resolve(readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Rec));
    });
  });
}

beforeAll(async () => {
  const ready = join(dir, 'ready');
  server = spawn('/usr/bin/python3', [join(LAB, 'httpd.py'), '--host', '127.0.0.1', '--port', String(PORT), '--ready', ready], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !existsSync(ready); i++) await new Promise((r) => setTimeout(r, 100));
  if (!existsSync(ready)) throw new Error('httpd.py did not start within 10 s');
}, 15_000);

afterAll(() => {
  server?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('lab/loadgen.py', () => {
  it('sends the requested rate for the requested time from rotating sources, all recorded', async () => {
    const t0 = Date.now() / 1000;
    const recs = await loadgen(join(dir, 'ok.jsonl'), ['--rate', '20', '--duration', '2', '--long', '1', '--long-interval', '0.5']);
    const reqs = recs.filter((r) => r.k === 'req');
    expect(reqs.length).toBeGreaterThanOrEqual(38);
    expect(reqs.length).toBeLessThanOrEqual(41);
    expect(reqs.every((r) => r.ok && r.err === null && typeof r.ms === 'number')).toBe(true);
    expect(new Set(reqs.map((r) => r.src))).toEqual(new Set(['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4']));
    expect(Math.min(...reqs.map((r) => r.t))).toBeGreaterThanOrEqual(t0 - 1);
    const longs = recs.filter((r) => r.k === 'long');
    expect(longs.length).toBeGreaterThanOrEqual(3);
    expect(longs.every((r) => r.src === '127.0.0.5' && r.ok)).toBe(true);
    const end = recs.find((r) => r.k === 'end')!;
    expect(end.long).toEqual({ '127.0.0.5': 'alive' });
  }, 30_000);

  it('opens several long-lived connections per source, spread over the ramp, each with its own id and port', async () => {
    const recs = await loadgen(join(dir, 'many.jsonl'), ['--rate', '2', '--duration', '2', '--long', '2', '--long-per-src', '3',
      '--long-ramp', '0.6', '--long-interval', '0.4', '--long-timeout', '5']);
    const longs = recs.filter((r) => r.k === 'long');
    const ids = ['127.0.0.5#0', '127.0.0.5#1', '127.0.0.5#2', '127.0.0.6#0', '127.0.0.6#1', '127.0.0.6#2'];
    expect(new Set(longs.map((r) => r.src))).toEqual(new Set(ids));
    expect(longs.every((r) => r.ok)).toBe(true);
    const ports = new Map(longs.map((r) => [r.src, r.port]));
    expect(new Set(ports.values()).size).toBe(6);
    // The ramp: the last connection's first request starts about 0.5 s after the first one's.
    const first = (id: string) => Math.min(...longs.filter((r) => r.src === id).map((r) => r.t));
    expect(first('127.0.0.6#2') - first('127.0.0.5#0')).toBeGreaterThan(0.3);
    expect(Object.keys(recs.find((r) => r.k === 'end')!.long!).sort()).toEqual(ids);
  }, 30_000);

  it('records failures (nothing listening) as data and keeps going until the duration ends', async () => {
    server?.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    const recs = await loadgen(join(dir, 'bad.jsonl'), ['--rate', '10', '--duration', '1', '--long', '1']);
    const reqs = recs.filter((r) => r.k === 'req');
    expect(reqs.length).toBeGreaterThanOrEqual(9);
    expect(reqs.every((r) => r.ok === false && /Refused/.test(r.err ?? ''))).toBe(true);
    expect(recs.find((r) => r.k === 'end')!.long!['127.0.0.5']).toMatch(/^lost at .*connect/);
  }, 30_000);

  it('runs extra streams in the same process: IPv6 TCP and UDP echo, each recorded with its service name in its own file', async () => {
    const ready = join(dir, 'ready2');
    const port2 = PORT + 1;
    const srv2 = spawn('/usr/bin/python3', [join(LAB, 'httpd.py'), '--host', '127.0.0.1,::1', '--port', String(port2),
      '--udp-echo', String(port2), '--udp-host', '127.0.0.1,::1', '--ready', ready], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && !existsSync(ready); i++) await new Promise((r) => setTimeout(r, 100));
      const f = (n: string) => join(dir, `${n}.jsonl`);
      const main = await loadgen(f('main'), ['--rate', '4', '--duration', '2', '--long', '0', '--port', String(port2),
        '--extra', `name=web6,host=::1,port=${port2},prefix=::,first=1,last=1,rate=3,out=${f('web6')}`,
        '--extra', `name=udp4,proto=udp,host=127.0.0.1,port=${port2},rate=4,out=${f('udp4')}`,
        '--extra', `name=udp6,proto=udp,host=::1,port=${port2},prefix=::,first=1,last=1,rate=2,out=${f('udp6')}`]);
      expect(main.filter((r) => r.k === 'req' && r.ok).length).toBeGreaterThanOrEqual(7);
      const read = (n: string) => readFileSync(f(n), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Rec & { svc?: string });
      for (const [n, min] of [['web6', 5], ['udp4', 7], ['udp6', 3]] as const) {
        const recs = read(n);
        const reqs = recs.filter((r) => r.k === 'req');
        expect(reqs.length).toBeGreaterThanOrEqual(min);
        expect(reqs.every((r) => r.ok && r.svc === n)).toBe(true);
        expect(recs.find((r) => r.k === 'end')!.svc).toBe(n);
      }
    } finally {
      srv2.kill('SIGKILL');
    }
  }, 30_000);

  it('rejects a UDP stream with long-lived connections and an unknown key', async () => {
    await expect(loadgen(join(dir, 'y.jsonl'), ['--extra', `name=u,proto=udp,long=1,out=${join(dir, 'u.jsonl')}`])).rejects.toThrow(/0 for udp/);
    await expect(loadgen(join(dir, 'y.jsonl'), ['--extra', `name=u,colour=red,out=${join(dir, 'u.jsonl')}`])).rejects.toThrow(/unknown keys/);
  });

  it('rejects unbounded settings', async () => {
    await expect(loadgen(join(dir, 'x.jsonl'), ['--rate', '1000'])).rejects.toThrow(/--rate/);
    await expect(loadgen(join(dir, 'x.jsonl'), ['--long', '10', '--long-per-src', '300'])).rejects.toThrow(/--long-per-src/);
  });
});
