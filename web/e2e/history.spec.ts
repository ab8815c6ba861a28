// Issue 17, history and trash: a change shows in the task's history; a deleted task goes to
// the trash, Undo brings it back, the trash restores it or deletes it for good.
import { type Page, expect, test } from '@playwright/test';
import { expectAccessible, screenshots } from './a11y';
import { addTask, apiToken, baseURL, pageProblems, registerUser, signIn, signUp, taskList, uniqueName } from './helpers';

function nav(page: Page) {
  return page.getByRole('navigation', { name: 'Main' });
}

async function openTask(page: Page, title: string): Promise<void> {
  await nav(page).getByRole('link', { name: 'Tasks' }).click();
  await taskList(page).getByRole('link', { name: title, exact: true }).click();
  await expect(page.getByRole('heading', { name: title, level: 1 })).toBeVisible();
}

async function deleteTask(page: Page, title: string): Promise<void> {
  await openTask(page, title);
  await page.getByRole('button', { name: 'Delete task' }).click();
  await expect(page.getByRole('heading', { name: 'Tasks', level: 1 })).toBeVisible();
}

test('a change shows in the task history, in words', async ({ page }) => {
  const problems = pageProblems(page);
  await signUp(page, uniqueName('historian'));
  await addTask(page, { title: 'Water the plants', priority: 'low' });
  await openTask(page, 'Water the plants');
  const history = page.getByRole('list', { name: 'History' });
  await expect(history.getByRole('listitem').first()).toContainText('You created the task');
  await expect(history.getByRole('listitem').first()).toContainText('Title: Water the plants');

  const editor = page.getByRole('form', { name: 'Edit task' });
  await editor.getByLabel('Title').fill('Water the garden');
  await editor.getByLabel('Priority').selectOption('urgent');
  await editor.getByLabel('Due').fill('2030-05-04T09:30');
  await editor.getByRole('button', { name: 'Save changes' }).click();
  await expect(page.getByRole('heading', { name: 'Water the garden', level: 1 })).toBeVisible();
  const edited = history.locator('.history-item', { hasText: 'You edited the task' });
  await expect(edited).toContainText('Title: Water the plants → Water the garden');
  await expect(edited).toContainText('Priority: low → urgent');
  // A date, in the reader's words (not "2030-05-04T09:30:00Z").
  await expect(edited).toContainText(/Due: no date → .*2030/);

  await editor.getByLabel('Completed').check();
  await editor.getByRole('button', { name: 'Save changes' }).click();
  await expect(history.locator('.history-item', { hasText: 'You completed the task' })).toContainText('Completed: no → yes');
  await page.getByLabel('Add a comment').fill('Done before the rain');
  await page.getByRole('button', { name: 'Post comment' }).click();
  await expect(page.getByRole('list', { name: 'Comments' })).toContainText('Done before the rain');
  await expect(history.getByRole('listitem').last()).toContainText('You commented');

  await expectAccessible(page, 'task history');
  await screenshots(page, 'task-history');
  expect(problems).toEqual([]);
});

test('trash: delete, undo, restore from the trash, delete forever', async ({ page }) => {
  const problems = pageProblems(page);
  page.on('dialog', (dialog) => void dialog.accept());
  await signUp(page, uniqueName('tidy'));
  await addTask(page, { title: 'Old report' });
  await addTask(page, { title: 'Keep me' });

  // Deleting says where the task went, with an Undo right there.
  await deleteTask(page, 'Old report');
  const notice = page.getByRole('status').filter({ hasText: 'was moved to the trash' });
  await expect(notice).toContainText('“Old report” was moved to the trash.');
  await expectAccessible(page, 'tasks after a delete');
  await screenshots(page, 'trash-undo');
  await expect(taskList(page).getByRole('link', { name: 'Old report', exact: true })).toHaveCount(0);
  await notice.getByRole('button', { name: 'Undo' }).click();
  await expect(taskList(page).getByRole('link', { name: 'Old report', exact: true })).toBeVisible();
  await expect(notice).toHaveCount(0);
  await expect(page.getByRole('status').filter({ hasText: '“Old report” is back in your tasks.' })).toBeVisible();

  // Deleted again: it is in the trash, with when and by whom; restored from there.
  await deleteTask(page, 'Old report');
  await nav(page).getByRole('link', { name: 'Trash' }).click();
  await expect(page.getByRole('heading', { name: 'Trash', level: 1 })).toBeVisible();
  const trash = page.getByRole('list', { name: 'Deleted tasks' });
  const item = trash.getByRole('listitem').filter({ hasText: 'Old report' });
  await expect(item).toContainText(/In Inbox · deleted .* by you/);
  await expectAccessible(page, 'trash');
  await screenshots(page, 'trash');
  await item.getByRole('button', { name: 'Restore Old report' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'is back in its project' })).toBeVisible();
  await expect(trash.getByRole('listitem')).toHaveCount(0);
  await expect(page.getByText('The trash is empty.')).toBeVisible();
  await nav(page).getByRole('link', { name: 'Tasks' }).click();
  await expect(taskList(page).getByRole('link', { name: 'Old report', exact: true })).toBeVisible();

  // The history keeps the round trip.
  await openTask(page, 'Old report');
  const history = page.getByRole('list', { name: 'History' });
  await expect(history).toContainText('You moved the task to the trash');
  await expect(history).toContainText('You restored the task from the trash');

  // Delete forever, after a confirmation: gone from the trash and from the list.
  await deleteTask(page, 'Old report');
  await nav(page).getByRole('link', { name: 'Trash' }).click();
  await trash.getByRole('button', { name: 'Delete forever Old report' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'was deleted for good' })).toBeVisible();
  await expect(page.getByText('The trash is empty.')).toBeVisible();
  await page.reload();
  await expect(page.getByText('The trash is empty.')).toBeVisible();
  await nav(page).getByRole('link', { name: 'Tasks' }).click();
  await expect(taskList(page).getByRole('link', { name: 'Keep me', exact: true })).toBeVisible();
  await expect(taskList(page).getByRole('link', { name: 'Old report', exact: true })).toHaveCount(0);
  expect(problems).toEqual([]);
});

/** A JSON request as `token`'s user, for the set-up; the answer's body (or null). */
async function call(token: string, method: string, path: string, body?: unknown): Promise<{ id: number } & Record<string, unknown>> {
  const response = await fetch(`${baseURL()}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  expect(response.ok, `${method} ${path}: ${response.status} ${await response.clone().text()}`).toBe(true);
  return response.status === 204 ? { id: 0 } : ((await response.json()) as { id: number });
}

test('trash: a restore refused by the role (403) or for a deleted project (404) says why', async ({ page }) => {
  const problems = pageProblems(page);
  const owner = uniqueName('boss');
  const mate = uniqueName('mate');
  await registerUser(owner);
  await registerUser(mate);
  const [ownerToken, mateToken] = [await apiToken(owner), await apiToken(mate)];
  const mateId = (await call(mateToken, 'GET', '/auth/me')).id;
  const kept = await call(ownerToken, 'POST', '/projects', { name: 'Kept' });
  const doomed = await call(ownerToken, 'POST', '/projects', { name: 'Doomed' });
  for (const project of [kept, doomed]) {
    await call(ownerToken, 'POST', `/projects/${project.id}/members`, { username: mate, role: 'editor' });
  }
  const trash = async (token: string, title: string, projectId: number) => {
    const task = await call(token, 'POST', '/tasks', { title, project_id: projectId });
    await call(token, 'DELETE', `/tasks/${task.id}`);
  };
  await trash(ownerToken, 'Deleted by the boss', kept.id);
  await trash(mateToken, 'Deleted by the mate', kept.id);
  await trash(mateToken, 'Its project goes', doomed.id);

  await signIn(page, mate);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Trash' }).click();
  const list = page.getByRole('list', { name: 'Deleted tasks' });
  const bosses = list.getByRole('listitem').filter({ hasText: 'Deleted by the boss' });
  await expect(bosses).toContainText(`In Kept · deleted`);
  await expect(bosses).toContainText(`by ${owner}`);
  // An editor may delete for good only what they deleted themselves.
  await expect(bosses.getByRole('button', { name: /^Delete forever/ })).toHaveCount(0);
  await expect(list.getByRole('listitem').filter({ hasText: 'Deleted by the mate' }).getByRole('button', { name: /^Delete forever/ })).toBeVisible();

  // Meanwhile the mate becomes a viewer of one project, and the other project is deleted.
  await call(ownerToken, 'PATCH', `/projects/${kept.id}/members/${mateId}`, { role: 'viewer' });
  await call(ownerToken, 'DELETE', `/projects/${doomed.id}`);

  await bosses.getByRole('button', { name: /^Restore/ }).click();
  await expect(bosses.getByRole('alert')).toHaveText('Your role in its project does not allow restoring it: editor or higher is needed.');
  const gone = list.getByRole('listitem').filter({ hasText: 'Its project goes' });
  await gone.getByRole('button', { name: /^Restore/ }).click();
  await expect(gone.getByRole('alert')).toContainText('It cannot be restored: its project was deleted');
  await expectAccessible(page, 'trash with errors');
  expect(problems).toEqual([]);
});
