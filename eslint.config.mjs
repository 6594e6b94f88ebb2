import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'lab/out/**', '*.js', '*.mjs'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': ['error', {
        paths: [{ name: 'child_process', message: 'Use failover/runner.ts (execFile, timeout, no shell).' },
                { name: 'node:child_process', message: 'Use failover/runner.ts (execFile, timeout, no shell).' }],
      }],
    },
  },
  {
    files: ['failover/runner.ts', 'test/**', 'bench/**', 'lab/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
);
