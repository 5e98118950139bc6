import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The addon is loaded per test file; processes isolate it cleanly.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
