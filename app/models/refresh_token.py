from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class RefreshToken(Base):
    """A refresh token that was issued; `used_at` is set when it is rotated (once only)."""

    __tablename__ = "refresh_token"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the JWT's jti
    session_id: Mapped[str] = mapped_column(
        ForeignKey("auth_session.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
