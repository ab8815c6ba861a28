"""Path and query parameter types shared by the routers."""

from typing import Annotated

from fastapi import Depends, Header, Path

from app.schemas.common import MAX_ID

# Ids are positive and fit the database's integer: anything else is a 422, never a 500.
TaskId = Annotated[int, Path(ge=1, le=MAX_ID, description="The task's id")]
CommentId = Annotated[int, Path(ge=1, le=MAX_ID, description="The comment's id")]
NotificationId = Annotated[int, Path(ge=1, le=MAX_ID, description="The notification's id")]
UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="The user's id")]
ProjectId = Annotated[int, Path(ge=1, le=MAX_ID, description="The project's id")]

# The largest value of a `version` column (a 32-bit integer).
MAX_VERSION = 2_147_483_647
# Versions start at 1: an If-Match we never issued demands this one, which nothing has.
NEVER_MATCHES = 0


async def parse_if_match(
    if_match: Annotated[
        str | None,
        Header(
            description='The version of the task or project as its ETag, e.g. `"3"`; '
            "`*` matches any"
        ),
    ] = None,
) -> int | None:
    """The version an If-Match header demands, or None for "any version".

    Strong comparison (RFC 9110 13.1.1): a weak tag (`W/"3"`) never matches. One ETag per
    header: a list of several is answered 412, like any value we never issued. Such a value
    becomes version 0, which no task has, rather than a 412 raised here: a dependency that
    raises runs before the request is validated, so a bad path would get a 412 instead of
    its 422, and another user's task would get a 412 instead of its 404 (RFC 9110 13.2.2:
    preconditions are evaluated after the request is otherwise found valid).
    """
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip()
    if tag.startswith('"') and tag.endswith('"') and len(tag) > 1:
        tag = tag[1:-1]
    # The version column is a 32-bit integer: a bigger number would make PostgreSQL fail the
    # query (a 500), and isdigit() alone accepts "²", which int() refuses.
    if not (tag.isascii() and tag.isdigit()) or len(tag) > 10 or int(tag) > MAX_VERSION:
        return NEVER_MATCHES
    return int(tag)


IfMatch = Annotated[int | None, Depends(parse_if_match)]
WebhookId = Annotated[int, Path(ge=1, le=MAX_ID, description="The webhook's id")]
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID, description="The delivery's id")]
