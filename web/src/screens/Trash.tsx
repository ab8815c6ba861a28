// The trash (API.md "v2 Trash"): deleted tasks of the projects where I am editor+, newest
// deletion first. Restore puts one back; Delete forever (admin+, or whoever deleted it).
import { useState } from 'preact/hooks';
import { type Schemas, api, unwrap } from '../api/client';
import { type Project, atLeast, personLabel, projectLabel } from '../api/teams';
import { ErrorMessage, LoadMore, Notice, ScreenTitle, formatDate } from '../ui/components';
import { currentUser } from '../ui/state';
import { RESTORE_MESSAGES, justTrashed, restoreTask } from '../ui/trash';
import { namesOf, projectById, projectsLoaded, useMembers, useProjects } from '../ui/teams';
import { useAction } from '../ui/useAction';
import { usePager } from '../ui/usePager';

type Trashed = Schemas['TrashedTaskRead'];

const PURGE_MESSAGES = {
  403: 'Only an admin of its project, or whoever deleted it, can delete it for good.',
  404: 'It is no longer in the trash: restored or deleted for good meanwhile.',
};

export function Trash() {
  const me = currentUser.use();
  const projects = useProjects();
  const list = usePager<Trashed>(
    (cursor) => unwrap(api.GET('/trash', { params: { query: { limit: 50, ...(cursor ? { cursor } : {}) } } })),
    'trash',
  );
  const members = useMembers([...new Set(list.items.map((task) => task.project_id))]);
  const names = namesOf(members.values());
  const [done, setDone] = useState<{ text: string; taskId?: number } | null>(null);

  return (
    <section>
      <ScreenTitle>Trash</ScreenTitle>
      <p class="muted">
        Deleted tasks of the projects where you are an editor or more, with their comments and history. Unless
        restored, they are deleted for good some time after (30 days, unless the server is set otherwise).
      </p>
      {done && (
        <Notice>
          {done.text} {done.taskId !== undefined && <a href={`/task/${done.taskId}`}>Open it</a>}
        </Notice>
      )}
      <ErrorMessage error={list.error} action={{ label: 'Retry', run: list.loadMore }} />
      {!list.loading && list.items.length === 0 && !list.error && <p class="empty">The trash is empty.</p>}
      <ul class="trash-list" aria-label="Deleted tasks">
        {list.items.map((task) => (
          <TrashRow
            key={task.id}
            task={task}
            project={projectById(projects, task.project_id)}
            deletedBy={personLabel(task.deleted_by, names, me?.id ?? null)}
            myId={me?.id ?? null}
            onRestored={() => {
              list.pager?.remove(task.id);
              if (justTrashed.get()?.id === task.id) justTrashed.set(null);
              setDone({ text: `“${task.title}” is back in its project.`, taskId: task.id });
            }}
            onPurged={() => {
              list.pager?.remove(task.id);
              setDone({ text: `“${task.title}” was deleted for good.` });
            }}
          />
        ))}
      </ul>
      <LoadMore loading={list.loading} done={list.done || !!list.error} onMore={list.loadMore} label="More deleted tasks" />
    </section>
  );
}

function TrashRow(props: {
  task: Trashed;
  project: Project | undefined;
  deletedBy: string;
  myId: number | null;
  onRestored: () => void;
  onPurged: () => void;
}) {
  const { task, project } = props;
  const restore = useAction();
  const purge = useAction();
  // The server decides; this only hides a button that would surely get a 403.
  const mayPurge = task.deleted_by === props.myId || !project || atLeast(project.role, 'admin');
  const busy = restore.busy || purge.busy;
  const doRestore = () =>
    void restore.run(async () => {
      purge.setError(null);
      await restoreTask(task.id);
      props.onRestored();
    });
  const doPurge = () => {
    if (!confirm(`Delete “${task.title}” for good? Its comments and history go with it; this cannot be undone.`)) return;
    void purge.run(async () => {
      restore.setError(null);
      await unwrap(api.DELETE('/trash/{task_id}', { params: { path: { task_id: task.id } } }));
      props.onPurged();
    });
  };
  return (
    <li class="trash-item">
      <div class="task-main">
        <span class="task-title">{task.title}</span>
        <p class="muted">
          In {projectLabel(project, projectsLoaded())} · deleted {formatDate(task.deleted_at)} by {props.deletedBy}
        </p>
        <ErrorMessage error={restore.error} messages={RESTORE_MESSAGES} />
        <ErrorMessage error={purge.error} messages={PURGE_MESSAGES} />
      </div>
      <div class="row item-actions">
        <button type="button" disabled={busy} onClick={doRestore}>
          Restore<span class="visually-hidden"> {task.title}</span>
        </button>
        {mayPurge && (
          <button type="button" class="button-danger" disabled={busy} onClick={doPurge}>
            Delete forever<span class="visually-hidden"> {task.title}</span>
          </button>
        )}
      </div>
    </li>
  );
}
