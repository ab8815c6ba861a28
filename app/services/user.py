from datetime import UTC, datetime
from functools import partial

from app.core.database import AfterCommit
from app.core.exceptions import ConflictError
from app.core.identity_cache import IdentityCache
from app.core.security import PasswordHasher
from app.models import User
from app.repositories.project import ProjectRepository
from app.repositories.user import UserRepository
from app.schemas.user import UserCreate, UserUpdate


class UserService:
    def __init__(
        self,
        users: UserRepository,
        projects: ProjectRepository,
        hasher: PasswordHasher,
        *,
        identity_cache: IdentityCache | None,
        uow: AfterCommit,
    ) -> None:
        self.users = users
        self.projects = projects
        self.hasher = hasher
        # None outside a request (the CLI): see `ensure_admin`.
        self.identity_cache = identity_cache
        self.uow = uow

    async def register(self, data: UserCreate, *, is_admin: bool = False) -> User:
        # Hashed before the first query: on SQLite a write request holds the database's
        # write lock from its first statement, and Argon2 takes tens of milliseconds.
        password_hash = await self.hasher.hash(data.password)
        if await self.users.get_by_username(data.username) is not None:
            raise ConflictError("Username is already taken")
        user = User(
            username=data.username,
            email=data.email,
            password_hash=password_hash,
            is_admin=is_admin,
        )
        user = await self.users.add(user)  # the unique index settles a race with a 409
        # Every account has its inbox, where tasks go unless a project is named.
        await self.projects.create_inbox(user.id, now=datetime.now(UTC))
        return user

    async def update_profile(self, user: User, data: UserUpdate) -> User:
        if "email" in data.model_fields_set:
            user.email = data.email
        await self.users.session.flush()
        if "email" in data.model_fields_set and self.identity_cache is not None:
            # After the commit, so that no reader re-caches the state from before it.
            self.uow.after_commit(partial(self.identity_cache.invalidate_users, [user.id]))
        return user

    async def ensure_admin(self, data: UserCreate, *, promote: bool) -> User:
        """Create an admin, or promote an existing user when asked to (the CLI's create-admin).

        An existing admin is left as it is; an existing non-admin is refused unless `promote`.
        The password only matters for a new account. A promoted user's cached identity is
        left to expire (AUTH_CACHE_TTL_SECONDS): the CLI has no identity cache.
        """
        existing = await self.users.get_by_username(data.username)
        if existing is None:
            return await self.register(data, is_admin=True)
        if existing.is_admin:
            return existing
        if not promote:
            raise ConflictError(
                f"User {existing.username!r} exists and is not an admin; "
                "pass --promote to make them one"
            )
        existing.is_admin = True
        existing.is_active = True
        await self.users.session.flush()
        return existing
