// Shared bits for the etcd store integration tests: stores with unique prefixes, sample values, timing.
import { EtcdStore, type EtcdStoreEvent, type EtcdStoreOptions } from '../../controller/etcd-store';
import type { Desired, Observation } from '../../controller/types';
import type { EtcdCluster } from './etcd-cluster';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let seq = 0;
export function uniqueCluster(): string {
  return `it${process.pid}x${Date.now() % 100000}x${seq++}`;
}

export interface TestStore {
  store: EtcdStore;
  events: EtcdStoreEvent[];
}

/** Tracks stores so afterEach/afterAll can close them whatever a test did. */
export class StorePool {
  private readonly open: EtcdStore[] = [];
  constructor(private readonly cluster: () => EtcdCluster) {}

  make(cluster: string, opts: Partial<EtcdStoreOptions> = {}): TestStore {
    const events: EtcdStoreEvent[] = [];
    const store = new EtcdStore({
      endpoints: this.cluster().endpoints, cluster, callTimeoutMs: 500, leaseTtlS: 1,
      onEvent: (e) => events.push(e), ...opts,
    });
    this.open.push(store);
    return { store, events };
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.open.splice(0).map((s) => s.close().catch(() => undefined)));
  }
}

export function observation(node: string, firewall: string, check: string, state: Observation['state'] = 'up'): Observation {
  return { node, role: 'ingress', firewall, check, state, since: 1, updatedAt: 2, streak: 3, lastError: null, rttMs: 1.5 };
}

export function desired(revision: number, by = 'lb1'): Desired {
  return {
    revision, decidedBy: by, decidedAt: 1000 + revision,
    firewalls: { fw1: { state: 'up', weight: 100, egressVia: 'fw1', reason: 'all checks up', since: 1, healthySince: null } },
  };
}

/** Polls `fn` every `everyMs` until it returns true; the elapsed ms, or throws after timeoutMs. */
export async function waitFor(what: string, fn: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 10): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (await fn()) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

export function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

/** Settles `p` and reports how long it took and how it ended. */
export async function timed<T>(p: Promise<T>): Promise<{ ms: number; ok: boolean; value?: T; error?: Error }> {
  const t0 = performance.now();
  try {
    const value = await p;
    return { ms: performance.now() - t0, ok: true, value };
  } catch (e) {
    return { ms: performance.now() - t0, ok: false, error: e as Error };
  }
}
