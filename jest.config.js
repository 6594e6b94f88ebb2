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
};
module.exports = {
  projects: [
    { ...base, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...base, displayName: 'integration', testMatch: ['<rootDir>/test/integration/**/*.test.ts'], testPathIgnorePatterns: ['/coordination-\\w+\\.test\\.ts$'] },
    // etcd fault scenarios with two LB controllers, once per leadership profile (docs/coordination.md).
    { ...base, displayName: 'coordination', testMatch: ['<rootDir>/test/integration/coordination-*.test.ts'] },
    { ...base, displayName: 'system', testMatch: ['<rootDir>/test/system/**/*.test.ts'] },
    // Real IPVS: each test boots the Debian kernel in qemu (lab/vm/run.sh).
    { ...base, displayName: 'lab', testMatch: ['<rootDir>/test/lab/**/*.test.ts'] },
  ],
};
