import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, session, unwrap } from '../api/client';
import { ErrorMessage, Notice, ScreenTitle, SubmitButton, TextField } from '../ui/components';
import { useSession } from '../ui/state';
import { useSubmit } from '../ui/useAction';

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
        <TextField
          label="Username"
          name="username"
          autocomplete="username"
          required
          value={username}
          onValue={setUsername}
        />
        <TextField
          label="Password"
          name="password"
          type="password"
          autocomplete="current-password"
          required
          value={password}
          onValue={setPassword}
        />
        <ErrorMessage error={error} />
        <SubmitButton busy={busy} label="Sign in" busyLabel="Signing in…" />
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
        <TextField
          label="Username"
          name="username"
          autocomplete="username"
          required
          minLength={3}
          maxLength={50}
          pattern="[A-Za-z0-9_.\-]+"
          aria-describedby="username-hint"
          value={username}
          onValue={setUsername}
        />
        <p id="username-hint" class="hint">
          3–50 letters, digits, <code>_</code> <code>.</code> or <code>-</code>
        </p>
        <TextField
          label="E-mail (optional)"
          name="email"
          type="email"
          autocomplete="email"
          value={email}
          onValue={setEmail}
        />
        <TextField
          label="Password"
          name="password"
          type="password"
          autocomplete="new-password"
          required
          minLength={8}
          maxLength={128}
          aria-describedby="password-hint"
          value={password}
          onValue={setPassword}
        />
        <p id="password-hint" class="hint">
          At least 8 characters
        </p>
        <ErrorMessage error={error} />
        <SubmitButton busy={busy} label="Create account" busyLabel="Creating your account…" />
      </form>
      <p>
        Already have an account? <a href="/sign-in">Sign in</a>
      </p>
    </section>
  );
}
