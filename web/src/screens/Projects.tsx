import { useEffect, useState } from 'preact/hooks';
import { api, unwrap } from '../api/client';
import { projectLabel } from '../api/teams';
import { ErrorMessage, ScreenTitle, SubmitButton, TextField } from '../ui/components';
import { loadProjects, projects } from '../ui/teams';
import { useAction, useSubmit, useIdempotent } from '../ui/useAction';
import { idempotencyHeader } from '../api/idempotency';

export function Projects() {
  const list = projects.use();
  const load = useAction();
  const reload = () => void load.run(() => loadProjects(true));
  useEffect(reload, []);

  return (
    <section>
      <ScreenTitle>Projects</ScreenTitle>
      <NewProject />
      <ErrorMessage error={load.error} action={{ label: 'Retry', run: reload }} />
      {list === null && !load.error && <p class="muted">Loading…</p>}
      <ul class="project-list" aria-label="Projects">
        {(list ?? []).map((project) => (
          <li class="project-row" key={project.id}>
            <div class="task-main">
              <a href={`/project/${project.id}`} class="task-title">
                {projectLabel(project)}
              </a>
              {project.description && <p class="muted clamp">{project.description}</p>}
            </div>
            <div class="task-meta">
              <span class="badge">{project.is_inbox ? 'private' : project.role}</span>
              <span>
                {project.member_count} {project.member_count === 1 ? 'member' : 'members'}
              </span>
              <a href={`/?project=${project.id}`} aria-label={`Tasks of ${projectLabel(project)}`}>
                Tasks
              </a>
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}

function NewProject() {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const once = useIdempotent();
  const create = useSubmit(async () => {
    const body = { name, description };
    await once.run(body, (key) => unwrap(api.POST('/projects', { params: { header: idempotencyHeader(key) }, body })));
    setName('');
    setDescription('');
    await loadProjects(true);
  });
  return (
    <form class="card new-task" onSubmit={create.submit} aria-labelledby="new-project-title">
      <h2 id="new-project-title">New project</h2>
      <div class="row">
        <TextField
          label="Name"
          class="grow"
          name="name"
          required
          maxLength={100}
          value={name}
          onValue={setName}
        />
        <TextField
          label="Description"
          class="grow"
          name="description"
          maxLength={2000}
          value={description}
          onValue={setDescription}
        />
      </div>
      <ErrorMessage error={create.error} messages={{ 409: 'You already have a project with this name.' }} />
      <SubmitButton busy={create.busy} label="Create project" busyLabel="Creating…" />
    </form>
  );
}
