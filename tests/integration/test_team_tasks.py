"""API.md "v2 Tasks in projects" and "v2 Comments and notifications in teams", through HTTP."""

from httpx import AsyncClient

from tests.teams import (
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


async def listed_ids(
    client: AsyncClient, who: Person, params: dict[str, object] | None = None
) -> list[int]:
    page = ok(await client.get("/tasks", params=params or {}, headers=who.headers))
    return [task["id"] for task in page["items"]]


async def kinds(client: AsyncClient, who: Person) -> list[tuple[str, int | None]]:
    return [(n["kind"], n["actor_id"]) for n in await notifications_of(client, who)]


class TestTasksInProjects:
    async def test_create_needs_editor_and_membership(self, client: AsyncClient) -> None:
        t = await team(client)
        stranger = await person(client)
        for role in ("viewer", "commenter"):
            body = {"title": "t", "project_id": t.id}
            response = await client.post("/tasks", json=body, headers=t.members[role].headers)
            detail(response, 403)
        task = await task_in(client, t.id, t.members["editor"])
        assert (task["project_id"], task["owner_id"]) == (t.id, t.members["editor"].id)
        response = await client.post(
            "/tasks", json={"title": "t", "project_id": t.id}, headers=stranger.headers
        )
        assert detail(response, 404) == "Project not found"

    async def test_the_assignee_must_be_a_member(self, client: AsyncClient) -> None:
        t = await team(client)
        stranger = await person(client)
        body = {"title": "t", "project_id": t.id, "assignee_id": stranger.id}
        detail(await client.post("/tasks", json=body, headers=t.owner.headers), 422)
        viewer = t.members["viewer"]
        task = await task_in(client, t.id, t.owner, assignee_id=viewer.id)
        assert task["assignee_id"] == viewer.id
        url = f"/tasks/{task['id']}"
        detail(
            await client.patch(url, json={"assignee_id": stranger.id}, headers=t.owner.headers),
            422,
        )
        unassigned = await client.patch(url, json={"assignee_id": None}, headers=t.owner.headers)
        assert ok(unassigned)["assignee_id"] is None

    async def test_every_member_reads_editors_change_and_delete(self, client: AsyncClient) -> None:
        t = await team(client)
        task = await task_in(client, t.id, t.owner)
        url = f"/tasks/{task['id']}"
        for role in ("viewer", "commenter"):
            member = t.members[role]
            assert ok(await client.get(url, headers=member.headers))["id"] == task["id"]
            detail(await client.patch(url, json={"title": "x"}, headers=member.headers), 403)
            detail(await client.delete(url, headers=member.headers), 403)
        changed = await client.patch(
            url, json={"title": "by editor"}, headers=t.members["editor"].headers
        )
        assert ok(changed)["version"] == 2
        # Two members editing at once cannot overwrite each other unseen.
        stale = {**t.members["admin"].headers, "If-Match": '"1"'}
        detail(await client.patch(url, json={"title": "stale"}, headers=stale), 412)
        ok(await client.delete(url, headers=t.members["editor"].headers), 204)

    async def test_moving_needs_editor_in_both_projects(self, client: AsyncClient) -> None:
        t = await team(client)
        editor = t.members["editor"]
        other = await create_project(client, t.owner, "Other")
        task = await task_in(client, t.id, editor)
        url = f"/tasks/{task['id']}"
        # Not a member of the target: it does not exist for them.
        detail(
            await client.patch(url, json={"project_id": other["id"]}, headers=editor.headers), 404
        )
        await add_member(client, other["id"], t.owner, editor, "viewer")
        detail(
            await client.patch(url, json={"project_id": other["id"]}, headers=editor.headers), 403
        )
        moved = await client.patch(url, json={"project_id": other["id"]}, headers=t.owner.headers)
        assert ok(moved)["project_id"] == other["id"]
        # The viewer of the first project no longer sees it.
        detail(await client.get(url, headers=t.members["viewer"].headers), 404)

    async def test_a_move_keeps_the_assignee_only_if_a_member_of_the_target(
        self, client: AsyncClient
    ) -> None:
        t = await team(client)
        other = await create_project(client, t.owner, "Other")
        task = await task_in(client, t.id, t.owner, assignee_id=t.members["viewer"].id)
        url = f"/tasks/{task['id']}"
        detail(
            await client.patch(url, json={"project_id": other["id"]}, headers=t.owner.headers), 422
        )
        both = {"project_id": other["id"], "assignee_id": None}
        assert (
            ok(await client.patch(url, json=both, headers=t.owner.headers))["assignee_id"] is None
        )

    async def test_list_spans_every_project_with_project_and_assignee_filters(
        self, client: AsyncClient
    ) -> None:
        t = await team(client)
        viewer = t.members["viewer"]
        mine = ok(await client.post("/tasks", json={"title": "inbox"}, headers=viewer.headers), 201)
        shared = await task_in(client, t.id, t.owner, assignee_id=viewer.id)
        open_one = await task_in(client, t.id, t.owner)
        assert await listed_ids(client, viewer) == [open_one["id"], shared["id"], mine["id"]]
        assert await listed_ids(client, viewer, {"project_id": t.id}) == [
            open_one["id"],
            shared["id"],
        ]
        assert await listed_ids(client, viewer, {"assignee_id": viewer.id}) == [shared["id"]]
        assert await listed_ids(client, viewer, {"unassigned": "true"}) == [
            open_one["id"],
            mine["id"],
        ]
        stranger = await person(client)
        response = await client.get("/tasks", params={"project_id": t.id}, headers=stranger.headers)
        detail(response, 404)
        assert await listed_ids(client, stranger) == []
        bad = await client.get("/tasks", params={"project_id": 0}, headers=viewer.headers)
        assert bad.status_code == 422


class TestFollowers:
    async def test_creator_assignee_and_commenters_follow(self, client: AsyncClient) -> None:
        t = await team(client)
        editor, commenter, viewer = (t.members[r] for r in ("editor", "commenter", "viewer"))
        task = await task_in(client, t.id, editor, assignee_id=t.members["admin"].id)
        url = f"/tasks/{task['id']}"
        ok(
            await client.post(f"{url}/comments", json={"text": "hi"}, headers=commenter.headers),
            201,
        )
        for who, follows in (
            (editor, True),
            (t.members["admin"], True),
            (commenter, True),
            (viewer, False),
            (t.owner, False),
        ):
            assert ok(await client.get(url, headers=who.headers))["following"] is follows

    async def test_follow_and_unfollow(self, client: AsyncClient) -> None:
        t = await team(client)
        viewer = t.members["viewer"]
        task = await task_in(client, t.id, t.owner)
        url = f"/tasks/{task['id']}"
        ok(await client.put(f"{url}/follow", headers=viewer.headers), 204)
        ok(await client.put(f"{url}/follow", headers=viewer.headers), 204)  # twice: the same
        assert ok(await client.get(url, headers=viewer.headers))["following"] is True
        ok(await client.delete(f"{url}/follow", headers=viewer.headers), 204)
        assert ok(await client.get(url, headers=viewer.headers))["following"] is False
        stranger = await person(client)
        detail(await client.put(f"{url}/follow", headers=stranger.headers), 404)


class TestNotificationsInTeams:
    async def test_followers_hear_of_changes_but_not_of_their_own(
        self, client: AsyncClient
    ) -> None:
        t = await team(client)
        owner, editor, viewer = t.owner, t.members["editor"], t.members["viewer"]
        task = await task_in(client, t.id, owner, assignee_id=editor.id)
        url = f"/tasks/{task['id']}"
        ok(await client.put(f"{url}/follow", headers=viewer.headers), 204)
        ok(await client.patch(url, json={"completed": True}, headers=editor.headers))
        # The editor: told of the assignment and the creation, not of their own completion.
        assert await kinds(client, editor) == [
            ("task_assigned", owner.id),
            ("task_created", owner.id),
            ("project_shared", owner.id),
        ]
        assert await kinds(client, owner) == [("task_completed", editor.id)]
        assert await kinds(client, viewer) == [
            ("task_completed", editor.id),
            ("project_shared", owner.id),
        ]
        notification = (await notifications_of(client, owner))[0]
        assert (notification["task_id"], notification["project_id"]) == (task["id"], t.id)

    async def test_comments_reach_the_followers_except_the_author(
        self, client: AsyncClient
    ) -> None:
        t = await team(client)
        owner, commenter = t.owner, t.members["commenter"]
        task = await task_in(client, t.id, owner)
        url = f"/tasks/{task['id']}/comments"
        ok(await client.post(url, json={"text": "first"}, headers=commenter.headers), 201)
        ok(await client.post(url, json={"text": "reply"}, headers=owner.headers), 201)
        assert await kinds(client, owner) == [("comment_added", commenter.id)]
        assert ("comment_added", owner.id) in await kinds(client, commenter)

    async def test_the_inbox_notifies_its_owner_as_v1_did(self, client: AsyncClient) -> None:
        me = await person(client)
        task = ok(await client.post("/tasks", json={"title": "t"}, headers=me.headers), 201)
        ok(await client.patch(f"/tasks/{task['id']}", json={"completed": True}, headers=me.headers))
        assert await kinds(client, me) == [("task_completed", me.id), ("task_created", me.id)]


class TestCommentsInTeams:
    async def test_roles_for_comments(self, client: AsyncClient) -> None:
        t = await team(client)
        task = await task_in(client, t.id, t.owner)
        url = f"/tasks/{task['id']}/comments"
        viewer, commenter = t.members["viewer"], t.members["commenter"]
        detail(await client.post(url, json={"text": "no"}, headers=viewer.headers), 403)
        assert ok(await client.get(url, headers=viewer.headers))["items"] == []
        comment = ok(await client.post(url, json={"text": "mine"}, headers=commenter.headers), 201)
        assert comment["edited_at"] is None
        one = f"{url}/{comment['id']}"
        detail(await client.patch(one, json={"text": "x"}, headers=t.members["admin"].headers), 403)
        edited = ok(await client.patch(one, json={"text": " better "}, headers=commenter.headers))
        assert (edited["text"], edited["id"]) == ("better", comment["id"])
        assert edited["edited_at"] is not None
        detail(await client.delete(one, headers=t.members["editor"].headers), 403)
        ok(await client.delete(one, headers=t.members["admin"].headers), 204)
        detail(await client.delete(one, headers=t.members["admin"].headers), 404)

    async def test_authors_delete_their_own(self, client: AsyncClient) -> None:
        t = await team(client)
        task = await task_in(client, t.id, t.owner)
        url = f"/tasks/{task['id']}/comments"
        commenter = t.members["commenter"]
        comment = ok(await client.post(url, json={"text": "mine"}, headers=commenter.headers), 201)
        ok(await client.delete(f"{url}/{comment['id']}", headers=commenter.headers), 204)

    async def test_bad_edits(self, client: AsyncClient) -> None:
        me = await person(client)
        task = ok(await client.post("/tasks", json={"title": "t"}, headers=me.headers), 201)
        url = f"/tasks/{task['id']}/comments"
        comment = ok(await client.post(url, json={"text": "c"}, headers=me.headers), 201)
        for body in ({}, {"text": ""}, {"text": "x" * 501}, {"text": "ok", "author_id": 1}):
            response = await client.patch(f"{url}/{comment['id']}", json=body, headers=me.headers)
            assert response.status_code == 422, (body, response.text)
        detail(await client.patch(f"{url}/2000000000", json={"text": "x"}, headers=me.headers), 404)
