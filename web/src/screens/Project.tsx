import { useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, unwrap } from '../api/client';
import { ApiError } from '../api/errors';
import {
  GIVEN_ROLES,
  type Member,
  type Project as ProjectType,
  type Role,
  assignableRoles,
  can,
  canRemove,
  projectLabel,
} from '../api/teams';
import { ErrorMessage, Notice, ScreenTitle, SubmitButton, formatDate, TextField } from '../ui/components';
import { currentUser } from '../ui/state';
import { loadMembers, loadProjects } from '../ui/teams';
import { ChoiceOptions } from '../ui/options';
import { useAction, useIdempotent, useSubmit } from '../ui/useAction';
import { Webhooks } from './Webhooks';
import { idempotencyHeader } from '../api/idempotency';

const PROJECT_CHANGED = 'This project was changed by someone else since you opened it. Reload to see the latest version.';

export function Project(props: { id?: string }) {
  const projectId = Number(props.id);
  const [project, setProject] = useState<ProjectType | null>(null);
  const [generation, setGeneration] = useState(0);
  const load = useAction();
  const reload = () => setGeneration((n) => n + 1);

  useEffect(() => {
    let cancelled = false;
    void load.run(async () => {
      const loaded = await unwrap(api.GET('/projects/{project_id}', { params: { path: { project_id: projectId } } }));
      if (!cancelled) setProject(loaded);
    });
    return () => {
      cancelled = true;
    };
  }, [projectId, generation]);

  return (
    <section>
      <p>
        <a href="/project">← All projects</a>
      </p>
      <ScreenTitle>{project ? projectLabel(project) : 'Project'}</ScreenTitle>
      <ErrorMessage error={load.error} action={{ label: 'Retry', run: reload }} />
      {!project && !load.error && <p class="muted">Loading…</p>}
      {project && (
        <>
          <p class="muted">
            Your role: <strong>{project.role}</strong> · {project.member_count}{' '}
            {project.member_count === 1 ? 'member' : 'members'} · <a href={`/?project=${project.id}`}>Open its tasks</a>
          </p>
          {project.is_inbox && (
            <Notice>Your inbox is private: it cannot be shared, renamed or deleted.</Notice>
          )}
          {!project.is_inbox && project.description && !can.manage(project) && <p>{project.description}</p>}
          {can.manage(project) && (
            <ProjectSettings key={project.version} project={project} onSaved={setProject} onReload={reload} />
          )}
          {!project.is_inbox && <Members project={project} onChanged={reload} />}
          {can.manage(project) && <Webhooks project={project} />}
        </>
      )}
    </section>
  );
}

function ProjectSettings(props: {
  project: ProjectType;
  onSaved: (project: ProjectType) => void;
  onReload: () => void;
}) {
  const { project } = props;
  const { route } = useLocation();
  const [name, setName] = useState(project.name);
  const [description, setDescription] = useState(project.description);
  const ifMatch = `"${project.version}"`;
  const action = useSubmit(async () => {
    const body = {
      ...(name !== project.name ? { name } : {}),
      ...(description !== project.description ? { description } : {}),
    };
    const updated = await unwrap(
      api.PATCH('/projects/{project_id}', {
        params: { path: { project_id: project.id }, header: { 'if-match': ifMatch } },
        body,
      }),
    );
    props.onSaved(updated);
    void loadProjects(true).catch(() => {});
  });
  const conflict = action.error instanceof ApiError && action.error.status === 412;

  const remove = () => {
    if (!confirm(`Delete the project “${project.name}”? Its tasks, comments and webhooks go with it.`)) return;
    void action.run(async () => {
      await unwrap(
        api.DELETE('/projects/{project_id}', {
          params: { path: { project_id: project.id }, header: { 'if-match': ifMatch } },
        }),
      );
      await loadProjects(true).catch(() => {});
      route('/project');
    });
  };

  return (
    <form class="card stack" onSubmit={action.submit} aria-label="Project settings">
      <TextField label="Name" name="name" required maxLength={100} value={name} onValue={setName} />
      <label>
        Description
        <textarea
          name="description"
          rows={3}
          maxLength={2000}
          value={description}
          onInput={(e) => setDescription(e.currentTarget.value)}
        />
      </label>
      <ErrorMessage
        error={action.error}
        messages={{ 412: PROJECT_CHANGED, 409: 'You already have a project with this name.' }}
        action={conflict ? { label: 'Reload', run: props.onReload } : undefined}
      />
      <div class="row">
        <SubmitButton busy={action.busy} label="Save project" busyLabel="Saving…" />
        {can.deleteProject(project) && (
          <button type="button" class="button-danger" disabled={action.busy} onClick={remove}>
            Delete project
          </button>
        )}
      </div>
    </form>
  );
}

function Members(props: { project: ProjectType; onChanged: () => void }) {
  const { project } = props;
  const me = currentUser.use();
  const { route } = useLocation();
  const [members, setMembers] = useState<Member[] | null>(null);
  const [generation, setGeneration] = useState(0);
  const load = useAction();
  const change = useAction();
  const [done, setDone] = useState('');

  useEffect(() => {
    void load.run(async () => setMembers(await loadMembers(project.id, true)));
  }, [project.id, generation]);

  const changed = (message: string) => {
    setDone(message);
    setGeneration((n) => n + 1);
    props.onChanged(); // the member count, and my role after a hand-over
    void loadProjects(true).catch(() => {});
  };

  const setRole = (member: Member, role: Role) => {
    setDone('');
    if (role === 'owner' && !confirm(`Hand ownership of “${project.name}” to ${member.username}? You become an admin.`)) {
      return;
    }
    void change.run(async () => {
      await unwrap(
        api.PATCH('/projects/{project_id}/members/{user_id}', {
          params: { path: { project_id: project.id, user_id: member.user_id } },
          body: { role },
        }),
      );
      changed(`${member.username} is now ${role}.`);
    });
  };

  const remove = (member: Member) => {
    const leaving = member.user_id === me?.id;
    const question = leaving
      ? `Leave “${project.name}”? You will no longer see it or its tasks.`
      : `Remove ${member.username} from “${project.name}”?`;
    if (!confirm(question)) return;
    setDone('');
    void change.run(async () => {
      await unwrap(
        api.DELETE('/projects/{project_id}/members/{user_id}', {
          params: { path: { project_id: project.id, user_id: member.user_id } },
        }),
      );
      if (leaving) {
        await loadProjects(true).catch(() => {});
        route('/project');
      } else {
        changed(`${member.username} was removed.`);
      }
    });
  };

  return (
    <section aria-labelledby="members-title">
      <h2 id="members-title">Members</h2>
      <ErrorMessage error={load.error} action={{ label: 'Retry', run: () => setGeneration((n) => n + 1) }} />
      <ErrorMessage error={change.error} messages={{ 404: 'This person is no longer a member. Reload the page.' }} />
      {done && <Notice>{done}</Notice>}
      {members === null && !load.error && <p class="muted">Loading…</p>}
      <ul class="member-list" aria-label="Members">
        {(members ?? []).map((member) => (
          <MemberRow
            key={`${member.user_id}:${member.role}`}
            member={member}
            myRole={project.role}
            myId={me?.id ?? null}
            busy={change.busy}
            onRole={(role) => setRole(member, role)}
            onRemove={() => remove(member)}
          />
        ))}
      </ul>
      {project.role === 'owner' && (
        <p class="muted">You own this project: to leave it, hand ownership to another member first (set their role to owner).</p>
      )}
      {can.manage(project) && <AddMember project={project} onAdded={(m) => changed(`${m.username} was added as ${m.role}.`)} />}
    </section>
  );
}

/** One member: their role, changed with a button (a select that saved on every change
 * would save each role a keyboard user's arrow keys pass through), and remove or leave. */
function MemberRow(props: {
  member: Member;
  myRole: Role;
  myId: number | null;
  busy: boolean;
  onRole: (role: Role) => void;
  onRemove: () => void;
}) {
  const { member, myId } = props;
  const [role, setRole] = useState<Role>(member.role);
  const isMe = member.user_id === myId;
  const roles = myId === null || isMe ? [] : assignableRoles(props.myRole, member.role);
  return (
    <li class="member">
      <div class="task-main">
        <span class="task-title">
          {member.username}
          {isMe && ' (you)'}
        </span>
        <p class="muted">Added {formatDate(member.added_at)}</p>
      </div>
      <div class="row member-actions">
        {roles.length > 0 ? (
          <form
            class="row member-actions"
            aria-label={`Role of ${member.username}`}
            onSubmit={(e) => {
              e.preventDefault();
              props.onRole(role);
            }}
          >
            <label class="inline">
              <span class="visually-hidden">Role of {member.username}</span>
              <select value={role} onChange={(e) => setRole(e.currentTarget.value as Role)}>
                <ChoiceOptions values={roles} />
              </select>
            </label>
            {role !== member.role && (
              <button type="submit" class="button-secondary" disabled={props.busy}>
                Save role
              </button>
            )}
          </form>
        ) : (
          <span class="badge">{member.role}</span>
        )}
        {myId !== null && canRemove(props.myRole, member, myId) && (
          <button type="button" class="button-danger" disabled={props.busy} onClick={props.onRemove}>
            {isMe ? 'Leave project' : <>Remove<span class="visually-hidden"> {member.username}</span></>}
          </button>
        )}
      </div>
    </li>
  );
}

function AddMember(props: { project: ProjectType; onAdded: (member: Member) => void }) {
  const [username, setUsername] = useState('');
  const [role, setRole] = useState<(typeof GIVEN_ROLES)[number]>('editor');
  // The name that was refused, not the one being typed since.
  const [tried, setTried] = useState('');
  const once = useIdempotent();
  const add = useSubmit(async () => {
    setTried(username);
    const added = await once.run([props.project.id, username, role], (key) =>
      unwrap(
        api.POST('/projects/{project_id}/members', {
          params: { path: { project_id: props.project.id }, header: idempotencyHeader(key) },
          body: { username, role },
        }),
      ),
    );
    setUsername('');
    props.onAdded(added);
  });
  return (
    <form class="card stack" onSubmit={add.submit} aria-labelledby="add-member-title">
      <h3 id="add-member-title">Add a member</h3>
      <div class="row">
        <TextField
          label="Username"
          class="grow"
          name="username"
          required
          autoComplete="off"
          value={username}
          onValue={setUsername}
        />
        <label>
          Role
          <select name="role" value={role} onChange={(e) => setRole(e.currentTarget.value as typeof role)}>
            <ChoiceOptions values={GIVEN_ROLES} />
          </select>
        </label>
      </div>
      <ErrorMessage
        error={add.error}
        messages={{
          404: `No active user is called “${tried}”.`,
          409: `${tried} is already a member of this project.`,
        }}
      />
      <SubmitButton busy={add.busy} label="Add member" busyLabel="Adding…" />
    </form>
  );
}
