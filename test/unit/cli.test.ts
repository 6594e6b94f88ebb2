import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configJsonSchema } from '../../controller/config';
import { main } from '../../controller/cli';

const EXAMPLE = join(__dirname, '../../deploy/config.example.yaml');

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['node', 'sandwich', ...args], { out: (s) => (out += `${s}\n`), err: (s) => (err += `${s}\n`) });
  return { code, out, err };
}

describe('sandwich CLI', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'sw-cli-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('--version and -V: the version from package.json, exit 0', async () => {
    const { version } = JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await run(flag);
      expect({ ...r, out: r.out.trim() }).toEqual({ code: 0, out: version, err: '' });
    }
  });

  it('check-config: 0 and a summary for a valid file', async () => {
    const r = await run('check-config', EXAMPLE);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/ok \(3 nodes, 2 firewalls, 3 checks, 1 services, 1 VIP groups\)/);
  });

  it('check-config: 1 and every error with path and line, no stack trace', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, readFileSync(EXAMPLE, 'utf8').replace('egressMac: "02:00:00:00:f1:0e"', 'egressMac: "nope"').replace('weight', 'wieght'));
    const r = await run('check-config', bad);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/firewalls\.0\.egressMac: must be a MAC address like 02:00:00:00:f1:0e \(line \d+\)/);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it('check-config: a missing file is a clear error', async () => {
    const r = await run('check-config', join(dir, 'none.yaml'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/none\.yaml: 1 error\n\s+\(top\): cannot read: ENOENT/);
  });

  it('drain refuses an unknown firewall before touching any store', async () => {
    const r = await run('drain', 'fw9', '--config', EXAMPLE);
    expect(r.code).toBe(2);
    expect(r.err).toBe('sandwich: unknown firewall "fw9" (known: fw1, fw2)\n');
  });

  it('run refuses an unknown node', async () => {
    const r = await run('run', '--node', 'lb9', '--config', EXAMPLE);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/unknown node "lb9" \(known: lb1, lb2, er1\)/);
  });

  it('events: filters by firewall and --since; bad --since is a usage error', async () => {
    const file = join(dir, 'events.log');
    const now = Date.now();
    const line = (ago: number, fw: string, reason: string) => JSON.stringify({ ts: new Date(now - ago).toISOString(), level: 'info', event: 'verdict', node: 'lb1', firewall: fw, reason });
    writeFileSync(file, [line(3_600_000, 'fw1', 'old'), line(1000, 'fw1', 'fw1 down: x'), line(500, 'fw2', 'fw2 up: y')].join('\n') + '\n');
    const r = await run('events', '--file', file, '--since', '10m', '--firewall', 'fw1', '--config', EXAMPLE);
    expect(r.code).toBe(0);
    expect(r.out.trim().split('\n')).toHaveLength(1);
    expect(r.out).toMatch(/verdict\s+lb1 fw1\s+fw1 down: x/);
    const j = await run('events', '--file', file, '--json', '--config', EXAMPLE);
    expect(j.out.trim().split('\n').map((l) => JSON.parse(l).reason)).toEqual(['old', 'fw1 down: x', 'fw2 up: y']);
    const bad = await run('events', '--file', file, '--since', 'yesterday', '--config', EXAMPLE);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--since "yesterday"/);
  });

  it('commands that need the shared store refuse the in-memory store', async () => {
    const mem = join(dir, 'mem.yaml');
    writeFileSync(mem, readFileSync(EXAMPLE, 'utf8').replace(/store:\n  kind: etcd\n(  .*\n)+/, 'store: { kind: memory }\n'));
    const r = await run('failover', '--config', mem);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/needs the shared store: set store.kind: etcd/);
  });

  it('failover --wait takes whole milliseconds (usage error otherwise)', async () => {
    const r = await run('failover', '--config', EXAMPLE, '--to', 'lb2', '--wait', '5s');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--wait must be a whole number of milliseconds/);
  });

  it('the committed JSON Schema for editors is current (regenerate: sandwich schema > deploy/config.schema.json)', () => {
    const committed = JSON.parse(readFileSync(join(__dirname, '../../deploy/config.schema.json'), 'utf8'));
    expect(committed).toEqual(configJsonSchema());
  });
});
