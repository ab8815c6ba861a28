from datetime import UTC, datetime, timedelta

from app.core.exceptions import NotFoundError, PermissionDeniedError
from app.core.pagination import CursorCodec, PageResult, paginate
from app.models import Role, TaskEventKind, User
from app.repositories.base import Keyset
from app.repositories.task_record import TaskRecord
from app.repositories.trash import TrashedTask, TrashRepository
from app.schemas.common import PageQuery
from app.services.history import HistoryService
from app.services.task import TASK_NOT_FOUND, role_too_low

CURSOR_SCOPE = "trash"
PURGE_NEEDS = "Only a project admin or whoever deleted the task purges it"


class TrashService:
    """Deleted tasks: listed, restored (editor+) or purged (admin+ or the deleter) until the
    periodic purge removes them `retention` after their deletion."""

    def __init__(
        self, trash: TrashRepository, cursors: CursorCodec, history: HistoryService
    ) -> None:
        self.trash = trash
        self.cursors = cursors
        self.history = history

    async def list_trash(self, user: User, page: PageQuery) -> PageResult[TrashedTask]:
        after = self._decode_cursor(page.cursor) if page.cursor else None
        rows = await self.trash.list_for_user(user.id, after=after, limit=page.limit + 1)
        return paginate(rows, page.limit, self._encode_cursor)

    async def restore(self, user: User, task_id: int) -> TaskRecord:
        """Editor+: the task, its comments and history are back, with a new version. A task
        whose project was deleted went with it: a 404."""
        restored = await self.trash.restore_for_user(
            task_id, user_id=user.id, now=datetime.now(UTC)
        )
        if restored is None:
            found = await self.trash.role_and_deleter(task_id, user_id=user.id)
            if found is None:
                raise NotFoundError(TASK_NOT_FOUND)
            raise role_too_low(Role.EDITOR)
        await self.history.record(restored, TaskEventKind.RESTORED, actor_id=user.id)
        return restored

    async def purge(self, user: User, task_id: int) -> None:
        """Admin+ of the project, or whoever deleted it (while still a member)."""
        found = await self.trash.role_and_deleter(task_id, user_id=user.id)
        if found is None:
            raise NotFoundError(TASK_NOT_FOUND)
        role, deleted_by = found
        if not (role.at_least(Role.ADMIN) or deleted_by == user.id):
            raise PermissionDeniedError(PURGE_NEEDS)
        await self.trash.purge(task_id)

    async def purge_expired(self, *, now: datetime, retention: timedelta) -> int:
        return await self.trash.purge_deleted_before(now - retention)

    def _encode_cursor(self, row: TrashedTask) -> str:
        return self.cursors.encode_keyset(
            scope=CURSOR_SCOPE, value=row.deleted_at, row_id=row.task.id
        )

    def _decode_cursor(self, cursor: str) -> Keyset:
        value, row_id = self.cursors.decode_keyset(
            cursor, scope=CURSOR_SCOPE, parse=datetime.fromisoformat
        )
        return Keyset(value, row_id)
