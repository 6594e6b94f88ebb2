// etcd with mTLS and authentication, set up by deploy/etcd-tls/{make-certs,setup-auth}.sh: the
// controller's user works under its prefix and nowhere else; no client certificate, no entry;
// passwords never reach the event log.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { parseConfig, type Config } from '../../controller/config';
import { openStore } from '../../controller/open-store';
import { EtcdStore } from '../../controller/etcd-store';
import { createEventLog } from '../../controller/events';
import type { Observation } from '../../controller/types';
import { freePorts } from './etcd-cluster';

const ROOT = join(__dirname, '..', '..');
const MAKE_CERTS = join(ROOT, 'deploy', 'etcd-tls', 'make-certs.sh');
const SETUP_AUTH = join(ROOT, 'deploy', 'etcd-tls', 'setup-auth.sh');
const PASSWORD = 'tls-test-Pa55word-7f3a9c';
const ROOT_PASSWORD = 'root-Pa55word-19bd02';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const obs = (node: string, firewall: string): Observation => ({
  node, role: 'ingress', firewall, check: 'path-http', state: 'up', since: Date.now(), updatedAt: Date.now(), streak: 3, lastError: null, rttMs: 1,
});

describe('etcd with mTLS and a user limited to the cluster prefix', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sandwich-etcdtls-'));
  const certs = join(dir, 'certs');
  let etcd: ChildProcess | null = null;
  let endpoint = '';
  let etcdLog = '';
  const open: { close(): unknown }[] = [];

  const config = (over: { cluster?: string; prefix?: string; passwordFile?: string; cert?: boolean } = {}): Config => parseConfig(
    readFileSync(join(ROOT, 'deploy', 'config.example.yaml'), 'utf8')
      .replace('cluster: seed', `cluster: ${over.cluster ?? 'tlstest'}`)
      .replace(/store:\n  kind: etcd\n(  .*\n)+/, [
        'store:',
        '  kind: etcd',
        `  endpoints: [${endpoint}]`,
        '  callTimeoutMs: 10000',
        ...(over.prefix ? [`  prefix: ${over.prefix}`] : []),
        `  auth: { username: sandwich-tlstest, passwordFile: ${over.passwordFile ?? join(dir, 'password')} }`,
        over.cert === false
          ? `  tls: { caFile: ${certs}/ca.crt }`
          : `  tls: { caFile: ${certs}/ca.crt, certFile: ${certs}/sandwich-tlstest.crt, keyFile: ${certs}/sandwich-tlstest.key }`,
        '',
      ].join('\n')),
  );

  beforeAll(async () => {
    execFileSync(MAKE_CERTS, [certs, 'server', 'etcd1', 'IP:127.0.0.1,DNS:localhost']);
    for (const c of ['root', 'sandwich-tlstest']) execFileSync(MAKE_CERTS, [certs, 'client', c]);
    writeFileSync(join(dir, 'password'), `${PASSWORD}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'root-password'), `${ROOT_PASSWORD}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'wrong-password'), 'not-the-Pa55word\n', { mode: 0o600 });
    const [client, peer] = (await freePorts(2)) as [number, number];
    endpoint = `https://127.0.0.1:${client}`;
    etcd = spawn('/usr/bin/etcd', [
      '--name=tls1', `--data-dir=${join(dir, 'data')}`,
      `--listen-client-urls=${endpoint}`, `--advertise-client-urls=${endpoint}`,
      `--listen-peer-urls=http://127.0.0.1:${peer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-cluster=tls1=http://127.0.0.1:${peer}`,
      `--cert-file=${certs}/etcd1.crt`, `--key-file=${certs}/etcd1.key`, `--trusted-ca-file=${certs}/ca.crt`, '--client-cert-auth',
      '--heartbeat-interval=10', '--election-timeout=100', '--logger=zap', '--log-outputs=stderr', '--log-level=warn',
    ], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/bin:/bin' } });
    etcd.stderr!.on('data', (d: Buffer) => (etcdLog += d.toString()));
    const ctl = ['--endpoints', endpoint, '--cacert', `${certs}/ca.crt`, '--cert', `${certs}/root.crt`, '--key', `${certs}/root.key`, '--command-timeout=2s'];
    const end = Date.now() + 20_000;
    for (;;) {
      try {
        execFileSync('etcdctl', [...ctl, 'endpoint', 'health'], { stdio: 'pipe', timeout: 5000 });
        break;
      } catch (e) {
        if (Date.now() > end) throw new Error(`etcd with TLS did not become healthy: ${String(e)}\n${etcdLog}`);
        await sleep(100);
      }
    }
    const out = execFileSync(SETUP_AUTH, [endpoint, certs, 'tlstest', join(dir, 'password'), join(dir, 'root-password')], { encoding: 'utf8', timeout: 30_000 });
    expect(out).toMatch(/user sandwich-tlstest may read and write \/sandwich\/tlstest\/ only; auth enabled/);
    // Idempotent: a second run changes nothing and still succeeds.
    execFileSync(SETUP_AUTH, [endpoint, certs, 'tlstest', join(dir, 'password'), join(dir, 'root-password')], { encoding: 'utf8', timeout: 30_000 });
  }, 60_000);

  afterAll(async () => {
    for (const o of open.splice(0)) await Promise.resolve(o.close()).catch(() => undefined);
    if (etcd && etcd.exitCode === null) {
      etcd.kill('SIGKILL');
      await new Promise((r) => etcd!.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('the controller store works over mTLS with its user: observations, leadership, desired state, watch', async () => {
    const store = EtcdStore.fromConfig(config());
    open.push(store);
    const seen: string[] = [];
    const unwatch = store.watch((e) => seen.push(e));
    await store.putObservation(obs('lb1', 'fw1'));
    expect((await store.listObservations()).map((o) => `${o.node}/${o.firewall}`)).toEqual(['lb1/fw1']);
    const l = await store.campaign('ingress', 'lb1');
    expect(l).not.toBeNull();
    expect(await store.putDesired({ revision: 1, decidedBy: 'lb1', decidedAt: Date.now(), firewalls: {} }, null, l!)).toBe(true);
    expect((await store.getDesired())?.value.revision).toBe(1);
    await store.putDrain({ firewall: 'fw1', by: 'test', reason: 'x', since: 1 });
    expect(await store.deleteDrain('fw1')).toBe(true);
    const end = Date.now() + 5000;
    while (!seen.includes('desired') && Date.now() < end) await sleep(20);
    expect(seen).toContain('desired');
    unwatch();
    await store.resign(l!);
  }, 60_000);

  test('the same user cannot read or write outside /sandwich/tlstest/', async () => {
    const client = new Etcd3({
      hosts: [endpoint], auth: { username: 'sandwich-tlstest', password: PASSWORD },
      credentials: { rootCertificate: readFileSync(`${certs}/ca.crt`), certChain: readFileSync(`${certs}/sandwich-tlstest.crt`), privateKey: readFileSync(`${certs}/sandwich-tlstest.key`) },
    });
    open.push(client);
    await client.put('/sandwich/tlstest/probe').value('mine');
    expect(await client.get('/sandwich/tlstest/probe').string()).toBe('mine');
    await expect(client.put('/sandwich/other/x').value('theirs')).rejects.toThrow(/permission denied/);
    await expect(client.get('/sandwich/other/x').string()).rejects.toThrow(/permission denied/);
    await expect(client.put('/outside').value('x')).rejects.toThrow(/permission denied/);
    await expect(client.getAll().prefix('/').keys()).rejects.toThrow(/permission denied/);
    // A controller configured for another cluster's prefix is refused too.
    const other = EtcdStore.fromConfig(config({ prefix: '/sandwich/other/' }));
    open.push(other);
    await expect(other.putObservation(obs('lb1', 'fw1'))).rejects.toThrow(/permission denied/);
    await expect(other.listObservations()).rejects.toThrow(/permission denied/);
  }, 60_000);

  test('without a client certificate the connection is refused', async () => {
    const store = EtcdStore.fromConfig(config({ cert: false }));
    open.push(store);
    const err = await store.listObservations().then(() => null, (e: Error) => e);
    // The same config with the certificate works (first test): the TLS handshake is what fails here.
    expect(err?.message).toMatch(/UNAVAILABLE: No connection established/);
  }, 60_000);

  test('passwords never reach the event log, whether right or wrong', async () => {
    const logFile = join(dir, 'events.log');
    const events = createEventLog({ file: logFile });
    const good = await openStore(config(), events, 'lb1');
    await good.putObservation(obs('lb1', 'fw2'));
    const l = await good.campaign('ingress', 'lb1');
    if (l) await good.resign(l);
    await good.close();
    const bad = await openStore(config({ passwordFile: join(dir, 'wrong-password') }), events, 'lb2');
    const err = await bad.putObservation(obs('lb2', 'fw2')).then(() => null, (e: Error) => e);
    expect(err?.message).toMatch(/authentication failed|invalid user ID or password/);
    expect(err?.message).not.toContain('not-the-Pa55word');
    await bad.campaign('ingress', 'lb2').catch(() => null);
    await bad.close();
    await events.close();
    const text = readFileSync(logFile, 'utf8');
    expect(text).toMatch(/etcd session \S+ granted/);
    for (const secret of [PASSWORD, ROOT_PASSWORD, 'not-the-Pa55word', readFileSync(`${certs}/sandwich-tlstest.key`, 'utf8').split('\n')[1]!]) {
      expect(text).not.toContain(secret);
    }
  }, 60_000);
});
