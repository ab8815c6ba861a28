// The trash (API.md "v2 Trash"): a deleted task can be restored. The task screen's delete
// leaves a notice here, shown by the task list with an Undo.
import { type Task, api, unwrap } from '../api/client';
import { write } from '../api/writes';
import { Store } from './store';

/** The task just moved to the trash by this tab, until restored or dismissed. */
export const justTrashed = new Store<{ id: number; title: string } | null>(null);

export function restoreTask(taskId: number): Promise<Task> {
  return write(unwrap(api.POST('/trash/{task_id}/restore', { params: { path: { task_id: taskId } } })));
}

/** What a failed restore means here: the general 404 sentence ("may have been deleted")
 * would mislead, the API answers 404 when the task's project is gone. */
export const RESTORE_MESSAGES = {
  404: 'It cannot be restored: its project was deleted, or the task was deleted for good.',
  403: 'Your role in its project does not allow restoring it: editor or higher is needed.',
};
