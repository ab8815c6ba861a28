import { useState } from 'preact/hooks';
import { type Notification, api, unwrap } from '../api/client';
import { personLabel, projectLabel } from '../api/teams';
import { ErrorMessage, LoadMore, ScreenTitle, formatDate } from '../ui/components';
import { countUnread, currentUser, unread } from '../ui/state';
import { namesOf, projectById, projectsLoaded, useMembers, useProjects } from '../ui/teams';
import { useAction } from '../ui/useAction';
import { usePager } from '../ui/usePager';

export function Inbox() {
  const [unreadOnly, setUnreadOnly] = useState(false);
  const count = unread.use();
  const list = usePager<Notification>(
    (cursor) =>
      unwrap(
        api.GET('/notifications', {
          params: { query: { limit: 50, ...(unreadOnly ? { unread: true } : {}), ...(cursor ? { cursor } : {}) } },
        }),
      ),
    String(unreadOnly),
  );
  const { error, run } = useAction();
  const me = currentUser.use();
  const projects = useProjects();
  // Who did it: a member of the notification's project (a project since left: by id).
  const shared = list.items.flatMap((n) => {
    const project = projectById(projects, n.project_id);
    return project && !project.is_inbox ? [project.id] : [];
  });
  const members = useMembers(shared);
  const names = namesOf(members.values());

  const markRead = (notification: Notification) =>
    run(async () => {
      await unwrap(
        api.POST('/notifications/{notification_id}/read', {
          params: { path: { notification_id: notification.id } },
        }),
      );
      list.pager?.update({ ...notification, read_at: new Date().toISOString() }, !unreadOnly);
      void countUnread();
    });

  const markAllRead = () =>
    run(async () => {
      await unwrap(api.POST('/notifications/read-all'));
      list.pager?.reset();
      void list.pager?.loadMore();
      void countUnread();
    });

  return (
    <section>
      <ScreenTitle>Notifications</ScreenTitle>
      <div class="row toolbar">
        <p class="muted" aria-live="polite">
          {count === null ? '' : `${count.count}${count.more ? '+' : ''} unread`}
        </p>
        <label class="inline">
          <input type="checkbox" checked={unreadOnly} onChange={(e) => setUnreadOnly(e.currentTarget.checked)} />
          Unread only
        </label>
        <button type="button" class="button-secondary" onClick={() => void markAllRead()}>
          Mark all as read
        </button>
      </div>
      <ErrorMessage error={error} />
      <ErrorMessage error={list.error} action={{ label: 'Retry', run: list.loadMore }} />
      {!list.loading && !list.error && list.items.length === 0 && (
        <p class="empty">{unreadOnly ? 'Nothing unread.' : 'No notifications yet.'}</p>
      )}
      <ul class="notification-list" aria-label="Notifications">
        {list.items.map((notification) => (
          <li key={notification.id} class={`notification${notification.read_at ? '' : ' unread'}`}>
            <div>
              <p>
                {!notification.read_at && <span class="visually-hidden">Unread: </span>}
                {notification.task_id ? (
                  <a href={`/task/${notification.task_id}`}>{notification.message}</a>
                ) : (
                  notification.message
                )}
              </p>
              <p class="muted">
                {formatDate(notification.created_at)}
                {notification.project_id !== null && (
                  <>
                    {' · in '}
                    <a href={`/project/${notification.project_id}`}>
                      {projectLabel(projectById(projects, notification.project_id), projectsLoaded())}
                    </a>
                  </>
                )}
                {notification.actor_id !== null && <> · by {personLabel(notification.actor_id, names, me?.id ?? null)}</>}
              </p>
            </div>
            {!notification.read_at && (
              <button
                type="button"
                class="button-secondary"
                aria-label={`Mark as read: ${notification.message}`}
                onClick={() => void markRead(notification)}
              >
                Mark as read
              </button>
            )}
          </li>
        ))}
      </ul>
      <LoadMore loading={list.loading} done={list.done || !!list.error} onMore={list.loadMore} label="Older notifications" />
    </section>
  );
}
