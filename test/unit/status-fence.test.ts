// `sandwich status` shows the ARP fence's time left per node (issue 9), as of the node's last status write.
import { formatStatus } from '../../controller/status';

describe('status: the ARP fence', () => {
  const node = (name: string, fenceRemainingMs: number | null | undefined, holdsVips: boolean) => ({
    node: name, role: 'ingress' as const, lifecycle: 'RUNNING', updatedAt: Date.UTC(2026, 10, 25, 12, 0, 1, 500), appliedRevision: null,
    holdsVips, applied: null, drift: [], stale: false, ...(fenceRemainingMs === undefined ? {} : { fenceRemainingMs }),
  });

  it('prints the time left for a node with a fence, nothing for one without', () => {
    const out = formatStatus({ cluster: 'c', source: 'store', now: '', leaders: {}, desired: null, drains: [], observations: [], nodes: [node('lb1', 1234, true), node('lb2', null, false), node('lb3', undefined, false)] });
    const line = (n: string) => out.split('\n').find((l) => l.trimStart().startsWith(`${n} `)) ?? '';
    expect(line('lb1')).toContain('holds VIPs, ARP fence 1234 ms left at 12:00:01.500');
    expect(line('lb2')).not.toContain('ARP fence');
    expect(line('lb3')).not.toContain('ARP fence');
  });
});
