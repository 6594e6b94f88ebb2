import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { probeJobs } from '../../checks/jobs';
import { ConfigError, parseConfig } from '../../controller/config';

const example = readFileSync(join(__dirname, '../../deploy/config.example.yaml'), 'utf8');

const brief = (c: ReturnType<typeof parseConfig>, node: string) =>
  probeJobs(c, node).map((j) => `${j.key} ${j.kind} ${j.source} -> ${j.target}${j.port === null ? '' : `:${j.port}`}`);

describe('probeJobs', () => {
  const config = parseConfig(example);

  it('gives an ingress node the path and ingress-leg checks through each firewall, from that firewall\'s source', () => {
    expect(brief(config, 'lb1')).toEqual([
      'fw1/path-http http 10.1.0.21 -> http://198.51.100.10/health',
      'fw1/ingress-leg icmp 10.1.0.21 -> 10.1.0.11',
      'fw2/path-http http 10.1.0.22 -> http://198.51.100.10/health',
      'fw2/ingress-leg icmp 10.1.0.22 -> 10.1.0.12',
    ]);
    expect(brief(config, 'lb2').map((l) => l.split(' ')[2])).toEqual(['10.1.0.31', '10.1.0.31', '10.1.0.32', '10.1.0.32']);
  });

  it('gives an egress node the egress-leg check to each firewall\'s egress address', () => {
    expect(brief(config, 'er1')).toEqual([
      'fw1/egress-leg icmp 10.2.0.21 -> 10.2.0.11',
      'fw2/egress-leg icmp 10.2.0.22 -> 10.2.0.12',
    ]);
  });

  it('carries node, role, firewall and the check config', () => {
    const [job] = probeJobs(config, 'er1');
    expect(job).toMatchObject({ node: 'er1', role: 'egress', firewall: 'fw1', kind: 'icmp' });
    expect(job?.check).toBe(config.checks[2]);
  });

  it('maps tcp and http leg checks to the firewall address, honours firewall.checks, keeps a stable order', () => {
    const text = example
      .replace(/\nchecks:\n[\s\S]*?\n\n/, [
        '',
        'checks:',
        '  - { name: web-tcp, kind: tcp, scope: path, target: 198.51.100.10, port: 443 }',
        '  - { name: fw-tcp, kind: tcp, scope: leg, port: 22 }',
        '  - { name: fw-http, kind: http, scope: leg, url: "https://user:pw@example.net:8443/status?full=1#x" }',
        '  - { name: er-http, kind: http, scope: leg, from: egress, url: "http://example.net/ready" }',
        '',
      ].join('\n'))
      .replace('mark: 2, table: 102 }', 'mark: 2, table: 102, checks: [fw-tcp, er-http] }');
    const c = parseConfig(text);
    expect(brief(c, 'lb1')).toEqual([
      'fw1/web-tcp tcp 10.1.0.21 -> 198.51.100.10:443',
      'fw1/fw-tcp tcp 10.1.0.21 -> 10.1.0.11:22',
      'fw1/fw-http http 10.1.0.21 -> https://10.1.0.11:8443/status?full=1',
      'fw2/fw-tcp tcp 10.1.0.22 -> 10.1.0.12:22',
    ]);
    expect(brief(c, 'er1')).toEqual([
      'fw1/er-http http 10.2.0.21 -> http://10.2.0.11/ready',
      'fw2/er-http http 10.2.0.22 -> http://10.2.0.12/ready',
    ]);
    expect(probeJobs(c, 'lb1')).toEqual(probeJobs(c, 'lb1'));
  });

  it('names an unknown node', () => {
    expect(() => probeJobs(config, 'lb9')).toThrow(ConfigError);
    expect(() => probeJobs(config, 'lb9')).toThrow(/unknown node "lb9" \(known: lb1, lb2, er1\)/);
  });
});
