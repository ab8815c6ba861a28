"""bench/ceiling_app.py answers every benchmarked request: it is built from the app's own
schemas, so a schema change that breaks it fails here rather than in `make bench`."""

import importlib.util
from pathlib import Path
from types import ModuleType

import httpx

CEILING = Path(__file__).resolve().parents[2] / "bench" / "ceiling_app.py"


def load_ceiling() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ceiling_app", CEILING)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_every_benchmarked_request_succeeds() -> None:
    ceiling = load_ceiling()
    transport = httpx.ASGITransport(app=ceiling.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ceiling") as client:
        login = await client.post("/auth/login", data={"username": "u", "password": "p"})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        for method, url, body in (
            ("GET", "/tasks?limit=20", None),
            ("GET", "/tasks/7", None),
            ("POST", "/tasks", {"title": "t", "tags": ["a"]}),
            ("PATCH", "/tasks/7", {"completed": True}),
            ("GET", "/auth/me", None),
        ):
            response = await client.request(method, url, json=body, headers=headers)
            assert 200 <= response.status_code < 300, (method, url, response.text)
