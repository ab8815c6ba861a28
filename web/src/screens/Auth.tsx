import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, session, unwrap } from '../api/client';
import { ErrorMessage, Notice, ScreenTitle } from '../ui/components';
import { useSession } from '../ui/state';

function useSubmit(action: () => Promise<void>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, submit };
}

export function SignIn() {
  const { route } = useLocation();
  const { reason } = useSession();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const { busy, error, submit } = useSubmit(async () => {
    await session.signIn(username, password);
    route('/', true);
  });
  return (
    <section class="auth-card">
      <ScreenTitle>Sign in</ScreenTitle>
      {reason && <Notice>{reason}</Notice>}
      <form onSubmit={submit} class="stack">
        <label>
          Username
          <input
            name="username"
            autocomplete="username"
            required
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autocomplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <ErrorMessage error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <p>
        New here? <a href="/sign-up">Create an account</a>
      </p>
    </section>
  );
}

export function SignUp() {
  const { route } = useLocation();
  const [username, setUsername] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const { busy, error, submit } = useSubmit(async () => {
    await unwrap(
      api.POST('/auth/register', {
        body: { username, password, ...(email ? { email } : {}) },
      }),
    );
    await session.signIn(username, password);
    route('/', true);
  });
  return (
    <section class="auth-card">
      <ScreenTitle>Create an account</ScreenTitle>
      <form onSubmit={submit} class="stack">
        <label>
          Username
          <input
            name="username"
            autocomplete="username"
            required
            minLength={3}
            maxLength={50}
            pattern="[A-Za-z0-9_.\-]+"
            aria-describedby="username-hint"
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
          />
        </label>
        <p id="username-hint" class="hint">
          3–50 letters, digits, <code>_</code> <code>.</code> or <code>-</code>
        </p>
        <label>
          E-mail (optional)
          <input
            name="email"
            type="email"
            autocomplete="email"
            value={email}
            onInput={(e) => setEmail(e.currentTarget.value)}
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autocomplete="new-password"
            required
            minLength={8}
            maxLength={128}
            aria-describedby="password-hint"
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <p id="password-hint" class="hint">
          At least 8 characters
        </p>
        <ErrorMessage error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Creating your account…' : 'Create account'}
        </button>
      </form>
      <p>
        Already have an account? <a href="/sign-in">Sign in</a>
      </p>
    </section>
  );
}
