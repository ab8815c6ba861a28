import { useState } from 'preact/hooks';
import { api, unwrap } from '../api/client';
import { ErrorMessage, Notice, ScreenTitle } from '../ui/components';
import { currentUser } from '../ui/state';

export function Profile() {
  const user = currentUser.use();
  return (
    <section>
      <ScreenTitle>Profile</ScreenTitle>
      {user && (
        <p>
          Signed in as <strong>{user.username}</strong>
        </p>
      )}
      {user && <EmailForm key={user.id} email={user.email ?? ''} />}
      <PasswordForm />
    </section>
  );
}

function EmailForm(props: { email: string }) {
  const [email, setEmail] = useState(props.email);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setSaved(false);
    try {
      const user = await unwrap(api.PATCH('/auth/me', { body: { email: email.trim() || null } }));
      currentUser.set(user);
      setSaved(true);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card stack" onSubmit={submit} aria-labelledby="email-title">
      <h2 id="email-title">E-mail</h2>
      <label>
        E-mail address
        <input
          type="email"
          name="email"
          autocomplete="email"
          value={email}
          onInput={(e) => setEmail(e.currentTarget.value)}
        />
      </label>
      <p class="hint">Leave it empty to remove it. Notifications are sent there when e-mail is on.</p>
      <ErrorMessage error={error} />
      {saved && <Notice>E-mail saved.</Notice>}
      <button type="submit" disabled={busy}>
        {busy ? 'Saving…' : 'Save e-mail'}
      </button>
    </form>
  );
}

function PasswordForm() {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setSaved(false);
    try {
      await unwrap(
        api.POST('/auth/me/password', {
          body: { current_password: current, new_password: next },
        }),
      );
      setCurrent('');
      setNext('');
      setSaved(true);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card stack" onSubmit={submit} aria-labelledby="password-title">
      <h2 id="password-title">Password</h2>
      <label>
        Current password
        <input
          type="password"
          name="current-password"
          autocomplete="current-password"
          required
          value={current}
          onInput={(e) => setCurrent(e.currentTarget.value)}
        />
      </label>
      <label>
        New password
        <input
          type="password"
          name="new-password"
          autocomplete="new-password"
          required
          minLength={8}
          maxLength={128}
          value={next}
          onInput={(e) => setNext(e.currentTarget.value)}
        />
      </label>
      <ErrorMessage error={error} />
      {saved && <Notice>Password changed. Your other sessions were signed out.</Notice>}
      <button type="submit" disabled={busy}>
        {busy ? 'Changing…' : 'Change password'}
      </button>
    </form>
  );
}
