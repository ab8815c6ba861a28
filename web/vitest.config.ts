import { defineConfig } from 'vitest/config';

// Unit tests of the client logic (tests/): plain TypeScript, no DOM needed.
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    environment: 'node',
  },
});
