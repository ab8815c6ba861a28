"""What the application does once per process when it starts."""

import gc

from app.core.config import Settings
from app.main import create_app


async def test_start_up_objects_are_frozen_out_of_the_collector(settings: Settings) -> None:
    gc.unfreeze()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        # Everything alive after start-up: far more than a handful of objects.
        assert gc.get_freeze_count() > 10_000
    gc.unfreeze()
