import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApiHandler, readToken, startApi, tokenMatches, type ApiServer } from '../../controller/api';
import { parseConfig, type Config } from '../../controller/config';
import { MemoryEventLog } from '../../controller/events';
import { MemoryStore } from '../../controller/memory-store';
import { Metrics } from '../../controller/metrics';

const TOKEN = 'a-test-token-0123456789abcdef';
const yaml = readFileSync(join(__dirname, '../../deploy/config.example.yaml'), 'utf8');

interface Reply {
  status: number;
  body: string;
  json: Record<string, unknown>;
  contentType: string;
}

function call(target: { port?: number; socketPath?: string }, method: string, path: string, opts: { token?: string; body?: string; auth?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
    if (opts.auth !== undefined) headers.authorization = opts.auth;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const req = request({ host: '127.0.0.1', ...target, method, path, headers, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(body) as Record<string, unknown>;
        } catch {
          // not JSON (metrics)
        }
        resolve({ status: res.statusCode ?? 0, body, json, contentType: String(res.headers['content-type']) });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('HTTP API', () => {
  let config: Config;
  let store: MemoryStore;
  let events: MemoryEventLog;
  let metrics: Metrics;
  let server: ApiServer;
  let port: number;

  beforeEach(async () => {
    config = parseConfig(yaml);
    store = new MemoryStore();
    events = new MemoryEventLog();
    metrics = new Metrics(config, 'lb1');
    metrics.attach({ isLeader: () => true });
    server = await startApi('127.0.0.1:0', createApiHandler({ config, node: 'lb1', store, events, metrics, token: TOKEN, switchoverWaitMs: 3000 }));
    port = Number(server.address.split(':').pop());
  });
  afterEach(async () => {
    await server.close();
  });
  const api = (method: string, path: string, opts: { token?: string; body?: string; auth?: string } = {}) => call({ port }, method, path, opts);

  test('binds to the loopback address it was given', () => {
    expect(server.address).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  test('GET /status is the status report built from the store', async () => {
    await store.putDrain({ firewall: 'fw2', by: 'ops', reason: 'patching', since: 1 });
    const l = await store.campaign('ingress', 'lb1');
    expect(l).not.toBeNull();
    const r = await api('GET', '/status');
    expect(r.status).toBe(200);
    expect(r.json.cluster).toBe('seed');
    expect(r.json.source).toBe('store');
    expect(r.json.drains).toEqual([{ firewall: 'fw2', by: 'ops', reason: 'patching', since: 1 }]);
    expect((r.json.leaders as Record<string, { node: string } | undefined>).ingress?.node).toBe('lb1');
    // The daemon's store stays open after a status request.
    await expect(store.listDrains()).resolves.toHaveLength(1);
  });

  test('GET /metrics is Prometheus text', async () => {
    const r = await api('GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.contentType).toMatch(/^text\/plain/);
    expect(r.body).toContain('sandwich_leader{role="ingress",cluster="seed",node="lb1"} 1');
  });

  test('writes without a token are refused with 401 and logged; nothing changes', async () => {
    const r = await api('POST', '/drain/fw1', { body: JSON.stringify({ reason: 'patching' }) });
    expect(r.status).toBe(401);
    expect(r.json.error).toMatch(/Authorization: Bearer/);
    expect(await store.listDrains()).toEqual([]);
    const refusal = events.events.find((e) => e.reason.startsWith('API: refused POST /drain/fw1'));
    expect(refusal).toMatchObject({ event: 'error', level: 'warn', node: 'lb1' });
    expect(refusal!.reason).toContain('no bearer token');
  });

  test('a wrong token is refused with 401; neither token appears in any event', async () => {
    const wrong = 'wrong-token-zzzzzzzzzzzzzzzz';
    for (const auth of [`Bearer ${wrong}`, `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`, `Bearer ${TOKEN}x`]) {
      const r = await api('POST', '/undrain/fw1', { auth });
      expect(r.status).toBe(401);
    }
    await api('POST', '/drain/fw1', { token: TOKEN, body: JSON.stringify({ reason: 'ok now' }) });
    expect(events.events.filter((e) => e.reason.includes('refused'))).toHaveLength(3);
    const logged = JSON.stringify(events.events);
    expect(logged).not.toContain(wrong);
    expect(logged).not.toContain(TOKEN);
    expect(logged).not.toContain(Buffer.from(`x:${TOKEN}`).toString('base64'));
  });

  test('drain and undrain with the token', async () => {
    const r = await api('POST', '/drain/fw1', { token: TOKEN, body: JSON.stringify({ reason: 'kernel update' }) });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ ok: true, message: 'fw1: drain requested' });
    expect(await store.listDrains()).toMatchObject([{ firewall: 'fw1', by: 'api@lb1', reason: 'kernel update' }]);
    expect(events.events.some((e) => e.event === 'drain' && e.firewall === 'fw1')).toBe(true);
    // The last firewall in service is not drained without force.
    const last = await api('POST', '/drain/fw2', { token: TOKEN, body: JSON.stringify({ reason: 'also' }) });
    expect(last.status).toBe(409);
    expect(last.json.error).toMatch(/no other firewall would be in service/);
    const forced = await api('POST', '/drain/fw2', { token: TOKEN, body: JSON.stringify({ reason: 'also', force: true }) });
    expect(forced.status).toBe(200);
    const u = await api('POST', '/undrain/fw1', { token: TOKEN });
    expect(u.json).toEqual({ ok: true, message: 'fw1: undrained' });
    const again = await api('POST', '/undrain/fw1', { token: TOKEN });
    expect(again.json).toEqual({ ok: true, message: 'fw1: was not drained' });
    expect((await store.listDrains()).map((d) => d.firewall)).toEqual(['fw2']);
  });

  test('bad input: unknown firewall, shell metacharacters, bad JSON, unknown fields → 400 with a clear message', async () => {
    const cases: [string, string | undefined, RegExp][] = [
      ['/drain/fw9', JSON.stringify({ reason: 'x' }), /unknown firewall "fw9" \(known: fw1, fw2\)/],
      [`/drain/${encodeURIComponent('fw1;reboot')}`, JSON.stringify({ reason: 'x' }), /unknown firewall "fw1;reboot"/],
      [`/drain/${encodeURIComponent('$(reboot)')}`, JSON.stringify({ reason: 'x' }), /unknown firewall "\$\(reboot\)"/],
      ['/drain/fw1', JSON.stringify({ reason: 'x; rm -rf /' }), /reason: must be 1-200 characters/],
      ['/drain/fw1', JSON.stringify({ reason: '`id`' }), /reason: must be 1-200 characters/],
      ['/drain/fw1', JSON.stringify({ reason: 'a\nb' }), /reason: must be 1-200 characters/],
      ['/drain/fw1', JSON.stringify({}), /reason/],
      ['/drain/fw1', '{not json', /not valid JSON/],
      ['/drain/fw1', JSON.stringify({ reason: 'x', extra: 1 }), /extra/],
      ['/drain/', JSON.stringify({ reason: 'x' }), /firewall name missing/],
      ['/drain/%zz', JSON.stringify({ reason: 'x' }), /percent-encoding/],
      ['/failover', JSON.stringify({ to: 'lb2$(reboot)' }), /to: must be a node name/],
      ['/failover', JSON.stringify({ to: 'lb9' }), /unknown node "lb9"/],
      ['/failover', JSON.stringify({ role: 'both' }), /role/],
      ['/undrain/fw1', JSON.stringify({ reason: 'x' }), /reason/],
    ];
    for (const [path, body, msg] of cases) {
      const r = await api('POST', path, { token: TOKEN, ...(body !== undefined ? { body } : {}) });
      expect({ path, status: r.status }).toEqual({ path, status: 400 });
      expect(String(r.json.error)).toMatch(msg);
    }
    expect(await store.listDrains()).toEqual([]);
    expect(await store.getSwitchover('ingress')).toBeNull();
  });

  test('methods, paths and body size', async () => {
    expect((await api('GET', '/drain/fw1')).status).toBe(405);
    expect((await api('POST', '/status', { token: TOKEN })).status).toBe(405);
    const nf = await api('GET', '/nope');
    expect(nf.status).toBe(404);
    expect(nf.json.error).toMatch(/GET \/status/);
    const big = await api('POST', '/drain/fw1', { token: TOKEN, body: JSON.stringify({ reason: 'x'.repeat(5000) }) });
    expect(big.status).toBe(413);
  });

  test('failover: refused without a leader (409), moves leadership when the target is healthy', async () => {
    const none = await api('POST', '/failover', { token: TOKEN, body: '{}' });
    expect(none.status).toBe(409);
    expect(none.json.error).toMatch(/no ingress leader/);

    const lead = (await store.campaign('ingress', 'lb1'))!;
    const now = Date.now();
    await store.putNodeStatus({ node: 'lb2', role: 'ingress', lifecycle: 'RUNNING', updatedAt: now, appliedRevision: null, holdsVips: false, applied: null, drift: [] });
    for (const fw of ['fw1', 'fw2']) {
      await store.putObservation({ node: 'lb2', role: 'ingress', firewall: fw, check: 'path-http', state: 'up', since: now, updatedAt: now, streak: 3, lastError: null, rttMs: 1 });
    }
    // Stand-ins for the two controllers: the leader resigns on request, lb2 then campaigns.
    const follower = setInterval(() => {
      void (async () => {
        if (await store.getSwitchover('ingress')) {
          await store.resign(lead);
          await store.deleteSwitchover('ingress');
          await store.campaign('ingress', 'lb2');
        }
      })();
    }, 10);
    try {
      const r = await api('POST', '/failover', { token: TOKEN, body: JSON.stringify({ to: 'lb2' }) });
      expect(r.status).toBe(200);
      expect(r.json.message).toMatch(/^ingress leadership moved from lb1 to lb2 in \d+ ms$/);
      expect((await store.getLeader('ingress'))?.node).toBe('lb2');
      expect(events.events.some((e) => e.event === 'switchover' && e.reason.includes('moved from lb1 to lb2'))).toBe(true);
    } finally {
      clearInterval(follower);
    }
  });

  test('without a token every write is refused (403)', async () => {
    const ro = await startApi('127.0.0.1:0', createApiHandler({ config, node: 'lb1', store, events, token: null }));
    try {
      const r = await call({ port: Number(ro.address.split(':').pop()) }, 'POST', '/undrain/fw1', { token: TOKEN });
      expect(r.status).toBe(403);
      expect(r.json.error).toMatch(/api.tokenFile/);
      const m = await call({ port: Number(ro.address.split(':').pop()) }, 'GET', '/metrics');
      expect(m.status).toBe(404);
    } finally {
      await ro.close();
    }
  });
});

describe('API over a unix socket', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sandwich-api-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('status and an authorised drain; a stale socket file is replaced', async () => {
    const config = parseConfig(yaml);
    const store = new MemoryStore();
    const events = new MemoryEventLog();
    const socketPath = join(dir, 'api.sock');
    const handler = createApiHandler({ config, node: 'lb2', store, events, token: TOKEN });
    // A crash leaves the socket file behind, with nobody listening.
    execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', socketPath]);
    expect(lstatSync(socketPath).isSocket()).toBe(true);
    const server = await startApi(`unix:${socketPath}`, handler);
    expect(lstatSync(socketPath).mode & 0o777).toBe(0o660);
    // A socket someone answers on is not taken over.
    await expect(startApi(`unix:${socketPath}`, handler)).rejects.toThrow(/another process is listening there/);
    try {
      const s = await call({ socketPath }, 'GET', '/status');
      expect(s.status).toBe(200);
      expect(s.json.cluster).toBe('seed');
      const d = await call({ socketPath }, 'POST', '/drain/fw2', { token: TOKEN, body: JSON.stringify({ reason: 'swap PSU' }) });
      expect(d.status).toBe(200);
      expect(await store.listDrains()).toMatchObject([{ firewall: 'fw2', reason: 'swap PSU', by: 'api@lb2' }]);
    } finally {
      await server.close();
    }
  });
});

describe('token handling', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sandwich-token-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('readToken trims, refuses short, missing and spaced tokens', () => {
    writeFileSync(join(dir, 'ok'), `${TOKEN}\n`);
    expect(readToken(join(dir, 'ok'))).toBe(TOKEN);
    writeFileSync(join(dir, 'short'), 'abc\n');
    expect(() => readToken(join(dir, 'short'))).toThrow(/at least 16 characters/);
    writeFileSync(join(dir, 'spaced'), 'abcdefgh ijklmnopq\n');
    expect(() => readToken(join(dir, 'spaced'))).toThrow(/without spaces/);
    expect(() => readToken(join(dir, 'absent'))).toThrow(/cannot read .*absent: ENOENT/);
  });

  test('tokenMatches compares whole tokens', () => {
    expect(tokenMatches(TOKEN, TOKEN)).toBe(true);
    expect(tokenMatches(TOKEN.slice(0, -1), TOKEN)).toBe(false);
    expect(tokenMatches(`${TOKEN}x`, TOKEN)).toBe(false);
    expect(tokenMatches('', TOKEN)).toBe(false);
  });
});
