import { describe, expect, it } from 'vitest';
import { Session, type SessionDeps, refreshLeadMs } from '../src/auth/session';

const ORIGIN = 'http://app.test';

/** The API as far as the session sees it: a cookie jar, rotation and reuse detection. */
class FakeServer {
  jar: string | null = null; // the browser's tm_refresh cookie, shared by every tab
  private valid: string | null = null;
  private used = new Set<string>();
  private serial = 0;
  accessTokens = new Set<string>();
  refreshes = 0;
  logouts: Headers[] = [];
  refreshStatus: number | null = null; // forces an answer (429, 503)
  expiresIn = 60;
  log: string[] = [];

  fetch = async (input: Request | string, init?: RequestInit): Promise<Response> => {
    const request = typeof input === 'string' ? new Request(ORIGIN + input, init) : input;
    const path = new URL(request.url).pathname;
    await Promise.resolve(); // an answer is never synchronous
    if (path === '/auth/login') return this.issue();
    if (path === '/auth/refresh') return this.refresh(request);
    if (path === '/auth/logout') {
      this.logouts.push(request.headers);
      this.jar = null;
      return new Response(null, { status: 204 });
    }
    const token = request.headers.get('Authorization')?.replace('Bearer ', '') ?? '';
    this.log.push(`${path} ${token}`);
    if (!this.accessTokens.has(token)) return json(401, { detail: 'Token expired' });
    return json(200, { ok: true, token });
  };

  expireAccessTokens(): void {
    this.accessTokens.clear();
  }

  private async refresh(request: Request): Promise<Response> {
    this.refreshes += 1;
    if (request.headers.get('X-Session') !== 'cookie') return json(401, { detail: 'No refresh token' });
    if (this.refreshStatus) {
      return new Response(JSON.stringify({ detail: 'slow down' }), {
        status: this.refreshStatus,
        headers: { 'Retry-After': '12' },
      });
    }
    const presented = this.jar;
    await new Promise((resolve) => setTimeout(resolve, 5)); // the request is in flight
    if (presented === null) return json(401, { detail: 'No session cookie: sign in again' });
    if (this.used.has(presented) || presented !== this.valid) {
      this.valid = null; // reuse: the whole family is revoked
      return json(401, { detail: 'Refresh token has already been used; session revoked' });
    }
    this.used.add(presented);
    return this.issue();
  }

  private issue(): Response {
    this.serial += 1;
    const access = `access-${this.serial}`;
    this.accessTokens.add(access);
    this.valid = `refresh-${this.serial}`;
    this.jar = this.valid;
    return json(200, { access_token: access, token_type: 'bearer', expires_in: this.expiresIn });
  }
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

/** navigator.locks' semantics: callbacks for one name run one after the other. */
class FakeLocks {
  private tail: Promise<unknown> = Promise.resolve();
  request<T>(_name: string, callback: () => Promise<T>): Promise<T> {
    const run = this.tail.then(callback, callback);
    this.tail = run.catch(() => undefined);
    return run;
  }
}

class FakeChannel {
  private peers: FakeChannel[];
  private listeners: ((event: MessageEvent) => void)[] = [];
  constructor(peers: FakeChannel[]) {
    this.peers = peers;
    peers.push(this);
  }
  postMessage(message: unknown): void {
    for (const peer of this.peers) {
      if (peer !== this) for (const listener of peer.listeners) listener({ data: message } as MessageEvent);
    }
  }
  addEventListener(_type: 'message', listener: (event: MessageEvent) => void): void {
    this.listeners.push(listener);
  }
}

class Clock {
  now = 1_000_000;
  timers: { at: number; callback: () => void; id: number }[] = [];
  private next = 0;
  set = (callback: () => void, ms: number): unknown => {
    const id = ++this.next;
    this.timers.push({ at: this.now + ms, callback, id });
    return id;
  };
  clear = (id: unknown): void => {
    this.timers = this.timers.filter((timer) => timer.id !== id);
  };
  advance(ms: number): void {
    this.now += ms;
    const due = this.timers.filter((timer) => timer.at <= this.now);
    this.timers = this.timers.filter((timer) => timer.at > this.now);
    for (const timer of due) timer.callback();
  }
}

function tab(server: FakeServer, extra: Partial<SessionDeps> = {}, clock = new Clock()): Session {
  return new Session({
    fetch: server.fetch,
    locks: new FakeLocks(),
    channel: null,
    setTimer: clock.set,
    clearTimer: clock.clear,
    now: () => clock.now,
    ...extra,
  });
}

const api = (path: string) => new Request(ORIGIN + path);

describe('signing in', () => {
  it('keeps the access token in memory and signs in', async () => {
    const server = new FakeServer();
    const session = tab(server);
    await session.signIn('alice', 'secret');
    expect(session.state).toEqual({ status: 'signed-in', reason: null });
    const response = await session.fetch(api('/tasks'));
    expect(response.status).toBe(200);
    expect(server.log).toEqual(['/tasks access-1']);
  });

  it('asks for a cookie session with a form body', async () => {
    const seen: Request[] = [];
    const server = new FakeServer();
    const session = tab(server, {
      fetch: (input, init) => {
        seen.push(new Request(ORIGIN + String(input), init));
        return server.fetch(input, init);
      },
    });
    await session.signIn('alice', 'secret');
    expect(seen[0].headers.get('X-Session')).toBe('cookie');
    expect(seen[0].credentials).toBe('same-origin');
    expect(await seen[0].text()).toBe('username=alice&password=secret');
  });

  it('throws the API error for wrong credentials', async () => {
    const session = tab(new FakeServer(), {
      fetch: async () => json(401, { detail: 'Incorrect username or password' }),
    });
    await expect(session.signIn('alice', 'wrong')).rejects.toMatchObject({
      status: 401,
      detail: 'Incorrect username or password',
    });
    expect(session.token).toBeNull();
  });
});

describe('refreshing', () => {
  it('renews after a 401 and retries the request once', async () => {
    const server = new FakeServer();
    const session = tab(server);
    await session.signIn('alice', 'secret');
    server.expireAccessTokens();
    const response = await session.fetch(api('/tasks'));
    expect(response.status).toBe(200);
    expect(server.refreshes).toBe(1);
    expect(server.log).toEqual(['/tasks access-1', '/tasks access-2']);
  });

  it('renews once for many requests that get a 401 together', async () => {
    const server = new FakeServer();
    const session = tab(server);
    await session.signIn('alice', 'secret');
    server.expireAccessTokens();
    const responses = await Promise.all(['/a', '/b', '/c', '/d'].map((path) => session.fetch(api(path))));
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(server.refreshes).toBe(1);
    expect(session.state.status).toBe('signed-in');
  });

  it('renews before expiry on a timer, without waiting for a 401', async () => {
    const clock = new Clock();
    const server = new FakeServer();
    const session = tab(server, {}, clock);
    await session.signIn('alice', 'secret');
    expect(clock.timers).toHaveLength(1);
    expect(clock.timers[0].at - clock.now).toBe(60_000 - refreshLeadMs(60));
    clock.advance(60_000 - refreshLeadMs(60));
    await session.refresh();
    expect(server.refreshes).toBe(1);
    expect(session.token).toBe('access-2');
    expect(clock.timers).toHaveLength(1); // the next renewal is planned
  });

  it('renews first when the token is past its renewal time (a sleeping laptop)', async () => {
    const clock = new Clock();
    const server = new FakeServer();
    const session = tab(server, { setTimer: () => 0, clearTimer: () => {} }, clock);
    await session.signIn('alice', 'secret');
    clock.now += 61_000;
    server.expireAccessTokens();
    await session.fetch(api('/tasks'));
    expect(server.log).toEqual(['/tasks access-2']);
  });

  it('renews a quarter of the lifetime ahead, at most a minute', () => {
    expect(refreshLeadMs(60)).toBe(15_000);
    expect(refreshLeadMs(900)).toBe(60_000);
  });

  it('keeps two tabs from refreshing with the same cookie at once', async () => {
    const server = new FakeServer();
    const locks = new FakeLocks();
    const one = tab(server, { locks });
    const two = tab(server, { locks });
    await one.signIn('alice', 'secret');
    await two.restore();
    server.expireAccessTokens();
    const [a, b] = await Promise.all([one.fetch(api('/a')), two.fetch(api('/b'))]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(one.state.status).toBe('signed-in');
    expect(two.state.status).toBe('signed-in');
  });

  it('(without the lock, the same race ends the session: what the lock is for)', async () => {
    const server = new FakeServer();
    const one = tab(server, { locks: null });
    const two = tab(server, { locks: null });
    await one.signIn('alice', 'secret');
    await two.restore();
    server.expireAccessTokens();
    const [a, b] = await Promise.all([one.fetch(api('/a')), two.fetch(api('/b'))]);
    expect([a.status, b.status]).toContain(401);
  });

  it('ends the session when the refresh is refused, and says why', async () => {
    const server = new FakeServer();
    const session = tab(server);
    await session.signIn('alice', 'secret');
    server.expireAccessTokens();
    server.jar = 'stolen-and-used';
    const response = await session.fetch(api('/tasks'));
    expect(response.status).toBe(401);
    expect(session.state).toEqual({
      status: 'signed-out',
      reason: 'Your session has ended. Please sign in again.',
    });
    expect(session.token).toBeNull();
  });

  it('passes a 429 on with its Retry-After, and stays signed in', async () => {
    const server = new FakeServer();
    const session = tab(server);
    await session.signIn('alice', 'secret');
    server.expireAccessTokens();
    server.refreshStatus = 429;
    const response = await session.fetch(api('/tasks'));
    expect(response.status).toBe(429);
    expect(response.headers.get('Retry-After')).toBe('12');
    expect(session.state.status).toBe('signed-in');
  });

  it('restores a session from the cookie alone, or is signed out without one', async () => {
    const server = new FakeServer();
    const first = tab(server);
    await first.signIn('alice', 'secret');
    const reloaded = tab(server);
    await reloaded.restore();
    expect(reloaded.state.status).toBe('signed-in');

    const stranger = tab(new FakeServer());
    await stranger.restore();
    expect(stranger.state).toEqual({ status: 'signed-out', reason: null });
  });
});

describe('signing out', () => {
  it('revokes the session with the cookie and tells the other tabs', async () => {
    const server = new FakeServer();
    const peers: FakeChannel[] = [];
    const one = tab(server, { channel: new FakeChannel(peers) });
    const two = tab(server, { channel: new FakeChannel(peers) });
    await one.signIn('alice', 'secret');
    await two.restore();
    await one.signOut();
    expect(server.logouts[0].get('X-Session')).toBe('cookie');
    expect(server.logouts[0].get('Authorization')).toBe('Bearer access-1');
    expect(one.state).toEqual({ status: 'signed-out', reason: null });
    expect(two.state.status).toBe('signed-out');
    expect(two.token).toBeNull();
  });

  it('signs out locally even when the server cannot be reached', async () => {
    const server = new FakeServer();
    let online = true;
    const session = tab(server, {
      fetch: async (input, init) => {
        if (!online) throw new TypeError('Failed to fetch');
        return server.fetch(input, init);
      },
    });
    await session.signIn('alice', 'secret');
    online = false;
    await expect(session.signOut()).rejects.toThrow('Failed to fetch');
    expect(session.state.status).toBe('signed-out');
    expect(session.token).toBeNull();
  });
});
