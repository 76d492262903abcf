"""socket.io on the API's own port: clients join a session's room and get its events pushed.

Rooms are named by session id. Each room with members in this process is fed by ONE session feed from
the process's event hub (not one per socket), so any API replica can serve any session's sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import socketio
from litestar import Litestar

from api.resources import Resources
from core.auth import READ, Principal, authenticate, environ_headers
from core.errors import DomainError, InvalidInput, Unauthorized
from core.services.events import SessionFeed
from core.services.sessions import Participants, participants
from core.settings import Settings

log = logging.getLogger(__name__)
ROOM_JOINING = 1  # ElizaOS's SOCKET_MESSAGE_TYPE for joining a channel over the `message` event
RETRY_SECONDS = 1.0


def _room_of(data: Any) -> uuid.UUID:
    """The session named by `{roomId}` (the guide) or `{channelId}` (ElizaOS clients)."""
    raw = (data.get("roomId") or data.get("channelId")) if isinstance(data, dict) else None
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        raise InvalidInput("roomId must be the id of a session", field="roomId") from None


def _refused(code: str, message: str) -> socketio.exceptions.ConnectionRefusedError:
    """A refused handshake: the client's `connect_error` has `message`, and `data` in our error shape."""
    return socketio.exceptions.ConnectionRefusedError(message, {"code": code, "message": message})


def _broadcast(message: dict[str, Any], who: Participants) -> dict[str, Any]:
    """A stored message as ElizaOS's `messageBroadcast` payload."""
    metadata = message.get("metadata") or {}
    agent = message["role"] == "agent"
    room = str(who.session_id)
    return {
        "id": message["id"], "roomId": room, "channelId": room, "senderId": message["authorId"],
        "senderName": who.agent_name if agent else metadata.get("senderName") or who.user_id,
        "text": message["content"], "thought": metadata.get("thought"), "actions": metadata.get("actions") or [],
        "createdAt": message["createdAt"], "source": "agent_response" if agent else metadata.get("source") or "api",
        "replyTo": message.get("replyTo"),
    }


def socket_events(event: dict[str, Any], who: Participants) -> list[tuple[str, dict[str, Any]]]:
    """The socket.io events (name, payload) announcing one session event."""
    kind, data, room = event["type"], event["data"], str(who.session_id)
    if kind == "message.created" or kind == "message.completed":
        return [("messageBroadcast", _broadcast(data["message"], who))]
    if kind == "message.chunk":
        return [("messageStreamChunk", {"messageId": data["messageId"], "roomId": room, "channelId": room,
                                        "replyTo": data["replyTo"], "index": data["index"], "chunk": data["delta"],
                                        "senderId": str(who.agent_id)})]
    if kind == "message.failed":  # otherwise a client that sent over the websocket transport would wait forever
        return [("messageError", {"messageId": data["messageId"], "roomId": room, "channelId": room,
                                  **(data.get("error") or {})})]
    named = {"session.expiring": "sessionExpirationWarning", "session.expired": "sessionExpired",
             "session.renewed": "sessionRenewed"}.get(kind)
    if named is None:
        return []
    return [(named, {"sessionId": room, "roomId": room, **data})]


class Realtime:
    """The socket.io server and the bridges feeding its rooms from the event hub."""

    def __init__(self, settings: Settings) -> None:
        self.sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=settings.cors_origins,
                                        logger=False, engineio_logger=False)
        self._resources: Resources | None = None
        self._members: dict[uuid.UUID, set[str]] = defaultdict(set)
        self._bridges: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.sio.on("connect", self._connect)
        self.sio.on("join", self._join)
        self.sio.on("leave", self._leave)
        self.sio.on("message", self._message)
        self.sio.on("disconnect", self._disconnect)

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncGenerator[None]:
        """Runs after the resources are open (a later Litestar lifespan), closes bridges before they close."""
        self._resources = app.state.resources
        try:
            yield
        finally:
            for task in self._bridges.values():
                task.cancel()
            for task in list(self._bridges.values()):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._bridges.clear()
            self._resources = None

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        """The handshake carries the same credentials as HTTP: headers, or the client's `auth` option
        (`{apiKey}` or `{token}`). Refused handshakes get a `connect_error` with our error code."""
        resources = self._resources
        if resources is None:
            raise _refused("SERVICE_UNAVAILABLE", "the server is starting or stopping")
        credentials = {**environ_headers(environ), **(auth if isinstance(auth, dict) else {})}
        try:
            principal = authenticate(credentials, resources.settings)
        except Unauthorized as error:
            raise _refused(error.code, error.message) from None
        await self.sio.save_session(sid, {"principal": principal})

    async def _principal(self, sid: str) -> Principal:
        return (await self.sio.get_session(sid))["principal"]

    async def _join(self, sid: str, data: Any) -> dict[str, Any]:
        resources = self._resources
        if resources is None:
            return await self._refuse(sid, "SERVICE_UNAVAILABLE", "the server is starting or stopping")
        try:
            principal = await self._principal(sid)
            principal.require_scope(READ)
            session_id = _room_of(data)
            # Listen before reading the session: nothing published from here on can be missed.
            subscription = resources.hub.listen(session_id)
            try:
                uow = resources.unit_of_work()
                try:
                    who = await participants(uow, session_id, owner=principal.owner)  # another user's: not found
                finally:
                    await uow.rollback()  # read only: give the connection back (on SQLite, its lock too)
                head = await resources.events.head(session_id)
            except BaseException:
                subscription.close()
                raise
        except DomainError as error:
            return await self._refuse(sid, error.code, error.message)
        if not self.sio.manager.is_connected(sid, "/"):  # it left while we looked the session up
            subscription.close()
            return {"ok": False}
        room = str(session_id)
        await self.sio.enter_room(sid, room)
        self._members[session_id].add(sid)
        if session_id in self._bridges:
            subscription.close()  # the room is fed already
        else:
            feed = SessionFeed(resources.events, subscription, head, catch_up=False)
            self._bridges[session_id] = asyncio.create_task(self._feed_room(feed, who), name=f"room-{room}")
        joined = {"roomId": room, "channelId": room, "sessionId": room}
        await self.sio.emit("room_joined", joined, to=sid)
        return {"ok": True, **joined}

    async def _leave(self, sid: str, data: Any) -> dict[str, Any]:
        try:
            session_id = _room_of(data)
        except DomainError as error:
            return await self._refuse(sid, error.code, error.message)
        await self.sio.leave_room(sid, str(session_id))
        self._forget(sid, session_id)
        return {"ok": True, "roomId": str(session_id)}

    async def _message(self, sid: str, data: Any) -> dict[str, Any]:
        """ElizaOS's numbered messages: `{type: 1, payload: {channelId}}` joins a room."""
        kind = data.get("type") if isinstance(data, dict) else None
        if str(kind) == str(ROOM_JOINING):
            return await self._join(sid, data.get("payload") or {})
        return await self._refuse(sid, "UNSUPPORTED_MESSAGE_TYPE",
                                  "only ROOM_JOINING (1) is supported; send messages over HTTP")

    async def _disconnect(self, sid: str, *_: Any) -> None:
        for session_id in [room for room, members in self._members.items() if sid in members]:
            self._forget(sid, session_id)

    def _forget(self, sid: str, session_id: uuid.UUID) -> None:
        members = self._members.get(session_id)
        if members is None:
            return
        members.discard(sid)
        if not members:  # the last local member left: stop feeding the room
            del self._members[session_id]
            task = self._bridges.pop(session_id, None)
            if task is not None:
                task.cancel()

    async def _refuse(self, sid: str, code: str, message: str) -> dict[str, Any]:
        error = {"code": code, "message": message}
        await self.sio.emit("error", error, to=sid)
        return {"ok": False, "error": error}

    async def _feed_room(self, feed: SessionFeed, who: Participants) -> None:
        room = str(who.session_id)
        try:
            while True:
                try:
                    event = await feed.next()
                    for name, payload in socket_events(event, who):
                        await self.sio.emit(name, payload, room=room)
                except asyncio.CancelledError:
                    raise
                except Exception:  # e.g. the database is briefly away during a gap fill: keep the room fed
                    log.exception("feeding socket.io room %s failed; retrying", room)
                    await asyncio.sleep(RETRY_SECONDS)
        finally:
            feed.close()
