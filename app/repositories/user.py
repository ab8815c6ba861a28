from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.core.exceptions import ConflictError
from app.models import User
from app.repositories.base import Repository


class UserRepository(Repository[User]):
    model = User

    async def get_by_username(self, username: str) -> User | None:
        """Case-insensitive, served by the unique index on lower(username)."""
        statement = select(User).where(func.lower(User.username) == username.lower())
        return await self.session.scalar(statement)

    async def lock(self, *user_ids: int) -> list[User]:
        """These users as stored now, locked until the transaction ends; missing ids are left out.

        Decisions that read a user row and then write must hold this lock, not trust a copy
        loaded earlier in the request (populate_existing refreshes that copy). Rows are locked
        in id order, so two transactions locking the same users cannot deadlock.
        PostgreSQL: FOR NO KEY UPDATE, which inserts referencing the user (a login's session,
        a task) do not wait for. SQLite renders no lock clause: a write transaction there
        holds the database's write lock from its first statement (BEGIN IMMEDIATE), so the
        row cannot have changed since the request read it.
        """
        statement = (
            select(User)
            .where(User.id.in_(user_ids))
            .order_by(User.id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
        return list(await self.session.scalars(statement))

    async def has_active_admin_other_than(self, user_id: int) -> bool:
        statement = select(
            select(User.id).where(User.is_admin, User.is_active, User.id != user_id).exists()
        )
        return bool(await self.session.scalar(statement))

    async def list_after(self, *, after_id: int | None, limit: int) -> list[User]:
        """Every user by id (the administrators' list), keyset-paginated."""
        statement = select(User).order_by(User.id).limit(limit)
        if after_id is not None:
            statement = statement.where(User.id > after_id)
        return list(await self.session.scalars(statement))

    async def add(self, instance: User) -> User:
        """Insert; a username taken meanwhile (a race the caller's check missed) is a 409."""
        try:
            # A savepoint keeps the outer transaction usable after the failed insert.
            async with self.session.begin_nested():
                return await super().add(instance)
        except IntegrityError:
            raise ConflictError("Username is already taken") from None
