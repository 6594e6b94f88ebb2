import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEventLog, eventFiles, followEvents, formatEvent, parseSince, readEvents, type SandwichEvent } from '../../controller/events';

describe('event log', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'sw-events-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes one JSON line per event and loses nothing when closed right after', async () => {
    const file = join(dir, 'events.log');
    const log = createEventLog({ file });
    for (let i = 0; i < 500; i++) log.emit({ event: 'probe', node: 'lb1', firewall: `fw${i % 2 + 1}`, check: 'path-http', reason: `event ${i}` });
    await log.close();
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(500);
    const first = JSON.parse(lines[0]!) as SandwichEvent;
    expect(Object.keys(first).slice(0, 4)).toEqual(['ts', 'level', 'event', 'node']);
    expect(first).toMatchObject({ event: 'probe', node: 'lb1', firewall: 'fw1', reason: 'event 0', level: 'info' });
    expect(JSON.parse(lines[499]!).reason).toBe('event 499');
  });

  it('reads rotated files oldest first and filters by firewall and time', async () => {
    const file = join(dir, 'events.log');
    const log = createEventLog({ file, maxSizeBytes: 4096, maxFiles: 10 });
    for (let i = 0; i < 200; i++) log.emit({ event: 'verdict', node: 'lb1', firewall: i % 2 ? 'fw2' : 'fw1', reason: `verdict ${i}` });
    await log.close();
    expect(eventFiles(file).length).toBeGreaterThan(2);
    const all = readEvents(file);
    expect(all.map((e) => e.reason)).toEqual(Array.from({ length: 200 }, (_, i) => `verdict ${i}`));
    expect(readEvents(file, { firewall: 'fw2' })).toHaveLength(100);
    expect(readEvents(file, { sinceMs: Date.now() + 60_000 })).toHaveLength(0);
  });

  it('reports a corrupt line with file and line number instead of failing', () => {
    const file = join(dir, 'events.log');
    writeFileSync(file, `${JSON.stringify({ ts: new Date().toISOString(), event: 'vip', node: 'lb1', reason: 'ok' })}\nnot json\n`);
    const bad: string[] = [];
    expect(readEvents(file, {}, (m) => bad.push(m))).toHaveLength(1);
    expect(bad).toEqual([`${file}:2: not a JSON event line`]);
  });

  it('follows appended lines, including a partial line completed later', async () => {
    const file = join(dir, 'events.log');
    writeFileSync(file, '');
    const seen: string[] = [];
    const stop = followEvents(file, { firewall: 'fw1' }, (e) => seen.push(e.reason), 20);
    const line = (fw: string, r: string) => JSON.stringify({ ts: new Date().toISOString(), event: 'verdict', node: 'lb1', firewall: fw, reason: r });
    appendFileSync(file, `${line('fw1', 'a')}\n${line('fw2', 'b')}\n${line('fw1', 'c').slice(0, 20)}`);
    await new Promise((r) => setTimeout(r, 100));
    appendFileSync(file, `${line('fw1', 'c').slice(20)}\n`);
    await new Promise((r) => setTimeout(r, 100));
    stop();
    expect(seen).toEqual(['a', 'c']);
  });

  it('parses --since durations and rejects nonsense', () => {
    expect(parseSince('10m', 1_000_000)).toBe(400_000);
    expect(parseSince('2026-11-25T12:00:00Z')).toBe(Date.parse('2026-11-25T12:00:00Z'));
    expect(() => parseSince('yesterday')).toThrow(/--since "yesterday"/);
  });

  it('formats an event as one readable line', () => {
    expect(formatEvent({ ts: '2026-11-25T12:00:01.204Z', event: 'verdict', node: 'lb1', firewall: 'fw1', reason: 'fw1 down: x', durationMs: 12.4 }))
      .toBe('2026-11-25 12:00:01.204  verdict     lb1 fw1                fw1 down: x (12 ms)');
  });
});
