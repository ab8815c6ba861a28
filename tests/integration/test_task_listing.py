"""GET /tasks: filters, sorts and keyset paging (cursor handling: test_task_paging.py)."""

from typing import Any

import pytest
from httpx import AsyncClient

from tests.factories import (
    assert_validation_error,
    create_task,
    list_task_ids,
    other_user_headers,
    walk_task_pages,
)

PAST = "2020-01-01T00:00:00Z"
FUTURE = "2100-01-01T00:00:00Z"


@pytest.fixture
async def ids(client: AsyncClient, auth_headers: dict[str, str]) -> dict[str, int]:
    """Tasks made to tell the filters apart, by name."""
    specs: dict[str, dict[str, Any]] = {
        "milk": {
            "title": "Buy MILK",
            "priority": "low",
            "tags": ["home", "errand"],
            "due_at": PAST,
        },
        "report": {
            "title": "Write report",
            "description": "Quarterly numbers",
            "priority": "urgent",
            "tags": ["work"],
            "due_at": FUTURE,
        },
        "call": {"title": "Call mom", "priority": "high", "tags": ["home"], "due_at": PAST},
        "percent": {"title": "100% sure", "tags": ["Work", "home"]},
        "zeros": {"title": "1000 sure", "priority": "high"},
        "snake": {"title": "x", "description": "snake_case"},
        "snakex": {"title": "x", "description": "snakeXcase", "due_at": FUTURE},
    }
    created: dict[str, int] = {}
    for name, spec in specs.items():
        created[name] = (await create_task(client, auth_headers, **spec))["id"]
    response = await client.patch(
        f"/tasks/{created['call']}", json={"completed": True}, headers=auth_headers
    )
    assert response.status_code == 200
    return created


async def names(
    client: AsyncClient, headers: dict[str, str], ids: dict[str, int], params: Any
) -> list[str]:
    """The names of the listed tasks, oldest first."""
    by_id = {task_id: name for name, task_id in ids.items()}
    if isinstance(params, dict):
        params = list(params.items())
    found = await list_task_ids(client, headers, params=[*params, ("sort", "created_at")])
    return [by_id[task_id] for task_id in found]


ALL = ["milk", "report", "call", "percent", "zeros", "snake", "snakex"]


class TestListTasksFilters:
    async def test_without_filters_lists_every_task_newest_first(
        self, client: AsyncClient, auth_headers: dict[str, str], ids: dict[str, int]
    ) -> None:
        response = await client.get("/tasks", headers=auth_headers)

        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        assert [task["id"] for task in body["items"]] == [ids[name] for name in reversed(ALL)]
        assert body["next_cursor"] is None

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"completed": "true"}, ["call"]),
            ({"completed": "false"}, [n for n in ALL if n != "call"]),
            ([("priority", "low"), ("priority", "urgent")], ["milk", "report"]),
            ({"priority": "high"}, ["call", "zeros"]),
            ({"priority": "medium"}, ["percent", "snake", "snakex"]),
            ({"tag": "home"}, ["milk", "call", "percent"]),
            ({"tag": "HOME"}, ["milk", "call", "percent"]),
            ([("tag", "home"), ("tag", "Errand")], ["milk"]),
            ([("tag", "home"), ("tag", "work")], ["percent"]),
            ([("tag", "errand"), ("tag", "work")], []),
            ({"tag": "nothing"}, []),
            ({"q": "milk"}, ["milk"]),
            ({"q": "NUMBERS"}, ["report"]),
            ({"q": "o"}, ["report", "call"]),
            ({"q": "0%"}, ["percent"]),
            ({"q": "%"}, ["percent"]),
            ({"q": "e_c"}, ["snake"]),
            ({"q": "_"}, ["snake"]),
            ({"due_before": "2050-01-01T00:00:00Z"}, ["milk", "call"]),
            ({"due_after": "2050-01-01T00:00:00Z"}, ["report", "snakex"]),
            ({"due_after": "2019-12-31T23:00:00-02:00"}, ["report", "snakex"]),
            ({"due_after": PAST}, ["report", "snakex"]),
            ({"due_before": FUTURE}, ["milk", "call"]),
            ({"due_after": "2019-01-01T00:00:00Z", "due_before": FUTURE}, ["milk", "call"]),
            ({"overdue": "true"}, ["milk"]),
        ],
    )
    async def test_each_filter_alone(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        ids: dict[str, int],
        params: Any,
        expected: list[str],
    ) -> None:
        assert await names(client, auth_headers, ids, params) == expected

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"completed": "false", "tag": "home"}, ["milk", "percent"]),
            ({"completed": "true", "tag": "home", "priority": "high"}, ["call"]),
            ([("priority", "high"), ("priority", "low"), ("q", "sure")], ["zeros"]),
            ({"tag": "home", "due_before": FUTURE, "completed": "false"}, ["milk"]),
            ({"overdue": "true", "tag": "home", "q": "buy", "priority": "low"}, ["milk"]),
            ({"overdue": "true", "priority": "high"}, []),
            ({"q": "sure", "tag": "work"}, ["percent"]),
        ],
    )
    async def test_filters_combine(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        ids: dict[str, int],
        params: Any,
        expected: list[str],
    ) -> None:
        assert await names(client, auth_headers, ids, params) == expected

    @pytest.mark.parametrize(
        "params",
        [
            {"due_before": "2050-01-01T00:00:00"},
            {"due_after": "2050-01-01T00:00:00"},
            {"due_before": "soon"},
            {"completed": "maybe"},
            {"overdue": "sometimes"},
            {"priority": "critical"},
            {"tag": ""},
            {"tag": "t" * 51},
            {"sort": "title"},
            {"sort": "-id"},
            {"foo": "1"},
            {"offset": "10"},
            {"page": "2"},
            {"limit": "0"},
            {"limit": "101"},
            {"limit": "-1"},
            {"limit": "x"},
            {"limit": ""},
        ],
    )
    async def test_invalid_or_unknown_parameters_are_422(
        self, client: AsyncClient, auth_headers: dict[str, str], params: dict[str, str]
    ) -> None:
        assert_validation_error(await client.get("/tasks", params=params, headers=auth_headers))

    @pytest.mark.parametrize(
        ("q", "expected"),
        [("ärger", ["upper"]), ("BÜRO", ["upper"]), ("/", ["slash"]), ("\\", ["backslash"])],
    )
    async def test_q_folds_every_letter_and_takes_escape_characters_literally(
        self, client: AsyncClient, auth_headers: dict[str, str], q: str, expected: list[str]
    ) -> None:
        titles = {"upper": "ÄRGER im Büro", "slash": "a/b", "backslash": "a\\b", "plain": "ab"}
        made: dict[str, int] = {}
        for name, title in titles.items():
            made[name] = (await create_task(client, auth_headers, title=title))["id"]

        found = await list_task_ids(client, auth_headers, q=q)

        assert found == [made[name] for name in expected]

    async def test_another_users_tasks_never_match(
        self, client: AsyncClient, auth_headers: dict[str, str], ids: dict[str, int]
    ) -> None:
        stranger = await other_user_headers(client)
        theirs = await create_task(client, stranger, title="Buy milk", tags=["home"])

        assert await names(client, auth_headers, ids, {"q": "milk"}) == ["milk"]
        assert await list_task_ids(client, stranger, q="milk", tag="home") == [theirs["id"]]


class TestListTasksLimit:
    async def test_defaults_to_20(self, client: AsyncClient, auth_headers: dict[str, str]) -> None:
        created = [
            (await create_task(client, auth_headers, title=f"t{i}"))["id"] for i in range(21)
        ]

        body = (await client.get("/tasks", headers=auth_headers)).json()

        assert [task["id"] for task in body["items"]] == created[::-1][:20]
        assert body["next_cursor"] is not None

    @pytest.mark.parametrize("limit", [1, 3, 100])
    async def test_returns_at_most_limit_items(
        self, client: AsyncClient, auth_headers: dict[str, str], limit: int
    ) -> None:
        created = [(await create_task(client, auth_headers))["id"] for _ in range(3)]

        response = await client.get("/tasks", params={"limit": limit}, headers=auth_headers)

        assert [task["id"] for task in response.json()["items"]] == created[::-1][:limit]
        assert (response.json()["next_cursor"] is None) == (limit >= 3)


# Seven tasks made in this order; D1 is before D2, "-" is no due date.
SORT_SPECS = {
    "a": ("high", "D2"),
    "b": ("low", None),
    "c": ("high", "D1"),
    "d": ("urgent", "D2"),
    "e": ("low", "D1"),
    "f": ("medium", None),
    "g": ("high", "D2"),
}
DUE = {"D1": "2030-01-01T00:00:00Z", "D2": "2030-06-01T12:00:00+02:00"}
# Updated after creation, in this order: c, then a, then f.
TOUCHED = ["c", "a", "f"]
EXPECTED_ORDER = {
    "created_at": "abcdefg",
    "-created_at": "gfedcba",
    "updated_at": "bdegcaf",
    "-updated_at": "facgedb",
    "priority": "befacgd",
    "-priority": "dgcafeb",
    "due_at": "ceadgbf",
    "-due_at": "gdaecfb",
}
SORTS = list(EXPECTED_ORDER)


@pytest.fixture
async def sorted_ids(client: AsyncClient, auth_headers: dict[str, str]) -> dict[str, int]:
    created: dict[str, int] = {}
    for name, (priority, due) in SORT_SPECS.items():
        fields: dict[str, Any] = {"title": name, "priority": priority}
        if due:
            fields["due_at"] = DUE[due]
        created[name] = (await create_task(client, auth_headers, **fields))["id"]
    for name in TOUCHED:
        response = await client.patch(
            f"/tasks/{created[name]}", json={"description": "touched"}, headers=auth_headers
        )
        assert response.status_code == 200
    return created


def expected_ids(sorted_ids: dict[str, int], sort: str) -> list[int]:
    return [sorted_ids[name] for name in EXPECTED_ORDER[sort]]


class TestListTasksSort:
    @pytest.mark.parametrize("sort", SORTS)
    async def test_orders_with_ties_by_id_and_no_due_date_last(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        sorted_ids: dict[str, int],
        sort: str,
    ) -> None:
        found = await list_task_ids(client, auth_headers, sort=sort)
        assert found == expected_ids(sorted_ids, sort)

    async def test_default_is_newest_first(
        self, client: AsyncClient, auth_headers: dict[str, str], sorted_ids: dict[str, int]
    ) -> None:
        found = await list_task_ids(client, auth_headers)
        assert found == expected_ids(sorted_ids, "-created_at")

    @pytest.mark.parametrize("sort", SORTS)
    @pytest.mark.parametrize(
        ("limit", "pages"),
        [pytest.param(1, 7, id="by-one"), pytest.param(2, 4, id="by-two")],
    )
    async def test_paging_yields_every_task_once_in_order(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        sorted_ids: dict[str, int],
        sort: str,
        limit: int,
        pages: int,
    ) -> None:
        seen, walked = await walk_task_pages(client, auth_headers, {"sort": sort, "limit": limit})

        assert seen == expected_ids(sorted_ids, sort)
        assert walked == pages

    @pytest.mark.parametrize("sort", ["priority", "-due_at", "created_at"])
    async def test_paging_keeps_the_filters(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        sorted_ids: dict[str, int],
        sort: str,
    ) -> None:
        seen, _ = await walk_task_pages(
            client, auth_headers, {"sort": sort, "limit": 1, "priority": "high"}
        )

        high = {sorted_ids[name] for name in "acg"}
        assert seen == [i for i in expected_ids(sorted_ids, sort) if i in high]

    async def test_the_last_full_page_has_no_next_cursor(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        created = [(await create_task(client, auth_headers))["id"] for _ in range(4)]

        seen, pages = await walk_task_pages(
            client, auth_headers, {"sort": "created_at", "limit": 2}
        )

        assert seen == created
        assert pages == 2

    async def test_an_empty_list_has_no_next_cursor(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        body = (await client.get("/tasks", headers=auth_headers)).json()
        assert body == {"items": [], "next_cursor": None}
