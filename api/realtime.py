"""socket.io on the API's own port: clients join a session's room and get its events pushed.

Rooms are named by session id. Each room with members in this process is fed by ONE session feed from
the process's event hub (not one per socket), so any API replica can serve any session's sockets.

Limits: client messages are at most SOCKETIO_MAX_MESSAGE_BYTES from the first packet on (ours are tiny); an
engine.io connection that has not completed the authenticated socket.io connect within
SOCKETIO_CONNECT_TIMEOUT_SECONDS is closed; a socket takes a stream slot (STREAMS_PER_USER, STREAMS_PER_PROCESS)
and a socket authenticated with a user token is disconnected (after an `error` TOKEN_EXPIRED) when the token
expires; every `join` checks the token again.
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
from core.clock import utcnow
from core.errors import DomainError, InvalidInput, Unauthorized
from core.services.events import SessionFeed
from core.services.sessions import Participants, participants
from core.sessions.status import Role
from core.settings import Settings
from core.streams import StreamSlot

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


def _client_address(environ: dict[str, Any]) -> str | None:
    client = environ.get("asgi.scope", {}).get("client")  # engine.io's REMOTE_ADDR is always 127.0.0.1
    return client[0] if client else None


TOKEN_EXPIRED = {"code": "TOKEN_EXPIRED", "message": "the token has expired; connect again with a fresh one"}


def _broadcast(message: dict[str, Any], who: Participants) -> dict[str, Any]:
    """A stored message as ElizaOS's `messageBroadcast` payload."""
    metadata = message.get("metadata") or {}
    agent = message["role"] == Role.AGENT
    room = str(who.session_id)
    if agent:
        sender, thought, actions, source = who.agent_name, metadata.get("thought"), metadata.get("actions") or [], \
            "agent_response"
    else:  # what a user put in its own metadata never makes its message look like the agent's
        client_source = metadata.get("source")
        sender, thought, actions = who.user_id, None, []
        source = client_source if isinstance(client_source, str) and client_source != "agent_response" else "api"
    return {
        "id": message["id"], "roomId": room, "channelId": room, "senderId": message["authorId"],
        "senderName": sender, "text": message["content"], "thought": thought, "actions": actions,
        "createdAt": message["createdAt"], "source": source, "replyTo": message.get("replyTo"),
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
                                        logger=False, engineio_logger=False,
                                        max_http_buffer_size=settings.socketio_max_message_bytes)
        self._settings = settings
        self._resources: Resources | None = None
        self._members: dict[uuid.UUID, set[str]] = defaultdict(set)
        self._bridges: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._slots: dict[str, StreamSlot] = {}  # socket.io sid -> its stream slot
        self._expiry: dict[str, asyncio.TimerHandle] = {}  # socket.io sid -> its token's expiry
        self._background: set[asyncio.Task[None]] = set()  # disconnections under way (the loop holds tasks weakly)
        self._socketio_engine_connect = self.sio.eio.handlers["connect"]  # socket.io's own handler, wrapped
        self.sio.eio.on("connect", self._engine_connect)
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

    async def _engine_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        """A new engine.io connection, before any credentials: refused beyond the process's cap, and closed
        unless it completes the authenticated socket.io connect in time."""
        if len(self.sio.eio.sockets) > self._settings.streams_per_process:  # this one is counted already
            log.warning("engine.io connection refused: %d open", len(self.sio.eio.sockets) - 1)
            return {"code": "STREAM_CAPACITY_REACHED", "message": "this server holds as many connections as it "
                                                                  "allows; retry shortly"}
        asyncio.get_running_loop().call_later(self._settings.socketio_connect_timeout_seconds,
                                              self._drop_if_anonymous, eio_sid)
        return await self._socketio_engine_connect(eio_sid, environ)

    def _drop_if_anonymous(self, eio_sid: str) -> None:
        if eio_sid in self.sio.eio.sockets and self.sio.manager.sid_from_eio_sid(eio_sid, "/") is None:
            self._spawn(self.sio.eio.disconnect(eio_sid))

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        """The handshake carries the same credentials as HTTP: headers, or the client's `auth` option
        (`{apiKey}` or `{token}`). Refused handshakes get a `connect_error` with our error code."""
        resources = self._resources
        if resources is None:
            raise _refused("SERVICE_UNAVAILABLE", "the server is starting or stopping")
        credentials = {**environ_headers(environ), **(auth if isinstance(auth, dict) else {})}
        address = _client_address(environ)
        try:
            resources.auth_failures.check(address)
            try:
                principal = authenticate(credentials, resources.settings)
            except Unauthorized as error:
                await resources.auth_failures.failed(address, error, where="socket.io")
                raise
            slot = resources.streams.take(principal)
        except DomainError as error:  # bad credentials, refused address, too many streams
            raise _refused(error.code, error.message) from None
        self._slots[sid] = slot
        left = principal.seconds_left(utcnow())
        if left is not None:
            self._expiry[sid] = asyncio.get_running_loop().call_later(
                max(0.0, left), lambda: self._spawn(self._expire(sid)))
        await self.sio.save_session(sid, {"principal": principal})

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _expire(self, sid: str) -> None:
        """The socket's token ran out: say so, then disconnect (the client connects again with a fresh one)."""
        if self.sio.manager.is_connected(sid, "/"):
            await self.sio.emit("error", TOKEN_EXPIRED, to=sid)
            await self.sio.disconnect(sid)

    async def _principal(self, sid: str) -> Principal:
        principal: Principal = (await self.sio.get_session(sid))["principal"]
        return principal

    async def _join(self, sid: str, data: Any) -> dict[str, Any]:
        resources = self._resources
        if resources is None:
            return await self._refuse(sid, "SERVICE_UNAVAILABLE", "the server is starting or stopping")
        try:
            principal = await self._principal(sid)
            principal.ensure_current(utcnow())  # the token may have expired since the handshake
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
        slot, expiry = self._slots.pop(sid, None), self._expiry.pop(sid, None)
        if slot is not None:
            slot.release()
        if expiry is not None:
            expiry.cancel()

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
