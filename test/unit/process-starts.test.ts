import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../../controller/config';
import { Metrics } from '../../controller/metrics';
import { CommandNotFoundError, ExecRunner, ExecSpawner, processStarts } from '../../failover/runner';

const config = () => parseConfig(readFileSync(join(__dirname, '../../deploy/config.example.yaml'), 'utf8'));

/** The exposition's sandwich_process_starts_total for one program, or undefined when it has no series. */
async function exported(m: Metrics, program: string): Promise<number | undefined> {
  const line = (await m.text()).split('\n').find((l) => l.startsWith('sandwich_process_starts_total{') && l.includes(`program="${program}"`));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

describe('process starts', () => {
  test('a real ExecRunner and ExecSpawner count each process they start, by program name', async () => {
    const before = processStarts.count('true');
    const runner = new ExecRunner(5000);
    await runner.run('/bin/true', []);
    await runner.run('/bin/true', []);
    expect(processStarts.count('true')).toBe(before + 2);

    const proc = new ExecSpawner().spawnLines('/bin/true', [], { onStdoutLine: () => undefined });
    expect((await proc.exited).code).toBe(0);
    expect(processStarts.count('true')).toBe(before + 3);
  });

  test('a program that could not start is not counted', async () => {
    const before = [...processStarts.byProgram().values()].reduce((a, b) => a + b, 0);
    await expect(new ExecRunner(5000).run('/nonexistent/sandwich-no-such-program', [])).rejects.toBeInstanceOf(CommandNotFoundError);
    const proc = new ExecSpawner().spawnLines('/nonexistent/sandwich-no-such-program', [], { onStdoutLine: () => undefined });
    expect((await proc.exited).error).toMatch(/not installed/);
    expect(processStarts.count('sandwich-no-such-program')).toBe(0);
    expect([...processStarts.byProgram().values()].reduce((a, b) => a + b, 0)).toBe(before);
  });

  test('exported as sandwich_process_starts_total{program} at scrape time', async () => {
    const m = new Metrics(config(), 'lb1');   // the process-wide count, as the daemon wires it
    await new ExecRunner(5000).run('/bin/true', []);
    const now = processStarts.count('true');
    expect(now).toBeGreaterThan(0);
    expect(await exported(m, 'true')).toBe(now);
    await new ExecRunner(5000).run('/bin/true', []);
    expect(await exported(m, 'true')).toBe(now + 1);
    expect(await m.text()).toMatch(/^# TYPE sandwich_process_starts_total counter$/m);
  });
});
