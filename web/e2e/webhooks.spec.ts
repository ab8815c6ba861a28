// Issue 17, webhooks: an admin creates one (the secret is shown once), pings it, sees the
// delivery succeed against a receiver on 127.0.0.1, redelivers it, rotates, edits, disables
// and deletes it; a refused URL is shown on its field.
import { type Page, expect, test } from '@playwright/test';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expectAccessible, screenshots } from './a11y';
import { pageProblems, signUp, uniqueName } from './helpers';

interface Received {
  headers: IncomingHttpHeaders;
  body: { type: string };
}

/** A tiny receiver: answers 204 to every POST and keeps what it got. */
async function receiver(): Promise<{ url: string; received: Received[]; close: () => Promise<void> }> {
  const received: Received[] = [];
  const server: Server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      received.push({ headers: request.headers, body: JSON.parse(body || '{}') as { type: string } });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    received,
    close: () => new Promise((done) => server.close(() => done())),
  };
}

function nav(page: Page) {
  return page.getByRole('navigation', { name: 'Main' });
}

test('webhooks: secret shown once, ping delivered, redeliver, rotate, edit, disable, delete', async ({ browser }) => {
  const target = await receiver();
  const context = await browser.newContext();
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  const page = await context.newPage();
  const problems = pageProblems(page);
  page.on('dialog', (dialog) => void dialog.accept());
  try {
    await signUp(page, uniqueName('hooks'));
    await nav(page).getByRole('link', { name: 'Projects' }).click();
    const newProject = page.getByRole('form', { name: 'New project' });
    await newProject.getByLabel('Name').fill('Hooked');
    await newProject.getByRole('button', { name: 'Create project' }).click();
    await page.getByRole('list', { name: 'Projects' }).getByRole('link', { name: 'Hooked', exact: true }).click();
    await expect(page.getByRole('heading', { name: 'Hooked', level: 1 })).toBeVisible();
    const section = page.getByRole('region', { name: 'Webhooks' });
    await expect(section.getByText('No webhooks yet.')).toBeVisible();

    // A URL the API refuses (422) is shown on the field.
    await section.getByRole('button', { name: 'Add a webhook' }).click();
    const form = page.getByRole('form', { name: 'Add a webhook' });
    await form.getByLabel('Payload URL').fill('ftp://127.0.0.1/hooks');
    await form.getByRole('button', { name: 'Create webhook' }).click();
    const url = form.getByLabel('Payload URL');
    await expect(url).toHaveAttribute('aria-invalid', 'true');
    await expect(form.getByRole('alert')).toContainText('http');
    await expect(url).toHaveAccessibleDescription(/http/);
    await expectAccessible(page, 'webhook form with a refused URL');
    await screenshots(page, 'webhook-form');

    // Created: the secret once, with a copy button and a warning.
    await url.fill(target.url);
    await form.getByLabel('comment.created').check();
    await form.getByRole('button', { name: 'Create webhook' }).click();
    const secretCard = page.locator('.secret-card');
    await expect(secretCard).toContainText('you will not see it again');
    const secret = await secretCard.getByLabel('Signing secret').inputValue();
    expect(secret).toMatch(/^whsec_/);
    await secretCard.getByRole('button', { name: 'Copy secret' }).click();
    await expect(secretCard.getByRole('status')).toHaveText('Copied to the clipboard.');
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
    await expectAccessible(page, 'webhook secret');
    await screenshots(page, 'webhook-secret');
    await secretCard.getByRole('button', { name: 'I have saved it' }).click();
    await expect(secretCard).toHaveCount(0);
    const hooks = section.getByRole('list', { name: 'Webhooks' });
    const hook = hooks.getByRole('listitem').filter({ hasText: target.url }).first();
    await expect(hook).toContainText('task.created, task.updated, comment.created');
    await page.reload();
    await expect(hook).toBeVisible();
    expect(await page.content()).not.toContain(secret);

    // Ping: a delivery that succeeds against the receiver, signed.
    await hook.getByRole('button', { name: 'Ping', exact: true }).click();
    const deliveries = hook.getByRole('list', { name: 'Deliveries' });
    const first = deliveries.getByRole('listitem');
    await expect(first).toHaveCount(1);
    await expect(first).toContainText('ping');
    await expect(first.locator('.badge')).toHaveText('succeeded', { timeout: 20_000 });
    await expect(first).toContainText('1 attempt · HTTP 204');
    expect(target.received.map((r) => r.body.type)).toEqual(['ping']);
    expect(target.received[0].headers['webhook-signature']).toMatch(/^v1,/);

    // Redeliver: a new line of the log, the same webhook-id.
    await first.getByRole('button', { name: /^Redeliver/ }).click();
    await expect(deliveries.getByRole('listitem')).toHaveCount(2);
    await expect(deliveries.locator('.badge')).toHaveText(['succeeded', 'succeeded'], { timeout: 20_000 });
    await expect.poll(() => target.received.length).toBe(2);
    expect(target.received[1].headers['webhook-id']).toBe(target.received[0].headers['webhook-id']);
    await expectAccessible(page, 'webhooks and deliveries');
    await screenshots(page, 'webhooks');

    // Rotate: a new secret, shown once.
    await hook.getByRole('button', { name: 'Rotate secret' }).click();
    await expect(secretCard.getByRole('heading', { name: 'New signing secret' })).toBeVisible();
    const rotated = await secretCard.getByLabel('Signing secret').inputValue();
    expect(rotated).toMatch(/^whsec_/);
    expect(rotated).not.toBe(secret);
    await secretCard.getByRole('button', { name: 'I have saved it' }).click();

    // Edit the events; disable (no ping then); enable again.
    await hook.getByRole('button', { name: 'Edit', exact: true }).click();
    const edit = page.getByRole('form', { name: `Edit the webhook for ${target.url}` });
    await edit.getByLabel('task.updated').uncheck();
    await edit.getByLabel('member.added').check();
    await edit.getByRole('button', { name: 'Save webhook' }).click();
    await expect(hook).toContainText('task.created, comment.created, member.added');
    await hook.getByRole('button', { name: 'Disable' }).click();
    await expect(hook.locator('.badge').first()).toHaveText('disabled');
    await expect(hook.getByRole('button', { name: 'Ping', exact: true })).toBeDisabled();
    await hook.getByRole('button', { name: 'Enable' }).click();
    await expect(hook.locator('.badge').first()).toHaveText('enabled');

    // Delete, after a confirmation.
    await hook.getByRole('button', { name: 'Delete', exact: true }).click();
    await expect(hooks.getByRole('listitem')).toHaveCount(0);
    await expect(section.getByText('No webhooks yet.')).toBeVisible();
    expect(problems).toEqual([]);
  } finally {
    await context.close();
    await target.close();
  }
});
