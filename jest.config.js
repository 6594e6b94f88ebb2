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
  // Lazy `import('./x.js')` in the sources (ESM resolution wants the extension) names x.ts here.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
};
module.exports = {
  projects: [
    { ...base, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...base, displayName: 'integration', testMatch: ['<rootDir>/test/integration/**/*.test.ts'], testPathIgnorePatterns: ['/coordination-\\w+\\.test\\.ts$'] },
    // etcd fault scenarios with two LB controllers, once per leadership profile (docs/coordination.md).
    { ...base, displayName: 'coordination', testMatch: ['<rootDir>/test/integration/coordination-*.test.ts'] },
    { ...base, displayName: 'system', testMatch: ['<rootDir>/test/system/**/*.test.ts'] },
    // Lab tooling: the load generator and the analyzer.
    { ...base, displayName: 'lab', testMatch: ['<rootDir>/test/lab/**/*.test.ts'], testPathIgnorePatterns: ['/vm-[\\w-]+\\.test\\.ts$'] },
    // Real IPVS in qemu, one VM boot per file (test/lab/vm-run.ts): the scenario subset (~5-7 min on a quiet
    // host), state-synced firewalls (~4 min), services + IPv6, the active-active LB pair. In scripts/test;
    // alone: npm run test:vm.
    { ...base, displayName: 'vm', testMatch: ['<rootDir>/test/lab/vm-*.test.ts'] },
  ],
};
