import AxeBuilder from '@axe-core/playwright';
import { type Page, expect } from '@playwright/test';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** axe-core on the page as it is: no serious or critical violation. */
export async function expectAccessible(page: Page, screen: string): Promise<void> {
  const results = await new AxeBuilder({ page }).analyze();
  const severe = results.violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map((violation) => `${violation.id} (${violation.impact}): ${violation.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  expect(severe, `accessibility of ${screen}`).toEqual([]);
}

export const SCREENSHOTS = resolve(import.meta.dirname, '..', 'artifacts', 'screenshots');
export const WIDTHS = [375, 1440] as const;

/** Screenshots of the screen at 375 px and 1440 px wide (web/artifacts/screenshots/). */
export async function screenshots(page: Page, screen: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const original = page.viewportSize();
  for (const width of WIDTHS) {
    await page.setViewportSize({ width, height: 900 });
    await expect(page.locator('main')).toBeVisible();
    // Usable at this width: nothing wider than the screen (no sideways scrolling).
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
    expect(overflow, `${screen} at ${width} px is wider than the screen`).toBeLessThanOrEqual(0);
    await page.screenshot({ path: join(SCREENSHOTS, `${screen}-${width}.png`), fullPage: true });
  }
  if (original) await page.setViewportSize(original);
}
