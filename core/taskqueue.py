"""Enqueue Celery tasks from the API's event loop without a blocking Celery/kombu call.

The message is Celery's task protocol 2 as kombu's Redis transport stores it (a JSON envelope
pushed onto the queue's list); a test runs it through a real worker. Workers and the beat use
Celery's own `send_task`.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid
from typing import Any, Protocol

import orjson
import redis.asyncio as aredis

from core.bus import Keys, on_a_live_connection
from core.logs import REQUEST_ID_HEADER, current_request_id

PROCESS_SESSION_TASK = "sessions.process"
_ORIGIN = f"{os.getpid()}@{socket.gethostname()}"


def task_message(task_name: str, args: list[Any], queue: str, task_id: str | None = None,
                 request_id: str | None = None) -> bytes:
    """The queued message; `request_id` rides as a custom header, which Celery exposes on `task.request`."""
    task_id = task_id or str(uuid.uuid4())
    body = orjson.dumps([args, {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    return orjson.dumps({
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": task_name, "id": task_id, "shadow": None, "eta": None, "expires": None,
            "group": None, "group_index": None, "retries": 0, "timelimit": [None, None],
            "root_id": task_id, "parent_id": None, "argsrepr": repr(args), "kwargsrepr": "{}",
            "origin": _ORIGIN, "ignore_result": True, REQUEST_ID_HEADER: request_id,
        },
        "properties": {
            "correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
            "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
        },
    })


class SessionProcessor(Protocol):
    """Gets a session's pending messages answered: by a queued task, or inline."""

    async def process_session(self, session_id: uuid.UUID) -> None: ...


class AsyncTaskSender:
    def __init__(self, client: aredis.Redis, keys: Keys, queue: str) -> None:
        self._redis = client
        self._queue = queue
        self._queue_key = keys.task_queue(queue)

    async def process_session(self, session_id: uuid.UUID) -> None:
        message = task_message(PROCESS_SESSION_TASK, [str(session_id)], self._queue, request_id=current_request_id())
        await on_a_live_connection(self._redis, lambda: self._redis.lpush(self._queue_key, message))
