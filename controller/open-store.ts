// The coordination store a config names: in memory (one node), or etcd.
import type { Config } from './config';
import type { EtcdStoreEvent } from './etcd-store';
import type { EventLog, SandwichEvent } from './events';
import { MemoryStore } from './memory-store';
import type { CoordinationStore } from './store';

export async function openStore(config: Config, events?: EventLog, node = 'cli', onRenewed?: () => void): Promise<CoordinationStore> {
  if (config.store.kind === 'memory') return new MemoryStore();
  // etcd's client (grpc, protobufjs) is loaded only for an etcd store.
  const { EtcdStore } = await import('./etcd-store.js');
  return EtcdStore.fromConfig(config, {
    // A one-shot CLI client's first call also pays for connecting: give operators' commands more time.
    ...(node === 'cli' ? { callTimeoutMs: Math.max(config.store.callTimeoutMs, 5000) } : {}),
    ...(events ? { onEvent: (e: EtcdStoreEvent) => events.emit(storeEvent(node, e)) } : {}),
    ...(onRenewed ? { onRenewed } : {}),
  });
}

function storeEvent(node: string, e: EtcdStoreEvent): SandwichEvent {
  switch (e.type) {
    case 'lease-granted': return { event: 'leader', node, reason: `etcd session ${e.leaseId} granted (TTL ${e.ttlMs} ms)` };
    case 'lease-lost': return e.reason === 'store closed'
      ? { event: 'leader', node, reason: `etcd session ${e.leaseId} closed` }
      : { event: 'leader', level: 'warn', node, reason: `etcd session ${e.leaseId} lost: ${e.reason}` };
    case 'keepalive-failed': return { event: 'error', level: 'warn', node, reason: `etcd keepalive for ${e.leaseId} failed: ${e.error.message}` };
    case 'renewal-failed': return { event: 'error', level: 'warn', node, reason: `etcd renewal of the ${e.role} leader key failed: ${e.error.message}` };
    case 'leadership-lost': return { event: 'leader', level: e.reason === 'resigned' || e.reason === 'store closed' ? 'info' : 'warn', node, reason: `${e.role} leader key: ${e.reason}` };
    case 'bad-value': return { event: 'error', level: 'warn', node, reason: `ignored a bad value in etcd: ${e.error.message}` };
    case 'watch-error': return { event: 'error', level: 'warn', node, reason: `etcd watch: ${e.error.message}` };
  }
}
