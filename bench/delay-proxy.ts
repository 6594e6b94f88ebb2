// A TCP proxy that injects latency spikes between the controllers and etcd (the host kernel has no
// netem). For each "listen=target" pair it forwards both directions; during a spike every chunk is
// held for the spike's delay, order kept (a chunk never overtakes an earlier one).
//
//   node dist/bench/delay-proxy.js --spike-ms 400 --every-ms 5000 --for-ms 1000 10.9.0.1:2479=10.9.0.1:2379 …
// Prints one JSON line per spike ({"spike": n, "from": t, "to": t}, wall-clock ms) on stdout.
import { createConnection, createServer, type Socket } from 'node:net';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name}: not a number`);
  return v;
}

const spikeMs = arg('spike-ms', 0);
const everyMs = arg('every-ms', 5000);
const forMs = arg('for-ms', 1000);
const pairs = process.argv.slice(2).filter((a) => a.includes('='));
const started = Date.now();

/** The delay to apply to a chunk arriving now. */
function delayNow(): number {
  if (spikeMs === 0) return 0;
  const phase = (Date.now() - started) % everyMs;
  return phase >= everyMs - forMs ? spikeMs : 0;
}

/** Forwards `from` to `to`, holding chunks while a spike lasts, in order. */
function pipe(from: Socket, to: Socket): void {
  let releaseAt = 0;
  from.on('data', (chunk: Buffer) => {
    releaseAt = Math.max(releaseAt, Date.now() + delayNow());
    const wait = releaseAt - Date.now();
    if (wait <= 0) to.write(chunk);
    else setTimeout(() => to.write(chunk), wait);
  });
  from.on('end', () => setTimeout(() => to.end(), Math.max(0, releaseAt - Date.now())));
  from.on('error', () => to.destroy());
  from.on('close', () => setTimeout(() => to.destroy(), Math.max(0, releaseAt - Date.now()) + 10));
}

for (const p of pairs) {
  const [listen, target] = p.split('=') as [string, string];
  const [lh, lp] = listen.split(':');
  const [th, tp] = target.split(':');
  createServer((client) => {
    const upstream = createConnection({ host: th, port: Number(tp) });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    pipe(client, upstream);
    pipe(upstream, client);
  }).listen(Number(lp), lh);
}

if (spikeMs > 0) {
  let n = 0;
  const tick = () => {
    const phase = (Date.now() - started) % everyMs;
    const next = everyMs - forMs - phase;
    setTimeout(() => {
      const from = Date.now();
      process.stdout.write(`${JSON.stringify({ spike: ++n, from, to: from + forMs, delayMs: spikeMs })}\n`);
      setTimeout(tick, forMs + 5);
    }, next > 0 ? next : next + everyMs);
  };
  tick();
}
