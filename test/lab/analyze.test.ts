// lab/analyze.py on hand-made records (host, no VM): the per-phase measurements the lab reports.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ANALYZE = join(__dirname, '..', '..', 'lab', 'analyze.py');
const dir = mkdtempSync(join(tmpdir(), 'sandwich-analyze-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T = 1_800_000_000;   // unix seconds
const lines = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

interface Phase { name: string; requests: number; failed: number; recoverySeconds: number | null; longAlive: number; longLost: number; dualVipSeconds: number; vipHolderAtEnd: string[] }

function run(): { phases: Phase[]; dualVipSeconds: number; vipHolderAtEnd: string[]; requests: number; failed: number; svg: string; md: string } {
  const reqs: object[] = [];
  // 10 requests/s for 30 s; from 10.0 to 12.0 s after the fault at +10 s, sources ending in an odd digit fail.
  for (let i = 0; i < 300; i++) {
    const t = T + i / 10;
    const src = `203.0.113.${10 + (i % 25)}`;
    const bad = t >= T + 10 && t < T + 12 && (i % 2 === 1);
    reqs.push({ k: 'req', t, src, ok: !bad, ms: bad ? 2000 : 12, err: bad ? 'timeout' : null });
  }
  // Two long-lived connections: one breaks at +11 s.
  for (let s = 0; s < 30; s++) {
    reqs.push({ k: 'long', t: T + s, src: '203.0.113.35', ok: true, ms: 5, seq: s });
    if (s <= 11) reqs.push({ k: 'long', t: T + s, src: '203.0.113.36', ok: s < 11, ms: 5, seq: s });
  }
  reqs.push({ k: 'end', t: T + 30, requests: 300, long: { '203.0.113.35': 'alive', '203.0.113.36': `lost at ${T + 11}` } });
  writeFileSync(join(dir, 'r.jsonl'), lines(reqs));
  writeFileSync(join(dir, 'm.jsonl'), lines([
    { t: T + 2, name: 'phase:baseline', detail: '' },
    { t: T + 10, name: 'phase:fault', detail: 'fw1 black-holed' },
    { t: T + 20, name: 'phase:failover', detail: 'to lb2' },
  ]));
  // lb1 holds the VIP until +21.5; lb2 from +21.0: 0.5 s of both.
  writeFileSync(join(dir, 'v.lb1'), lines([{ t: T, node: 'lb1', vip: true }, { t: T + 21.5, node: 'lb1', vip: false }, { t: T + 30, node: 'lb1', vip: false, end: true }]));
  writeFileSync(join(dir, 'v.lb2'), lines([{ t: T, node: 'lb2', vip: false }, { t: T + 21, node: 'lb2', vip: true }, { t: T + 30, node: 'lb2', vip: true, end: true }]));
  writeFileSync(join(dir, 'e.jsonl'), lines([
    { ts: new Date((T + 13) * 1000).toISOString(), event: 'verdict', node: 'lb1', firewall: 'fw1', reason: 'fw1 down: path-http 3/3 timeouts' },
    { ts: new Date((T + 21) * 1000).toISOString(), event: 'leader', node: 'lb2', reason: 'lb2 is now ingress leader' },
  ]));
  execFileSync('/usr/bin/python3', [ANALYZE, '--records', join(dir, 'r.jsonl'), '--vip', join(dir, 'v.lb1'), '--vip', join(dir, 'v.lb2'),
    '--markers', join(dir, 'm.jsonl'), '--events', join(dir, 'e.jsonl'), '--title', 'test <run>',
    '--json', join(dir, 'out.json'), '--svg', join(dir, 'out.svg'), '--md', join(dir, 'out.md')], { stdio: 'pipe', timeout: 30_000 });
  return {
    ...(JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as { phases: Phase[]; dualVipSeconds: number; vipHolderAtEnd: string[]; requests: number; failed: number }),
    svg: readFileSync(join(dir, 'out.svg'), 'utf8'),
    md: readFileSync(join(dir, 'out.md'), 'utf8'),
  };
}

describe('lab/analyze.py', () => {
  const r = run();
  const ph = (n: string) => r.phases.find((p) => p.name === n)!;

  it('counts requests and failures per phase', () => {
    expect(r.requests).toBe(300);
    expect(r.failed).toBe(10);
    expect(r.phases.map((p) => p.name)).toEqual(['baseline', 'fault', 'failover']);
    expect(ph('baseline')).toMatchObject({ requests: 80, failed: 0, recoverySeconds: 0 });
    expect(ph('fault')).toMatchObject({ requests: 100, failed: 10 });
    expect(ph('failover')).toMatchObject({ failed: 0 });
  });

  it('measures recovery as the start of the first request after the last failure', () => {
    // Last failure at +11.9 s, next request at +12.0 s: 2.0 s after the fault.
    expect(ph('fault').recoverySeconds).toBeCloseTo(2.0, 2);
  });

  it('counts long-lived connections lost in the phase they broke', () => {
    expect(ph('baseline')).toMatchObject({ longAlive: 2, longLost: 0 });
    expect(ph('fault')).toMatchObject({ longAlive: 2, longLost: 1 });
    expect(ph('failover')).toMatchObject({ longAlive: 1, longLost: 0 });
  });

  it('measures dual-VIP time and the holder', () => {
    expect(r.dualVipSeconds).toBeCloseTo(0.5, 2);
    expect(ph('fault').dualVipSeconds).toBe(0);
    expect(ph('failover').dualVipSeconds).toBeCloseTo(0.5, 2);
    expect(ph('fault').vipHolderAtEnd).toEqual(['lb1']);
    expect(r.vipHolderAtEnd).toEqual(['lb2']);
  });

  it('draws failed requests, markers and controller events, escaping text', () => {
    expect(r.svg).toMatch(/^<svg /);
    expect(r.svg).toContain('fill="#d22"');                 // failed bars
    expect(r.svg).toContain('test &lt;run&gt;');
    expect(r.svg).toContain('lb2: lb2 is now ingress leader');
    expect(r.md).toContain('| fault | fw1 black-holed | 100 | 10 | 2.00 | 1 / 2 | 0.00 | lb1 |');
  });
});
