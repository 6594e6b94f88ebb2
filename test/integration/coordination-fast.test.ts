// The coordination fault scenarios with the fast profile (store.leadership.mode: fast): the leader key
// renewed by compare-and-swap every 100 ms, taken over after 1000 ms without a renewal. (With
// 600/200 ms the leader's fence lapsed for up to 330 ms at a time on the loaded 2-core test host.)
import { coordinationScenarios } from './coordination-scenarios';

const fast = { renewIntervalMs: 100, takeoverAfterMs: 1000, marginMs: 300 };
coordinationScenarios('swcf', { leaseTtlS: 2, fast }, fast.takeoverAfterMs, fast.takeoverAfterMs + 1000);
