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
