// Injectable clock and timers, so timed kernel work (ARP bursts, refreshes) is testable without waiting.

export interface TimerHandle {
  readonly id: number;
}

export interface Timers {
  /** Monotonic milliseconds. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(h: TimerHandle): void;
}

let nextId = 1;

/** The real clock (performance.now) and Node timers; timers do not keep the process alive. */
export const systemTimers: Timers = (() => {
  const live = new Map<number, NodeJS.Timeout>();
  return {
    now: () => performance.now(),
    setTimeout(fn, ms) {
      const id = nextId++;
      const t = setTimeout(() => {
        live.delete(id);
        fn();
      }, ms);
      t.unref();
      live.set(id, t);
      return { id };
    },
    clearTimeout(h) {
      const t = live.get(h.id);
      if (t) clearTimeout(t);
      live.delete(h.id);
    },
  };
})();

/** A clock that only moves when told to; for tests. */
export class ManualTimers implements Timers {
  private t = 0;
  private readonly pending = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = nextId++;
    this.pending.set(id, { at: this.t + Math.max(0, ms), fn });
    return { id };
  }
  clearTimeout(h: TimerHandle): void {
    this.pending.delete(h.id);
  }
  /** Number of timers waiting to fire. */
  get size(): number {
    return this.pending.size;
  }
  /** Moves the clock forward, firing due timers in time order (including ones they set up). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.pending) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.pending.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}
