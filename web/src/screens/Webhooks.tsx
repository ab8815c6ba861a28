// A project's webhooks (API.md "v2 Webhooks", admin+), on the project's page: list, create,
// edit, enable/disable, rotate the secret, delete, ping, and each one's deliveries log.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, unwrap } from '../api/client';
import { idempotencyHeader } from '../api/idempotency';
import {
  type Delivery,
  EVENT_TYPES,
  type EventType,
  type Webhook,
  type WebhookWithSecret,
  formatDuration,
  sortEvents,
  urlError,
} from '../api/webhooks';
import type { Project } from '../api/teams';
import { ErrorMessage, Notice, SubmitButton, formatDate } from '../ui/components';
import { useAction, useIdempotent, useSubmit } from '../ui/useAction';
import { usePager } from '../ui/usePager';

const WEBHOOK_MESSAGES = {
  404: 'This webhook no longer exists. Reload the page.',
  409: 'The webhook is disabled: enable it first.',
};
/** While a delivery is pending, the log is read again this often, this many times. */
const POLL_MS = 1500;
const POLLS = 40;

interface ShownSecret {
  url: string;
  secret: string;
  rotated: boolean;
}

export function Webhooks(props: { project: Project }) {
  const { project } = props;
  const [generation, setGeneration] = useState(0);
  const list = usePager<Webhook>(
    (cursor) =>
      unwrap(
        api.GET('/projects/{project_id}/webhooks', {
          params: { path: { project_id: project.id }, query: { limit: 100, ...(cursor ? { cursor } : {}) } },
        }),
      ),
    `${project.id}:${generation}`,
  );
  const [secret, setSecret] = useState<ShownSecret | null>(null);
  const [adding, setAdding] = useState(false);
  const show = (webhook: WebhookWithSecret, rotated: boolean) =>
    setSecret({ url: webhook.url, secret: webhook.secret, rotated });

  return (
    <section aria-labelledby="webhooks-title">
      <h2 id="webhooks-title">Webhooks</h2>
      <p class="muted">
        This project's events are sent as signed POST requests to these URLs (see the API documentation for how to
        check a signature).
      </p>
      {secret && <SecretNotice shown={secret} onDone={() => setSecret(null)} />}
      <ErrorMessage error={list.error} action={{ label: 'Retry', run: () => setGeneration((n) => n + 1) }} />
      {!list.loading && list.items.length === 0 && !list.error && <p class="empty">No webhooks yet.</p>}
      {list.loading && <p class="muted">Loading…</p>}
      <ul class="webhook-list" aria-label="Webhooks">
        {list.items.map((webhook) => (
          <WebhookRow
            key={webhook.id}
            webhook={webhook}
            onChanged={(changed) => list.pager?.update(changed)}
            onRemoved={() => list.pager?.remove(webhook.id)}
            onSecret={(rotated) => show(rotated, true)}
          />
        ))}
      </ul>
      {!list.loading && !list.done && !list.error && (
        <button type="button" class="button-secondary" onClick={list.loadMore}>
          More webhooks
        </button>
      )}
      {adding ? (
        <WebhookForm
          title="Add a webhook"
          projectId={project.id}
          onCancel={() => setAdding(false)}
          onSaved={(created) => {
            setAdding(false);
            show(created as WebhookWithSecret, false);
            setGeneration((n) => n + 1);
          }}
        />
      ) : (
        <button type="button" onClick={() => setAdding(true)}>
          Add a webhook
        </button>
      )}
    </section>
  );
}

/** The secret, shown once: with a copy button, and saying it will not be shown again. */
function SecretNotice(props: { shown: ShownSecret; onDone: () => void }) {
  const { shown } = props;
  const [copied, setCopied] = useState<'yes' | 'failed' | null>(null);
  const field = useRef<HTMLInputElement>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), [shown.secret]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(shown.secret);
      setCopied('yes');
    } catch {
      field.current?.select();
      setCopied('failed');
    }
  };
  return (
    <div class="card stack secret-card" aria-labelledby="secret-title">
      <h3 id="secret-title" ref={heading} tabIndex={-1}>
        {shown.rotated ? 'New signing secret' : 'Webhook created: its signing secret'}
      </h3>
      <p>
        <strong>Copy it now: you will not see it again.</strong> Requests to <span class="url">{shown.url}</span>{' '}
        are signed with it{shown.rotated ? ' from now on; the old secret no longer works' : ''}.
      </p>
      <div class="row">
        <label class="grow">
          Signing secret
          <input ref={field} class="mono" readOnly value={shown.secret} onFocus={(e) => e.currentTarget.select()} />
        </label>
        <button type="button" onClick={() => void copy()}>
          Copy secret
        </button>
      </div>
      <p role="status" class="muted">
        {copied === 'yes' && 'Copied to the clipboard.'}
        {copied === 'failed' && 'Copying is not allowed here: the secret is selected, copy it with Ctrl+C.'}
      </p>
      <button type="button" class="button-secondary" onClick={props.onDone}>
        I have saved it
      </button>
    </div>
  );
}

function WebhookRow(props: {
  webhook: Webhook;
  onChanged: (webhook: Webhook) => void;
  onRemoved: () => void;
  onSecret: (webhook: WebhookWithSecret) => void;
}) {
  const { webhook } = props;
  const action = useAction();
  const [editing, setEditing] = useState(false);
  const [showLog, setShowLog] = useState(false);
  const [logGeneration, setLogGeneration] = useState(0);
  const [done, setDone] = useState('');
  const path = { params: { path: { project_id: webhook.project_id, webhook_id: webhook.id } } };
  const logId = `deliveries-${webhook.id}`;

  const run = (work: () => Promise<unknown>) => {
    setDone('');
    void action.run(work);
  };
  const setEnabled = (enabled: boolean) =>
    run(async () => {
      props.onChanged(await unwrap(api.PATCH('/projects/{project_id}/webhooks/{webhook_id}', { ...path, body: { enabled } })));
      setDone(enabled ? 'Enabled: waiting deliveries are sent again.' : 'Disabled: nothing is sent until it is enabled.');
    });
  const ping = () =>
    run(async () => {
      await unwrap(api.POST('/projects/{project_id}/webhooks/{webhook_id}/ping', path));
      setDone('Ping sent: see the deliveries below.');
      setShowLog(true);
      setLogGeneration((n) => n + 1);
    });
  const rotate = () => {
    if (!confirm(`Rotate the secret of ${webhook.url}? The old secret stops working at once.`)) return;
    run(async () => {
      props.onSecret(await unwrap(api.POST('/projects/{project_id}/webhooks/{webhook_id}/rotate-secret', path)));
    });
  };
  const remove = () => {
    if (!confirm(`Delete the webhook for ${webhook.url}? Its deliveries log goes with it.`)) return;
    run(async () => {
      await unwrap(api.DELETE('/projects/{project_id}/webhooks/{webhook_id}', path));
      props.onRemoved();
    });
  };

  if (editing) {
    return (
      <li class="webhook">
        <WebhookForm
          title={`Edit the webhook for ${webhook.url}`}
          projectId={webhook.project_id}
          webhook={webhook}
          onCancel={() => setEditing(false)}
          onSaved={(saved) => {
            setEditing(false);
            props.onChanged(saved);
            setDone('Saved.');
          }}
        />
      </li>
    );
  }
  return (
    <li class="webhook">
      <div class="webhook-head">
        <div class="task-main">
          <span class="task-title url">{webhook.url}</span>
          <p class="muted">
            <span class={webhook.enabled ? 'badge state-on' : 'badge state-off'}>
              {webhook.enabled ? 'enabled' : 'disabled'}
            </span>{' '}
            {webhook.events.join(', ')}
          </p>
          <p class="muted">
            Created {formatDate(webhook.created_at)}
            {webhook.last_delivery_at && <> · last delivery {formatDate(webhook.last_delivery_at)}</>}
            {webhook.consecutive_failures > 0 && <> · {webhook.consecutive_failures} failed in a row</>}
          </p>
        </div>
      </div>
      <div class="row item-actions" role="group" aria-label={`Actions for ${webhook.url}`}>
        <button type="button" class="button-secondary" disabled={action.busy} onClick={() => setEnabled(!webhook.enabled)}>
          {webhook.enabled ? 'Disable' : 'Enable'}
        </button>
        <button type="button" class="button-secondary" disabled={action.busy} onClick={() => setEditing(true)}>
          Edit
        </button>
        <button type="button" class="button-secondary" disabled={action.busy || !webhook.enabled} onClick={ping}>
          Ping
        </button>
        <button
          type="button"
          class="button-secondary"
          aria-expanded={showLog}
          aria-controls={logId}
          onClick={() => setShowLog(!showLog)}
        >
          Deliveries
        </button>
        <button type="button" class="button-secondary" disabled={action.busy} onClick={rotate}>
          Rotate secret
        </button>
        <button type="button" class="button-danger" disabled={action.busy} onClick={remove}>
          Delete
        </button>
      </div>
      <ErrorMessage error={action.error} messages={WEBHOOK_MESSAGES} />
      {done && <Notice>{done}</Notice>}
      <div id={logId}>{showLog && <Deliveries webhook={webhook} generation={logGeneration} />}</div>
    </li>
  );
}

/** Create (no `webhook`) or edit: URL and event types. A refused URL is shown on its field. */
function WebhookForm(props: {
  title: string;
  projectId: number;
  webhook?: Webhook;
  onCancel: () => void;
  onSaved: (webhook: Webhook | WebhookWithSecret) => void;
}) {
  const { webhook } = props;
  const [url, setUrl] = useState(webhook?.url ?? '');
  const [events, setEvents] = useState<EventType[]>(webhook ? sortEvents(webhook.events) : ['task.created', 'task.updated']);
  const [noEvents, setNoEvents] = useState(false);
  const once = useIdempotent();
  const idBase = `webhook-${webhook?.id ?? 'new'}`;
  const save = useSubmit(async () => {
    if (events.length === 0) {
      setNoEvents(true);
      return;
    }
    const path = { project_id: props.projectId };
    if (webhook) {
      const body = {
        ...(url !== webhook.url ? { url } : {}),
        ...(events.join() !== sortEvents(webhook.events).join() ? { events } : {}),
      };
      props.onSaved(
        await unwrap(
          api.PATCH('/projects/{project_id}/webhooks/{webhook_id}', {
            params: { path: { ...path, webhook_id: webhook.id } },
            body,
          }),
        ),
      );
    } else {
      const body = { url, events };
      props.onSaved(
        await once.run([path, body], (key) =>
          unwrap(api.POST('/projects/{project_id}/webhooks', { params: { path, header: idempotencyHeader(key) }, body })),
        ),
      );
    }
  });
  const fieldError = urlError(save.error);
  const toggle = (type: EventType, on: boolean) => {
    setNoEvents(false);
    setEvents(sortEvents(on ? [...events, type] : events.filter((e) => e !== type)));
  };
  return (
    <form class="card stack" onSubmit={save.submit} aria-labelledby={`${idBase}-title`}>
      <h3 id={`${idBase}-title`}>{props.title}</h3>
      <label>
        Payload URL
        <input
          type="url"
          name="url"
          required
          maxLength={2000}
          placeholder="https://example.com/hooks/tasks"
          value={url}
          aria-invalid={fieldError ? 'true' : undefined}
          aria-describedby={fieldError ? `${idBase}-url-error` : undefined}
          onInput={(e) => setUrl(e.currentTarget.value)}
        />
      </label>
      {fieldError && (
        <p class="field-error" id={`${idBase}-url-error`} role="alert">
          {fieldError}
        </p>
      )}
      <fieldset class="priorities events" aria-describedby={noEvents ? `${idBase}-events-error` : undefined}>
        <legend>Events</legend>
        {EVENT_TYPES.map((type) => (
          <label class="inline" key={type}>
            <input
              type="checkbox"
              name="events"
              value={type}
              checked={events.includes(type)}
              onChange={(e) => toggle(type, e.currentTarget.checked)}
            />
            {type}
          </label>
        ))}
      </fieldset>
      {noEvents && (
        <p class="field-error" id={`${idBase}-events-error`} role="alert">
          Choose at least one event.
        </p>
      )}
      {!fieldError && <ErrorMessage error={save.error} messages={WEBHOOK_MESSAGES} />}
      <div class="row">
        <SubmitButton busy={save.busy} label={webhook ? 'Save webhook' : 'Create webhook'} busyLabel="Saving…" />
        <button type="button" class="button-secondary" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** The deliveries log, newest first; read again while a delivery is pending (the list
 * stays on screen while it is read again: no flicker, no layout shift). */
function Deliveries(props: { webhook: Webhook; generation: number }) {
  const { webhook } = props;
  const [items, setItems] = useState<Delivery[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const polls = useRef(0);
  const load = useAction();
  const redeliver = useAction();
  const path = { project_id: webhook.project_id, webhook_id: webhook.id };
  const page = (after: string | null) =>
    unwrap(
      api.GET('/projects/{project_id}/webhooks/{webhook_id}/deliveries', {
        params: { path, query: { limit: 20, ...(after ? { cursor: after } : {}) } },
      }),
    );

  useEffect(() => {
    let cancelled = false;
    void load.run(async () => {
      const first = await page(null);
      if (cancelled) return;
      setItems(first.items);
      setCursor(first.next_cursor ?? null);
    });
    return () => {
      cancelled = true;
    };
  }, [webhook.id, props.generation, tick]);
  useEffect(() => {
    polls.current = 0;
  }, [props.generation]);
  const pending = (items ?? []).some((delivery) => delivery.status === 'pending');
  useEffect(() => {
    if (!pending || polls.current >= POLLS) return;
    const timer = setTimeout(() => {
      polls.current += 1;
      setTick((n) => n + 1);
    }, POLL_MS);
    return () => clearTimeout(timer);
  }, [pending, items]);

  const refresh = () => {
    polls.current = 0;
    setTick((n) => n + 1);
  };
  const older = () =>
    void load.run(async () => {
      const next = await page(cursor);
      setItems((current) => [...(current ?? []), ...next.items.filter((d) => !current?.some((c) => c.id === d.id))]);
      setCursor(next.next_cursor ?? null);
    });
  const again = (delivery: Delivery) =>
    void redeliver.run(async () => {
      await unwrap(
        api.POST('/projects/{project_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver', {
          params: { path: { ...path, delivery_id: delivery.id } },
        }),
      );
      refresh();
    });

  return (
    <section class="deliveries" aria-label={`Deliveries of ${webhook.url}`}>
      <div class="row toolbar">
        <h3>Deliveries</h3>
        <button type="button" class="button-secondary" disabled={load.busy} onClick={refresh}>
          Refresh
        </button>
      </div>
      <ErrorMessage error={load.error} action={{ label: 'Retry', run: refresh }} />
      <ErrorMessage error={redeliver.error} messages={WEBHOOK_MESSAGES} />
      {items === null && !load.error && <p class="muted">Loading…</p>}
      {items !== null && items.length === 0 && <p class="empty">Nothing delivered yet.</p>}
      <ul class="delivery-list" aria-label="Deliveries">
        {(items ?? []).map((delivery) => (
          <li class="delivery" key={delivery.id}>
            <div class="task-main">
              <p>
                <strong>{delivery.type}</strong>{' '}
                <span class={`badge delivery-${delivery.status}`}>{delivery.status}</span>{' '}
                <span class="muted">{formatDate(delivery.created_at)}</span>
              </p>
              <p class="muted">
                {delivery.attempts} {delivery.attempts === 1 ? 'attempt' : 'attempts'}
                {delivery.last_status_code !== null && <> · HTTP {delivery.last_status_code}</>}
                {delivery.duration_ms !== null && <> · {formatDuration(delivery.duration_ms)}</>}
                {delivery.next_attempt_at && <> · next attempt {formatDate(delivery.next_attempt_at)}</>} · event{' '}
                {delivery.event_id}
              </p>
              {delivery.last_error && <p class="muted clamp">Error: {delivery.last_error}</p>}
            </div>
            <button
              type="button"
              class="button-secondary"
              disabled={redeliver.busy || !webhook.enabled}
              onClick={() => again(delivery)}
            >
              Redeliver<span class="visually-hidden"> {delivery.type} of {formatDate(delivery.created_at)}</span>
            </button>
          </li>
        ))}
      </ul>
      {cursor !== null && (
        <button type="button" class="button-secondary" disabled={load.busy} onClick={older}>
          Older deliveries
        </button>
      )}
    </section>
  );
}
