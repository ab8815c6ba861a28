// Issue 17, teams: two people in two browser contexts share a project; roles hide what a
// member may not do; assign, move, follow, comment edits; axe and screenshots of each screen.
import { type Page, expect, test } from '@playwright/test';
import { expectAccessible, screenshots } from './a11y';
import { addTask, apiToken, baseURL, pageProblems, registerUser, signIn, signUp, taskList, taskTitles, uniqueName } from './helpers';

function nav(page: Page) {
  return page.getByRole('navigation', { name: 'Main' });
}

async function openProject(page: Page, name: string): Promise<void> {
  await nav(page).getByRole('link', { name: 'Projects' }).click();
  await page.getByRole('list', { name: 'Projects' }).getByRole('link', { name, exact: true }).click();
  await expect(page.getByRole('heading', { name, level: 1 })).toBeVisible();
}

async function setRole(page: Page, username: string, role: string): Promise<void> {
  const form = page.getByRole('form', { name: `Role of ${username}` });
  await form.getByRole('combobox').selectOption(role);
  await form.getByRole('button', { name: 'Save role' }).click();
  await expect(page.getByText(`${username} is now ${role}.`)).toBeVisible();
}

async function openTask(page: Page, title: string): Promise<void> {
  await page.goto(`${baseURL()}/`);
  await taskList(page).getByRole('link', { name: title, exact: true }).click();
  await expect(page.getByRole('heading', { name: title, level: 1 })).toBeVisible();
}

test('share a project: the member sees it, roles hide controls, assign, move, follow', async ({ browser }) => {
  const owner = uniqueName('owner');
  const mate = uniqueName('mate');
  await registerUser(mate);
  const ownerContext = await browser.newContext();
  const mateContext = await browser.newContext();
  const a = await ownerContext.newPage();
  const b = await mateContext.newPage();
  const problems = [...[a, b].map(pageProblems)];
  a.on('dialog', (dialog) => void dialog.accept());
  b.on('dialog', (dialog) => void dialog.accept());

  // The owner creates a project; the inbox comes first; a name taken is a clear 409.
  await signUp(a, owner);
  await nav(a).getByRole('link', { name: 'Projects' }).click();
  await expect(a.getByRole('heading', { name: 'Projects', level: 1 })).toBeVisible();
  const newProject = a.getByRole('form', { name: 'New project' });
  await newProject.getByLabel('Name').fill('Launch');
  await newProject.getByLabel('Description').fill('The spring launch, with everyone');
  await newProject.getByRole('button', { name: 'Create project' }).click();
  const projectList = a.getByRole('list', { name: 'Projects' });
  await expect(projectList.getByRole('link', { name: 'Launch', exact: true })).toBeVisible();
  expect(await projectList.locator('.task-title').allInnerTexts()).toEqual(['Inbox', 'Launch']);
  await newProject.getByLabel('Name').fill('LAUNCH');
  await newProject.getByRole('button', { name: 'Create project' }).click();
  await expect(newProject.getByRole('alert')).toHaveText('You already have a project with this name.');
  await expectAccessible(a, 'projects');
  await screenshots(a, 'projects');

  // The owner deletes a project after a confirmation (the dialogs are accepted above).
  await newProject.getByLabel('Name').fill('Scratch');
  await newProject.getByRole('button', { name: 'Create project' }).click();
  await projectList.getByRole('link', { name: 'Scratch', exact: true }).click();
  await a.getByRole('button', { name: 'Delete project' }).click();
  await expect(a.getByRole('heading', { name: 'Projects', level: 1 })).toBeVisible();
  await expect(projectList.getByRole('link', { name: 'Launch', exact: true })).toBeVisible();
  await expect(projectList.getByRole('link', { name: 'Scratch', exact: true })).toHaveCount(0);

  // Members: an unknown username (404), the mate as viewer, the mate again (409).
  await projectList.getByRole('link', { name: 'Launch', exact: true }).click();
  await expect(a.getByRole('heading', { name: 'Launch', level: 1 })).toBeVisible();
  const addMember = a.getByRole('form', { name: 'Add a member' });
  await addMember.getByLabel('Username').fill('nobody_by_that_name');
  await addMember.getByRole('button', { name: 'Add member' }).click();
  await expect(addMember.getByRole('alert')).toHaveText('No active user is called “nobody_by_that_name”.');
  await addMember.getByLabel('Username').fill(mate);
  await addMember.getByLabel('Role').selectOption('viewer');
  await addMember.getByRole('button', { name: 'Add member' }).click();
  await expect(a.getByText(`${mate} was added as viewer.`)).toBeVisible();
  const members = a.getByRole('list', { name: 'Members' });
  await expect(members.getByRole('listitem')).toHaveCount(2);
  await addMember.getByLabel('Username').fill(mate);
  await addMember.getByRole('button', { name: 'Add member' }).click();
  await expect(addMember.getByRole('alert')).toHaveText(`${mate} is already a member of this project.`);
  // Admin+ removes a member.
  const extra = uniqueName('extra');
  await registerUser(extra);
  await addMember.getByLabel('Username').fill(extra);
  await addMember.getByRole('button', { name: 'Add member' }).click();
  await expect(members.getByRole('listitem')).toHaveCount(3);
  await members.getByRole('button', { name: `Remove ${extra}` }).click();
  await expect(a.getByText(`${extra} was removed.`)).toBeVisible();
  await expect(members.getByRole('listitem')).toHaveCount(2);
  // The owner may not leave: no such button, and the way out is said.
  await expect(a.getByRole('button', { name: 'Leave project' })).toHaveCount(0);
  await expect(a.getByText('hand ownership to another member first')).toBeVisible();
  await expectAccessible(a, 'project (owner)');
  await screenshots(a, 'project-owner');

  // Settings carry If-Match: a change made meanwhile (here through the API) is a 412,
  // shown with a Reload, never overwritten.
  const settings = a.getByRole('form', { name: 'Project settings' });
  const projectPath = new URL(a.url()).pathname.replace('/project/', '/projects/');
  const changed = await fetch(`${baseURL()}${projectPath}`, {
    method: 'PATCH',
    headers: { Authorization: `Bearer ${await apiToken(owner)}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ description: 'Changed meanwhile' }),
  });
  expect(changed.status).toBe(200);
  await settings.getByLabel('Name').fill('Launch 2027');
  await settings.getByRole('button', { name: 'Save project' }).click();
  await expect(settings.getByRole('alert')).toContainText('This project was changed by someone else');
  await settings.getByRole('button', { name: 'Reload' }).click();
  await expect(settings.getByLabel('Description')).toHaveValue('Changed meanwhile');
  await expect(settings.getByLabel('Name')).toHaveValue('Launch');

  // Tasks: one in the project (the project's own task list), one in the owner's inbox.
  await a.getByRole('link', { name: 'Open its tasks' }).click();
  await expect(a.getByRole('search').getByLabel('Project')).toHaveValue(/\d+/);
  await addTask(a, { title: 'Draft plan', priority: 'high' });
  await expect(taskList(a).getByRole('listitem').filter({ hasText: 'Draft plan' })).toContainText('Launch');
  await a.goto(`${baseURL()}/`);
  await addTask(a, { title: 'Private note' });
  await expect(taskList(a).getByRole('listitem').filter({ hasText: 'Private note' })).toContainText('Inbox');
  await expectAccessible(a, 'tasks (teams)');
  await screenshots(a, 'tasks-teams');

  // The mate sees the project and its task, never the owner's inbox; they were told.
  await signIn(b, mate);
  await expect.poll(() => taskTitles(b)).toEqual(['Draft plan']);
  await expect(b.getByRole('checkbox', { name: 'Completed: Draft plan' })).toBeDisabled();
  await expect(nav(b).getByRole('link', { name: /^Notifications/ })).toContainText('1');
  await nav(b).getByRole('link', { name: /^Notifications/ }).click();
  const bNotifications = b.getByRole('list', { name: 'Notifications' });
  await expect(bNotifications).toContainText(`${owner} shared the project Launch with you (viewer)`);
  await expect(bNotifications).toContainText(`in Launch · by ${owner}`);

  // A viewer: no edit, delete or comment controls; may follow.
  await openTask(b, 'Draft plan');
  await expect(b.getByText('your role: viewer')).toBeVisible();
  await expect(b.getByRole('button', { name: 'Save changes' })).toHaveCount(0);
  await expect(b.getByRole('button', { name: 'Delete task' })).toHaveCount(0);
  await expect(b.getByLabel('Add a comment')).toHaveCount(0);
  await b.getByRole('button', { name: 'Follow' }).click();
  await expect(b.getByRole('button', { name: 'Following' })).toHaveAttribute('aria-pressed', 'true');
  await expectAccessible(b, 'task detail (viewer)');
  await screenshots(b, 'task-detail-viewer');
  await openProject(b, 'Launch');
  await expect(b.getByRole('form', { name: 'Add a member' })).toHaveCount(0);
  await expect(b.getByRole('form', { name: 'Project settings' })).toHaveCount(0);
  await expect(b.getByRole('combobox', { name: `Role of ${owner}` })).toHaveCount(0);
  await expect(b.getByRole('button', { name: 'Leave project' })).toBeVisible();
  await expectAccessible(b, 'project (viewer)');
  await screenshots(b, 'project-viewer');

  // The owner makes the mate an editor and assigns the task to them.
  await openProject(a, 'Launch');
  await setRole(a, mate, 'editor');
  await openTask(a, 'Draft plan');
  await a.getByLabel('Assignee').selectOption({ label: mate });
  await a.getByRole('button', { name: 'Save changes' }).click();
  await expect(a.getByText('Saved.')).toBeVisible();
  await expect(a.getByText(`assigned to ${mate}`)).toBeVisible();
  await expectAccessible(a, 'task detail (owner)');
  await screenshots(a, 'task-detail-owner');

  // The mate is told, and as an editor now edits, comments and edits the comment.
  await nav(b).getByRole('link', { name: /^Notifications/ }).click();
  await expect(bNotifications).toContainText('Task assigned to you: Draft plan');
  await expectAccessible(b, 'notifications (teams)');
  await screenshots(b, 'notifications-teams');
  await openTask(b, 'Draft plan');
  await expect(b.getByText('assigned to you')).toBeVisible();
  await expect(b.getByRole('button', { name: 'Save changes' })).toBeVisible();
  await b.getByLabel('Add a comment').fill('On it');
  await b.getByRole('button', { name: 'Post comment' }).click();
  const bComments = b.getByRole('list', { name: 'Comments' });
  await expect(bComments).toContainText('On it');
  // With the keyboard: Edit puts the focus in the text, Escape gives it back to Edit.
  const editOnIt = b.getByRole('button', { name: 'Edit comment: On it' });
  await editOnIt.focus();
  await b.keyboard.press('Enter');
  await expect(b.getByLabel('Edit your comment')).toBeFocused();
  await b.keyboard.press('Escape');
  await expect(editOnIt).toBeFocused();
  await expect(bComments).not.toContainText('edited');
  await editOnIt.click();
  await b.getByLabel('Edit your comment').fill('On it, done by Friday');
  await b.getByRole('button', { name: 'Save comment' }).click();
  await expect(bComments).toContainText('On it, done by Friday');
  await expect(bComments).toContainText('edited');
  await expect(b.getByRole('button', { name: 'Edit comment: On it, done by Friday' })).toBeFocused();

  // Filters: my tasks, unassigned.
  await b.goto(`${baseURL()}/`);
  const bFilters = b.getByRole('search', { name: 'Filter and sort tasks' });
  await bFilters.getByLabel('Assignee').selectOption({ label: 'My tasks' });
  await expect.poll(() => taskTitles(b)).toEqual(['Draft plan']);
  await bFilters.getByLabel('Assignee').selectOption({ label: 'Unassigned' });
  await expect(b.getByText('No tasks match these filters.')).toBeVisible();

  // The owner moves the inbox task into the project: the mate sees it there, unassigned.
  await openTask(a, 'Private note');
  await a.getByLabel('Project').selectOption({ label: 'Launch' });
  await a.getByRole('button', { name: 'Save changes' }).click();
  await expect(a.getByText('Saved.')).toBeVisible();
  await expect(a.locator('.task-context')).toContainText('In Launch');
  await b.reload();
  await expect.poll(() => taskTitles(b)).toEqual(['Private note', 'Draft plan']);
  await expect(taskList(b).getByRole('listitem').filter({ hasText: 'Private note' })).toContainText('Launch');
  await bFilters.getByLabel('Assignee').selectOption({ label: 'Unassigned' });
  await expect.poll(() => taskTitles(b)).toEqual(['Private note']);

  // An admin+ deletes anyone's comment; the author's edit shows to them as "edited".
  await openTask(a, 'Draft plan');
  const aComments = a.getByRole('list', { name: 'Comments' });
  await expect(aComments).toContainText(`${mate} ·`);
  await expect(a.getByRole('button', { name: /^Edit comment/ })).toHaveCount(0);
  await a.getByRole('button', { name: 'Delete comment: On it, done by Friday' }).click();
  await expect(a.getByText('No comments yet.')).toBeVisible();

  // The mate's role drops to commenter while their editor is open: the server's 403 is
  // shown; once reloaded, a commenter may comment but not edit.
  await openTask(b, 'Draft plan');
  await expect(b.getByRole('button', { name: 'Save changes' })).toBeVisible();
  await openProject(a, 'Launch');
  await setRole(a, mate, 'commenter');
  await b.getByLabel('Title').fill('Draft plan, v2');
  await b.getByRole('button', { name: 'Save changes' }).click();
  await expect(b.getByRole('alert')).toHaveText('This needs the editor role (or higher) in the project');
  await b.reload();
  await expect(b.getByText('your role: commenter')).toBeVisible();
  await expect(b.getByRole('button', { name: 'Save changes' })).toHaveCount(0);
  await expect(b.getByLabel('Add a comment')).toBeVisible();
  await expectAccessible(b, 'task detail (commenter)');

  // Ownership handed over: the old owner is an admin and may leave; then Launch is gone for them.
  await setRole(a, mate, 'owner');
  await expect(a.getByText('Your role: admin')).toBeVisible();
  await a.getByRole('button', { name: 'Leave project' }).click();
  await expect(a.getByRole('heading', { name: 'Projects', level: 1 })).toBeVisible();
  await expect(a.getByRole('list', { name: 'Projects' }).getByRole('link', { name: 'Launch', exact: true })).toHaveCount(0);

  expect(problems.flat()).toEqual([]);
  await ownerContext.close();
  await mateContext.close();
});
