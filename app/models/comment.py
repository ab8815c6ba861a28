from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import IDS_NEVER_REUSED, Base, UTCDateTime, utc_now


class Comment(Base):
    __tablename__ = "comment"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# Serves "a task's comments, oldest first" with keyset pagination.
Index("ix_comment_task_created", Comment.task_id, Comment.created_at, Comment.id)
# Deleting a user cascades to their comments.
Index("ix_comment_author_id", Comment.author_id)
