// Small shared state for the screens: the session, the signed-in user, the unread count.
import { useEffect, useState } from 'preact/hooks';
import { Store } from './store';
import { type User, api, session, unwrap } from '../api/client';
import type { SessionSnapshot } from '../auth/session';
import { forgetTeams } from './teams';
import { justTrashed } from './trash';

export function useSession(): SessionSnapshot {
  const [snapshot, setSnapshot] = useState(session.state);
  useEffect(() => {
    const unsubscribe = session.subscribe(setSnapshot);
    // A change between the first render and this effect (a fast answer to the start-up
    // refresh) would otherwise be missed, and the screen would wait for ever.
    setSnapshot(session.state);
    return unsubscribe;
  }, []);
  return snapshot;
}

export const currentUser = new Store<User | null>(null);
/** Unread notifications: a number, or null before the first count. `more` past one page. */
export const unread = new Store<{ count: number; more: boolean } | null>(null);

export async function loadCurrentUser(): Promise<void> {
  currentUser.set(await unwrap(api.GET('/auth/me')));
}

export async function countUnread(): Promise<void> {
  if (session.state.status !== 'signed-in') return;
  try {
    const page = await unwrap(
      api.GET('/notifications', { params: { query: { unread: true, limit: 100 } } }),
    );
    unread.set({ count: page.items.length, more: page.next_cursor != null });
  } catch {
    // The badge keeps its last value; the inbox screen shows errors.
  }
}

session.subscribe((snapshot) => {
  if (snapshot.status === 'signed-out') {
    currentUser.set(null);
    unread.set(null);
    forgetTeams();
    justTrashed.set(null);
  }
});
