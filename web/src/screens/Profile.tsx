import { useState } from 'preact/hooks';
import { api, unwrap } from '../api/client';
import { ErrorMessage, Notice, ScreenTitle, SubmitButton, TextField } from '../ui/components';
import { currentUser } from '../ui/state';
import { useSubmit } from '../ui/useAction';

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
  const [saved, setSaved] = useState(false);
  const { busy, error, submit } = useSubmit(async () => {
    setSaved(false);
    const user = await unwrap(api.PATCH('/auth/me', { body: { email: email.trim() || null } }));
    currentUser.set(user);
    setSaved(true);
  });
  return (
    <form class="card stack" onSubmit={submit} aria-labelledby="email-title">
      <h2 id="email-title">E-mail</h2>
      <TextField
        label="E-mail address"
        type="email"
        name="email"
        autocomplete="email"
        value={email}
        onValue={setEmail}
      />
      <p class="hint">Leave it empty to remove it. Notifications are sent there when e-mail is on.</p>
      <ErrorMessage error={error} />
      {saved && <Notice>E-mail saved.</Notice>}
      <SubmitButton busy={busy} label="Save e-mail" busyLabel="Saving…" />
    </form>
  );
}

function PasswordForm() {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [saved, setSaved] = useState(false);
  const { busy, error, submit } = useSubmit(async () => {
    setSaved(false);
    await unwrap(
      api.POST('/auth/me/password', {
        body: { current_password: current, new_password: next },
      }),
    );
    setCurrent('');
    setNext('');
    setSaved(true);
  });
  return (
    <form class="card stack" onSubmit={submit} aria-labelledby="password-title">
      <h2 id="password-title">Password</h2>
      <TextField
        label="Current password"
        type="password"
        name="current-password"
        autocomplete="current-password"
        required
        value={current}
        onValue={setCurrent}
      />
      <TextField
        label="New password"
        type="password"
        name="new-password"
        autocomplete="new-password"
        required
        minLength={8}
        maxLength={128}
        value={next}
        onValue={setNext}
      />
      <ErrorMessage error={error} />
      {saved && <Notice>Password changed. Your other sessions were signed out.</Notice>}
      <SubmitButton busy={busy} label="Change password" busyLabel="Changing…" />
    </form>
  );
}
