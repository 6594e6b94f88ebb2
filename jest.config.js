// @swc/jest compiles TypeScript (and the ESM-only `got`) to CommonJS for jest.
const swc = ['@swc/jest', {
  jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
  module: { type: 'commonjs' },
  sourceMaps: 'inline',
}];
const base = {
  transform: { '^.+\\.(t|j|mj)s$': swc },
  transformIgnorePatterns: [],
  testEnvironment: 'node',
  moduleFileExtensions: ['ts', 'js', 'mjs', 'json'],
  // The lab's output holds a copy of the app (the VM's bundle): not a module of this project.
  modulePathIgnorePatterns: ['<rootDir>/lab/out/'],
};
module.exports = {
  projects: [
    { ...base, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...base, displayName: 'integration', testMatch: ['<rootDir>/test/integration/**/*.test.ts'], testPathIgnorePatterns: ['/coordination-\\w+\\.test\\.ts$'] },
    // etcd fault scenarios with two LB controllers, once per leadership profile (docs/coordination.md).
    { ...base, displayName: 'coordination', testMatch: ['<rootDir>/test/integration/coordination-*.test.ts'] },
    { ...base, displayName: 'system', testMatch: ['<rootDir>/test/system/**/*.test.ts'] },
    // Lab tooling: the load generator and the analyzer.
    { ...base, displayName: 'lab', testMatch: ['<rootDir>/test/lab/**/*.test.ts'], testPathIgnorePatterns: ['/vm-scenarios\\.test\\.ts$', '/vm-statesync\\.test\\.ts$'] },
    // The VM scenario subset (fw1-blackhole, drift, failover, leader-kill in one VM boot, ~5 min on a quiet
    // host, bounded at 30 min) and the state-synced firewalls (lab/statesync.sh sync-repoint, one VM boot, 221 s):
    // real IPVS in qemu. In scripts/test; alone: npm run test:vm.
    { ...base, displayName: 'vm', testMatch: ['<rootDir>/test/lab/vm-scenarios.test.ts', '<rootDir>/test/lab/vm-statesync.test.ts'] },
  ],
};
