// V8 heap sizing for the long-running controller (issue 16: RSS ≤ 80 MB). By default V8 lets the old
// generation grow to a multiple of the live heap that rises with the allocation rate, and the young
// generation to 16 MB per semi-space: the controller's ~22 MB live heap then sat in ~90 MB of committed
// heap (docs/benchmarks.md, "Start and memory"). A fixed growing factor of 1.5 and a young generation
// kept at its initial size hold it near 40 MB, for more frequent (short) collections.
// Set at run time, before the daemon allocates much: both flags are read by V8 at each collection. Node
// warns that flags changed after start may do nothing or misbehave; these two are plain numbers V8
// reads when it sizes the heap. Heap flags given to node on its command line win (none is then set).
import { setFlagsFromString } from 'node:v8';

export const DAEMON_V8_FLAGS: readonly string[] = ['--heap-growing-percent=50', '--semi-space-growth-factor=1'];

const HEAP_FLAG = /^--(max-semi-space-size|min-semi-space-size|semi-space-growth-factor|max-old-space-size|max-heap-size|heap-growing-percent|optimize-for-size)\b/;

/** Applies DAEMON_V8_FLAGS unless node was started with a heap flag; returns the flags it set. */
export function sizeHeapForDaemon(execArgv: readonly string[] = process.execArgv): string[] {
  if (execArgv.some((a) => HEAP_FLAG.test(a.replace(/_/g, '-')))) return [];
  for (const f of DAEMON_V8_FLAGS) setFlagsFromString(f);
  return [...DAEMON_V8_FLAGS];
}
