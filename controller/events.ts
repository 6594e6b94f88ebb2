// Health and failover events: one JSON line per state change (winston), and the reader behind `sandwich events`.
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import winston from 'winston';
import Transport from 'winston-transport';

/** winston's key for the formatted line (triple-beam's MESSAGE). */
const MESSAGE = Symbol.for('message');

export type EventKind =
  | 'lifecycle' | 'probe' | 'verdict' | 'leader' | 'vip' | 'kernel' | 'drift' | 'switchover' | 'drain' | 'maintenance' | 'error';

export interface SandwichEvent {
  /** ISO time, added when logged. */
  ts?: string;
  level?: 'info' | 'warn' | 'error';
  event: EventKind;
  node: string;
  firewall?: string;
  check?: string;
  /** One sentence, printed verbatim by `sandwich events`. */
  reason: string;
  durationMs?: number;
  [extra: string]: unknown;
}

export interface EventLog {
  emit(e: SandwichEvent): void;
  /** Flush everything written so far and close; resolves when the file is complete. */
  close(): Promise<void>;
}

export interface EventLogOptions {
  file?: string;
  maxSizeBytes?: number;
  maxFiles?: number;
  /** Also write each event to stdout (journald). */
  stdout?: boolean;
}

/**
 * Appends each event synchronously and rotates by size (events.log → events1.log → …, like
 * winston's tailable files). winston's own File transport lost lines and never finished when it
 * rotated under a burst (checked here with winston 3.19); events are rare, so a synchronous
 * append is cheap and nothing is lost when the process exits.
 */
class RotatingFileTransport extends Transport {
  private fd: number;
  private size: number;
  constructor(private readonly file: string, private readonly maxSize: number, private readonly maxFiles: number) {
    super();
    mkdirSync(dirname(file), { recursive: true });
    this.fd = openSync(file, 'a', 0o640);
    this.size = fstatSync(this.fd).size;
  }
  override log(info: Record<string | symbol, unknown>, next: () => void): void {
    const line = `${String(info[MESSAGE])}\n`;
    const bytes = Buffer.byteLength(line);
    if (this.fd < 0) return next();
    if (this.size > 0 && this.size + bytes > this.maxSize) this.rotate();
    writeSync(this.fd, line);
    this.size += bytes;
    next();
  }
  private rotate(): void {
    closeSync(this.fd);
    const ext = extname(this.file);
    const stem = this.file.slice(0, this.file.length - ext.length);
    const nth = (n: number) => (n === 0 ? this.file : `${stem}${n}${ext}`);
    rmSync(nth(this.maxFiles - 1), { force: true });
    for (let n = this.maxFiles - 2; n >= 0; n--) if (existsSync(nth(n))) renameSync(nth(n), nth(n + 1));
    this.fd = openSync(this.file, 'a', 0o640);
    this.size = 0;
  }
  /** Called by winston when the logger ends; idempotent. */
  override close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

const eventLine = winston.format.printf((info) => {
  // One field order on disk: ts, level, event, node, firewall, check, reason, then the rest.
  const { ts, level, event, node, firewall, check, reason, message: _m, timestamp: _t, ...rest } = info as Record<string, unknown>;
  return JSON.stringify({ ts, level, event, node, firewall, check, reason, ...rest });
});

export function createEventLog(opts: EventLogOptions): EventLog {
  const transports: winston.transport[] = [];
  let file: RotatingFileTransport | undefined;
  if (opts.file) {
    file = new RotatingFileTransport(opts.file, opts.maxSizeBytes ?? 10 * 1024 * 1024, opts.maxFiles ?? 5);
    transports.push(file);
  }
  if (opts.stdout) transports.push(new winston.transports.Console());
  const logger = winston.createLogger({
    level: 'info',
    format: winston.format.combine(winston.format.timestamp({ alias: 'ts' }), eventLine),
    transports: transports.length ? transports : [new winston.transports.Console({ silent: true })],
  });
  let closed = false;
  return {
    emit(e) {
      if (closed) return;
      const { level = 'info', ts: _ts, ...rest } = e;
      logger.log({ level, message: '', ...rest });
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      const done = new Promise<void>((resolve) => logger.on('finish', () => resolve()));
      logger.end();
      return Promise.race([done, new Promise<void>((r) => setTimeout(r, 2000).unref())]).then(() => file?.close());
    },
  };
}

/** An in-memory event log for tests. */
export class MemoryEventLog implements EventLog {
  readonly events: SandwichEvent[] = [];
  constructor(private readonly now: () => number = Date.now) {}
  emit(e: SandwichEvent): void {
    this.events.push({ ts: new Date(this.now()).toISOString(), level: 'info', ...e });
  }
  async close(): Promise<void> {}
}

// --- reading (sandwich events) ---

/** The log file and its rotated siblings (winston tailable: events.log, events1.log, events2.log, …), oldest first. */
export function eventFiles(file: string): string[] {
  const dir = dirname(file);
  const ext = extname(file);
  const stem = basename(file, ext);
  if (!existsSync(dir)) return [];
  const re = new RegExp(`^${escapeRe(stem)}(\\d*)${escapeRe(ext)}$`);
  return readdirSync(dir)
    .map((f) => ({ f, m: re.exec(f) }))
    .filter((x): x is { f: string; m: RegExpExecArray } => x.m !== null)
    .map(({ f, m }) => ({ path: join(dir, f), n: m[1] ? Number(m[1]) : 0 }))
    .sort((a, b) => b.n - a.n) // tailable: the highest number is the oldest
    .map((x) => x.path);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export interface EventFilter {
  sinceMs?: number;
  firewall?: string;
  node?: string;
}

export function matches(e: SandwichEvent, f: EventFilter): boolean {
  if (f.firewall && e.firewall !== f.firewall) return false;
  if (f.node && e.node !== f.node) return false;
  if (f.sinceMs !== undefined && (e.ts === undefined || Date.parse(e.ts) < f.sinceMs)) return false;
  return true;
}

/** Parse event lines; a line that is not an event is reported with its file and line number, not thrown. */
export function parseEventLines(text: string, where: string, onBad?: (msg: string) => void): SandwichEvent[] {
  const out: SandwichEvent[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try {
      const v = JSON.parse(line) as SandwichEvent;
      if (typeof v !== 'object' || v === null || typeof v.event !== 'string' || typeof v.ts !== 'string') throw new Error('not an event');
      out.push(v);
    } catch {
      onBad?.(`${where}:${i + 1}: not a JSON event line`);
    }
  });
  return out;
}

export function readEvents(file: string, filter: EventFilter = {}, onBad?: (msg: string) => void): SandwichEvent[] {
  const all = eventFiles(file).flatMap((p) => parseEventLines(readFileSync(p, 'utf8'), p, onBad));
  // Stable sort by time: files are read oldest first, so equal stamps keep their order.
  return all.filter((e) => matches(e, filter)).sort((a, b) => Date.parse(a.ts!) - Date.parse(b.ts!));
}

/** Follows the live file (tail -F): calls onEvent for each new line; survives rotation. Returns stop(). */
export function followEvents(file: string, filter: EventFilter, onEvent: (e: SandwichEvent) => void, pollMs = 200): () => void {
  let pos = existsSync(file) ? statSync(file).size : 0;
  let ino = existsSync(file) ? statSync(file).ino : 0;
  let partial = '';
  const timer = setInterval(() => {
    if (!existsSync(file)) return;
    const st = statSync(file);
    if (st.ino !== ino || st.size < pos) {
      ino = st.ino;
      pos = 0;
      partial = '';
    }
    if (st.size === pos) return;
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(st.size - pos);
      readSync(fd, buf, 0, buf.length, pos);
      pos = st.size;
      const text = partial + buf.toString('utf8');
      const cut = text.lastIndexOf('\n');
      partial = text.slice(cut + 1);
      for (const e of parseEventLines(text.slice(0, cut + 1), file)) if (matches(e, filter)) onEvent(e);
    } finally {
      closeSync(fd);
    }
  }, pollMs);
  return () => clearInterval(timer);
}

/** "10m", "90s", "2h", "1d", or an ISO time → ms since epoch. */
export function parseSince(s: string, now = Date.now()): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(s.trim());
  if (m) {
    const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
    return now - Number(m[1]) * mult;
  }
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw new Error(`--since "${s}": expected a duration like 10m, 2h, 30s or an ISO time`);
  return t;
}

export function formatEvent(e: SandwichEvent): string {
  const t = e.ts ? e.ts.replace('T', ' ').replace('Z', '') : '?';
  const where = [e.node, e.firewall, e.check].filter(Boolean).join(' ');
  return `${t}  ${e.event.padEnd(11)} ${where.padEnd(22)} ${e.reason}${e.durationMs !== undefined ? ` (${Math.round(e.durationMs)} ms)` : ''}`;
}
