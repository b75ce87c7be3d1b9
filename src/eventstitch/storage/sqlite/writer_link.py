"""The worker's side of the SQLite writer process: events handed over a Unix socket.

Under `serve`, one process owns the SQLite file's event writes (see `writer_process`): every
HTTP worker hands it the events of its requests, and it group-commits them across workers and
answers each after its commit. A worker builds the row on its own cores, gathers what its
requests queued during one turn of the event loop into one frame, and resolves each request's
future when the answer for its event comes back. Nothing is answered stored unless the writer
said so after its commit; when the link breaks (the writer process died) every event waiting on
it is answered 503, nothing acknowledged: the sender may retry.

Frames are a 4-byte big-endian length and a pickle. The socket lives in an owner-only folder
and is owner-only itself; only this user's processes can connect, the ones that could open
the database file anyway.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import struct
from typing import Any, cast

from eventstitch import metrics
from eventstitch.storage.errors import (
    DuplicateDelivery,
    QueueFull,
    SourceRefused,
    StorageUnavailable,
)
from eventstitch.storage.records import Claim, EventRecord
from eventstitch.storage.sqlite import rows as event_rows

log = logging.getLogger(__name__)

HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024
RECONNECT_SECONDS = 5.0
"""How long a worker keeps trying to reach a (restarting) writer before answering 503."""

Unit = tuple[str, tuple[Any, ...], Claim | None, str | None]
"""One event as sent: accepted kinds (",webhook,"), its checked-insert row, claim, delivery
key. A frame holds units and lists of units (one delivery's events, committed together)."""


def frame(payload: Any) -> bytes:
    body = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def frames(buffer: bytearray) -> list[Any]:
    """The complete frames at the start of `buffer`, removed from it."""
    found = []
    start = 0
    size = len(buffer)
    while size - start >= 4:
        (length,) = HEADER.unpack_from(buffer, start)
        if length > MAX_FRAME:
            raise ValueError(f"frame of {length} bytes")
        if size - start - 4 < length:
            break
        # Only this user's processes can reach the socket (see the module's docstring).
        found.append(pickle.loads(buffer[start + 4 : start + 4 + length]))  # noqa: S301
        start += 4 + length
    if start:
        del buffer[:start]
    return found


def encode_result(result: Any) -> Any:
    """A writer's result for one event as it crosses the socket (exceptions as tuples)."""
    if result is None or isinstance(result, str):
        return result
    if isinstance(result, DuplicateDelivery):
        return ("duplicate", result.original_event_id)
    if isinstance(result, SourceRefused):
        return ("refused", result.source_id, result.reason)
    if isinstance(result, QueueFull):
        return ("full", str(result))
    return ("unavailable", str(result))


def decode_result(encoded: Any) -> Any:
    if encoded is None or isinstance(encoded, str):
        return encoded
    tag = encoded[0]
    if tag == "duplicate":
        return DuplicateDelivery(encoded[1])
    if tag == "refused":
        return SourceRefused(encoded[1], encoded[2])
    if tag == "full":
        return QueueFull(encoded[1])
    return StorageUnavailable(encoded[1])


class RemoteWriter(asyncio.Protocol):
    """Hands events to the writer process; the same `submit_event` and `submit_group` as the
    in-process writer thread, so the event store does not know which one it has."""

    def __init__(self, socket_path: str, *, queue_size: int) -> None:
        self._path = socket_path
        self._queue_size = queue_size
        self._transport: asyncio.Transport | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._buffer = bytearray()
        # Queued during this turn of the loop, sent as one frame at its end.
        self._units: list[Unit | list[Unit]] = []
        self._futures: list[asyncio.Future[Any]] = []
        self._flush_scheduled = False
        self._frame_id = 0
        self._waiting: dict[int, list[asyncio.Future[Any]]] = {}
        self._outstanding = 0
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await self._connect()

    async def close(self) -> None:
        """Wait for the answers still owed (the requests waiting on them are being drained),
        then close the link."""
        self._closed = True
        for _ in range(600):
            if not self._waiting and not self._units:
                break
            await asyncio.sleep(0.05)
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def depth(self) -> int:
        return self._outstanding

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECONNECT_SECONDS
        while True:
            try:
                await loop.create_unix_connection(lambda: self, self._path)
                return
            except OSError:
                if loop.time() > deadline or self._closed:
                    raise
                await asyncio.sleep(0.05)

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)
        self._buffer.clear()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        for frame_id, results, commits in frames(self._buffer):
            for events, seconds in commits:
                metrics.COMMIT_BATCH_SIZE.observe(events)
                metrics.COMMIT_SECONDS.observe(seconds)
            futures = self._waiting.pop(frame_id)
            self._outstanding -= len(futures)
            for future, result in zip(futures, results, strict=True):
                if future.done():  # the request was cancelled; its write stands
                    continue
                decoded = decode_result(result)
                if isinstance(decoded, BaseException):
                    future.set_exception(decoded)
                else:
                    future.set_result(decoded)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        waiting, self._waiting = self._waiting, {}
        lost = [future for futures in waiting.values() for future in futures]
        self._outstanding -= len(lost)
        if lost:
            log.warning("the writer process went away with %d events unanswered", len(lost))
        _fail(lost, "the writer process went away; the event may not be stored, retry")

    # -- what the event store calls ---------------------------------------------------------
    def submit_event(
        self,
        event: EventRecord,
        accepted_kinds: frozenset[str],
        claim: Claim | None = None,
        delivery_key: str | None = None,
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if self._outstanding >= self._queue_size:
            raise QueueFull("the write queue is full")
        future: asyncio.Future[Any] = loop.create_future()
        kinds = event_rows.kinds_param(accepted_kinds)
        self._units.append((kinds, (*event_rows.event_row(event), kinds), claim, delivery_key))
        self._futures.append(future)
        self._outstanding += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def submit_group(
        self,
        items: list[tuple[EventRecord, Claim | None, str | None]],
        accepted_kinds: frozenset[str],
    ) -> list[asyncio.Future[Any]]:
        loop = asyncio.get_running_loop()
        if self._outstanding + len(items) > self._queue_size:
            raise QueueFull("the write queue is full")
        kinds = event_rows.kinds_param(accepted_kinds)
        group: list[Unit] = [
            (kinds, (*event_rows.event_row(event), kinds), claim, key)
            for event, claim, key in items
        ]
        futures: list[asyncio.Future[Any]] = [loop.create_future() for _ in items]
        self._units.append(group)
        self._futures.extend(futures)
        self._outstanding += len(futures)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return futures

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._units:
            return
        if self._transport is None or self._transport.is_closing():
            if self._connecting is None:
                self._connecting = asyncio.get_running_loop().create_task(self._reconnect())
            return  # sent once connected (or failed)
        units, self._units = self._units, []
        futures, self._futures = self._futures, []
        self._frame_id += 1
        self._waiting[self._frame_id] = futures
        self._transport.write(frame((self._frame_id, units)))

    async def _reconnect(self) -> None:
        try:
            await self._connect()
        except OSError as exc:
            log.warning("the writer process cannot be reached: %s", exc)
            units, self._units = self._units, []
            futures, self._futures = self._futures, []
            del units
            self._outstanding -= len(futures)
            _fail(futures, "the writer process cannot be reached; nothing was stored, retry")
        finally:
            self._connecting = None
        self._flush()


def _fail(futures: list[asyncio.Future[Any]], message: str) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(StorageUnavailable(message))
