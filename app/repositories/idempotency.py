import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select

from app.models import IdempotencyKey
from app.repositories.base import Repository


class IdempotencyRepository(Repository[IdempotencyKey]):
    """Keys are per user: every query takes the caller's id with the key."""

    model = IdempotencyKey

    async def try_lock(self, user_id: int, key: str) -> bool:
        """Hold (user, key) until this transaction ends; False when another transaction holds
        it (a request with this key is still running).

        PostgreSQL: a transaction-scoped advisory lock, released by COMMIT, ROLLBACK or the
        death of the connection (a killed server never leaves it held). SQLite: write
        transactions run one at a time (BEGIN IMMEDIATE), so whoever gets here holds it.
        """
        if self.session.get_bind().dialect.name != "postgresql":
            return True
        locked = await self.session.scalar(
            select(func.pg_try_advisory_xact_lock(_lock_id(user_id, key)))
        )
        return bool(locked)

    async def get_for_user(self, user_id: int, key: str) -> IdempotencyKey | None:
        statement = select(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id, IdempotencyKey.key == key
        )
        return await self.session.scalar(statement)

    async def forget(self, user_id: int, key: str) -> None:
        await self.session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.user_id == user_id, IdempotencyKey.key == key
            )
        )

    async def store(self, values: dict[str, Any]) -> None:
        await self.session.execute(insert(IdempotencyKey).values(**values))

    async def purge_expired(self, now: datetime) -> int:
        """Every key past its expiry: one DELETE, safe to run from several schedulers."""
        result: Any = await self.session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now)
        )
        return int(result.rowcount)


def _lock_id(user_id: int, key: str) -> int:
    """A signed 64-bit advisory lock id for (user, key). A collision of two keys only makes
    one of them wait for (409) the other's request, never mixes their responses."""
    digest = hashlib.blake2b(f"idempotency:{user_id}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
