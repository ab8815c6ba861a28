"""The application's shared resources: built once by `create_app`, kept in `app.state.resources`.

One typed object instead of loose `app.state` attributes: `get_resources` hands it to every
dependency that needs a piece of it. Frozen: tests that swap a part (a cheaper password
hasher) store a copy made with `dataclasses.replace`.
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.identity_cache import IdentityCache
from app.core.pagination import CursorCodec
from app.core.rate_limit import RateLimiter, RateLimits
from app.core.security import PasswordHasher, TokenCodec
from app.services.notification import EmailPolicy
from app.workers.runner import JobRunner


@dataclass(frozen=True, slots=True)
class Resources:
    settings: Settings
    engine: AsyncEngine
    # Write routes: a transaction (BEGIN IMMEDIATE on SQLite).
    session_factory: async_sessionmaker[AsyncSession]
    # Read routes: no BEGIN/COMMIT on PostgreSQL (app/core/database.py).
    read_session_factory: async_sessionmaker[AsyncSession]
    password_hasher: PasswordHasher
    token_codec: TokenCodec
    cursor_codec: CursorCodec
    email_policy: EmailPolicy
    jobs: JobRunner
    identity_cache: IdentityCache
    rate_limits: RateLimits
    rate_limiter: RateLimiter

    async def close(self) -> None:
        """Release everything (the lifespan's shutdown)."""
        await self.jobs.stop()
        await self.identity_cache.close()
        await self.rate_limiter.aclose()
        self.password_hasher.close()
        await self.engine.dispose()


async def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]
