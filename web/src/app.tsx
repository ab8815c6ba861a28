import { useEffect } from 'preact/hooks';
import { LocationProvider, Route, Router, useLocation } from 'preact-iso';
import { session } from './api/client';
import { Inbox } from './screens/Inbox';
import { SignIn, SignUp } from './screens/Auth';
import { Profile } from './screens/Profile';
import { Project } from './screens/Project';
import { Projects } from './screens/Projects';
import { TaskDetail } from './screens/TaskDetail';
import { Tasks } from './screens/Tasks';
import { Trash } from './screens/Trash';
import { ScreenTitle } from './ui/components';
import { countUnread, loadCurrentUser, unread, useSession } from './ui/state';

const PUBLIC_PATHS = new Set(['/sign-in', '/sign-up']);
const UNREAD_POLL_MS = 30_000;

export function App() {
  return (
    <LocationProvider>
      <Shell />
    </LocationProvider>
  );
}

function Shell() {
  const { status } = useSession();
  const { path, route } = useLocation();
  const isPublic = PUBLIC_PATHS.has(path);

  useEffect(() => {
    if (status === 'signed-out' && !isPublic) route('/sign-in', true);
    if (status === 'signed-in' && isPublic) route('/', true);
  }, [status, isPublic]);

  useEffect(() => {
    if (status !== 'signed-in') return;
    void loadCurrentUser().catch(() => {});
    void countUnread();
    const timer = setInterval(() => void countUnread(), UNREAD_POLL_MS);
    return () => clearInterval(timer);
  }, [status]);

  if (status === 'unknown' || (status === 'signed-out' && !isPublic) || (status === 'signed-in' && isPublic)) {
    return (
      <main id="main" class="splash" aria-busy="true">
        <p class="muted">Loading…</p>
      </main>
    );
  }
  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <a href="/" class="brand">
          Task Manager
        </a>
        {status === 'signed-in' && <Nav path={path} />}
      </header>
      <main id="main">
        <Router>
          <Route path="/" component={Tasks} />
          <Route path="/task/:id" component={TaskDetail} />
          <Route path="/project" component={Projects} />
          <Route path="/project/:id" component={Project} />
          <Route path="/inbox" component={Inbox} />
          <Route path="/deleted" component={Trash} />
          <Route path="/profile" component={Profile} />
          <Route path="/sign-in" component={SignIn} />
          <Route path="/sign-up" component={SignUp} />
          <Route default component={NotFound} />
        </Router>
      </main>
    </>
  );
}

function Nav(props: { path: string }) {
  const count = unread.use();
  const current = (href: string) => (props.path === href ? 'page' : undefined);
  return (
    <nav aria-label="Main">
      <a href="/" aria-current={current('/')}>
        Tasks
      </a>
      <a href="/project" aria-current={current('/project')}>
        Projects
      </a>
      <a href="/inbox" aria-current={current('/inbox')}>
        Notifications
        {count !== null && count.count > 0 && (
          <span class="count" aria-label={`${count.count}${count.more ? ' or more' : ''} unread`}>
            {count.count}
            {count.more ? '+' : ''}
          </span>
        )}
      </a>
      <a href="/deleted" aria-current={current('/deleted')}>
        Trash
      </a>
      <a href="/profile" aria-current={current('/profile')}>
        Profile
      </a>
      <button type="button" class="button-secondary" onClick={() => void session.signOut().catch(() => {})}>
        Sign out
      </button>
    </nav>
  );
}

function NotFound() {
  return (
    <section>
      <ScreenTitle>Page not found</ScreenTitle>
      <p>
        <a href="/">Back to your tasks</a>
      </p>
    </section>
  );
}
