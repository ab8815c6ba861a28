// The caller's projects and their members, shared by the screens: loaded once, reloaded
// after a change that alters them (create, rename, share, leave).
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, unwrap } from '../api/client';
import { type Member, type Project, allPages } from '../api/teams';
import { Store } from './store';

/** Every project of the caller, inbox first; null before the first answer. */
export const projects = new Store<Project[] | null>(null);
/** Why the last load failed (shown with a Retry by the screens that need the roles). */
export const projectsError = new Store<unknown>(null);
let loading: Promise<Project[]> | null = null;

export function loadProjects(force = false): Promise<Project[]> {
  if (loading && !force) return loading;
  const request = allPages((cursor) =>
    unwrap(api.GET('/projects', { params: { query: { limit: 100, ...(cursor ? { cursor } : {}) } } })),
  );
  loading = request;
  request.then(
    (list) => {
      if (loading !== request) return;
      projectsError.set(null);
      projects.set(list);
    },
    (error: unknown) => {
      if (loading !== request) return;
      loading = null;
      projectsError.set(error);
    },
  );
  return request;
}

export function projectsLoaded(): boolean {
  return projects.get() !== null;
}

/** The projects, loading them on first use (errors leave the list empty). */
export function useProjects(): Project[] {
  const list = projects.use();
  useEffect(() => {
    if (list === null) void loadProjects().catch(() => {});
  }, [list === null]);
  return list ?? [];
}

/** Projects were loaded, but not this one (shared with me since): load them again, once. */
export function useFreshProjects(list: Project[], id: number | null | undefined): void {
  const loaded = projects.get() !== null;
  const missing = loaded && id != null && !list.some((project) => project.id === id);
  const asked = useRef<number | null>(null);
  useEffect(() => {
    if (!missing || asked.current === id) return;
    asked.current = id ?? null;
    void loadProjects(true).catch(() => {});
  }, [missing, id]);
}

export function projectById(list: Project[], id: number | null | undefined): Project | undefined {
  return list.find((project) => project.id === id);
}

const members = new Map<number, Promise<Member[]>>();

export function loadMembers(projectId: number, force = false): Promise<Member[]> {
  const known = members.get(projectId);
  if (known && !force) return known;
  const request = allPages((cursor) =>
    unwrap(
      api.GET('/projects/{project_id}/members', {
        params: { path: { project_id: projectId }, query: { limit: 100, ...(cursor ? { cursor } : {}) } },
      }),
    ),
  );
  members.set(projectId, request);
  request.catch(() => members.get(projectId) === request && members.delete(projectId));
  return request;
}

/** The members of these projects (those we may read), reloaded when the ids change. */
export function useMembers(projectIds: number[]): Map<number, Member[]> {
  const [found, setFound] = useState<Map<number, Member[]>>(new Map());
  const key = [...new Set(projectIds)].sort((a, b) => a - b).join(',');
  useEffect(() => {
    let cancelled = false;
    const ids = key ? key.split(',').map(Number) : [];
    void Promise.all(
      ids.map((id) =>
        loadMembers(id).then(
          (list) => [id, list] as const,
          () => [id, [] as Member[]] as const,
        ),
      ),
    ).then((pairs) => !cancelled && setFound(new Map(pairs)));
    return () => {
      cancelled = true;
    };
  }, [key]);
  return found;
}

/** user id -> username, from every member list given. */
export function namesOf(lists: Iterable<Member[]>): Map<number, string> {
  const names = new Map<number, string>();
  for (const list of lists) for (const member of list) names.set(member.user_id, member.username);
  return names;
}

export function forgetTeams(): void {
  loading = null;
  members.clear();
  projects.set(null);
  projectsError.set(null);
}
