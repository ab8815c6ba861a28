import { useEffect, useRef, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { type Comment, type Priority, type Schemas, type Task, api, ifMatch, unwrap } from '../api/client';
import { ApiError } from '../api/errors';
import { type Member, type Project, type Role, can, personLabel, projectLabel } from '../api/teams';
import {
  ErrorMessage,
  LoadMore,
  ScreenTitle,
  SubmitButton,
  TagList,
  formatDate,
  fromLocalInput,
  parseTags,
  toLocalInput,
  TextField,
} from '../ui/components';
import { countUnread, currentUser } from '../ui/state';
import { justTrashed } from '../ui/trash';
import {
  loadProjects,
  namesOf,
  projectById,
  projectsError,
  projectsLoaded,
  useFreshProjects,
  useMembers,
  useProjects,
} from '../ui/teams';
import { useAction, useIdempotent, useSubmit } from '../ui/useAction';
import { idempotencyHeader } from '../api/idempotency';
import { AssigneeSelect, ChoiceOptions, ProjectOptions } from '../ui/options';
import { usePager } from '../ui/usePager';
import { PRIORITIES } from './Tasks';
import { History } from './History';

type Detail = Schemas['TaskDetail'];

const TASK_CHANGED =
  'This task was changed by someone else since you opened it. Your changes were not saved. Reload to see the latest version.';

export function TaskDetail(props: { id?: string }) {
  const taskId = Number(props.id);
  const [task, setTask] = useState<Detail | null>(null);
  const me = currentUser.use();
  const projects = useProjects();
  const project = projectById(projects, task?.project_id);
  useFreshProjects(projects, task?.project_id);
  const projectsProblem = projectsError.use();
  const members = useMembers(task ? [task.project_id] : []);
  const names = namesOf(members.values());
  const [loadError, setLoadError] = useState<unknown>(null);
  const [generation, setGeneration] = useState(0);
  // Kept here: a save gives a new version, and the editor starts over from it.
  const [justSaved, setJustSaved] = useState(false);
  // Comments are events of the history too (the task's version stays).
  const [commentChanges, setCommentChanges] = useState(0);

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
    setTask((current) => ({ ...updated, following: current?.following ?? false }));
  };

  return (
    <section>
      <p>
        <a href="/">← All tasks</a>
      </p>
      <ScreenTitle>{task ? task.title : 'Task'}</ScreenTitle>
      <ErrorMessage error={loadError} action={{ label: 'Retry', run: reload }} />
      {!task && !loadError && <p class="muted">Loading…</p>}
      {/* Without its project the screen cannot tell what your role lets you do. */}
      {task && !project && (
        <ErrorMessage error={projectsProblem} action={{ label: 'Retry', run: () => void loadProjects(true).catch(() => {}) }} />
      )}
      {task && (
        <p class="muted task-context">
          In <a href={`/project/${task.project_id}`}>{projectLabel(project, projectsLoaded())}</a>
          {project && !project.is_inbox && <> · your role: {project.role}</>} · assigned to{' '}
          {personLabel(task.assignee_id, names, me?.id ?? null)}
        </p>
      )}
      {task && <Follow task={task} onChange={(following) => setTask({ ...task, following })} />}
      {task && project && can.editTasks(project.role) && (
        <TaskEditor
          key={`${task.id}:${task.version}`}
          task={task}
          projects={projects}
          members={members.get(task.project_id) ?? []}
          justSaved={justSaved}
          onSaved={saved}
          onReload={reload}
        />
      )}
      {task && project && !can.editTasks(project.role) && <TaskSummary task={task} />}
      {task && (
        <Comments
          taskId={task.id}
          role={project?.role ?? null}
          names={names}
          onChanged={() => setCommentChanges((n) => n + 1)}
        />
      )}
      {task && (
        <History
          taskId={task.id}
          changes={`${task.version}:${commentChanges}`}
          names={names}
          myId={me?.id ?? null}
          projects={projects}
        />
      )}
    </section>
  );
}

/** Follow or stop following: notifications of a shared task go to its followers. */
function Follow(props: { task: Detail; onChange: (following: boolean) => void }) {
  const { task } = props;
  const action = useAction();
  const toggle = () =>
    void action.run(async () => {
      const params = { params: { path: { task_id: task.id } } };
      await unwrap(task.following ? api.DELETE('/tasks/{task_id}/follow', params) : api.PUT('/tasks/{task_id}/follow', params));
      props.onChange(!task.following);
    });
  return (
    <div class="row follow">
      <button type="button" class="button-secondary" aria-pressed={task.following} disabled={action.busy} onClick={toggle}>
        {task.following ? 'Following' : 'Follow'}
      </button>
      <span class="muted">
        {task.following ? 'You are told of its changes and comments.' : 'Follow to be told of its changes and comments.'}
      </span>
      <ErrorMessage error={action.error} />
    </div>
  );
}

/** The task as a viewer or commenter sees it: no controls they may not use. */
function TaskSummary(props: { task: Task }) {
  const { task } = props;
  return (
    <div class="card stack" aria-label="Task">
      <p class="muted">
        Created {formatDate(task.created_at)} · version {task.version}
        {task.completed ? ' · completed' : ' · open'}
      </p>
      {task.description ? <p class="description">{task.description}</p> : <p class="muted">No description.</p>}
      <div class="task-meta">
        <span class={`badge priority-${task.priority}`}>{task.priority}</span>
        {task.due_at && <span>Due {formatDate(task.due_at)}</span>}
        <TagList tags={task.tags} />
      </div>
    </div>
  );
}

function TaskEditor(props: {
  task: Task;
  projects: Project[];
  members: Member[];
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
  const [projectId, setProjectId] = useState(task.project_id);
  const [assignee, setAssignee] = useState<number | null>(task.assignee_id);
  // A move needs editor+ in the target too; the assignee must be a member there.
  const targets = props.projects.filter((p) => can.editTasks(p.role));
  const targetMembers = useMembers(projectId !== task.project_id ? [projectId] : []).get(projectId);
  const candidates = projectId === task.project_id ? props.members : (targetMembers ?? []);
  useEffect(() => {
    // Kept only if a member of the target too (the server would refuse it: 422).
    if (targetMembers && assignee !== null && !targetMembers.some((m) => m.user_id === assignee)) setAssignee(null);
  }, [targetMembers]);
  const { busy, error, run, submit: save } = useSubmit(async () => {
    // Only what changed, and only if nobody changed the task since it was read.
    const dueAt = fromLocalInput(due);
    const body = {
      ...(title !== task.title ? { title } : {}),
      ...(description !== task.description ? { description } : {}),
      ...(priority !== task.priority ? { priority } : {}),
      ...(dueAt !== (task.due_at ? new Date(task.due_at).toISOString() : null) ? { due_at: dueAt } : {}),
      ...(parseTags(tags).join(',') !== task.tags.join(',') ? { tags: parseTags(tags) } : {}),
      ...(completed !== task.completed ? { completed } : {}),
      ...(projectId !== task.project_id ? { project_id: projectId } : {}),
      ...(assignee !== task.assignee_id ? { assignee_id: assignee } : {}),
    };
    const updated = await unwrap(
      api.PATCH('/tasks/{task_id}', {
        params: { path: { task_id: task.id }, header: { 'if-match': ifMatch(task) } },
        body,
      }),
    );
    props.onSaved(updated);
    void countUnread();
  });
  const conflict = error instanceof ApiError && error.status === 412;

  const remove = () => {
    if (!confirm(`Move “${task.title}” to the trash? It can be restored from there with its comments.`)) return;
    void run(async () => {
      await unwrap(
        api.DELETE('/tasks/{task_id}', {
          params: { path: { task_id: task.id }, header: { 'if-match': ifMatch(task) } },
        }),
      );
      justTrashed.set({ id: task.id, title: task.title });
      route('/');
    });
  };

  return (
    <form class="card stack" onSubmit={save} aria-label="Edit task">
      <p class="muted">
        Created {formatDate(task.created_at)} · version {task.version}
        {task.completed_at && <> · completed {formatDate(task.completed_at)}</>}
      </p>
      <TextField label="Title" name="title" required maxLength={200} value={title} onValue={setTitle} />
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
            <ChoiceOptions values={PRIORITIES} />
          </select>
        </label>
        <TextField label="Due" type="datetime-local" name="due" value={due} onValue={setDue} />
        <TextField label="Tags" class="grow" name="tags" value={tags} onValue={setTags} />
      </div>
      <div class="row">
        <label class="grow">
          Project
          <select
            name="project"
            value={String(projectId)}
            onChange={(e) => {
              const target = Number(e.currentTarget.value);
              setProjectId(target);
            }}
          >
            <ProjectOptions projects={targets} />
          </select>
        </label>
        <AssigneeSelect class="grow" members={candidates} value={assignee} onChange={setAssignee} />
      </div>
      <label class="inline">
        <input type="checkbox" name="completed" checked={completed} onChange={(e) => setCompleted(e.currentTarget.checked)} />
        Completed
      </label>
      <ErrorMessage
        error={error}
        messages={{ 412: TASK_CHANGED }}
        action={conflict ? { label: 'Reload', run: props.onReload } : undefined}
      />
      {props.justSaved && !error && (
        <p class="alert alert-info" role="status">
          Saved.
        </p>
      )}
      <div class="row">
        <SubmitButton busy={busy} label="Save changes" busyLabel="Saving…" />
        <button type="button" class="button-danger" disabled={busy} onClick={remove}>
          Delete task
        </button>
      </div>
    </form>
  );
}

function Comments(props: { taskId: number; role: Role | null; names: Map<number, string>; onChanged: () => void }) {
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
  const change = useAction();
  const once = useIdempotent();
  const post = useSubmit(async () => {
    const comment = await once.run([props.taskId, text], (key) =>
      unwrap(
        api.POST('/tasks/{task_id}/comments', {
          params: { path: { task_id: props.taskId }, header: idempotencyHeader(key) },
          body: { text },
        }),
      ),
    );
    setText('');
    // Oldest first: the new one is last; loaded with the next page, or added now if every
    // page is in.
    if (list.done) list.pager?.append(comment);
    props.onChanged();
    void countUnread();
  });

  const path = (comment: Comment) => ({ params: { path: { task_id: props.taskId, comment_id: comment.id } } });
  const remove = (comment: Comment) =>
    void change.run(async () => {
      await unwrap(api.DELETE('/tasks/{task_id}/comments/{comment_id}', path(comment)));
      list.pager?.remove(comment.id);
      props.onChanged();
    });
  const edit = (comment: Comment, newText: string) =>
    change.run(async () => {
      const updated = await unwrap(
        api.PATCH('/tasks/{task_id}/comments/{comment_id}', { ...path(comment), body: { text: newText } }),
      );
      list.pager?.update(updated);
    });

  return (
    <section aria-labelledby="comments-title">
      <h2 id="comments-title">Comments</h2>
      <ErrorMessage error={list.error} action={{ label: 'Retry', run: list.loadMore }} />
      <ErrorMessage error={change.error} />
      {!list.loading && list.items.length === 0 && !list.error && <p class="empty">No comments yet.</p>}
      <ul class="comment-list" aria-label="Comments">
        {list.items.map((comment) => (
          <CommentItem
            key={comment.id}
            comment={comment}
            author={comment.author_id === me?.id ? 'You' : personLabel(comment.author_id, props.names, null)}
            mayEdit={comment.author_id === me?.id}
            mayDelete={can.deleteComment(props.role, comment.author_id === me?.id)}
            busy={change.busy}
            onEdit={(newText) => edit(comment, newText)}
            onDelete={() => remove(comment)}
          />
        ))}
      </ul>
      <LoadMore loading={list.loading} done={list.done || !!list.error} onMore={list.loadMore} label="Older comments" />
      {can.comment(props.role) ? (
        <form class="stack" onSubmit={post.submit}>
          <label>
            Add a comment
            <textarea name="comment" rows={3} required maxLength={500} value={text} onInput={(e) => setText(e.currentTarget.value)} />
          </label>
          <ErrorMessage error={post.error} />
          <SubmitButton busy={post.busy} label="Post comment" busyLabel="Posting…" />
        </form>
      ) : (
        props.role !== null && <p class="muted">Your role ({props.role}) lets you read comments, not write them.</p>
      )}
    </section>
  );
}

function CommentItem(props: {
  comment: Comment;
  author: string;
  mayEdit: boolean;
  mayDelete: boolean;
  busy: boolean;
  onEdit: (text: string) => Promise<boolean>;
  onDelete: () => void;
}) {
  const { comment } = props;
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(comment.text);
  const short = comment.text.slice(0, 40);
  // Keyboard users keep their place: into the text when editing starts, back to Edit after.
  const field = useRef<HTMLTextAreaElement>(null);
  const editButton = useRef<HTMLButtonElement>(null);
  const wasEditing = useRef(false);
  useEffect(() => {
    if (editing) field.current?.focus();
    else if (wasEditing.current) editButton.current?.focus();
    wasEditing.current = editing;
  }, [editing]);
  const save = async (event: Event) => {
    event.preventDefault();
    if (await props.onEdit(text)) setEditing(false);
  };
  if (editing) {
    return (
      <li class="comment">
        <form class="stack" onSubmit={save} onKeyDown={(e) => e.key === 'Escape' && setEditing(false)}>
          <label>
            Edit your comment
            <textarea ref={field} rows={3} required maxLength={500} value={text} onInput={(e) => setText(e.currentTarget.value)} />
          </label>
          <div class="row">
            <button type="submit" disabled={props.busy}>
              Save comment
            </button>
            <button type="button" class="button-secondary" onClick={() => setEditing(false)}>
              Cancel
            </button>
          </div>
        </form>
      </li>
    );
  }
  return (
    <li class="comment">
      <p>{comment.text}</p>
      <p class="muted">
        {props.author} · {formatDate(comment.created_at)}
        {comment.edited_at && <span title={`Edited ${formatDate(comment.edited_at)}`}> · edited</span>}
        {props.mayEdit && (
          <button
            type="button"
            ref={editButton}
            class="link-button"
            aria-label={`Edit comment: ${short}`}
            onClick={() => {
              setText(comment.text);
              setEditing(true);
            }}
          >
            Edit
          </button>
        )}
        {props.mayDelete && (
          <button
            type="button"
            class="link-button"
            aria-label={`Delete comment: ${short}`}
            disabled={props.busy}
            onClick={props.onDelete}
          >
            Delete
          </button>
        )}
      </p>
    </li>
  );
}
