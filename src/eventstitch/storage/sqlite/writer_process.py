"""The SQLite writer process: one process that owns the event writes of every HTTP worker.

SQLite takes one writer at a time. With a writer thread in each worker, two workers contend for
the file's write lock, each committing its own small batches, and each writer thread takes
turns for its process's interpreter lock with the busy event loop. Under `serve` this process
runs the group-commit writer (`SqliteWriter`) instead, and the workers hand it their events
over a Unix socket (`writer_link`): one batch for all workers, one fsync per batch, and the
workers' interpreters free for HTTP.

Durability is the writer's: an event is answered (and so acknowledged) only after the commit
that stored it. If this process is killed, the workers answer 503 for whatever was waiting
and reconnect when `serve` has started it again; if a worker is killed, its events that were
committed were never acknowledged, and may be sent again. Writes other than events (sources,
profiles, refused requests) stay on each worker's own writer thread: they are rare and small.

Run as `python -m eventstitch.storage.sqlite.writer_process SOCKET` with the server's
environment; it exits when its standard input closes (its parent is gone) or on SIGTERM,
after committing what it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import selectors
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from eventstitch.files import private_dir
from eventstitch.heap import freeze_startup_objects
from eventstitch.storage.records import EventRecord
from eventstitch.storage.shared.jobs import EventJob, group_jobs
from eventstitch.storage.sqlite.writer import SqliteWriter
from eventstitch.storage.sqlite.writer_link import (
    Unit,
    encode_result,
    frame,
    frames,
)

log = logging.getLogger(__name__)

_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


def socket_path(database: Path) -> Path:
    """Where the writer of `database` listens: beside the file, or in a private folder of the
    temporary directory when that path is too long for a Unix socket."""
    beside = database.with_name(database.name + ".writer.sock")
    if len(str(beside)) <= _MAX_SOCKET_PATH:
        return beside
    digest = hashlib.sha256(str(database.resolve()).encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"eventstitch-{os.getuid()}-{digest}"
    private_dir(folder)
    return folder / "writer.sock"


def _event_of(row: tuple[Any, ...]) -> EventRecord:
    """What the writer reads from an event besides its row: id, source, time (for identity
    and delivery ids). Properties and context travel in the row, already encoded."""
    return EventRecord(
        id=row[0],
        type=row[1],
        source_id=row[2],
        received_ms=row[3],
        profile_less=bool(row[4]),
        profile_id=row[5],
        session_id=row[6],
        properties={},
        context={},
    )


class _Link:
    """One worker's connection: bytes read but not yet a whole frame, answers not yet sent."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox = bytearray()
        self.outbox = bytearray()


class _Server:
    """The writer process's loop, on one thread: read every frame the workers have sent,
    commit their events in batches, answer each frame, and wait for more. While a batch
    commits, what the workers send waits in the sockets and makes the next batch: the group
    commit needs no queue, no future and no second thread here."""

    def __init__(self, listener: socket.socket, writer: SqliteWriter, conn: sqlite3.Connection):
        self._listener = listener
        self._writer = writer
        self._conn = conn
        self._batch_size = writer.batch_size
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
        self._links: dict[int, _Link] = {}
        # Jobs need a future; here results are returned, never settled through one.
        loop = asyncio.new_event_loop()
        self._placeholder: asyncio.Future[Any] = loop.create_future()
        loop.close()
        self.stopping = False

    def run(self) -> None:
        while not self.stopping:
            ready = self._selector.select(timeout=1.0)
            arrived: list[tuple[_Link, int, list[Unit | list[Unit]]]] = []
            for key, events in ready:
                if key.data is None:
                    self._accept()
                elif key.data == "stdin":
                    self._stdin()
                else:
                    link = key.data
                    if events & selectors.EVENT_READ:
                        arrived.extend((link, fid, units) for fid, units in self._read(link))
                    if events & selectors.EVENT_WRITE:
                        self._send(link)
            if arrived:
                self._commit(arrived)
        # Stopping: answer what has arrived already, then close.
        for link in list(self._links.values()):
            arrived = [(link, fid, units) for fid, units in self._read(link)]
            if arrived:
                self._commit(arrived)
            with contextlib.suppress(OSError):
                link.sock.setblocking(True)
                link.sock.sendall(link.outbox)
            link.sock.close()

    def _accept(self) -> None:
        with contextlib.suppress(BlockingIOError):
            sock, _ = self._listener.accept()
            sock.setblocking(False)
            link = _Link(sock)
            self._links[sock.fileno()] = link
            self._selector.register(sock, selectors.EVENT_READ, link)

    def _stdin(self) -> None:
        # The parent holds our standard input: end of file means it is gone or asks us to go.
        try:
            if not os.read(sys.stdin.fileno(), 4096):
                self.stopping = True
        except OSError:
            self.stopping = True
        if self.stopping:
            self._selector.unregister(sys.stdin.fileno())

    def _read(self, link: _Link) -> list[Any]:
        while True:
            try:
                data = link.sock.recv(1 << 20)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                # The worker is gone: what it sent whole is still committed (and never
                # acknowledged to anyone); a torn last frame is dropped.
                found = frames(link.inbox)
                self._drop(link)
                return found
            link.inbox += data
            if len(data) < 1 << 20:
                break
        return frames(link.inbox)

    def _drop(self, link: _Link) -> None:
        if link.sock.fileno() in self._links:
            del self._links[link.sock.fileno()]
            self._selector.unregister(link.sock)
            link.sock.close()

    def _commit(self, arrived: list[tuple[_Link, int, list[Unit | list[Unit]]]]) -> None:
        """Commit the events of the frames that arrived, in batches that never cut one
        delivery's events, then answer each frame."""
        jobs: list[EventJob] = []
        sizes: list[int] = []
        placeholder = self._placeholder
        for _, _, units in arrived:
            count = 0
            for unit in units:
                if isinstance(unit, list):
                    group = [
                        EventJob(_event_of(row), kinds, claim, key, placeholder, row)
                        for kinds, row, claim, key in unit
                    ]
                    jobs.extend(group_jobs(group))
                    count += len(group)
                else:
                    kinds, row, claim, key = unit
                    jobs.append(EventJob(_event_of(row), kinds, claim, key, placeholder, row))
                    count += 1
            sizes.append(count)
        results: list[Any] = []
        commits: list[tuple[int, float]] = []  # (events, seconds) of each commit, for metrics
        for batch in _batches(jobs, self._batch_size):
            started = time.perf_counter()
            results.extend(self._writer.commit_batch(self._conn, list(batch)))
            commits.append((len(batch), time.perf_counter() - started))
        start = 0
        for (link, frame_id, _), size in zip(arrived, sizes, strict=True):
            answer = [encode_result(r) for r in results[start : start + size]]
            start += size
            if link.sock.fileno() in self._links:
                # The commits ride along: a worker's /metrics (and the console) show the
                # batches its events went into, though another process committed them.
                link.outbox += frame((frame_id, answer, commits))
                self._send(link)

    def _send(self, link: _Link) -> None:
        try:
            sent = link.sock.send(link.outbox)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._drop(link)
            return
        del link.outbox[:sent]
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if link.outbox else 0)
        self._selector.modify(link.sock, want, link)


def _batches(jobs: list[EventJob], size: int) -> list[list[EventJob]]:
    """`jobs` cut into batches of at most `size`, never inside a group (one delivery)."""
    batches: list[list[EventJob]] = []
    current: list[EventJob] = []
    index = 0
    while index < len(jobs):
        job = jobs[index]
        unit = [job]
        if job.group:
            end = index + 1
            while end < len(jobs) and jobs[end].group == job.group:
                end += 1
            unit = jobs[index:end]
        if current and len(current) + len(unit) > size:
            batches.append(current)
            current = []
        current.extend(unit)
        index += len(unit)
    if current:
        batches.append(current)
    return batches


def _main(path: Path) -> None:
    from eventstitch.config import load_config
    from eventstitch.storage.shared.backend import store_settings
    from eventstitch.storage.sqlite.db import SqliteDb, path_from_url

    config = load_config()
    db = SqliteDb(
        path_from_url(config.resolved_database_url),
        settings=store_settings(config),
        synchronous=config.sqlite_synchronous,
    )
    asyncio.run(db.migrate())
    conn = db.connect_writer()
    _remove(path, None)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_umask)
    listener.listen(128)
    listener.setblocking(False)
    inode = os.stat(path).st_ino
    server = _Server(listener, db.writer, conn)

    def stop(signum: int, frame: Any) -> None:
        server.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    freeze_startup_objects()
    print("ready", flush=True)
    try:
        server.run()
    finally:
        listener.close()
        _remove(path, inode)
        conn.close()


def _remove(path: Path, inode: int | None) -> None:
    """Remove the socket file; with `inode`, only if it is still ours: a server started again
    after a crash may already have put its own writer's socket there."""
    with contextlib.suppress(OSError):
        if inode is None or os.stat(path).st_ino == inode:
            os.unlink(path)


class WriterProcess:
    """`serve`'s handle on the writer process: started before the workers, started again if
    it dies while serving, stopped (after the workers) when serving ends."""

    def __init__(self, database: Path, env: dict[str, str]) -> None:
        self.socket = socket_path(database)
        self._env = env
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="writer-watch", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        process = subprocess.Popen(  # noqa: S603 - this interpreter and one of our modules
            [sys.executable, "-m", "eventstitch.storage.sqlite.writer_process", str(self.socket)],
            env=self._env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert process.stdout is not None
        line = process.stdout.readline()  # "ready" once it listens; empty if it died
        if line.strip() != b"ready":
            process.wait(timeout=30)
            raise RuntimeError(f"the SQLite writer process exited with {process.returncode}")
        self._process = process

    def _watch(self) -> None:
        while True:
            process = self._process
            assert process is not None
            code = process.wait()  # blocks without holding the interpreter lock
            if self._stopping.is_set():
                return
            log.error("the SQLite writer process exited with %s; starting it again", code)
            try:
                self._spawn()
            except (OSError, RuntimeError):
                log.exception("the SQLite writer process did not start; trying again")
                time.sleep(1)

    def stop(self) -> None:
        """Close its standard input: it commits what it holds, then exits."""
        self._stopping.set()
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    _main(Path(sys.argv[1]))
