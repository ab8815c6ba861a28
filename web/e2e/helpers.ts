import { type BrowserContext, type Page, expect } from '@playwright/test';

export function baseURL(): string {
  const url = process.env.E2E_BASE_URL;
  if (!url) throw new Error('E2E_BASE_URL is not set: the global setup did not run');
  return url;
}

/** Blocks every request that leaves 127.0.0.1; returns the list of what was blocked. */
export async function offline(context: BrowserContext): Promise<string[]> {
  const blocked: string[] = [];
  await context.route('**/*', async (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1' || url.protocol === 'data:' || url.protocol === 'blob:') {
      await route.continue();
    } else {
      blocked.push(url.href);
      await route.abort('internetdisconnected');
    }
  });
  return blocked;
}

/**
 * Script errors and Content-Security-Policy refusals seen by the page. Chromium's own line
 * for an HTTP error status is left out: the app expects some (a 401 from the silent sign-in
 * without a cookie, a 400 for a wrong password) and shows them.
 */
export function pageProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (message) => {
    const text = message.text();
    if (message.type() === 'error' && !text.startsWith('Failed to load resource: the server responded')) {
      problems.push(text);
    }
  });
  page.on('pageerror', (error) => problems.push(error.message));
  return problems;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

export const PASSWORD = 'correct horse battery';

export async function registerUser(username: string, password = PASSWORD): Promise<void> {
  const response = await fetch(`${baseURL()}/auth/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  expect(response.status, await response.text()).toBe(201);
}

/** Signs up through the sign-up screen and waits for the task list. */
export async function signUp(page: Page, username: string, password = PASSWORD): Promise<void> {
  await page.goto(`${baseURL()}/sign-up`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByRole('heading', { name: 'Tasks', level: 1 })).toBeVisible();
}

export async function signIn(page: Page, username: string, password = PASSWORD): Promise<void> {
  await page.goto(`${baseURL()}/sign-in`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Tasks', level: 1 })).toBeVisible();
}

export async function addTask(
  page: Page,
  task: { title: string; priority?: string; due?: string; tags?: string },
): Promise<void> {
  const form = page.locator('form.new-task');
  await form.getByLabel('Title').fill(task.title);
  if (task.priority) await form.getByLabel('Priority').selectOption(task.priority);
  if (task.due) await form.getByLabel('Due').fill(task.due);
  if (task.tags) await form.getByLabel('Tags').fill(task.tags);
  await form.getByRole('button', { name: 'Add task' }).click();
  await expect(taskList(page).getByRole('link', { name: task.title, exact: true })).toBeVisible();
}

export function taskList(page: Page) {
  return page.getByRole('list', { name: 'Tasks' });
}

export async function taskTitles(page: Page): Promise<string[]> {
  return taskList(page).locator('.task-title').allInnerTexts();
}

/** Signs in through the API (not the UI) and returns an access token, for test set-up. */
export async function apiToken(username: string, password = PASSWORD): Promise<string> {
  const response = await fetch(`${baseURL()}/auth/login`, {
    method: 'POST',
    body: new URLSearchParams({ username, password }),
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { access_token: string }).access_token;
}

export async function apiCreateTask(token: string, body: Record<string, unknown>): Promise<{ id: number }> {
  const response = await fetch(`${baseURL()}/tasks`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(response.status, await response.clone().text()).toBe(201);
  return (await response.json()) as { id: number };
}
