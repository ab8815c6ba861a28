// Loading and error states a person sees: 429 says when to retry, 503 says the service is busy.
import { expect, test } from '@playwright/test';
import { expectAccessible } from './a11y';
import { addTask, baseURL, signUp, taskTitles, uniqueName } from './helpers';

const TASK_LIST = /\/tasks\?/;

test('a 429 says when to retry, a 503 that the service is busy, and Retry recovers', async ({
  page,
}) => {
  await signUp(page, uniqueName('errors'));
  await addTask(page, { title: 'Still here' });

  await page.route(TASK_LIST, (route) =>
    route.fulfill({
      status: 429,
      headers: { 'Retry-After': '30', 'Content-Type': 'application/json' },
      body: JSON.stringify({ detail: 'Rate limit exceeded' }),
    }),
  );
  await page.reload();
  const alert = page.getByRole('alert');
  await expect(alert).toContainText('Too many requests. Try again in 30 seconds.');
  await expectAccessible(page, 'tasks, rate limited');

  await page.unroute(TASK_LIST);
  await page.route(TASK_LIST, (route) =>
    route.fulfill({
      status: 503,
      headers: { 'Retry-After': '5', 'Content-Type': 'application/json' },
      body: JSON.stringify({ detail: 'Database unavailable' }),
    }),
  );
  await alert.getByRole('button', { name: 'Retry' }).click();
  await expect(alert).toContainText('The service is busy. Try again in 5 seconds.');

  await page.unroute(TASK_LIST);
  await alert.getByRole('button', { name: 'Retry' }).click();
  await expect.poll(() => taskTitles(page)).toEqual(['Still here']);
  await expect(page.getByRole('alert')).toHaveCount(0);
});

test('an unknown page of the app says so, inside the app', async ({ page }) => {
  await signUp(page, uniqueName('lost'));
  await page.goto(`${baseURL()}/no/such/screen`);
  await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
  await expectAccessible(page, 'not found');
});

test('the teams screens say when to retry too, and Retry recovers', async ({ page }) => {
  await signUp(page, uniqueName('team_errors'));
  await addTask(page, { title: 'Needs its project' });
  const PROJECT_LIST = /\/projects\?/;

  await page.route(PROJECT_LIST, (route) =>
    route.fulfill({
      status: 503,
      headers: { 'Retry-After': '7', 'Content-Type': 'application/json' },
      body: JSON.stringify({ detail: 'Database unavailable' }),
    }),
  );
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Projects' }).click();
  const alert = page.getByRole('alert');
  await expect(alert).toContainText('The service is busy. Try again in 7 seconds.');
  await expectAccessible(page, 'projects, service busy');
  await page.unroute(PROJECT_LIST);
  await alert.getByRole('button', { name: 'Retry' }).click();
  await expect(page.getByRole('list', { name: 'Projects' }).getByRole('link', { name: 'Inbox', exact: true })).toBeVisible();
  await expect(alert).toHaveCount(0);

  // The task screen needs the task's project (the role): without it, it says why.
  await page.route(PROJECT_LIST, (route) =>
    route.fulfill({
      status: 429,
      headers: { 'Retry-After': '12', 'Content-Type': 'application/json' },
      body: JSON.stringify({ detail: 'Rate limit exceeded' }),
    }),
  );
  await page.goto(`${baseURL()}/`);
  await page.getByRole('link', { name: 'Needs its project' }).click();
  await expect(page.getByRole('heading', { name: 'Needs its project', level: 1 })).toBeVisible();
  await expect(alert).toContainText('Too many requests. Try again in 12 seconds.');
  await expect(page.getByRole('button', { name: 'Save changes' })).toHaveCount(0);
  await page.unroute(PROJECT_LIST);
  await alert.getByRole('button', { name: 'Retry' }).click();
  await expect(page.getByRole('button', { name: 'Save changes' })).toBeVisible();
  await expect(alert).toHaveCount(0);
});
