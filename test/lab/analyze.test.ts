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

interface Phase {
  name: string; requests: number; failed: number; recoverySeconds: number | null; longAlive: number; longLost: number;
  dualVipSeconds: number; dualVipAddressSeconds: number; vipHolderAtEnd: string[]; arpAnsweringAtEnd: string[] | null; garps: Record<string, number>;
}
interface Result { phases: Phase[]; dualVipSource: string; dualVipSeconds: number; dualVipAddressSeconds: number; vipHolderAtEnd: string[]; requests: number; failed: number; svg: string; md: string }

// arp: lab/arpwatch.py's records (who answered ARP for the VIP), or none (the address-based count).
function run(arp?: object[]): Result {
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
  if (arp) writeFileSync(join(dir, 'arp.jsonl'), lines(arp));
  execFileSync('/usr/bin/python3', [ANALYZE, '--records', join(dir, 'r.jsonl'), '--vip', join(dir, 'v.lb1'), '--vip', join(dir, 'v.lb2'),
    ...(arp ? ['--arp', join(dir, 'arp.jsonl')] : []), '--markers', join(dir, 'm.jsonl'), '--events', join(dir, 'e.jsonl'), '--title', 'test <run>',
    '--json', join(dir, 'out.json'), '--svg', join(dir, 'out.svg'), '--md', join(dir, 'out.md')], { stdio: 'pipe', timeout: 30_000 });
  return {
    ...(JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as Omit<Result, 'svg' | 'md'>),
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
    expect(r.md).toContain('| fault | fw1 black-holed | 100 | 10 | 2.00 | 1 / 2 | 0.00 | 0.00 | lb1 |');
  });

  it('without --arp, dual-VIP counts addresses', () => {
    expect(r.dualVipSource).toBe('address');
    expect(r.dualVipAddressSeconds).toBeCloseTo(0.5, 2);
  });
});

describe('lab/analyze.py with the ARP watcher (--arp)', () => {
  // The same addresses (both LBs have the VIP from +21.0 to +21.5 s), but ir saw lb1 stop answering
  // at +20.8 (its fence expired) and lb2 answer from +21.2; later one request answered by both
  // (+25.0 to +25.2 s, the next request answered by lb2 alone), and a gratuitous ARP from each.
  const r = run([
    { t: T - 1, answered: ['lb1'] },
    { t: T + 20.8, answered: [] },
    { t: T + 21.2, answered: ['lb2'] },
    { k: 'garp', t: T + 21.3, node: 'lb2', mac: '02:00:00:00:00:02', op: 1 },
    { t: T + 25.0, answered: ['lb1', 'lb2'] },
    { t: T + 25.2, answered: ['lb2'] },
    { k: 'garp', t: T + 26, node: 'lb1', mac: '02:00:00:00:00:01', op: 1 },
    { t: T + 30.5, end: true },
  ]);
  const ph = (n: string) => r.phases.find((p) => p.name === n)!;

  it('counts as dual only the time in which two LBs answered the same request', () => {
    expect(r.dualVipSource).toBe('arp');
    expect(r.dualVipSeconds).toBeCloseTo(0.2, 2);
    expect(ph('fault').dualVipSeconds).toBe(0);
    expect(ph('failover').dualVipSeconds).toBeCloseTo(0.2, 2);
  });

  it('keeps the address-based count beside it', () => {
    expect(r.dualVipAddressSeconds).toBeCloseTo(0.5, 2);
    expect(ph('failover').dualVipAddressSeconds).toBeCloseTo(0.5, 2);
  });

  it('reports who answered at the end of each phase and the gratuitous ARPs per LB', () => {
    expect(ph('fault').arpAnsweringAtEnd).toEqual(['lb1']);
    expect(ph('failover').arpAnsweringAtEnd).toEqual(['lb2']);
    expect(ph('failover').garps).toEqual({ lb1: 1, lb2: 1 });
    expect(ph('fault').garps).toEqual({});
    expect(r.md).toContain('dual-VIP, ARP (s) | VIP address on both (s) | VIP holder at end (address / answering ARP) |');
    expect(r.md).toContain('| 0.20 | 0.50 | lb2 / lb2 |');
  });
});
