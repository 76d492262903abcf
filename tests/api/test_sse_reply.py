"""The SSE reply's body without HTTP: what it sends when no reply comes in time."""

from __future__ import annotations

import orjson

from api.sending import reply_events
from core.schemas import MessageCreate
from core.services.events import ExchangeFeed
from core.services.messages import submit_message
from core.settings import Settings
from tests.support.events import World, run


def test_sse_reply_ends_with_reply_timeout_when_no_reply_comes(sqlite_url: str, redis_prefix: str) -> None:
    async def scenario(w: World) -> None:
        sid = await w.new_session()
        subscription = w.hub.listen(sid)
        uow = w.unit_of_work()
        submission = await submit_message(uow, Settings(), sid, MessageCreate(content="Hello"), None, "",
                                          owner=None, limiter=w.limiter)
        await uow.commit()
        feed = ExchangeFeed(w.log, subscription, submission.user_message.id, 1, catch_up=False)

        sent = [event async for event in reply_events(submission, feed, wait_seconds=0.2)]

        assert [(event.event, event.id) for event in sent] == [("user_message", "1-0"), ("error", None)]
        assert orjson.loads(sent[-1].data)["code"] == "REPLY_TIMEOUT"
        assert w.hub.listener_count == 0

    run(sqlite_url, redis_prefix, scenario)
