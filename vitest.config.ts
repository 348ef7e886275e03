import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Collects the resilience scenarios' figures (rows checked, lost, duplicated) and prints their sum.
    globalSetup: ['test/resilience/figures-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Two cores: tests spawn PostgreSQL work and CLI child processes of their own.
    maxWorkers: 2,
    minWorkers: 1,
    pool: 'forks',
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  },
});
