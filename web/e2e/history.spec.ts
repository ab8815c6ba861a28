// Issue 17, history and trash: a change shows in the task's history; a deleted task goes to
// the trash, Undo brings it back, the trash restores it or deletes it for good.
import { type Page, expect, test } from '@playwright/test';
import { expectAccessible, screenshots } from './a11y';
import { addTask, pageProblems, signUp, taskList, uniqueName } from './helpers';

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
