// The task's history (API.md "v2 History"): who did what and when, oldest first, each
// changed field from -> to in words (web/src/api/history.ts).
import { api, unwrap } from '../api/client';
import { type HistoryContext, type TaskEvent, KIND_LABELS, describeChanges } from '../api/history';
import { type Project, personLabel, projectLabel } from '../api/teams';
import { ErrorMessage, formatDate } from '../ui/components';
import { projectById, projectsLoaded } from '../ui/teams';
import { usePager } from '../ui/usePager';

const PAGE_SIZE = 20;

export function History(props: {
  taskId: number;
  /** Changes when the task or its comments change: the history is read again. */
  changes: string;
  names: Map<number, string>;
  myId: number | null;
  projects: Project[];
}) {
  const list = usePager<TaskEvent>(
    (cursor) =>
      unwrap(
        api.GET('/tasks/{task_id}/history', {
          params: { path: { task_id: props.taskId }, query: { limit: PAGE_SIZE, ...(cursor ? { cursor } : {}) } },
        }),
      ),
    `${props.taskId}:${props.changes}`,
  );
  const context: HistoryContext = {
    names: props.names,
    myId: props.myId,
    projectName: (id) => projectLabel(projectById(props.projects, id), projectsLoaded()),
    formatDate,
  };
  return (
    <section class="history-section" aria-labelledby="history-title">
      <h2 id="history-title">History</h2>
      <ErrorMessage error={list.error} action={{ label: 'Retry', run: list.loadMore }} />
      {!list.loading && list.items.length === 0 && !list.error && <p class="empty">No history yet.</p>}
      <ol class="history" aria-label="History">
        {list.items.map((event) => (
          <HistoryItem key={event.id} event={event} context={context} />
        ))}
      </ol>
      <div class="load-more" aria-live="polite">
        {list.loading && <p class="muted">Loading…</p>}
        {!list.loading && !list.done && !list.error && (
          <button type="button" class="button-secondary" onClick={list.loadMore}>
            Show more history
          </button>
        )}
      </div>
    </section>
  );
}

function HistoryItem(props: { event: TaskEvent; context: HistoryContext }) {
  const { event, context } = props;
  const who = personLabel(event.actor_id, context.names, context.myId);
  const changes = describeChanges(event, context);
  return (
    <li class="history-item">
      <p>
        <strong>{event.actor_id === null ? 'A deleted account' : who === 'you' ? 'You' : who}</strong>{' '}
        {KIND_LABELS[event.kind] ?? event.kind}{' '}
        <time class="muted" dateTime={event.created_at}>
          {formatDate(event.created_at)}
        </time>
      </p>
      {changes.length > 0 && (
        <ul class="changes">
          {changes.map((change) => (
            <li key={change.field}>
              <span class="change-field">{change.label}:</span>{' '}
              {change.from !== null && (
                <>
                  <del>{change.from}</del> →{' '}
                </>
              )}
              <ins>{change.to}</ins>
            </li>
          ))}
        </ul>
      )}
    </li>
  );
}
