// The dual-stack lab on the host (no VM, no IPVS; root): lab/topo.sh up --ipv6 --services builds the
// IPv6 plan and the extra services, proved with real packets by lab/check-ipv6.sh (IPv6 probe paths
// through the firewall they name and back through it via er1's marks, tcp/443 and the UDP echo in
// both families, the stateful ip6tables firewall, lab/ndpwatch.py telling one answering LB from two
// and ir's neighbour entry following an unsolicited NA). Without the flags the lab stays IPv4 only.
// lab/watch.py reads the services' weights per family (lab/services.sh waits on them).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REPO = join(__dirname, '..', '..');

function sh(args: string[], timeout = 120_000): { rc: number; out: string } {
  try {
    return { rc: 0, out: execFileSync(join(REPO, 'lab', 'host-run.sh'), args, { encoding: 'utf8', stdio: 'pipe', timeout }) };
  } catch (e) {
    const err = e as { status?: number; stdout?: string; stderr?: string };
    return { rc: err.status ?? -1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

test('lab/check-ipv6.sh: every IPv6 and service path of the dual-stack lab works', () => {
  const r = sh([join(REPO, 'lab', 'check-ipv6.sh')]);
  const lines = r.out.trim().split('\n').map((l) => l.replace(/^\[[\d.]+\] /, ''));
  const checks = lines.filter((l) => /: (ok|FAILED)$/.test(l));
  expect(checks.filter((l) => !l.endsWith(': ok'))).toEqual([]);
  expect(checks).toHaveLength(19);
  expect(lines).toContain('ndpwatch: both answer once lb2 has it too (dual VIP seen): ok');
  expect(lines).toContain("ir's neighbour entry follows lb2's unsolicited NA: ok");
  expect(lines).toContain('check-ipv6: all checks ok');
  expect(r.rc).toBe(0);
}, 120_000);

test('without --ipv6 and --services the lab has no IPv6 and only the tcp/80 service', () => {
  const r = sh(['bash', '-c', `${REPO}/lab/topo.sh up > /dev/null
    for ns in client lb1 fw1 er1 srv; do printf '%s ' "$(ip netns exec $ns cat /proc/sys/net/ipv6/conf/all/disable_ipv6)"; done; echo
    ip netns exec fw1 iptables -S FORWARD | grep -c ACCEPT
    ip netns exec lb1 iptables -t mangle -S PREROUTING | grep -c MARK
    ip netns exec fw1 ip6tables -S FORWARD | grep -c "^-A" || true`]);
  expect(r.out.trim().split('\n').filter((l) => !l.startsWith('['))).toEqual(['1 1 1 1 1 ', '3', '1', '0']);
  expect(r.rc).toBe(0);
}, 60_000);

test('lab/watch.py --svc/--vip6: weights per fwmark service and family from /proc/net/ip_vs as captured in the VM', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sandwich-watch-'));
  try {
    // The main state line (FWM 1, IPv4) is unchanged; the second file has the IPv6 VIP and each service.
    execFileSync('/usr/bin/python3', [join(REPO, 'lab', 'watch.py'), '--name', 'lb1', '--out', join(dir, 'out'), '--state', join(dir, 'st'),
      '--vip', '127.0.0.1', '--vip6', '::1', '--svc', 'web6=1/6', '--svc', 'dns6=3/6', '--svc', 'none=9', '--max', '0.5',
      '--ipvs-file', join(REPO, 'test', 'unit', 'fixtures', 'kernel', 'ipvs6', 'proc-ip_vs-dual-edit.txt')], { timeout: 10_000 });
    expect(readFileSync(join(dir, 'st'), 'utf8')).toBe('1 100 100\n');
    expect(readFileSync(join(dir, 'st.svc'), 'utf8')).toBe('vip6 1\nweb6 0 100\ndns6 100 50\nnone - -\n');
    const first = JSON.parse(readFileSync(join(dir, 'out'), 'utf8').split('\n')[0]!) as { vip6: boolean; svc: Record<string, unknown> };
    expect(first.vip6).toBe(true);
    expect(first.svc).toEqual({ web6: [0, 100], dns6: [100, 50], none: [null, null] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
