"""Another user's tasks and comments do not exist for you: 404 exactly like a never-used id."""

from typing import Any

import pytest
from httpx import AsyncClient

from tests.factories import (
    NEVER_USED_ID,
    TASK_NOT_FOUND,
    as_listed,
    create_comment,
    create_task,
    list_task_ids,
    other_user_headers,
)

# Every request on one task, with {task} and {comment} filled in. A stale and a correct
# If-Match are both tried: neither may reveal that the task exists (no 412, no 2xx).
REQUESTS_ON_A_TASK: list[tuple[str, str, Any, dict[str, str]]] = [
    ("GET", "/tasks/{task}", None, {}),
    ("PATCH", "/tasks/{task}", {"title": "mine now"}, {}),
    ("PATCH", "/tasks/{task}", {"title": "mine now"}, {"If-Match": '"1"'}),
    ("PATCH", "/tasks/{task}", {"title": "mine now"}, {"If-Match": '"9"'}),
    ("PATCH", "/tasks/{task}", {}, {}),
    ("PATCH", "/tasks/{task}", {}, {"If-Match": '"9"'}),
    ("DELETE", "/tasks/{task}", None, {}),
    ("DELETE", "/tasks/{task}", None, {"If-Match": '"1"'}),
    ("DELETE", "/tasks/{task}", None, {"If-Match": '"9"'}),
    ("GET", "/tasks/{task}/comments", None, {}),
    ("POST", "/tasks/{task}/comments", {"text": "hello"}, {}),
    ("DELETE", "/tasks/{task}/comments/{comment}", None, {}),
]


class TestAnotherUsersTask:
    @pytest.mark.parametrize(("method", "path", "body", "extra"), REQUESTS_ON_A_TASK)
    async def test_answers_exactly_like_an_id_never_used(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        method: str,
        path: str,
        body: Any,
        extra: dict[str, str],
    ) -> None:
        task = await create_task(client, auth_headers, title="secret")
        comment = await create_comment(client, auth_headers, task["id"])
        stranger = {**await other_user_headers(client), **extra}

        theirs = await client.request(
            method,
            path.format(task=task["id"], comment=comment["id"]),
            json=body,
            headers=stranger,
        )
        never = await client.request(
            method,
            path.format(task=NEVER_USED_ID, comment=comment["id"]),
            json=body,
            headers=stranger,
        )

        assert theirs.status_code == 404, theirs.text
        assert theirs.json() == never.json() == TASK_NOT_FOUND
        assert never.status_code == 404

    async def test_leaves_the_task_and_its_comments_untouched(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers, title="secret")
        comment = await create_comment(client, auth_headers, task["id"])
        stranger = await other_user_headers(client)

        for method, path, body, extra in REQUESTS_ON_A_TASK:
            url = path.format(task=task["id"], comment=comment["id"])
            await client.request(method, url, json=body, headers={**stranger, **extra})

        fetched = await client.get(f"/tasks/{task['id']}", headers=auth_headers)
        assert as_listed(fetched.json()) == task
        comments = await client.get(f"/tasks/{task['id']}/comments", headers=auth_headers)
        assert comments.json()["items"] == [comment]

    async def test_is_not_listed(self, client: AsyncClient, auth_headers: dict[str, str]) -> None:
        mine = await create_task(client, auth_headers, title="mine")
        stranger = await other_user_headers(client)
        theirs = await create_task(client, stranger, title="theirs")

        assert await list_task_ids(client, auth_headers) == [mine["id"]]
        assert await list_task_ids(client, stranger) == [theirs["id"]]
        assert await list_task_ids(client, auth_headers, q="theirs") == []
