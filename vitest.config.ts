import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // A private TMPDIR for the run; it fails when a test leaves anything there.
    globalSetup: ['test/temp-dirs.setup.ts'],
    // The addon is loaded per test file; processes isolate it cleanly.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
