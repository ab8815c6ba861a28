// Global setup: migrate a temporary SQLite database and serve the app with `task-manager
// serve` on a free 127.0.0.1 port (8600-8699), the web app from web/dist. Tests read the
// address from E2E_BASE_URL. The returned function stops the server.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');
const BIN = process.env.BIN ? resolve(ROOT, process.env.BIN) : join(ROOT, '.venv', 'bin');
const WEB_DIR = join(ROOT, 'web', 'dist');

function portIsFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const probe = createServer();
    probe.once('error', () => done(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => done(true)));
  });
}

async function freePort(): Promise<number> {
  const start = 8600 + Math.floor(Math.random() * 100);
  for (let i = 0; i < 100; i++) {
    const port = 8600 + ((start - 8600 + i) % 100);
    if (await portIsFree(port)) return port;
  }
  throw new Error('no free port in 8600-8699');
}

async function waitUntilUp(url: string, server: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`the server exited:\n${log()}`);
    try {
      if ((await fetch(`${url}/health`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the server did not answer within 30 s:\n${log()}`);
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  if (!existsSync(join(WEB_DIR, 'index.html'))) {
    throw new Error('web/dist is missing: run `npm run build` in web/ first');
  }
  const workdir = mkdtempSync(join(tmpdir(), 'task-manager-e2e-'));
  const port = await freePort();
  const env = {
    ...process.env,
    ENVIRONMENT: 'development',
    DATABASE_URL: `sqlite:///${join(workdir, 'e2e.db')}`,
    SECRET_KEY: 'e2e-secret-key-that-is-long-enough-0123456789',
    WEB_DIR,
    // The shortest lifetime the settings accept: the app must refresh silently.
    ACCESS_TOKEN_EXPIRE_MINUTES: '1',
    // The tests sign up many users from one address.
    RATE_LIMIT_ENABLED: 'false',
    // Reminders (task_due_soon, task_overdue) would appear among the notifications at any moment of a
    // test; the notifications then hold exactly what each test did.
    JOBS_INTERVAL_SECONDS: '86400',
    // Fast hashing: the tests sign in often.
    PASSWORD_HASH_MEMORY_KIB: '8192',
    PASSWORD_HASH_TIME_COST: '1',
    // The webhooks test delivers to a receiver on 127.0.0.1, a private address that is
    // refused by default (API.md "v2 Webhooks").
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    LOG_FILE: '',
    REDIS_URL: '',
    CELERY_BROKER_URL: '',
  };
  const migrate = spawnSync(join(BIN, 'task-manager'), ['migrate'], { cwd: workdir, env });
  if (migrate.status !== 0) throw new Error(`migrate failed:\n${migrate.stderr}`);

  let output = '';
  const server = spawn(
    join(BIN, 'task-manager'),
    ['serve', '--host', '127.0.0.1', '--port', String(port)],
    { cwd: workdir, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  server.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  server.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const baseURL = `http://127.0.0.1:${port}`;
  await waitUntilUp(baseURL, server, () => output);
  process.env.E2E_BASE_URL = baseURL;

  return async () => {
    server.kill('SIGTERM');
    await new Promise((r) => (server.exitCode !== null ? r(null) : server.once('exit', r)));
    rmSync(workdir, { recursive: true, force: true });
  };
}
