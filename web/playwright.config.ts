import { defineConfig } from '@playwright/test';

// Debian's Chromium (apt-get install chromium): Playwright's own browser downloads are not
// available on our machines. CHROMIUM_PATH overrides it.
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export default defineConfig({
  testDir: 'e2e',
  // Starts `task-manager serve` on a temporary SQLite database and stops it at the end.
  globalSetup: './e2e/server.ts',
  outputDir: 'test-results',
  timeout: 120_000,
  expect: { timeout: 10_000 },
  // Two cores, shared: one browser at a time keeps the timing figures honest.
  workers: 1,
  forbidOnly: !!process.env.CI,
  // Benchmarks (tagged @bench) run only with WEB_BENCH=1 (`make bench-web`), alone.
  grep: process.env.WEB_BENCH ? /@bench/ : undefined,
  grepInvert: process.env.WEB_BENCH ? undefined : /@bench/,
  retries: 0,
  reporter: [['list']],
  use: {
    browserName: 'chromium',
    actionTimeout: 15_000,
    // As root in CI: no sandbox. The others keep Chromium off the (closed) network.
    launchOptions: {
      executablePath,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
});
