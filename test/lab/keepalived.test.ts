// The keepalived side of lab/compare.sh on the host (no VM, no IPVS; root, keepalived installed by
// scripts/setup): the rendered configs pass keepalived's own config check, the er1 notify script
// re-points the egress tables like the controller, the ARP observer tells one answering MAC from
// two, VRRP with the rendered config elects one LB, hands over on kill -9 and does not fail back,
// and compare.py computes the ratios.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REPO = join(__dirname, '..', '..');
const KA = join(REPO, 'lab', 'keepalived');
const dir = mkdtempSync(join(tmpdir(), 'sandwich-ka-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sh(script: string, env: Record<string, string> = {}, timeout = 60_000): { rc: number; out: string } {
  try {
    const out = execFileSync('bash', ['-c', script], { encoding: 'utf8', stdio: 'pipe', timeout, env: { ...process.env, ...env } });
    return { rc: 0, out };
  } catch (e) {
    const err = e as { status?: number; stdout?: string; stderr?: string };
    return { rc: err.status ?? -1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}
// A private network namespace with the interfaces the configs name (eth0-eth2).
const NETNS = (body: string) => `unshare --net bash -ec 'for i in 0 1 2; do ip link add eth$i type veth peer name p$i; done; ip link set lo up; ${body}'`;

describe('rendered configs', () => {
  for (const [label, env] of [['default (advert_int 1, VRRPv2)', {}], ['fast (advert_int 0.3, VRRPv3)', { KA_ADVERT_INT: '0.3' }]] as const) {
    test(`${label}: keepalived -t accepts lb1, lb2 and er1`, () => {
      const out = join(dir, label.split(' ')[0] ?? 'x');
      expect(sh(`${KA}/render.sh ${out}`, env).rc).toBe(0);
      const lb = readFileSync(join(out, 'lb.conf'), 'utf8');
      expect(lb).not.toMatch(/^[^#]*@[A-Z_]+@/m);
      const r = sh(NETNS(`for n in lb1 lb2; do keepalived -t -i $n -f ${out}/lb.conf || exit 10; done; keepalived -t -f ${out}/er1.conf || exit 11`));
      expect(r).toEqual({ rc: 0, out: '' });
    });
  }

  test('the check is not vacuous: a VRRPv2 config with a sub-second interval and a bad bindto fail it', () => {
    const out = join(dir, 'bad');
    expect(sh(`${KA}/render.sh ${out}`).rc).toBe(0);
    writeFileSync(join(out, 'lb.conf'), readFileSync(join(out, 'lb.conf'), 'utf8').replace('advert_int 1', 'advert_int 0.3'));
    writeFileSync(join(out, 'er1.conf'), readFileSync(join(out, 'er1.conf'), 'utf8').replace('bindto 10.2.0.21', 'bindto 10.2.0.321'));
    expect(sh(NETNS(`keepalived -t -i lb1 -f ${out}/lb.conf`)).out).toMatch(/advertisement interval .* must be an integer/);
    expect(sh(NETNS(`keepalived -t -f ${out}/er1.conf`)).out).toMatch(/Invalid bindto address/);
    expect(sh(`${KA}/render.sh ${out}`, { KA_ADVERT_INT: '1;x' }).rc).toBe(2);
  });
});

test('egress-notify.sh re-points tables 101/102 like the controller (fail-open when both are down)', () => {
  const st = join(dir, 'egress-state');
  const r = sh(NETNS(`ip link set eth0 up; ip addr add 10.2.0.1/24 dev eth0
    ip route add default via 10.2.0.11 dev eth0 table 101; ip route add default via 10.2.0.12 dev eth0 table 102
    t() { echo "$(ip route show table 101 | cut -d" " -f3) $(ip route show table 102 | cut -d" " -f3)"; }
    n() { ${KA}/egress-notify.sh $1 $2 ${st} > /dev/null; t; }
    n down fw1; n down fw2; n up fw1; n up fw2`));
  expect(r.rc).toBe(0);
  expect(r.out.trim().split('\n')).toEqual([
    '10.2.0.12 10.2.0.12',   // fw1 down: its table via fw2
    '10.2.0.11 10.2.0.12',   // both down: every table on its own firewall
    '10.2.0.11 10.2.0.11',   // fw1 back, fw2 still down
    '10.2.0.11 10.2.0.12',   // both up
  ]);
});

// Namespaces a and b on a bridge with the observer o; the VIP on a, then on both, then on b only.
test('arpwatch-multi.py records which MACs answer ARP for the VIP, and two at once', () => {
  const out = join(dir, 'arp.jsonl');
  const r = sh(`unshare --net --mount --propagation private bash -ec '
    mount -t tmpfs t /run/netns 2>/dev/null || { mkdir -p /run/netns; mount -t tmpfs t /run/netns; }
    ip link add name brx type bridge; ip link set brx up
    for n in a b o; do ip netns add $n; ip link add v$n type veth peer name eth0 netns $n; ip link set v$n master brx up; ip -n $n link set eth0 up; ip -n $n link set lo up; done
    ip -n a addr add 192.0.2.11/24 dev eth0; ip -n b addr add 192.0.2.12/24 dev eth0
    ma=$(ip netns exec a cat /sys/class/net/eth0/address); mb=$(ip netns exec b cat /sys/class/net/eth0/address)
    ip -n a addr add 192.0.2.254/24 dev eth0
    ip netns exec o /usr/bin/python3 ${REPO}/lab/arpwatch-multi.py --watch eth0,192.0.2.254,192.0.2.90-97,${out} --mac lb1=$ma --mac lb2=$mb --every 0.1 --stop-file ${dir}/arp.stop &
    sleep 2; ip -n b addr add 192.0.2.254/24 dev eth0
    sleep 2; ip -n a addr del 192.0.2.254/24 dev eth0
    sleep 2; touch ${dir}/arp.stop; wait'`, {}, 60_000);
  expect(r.rc).toBe(0);
  const recs = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { t: number; node: string; vip: boolean; end?: boolean });
  const changes = recs.filter((x) => !x.end).slice(2);   // after the two initial "false"
  expect(changes.map((x) => `${x.node}:${x.vip}`)).toEqual(['lb1:true', 'lb2:true', 'lb1:false']);
  const both = (changes[2]?.t ?? NaN) - (changes[1]?.t ?? NaN);
  expect(both).toBeGreaterThan(1.5);
  expect(both).toBeLessThan(2.6);
}, 60_000);

// lab/topo.sh (no IPVS) with keepalived's VRRP process on lb1 and lb2 (-P: the checkers need IPVS).
test('VRRP with the rendered config: one master, kill -9 hands over, the restarted LB stays backup', () => {
  const script = join(dir, 'vrrp.sh');
  writeFileSync(script, `set -euo pipefail
cd ${REPO}
. lab/lib.sh; export LAB_LOGS=${dir}/logs LAB_OUT=${dir}/out; mkdir -p $LAB_LOGS $LAB_OUT
. lab/run-lib.sh; . lab/keepalived/lib.sh
export KA_VRRP_ONLY=1
lab/topo.sh up > /dev/null
ka_render
vip() { ip -n $1 -o addr show dev eth0 | grep -q 192.0.2.254 && ip -n $1 -o addr show dev eth1 | grep -q 10.1.0.254; }
only() { vip $1 && ! vip $2; }
w() { local i; for ((i = 0; i < 150; i++)); do "$@" && return 0; sleep 0.2; done; echo "timeout: $*"; return 1; }
ka_start lb1; w only lb1 lb2; echo "lb1 master"
ka_start lb2; sleep 4; only lb1 lb2 && echo "lb2 backup"
ip -n lb1 rule | grep -q "from 10.1.0.21 lookup 211" && ip -n lb1 route show table 211 | grep -q "via 10.1.0.11" && echo "probe routes"
ka_signal lb1 KILL; w vip lb2; echo "lb2 took over"
ka_start lb1; w only lb2 lb1; sleep 4; only lb2 lb1 && echo "lb1 restarted as backup"
ka_stop lb1; ka_stop lb2
`);
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const r = sh(`${REPO}/lab/host-run.sh bash ${script}`, {}, 120_000);
  expect(r.out.trim().split('\n').filter((l) => !l.startsWith('['))).toEqual(['lb1 master', 'lb2 backup', 'probe routes', 'lb2 took over', 'lb1 restarted as backup']);
  expect(r.rc).toBe(0);
}, 120_000);

test('compare.py: per-scenario measures and keepalived ÷ sandwich ratios', () => {
  const out = join(dir, 'cmp');
  const T = 1_800_000_000;
  const phases = (failed: number, heal: number | null, dual: number) => ({
    phases: [
      { name: 'baseline', detail: '', start: T, end: T + 6, requests: 40, failed: 0, recoverySeconds: 0, longAlive: 6, longLost: 0, dualVipSeconds: 0, vipHolderAtEnd: ['lb1'] },
      { name: 'crash', detail: 'kill -9', start: T + 6, end: T + 60, requests: 100, failed, recoverySeconds: heal, longAlive: 6, longLost: 1, dualVipSeconds: dual, vipHolderAtEnd: ['lb2'] },
      { name: 'restart', detail: 'restart', start: T + 60, end: T + 80, requests: 50, failed: 0, recoverySeconds: 0, longAlive: 5, longLost: 0, dualVipSeconds: 0.5, vipHolderAtEnd: ['lb2'] },
    ],
  });
  // The address watchers: lb2 gets the VIP `takeover` s after the kill; lb1 keeps it until its restart.
  const put = (stack: string, an: object, arp: object, takeover = 3.5) => {
    const d = join(out, stack, 'lb-crash');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(out, stack, 'watch.lb1'), [{ t: T - 10, node: 'lb1', vip: true }, { t: T + 61, node: 'lb1', vip: false }].map((r) => JSON.stringify(r)).join('\n') + '\n');
    writeFileSync(join(out, stack, 'watch.lb2'), [{ t: T - 10, node: 'lb2', vip: false }, { t: T + 6 + takeover, node: 'lb2', vip: true }].map((r) => JSON.stringify(r)).join('\n') + '\n');
    writeFileSync(join(d, 'analysis.json'), JSON.stringify(an));
    writeFileSync(join(d, 'analysis-arp-gw.json'), JSON.stringify(arp));
    writeFileSync(join(d, 'analysis-arp-fi.json'), JSON.stringify(arp));
    writeFileSync(join(d, 'problems.json'), '[]');
    writeFileSync(join(d, 'notes.json'), '["a note"]');
    writeFileSync(join(out, stack, 'up.json'), '{"upSeconds": 12.5}');
  };
  put('keepalived', phases(30, 4, 20), phases(0, 0, 6));
  put('sandwich', phases(10, 2, 20), phases(0, 0, 0), 28);
  execFileSync('/usr/bin/python3', [join(REPO, 'lab', 'compare.py'), '--out', out, '--stack', 'keepalived', '--stack', 'sandwich', '--scenario', 'lb-crash'], { stdio: 'pipe' });
  const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { ratios: Record<string, Record<string, number | string>>; stacks: Record<string, { scenarios: Record<string, Record<string, unknown>> }>; problems: string[] };
  expect(res.stacks.keepalived?.scenarios['lb-crash']).toMatchObject({ failed: 30, heal: 4, dualAddr: 20.5, dualArp: 6.5, longLost: 1, takeover: 3.5, moves: 1 });
  expect(res.ratios['lb-crash']).toEqual({ failed: 3, heal: 2, takeover: 0.12, moves: 1, dualArp: 13, dualArpFi: 13, dualAddr: 1, longLost: 1 });
  expect(res.problems).toEqual([]);
  const md = readFileSync(join(out, 'summary.md'), 'utf8');
  expect(md).toMatch(/\| lb-crash \| failed requests \| 30 \| 10 \| \*\*3\.00×\*\* \|/);
  // A side with 0 gives "∞" (or "=" when both are 0), never a division by zero.
  put('sandwich', phases(0, 0, 0), phases(0, 0, 0));
  execFileSync('/usr/bin/python3', [join(REPO, 'lab', 'compare.py'), '--out', out, '--stack', 'keepalived', '--stack', 'sandwich', '--scenario', 'lb-crash'], { stdio: 'pipe' });
  const r2 = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { ratios: Record<string, Record<string, number | string>> };
  expect(r2.ratios['lb-crash']).toMatchObject({ failed: '∞', heal: '∞', longLost: 1 });
});
