// The coordination fault scenarios with the lease profile (store.leadership.mode: lease).
import { coordinationScenarios } from './coordination-scenarios';

// A 2 s lease: the 1 s TTL (bench/failover.ts) flaps when the shared 2-core machine is loaded (etcd answers in 0.3-0.5 s).
const TTL_S = 2;
coordinationScenarios('swco', { leaseTtlS: TTL_S }, TTL_S * 1000, TTL_S * 1000 + 1500);
