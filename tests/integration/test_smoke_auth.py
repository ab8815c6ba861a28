from httpx import AsyncClient

from tests.conftest import register


async def test_register_then_me(client: AsyncClient, auth_headers: dict[str, str]) -> None:
    response = await client.get("/auth/me", headers=auth_headers)
    assert response.status_code == 200
    assert response.json()["email"] == "user@example.com"


async def test_duplicate_username_case_insensitive(client: AsyncClient) -> None:
    await register(client, "Bob")
    response = await client.post("/auth/register", json={"username": "bob", "password": "x" * 8})
    assert response.status_code == 409
