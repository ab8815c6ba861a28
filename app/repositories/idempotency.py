import hashlib
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql

from app.models import IdempotencyKey
from app.repositories.base import Repository


class StoredKey(NamedTuple):
    """A key's row: the request it named (fingerprint) and the answer it got."""

    fingerprint: str
    status_code: int
    body: bytes
    content_type: str | None
    location: str | None
    etag: str | None
    expires_at: datetime


KEYS = cast(Table, IdempotencyKey.__table__)
# Built once (Core, bound values): these run on every keyed write.
_THE_KEY = and_(
    KEYS.c.user_id == bindparam("p_user_id", type_=Integer()),
    KEYS.c.key == bindparam("p_key", type_=String()),
)
_READ = select(*(KEYS.c[name] for name in StoredKey._fields)).where(_THE_KEY)
# PostgreSQL: the lock, and the row as this statement's snapshot has it (`claim`).
_CLAIM = select(
    func.pg_try_advisory_xact_lock(bindparam("p_lock_id", type_=BigInteger())),
    *(KEYS.c[name] for name in StoredKey._fields),
).select_from(select(literal(1)).subquery("one").outerjoin(KEYS, _THE_KEY))
_STORE = insert(KEYS)
_STORE_UNLESS_TAKEN = (
    postgresql.insert(KEYS)
    .on_conflict_do_nothing(index_elements=[KEYS.c.user_id, KEYS.c.key])
    .returning(KEYS.c.user_id)
)


class IdempotencyRepository(Repository[IdempotencyKey]):
    """Keys are per user: every query takes the caller's id with the key."""

    model = IdempotencyKey

    async def claim(self, user_id: int, key: str) -> tuple[bool, StoredKey | None]:
        """Hold (user, key) until this transaction ends, and its row if one is stored: (False,
        _) when another transaction holds it (a request with this key is still running).

        PostgreSQL: a transaction-scoped advisory lock, released by COMMIT, ROLLBACK or the
        death of the connection (a killed server never leaves it held), taken in the same
        statement as the read. That read's snapshot is the statement's, taken just before
        the lock: a request with the key that committed in between is not in it, and is
        found by `store` instead. SQLite: write transactions run one at a time (BEGIN
        IMMEDIATE), so whoever gets here holds it, and reads what is committed.
        """
        if self.session.get_bind().dialect.name != "postgresql":
            return True, await self.get_for_user(user_id, key)
        values = {"p_lock_id": _lock_id(user_id, key), "p_user_id": user_id, "p_key": key}
        locked, *row = (await self.session.execute(_CLAIM, values)).one()
        return bool(locked), None if row[0] is None else StoredKey._make(row)

    async def get_for_user(self, user_id: int, key: str) -> StoredKey | None:
        row = (await self.session.execute(_READ, {"p_user_id": user_id, "p_key": key})).first()
        return None if row is None else StoredKey._make(row)

    async def forget(self, user_id: int, key: str) -> None:
        await self.session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.user_id == user_id, IdempotencyKey.key == key
            )
        )

    async def store(self, values: dict[str, Any]) -> bool:
        """Insert the key's row; False when a row for (user, key) was committed since
        `claim` read (PostgreSQL: see there; nothing is written then)."""
        if self.session.get_bind().dialect.name != "postgresql":
            await self.session.execute(_STORE, values)
            return True
        return (await self.session.execute(_STORE_UNLESS_TAKEN, values)).first() is not None

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
