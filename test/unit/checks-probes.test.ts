// Probes against real servers on loopback, and the runner-based ICMP probe against captured ping outputs.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProbeJob } from '../../checks/jobs';
import { httpProbe, icmpPackageProbe, icmpRunnerProbe, parsePingError, parsePingRtt, probeFactory, tcpProbe, HTTP_BODY_LIMIT_BYTES } from '../../checks/probes';
import type { CheckConfig } from '../../controller/config';
import { CommandFailedError, ExecRunner, FakeRunner } from '../../failover/runner';

const BAD_SOURCE = '10.250.250.250'; // not configured on this host

function job(kind: CheckConfig['kind'], target: string, extra: Partial<CheckConfig> & { port?: number; source?: string } = {}): ProbeJob {
  const { source = '127.0.0.1', ...rest } = extra;
  const check: CheckConfig = { name: 'c', kind, scope: 'path', from: 'ingress', intervalMs: 1000, timeoutMs: 300, rise: 3, fall: 3, jitter: 0.1, ...rest };
  return { node: 'lb1', role: 'ingress', firewall: 'fw1', check, kind, source, target, port: extra.port ?? null, key: 'fw1/c' };
}

const never = new AbortController().signal;

function listen(server: net.Server, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve) => server.listen(0, host, () => resolve((server.address() as net.AddressInfo).port)));
}

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  return port;
}

describe('tcp probe', () => {
  const server = net.createServer((sock) => {
    peers.push(sock.remoteAddress ?? '?');
    sock.on('error', () => undefined);
  });
  const peers: string[] = [];
  let port = 0;
  beforeAll(async () => { port = await listen(server); });
  afterAll(() => new Promise((r) => server.close(r)));

  it('connects and reports the connect time', async () => {
    const r = await tcpProbe(job('tcp', '127.0.0.1', { port }), never);
    expect(r.ok).toBe(true);
    expect(r.error).toBeUndefined();
    expect(r.rttMs).toBeGreaterThan(0);
    expect(r.rttMs).toBeLessThan(300);
  });

  it('binds its source address: the server sees 127.0.0.2', async () => {
    peers.length = 0;
    const r = await tcpProbe(job('tcp', '127.0.0.1', { port, source: '127.0.0.2' }), never);
    expect(r.ok).toBe(true);
    await new Promise((res) => setTimeout(res, 20));
    expect(peers).toEqual(['127.0.0.2']);
  });

  it('says "connection refused" for a closed port', async () => {
    const r = await tcpProbe(job('tcp', '127.0.0.1', { port: await freePort() }), never);
    expect(r).toMatchObject({ ok: false, error: 'connection refused' });
  });

  it('names a source address this host does not have', async () => {
    const r = await tcpProbe(job('tcp', '127.0.0.1', { port, source: BAD_SOURCE }), never);
    expect(r).toMatchObject({ ok: false, error: `source ${BAD_SOURCE}: cannot assign requested address` });
  });

  describe('against a listener whose accept queue is full (SYNs dropped)', () => {
    let py: ChildProcess;
    let fullPort = 0;
    const fillers: net.Socket[] = [];
    beforeAll(async () => {
      // listen(0) and never accept: once the queue is full the kernel drops further SYNs.
      py = spawn('/usr/bin/python3', ['-c', 'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(30)'], { stdio: ['ignore', 'pipe', 'inherit'] });
      fullPort = await new Promise<number>((resolve) => py.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
      for (let i = 0; i < 8; i++) {
        const s = net.connect({ host: '127.0.0.1', port: fullPort });
        s.on('error', () => undefined);
        fillers.push(s);
        const connected = await new Promise<boolean>((resolve) => {
          s.once('connect', () => resolve(true));
          setTimeout(() => resolve(false), 150);
        });
        if (!connected) break;
      }
    });
    afterAll(() => {
      fillers.forEach((s) => s.destroy());
      py.kill('SIGKILL');
    });

    it('times out after timeoutMs', async () => {
      const started = performance.now();
      const r = await tcpProbe(job('tcp', '127.0.0.1', { port: fullPort, timeoutMs: 250 }), never);
      const took = performance.now() - started;
      expect(r).toMatchObject({ ok: false, error: 'timeout after 250 ms' });
      expect(took).toBeGreaterThanOrEqual(245);
      expect(took).toBeLessThan(1000);
    });

    it('stops at once when its signal is aborted', async () => {
      const ac = new AbortController();
      setTimeout(() => ac.abort('probe engine stopped'), 50);
      const started = performance.now();
      const r = await tcpProbe(job('tcp', '127.0.0.1', { port: fullPort, timeoutMs: 5000 }), ac.signal);
      expect(r).toMatchObject({ ok: false, error: 'probe engine stopped' });
      expect(performance.now() - started).toBeLessThan(1000);
    });
  });
});

describe('http probe', () => {
  const peers: string[] = [];
  let connections = 0;
  const handler: http.RequestListener = (req, res) => {
    peers.push(req.socket.remoteAddress ?? '?');
    switch (req.url) {
      case '/ok': res.end('status: ok\n'); break;
      case '/down': res.writeHead(503).end('maintenance'); break;
      case '/moved': res.writeHead(302, { location: '/ok' }).end(); break;
      case '/hang': break; // never answers
      case '/big': res.end('x'.repeat(HTTP_BODY_LIMIT_BYTES) + 'ok'); break;
      case '/slowbody': res.write('partial'); break; // headers and some body, never the end
      default: res.writeHead(404).end();
    }
  };
  const server = http.createServer(handler);
  server.on('connection', () => { connections++; });
  let base = '';
  beforeAll(async () => { base = `http://127.0.0.1:${await listen(server)}`; });
  afterAll(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });

  it('accepts 200 and measures the round trip', async () => {
    const r = await httpProbe(job('http', `${base}/ok`), never);
    expect(r.ok).toBe(true);
    expect(r.rttMs).toBeGreaterThan(0);
  });

  it('fails on HTTP 503 and on 404; a redirect is healthy by default and not followed', async () => {
    expect(await httpProbe(job('http', `${base}/down`), never)).toMatchObject({ ok: false, error: 'HTTP 503' });
    expect(await httpProbe(job('http', `${base}/nope`), never)).toMatchObject({ ok: false, error: 'HTTP 404' });
    peers.length = 0;
    expect((await httpProbe(job('http', `${base}/moved`), never)).ok).toBe(true);
    expect(peers).toHaveLength(1);
  });

  it('checks expectStatus when given', async () => {
    expect((await httpProbe(job('http', `${base}/down`, { expectStatus: [503] }), never)).ok).toBe(true);
    expect(await httpProbe(job('http', `${base}/ok`, { expectStatus: [204] }), never)).toMatchObject({ ok: false, error: 'HTTP 200' });
  });

  it('matches the body against bodyMatch', async () => {
    expect((await httpProbe(job('http', `${base}/ok`, { bodyMatch: 'status: ok' }), never)).ok).toBe(true);
    expect(await httpProbe(job('http', `${base}/ok`, { bodyMatch: '^healthy$' }), never)).toMatchObject({ ok: false, error: 'body did not match /^healthy$/' });
  });

  it('reads at most the first 64 KiB of the body', async () => {
    expect((await httpProbe(job('http', `${base}/big`, { bodyMatch: '^x+' }), never)).ok).toBe(true);
    expect(await httpProbe(job('http', `${base}/big`, { bodyMatch: 'ok$' }), never)).toMatchObject({ ok: false, error: 'body did not match /ok$/' });
  });

  it('times out on a server that never answers, and on a body that never ends', async () => {
    for (const path of ['/hang', '/slowbody']) {
      const started = performance.now();
      const r = await httpProbe(job('http', `${base}${path}`, { timeoutMs: 200, bodyMatch: 'never' }), never);
      expect(r).toMatchObject({ ok: false, error: 'timeout after 200 ms' });
      expect(performance.now() - started).toBeLessThan(1000);
    }
  });

  it('says "connection refused" for a closed port', async () => {
    expect(await httpProbe(job('http', `http://127.0.0.1:${await freePort()}/`), never)).toMatchObject({ ok: false, error: 'connection refused' });
  });

  it('binds its source address and opens a new connection for every probe', async () => {
    peers.length = 0;
    const before = connections;
    for (let i = 0; i < 3; i++) expect((await httpProbe(job('http', `${base}/ok`, { source: '127.0.0.2' }), never)).ok).toBe(true);
    expect(peers).toEqual(['127.0.0.2', '127.0.0.2', '127.0.0.2']);
    expect(connections - before).toBe(3);
  });

  it('names a source address this host does not have', async () => {
    expect(await httpProbe(job('http', `${base}/ok`, { source: BAD_SOURCE }), never)).toMatchObject({ ok: false, error: `source ${BAD_SOURCE}: cannot assign requested address` });
  });

  it('resolves (never throws) on a URL it cannot use', async () => {
    expect(await httpProbe(job('http', 'ftp://127.0.0.1/'), never)).toMatchObject({ ok: false, error: expect.stringMatching(/ftp/) });
  });

  it('stops when its signal is aborted', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort('probe engine stopped'), 50);
    expect(await httpProbe(job('http', `${base}/hang`, { timeoutMs: 5000 }), ac.signal)).toMatchObject({ ok: false, error: 'probe engine stopped' });
  });

  describe('https with a self-signed certificate', () => {
    let dir = '';
    let tls: https.Server;
    let url = '';
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'pr-tls-'));
      execFileSync('/usr/bin/openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=fw-health', '-days', '1',
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
      tls = https.createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, handler);
      url = `https://127.0.0.1:${await listen(tls)}`;
    });
    afterAll(() => {
      rmSync(dir, { recursive: true, force: true });
      tls.closeAllConnections();
      return new Promise((r) => tls.close(r));
    });

    it('checks health without verifying the certificate', async () => {
      expect((await httpProbe(job('http', `${url}/ok`, { bodyMatch: 'ok' }), never)).ok).toBe(true);
      expect(await httpProbe(job('http', `${url}/down`), never)).toMatchObject({ ok: false, error: 'HTTP 503' });
    });
  });
});

describe('icmp probe through the ping package', () => {
  it('gets a reply from 127.0.0.1 with a real RTT', async () => {
    const r = await icmpPackageProbe(job('icmp', '127.0.0.1', { timeoutMs: 800 }), never);
    expect(r.ok).toBe(true);
    expect(r.rttMs).toBeGreaterThan(0);
    expect(r.rttMs).toBeLessThan(50);
  });

  it('names a source address this host does not have', async () => {
    expect(await icmpPackageProbe(job('icmp', '127.0.0.1', { source: BAD_SOURCE }), never)).toMatchObject({ ok: false, error: `source ${BAD_SOURCE}: cannot assign requested address` });
  });

  it('resolves at once when aborted', async () => {
    const ac = new AbortController();
    ac.abort('probe engine stopped');
    expect(await icmpPackageProbe(job('icmp', '127.0.0.1'), ac.signal)).toMatchObject({ ok: false, error: 'probe engine stopped' });
  });
});

describe('icmp probe through a CommandRunner', () => {
  const fixtures = join(__dirname, 'fixtures/ping');
  const read = (name: string) => ({
    stdout: readFileSync(join(fixtures, `${name}.stdout`), 'utf8'),
    stderr: readFileSync(join(fixtures, `${name}.stderr`), 'utf8'),
    exit: Number(readFileSync(join(fixtures, `${name}.exit`), 'utf8').trim()),
  });
  /** Answers every call like the captured run of `name` did (ExecRunner throws on a non-zero exit). */
  const replay = (name: string) => new FakeRunner((call) => {
    const f = read(name);
    if (f.exit === 0) return f.stdout;
    return new CommandFailedError(call.file, call.args, `ping: exit ${f.exit}`, f.exit, f.stderr);
  });

  it('runs ping -n -c 1 -W <seconds> -I <source> <target>', async () => {
    const runner = replay('success');
    const r = await icmpRunnerProbe(runner)(job('icmp', '10.1.0.11', { source: '10.1.0.21', timeoutMs: 800 }), never);
    expect(runner.lines()).toEqual(['ping -n -c 1 -W 0.8 -I 10.1.0.21 10.1.0.11']);
    expect(r).toEqual({ ok: true, rttMs: 0.053 });
  });

  it('reads 100% loss as a timeout', async () => {
    expect(await icmpRunnerProbe(replay('loss'))(job('icmp', '10.1.0.11', { timeoutMs: 300 }), never)).toMatchObject({ ok: false, error: 'timeout after 300 ms' });
  });

  it('reports what ping printed: a bad source, no route', async () => {
    expect(await icmpRunnerProbe(replay('badsource'))(job('icmp', '10.1.0.11', { source: BAD_SOURCE }), never))
      .toMatchObject({ ok: false, error: `source ${BAD_SOURCE}: cannot assign requested address` });
    expect(await icmpRunnerProbe(replay('noroute'))(job('icmp', '10.1.0.11'), never)).toMatchObject({ ok: false, error: 'network is unreachable' });
  });

  it('parses the captured outputs', () => {
    expect(parsePingRtt(read('success').stdout)).toBe(0.053);
    expect(parsePingRtt(read('loss').stdout)).toBeNull();
    expect(parsePingError(read('badsource').stderr, '10.9.9.9')).toBe('source 10.9.9.9: cannot assign requested address');
    expect(parsePingError(read('loss').stdout, '10.9.9.9')).toBeNull();
  });

  it('works with the real ping on this host', async () => {
    const probe = icmpRunnerProbe(new ExecRunner(3000));
    const ok = await probe(job('icmp', '127.0.0.1', { timeoutMs: 800 }), never);
    expect(ok.ok).toBe(true);
    expect(ok.rttMs).toBeLessThan(50);
    expect(await probe(job('icmp', '127.0.0.1', { source: BAD_SOURCE }), never)).toMatchObject({ ok: false, error: `source ${BAD_SOURCE}: cannot assign requested address` });
  });

  it('is what probeFactory picks for icmp when given a runner', async () => {
    const runner = replay('success');
    const pick = probeFactory({ icmp: runner });
    await pick(job('icmp', '10.1.0.11'))(job('icmp', '10.1.0.11'), never);
    expect(runner.calls).toHaveLength(1);
    expect(probeFactory()(job('icmp', 'x'))).toBe(icmpPackageProbe);
    expect(pick(job('tcp', 'x'))).toBe(tcpProbe);
    expect(pick(job('http', 'x'))).toBe(httpProbe);
  });
});
