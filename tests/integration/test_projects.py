"""API.md "v2 Projects and sharing": projects, the inbox, members and roles, through HTTP."""

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.integration.test_admin import make_admin
from tests.teams import (
    ROLES,
    Person,
    add_member,
    create_project,
    detail,
    notifications_of,
    ok,
    person,
    task_in,
    team,
)

PROJECT_FIELDS = {
    "id",
    "name",
    "description",
    "is_inbox",
    "role",
    "member_count",
    "created_at",
    "updated_at",
    "version",
}


async def projects_of(client: AsyncClient, who: Person, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ok(
        await client.get("/projects", params=params, headers=who.headers)
    )["items"]
    return items


class TestInbox:
    async def test_every_account_has_one_and_v1_tasks_go_there(self, client: AsyncClient) -> None:
        me = await person(client)
        [inbox] = await projects_of(client, me)
        assert set(inbox) == PROJECT_FIELDS
        assert (inbox["name"], inbox["is_inbox"], inbox["role"], inbox["member_count"]) == (
            "Inbox",
            True,
            "owner",
            1,
        )
        task = ok(await client.post("/tasks", json={"title": "v1"}, headers=me.headers), 201)
        assert task["project_id"] == inbox["id"]
        assert task["assignee_id"] is None

    async def test_cannot_be_shared_renamed_or_deleted(self, client: AsyncClient) -> None:
        me, other = await person(client), await person(client)
        [inbox] = await projects_of(client, me)
        url = f"/projects/{inbox['id']}"
        detail(await client.patch(url, json={"name": "x"}, headers=me.headers), 400)
        detail(await client.delete(url, headers=me.headers), 400)
        body = {"username": other.username, "role": "viewer"}
        detail(await client.post(f"{url}/members", json=body, headers=me.headers), 400)
        detail(await client.delete(f"{url}/members/{me.id}", headers=me.headers), 400)
        assert ok(await client.get(url, headers=me.headers))["name"] == "Inbox"


class TestProjects:
    async def test_create_answers_the_project_with_location_and_etag(
        self, client: AsyncClient
    ) -> None:
        me = await person(client)
        response = await client.post(
            "/projects", json={"name": "  Launch ", "description": "Q3"}, headers=me.headers
        )
        project = ok(response, 201)
        assert set(project) == PROJECT_FIELDS
        assert response.headers["location"] == f"/projects/{project['id']}"
        assert response.headers["etag"] == '"1"'
        assert (project["name"], project["description"], project["role"]) == (
            "Launch",
            "Q3",
            "owner",
        )
        assert (project["is_inbox"], project["member_count"], project["version"]) == (
            False,
            1,
            1,
        )

    async def test_names_are_unique_per_owner_whatever_their_case(
        self, client: AsyncClient
    ) -> None:
        me, other = await person(client), await person(client)
        await create_project(client, me, "Launch")
        response = await client.post("/projects", json={"name": "LAUNCH"}, headers=me.headers)
        detail(response, 409)
        await create_project(client, other, "launch")  # another owner may
        # "Inbox" is free for a project of one's own: the inbox is named by the system.
        await create_project(client, me, "Inbox")

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"name": ""},
            {"name": "   "},
            {"name": "x" * 101},
            {"name": "ok", "description": "d" * 2001},
            {"name": "ok", "owner_id": 1},
            {"name": "ok", "is_inbox": True},
            {"name": None},
            {"name": 5},
        ],
    )
    async def test_bad_bodies_are_422(self, client: AsyncClient, body: dict[str, Any]) -> None:
        me = await person(client)
        response = await client.post("/projects", json=body, headers=me.headers)
        assert response.status_code == 422, response.text
        assert isinstance(response.json()["detail"], list)

    async def test_list_is_inbox_first_then_by_name_and_pages(self, client: AsyncClient) -> None:
        me = await person(client)
        for name in ("beta", "Alpha", "gamma", "delta"):
            await create_project(client, me, name)
        first = ok(await client.get("/projects", params={"limit": 3}, headers=me.headers))
        rest = ok(
            await client.get(
                "/projects",
                params={"limit": 3, "cursor": first["next_cursor"]},
                headers=me.headers,
            )
        )
        names = [p["name"] for p in first["items"] + rest["items"]]
        assert names == ["Inbox", "Alpha", "beta", "delta", "gamma"]
        assert rest["next_cursor"] is None
        tampered = await client.get(
            "/projects", params={"cursor": first["next_cursor"][:-2] + "xx"}, headers=me.headers
        )
        detail(tampered, 422)

    async def test_get_patch_with_if_match_and_delete(self, client: AsyncClient) -> None:
        me = await person(client)
        project = await create_project(client, me)
        url = f"/projects/{project['id']}"
        got = await client.get(url, headers=me.headers)
        assert ok(got) == project
        assert got.headers["etag"] == '"1"'
        stale = {**me.headers, "If-Match": '"7"'}
        detail(await client.patch(url, json={"name": "New"}, headers=stale), 412)
        renamed = await client.patch(
            url, json={"name": "New"}, headers={**me.headers, "If-Match": '"1"'}
        )
        assert (ok(renamed)["name"], ok(renamed)["version"]) == ("New", 2)
        assert renamed.headers["etag"] == '"2"'
        detail(await client.delete(url, headers={**me.headers, "If-Match": '"1"'}), 412)
        ok(await client.delete(url, headers=me.headers), 204)
        detail(await client.get(url, headers=me.headers), 404)

    async def test_deleting_a_project_takes_its_tasks_and_comments(
        self, client: AsyncClient
    ) -> None:
        me = await person(client)
        project = await create_project(client, me)
        task = await task_in(client, project["id"], me)
        await client.post(f"/tasks/{task['id']}/comments", json={"text": "c"}, headers=me.headers)
        ok(await client.delete(f"/projects/{project['id']}", headers=me.headers), 204)
        detail(await client.get(f"/tasks/{task['id']}", headers=me.headers), 404)
        listed = ok(await client.get("/tasks", headers=me.headers))["items"]
        assert task["id"] not in [t["id"] for t in listed]

    async def test_a_project_you_are_not_in_does_not_exist(self, client: AsyncClient) -> None:
        owner, stranger = await person(client), await person(client)
        project = await create_project(client, owner)
        url = f"/projects/{project['id']}"
        never = "/projects/2000000000"
        for method, path_suffix, body in (
            ("GET", "", None),
            ("PATCH", "", {"name": "x"}),
            ("DELETE", "", None),
            ("GET", "/members", None),
            ("POST", "/members", {"username": stranger.username, "role": "viewer"}),
            ("PATCH", f"/members/{owner.id}", {"role": "viewer"}),
            ("DELETE", f"/members/{owner.id}", None),
        ):
            theirs = await client.request(
                method, url + path_suffix, json=body, headers=stranger.headers
            )
            unknown = await client.request(
                method, never + path_suffix, json=body, headers=stranger.headers
            )
            assert detail(theirs, 404) == detail(unknown, 404) == "Project not found"


class TestRoles:
    async def test_who_may_rename_and_delete(self, client: AsyncClient) -> None:
        t = await team(client)
        url = f"/projects/{t.id}"
        for role in ("viewer", "commenter", "editor"):
            body = {"name": f"by {role}"}
            detail(await client.patch(url, json=body, headers=t.members[role].headers), 403)
        ok(await client.patch(url, json={"name": "by admin"}, headers=t.members["admin"].headers))
        for role in ("viewer", "commenter", "editor", "admin"):
            detail(await client.delete(url, headers=t.members[role].headers), 403)
        ok(await client.delete(url, headers=t.owner.headers), 204)

    async def test_every_member_sees_the_project_with_their_role(self, client: AsyncClient) -> None:
        t = await team(client)
        for role in ROLES:
            project = ok(await client.get(f"/projects/{t.id}", headers=t.members[role].headers))
            assert (project["role"], project["member_count"]) == (role, 5)
        members = ok(
            await client.get(f"/projects/{t.id}/members", headers=t.members["viewer"].headers)
        )
        assert {m["username"]: m["role"] for m in members["items"]} == {
            t.members[role].username: role for role in ROLES
        }
        assert set(members["items"][0]) == {"user_id", "username", "role", "added_at"}


class TestMembers:
    async def test_adding_tells_the_new_member(self, client: AsyncClient) -> None:
        owner, bob = await person(client), await person(client)
        project = await create_project(client, owner)
        member = await add_member(client, project["id"], owner, bob, "editor")
        assert (member["user_id"], member["username"], member["role"]) == (
            bob.id,
            bob.username,
            "editor",
        )
        [shared] = await notifications_of(client, bob)
        assert (shared["kind"], shared["task_id"], shared["project_id"], shared["actor_id"]) == (
            "project_shared",
            None,
            project["id"],
            owner.id,
        )
        assert project["id"] in [p["id"] for p in await projects_of(client, bob)]

    async def test_add_refusals(self, client: AsyncClient) -> None:
        t = await team(client)
        url = f"/projects/{t.id}/members"
        admin = t.members["admin"]
        newcomer = await person(client)
        body = {"username": newcomer.username, "role": "viewer"}
        detail(await client.post(url, json=body, headers=t.members["editor"].headers), 403)
        unknown = {"username": "nobody_here", "role": "viewer"}
        detail(await client.post(url, json=unknown, headers=admin.headers), 404)
        again = {"username": t.members["viewer"].username, "role": "editor"}
        detail(await client.post(url, json=again, headers=admin.headers), 409)
        for role in ("owner", "boss", ""):
            response = await client.post(
                url, json={"username": newcomer.username, "role": role}, headers=admin.headers
            )
            assert response.status_code == 422, response.text
        # An admin may add another admin ("roles up to admin").
        ok(await client.post(url, json={**body, "role": "admin"}, headers=admin.headers), 201)

    async def test_an_inactive_user_cannot_be_added(
        self, client: AsyncClient, session: AsyncSession
    ) -> None:
        owner, root, gone = await person(client), await person(client), await person(client)
        project = await create_project(client, owner)
        await make_admin(session, root.id)
        ok(
            await client.patch(
                f"/admin/users/{gone.id}", json={"is_active": False}, headers=root.headers
            )
        )
        body = {"username": gone.username, "role": "viewer"}
        response = await client.post(
            f"/projects/{project['id']}/members", json=body, headers=owner.headers
        )
        detail(response, 404)

    async def test_role_changes_follow_the_table(self, client: AsyncClient) -> None:
        t = await team(client)
        url = f"/projects/{t.id}/members"
        admin, owner = t.members["admin"], t.owner
        viewer, editor = t.members["viewer"], t.members["editor"]
        change = {"role": "commenter"}
        detail(await client.patch(f"{url}/{viewer.id}", json=change, headers=editor.headers), 403)
        ok(await client.patch(f"{url}/{viewer.id}", json=change, headers=admin.headers))
        promoted = await client.patch(
            f"{url}/{viewer.id}", json={"role": "admin"}, headers=admin.headers
        )
        assert ok(promoted)["role"] == "admin"
        # Only the owner changes an admin, or the owner's role; nobody demotes the owner.
        demote = {"role": "viewer"}
        detail(await client.patch(f"{url}/{viewer.id}", json=demote, headers=admin.headers), 403)
        detail(await client.patch(f"{url}/{owner.id}", json=demote, headers=admin.headers), 400)
        detail(await client.patch(f"{url}/{owner.id}", json=demote, headers=owner.headers), 400)
        ok(await client.patch(f"{url}/{viewer.id}", json=demote, headers=owner.headers))
        detail(await client.patch(f"{url}/2000000000", json=demote, headers=owner.headers), 404)
        bad = await client.patch(f"{url}/{viewer.id}", json={"role": "god"}, headers=owner.headers)
        assert bad.status_code == 422

    async def test_handing_ownership_over(self, client: AsyncClient) -> None:
        t = await team(client)
        url = f"/projects/{t.id}/members"
        owner, editor, admin = t.owner, t.members["editor"], t.members["admin"]
        detail(
            await client.patch(f"{url}/{editor.id}", json={"role": "owner"}, headers=admin.headers),
            403,
        )
        handed = await client.patch(
            f"{url}/{editor.id}", json={"role": "owner"}, headers=owner.headers
        )
        assert ok(handed)["role"] == "owner"
        roles = {
            m["user_id"]: m["role"]
            for m in ok(await client.get(url, headers=owner.headers))["items"]
        }
        assert (roles[editor.id], roles[owner.id]) == ("owner", "admin")
        assert list(roles.values()).count("owner") == 1
        # The new owner deletes; the old one no longer may.
        detail(await client.delete(f"/projects/{t.id}", headers=owner.headers), 403)
        ok(await client.delete(f"/projects/{t.id}", headers=editor.headers), 204)

    async def test_leaving_and_removing(self, client: AsyncClient) -> None:
        t = await team(client)
        url = f"/projects/{t.id}/members"
        viewer, commenter, editor = (t.members[r] for r in ("viewer", "commenter", "editor"))
        detail(await client.delete(f"{url}/{commenter.id}", headers=editor.headers), 403)
        ok(await client.delete(f"{url}/{viewer.id}", headers=viewer.headers), 204)  # leaves
        detail(await client.get(f"/projects/{t.id}", headers=viewer.headers), 404)
        ok(await client.delete(f"{url}/{commenter.id}", headers=t.members["admin"].headers), 204)
        detail(await client.delete(f"{url}/{t.owner.id}", headers=t.members["admin"].headers), 400)
        detail(await client.delete(f"{url}/{t.owner.id}", headers=t.owner.headers), 400)
        detail(await client.delete(f"{url}/{commenter.id}", headers=t.owner.headers), 404)

    async def test_a_removed_member_is_unassigned_and_stops_following(
        self, client: AsyncClient
    ) -> None:
        t = await team(client)
        editor = t.members["editor"]
        task = await task_in(client, t.id, t.owner, assignee_id=editor.id)
        detail_url = f"/tasks/{task['id']}"
        assert ok(await client.get(detail_url, headers=editor.headers))["following"] is True
        said = {"text": "before leaving"}
        ok(await client.post(f"{detail_url}/comments", json=said, headers=editor.headers), 201)
        ok(
            await client.delete(f"/projects/{t.id}/members/{editor.id}", headers=t.owner.headers),
            204,
        )
        after = ok(await client.get(detail_url, headers=t.owner.headers))
        assert after["assignee_id"] is None
        # Their comments stay.
        comments = ok(await client.get(f"{detail_url}/comments", headers=t.owner.headers))
        assert [c["text"] for c in comments["items"]] == ["before leaving"]
        # Added back: they see the task again, unassigned and not following it.
        await add_member(client, t, t.owner, editor, "editor")
        assert ok(await client.get(detail_url, headers=editor.headers))["following"] is False

    async def test_members_page_by_cursor(self, client: AsyncClient) -> None:
        t = await team(client)
        url = f"/projects/{t.id}/members"
        first = ok(await client.get(url, params={"limit": 2}, headers=t.owner.headers))
        seen = [m["user_id"] for m in first["items"]]
        cursor = first["next_cursor"]
        while cursor:
            page = ok(
                await client.get(
                    url, params={"limit": 2, "cursor": cursor}, headers=t.owner.headers
                )
            )
            seen += [m["user_id"] for m in page["items"]]
            cursor = page["next_cursor"]
        assert seen == sorted(m.id for m in t.members.values())
