// Issue 17's budget: at most 150 KB of JavaScript (gzipped) to load /, and the task list of
// a signed-in user with 1,000 tasks shown within 1 s. The figures go to
// artifacts/performance.json (docs/benchmarks.md quotes them).
import { expect, test } from '@playwright/test';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { apiCreateTask, apiToken, baseURL, registerUser, signIn, uniqueName } from './helpers';

const TASKS = 1000;
const LOADS = 5;
const JS_BUDGET_BYTES = 150 * 1024;
const LIST_BUDGET_MS = 1000;
const FIRST_PAGE = 50;

test('initial JavaScript and the time to show 1,000 tasks stay within budget', async ({ page }) => {
  test.setTimeout(300_000);
  const username = uniqueName('perf');
  await registerUser(username);
  const token = await apiToken(username);
  // Eight at a time: SQLite takes the writes one by one anyway.
  for (let start = 0; start < TASKS; start += 8) {
    await Promise.all(
      Array.from({ length: Math.min(8, TASKS - start) }, (_, i) =>
        apiCreateTask(token, {
          title: `Task ${start + i + 1}`,
          priority: ['low', 'medium', 'high', 'urgent'][(start + i) % 4],
          tags: [`tag${(start + i) % 10}`],
        }),
      ),
    );
  }
  await signIn(page, username);

  const scripts = new Map<string, number>();
  page.on('response', async (response) => {
    if (response.request().resourceType() === 'script') {
      scripts.set(response.url(), gzipSync(await response.body()).length);
    }
  });
  const timings: number[] = [];
  for (let load = 0; load < LOADS; load++) {
    await page.goto(`${baseURL()}/`);
    // Milliseconds from the start of the navigation until the first page of rows is there.
    await page.waitForFunction(
      (count) => document.querySelectorAll('.task-row:not(.skeleton)').length >= count,
      FIRST_PAGE,
      { polling: 'raf' },
    );
    timings.push(await page.evaluate(() => performance.now()));
  }
  // Infinite scroll: the next page comes by cursor when the end of the list scrolls into view.
  const rows = page.locator('.task-row:not(.skeleton)');
  await page.locator('.load-more').scrollIntoViewIfNeeded();
  await expect.poll(() => rows.count()).toBeGreaterThanOrEqual(2 * FIRST_PAGE);
  const titles = await rows.locator('.task-title').allInnerTexts();
  expect(new Set(titles).size).toBe(titles.length); // no row twice across the pages

  const jsGzipped = [...scripts.values()].reduce((sum, size) => sum + size, 0);
  const sorted = [...timings].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];

  const figures = {
    tasks: TASKS,
    loads: LOADS,
    list_shown_ms: { median: Math.round(median), max: Math.round(sorted[sorted.length - 1]), all: timings.map(Math.round) },
    initial_js_gzipped_bytes: jsGzipped,
    scripts: [...scripts.keys()].map((url) => new URL(url).pathname),
  };
  const artifacts = resolve(import.meta.dirname, '..', 'artifacts');
  mkdirSync(artifacts, { recursive: true });
  writeFileSync(join(artifacts, 'performance.json'), `${JSON.stringify(figures, null, 2)}\n`);
  console.log(`performance: ${JSON.stringify(figures)}`);

  expect(jsGzipped).toBeLessThanOrEqual(JS_BUDGET_BYTES);
  expect(median).toBeLessThanOrEqual(LIST_BUDGET_MS);
});
