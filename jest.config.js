// One jest run for the whole suite. Pure unit tests (`*.test.ts`) and integration tests
// (`*.int.test.ts`, real PostgreSQL/Kafka/SMTP) share the global setup, which provides the
// infrastructure once per run (see test/support/global-setup.ts).
/** @type {import('jest').Config} */
const swc = [
  '@swc/jest',
  {
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
    module: { type: 'commonjs' },
  },
];

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/services', '<rootDir>/shared', '<rootDir>/test', '<rootDir>/infra', '<rootDir>/migrations'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': swc },
  moduleNameMapper: { '^@shared/(.*)$': '<rootDir>/shared/src/$1' },
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  testTimeout: 60_000,
  // 2 cores: two workers keep the broker, PostgreSQL and the tests from starving each other.
  maxWorkers: process.env.JEST_MAX_WORKERS ?? 2,
  verbose: false,
};
