"""The durable buffer between the pipeline and the store: nothing acknowledged is ever lost.

``append(readings)`` writes the batch to a segment file and fsyncs it before returning, so once it returns the
pipeline may acknowledge. A writer thread drains records in order into the store, retrying with exponential
backoff while the store is down, and moves its cursor past a record only once the store confirmed it. A batch
the store rejects as malformed (HTTP 400) goes to a dead-letter file with the server's message. After a
crash or restart, what is on disk is sent first (records are strictly FIFO).

On-disk format (docs/telemetry.md), in ``directory``:
  seg-<12-digit number>.log   records appended back to back; a record is a 16-byte header
                              ``<magic u32><payload length u32><crc32 u32><reading count u32>`` (little endian)
                              followed by a msgpack array of [point, ts, value, quality] rows.
  cursor                      JSON {"segment": n, "offset": bytes}: the first record not yet confirmed
                              (written atomically; replays after a crash are harmless: stores key readings
                              by point and time, so a replay overwrites a reading with itself).
  dead-letter/*.json          rejected batches: {"error", "store", "rows", "at"}.
  LOCK                        flock'ed by the process that owns the buffer.

A torn record at the tail (process or power died mid-append, so never acknowledged) is cut off on open.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import msgpack
from tenacity import RetryError, Retrying, retry_if_exception, wait_exponential_jitter

from telemetry.reading import Quality, Reading
from telemetry.store import Store, StoreError, StoreRejected

log = logging.getLogger(__name__)

MAGIC = 0x52464231  # "RFB1"
HEADER = struct.Struct("<IIII")
SEGMENT_GLOB = "seg-*.log"


class BufferState(StrEnum):
    OK = "ok"
    NEARLY_FULL = "nearly-full"  # above warn_fraction of max_bytes: raise an alarm, the store is not keeping up
    FULL = "full"  # append refuses new batches: the pipeline must not acknowledge them


class BufferFull(StoreError):
    """The buffer reached its size limit; the batch was NOT stored (do not acknowledge it)."""


@dataclass
class BufferStatus:
    """What `retrofit store check` and the dashboard show about the buffer."""

    directory: str
    depth_readings: int
    depth_batches: int
    pending_bytes: int
    max_bytes: int
    dead_letters: int
    state: str
    last_error: str | None = None
    delivered_readings: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _seg_path(directory: Path, n: int) -> Path:
    return directory / f"seg-{n:012d}.log"


def _segments(directory: Path) -> list[int]:
    return sorted(int(p.stem[4:]) for p in directory.glob(SEGMENT_GLOB))


def _read_cursor(directory: Path) -> tuple[int, int]:
    try:
        data = json.loads((directory / "cursor").read_text())
        return int(data["segment"]), int(data["offset"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0, 0


@dataclass
class _Record:
    segment: int
    offset: int
    size: int  # header + payload
    count: int


def _scan(path: Path, start: int) -> tuple[list[_Record], int, int]:
    """Valid records of a segment from offset start; (records, end of the last valid record, file size)."""
    seg = int(path.stem[4:])
    records: list[_Record] = []
    size = path.stat().st_size
    with open(path, "rb") as f:
        pos = start
        while pos + HEADER.size <= size:
            f.seek(pos)
            magic, length, crc, count = HEADER.unpack(f.read(HEADER.size))
            if magic != MAGIC or pos + HEADER.size + length > size:
                break
            if zlib.crc32(f.read(length)) != crc:
                break
            records.append(_Record(seg, pos, HEADER.size + length, count))
            pos += HEADER.size + length
    return records, pos, size


def dead_letter_count(directory: str | Path) -> int:
    return sum(1 for _ in (Path(directory) / "dead-letter").glob("*.json"))


def buffer_status(directory: str | Path, max_bytes: int = 0) -> BufferStatus:
    """Depth and dead letters of a buffer directory, read without taking it over (for checks from outside)."""
    directory = Path(directory)
    if not directory.exists():
        return BufferStatus(str(directory), 0, 0, 0, max_bytes, 0, BufferState.OK.value)
    cur_seg, cur_off = _read_cursor(directory)
    readings = batches = pending = 0
    for n in _segments(directory):
        if n < cur_seg:
            continue
        recs, _, _ = _scan(_seg_path(directory, n), cur_off if n == cur_seg else 0)
        readings += sum(r.count for r in recs)
        batches += len(recs)
        pending += sum(r.size for r in recs)
    state = BufferState.OK
    if max_bytes and pending >= max_bytes:
        state = BufferState.FULL
    elif max_bytes and pending >= 0.8 * max_bytes:
        state = BufferState.NEARLY_FULL
    return BufferStatus(str(directory), readings, batches, pending, max_bytes, dead_letter_count(directory),
                        state.value)


class DurableBuffer:
    """Disk-backed FIFO of reading batches in front of a Store, drained by one writer thread.

    Thread-safe: several pipeline threads may append. One process owns a directory at a time (flock).
    """

    def __init__(self, directory: str | Path, store: Store, *, max_bytes: int = 512 * 2**20,
                 segment_bytes: int = 16 * 2**20, drain_batch: int | None = None, warn_fraction: float = 0.8,
                 retry_initial_s: float = 0.2, retry_max_s: float = 10.0, fsync: bool = True, start: bool = True,
                 on_state: Callable[[BufferState, BufferStatus], None] | None = None, owns_store: bool = False) -> None:
        self.directory = Path(directory)
        self.store = store
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        # readings per store write: the store's own preference (SQLite gains from big transactions)
        self.drain_batch = drain_batch or getattr(store, "preferred_batch", 5000)
        self.warn_fraction = warn_fraction
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.fsync = fsync
        self.on_state = on_state
        self.owns_store = owns_store  # close() closes the store too
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "dead-letter").mkdir(exist_ok=True)
        self._lock_file = open(self.directory / "LOCK", "a+")  # noqa: SIM115 - held for the buffer's lifetime
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise StoreError(f"buffer {self.directory} is in use by another process; stop it first, or give "
                             "this process its own data_dir") from None
        self._cv = threading.Condition()
        self._append_lock = threading.Lock()
        self._queue: list[_Record] = []  # records on disk not yet confirmed, oldest first
        self._pending_bytes = 0
        self._pending_readings = 0
        self._delivered = 0
        self._dead = dead_letter_count(self.directory)
        self._state = BufferState.OK
        self._last_error: str | None = None
        self._stop = threading.Event()  # stop after draining what is there
        self._abort = threading.Event()  # stop now (leave the rest on disk)
        self._recover()
        self._tail_seg = max([self._cursor[0], *_segments(self.directory)]) + 1
        self._tail_fd = self._open_segment(self._tail_seg)
        self._tail_size = 0
        self._update_state()
        self._thread = threading.Thread(target=self._run, name=f"buffer-writer:{self.directory.name}", daemon=True)
        if start:
            self.start()

    # --- recovery ---------------------------------------------------------------------------------------------
    def _recover(self) -> None:
        """Rebuild the queue from the segments after the cursor; cut off a torn tail record."""
        cur_seg, cur_off = _read_cursor(self.directory)
        segs = _segments(self.directory)
        if segs and cur_seg < segs[0]:
            cur_seg, cur_off = segs[0], 0
        for n in segs:
            path = _seg_path(self.directory, n)
            if n < cur_seg:
                path.unlink()  # fully confirmed before the last stop
                continue
            recs, end, size = _scan(path, cur_off if n == cur_seg else 0)
            if end < size:
                log.warning("buffer %s: %s has %d bytes of an unfinished record at offset %d (written while the "
                            "process died, never acknowledged); cutting them off", self.directory, path.name,
                            size - end, end)
                with open(path, "r+b") as f:
                    f.truncate(end)
                    os.fsync(f.fileno())
            self._queue.extend(recs)
        self._pending_bytes = sum(r.size for r in self._queue)
        self._pending_readings = sum(r.count for r in self._queue)
        self._cursor = (cur_seg, cur_off)
        if self._queue:
            log.info("buffer %s: %d readings in %d batches on disk from before; sending them first",
                     self.directory, self._pending_readings, len(self._queue))

    def _open_segment(self, n: int) -> int:
        fd = os.open(_seg_path(self.directory, n), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if self.fsync:
            dfd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dfd)  # the new file's directory entry must survive a power cut too
            finally:
                os.close(dfd)
        return fd

    # --- appending --------------------------------------------------------------------------------------------
    def append(self, readings: Sequence[Reading]) -> None:
        """Persist a batch (fsync) and queue it for the store. Returns only once it is on disk.

        Raises BufferFull when the size limit is reached: the batch is then not stored.
        """
        if not readings:
            return
        payload = msgpack.packb([(r.point, r.ts, r.value, r.quality) for r in readings])  # Quality packs as str
        self.append_encoded(payload, len(readings))

    def append_encoded(self, payload: bytes, count: int) -> None:
        """append() for a payload already msgpack-encoded as rows (point, ts, value, quality)."""
        record = HEADER.pack(MAGIC, len(payload), zlib.crc32(payload), count) + payload
        with self._append_lock:
            if self._stop.is_set() or self._abort.is_set():
                raise StoreError(f"buffer {self.directory} is closed")
            if self._pending_bytes + len(record) > self.max_bytes:
                self._set_state(BufferState.FULL)
                raise BufferFull(f"buffer {self.directory} is full ({_size(self._pending_bytes)} of "
                                 f"{_size(self.max_bytes)}; store: {self._last_error or 'slow'}); "
                                 "the batch was not stored. Fix the store or raise RETROFIT_BUFFER_MAX_MB")
            if self._tail_size and self._tail_size + len(record) > self.segment_bytes:
                self._rotate()
            os.write(self._tail_fd, record)
            if self.fsync:
                os.fdatasync(self._tail_fd)
            rec = _Record(self._tail_seg, self._tail_size, len(record), count)
            self._tail_size += len(record)
            with self._cv:
                self._queue.append(rec)
                self._pending_bytes += rec.size
                self._pending_readings += count
                self._cv.notify_all()
            self._update_state()

    def _rotate(self) -> None:
        os.close(self._tail_fd)
        self._tail_seg += 1
        self._tail_fd = self._open_segment(self._tail_seg)
        self._tail_size = 0

    # --- state ------------------------------------------------------------------------------------------------
    def _update_state(self) -> None:
        """OK below warn_fraction; NEARLY_FULL above it; FULL (set when an append is refused) stays until the
        buffer drains below warn_fraction, so the alarm does not flap at the limit."""
        frac = self._pending_bytes / self.max_bytes
        if frac < self.warn_fraction:
            self._set_state(BufferState.OK)
        elif self._state is not BufferState.FULL:
            self._set_state(BufferState.NEARLY_FULL)

    def _set_state(self, state: BufferState) -> None:
        if state is self._state:
            return
        self._state = state
        st = self.status()
        if state is BufferState.OK:
            log.info("buffer %s back to normal: %d readings pending", self.directory, st.depth_readings)
        else:
            log.warning("buffer %s is %s: %s of %s used (%.0f%%), %d readings waiting; store: %s", self.directory,
                        state.value, _size(st.pending_bytes), _size(self.max_bytes),
                        100 * st.pending_bytes / self.max_bytes, st.depth_readings, self._last_error or "ok")
        if self.on_state is not None:
            try:
                self.on_state(state, st)
            except Exception:  # noqa: BLE001 - an alarm hook must never stop the buffer
                log.exception("buffer state hook failed")

    @property
    def state(self) -> BufferState:
        return self._state

    @property
    def depth(self) -> int:
        """Readings on disk not yet confirmed by the store."""
        return self._pending_readings

    @property
    def dead_letters(self) -> int:
        return self._dead

    def status(self) -> BufferStatus:
        return BufferStatus(str(self.directory), self._pending_readings, len(self._queue), self._pending_bytes,
                            self.max_bytes, self._dead, self._state.value, self._last_error, self._delivered)

    # --- draining ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def _take(self) -> list[_Record]:
        """The oldest records, up to drain_batch readings (at least one record); waits while there are none."""
        with self._cv:
            while not self._queue:
                if self._stop.is_set() or self._abort.is_set():
                    return []
                self._cv.wait(0.5)
            out, n = [], 0
            for rec in self._queue:
                if out and n + rec.count > self.drain_batch:
                    break
                out.append(rec)
                n += rec.count
            return out

    def _load(self, recs: list[_Record]) -> list[tuple]:
        rows: list[tuple] = []
        path, f = None, None
        try:
            for rec in recs:
                p = _seg_path(self.directory, rec.segment)
                if p != path:
                    if f is not None:
                        f.close()
                    path, f = p, open(p, "rb")  # noqa: SIM115 - closed below
                f.seek(rec.offset + HEADER.size)
                rows.extend(msgpack.unpackb(f.read(rec.size - HEADER.size), use_list=False))
        finally:
            if f is not None:
                f.close()
        return rows

    def _write(self, rows: list[tuple]) -> None:
        write_rows = getattr(self.store, "write_rows", None)
        if write_rows is not None:
            write_rows(rows)
        else:
            self.store.write([Reading(p, ts, v, Quality(q)) for p, ts, v, q in rows])

    def _write_with_retry(self, rows: list[tuple]) -> bool:
        """Write until confirmed (True), or until aborted (False). StoreRejected propagates."""
        failures = 0

        def before_sleep(state: Any) -> None:
            nonlocal failures
            failures += 1
            exc = state.outcome.exception()
            self._last_error = str(exc)
            if failures == 1:
                log.warning("store write failed, retrying with backoff (data stays in the buffer): %s", exc)
            self._update_state()

        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, StoreError) and not isinstance(e, StoreRejected)),
            wait=wait_exponential_jitter(multiplier=self.retry_initial_s, max=self.retry_max_s,
                                         jitter=self.retry_initial_s),
            stop=lambda _: self._abort.is_set(),
            sleep=lambda s: self._abort.wait(s) and None,
            before_sleep=before_sleep,
            reraise=False,
        )
        try:
            retrying(self._write, rows)
        except RetryError:
            return False
        if failures:
            log.info("store accepts writes again after %d failed attempts", failures)
        self._last_error = None
        return True

    def _run(self) -> None:
        while not self._abort.is_set():
            try:
                if not self._drain_once():
                    return
            except Exception:  # noqa: BLE001 - e.g. disk full writing the cursor: keep the thread, try again
                log.exception("buffer %s: draining failed; retrying in 1 s", self.directory)
                self._abort.wait(1.0)

    def _drain_once(self) -> bool:
        """Deliver the next records; False when the buffer is closing and there is nothing (more) to do."""
        recs = self._take()
        if not recs:
            return False
        try:
            rows = self._load(recs)
        except (OSError, ValueError, msgpack.UnpackException) as exc:
            log.error("buffer %s: cannot read a batch (%s); setting it aside", self.directory, exc)
            self._dead_letter(recs, [], f"unreadable batch: {exc}")
            self._confirm(recs)
            return True
        try:
            delivered = self._write_with_retry(rows)
        except StoreRejected as exc:
            self._reject(recs, exc)
            return True
        except Exception as exc:  # noqa: BLE001 - a bug must not stall the pipeline; keep the batch aside
            log.exception("unexpected error writing a batch; setting it aside")
            self._dead_letter(recs, rows, f"{type(exc).__name__}: {exc}")
            self._confirm(recs)
            return True
        if not delivered:
            return False
        self._confirm(recs)
        return True

    def _reject(self, recs: list[_Record], exc: StoreRejected) -> None:
        """Find which of the coalesced batches the store rejects; keep those aside, deliver the rest."""
        if len(recs) == 1:
            log.error("store rejected a batch of %d readings; moved to dead letters: %s", recs[0].count, exc)
            self._dead_letter(recs, self._load(recs), str(exc))
            self._confirm(recs)
            return
        for rec in recs:
            try:
                if not self._write_with_retry(self._load([rec])):
                    return
                self._confirm([rec])
            except StoreRejected as one:
                self._reject([rec], one)

    def _dead_letter(self, recs: list[_Record], rows: list[tuple], error: str) -> None:
        first = recs[0]
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{first.segment:012d}-{first.offset:012d}.json"
        body = {"error": error, "store": getattr(self.store, "kind", type(self.store).__name__),
                "at": time.time(), "readings": len(rows), "rows": [list(r) for r in rows]}
        tmp = self.directory / "dead-letter" / (name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(body, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, tmp.with_suffix(""))
        self._dead += 1

    def _confirm(self, recs: list[_Record]) -> None:
        """The store has these records: move the cursor past them and delete finished segments."""
        last = recs[-1]
        with self._cv:  # held throughout, so flush() returns only once cursor and state are up to date
            del self._queue[:len(recs)]
            self._pending_bytes -= sum(r.size for r in recs)
            n = sum(r.count for r in recs)
            self._pending_readings -= n
            self._delivered += n
            nxt = self._queue[0] if self._queue else None
            cursor = (nxt.segment, nxt.offset) if nxt else (last.segment, last.offset + last.size)
            tmp = self.directory / "cursor.tmp"
            tmp.write_text(json.dumps({"segment": cursor[0], "offset": cursor[1]}))
            os.replace(tmp, self.directory / "cursor")
            for seg in range(self._cursor[0], cursor[0]):
                if seg != self._tail_seg:
                    _seg_path(self.directory, seg).unlink(missing_ok=True)
            self._cursor = cursor
            self._update_state()
            self._cv.notify_all()

    # --- stopping ---------------------------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything appended so far is confirmed by the store; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self._queue:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(0.2 if left is None else min(left, 0.2))
        return True

    def close(self, drain_timeout: float | None = 10.0) -> bool:
        """Stop appends, give the writer drain_timeout seconds to empty the buffer, then stop it.

        Returns True when nothing was left behind; what is left stays on disk for the next start.
        """
        drained = self.flush(drain_timeout) if self._thread.is_alive() and drain_timeout else not self._queue
        self._stop.set()
        self._abort.set()
        with self._cv:
            self._cv.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        with self._append_lock:
            try:
                os.close(self._tail_fd)
            except OSError:
                pass
        if self._tail_size == 0:
            _seg_path(self.directory, self._tail_seg).unlink(missing_ok=True)
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()
        if self.owns_store:
            self.store.close()
        if not drained:
            log.info("buffer %s closed with %d readings on disk; they are sent first on the next start",
                     self.directory, self._pending_readings)
        return drained

    def __enter__(self) -> DurableBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_buffer(settings: Any, store: Store | None = None, **kwargs: Any) -> DurableBuffer:
    """The durable buffer of a retrofit process: settings.buffer_dir, settings.buffer_max_mb, in front of the
    configured store (opened here with telemetry.open_store when not given; closed with the buffer then)."""
    if store is None:
        from telemetry import open_store

        store = open_store(settings)
        kwargs.setdefault("owns_store", True)
    return DurableBuffer(settings.buffer_dir, store, max_bytes=settings.buffer_max_mb * 2**20, **kwargs)
