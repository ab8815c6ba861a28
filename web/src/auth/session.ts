// The browser session (API.md "v2 Browser sessions"): the access token lives in this
// object's memory only; the refresh token only in the HttpOnly tm_refresh cookie, which
// scripts never see. Tokens are refreshed silently before they expire and after a 401,
// one refresh at a time: within the tab (one shared promise) and across tabs (a Web Lock),
// since two refreshes with the same cookie would look like token theft and end the session.

import { ApiError, NETWORK_ERROR, apiError } from '../api/errors';

const SESSION_HEADER = { 'X-Session': 'cookie' };
const LOCK_NAME = 'task-manager-refresh';
const CHANNEL_NAME = 'task-manager-session';

export type SessionStatus = 'unknown' | 'signed-in' | 'signed-out';

export interface SessionSnapshot {
  status: SessionStatus;
  /** Why the session ended, when it did not end by the user's own sign-out. */
  reason: string | null;
}

interface TokenAnswer {
  access_token: string;
  expires_in: number;
}

interface LockManagerLike {
  request<T>(name: string, callback: () => Promise<T>): Promise<T>;
}

interface ChannelLike {
  postMessage(message: unknown): void;
  addEventListener(type: 'message', listener: (event: MessageEvent) => void): void;
}

export interface SessionDeps {
  fetch: (input: Request | string, init?: RequestInit) => Promise<Response>;
  locks?: LockManagerLike | null;
  channel?: ChannelLike | null;
  setTimer: (callback: () => void, ms: number) => unknown;
  clearTimer: (id: unknown) => void;
  now: () => number;
}

/** How long before expiry the token is renewed: a quarter of its life, at most a minute. */
export function refreshLeadMs(expiresInSeconds: number): number {
  return Math.min(60_000, expiresInSeconds * 250);
}

export class Session {
  private accessToken: string | null = null;
  private expiresAt = 0;
  private refreshing: Promise<ApiError | null> | null = null;
  private timer: unknown = null;
  private snapshot: SessionSnapshot = { status: 'unknown', reason: null };
  private readonly listeners = new Set<(snapshot: SessionSnapshot) => void>();
  /** How many refresh requests this tab sent (tests read it). */
  refreshCount = 0;

  constructor(private readonly deps: SessionDeps) {
    deps.channel?.addEventListener('message', (event: MessageEvent) => {
      // Signed out in another tab: the cookie is gone for this tab too.
      if ((event.data as { type?: string })?.type === 'signed-out') this.end(null, false);
    });
  }

  get state(): SessionSnapshot {
    return this.snapshot;
  }

  get token(): string | null {
    return this.accessToken;
  }

  subscribe(listener: (snapshot: SessionSnapshot) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** At start-up: a cookie from an earlier visit signs the user in without a form. */
  async restore(): Promise<void> {
    const error = await this.refresh();
    if (error && this.snapshot.status === 'unknown') this.end(null, false);
  }

  async signIn(username: string, password: string): Promise<void> {
    const response = await this.send('/auth/login', {
      method: 'POST',
      headers: SESSION_HEADER,
      body: new URLSearchParams({ username, password }),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) throw apiError(response.status, body, response.headers);
    this.accept(body as TokenAnswer);
  }

  async signOut(): Promise<void> {
    const token = this.accessToken;
    try {
      if (token) {
        await this.send('/auth/logout', {
          method: 'POST',
          headers: { ...SESSION_HEADER, Authorization: `Bearer ${token}` },
        });
      }
    } finally {
      this.end(null, true);
    }
  }

  /**
   * Renews the access token with the cookie. Every caller during one renewal shares it;
   * resolves to null on success, else the error (a 401 also ends the session).
   */
  refresh(): Promise<ApiError | null> {
    if (!this.refreshing) {
      const run = () => this.renew();
      const locked = this.deps.locks ? this.deps.locks.request(LOCK_NAME, run) : run();
      this.refreshing = locked.finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  /** fetch() for the API client: adds the token, renews it when needed, retries once. */
  async fetch(request: Request): Promise<Response> {
    if (this.accessToken && this.deps.now() >= this.expiresAt) await this.refresh();
    const used = this.accessToken;
    const retry = request.clone();
    const response = await this.deps.fetch(this.authorize(request));
    if (response.status !== 401 || used === null) return response;
    // Renewed meanwhile by another request: just try again with the new token.
    if (this.accessToken !== used && this.accessToken !== null) {
      return this.deps.fetch(this.authorize(retry));
    }
    const error = await this.refresh();
    if (error === null) return this.deps.fetch(this.authorize(retry));
    if (error.status === 401) return response;
    // 429, 503, no network: the caller shows that instead.
    return new Response(JSON.stringify({ detail: error.detail }), {
      status: error.status || 503,
      headers: error.retryAfter === null ? {} : { 'Retry-After': String(error.retryAfter) },
    });
  }

  private async renew(): Promise<ApiError | null> {
    this.refreshCount += 1;
    let response: Response;
    try {
      response = await this.send('/auth/refresh', { method: 'POST', headers: SESSION_HEADER });
    } catch {
      return new ApiError(NETWORK_ERROR, 'Cannot reach the server');
    }
    const body = await response.json().catch(() => null);
    if (response.ok) {
      this.accept(body as TokenAnswer);
      return null;
    }
    const error = apiError(response.status, body, response.headers);
    if (response.status === 401) {
      const wasSignedIn = this.snapshot.status === 'signed-in';
      this.end(wasSignedIn ? 'Your session has ended. Please sign in again.' : null, false);
    }
    return error;
  }

  private accept(answer: TokenAnswer): void {
    this.accessToken = answer.access_token;
    const lifetimeMs = answer.expires_in * 1000;
    this.expiresAt = this.deps.now() + lifetimeMs - refreshLeadMs(answer.expires_in);
    if (this.timer !== null) this.deps.clearTimer(this.timer);
    this.timer = this.deps.setTimer(() => {
      this.timer = null;
      void this.refresh();
    }, this.expiresAt - this.deps.now());
    this.publish({ status: 'signed-in', reason: null });
  }

  private end(reason: string | null, broadcast: boolean): void {
    this.accessToken = null;
    this.expiresAt = 0;
    if (this.timer !== null) this.deps.clearTimer(this.timer);
    this.timer = null;
    if (broadcast) this.deps.channel?.postMessage({ type: 'signed-out' });
    this.publish({ status: 'signed-out', reason });
  }

  private authorize(request: Request): Request {
    if (!this.accessToken) return request;
    const headers = new Headers(request.headers);
    headers.set('Authorization', `Bearer ${this.accessToken}`);
    return new Request(request, { headers });
  }

  private send(url: string, init: RequestInit): Promise<Response> {
    return this.deps.fetch(url, { ...init, credentials: 'same-origin' });
  }

  private publish(snapshot: SessionSnapshot): void {
    this.snapshot = snapshot;
    for (const listener of this.listeners) listener(snapshot);
  }
}

export function browserSession(): Session {
  return new Session({
    fetch: (input, init) => globalThis.fetch(input, init),
    locks: typeof navigator !== 'undefined' && 'locks' in navigator ? navigator.locks : null,
    channel: typeof BroadcastChannel === 'undefined' ? null : new BroadcastChannel(CHANNEL_NAME),
    setTimer: (callback, ms) => setTimeout(callback, Math.max(0, ms)),
    clearTimer: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
    now: () => Date.now(),
  });
}
