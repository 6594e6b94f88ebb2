// Local HTTP API (node:http): GET /status, GET /metrics; POST /failover, /drain/<fw>, /undrain/<fw>
// with `Authorization: Bearer <token>`. Loopback or a unix socket only (config api.listen).
import { createHash, timingSafeEqual } from 'node:crypto';
import { chmodSync, lstatSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Config, Role } from './config';
import type { EventLog } from './events';
import type { Metrics } from './metrics';
import { collectStatus } from './status';
import type { CoordinationStore } from './store';
import { requestSwitchover } from './switchover';

const MAX_BODY_BYTES = 4096;
/** Free text that is stored and shown, never executed; still no shell metacharacters or control characters. */
const REASON_RE = /^[\p{L}\p{N} .,:_@#+=/-]{1,200}$/u;
const NAME_RE = /^[a-z][a-z0-9_-]{0,31}$/;

export interface ApiDeps {
  config: Config;
  /** This node's name (events, default role of /failover). */
  node: string;
  store: CoordinationStore;
  events: EventLog;
  metrics?: Metrics;
  /** Bearer token for writes; null: every write is refused. */
  token: string | null;
  /** The /status body; default: `sandwich status --json` built from `store`. */
  status?: () => Promise<unknown>;
  /** How long /failover waits for leadership to move. */
  switchoverWaitMs?: number;
  now?: () => number;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const FailoverBody = z.strictObject({
  to: z.string().regex(NAME_RE, 'must be a node name').optional(),
  role: z.enum(['ingress', 'egress']).optional(),
});
const DrainBody = z.strictObject({
  reason: z.string().regex(REASON_RE, 'must be 1-200 characters of letters, digits, spaces and . , : _ @ # + = / -'),
  force: z.boolean().optional(),
});
const EmptyBody = z.strictObject({});

/** Reads the API token; a clear error when the file is missing, empty or too short. */
export function readToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`api.tokenFile: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const token = text.trim();
  if (token.length < 16) throw new Error(`api.tokenFile: ${file} must hold a token of at least 16 characters`);
  if (!/^[\x21-\x7e]+$/.test(token)) throw new Error(`api.tokenFile: ${file} must hold one token of printable ASCII without spaces`);
  return token;
}

/** Constant-time comparison (hashes first, so lengths leak nothing either). */
export function tokenMatches(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The store, with close() made harmless: collectStatus closes what it opens, but this one is the daemon's. */
function borrowed(store: CoordinationStore): CoordinationStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'close') return async () => undefined;
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

export function createApiHandler(deps: ApiDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { config, store } = deps;
  const self = config.nodes.find((n) => n.name === deps.node);
  if (!self) throw new Error(`api: node "${deps.node}" is not in the config`);
  // Same as `sandwich status --json` on this host (a memory store: the status files in runtimeDir).
  const status = deps.status ?? (() => collectStatus(config, async () => borrowed(store)));
  const peer = (req: IncomingMessage) => req.socket.remoteAddress ?? 'unix socket';

  const refuse = (req: IncomingMessage, why: string) => {
    deps.events.emit({ event: 'error', level: 'warn', node: deps.node, reason: `API: refused ${req.method} ${pathOf(req)} from ${peer(req)}: ${why}` });
  };

  const authorize = (req: IncomingMessage) => {
    if (deps.token === null) {
      refuse(req, 'writes are disabled (no api.tokenFile)');
      throw new HttpError(403, 'writes are disabled: set api.tokenFile in the config');
    }
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer ([\x21-\x7e]+)$/.exec(h) : null;
    if (!m) {
      refuse(req, 'no bearer token');
      throw new HttpError(401, 'missing "Authorization: Bearer <token>"');
    }
    if (!tokenMatches(m[1]!, deps.token)) {
      refuse(req, 'wrong token');
      throw new HttpError(401, 'wrong token');
    }
  };

  const knownFirewall = (fw: string) => {
    if (!config.firewalls.some((f) => f.name === fw)) {
      throw new HttpError(400, `unknown firewall "${fw}" (known: ${config.firewalls.map((f) => f.name).join(', ')})`);
    }
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = pathOf(req);
    if (path === '/status' || path === '/metrics') {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, `${path} only answers GET`);
      if (path === '/status') return send(res, 200, await status());
      if (!deps.metrics) throw new HttpError(404, 'metrics are not enabled');
      res.writeHead(200, { 'content-type': deps.metrics.contentType });
      res.end(await deps.metrics.text());
      return;
    }
    const write = /^\/(failover|drain|undrain)(?:\/([^/]*))?$/.exec(path);
    if (!write) throw new HttpError(404, `no such endpoint: ${path} (GET /status, GET /metrics, POST /failover, POST /drain/<firewall>, POST /undrain/<firewall>)`);
    if (req.method !== 'POST') throw new HttpError(405, `${path} only answers POST`);
    authorize(req);
    const [, action, rawArg] = write as unknown as [string, 'failover' | 'drain' | 'undrain', string | undefined];
    const body = await readJson(req);
    if (action === 'failover') {
      if (rawArg !== undefined) throw new HttpError(404, 'POST /failover takes no path argument');
      const b = parse(FailoverBody, body);
      const role: Role = b.role ?? self.role;
      if (b.to !== undefined && !config.nodes.some((n) => n.name === b.to)) {
        throw new HttpError(400, `unknown node "${b.to}" (known: ${config.nodes.map((n) => n.name).join(', ')})`);
      }
      const sentence = await requestSwitchover(config, store, role, b.to ?? null, `api@${deps.node}`, deps.switchoverWaitMs);
      deps.events.emit({ event: 'switchover', node: deps.node, reason: `API: ${sentence}` });
      return send(res, 200, { ok: true, message: sentence });
    }
    const fw = decodeArg(rawArg);
    if (fw === '') throw new HttpError(400, `POST /${action}/<firewall>: firewall name missing`);
    knownFirewall(fw);
    if (action === 'drain') {
      const b = parse(DrainBody, body);
      if (!b.force) {
        const drained = new Set((await store.listDrains()).map((d) => d.firewall));
        const desired = (await store.getDesired())?.value;
        const inService = config.firewalls.filter((f) => f.name !== fw && !drained.has(f.name) && (desired?.firewalls[f.name]?.state ?? 'up') === 'up');
        if (inService.length === 0) throw new HttpError(409, `refusing to drain ${fw}: no other firewall would be in service (send "force": true)`);
      }
      await store.putDrain({ firewall: fw, by: `api@${deps.node}`, reason: b.reason, since: (deps.now ?? Date.now)() });
      deps.events.emit({ event: 'drain', node: deps.node, firewall: fw, reason: `API: drain of ${fw} requested: ${b.reason}` });
      return send(res, 200, { ok: true, message: `${fw}: drain requested` });
    }
    parse(EmptyBody, body);
    const was = await store.deleteDrain(fw);
    if (was) deps.events.emit({ event: 'drain', node: deps.node, firewall: fw, reason: `API: ${fw} undrained` });
    return send(res, 200, { ok: true, message: was ? `${fw}: undrained` : `${fw}: was not drained` });
  };

  return (req, res) => {
    route(req, res).catch((e: unknown) => {
      if (e instanceof HttpError) return send(res, e.status, { error: e.message });
      const err = e instanceof Error ? e : new Error(String(e));
      // Refusals from switchover (wrong target, no leader) are operator mistakes, not server faults.
      if (err.name === 'UsageError') return send(res, 409, { error: err.message });
      if (err.name === 'StoreError' || err.name === 'StoreDataError') return send(res, 503, { error: `store: ${err.message}` });
      deps.events.emit({ event: 'error', level: 'error', node: deps.node, reason: `API: ${req.method} ${pathOf(req)} failed: ${err.message}` });
      send(res, 500, { error: err.message });
    });
  };
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q >= 0 ? url.slice(0, q) : url;
}

function decodeArg(raw: string | undefined): string {
  try {
    return decodeURIComponent(raw ?? '');
  } catch {
    throw new HttpError(400, 'malformed percent-encoding in the path');
  }
}

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  throw new HttpError(400, r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`).join('; '));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    const b = c as Buffer;
    size += b.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(b);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'body is not valid JSON');
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify(body, null, 2)}\n`);
}

function isSocket(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export interface ApiServer {
  /** "127.0.0.1:9455" or "unix:/run/sandwich/api.sock" (the real port when 0 was asked). */
  readonly address: string;
  close(): Promise<void>;
}

/** Listens on `listen` ("host:port" on loopback, or "unix:/path"). A stale socket file is replaced. */
export async function startApi(listen: string, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<ApiServer> {
  const server: Server = createServer(handler);
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  const ready = (bind: () => void) => new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`api.listen ${listen}: ${e.code ?? e.message}`)));
    server.once('listening', () => resolve());
    bind();
  });
  let address: string;
  if (listen.startsWith('unix:')) {
    const path = listen.slice('unix:'.length);
    if (isSocket(path)) {
      // Left behind by a crash, or another daemon's? Only a socket nobody answers on is removed.
      if (await answers(path)) throw new Error(`api.listen ${listen}: another process is listening there`);
      rmSync(path);
    }
    await ready(() => server.listen(path));
    chmodSync(path, 0o660);
    address = listen;
  } else {
    const i = listen.lastIndexOf(':');
    const host = listen.slice(0, i).replace(/^\[(.*)\]$/, '$1');
    await ready(() => server.listen(Number(listen.slice(i + 1)), host));
    const a = server.address();
    address = a && typeof a === 'object' ? `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` : listen;
  }
  return {
    address,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
