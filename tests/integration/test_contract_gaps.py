"""API.md v1 statements that no other test pinned; docs/contract.md maps every statement.

Each test here is the one that fails when its statement stops holding. A statement that
gains a better home elsewhere moves there, and its row in docs/contract.md with it.
"""

import uuid
from typing import Any

import pytest
from httpx import AsyncClient

from tests.conftest import register
from tests.factories import assert_validation_error, create_task, list_task_ids

Json = dict[str, Any]
MIB = 1024 * 1024

# Every v1 operation of API.md, method and path template as the schema spells them.
V1_OPERATIONS = {
    "POST /auth/register",
    "POST /auth/login",
    "POST /auth/refresh",
    "POST /auth/logout",
    "GET /auth/me",
    "PATCH /auth/me",
    "POST /auth/me/password",
    "POST /tasks",
    "GET /tasks",
    "GET /tasks/{task_id}",
    "PATCH /tasks/{task_id}",
    "DELETE /tasks/{task_id}",
    "POST /tasks/{task_id}/comments",
    "GET /tasks/{task_id}/comments",
    "DELETE /tasks/{task_id}/comments/{comment_id}",
    "GET /notifications",
    "POST /notifications/{notification_id}/read",
    "POST /notifications/read-all",
    "GET /admin/users",
    "PATCH /admin/users/{user_id}",
    "GET /health",
    "GET /health/detailed",
}


async def openapi(client: AsyncClient) -> Json:
    response = await client.get("/openapi.json")
    assert response.status_code == 200, response.text
    schema: Json = response.json()
    return schema


class TestJsonIn:
    @pytest.mark.parametrize(
        ("content", "content_type"),
        [
            (b"title=Write+report", "application/x-www-form-urlencoded"),
            (b'{"title": "Write report"}', "text/plain"),
        ],
        ids=["form", "text"],
    )
    async def test_a_body_that_is_not_json_is_422_and_creates_nothing(
        self, client: AsyncClient, auth_headers: dict[str, str], content: bytes, content_type: str
    ) -> None:
        response = await client.post(
            "/tasks", content=content, headers={**auth_headers, "Content-Type": content_type}
        )

        assert_validation_error(response)
        assert await list_task_ids(client, auth_headers) == []


class TestBodySize:
    async def test_the_default_limit_is_one_mib(self, client: AsyncClient) -> None:
        """The suite runs on the default MAX_BODY_BYTES: one byte over 1 MiB is refused."""
        payload = b'{"username": "", "password": ""}'

        async def post(size: int) -> int:
            body = payload + b" " * (size - len(payload))
            headers = {"Content-Type": "application/json"}
            return (await client.post("/auth/register", content=body, headers=headers)).status_code

        assert await post(MIB + 1) == 413
        assert await post(MIB) == 422  # read and parsed: the empty username is refused


class TestLoginCost:
    async def test_an_unknown_user_costs_a_full_verification_like_a_wrong_password(
        self, client: AsyncClient, verified_hashes: list[str]
    ) -> None:
        """Both verify one Argon2 hash of the same parameters (an unknown user against a
        dummy one): a quick 401 would tell an attacker which usernames exist. Counted at the
        hashing library, not timed."""
        user = await register(client)

        for username in (user["username"], f"nobody_{uuid.uuid4().hex[:10]}"):
            response = await client.post(
                "/auth/login", data={"username": username, "password": "not the password"}
            )
            assert response.status_code == 401, response.text

        assert len(verified_hashes) == 2, "each failed login verifies exactly one hash"
        stored, dummy = verified_hashes
        assert dummy != stored
        # "$argon2id$v=19$m=...,t=...,p=..." before the salt and the digest.
        assert dummy.rsplit("$", 2)[0] == stored.rsplit("$", 2)[0]
        assert stored.startswith("$argon2id$")


class TestSchema:
    async def test_every_v1_endpoint_is_in_the_schema(self, client: AsyncClient) -> None:
        paths = (await openapi(client))["paths"]
        documented = {f"{method.upper()} {path}" for path, item in paths.items() for method in item}

        assert documented >= V1_OPERATIONS, sorted(V1_OPERATIONS - documented)

    async def test_login_is_an_oauth2_password_grant_for_the_docs(
        self, client: AsyncClient
    ) -> None:
        """Swagger's "Authorize" button logs in through the password form of /auth/login."""
        schema = await openapi(client)
        schemes = schema["components"]["securitySchemes"].values()
        flows = [s["flows"]["password"] for s in schemes if s["type"] == "oauth2"]

        assert [flow["tokenUrl"] for flow in flows] == ["/auth/login"]
        login_form = schema["paths"]["/auth/login"]["post"]["requestBody"]["content"]
        assert list(login_form) == ["application/x-www-form-urlencoded"]
        secured = schema["paths"]["/tasks"]["get"]["security"]
        assert [name for requirement in secured for name in requirement] == list(
            schema["components"]["securitySchemes"]
        )


class TestTrailingSlash:
    async def test_notifications_with_a_slash_answers_directly(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        await create_task(client, auth_headers)

        plain = await client.get("/notifications", headers=auth_headers)
        slashed = await client.get("/notifications/", headers=auth_headers)
        read_all = await client.post("/notifications/read-all/", headers=auth_headers)

        assert slashed.status_code == plain.status_code == 200, slashed.text
        assert "location" not in slashed.headers
        assert slashed.json() == plain.json()
        assert read_all.status_code == 204, read_all.text
