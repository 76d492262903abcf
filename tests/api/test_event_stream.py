"""The /events body generator without HTTP: SSE framing of the feed, and cleanup when the client leaves."""

from __future__ import annotations

import asyncio

from api.streaming import event_stream
from core.auth import OPEN
from core.services.events import follow_session
from core.streams import StreamSlots
from tests.support.events import World, run


def test_stream_frames_events_and_unsubscribes_when_closed(sqlite_url: str, redis_prefix: str) -> None:
    async def scenario(w: World) -> None:
        sid = await w.new_session()
        slots = StreamSlots(per_user=1, per_process=1)
        stream = event_stream(await follow_session(w.log, w.hub, sid, None), OPEN, slots.take(OPEN))
        await w.store(sid, 1)
        await w.publish_chunk(sid, after_seq=1, index=1)

        durable = await asyncio.wait_for(anext(stream), 5)
        chunk = await asyncio.wait_for(anext(stream), 5)
        assert (durable.event, durable.id) == ("state.updated", "1-0")
        assert (chunk.event, chunk.id) == ("message.chunk", None)
        assert w.hub.listener_count == 1

        await stream.aclose()  # what sse-starlette does when the client disconnects

        assert w.hub.listener_count == 0 and slots.held == 0  # its stream slot is given back too

    run(sqlite_url, redis_prefix, scenario)
