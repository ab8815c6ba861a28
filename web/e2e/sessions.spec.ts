// Issue 17: conflicts, token expiry, and one user's data never shown to another.
import { expect, test } from '@playwright/test';
import {
  addTask,
  apiCreateTask,
  apiToken,
  baseURL,
  pageProblems,
  registerUser,
  signIn,
  signUp,
  taskList,
  taskTitles,
  uniqueName,
} from './helpers';

test('an edit over someone else\'s change gets a 412, shown with a reload, never a silent overwrite', async ({
  browser,
}) => {
  const username = uniqueName('conflict');
  const first = await browser.newContext();
  const second = await browser.newContext();
  const mine = await first.newPage();
  const theirs = await second.newPage();
  await signUp(mine, username);
  await addTask(mine, { title: 'Shared draft' });
  await signIn(theirs, username);

  // Both open the task at version 1.
  for (const page of [mine, theirs]) {
    await taskList(page).getByRole('link', { name: 'Shared draft' }).click();
    await expect(page.getByRole('heading', { name: 'Shared draft', level: 1 })).toBeVisible();
  }
  await theirs.getByLabel('Title').fill('Shared draft (theirs)');
  await theirs.getByRole('button', { name: 'Save changes' }).click();
  await expect(theirs.getByText('Saved.')).toBeVisible();

  await mine.getByLabel('Title').fill('Shared draft (mine)');
  await mine.getByRole('button', { name: 'Save changes' }).click();
  const alert = mine.getByRole('alert');
  await expect(alert).toContainText('changed by someone else');
  // Nothing was overwritten.
  const token = await apiToken(username);
  const tasks = await (
    await fetch(`${baseURL()}/tasks`, { headers: { Authorization: `Bearer ${token}` } })
  ).json();
  expect(tasks.items.map((t: { title: string }) => t.title)).toEqual(['Shared draft (theirs)']);

  // Deleting is refused the same way.
  mine.once('dialog', (dialog) => void dialog.accept());
  await mine.getByRole('button', { name: 'Delete task' }).click();
  await expect(mine.getByRole('alert')).toContainText('changed by someone else');

  await alert.getByRole('button', { name: 'Reload' }).click();
  await expect(mine.getByRole('heading', { name: 'Shared draft (theirs)', level: 1 })).toBeVisible();
  await expect(mine.getByLabel('Title')).toHaveValue('Shared draft (theirs)');
  await expect(mine.getByText('version 2')).toBeVisible();
  await first.close();
  await second.close();
});

test('an expired access token is renewed without a visible sign-out, in two tabs at once', async ({
  context,
}) => {
  // The test server's access tokens live 1 minute (ACCESS_TOKEN_EXPIRE_MINUTES=1).
  test.setTimeout(180_000);
  const username = uniqueName('expiry');
  const one = await context.newPage();
  const problems = pageProblems(one);
  await signUp(one, username);
  await addTask(one, { title: 'Before expiry' });
  // A second tab of the same browser: it shares the cookie, so the two must never refresh
  // with the same one at once (that would look like theft and end the session).
  const two = await context.newPage();
  await two.goto(`${baseURL()}/`);
  await expect(two.getByRole('heading', { name: 'Tasks', level: 1 })).toBeVisible();

  await one.waitForTimeout(75_000);

  for (const [page, title] of [
    [one, 'After expiry, tab one'],
    [two, 'After expiry, tab two'],
  ] as const) {
    await expect(page.getByRole('heading', { name: 'Tasks', level: 1 })).toBeVisible();
    await addTask(page, { title });
  }
  await two.reload();
  await expect.poll(() => taskTitles(two)).toEqual([
    'After expiry, tab two',
    'After expiry, tab one',
    'Before expiry',
  ]);
  expect(problems).toEqual([]);
});

test('a second user never sees the first user\'s data', async ({ browser }) => {
  const alice = uniqueName('alice');
  const bob = uniqueName('bob');
  await registerUser(alice);
  const token = await apiToken(alice);
  const secret = await apiCreateTask(token, { title: 'Alice private plan', tags: ['secret'] });
  await fetch(`${baseURL()}/tasks/${secret.id}/comments`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ text: 'only for alice' }),
  });

  const context = await browser.newContext();
  const page = await context.newPage();
  await signUp(page, bob);
  await expect(page.getByText('No tasks yet')).toBeVisible();
  await page.getByRole('search').getByLabel('Search').fill('Alice');
  await expect(page.getByText('No tasks match these filters.')).toBeVisible();

  await page.goto(`${baseURL()}/task/${secret.id}`);
  await expect(page.getByRole('alert')).toContainText('Not found');
  await expect(page.getByText('Alice private plan')).toHaveCount(0);
  await expect(page.getByText('only for alice')).toHaveCount(0);

  await page.getByRole('link', { name: /^Notifications/ }).click();
  await expect(page.getByText('No notifications yet.')).toBeVisible();
  await context.close();
});
