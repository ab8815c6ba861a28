import { useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { type Priority, type Schemas, type Task, api, ifMatch, unwrap } from '../api/client';
import {
  type AssigneeFilter,
  type Member,
  type Project,
  assigneeFromValue,
  assigneeQuery,
  can,
  personLabel,
  projectFromQuery,
  projectLabel,
} from '../api/teams';
import {
  ErrorMessage,
  LoadMore,
  ScreenTitle,
  SubmitButton,
  TagList,
  formatDate,
  fromLocalInput,
  parseTags,
  TextField,
} from '../ui/components';
import { write, writesSettled } from '../api/writes';
import { countUnread, currentUser } from '../ui/state';
import { loadProjects, namesOf, projectById, projectsError, useMembers, useProjects } from '../ui/teams';
import { AssigneeSelect, ChoiceOptions, MemberOptions, ProjectOptions } from '../ui/options';
import { useAction, useIdempotent, useSubmit } from '../ui/useAction';
import { idempotencyHeader } from '../api/idempotency';
import { RESTORE_MESSAGES, justTrashed, restoreTask } from '../ui/trash';
import { usePager } from '../ui/usePager';

export const PRIORITIES: Priority[] = ['low', 'medium', 'high', 'urgent'];
const SORTS: { value: Schemas['TaskSort']; label: string }[] = [
  { value: '-created_at', label: 'Newest first' },
  { value: 'created_at', label: 'Oldest first' },
  { value: 'due_at', label: 'Due soonest' },
  { value: '-due_at', label: 'Due latest' },
  { value: '-priority', label: 'Most urgent' },
  { value: 'priority', label: 'Least urgent' },
  { value: '-updated_at', label: 'Recently changed' },
];
const PAGE_SIZE = 50;

interface Filters {
  q: string;
  status: 'all' | 'open' | 'done';
  priority: Priority[];
  tag: string;
  overdue: boolean;
  sort: Schemas['TaskSort'];
  project: number | null;
  assignee: AssigneeFilter;
}

const NO_FILTERS: Filters = {
  q: '',
  status: 'all',
  priority: [],
  tag: '',
  overdue: false,
  sort: '-created_at',
  project: null,
  assignee: 'anyone',
};

function useDebounced<T>(value: T, ms: number): T {
  const [debounced, setDebounced] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setDebounced(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return debounced;
}

export function Tasks() {
  const location = useLocation();
  const linkedProject = projectFromQuery(location.query.project);
  const [filters, setFilters] = useState<Filters>({ ...NO_FILTERS, project: linkedProject });
  const set = <K extends keyof Filters>(name: K, value: Filters[K]) =>
    setFilters((current) => ({ ...current, [name]: value }));
  const chooseProject = (project: number | null) =>
    setFilters((current) => ({
      ...current,
      project,
      // A member of the old project may not be one of the new.
      assignee: typeof current.assignee === 'number' ? 'anyone' : current.assignee,
    }));
  // A link to another project's tasks (/?project=3) while this screen is open.
  useEffect(() => chooseProject(linkedProject), [linkedProject]);
  const me = currentUser.use();
  const projects = useProjects();
  const projectsProblem = projectsError.use();
  const q = useDebounced(filters.q.trim(), 300);
  const query = {
    ...(filters.project !== null ? { project_id: [filters.project] } : {}),
    ...assigneeQuery(filters.assignee, me?.id ?? null),
    limit: PAGE_SIZE,
    sort: filters.sort,
    ...(q ? { q } : {}),
    ...(filters.status === 'all' ? {} : { completed: filters.status === 'done' }),
    ...(filters.priority.length ? { priority: filters.priority } : {}),
    ...(parseTags(filters.tag).length ? { tag: parseTags(filters.tag) } : {}),
    ...(filters.overdue ? { overdue: true } : {}),
  };
  const key = JSON.stringify(query);
  const filtered = Object.keys(query).some((name) => name !== 'limit' && name !== 'sort');
  // Names of assignees: the members of every project (short lists, cached).
  const members = useMembers(projects.filter((p) => !p.is_inbox).map((p) => p.id));
  const names = namesOf(members.values());
  const list = usePager<Task>(async (cursor) => {
    await writesSettled();
    return unwrap(api.GET('/tasks', { params: { query: { ...query, ...(cursor ? { cursor } : {}) } } }));
  }, key);
  const [conflict, setConflict] = useState<unknown>(null);

  const toggleDone = async (task: Task) => {
    setConflict(null);
    // Shown at once; the server's answer (or the old task, on an error) replaces it.
    list.pager?.update({ ...task, completed: !task.completed });
    try {
      const updated = await write(
        unwrap(
          api.PATCH('/tasks/{task_id}', {
            params: { path: { task_id: task.id }, header: { 'if-match': ifMatch(task) } },
            body: { completed: !task.completed },
          }),
        ),
      );
      const stillMatches = filters.status === 'all' || updated.completed === (filters.status === 'done');
      list.pager?.update(updated, stillMatches);
      void countUnread();
    } catch (error) {
      list.pager?.update(task);
      setConflict(error);
    }
  };

  const reload = () => {
    setConflict(null);
    list.pager?.reset();
    void list.pager?.loadMore();
  };

  return (
    <section>
      <ScreenTitle>Tasks</ScreenTitle>
      <TrashedNotice onRestored={reload} />
      <NewTask
        projects={projects}
        members={members}
        defaultProject={filters.project}
        onCreated={(task) => {
          if (filters.project === null || filters.project === task.project_id) list.pager?.prepend(task);
          void countUnread();
        }}
      />
      <form class="filters" role="search" aria-label="Filter and sort tasks" onSubmit={(e) => e.preventDefault()}>
        <TextField
          label="Search"
          class="grow"
          type="search"
          name="q"
          placeholder="Words in the title or description"
          value={filters.q}
          onValue={(v) => set('q', v)}
        />
        <label>
          Status
          <select
            name="status"
            value={filters.status}
            onChange={(e) => set('status', e.currentTarget.value as Filters['status'])}
          >
            <option value="all">All</option>
            <option value="open">Open</option>
            <option value="done">Completed</option>
          </select>
        </label>
        <label>
          Project
          <select
            name="project"
            value={filters.project === null ? 'all' : String(filters.project)}
            onChange={(e) => chooseProject(projectFromQuery(e.currentTarget.value))}
          >
            <option value="all">All projects</option>
            <ProjectOptions projects={projects} />
          </select>
        </label>
        <label>
          Assignee
          <select
            name="assignee"
            value={String(filters.assignee)}
            onChange={(e) => set('assignee', assigneeFromValue(e.currentTarget.value))}
          >
            <option value="anyone">Anyone</option>
            <option value="me">My tasks</option>
            <option value="unassigned">Unassigned</option>
            <MemberOptions
              members={(filters.project !== null ? (members.get(filters.project) ?? []) : []).filter(
                (member) => member.user_id !== me?.id,
              )}
            />
          </select>
        </label>
        <TextField
          label="Tag"
          name="tag"
          placeholder="e.g. work"
          value={filters.tag}
          onValue={(v) => set('tag', v)}
        />
        <label>
          Sort
          <select
            name="sort"
            value={filters.sort}
            onChange={(e) => set('sort', e.currentTarget.value as Filters['sort'])}
          >
            {SORTS.map((sort) => (
              <option value={sort.value} key={sort.value}>
                {sort.label}
              </option>
            ))}
          </select>
        </label>
        <fieldset class="priorities">
          <legend>Priority</legend>
          {PRIORITIES.map((priority) => (
            <label class="inline" key={priority}>
              <input
                type="checkbox"
                name="priority"
                value={priority}
                checked={filters.priority.includes(priority)}
                onChange={(e) =>
                  set(
                    'priority',
                    e.currentTarget.checked
                      ? [...filters.priority, priority]
                      : filters.priority.filter((p) => p !== priority),
                  )
                }
              />
              {priority}
            </label>
          ))}
        </fieldset>
        <label class="inline">
          <input
            type="checkbox"
            name="overdue"
            checked={filters.overdue}
            onChange={(e) => set('overdue', e.currentTarget.checked)}
          />
          Overdue only
        </label>
      </form>

      <ErrorMessage error={conflict} action={{ label: 'Reload', run: reload }} />
      <ErrorMessage
        error={projectsProblem}
        action={{ label: 'Retry loading projects', run: () => void loadProjects(true).catch(() => {}) }}
      />
      <ErrorMessage error={list.error} action={{ label: 'Retry', run: list.loadMore }} />
      {list.loading && list.items.length === 0 && <SkeletonRows />}
      {!list.loading && !list.error && list.items.length === 0 && (
        <p class="empty">{filtered ? 'No tasks match these filters.' : 'No tasks yet: add one above.'}</p>
      )}
      <ul class="task-list" aria-label="Tasks" aria-busy={list.loading}>
        {list.items.map((task) => (
          <TaskRow
            task={task}
            key={task.id}
            project={projectById(projects, task.project_id)}
            showProject={projects.length > 1}
            assignee={task.assignee_id === null ? null : personLabel(task.assignee_id, names, me?.id ?? null)}
            onToggle={() => void toggleDone(task)}
          />
        ))}
      </ul>
      <LoadMore loading={list.loading && list.items.length > 0} done={list.done || !!list.error} onMore={list.loadMore} label="Load more tasks" />
    </section>
  );
}

function SkeletonRows() {
  return (
    <ul class="task-list" aria-hidden="true">
      {[0, 1, 2, 3, 4].map((n) => (
        <li class="task-row skeleton" key={n} />
      ))}
    </ul>
  );
}

function TaskRow(props: {
  task: Task;
  project?: Project;
  showProject: boolean;
  assignee: string | null;
  onToggle: () => void;
}) {
  const { task, project } = props;
  // Until the projects are in, a checkbox stays usable (the server still decides).
  const mayEdit = !project || can.editTasks(project.role);
  const overdue = !task.completed && task.due_at !== null && new Date(task.due_at) < new Date();
  return (
    <li class={`task-row${task.completed ? ' done' : ''}`}>
      <input
        type="checkbox"
        checked={task.completed}
        disabled={!mayEdit}
        onChange={props.onToggle}
        aria-label={`Completed: ${task.title}`}
      />
      <div class="task-main">
        <a href={`/task/${task.id}`} class="task-title">
          {task.title}
        </a>
        <div class="task-meta">
          <span class={`badge priority-${task.priority}`}>{task.priority}</span>
          {project && props.showProject && (
            <span class="project-badge">
              <span class="visually-hidden">Project: </span>
              {projectLabel(project)}
            </span>
          )}
          {props.assignee && <span>→ {props.assignee}</span>}
          {task.due_at && (
            <span class={overdue ? 'overdue' : ''}>
              {overdue ? 'Overdue: ' : 'Due '}
              {formatDate(task.due_at)}
            </span>
          )}
          <TagList tags={task.tags} />
        </div>
      </div>
    </li>
  );
}

function NewTask(props: {
  projects: Project[];
  members: Map<number, Member[]>;
  defaultProject: number | null;
  onCreated: (task: Task) => void;
}) {
  const writable = props.projects.filter((project) => can.editTasks(project.role));
  const inbox = writable.find((project) => project.is_inbox);
  const preferred = writable.find((project) => project.id === props.defaultProject) ?? inbox;
  const [projectId, setProjectId] = useState<number | null>(null);
  const target = projectId ?? preferred?.id ?? null;
  const [assignee, setAssignee] = useState<number | null>(null);
  const candidates = target === null ? [] : (props.members.get(target) ?? []);
  const [title, setTitle] = useState('');
  const [priority, setPriority] = useState<Priority>('medium');
  const [due, setDue] = useState('');
  const [tags, setTags] = useState('');
  const once = useIdempotent();
  const { busy, error, submit } = useSubmit(async () => {
    const body = {
      title,
      priority,
      description: '',
      due_at: fromLocalInput(due),
      tags: parseTags(tags),
      ...(target !== null ? { project_id: target } : {}),
      ...(assignee !== null ? { assignee_id: assignee } : {}),
    };
    const task = await write(
      once.run(body, (key) => unwrap(api.POST('/tasks', { params: { header: idempotencyHeader(key) }, body }))),
    );
    props.onCreated(task);
    setTitle('');
    setDue('');
    setTags('');
    setPriority('medium');
    setAssignee(null);
  });
  return (
    <form class="card new-task" onSubmit={submit} aria-labelledby="new-task-title">
      <h2 id="new-task-title">New task</h2>
      <div class="row">
        <TextField
          label="Title"
          class="grow"
          name="title"
          required
          maxLength={200}
          value={title}
          onValue={setTitle}
        />
        <label>
          Priority
          <select
            name="priority"
            value={priority}
            onChange={(e) => setPriority(e.currentTarget.value as Priority)}
          >
            <ChoiceOptions values={PRIORITIES} />
          </select>
        </label>
        <TextField label="Due" type="datetime-local" name="due" value={due} onValue={setDue} />
        <TextField label="Tags" name="tags" placeholder="work, home" value={tags} onValue={setTags} />
        {writable.length > 1 && (
          <label>
            Project
            <select
              name="project"
              value={target === null ? '' : String(target)}
              onChange={(e) => {
                setProjectId(Number(e.currentTarget.value));
                setAssignee(null);
              }}
            >
              <ProjectOptions projects={writable} />
            </select>
          </label>
        )}
        {candidates.length > 1 && <AssigneeSelect members={candidates} value={assignee} onChange={setAssignee} />}
      </div>
      <ErrorMessage error={error} />
      <SubmitButton busy={busy} label="Add task" busyLabel="Adding…" />
    </form>
  );
}

/** "Moved to the trash", with an Undo right there (after a delete on the task screen). */
function TrashedNotice(props: { onRestored: () => void }) {
  const trashed = justTrashed.use();
  const undo = useAction();
  const [restored, setRestored] = useState('');
  if (!trashed) {
    return restored ? (
      <p class="alert alert-info" role="status">
        “{restored}” is back in your tasks.
      </p>
    ) : null;
  }
  const restore = () =>
    void undo.run(async () => {
      await restoreTask(trashed.id);
      setRestored(trashed.title);
      justTrashed.set(null);
      props.onRestored();
    });
  return (
    <div class="alert alert-info trashed" role="status">
      <span>
        “{trashed.title}” was moved to the <a href="/deleted">trash</a>.
      </span>
      <button type="button" class="button-secondary" disabled={undo.busy} onClick={restore}>
        {undo.busy ? 'Restoring…' : 'Undo'}
      </button>
      <button type="button" class="link-button" onClick={() => justTrashed.set(null)}>
        Dismiss
      </button>
      <ErrorMessage error={undo.error} messages={RESTORE_MESSAGES} />
    </div>
  );
}
