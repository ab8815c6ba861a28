// Issue 17: a person's whole visit, with axe on every screen and screenshots of each.
import { expect, test } from '@playwright/test';
import { expectAccessible, screenshots } from './a11y';
import {
  PASSWORD,
  addTask,
  baseURL,
  pageProblems,
  registerUser,
  signIn,
  signUp,
  taskList,
  taskTitles,
  uniqueName,
} from './helpers';

test('sign up, create, filter, sort, complete, comment, notifications, sign out, sign in', async ({
  page,
}) => {
  const problems = pageProblems(page);
  const username = uniqueName('journey');

  await page.goto(`${baseURL()}/sign-up`);
  await expect(page.getByRole('heading', { name: 'Create an account' })).toBeVisible();
  await expectAccessible(page, 'sign-up');
  await screenshots(page, 'sign-up');
  await signUp(page, username);
  await expect(page.getByText('No tasks yet')).toBeVisible();

  await addTask(page, { title: 'Write report', priority: 'high', tags: 'work' });
  await addTask(page, { title: 'Buy milk', priority: 'low', tags: 'home, shop' });
  await addTask(page, { title: 'Plan trip', priority: 'urgent', due: '2025-01-15T09:00' });
  expect(await taskTitles(page)).toEqual(['Plan trip', 'Buy milk', 'Write report']);
  await expectAccessible(page, 'tasks');

  // Filters and sorts.
  const filters = page.getByRole('search', { name: 'Filter and sort tasks' });
  await filters.getByLabel('Search').fill('milk');
  await expect.poll(() => taskTitles(page)).toEqual(['Buy milk']);
  await filters.getByLabel('Search').fill('');
  await filters.getByLabel('Tag').fill('work');
  await expect.poll(() => taskTitles(page)).toEqual(['Write report']);
  await filters.getByLabel('Tag').fill('');
  await filters.getByRole('checkbox', { name: 'urgent' }).check();
  await expect.poll(() => taskTitles(page)).toEqual(['Plan trip']);
  await filters.getByRole('checkbox', { name: 'urgent' }).uncheck();
  await filters.getByRole('checkbox', { name: 'Overdue only' }).check();
  await expect.poll(() => taskTitles(page)).toEqual(['Plan trip']);
  await filters.getByRole('checkbox', { name: 'Overdue only' }).uncheck();
  await filters.getByLabel('Sort').selectOption({ label: 'Least urgent' });
  await expect.poll(() => taskTitles(page)).toEqual(['Buy milk', 'Write report', 'Plan trip']);
  await filters.getByLabel('Sort').selectOption({ label: 'Oldest first' });
  await expect.poll(() => taskTitles(page)).toEqual(['Write report', 'Buy milk', 'Plan trip']);

  // Complete one, from the list.
  await page.getByRole('checkbox', { name: 'Completed: Write report' }).check();
  await filters.getByLabel('Status').selectOption('done');
  await expect.poll(() => taskTitles(page)).toEqual(['Write report']);
  await filters.getByLabel('Status').selectOption('open');
  await expect.poll(() => taskTitles(page)).toEqual(['Buy milk', 'Plan trip']);
  await filters.getByLabel('Status').selectOption('all');
  await filters.getByLabel('Sort').selectOption({ label: 'Newest first' });
  await expect.poll(() => taskTitles(page)).toEqual(['Plan trip', 'Buy milk', 'Write report']);
  await screenshots(page, 'tasks');

  // Task detail, and a comment.
  await taskList(page).getByRole('link', { name: 'Buy milk' }).click();
  await expect(page.getByRole('heading', { name: 'Buy milk', level: 1 })).toBeVisible();
  await page.getByLabel('Add a comment').fill('Oat milk, please');
  await page.getByRole('button', { name: 'Post comment' }).click();
  await expect(page.getByRole('list', { name: 'Comments' })).toContainText('Oat milk, please');
  await expectAccessible(page, 'task detail');
  await screenshots(page, 'task-detail');

  // Notifications: created x3, completed, comment.
  const inbox = page.getByRole('link', { name: /^Notifications/ });
  await expect(inbox).toContainText('5');
  await inbox.click();
  await expect(page.getByRole('heading', { name: 'Notifications', level: 1 })).toBeVisible();
  const notifications = page.getByRole('list', { name: 'Notifications' });
  await expect(notifications.getByRole('listitem')).toHaveCount(5);
  await expect(notifications).toContainText('Task completed: Write report');
  await expect(notifications).toContainText('New comment on Buy milk');
  await expectAccessible(page, 'notifications');
  await screenshots(page, 'notifications');
  await page.getByRole('button', { name: 'Mark as read: Task completed: Write report' }).click();
  await expect(inbox).toContainText('4');
  await page.getByRole('button', { name: 'Mark all as read' }).click();
  await expect(page.getByText('0 unread')).toBeVisible();
  await expect(inbox).toHaveText('Notifications');

  // Profile: e-mail and password.
  await page.getByRole('link', { name: 'Profile' }).click();
  await page.getByLabel('E-mail address').fill(`${username}@example.com`);
  await page.getByRole('button', { name: 'Save e-mail' }).click();
  await expect(page.getByText('E-mail saved.')).toBeVisible();
  await page.getByLabel('Current password').fill('wrong password');
  await page.getByLabel('New password').fill('a brand new passphrase');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByRole('alert')).toContainText('Current password is incorrect');
  await page.getByLabel('Current password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByText('Password changed.')).toBeVisible();
  await expectAccessible(page, 'profile');
  await screenshots(page, 'profile');

  // Sign out, then in again with the new password.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
  await expectAccessible(page, 'sign-in');
  await screenshots(page, 'sign-in');
  await page.goto(`${baseURL()}/`);
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
  await signIn(page, username, 'a brand new passphrase');
  await expect.poll(() => taskTitles(page)).toEqual(['Plan trip', 'Buy milk', 'Write report']);

  expect(problems).toEqual([]);
});

test('the refresh token never reaches script-readable storage', async ({ page, context }) => {
  const username = uniqueName('storage');
  await signUp(page, username);
  const storage = await page.evaluate(() => ({
    local: JSON.stringify({ ...localStorage }),
    session: JSON.stringify({ ...sessionStorage }),
    cookies: document.cookie,
  }));
  expect(storage).toEqual({ local: '{}', session: '{}', cookies: '' });
  const cookies = await context.cookies();
  const refresh = cookies.find((cookie) => cookie.name === 'tm_refresh');
  expect(refresh?.httpOnly).toBe(true);
  expect(refresh?.sameSite).toBe('Strict');
  expect(refresh?.path).toBe('/auth');
  // A reload keeps the user signed in, from the cookie alone.
  await page.reload();
  await expect(page.getByRole('heading', { name: 'Tasks', level: 1 })).toBeVisible();
});

test('works with the keyboard alone', async ({ page }) => {
  const username = uniqueName('keys');
  await registerUser(username);
  await page.goto(`${baseURL()}/sign-in`);
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeFocused();
  // The screen's title has the focus (announced); the next stop is the first field.
  await page.keyboard.press('Tab');
  await expect(page.getByLabel('Username')).toBeFocused();
  await page.keyboard.type(username);
  await page.keyboard.press('Tab');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: 'Tasks', level: 1 })).toBeFocused();

  // From the top of the page, the skip link is the first stop, visible when focused.
  await page.evaluate(() => {
    document.body.tabIndex = -1;
    document.body.focus();
  });
  await page.keyboard.press('Tab');
  const skip = page.getByRole('link', { name: 'Skip to content' });
  await expect(skip).toBeFocused();
  await expect(skip).toBeInViewport();

  await page.locator('form.new-task').getByLabel('Title').focus();
  await page.keyboard.type('Typed, not clicked');
  await page.keyboard.press('Enter');
  const checkbox = page.getByRole('checkbox', { name: 'Completed: Typed, not clicked' });
  await expect(checkbox).toBeVisible();
  await checkbox.focus();
  await page.keyboard.press('Space');
  await expect(checkbox).toBeChecked();
  // Focus is visible: an outline on the focused control.
  const outline = await checkbox.evaluate((element) => getComputedStyle(element).outlineStyle);
  expect(outline).toBe('solid');
});
