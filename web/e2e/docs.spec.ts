// Issue 19: /docs and /redoc work with no network beyond this machine.
import { expect, test } from '@playwright/test';
import { PASSWORD, baseURL, offline, pageProblems, registerUser, uniqueName } from './helpers';

test('Swagger UI renders offline, Authorize logs in and GET /auth/me answers 200', async ({
  page,
  context,
}) => {
  const blocked = await offline(context);
  const problems = pageProblems(page);
  const username = uniqueName('docs');
  await registerUser(username);

  await page.goto(`${baseURL()}/docs`);
  await expect(page.locator('.opblock').first()).toBeVisible();
  expect(await page.locator('.opblock').count()).toBeGreaterThan(10);

  await page.getByRole('button', { name: 'Authorize' }).first().click();
  const dialog = page.locator('.modal-ux');
  await dialog.locator('#oauth_username').fill(username);
  await dialog.locator('#oauth_password').fill(PASSWORD);
  await dialog.getByRole('button', { name: 'Apply given OAuth2 credentials' }).click();
  await expect(dialog.getByRole('button', { name: /Logout|Remove authorization/ })).toBeVisible();
  await dialog.getByRole('button', { name: 'Close' }).first().click();

  const me = page.locator('#operations-auth-get_me_auth_me_get');
  await me.locator('.opblock-summary').click();
  await me.getByRole('button', { name: 'Try it out' }).click();
  await me.getByRole('button', { name: 'Execute' }).click();
  const status = me.locator('.live-responses-table tbody .response-col_status').first();
  await expect(status).toHaveText('200');
  await expect(me.locator('.live-responses-table .microlight').first()).toContainText(username);

  expect(blocked).toEqual([]);
  expect(problems).toEqual([]);
});

test('ReDoc renders the endpoint list offline', async ({ page, context }) => {
  const blocked = await offline(context);
  const problems = pageProblems(page);

  await page.goto(`${baseURL()}/redoc`);
  const menu = page.locator('.menu-content');
  // Every operation is in the side menu (tags folded, so attached rather than visible).
  // ReDoc renders the whole schema (70+ operations) before its menu: 10 s was too short on
  // a loaded 2-core machine.
  await expect(menu.getByText('Get Me', { exact: true })).toBeAttached({ timeout: 45_000 });
  await expect(menu.getByText('List Tasks', { exact: true })).toBeAttached();
  await expect(page.getByRole('heading', { name: 'Get Me' })).toBeVisible();
  await expect(page.getByRole('heading', { name: /Task Manager API/ })).toBeVisible();

  expect(blocked).toEqual([]);
  expect(problems).toEqual([]);
});
