// lab/statesync.py on hand-made records (host, no VM): which long-lived connections count as
// established, kept, lost or stalled; which were on fw1 (/proc/net/ip_vs_conn); new-request heal time;
// the summary's goal and exit status.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PY = join(__dirname, '..', '..', 'lab', 'statesync.py');
const dir = mkdtempSync(join(tmpdir(), 'sandwich-statesync-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T = 1000; // the fault
const ACTED = 1012;
// /proc/net/ip_vs_conn as the kernel prints it (client, virtual, real server in hex).
const IPVS_CONN = [
  'Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData',
  'TCP CB007114 9C41 C633640A 0050 0A01000B 0050 ESTABLISHED     899', // 203.0.113.20:40001 -> fw1
  'TCP CB007114 9C42 C633640A 0050 0A01000B 0050 ESTABLISHED     899', // 203.0.113.20:40002 -> fw1
  'TCP CB007115 9C43 C633640A 0050 0A01000C 0050 ESTABLISHED     899', // 203.0.113.21:40003 -> fw2
  'TCP CB007114 9C44 C633640A 0050 0A01000B 0050 ESTABLISHED     899', // 203.0.113.20:40004 -> fw1
].join('\n');

// `conntrack -L -p tcp --dport 80` in fw2: it knows 203.0.113.20:40001 (synced) and 40002 only as TIME_WAIT.
const FW2_CONNTRACK = [
  'tcp      6 431990 ESTABLISHED src=203.0.113.20 dst=198.51.100.10 sport=40001 dport=80 src=198.51.100.10 dst=203.0.113.20 sport=80 dport=40001 [ASSURED] mark=0 use=1',
  'tcp      6 100 TIME_WAIT src=203.0.113.20 dst=198.51.100.10 sport=40002 dport=80 src=198.51.100.10 dst=203.0.113.20 sport=80 dport=40002 [ASSURED] mark=0 use=1',
  'tcp      6 431990 ESTABLISHED src=203.0.113.21 dst=198.51.100.10 sport=40003 dport=80 src=198.51.100.10 dst=203.0.113.21 sport=80 dport=40003 [ASSURED] mark=0 use=1',
].join('\n');
const long = (src: string, port: number, t: number, ok: boolean, ms = 10, err: string | null = null) => ({ k: 'long', t, src, port, ok, ms, err, seq: 0 });
const req = (t: number, ok: boolean) => ({ k: 'req', t, src: '203.0.113.10', ok, ms: 5, err: ok ? null : 'timeout' });

function py(args: string[]) {
  return spawnSync('/usr/bin/python3', [PY, ...args], { encoding: 'utf8', timeout: 20_000 });
}

function variant(name: string, recs: object[], extra: string[] = []) {
  const d = join(dir, 'out', name);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'requests.jsonl'), recs.map((r) => JSON.stringify(r)).join('\n') + '\n{"k":"lo');   // a cut last line
  writeFileSync(join(d, 'ipvs.txt'), IPVS_CONN);
  writeFileSync(join(d, 'fw2.txt'), FW2_CONNTRACK);
  const r = py(['variant', '--name', name, '--records', join(d, 'requests.jsonl'), '--ipvs-conn', join(d, 'ipvs.txt'), '--fw1', '10.1.0.11',
    '--fault', String(T), '--acted', String(ACTED), '--fw2-conntrack', join(d, 'fw2.txt'), '--out', join(d, 'variant.json'), ...extra]);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(readFileSync(join(d, 'variant.json'), 'utf8')) as Record<string, unknown>;
}

describe('lab/statesync.py', () => {
  it('counts established, kept (answered after the controller acted), lost and stalled connections, and those on fw1', () => {
    const res = variant('mixed', [
      long('203.0.113.20#0', 40001, 990, true), long('203.0.113.20#0', 40001, 1003, true, 15_000), long('203.0.113.20#0', 40001, 1020, true), // fw1, kept
      long('203.0.113.20#1', 40002, 991, true), long('203.0.113.20#1', 40002, 1004, false, 90_000, 'timeout'), // fw1, lost
      long('203.0.113.21#0', 40003, 992, true), long('203.0.113.21#0', 40003, 1013, true), // fw2, kept
      long('203.0.113.20#3', 40004, 993, true), long('203.0.113.20#3', 40004, 1005, true, 5000), // fw1, answered before the controller acted, then nothing: stalled
      long('203.0.113.22#0', 40005, 1001, true), // first answer after the fault: not established
      req(995, true), req(1001, false), req(1002, true), req(1003, false), req(1003.5, true), req(1004, true),
    ], ['--extra', '{"fw2States": 3}']);
    expect(res).toMatchObject({
      name: 'mixed', established: 4, onFw1: 3, unknownDest: 0, kept: 2, keptOnFw1: 1, lost: 1, stalled: 1,
      lostErrors: { timeout: 1 }, keptRatio: 0.5, keptOnFw1Ratio: 0.3333, newRequests: 5, newFailed: 2, newHealSeconds: 3.5,
      actedSeconds: 12, keptOnFw1LastAnswerSeconds: 20.01, onFw1KnownToFw2: 1, fw2States: 3,
    });
  });

  it('summary: passes when the goal variant keeps enough, fails (exit 1) otherwise; writes results.json and summary.md', () => {
    const good = [long('203.0.113.20#0', 40001, 990, true), long('203.0.113.20#0', 40001, 1015, true),
      long('203.0.113.21#0', 40003, 992, true), long('203.0.113.21#0', 40003, 1016, true)];
    variant('sync-repoint', good);
    const out = join(dir, 'out');
    const r1 = py(['summary', '--out-dir', out, '--goal', '0.99', '--goal-variant', 'sync-repoint']);
    expect(r1.status).toBe(0);
    expect(r1.stdout).toMatch(/State-synced firewalls: PASS/);
    expect(readFileSync(join(out, 'summary.md'), 'utf8')).toMatch(/\| sync-repoint \| yes \| yes \| 2 \/ 2 \(100\.0 %\) \| 1 \/ 1 \(100\.0 %\) \| 0 \/ 0 \| 0 \/ 0 \| 0\.0 s \| 12\.0 s \| 1 \/ 1 \| 15\.01 s \|/);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { pass: boolean; variants: { name: string }[] };
    expect(results.pass).toBe(true);
    expect(results.variants.map((v) => v.name).sort()).toEqual(['mixed', 'sync-repoint']);
    const r2 = py(['summary', '--out-dir', out, '--goal', '0.99', '--goal-variant', 'mixed']);
    expect(r2.status).toBe(1);
    expect(r2.stdout).toMatch(/FAIL/);
    expect(py(['summary', '--out-dir', out, '--goal-variant', 'absent']).status).toBe(1);
  });
});
