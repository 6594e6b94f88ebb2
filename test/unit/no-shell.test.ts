// No shell anywhere: one runner (execFile, shell: false) for every command, names validated at the
// config boundary, and shell metacharacters that do get through stay plain argument bytes.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ConfigError, parseConfig } from '../../controller/config';
import { ExecRunner } from '../../failover/runner';

const ROOT = join(__dirname, '..', '..');
const SOURCE_DIRS = ['controller', 'checks', 'failover', 'bin'];
const example = readFileSync(join(ROOT, 'deploy', 'config.example.yaml'), 'utf8');

function sourceFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return /\.(ts|js)$/.test(f) || dir.endsWith('bin') ? [p] : [];
  });
}

describe('no shell anywhere', () => {
  test('child_process is used only by failover/runner.ts, with execFile and shell: false', () => {
    const files = SOURCE_DIRS.flatMap((d) => sourceFiles(join(ROOT, d)));
    expect(files.length).toBeGreaterThan(20);
    const use = /(?:from\s+|require\(\s*|import\(\s*)['"](?:node:)?child_process['"]/;
    const users = files.filter((f) => use.test(readFileSync(f, 'utf8'))).map((f) => relative(ROOT, f));
    expect(users).toEqual(['failover/runner.ts']);
    const runner = readFileSync(join(ROOT, 'failover', 'runner.ts'), 'utf8');
    // Every process start passes shell: false explicitly; the shell-using entry points are not used.
    const starts = [...runner.matchAll(/\b(execFile|spawn)\(/g)];
    expect(starts.length).toBeGreaterThan(0);
    for (const m of starts) expect(runner.slice(m.index, m.index + 400)).toMatch(/shell: false/);
    expect(runner).not.toMatch(/\b(exec|execSync|execFileSync|spawnSync)\(/);
    for (const f of files) expect({ f: relative(ROOT, f), shellTrue: /shell:\s*true/.test(readFileSync(f, 'utf8')) }).toEqual({ f: relative(ROOT, f), shellTrue: false });
  });

  test('ESLint refuses child_process outside the runner (and allows it in runner.ts)', () => {
    const code = "import { exec } from 'node:child_process';\nexport const run = exec;\n";
    const lint = (file: string) => {
      const r = spawnSync(join(ROOT, 'node_modules', '.bin', 'eslint'), ['--format', 'json', '--stdin', '--stdin-filename', file], { cwd: ROOT, input: code, encoding: 'utf8', timeout: 60_000 });
      return (JSON.parse(r.stdout) as { messages: { ruleId: string | null; message: string }[] }[])[0]!.messages.filter((m) => m.ruleId === 'no-restricted-imports');
    };
    const outside = lint('controller/sneaky.ts');
    expect(outside).toHaveLength(1);
    expect(outside[0]!.message).toMatch(/Use failover\/runner\.ts/);
    expect(lint('failover/runner.ts')).toEqual([]);
  }, 60_000);

  test('shell metacharacters in config names are rejected with the path and a clear message', () => {
    const cases: [string, string, RegExp][] = [
      ['client: eth0,', 'client: "eth0;reboot",', /nodes\.0\.interfaces\.client: must be an interface name: .*no spaces or shell metacharacters/],
      ['- name: lb1', '- name: "lb1$(id)"', /nodes\.0\.name: must be a name/],
      ['{ name: fw1,', '{ name: "fw1|nc",', /firewalls\.0\.name: must be a name/],
      ['{ name: web,', '{ name: "web`id`",', /services\.0\.name: must be a name/],
      ['http://10.9.0.1:2379', 'http://10.9.0.1:2379;id', /store\.endpoints\.0: must be an http\(s\):\/\/host:port endpoint/],
      ['events:\n', 'api: { listen: "127.0.0.1:9455 && id" }\nevents:\n', /api\.listen: must be "127\.0\.0\.1:<port>"/],
      ['events:\n', 'api: { listen: "0.0.0.0:9455" }\nevents:\n', /api\.listen: must be/],
      ['{ address: 10.1.0.254/24, interface: firewall }', '{ address: "10.1.0.254/24 dev lo", interface: firewall }', /vipGroups\.0\.addresses\.1\.address: must be an address with a prefix length/],
      ['routes: [203.0.113.0/24]', 'routes: ["203.0.113.0/24 table 254"]', /egress\.routes\.0: must be a network prefix/],
    ];
    for (const [from, to, message] of cases) {
      expect(example).toContain(from);
      let err: unknown = null;
      try {
        parseConfig(example.replace(from, to), 'bad.yaml');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).message).toMatch(message);
      expect((err as ConfigError).message).toMatch(/\(line \d+\)/);
    }
    // And the unchanged example passes, so the failures above are the metacharacters' doing.
    expect(() => parseConfig(example)).not.toThrow();
  });

  test('what reaches the runner is argument bytes, never shell syntax', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandwich-noshell-'));
    try {
      const marker = join(dir, 'pwned');
      const args = [`$(touch ${marker})`, `; touch ${marker}`, `\`touch ${marker}\``, `| touch ${marker}`, `&& touch ${marker}`, '*'];
      const r = await new ExecRunner(5000).run('/bin/echo', args);
      expect(r.stdout).toBe(`${args.join(' ')}\n`);
      expect(existsSync(marker)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('ExecRunner.readFile reads a /proc file (size 0 in stat) without an exec, and names a missing one', async () => {
    const r = new ExecRunner(5000);
    expect(await r.readFile('/proc/self/status')).toMatch(/^Name:\s+\S+/m);
    await expect(r.readFile('/proc/net/no_such_file')).rejects.toThrow(/ENOENT/);
  });
});
