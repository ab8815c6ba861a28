// Issue 17, idempotent retries: the answer to "Add task" is lost on the way back (the task
// was created); the app sends the request again with the same Idempotency-Key, the server
// replays its answer, and there is one task, not two.
import { expect, test } from '@playwright/test';
import { addTask, signUp, taskList, uniqueName } from './helpers';

test('a lost answer is retried with the same key: one task, not two', async ({ page }) => {
  await signUp(page, uniqueName('flaky'));
  const keys: string[] = [];
  const replayed: (string | undefined)[] = [];
  await page.route(
    (url) => url.pathname === '/tasks',
    async (route) => {
      const request = route.request();
      if (request.method() !== 'POST') return route.continue();
      keys.push((await request.allHeaders())['idempotency-key']);
      const response = await route.fetch();
      if (keys.length === 1) return route.abort('connectionreset'); // done, but the answer is lost
      replayed.push(response.headers()['idempotent-replayed']);
      return route.fulfill({ response });
    },
  );
  await addTask(page, { title: 'Only once' });
  expect(keys).toHaveLength(2);
  expect(keys[0]).toMatch(/^[\x21-\x7e]{1,255}$/);
  expect(keys[1]).toBe(keys[0]);
  expect(replayed).toEqual(['true']);

  await page.reload();
  await expect(taskList(page).getByRole('link', { name: 'Only once', exact: true })).toHaveCount(1);

  // The next action is a new key.
  await addTask(page, { title: 'Another one' });
  expect(keys).toHaveLength(3);
  expect(keys[2]).not.toBe(keys[0]);
});
