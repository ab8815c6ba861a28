import { useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { type Comment, type Priority, type Task, api, ifMatch, unwrap } from '../api/client';
import { ApiError } from '../api/errors';
import {
  ErrorMessage,
  LoadMore,
  ScreenTitle,
  formatDate,
  fromLocalInput,
  parseTags,
  toLocalInput,
} from '../ui/components';
import { countUnread, currentUser } from '../ui/state';
import { usePager } from '../ui/usePager';
import { PRIORITIES } from './Tasks';

export function TaskDetail(props: { id?: string }) {
  const taskId = Number(props.id);
  const [task, setTask] = useState<Task | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [generation, setGeneration] = useState(0);
  // Kept here: a save gives a new version, and the editor starts over from it.
  const [justSaved, setJustSaved] = useState(false);

  useEffect(() => {
    let cancelled = false;
    setLoadError(null);
    unwrap(api.GET('/tasks/{task_id}', { params: { path: { task_id: taskId } } }))
      .then((loaded) => !cancelled && setTask(loaded))
      .catch((error) => !cancelled && setLoadError(error));
    return () => {
      cancelled = true;
    };
  }, [taskId, generation]);

  const reload = () => {
    setJustSaved(false);
    setGeneration((n) => n + 1);
  };
  const saved = (updated: Task) => {
    setJustSaved(true);
    setTask(updated);
  };

  return (
    <section>
      <p>
        <a href="/">← All tasks</a>
      </p>
      <ScreenTitle>{task ? task.title : 'Task'}</ScreenTitle>
      <ErrorMessage error={loadError} action={{ label: 'Retry', run: reload }} />
      {!task && !loadError && <p class="muted">Loading…</p>}
      {task && (
        <TaskEditor
          key={`${task.id}:${task.version}`}
          task={task}
          justSaved={justSaved}
          onSaved={saved}
          onReload={reload}
        />
      )}
      {task && <Comments taskId={task.id} />}
    </section>
  );
}

function TaskEditor(props: {
  task: Task;
  justSaved: boolean;
  onSaved: (task: Task) => void;
  onReload: () => void;
}) {
  const { task } = props;
  const { route } = useLocation();
  const [title, setTitle] = useState(task.title);
  const [description, setDescription] = useState(task.description);
  const [priority, setPriority] = useState<Priority>(task.priority);
  const [due, setDue] = useState(toLocalInput(task.due_at));
  const [tags, setTags] = useState(task.tags.join(', '));
  const [completed, setCompleted] = useState(task.completed);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const conflict = error instanceof ApiError && error.status === 412;

  const save = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      // Only what changed, and only if nobody changed the task since it was read.
      const dueAt = fromLocalInput(due);
      const body = {
        ...(title !== task.title ? { title } : {}),
        ...(description !== task.description ? { description } : {}),
        ...(priority !== task.priority ? { priority } : {}),
        ...(dueAt !== (task.due_at ? new Date(task.due_at).toISOString() : null) ? { due_at: dueAt } : {}),
        ...(parseTags(tags).join(',') !== task.tags.join(',') ? { tags: parseTags(tags) } : {}),
        ...(completed !== task.completed ? { completed } : {}),
      };
      const updated = await unwrap(
        api.PATCH('/tasks/{task_id}', {
          params: { path: { task_id: task.id }, header: { 'if-match': ifMatch(task) } },
          body,
        }),
      );
      props.onSaved(updated);
      void countUnread();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    if (!confirm(`Delete “${task.title}”? Its comments go with it.`)) return;
    setBusy(true);
    setError(null);
    try {
      await unwrap(
        api.DELETE('/tasks/{task_id}', {
          params: { path: { task_id: task.id }, header: { 'if-match': ifMatch(task) } },
        }),
      );
      route('/');
    } catch (caught) {
      setError(caught);
      setBusy(false);
    }
  };

  return (
    <form class="card stack" onSubmit={save} aria-label="Edit task">
      <p class="muted">
        Created {formatDate(task.created_at)} · version {task.version}
        {task.completed_at && <> · completed {formatDate(task.completed_at)}</>}
      </p>
      <label>
        Title
        <input name="title" required maxLength={200} value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
      </label>
      <label>
        Description
        <textarea
          name="description"
          rows={4}
          maxLength={10000}
          value={description}
          onInput={(e) => setDescription(e.currentTarget.value)}
        />
      </label>
      <div class="row">
        <label>
          Priority
          <select name="priority" value={priority} onChange={(e) => setPriority(e.currentTarget.value as Priority)}>
            {PRIORITIES.map((p) => (
              <option value={p} key={p}>
                {p}
              </option>
            ))}
          </select>
        </label>
        <label>
          Due
          <input type="datetime-local" name="due" value={due} onInput={(e) => setDue(e.currentTarget.value)} />
        </label>
        <label class="grow">
          Tags
          <input name="tags" value={tags} onInput={(e) => setTags(e.currentTarget.value)} />
        </label>
      </div>
      <label class="inline">
        <input type="checkbox" name="completed" checked={completed} onChange={(e) => setCompleted(e.currentTarget.checked)} />
        Completed
      </label>
      {conflict ? (
        <div class="alert alert-error" role="alert">
          <span>
            This task was changed by someone else since you opened it. Your changes were not
            saved. Reload to see the latest version.
          </span>
          <button type="button" class="button-secondary" onClick={props.onReload}>
            Reload
          </button>
        </div>
      ) : (
        <ErrorMessage error={error} />
      )}
      {props.justSaved && !error && (
        <p class="alert alert-info" role="status">
          Saved.
        </p>
      )}
      <div class="row">
        <button type="submit" disabled={busy}>
          {busy ? 'Saving…' : 'Save changes'}
        </button>
        <button type="button" class="button-danger" disabled={busy} onClick={() => void remove()}>
          Delete task
        </button>
      </div>
    </form>
  );
}

function Comments(props: { taskId: number }) {
  const me = currentUser.use();
  const list = usePager<Comment>(
    (cursor) =>
      unwrap(
        api.GET('/tasks/{task_id}/comments', {
          params: { path: { task_id: props.taskId }, query: { limit: 50, ...(cursor ? { cursor } : {}) } },
        }),
      ),
    String(props.taskId),
  );
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const add = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const comment = await unwrap(
        api.POST('/tasks/{task_id}/comments', { params: { path: { task_id: props.taskId } }, body: { text } }),
      );
      // Oldest first: the new one is last; loaded with the next page, or added now if every
      // page is in.
      if (list.done) list.pager?.append(comment);
      setText('');
      void countUnread();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  const remove = async (comment: Comment) => {
    setError(null);
    try {
      await unwrap(
        api.DELETE('/tasks/{task_id}/comments/{comment_id}', {
          params: { path: { task_id: props.taskId, comment_id: comment.id } },
        }),
      );
      list.pager?.remove(comment.id);
    } catch (caught) {
      setError(caught);
    }
  };

  return (
    <section aria-labelledby="comments-title">
      <h2 id="comments-title">Comments</h2>
      <ErrorMessage error={list.error} action={{ label: 'Retry', run: list.loadMore }} />
      {!list.loading && list.items.length === 0 && !list.error && <p class="empty">No comments yet.</p>}
      <ul class="comment-list" aria-label="Comments">
        {list.items.map((comment) => (
          <li class="comment" key={comment.id}>
            <p>{comment.text}</p>
            <p class="muted">
              {comment.author_id === me?.id ? 'You' : `User ${comment.author_id}`} · {formatDate(comment.created_at)}
              {comment.author_id === me?.id && (
                <button
                  type="button"
                  class="link-button"
                  aria-label={`Delete comment: ${comment.text.slice(0, 40)}`}
                  onClick={() => void remove(comment)}
                >
                  Delete
                </button>
              )}
            </p>
          </li>
        ))}
      </ul>
      <LoadMore loading={list.loading} done={list.done || !!list.error} onMore={list.loadMore} label="Older comments" />
      <form class="stack" onSubmit={add}>
        <label>
          Add a comment
          <textarea name="comment" rows={3} required maxLength={500} value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </label>
        <ErrorMessage error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Posting…' : 'Post comment'}
        </button>
      </form>
    </section>
  );
}
