"""The box's SQLite database: the power log, the print jobs (and, from issue 17, their files, filaments and spools).

The database lives on an SD card, so it is written rarely and in batches: samples are buffered by the power service
and written about once a minute and at every print event, in one transaction each. WAL with ``synchronous=NORMAL``
means a committed batch survives a crash or ``kill -9`` (a power cut may lose the last batch, never the file);
the database is never left corrupt. Old samples are averaged down: raw for 7 days, 1-minute averages for 90 days,
hourly averages after that.

Every method is blocking and takes a lock, so it can be called from trio through ``trio.to_thread.run_sync`` and
from the web's worker threads alike. Reads have their own connection and lock: a write waiting for the database's
write lock (another process holding it, up to ``busy_timeout_s``) never holds up a read, which WAL lets go on beside
any writer; a read itself waits at most ``read_timeout_s`` for SQLite, so a page answers with what is in memory.

A full disk, a locked, read-only or corrupt file must never end the service: every failure (``COMMIT`` included)
raises :class:`DatabaseError` and is kept in :attr:`Database.problem` for ``/healthz``, ``GET /api/power`` and the
page until a write succeeds again. Nothing is deleted to make room and a broken file is never replaced; a file that
cannot be opened is tried again at the next use, so the log comes back by itself once the disk has room.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

RAW_DAYS: Final = 7
MINUTE_DAYS: Final = 90
DAY_S: Final = 86400.0

SCHEMA_SQL: Final = """
CREATE TABLE IF NOT EXISTS power_samples (
    printer TEXT NOT NULL,
    at REAL NOT NULL,             -- UTC epoch seconds (start of the bucket for averages)
    watts REAL,                   -- null: the plug does not measure power
    relay_on INTEGER NOT NULL,    -- 1 on, 0 off (for averages: on at any time in the bucket)
    total_kwh REAL,               -- the plug's own counter, when it has one
    span INTEGER NOT NULL         -- 0 raw sample, 60 one-minute average, 3600 hourly average
);
CREATE INDEX IF NOT EXISTS power_samples_by_time ON power_samples (printer, span, at);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    printer TEXT NOT NULL,
    name TEXT,
    model TEXT,
    started_at REAL NOT NULL,
    ended_at REAL,
    duration_s REAL,
    result TEXT,                  -- finished | failed | cancelled | unknown (end not seen); null while running
    energy_kwh REAL,              -- null without a power-measuring plug
    cost REAL,
    peak_watts REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_start ON jobs (printer, started_at);
"""


@dataclass(frozen=True)
class Sample:
    printer: str
    at: float
    watts: float | None
    on: bool
    total_kwh: float | None


@dataclass(frozen=True)
class JobEnd:
    ended_at: float
    result: str
    energy_kwh: float | None
    cost: float | None
    peak_watts: float | None
    # Measured on the monotonic clock by the power service; None only for a job whose start was before a restart,
    # which falls back to the stored wall-clock times (never negative, should the clock have stepped back).
    duration_s: float | None = None


class DatabaseError(Exception):
    """The database cannot be opened, read or written (disk full, locked, read-only, corrupt)."""


# After these the connection is still good (the disk fills and frees, a lock is released); after any other failure
# (read-only, I/O error, corrupt, deleted) it is closed and opened afresh at the next use.
_CONNECTION_SURVIVES: Final = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_WRITING: Final = "cannot write the power log"
_READING: Final = "cannot read the power log"


class Database:
    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0, read_timeout_s: float = 1.0) -> None:
        """Opens the database now if it can; it never raises: a problem is in :attr:`problem` and the database is
        opened again at the next use."""
        self.path = path
        self.problem: str | None = None
        self._problem_writing = False  # a write problem is cleared only by a write; an open/read one by any use
        self._busy_timeout_s = busy_timeout_s
        self._read_timeout_s = read_timeout_s
        self._lock = threading.Lock()  # the writing connection
        self._db: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()  # the reading connection
        self._reader: sqlite3.Connection | None = None
        with contextlib.suppress(DatabaseError), self._lock, self._failures("cannot open the power log"):
            self._connection()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._open(self._busy_timeout_s)
        return self._db

    def _read_connection(self) -> sqlite3.Connection:
        if self._reader is None:
            self._reader = self._open(self._read_timeout_s)
        return self._reader

    def _open(self, timeout_s: float) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we open transactions ourselves, one per batch.
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=timeout_s)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA_SQL)  # IF NOT EXISTS: takes no write lock once the tables are there
        except BaseException:
            db.close()
            raise
        return db

    @contextlib.contextmanager
    def _failures(self, doing: str) -> Iterator[None]:
        """Any failure inside becomes DatabaseError (and :attr:`problem`); call with the lock of the connection used
        held (``doing`` says which one)."""
        try:
            yield
        except (sqlite3.Error, OSError, ValueError, OverflowError) as exc:
            # ValueError/OverflowError: a value SQLite cannot take (a lone surrogate, a huge integer).
            code = getattr(exc, "sqlite_errorcode", None)
            if isinstance(exc, sqlite3.Error) and (code is None or code & 0xFF not in _CONNECTION_SURVIVES):
                if doing == _READING:
                    self._drop_reader()
                else:
                    self._drop()
            self.problem = f"{doing} ({self.path.name}): {exc}"
            self._problem_writing = doing == _WRITING
            raise DatabaseError(self.problem) from None

    def _drop(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def _drop_reader(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(sqlite3.Error):
                self._reader.close()
            self._reader = None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction, BEGIN ... COMMIT under the lock; a failure anywhere, COMMIT included, rolls back (when
        SQLite has not already) and raises DatabaseError. A successful write clears :attr:`problem`."""
        with self._lock, self._failures(_WRITING):
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise
            self.problem = None

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._read_lock, self._failures(_READING):
            yield self._read_connection()
            if not self._problem_writing:
                self.problem = None  # it opens and reads again; whether it writes, the next write tells

    def health(self) -> dict[str, Any]:
        """The power log's part of ``/healthz``."""
        return {"power_log": {"ok": self.problem is None, "error": self.problem}}

    def close(self) -> None:
        with self._lock:
            self._drop()
        with self._read_lock:
            self._drop_reader()

    def integrity(self) -> str:
        with self._read() as db:
            row = db.execute("PRAGMA integrity_check").fetchone()
        return str(row[0])

    # -- writing ---------------------------------------------------------------------------------------------

    def add_samples(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        rows = [(s.printer, s.at, s.watts, int(s.on), s.total_kwh) for s in samples]
        with self._write() as db:
            db.executemany(
                "INSERT INTO power_samples (printer, at, watts, relay_on, total_kwh, span) VALUES (?, ?, ?, ?, ?, 0)",
                rows,
            )

    def start_job(self, printer: str, name: str | None, model: str, started_at: float) -> int:
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO jobs (printer, name, model, started_at) VALUES (?, ?, ?, ?)",
                (printer, name, model, started_at),
            )
        return int(cursor.lastrowid or 0)

    def end_job(self, job_id: int, end: JobEnd) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET ended_at = ?, duration_s = COALESCE(?, MAX(? - started_at, 0)), result = ?,"
                " energy_kwh = ?, cost = ?, peak_watts = ? WHERE id = ?",
                (end.ended_at, end.duration_s, end.ended_at, end.result, end.energy_kwh, end.cost, end.peak_watts,
                 job_id),
            )

    def downsample(self, now: float) -> int:
        """Average raw samples older than 7 days into minutes, and minutes older than 90 days into hours.

        Cut-offs are aligned to whole hours so every bucket that is averaged is complete. Returns rows removed.
        """
        removed = 0
        with self._write() as db:
            for span_from, span_to, days in ((0, 60, RAW_DAYS), (60, 3600, MINUTE_DAYS)):
                cutoff = (now - days * DAY_S) // 3600 * 3600
                db.execute(
                    "INSERT INTO power_samples (printer, at, watts, relay_on, total_kwh, span)"
                    " SELECT printer, CAST(at / ? AS INTEGER) * ?, AVG(watts), MAX(relay_on), MAX(total_kwh), ?"
                    " FROM power_samples WHERE span = ? AND at < ? GROUP BY printer, CAST(at / ? AS INTEGER)",
                    (span_to, span_to, span_to, span_from, cutoff, span_to),
                )
                removed += db.execute(
                    "DELETE FROM power_samples WHERE span = ? AND at < ?", (span_from, cutoff)
                ).rowcount
        return removed

    # -- reading ---------------------------------------------------------------------------------------------

    def samples(self, printer: str, since: float, until: float | None = None) -> list[Sample]:
        """Raw samples in ``[since, until)``, oldest first (averages are not included)."""
        with self._read() as db:
            rows = db.execute(
                "SELECT printer, at, watts, relay_on, total_kwh FROM power_samples"
                " WHERE printer = ? AND span = 0 AND at >= ? AND at < ? ORDER BY at",
                (printer, since, until if until is not None else float("inf")),
            ).fetchall()
        return [Sample(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]

    def series(self, printer: str, since: float, bucket_s: float) -> list[tuple[float, float | None]]:
        """Average watts per ``bucket_s`` since ``since`` (all resolutions), for charts."""
        with self._read() as db:
            rows = db.execute(
                "SELECT CAST(at / ? AS INTEGER) * ? AS bucket, AVG(watts) FROM power_samples"
                " WHERE printer = ? AND at >= ? GROUP BY bucket ORDER BY bucket",
                (bucket_s, bucket_s, printer, since),
            ).fetchall()
        return [(float(r[0]), r[1]) for r in rows]

    def count_samples(self) -> dict[int, int]:
        with self._read() as db:
            rows = db.execute("SELECT span, COUNT(*) FROM power_samples GROUP BY span").fetchall()
        return {int(r[0]): int(r[1]) for r in rows}

    def jobs(self, printer: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Most recent first."""
        query = "SELECT id, printer, name, model, started_at, ended_at, duration_s, result, energy_kwh, cost," \
                " peak_watts FROM jobs"
        args: list[Any] = []
        if printer is not None:
            query += " WHERE printer = ?"
            args.append(printer)
        query += " ORDER BY started_at DESC, id DESC LIMIT ?"
        args.append(limit)
        with self._read() as db:
            rows = db.execute(query, args).fetchall()
        keys = ("id", "printer", "name", "model", "started_at", "ended_at", "duration_s", "result", "energy_kwh",
                "cost", "peak_watts")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def open_jobs(self) -> dict[str, int]:
        """The latest unfinished job of each printer (a job running when bambupi last stopped)."""
        with self._read() as db:
            rows = db.execute(
                "SELECT printer, MAX(id) FROM jobs WHERE ended_at IS NULL GROUP BY printer"
            ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}


def energy_kwh(samples: Iterable[tuple[float, float | None]], *, max_gap_s: float) -> float | None:
    """Energy from (time, watts) samples: each sample's power held until the next one, at most ``max_gap_s``
    (a gap in the log is not filled with a guess). None when no sample has a power value."""
    total_ws = 0.0
    seen = False
    previous: tuple[float, float | None] | None = None
    for at, watts in samples:
        if previous is not None and previous[1] is not None:
            total_ws += previous[1] * min(max(at - previous[0], 0.0), max_gap_s)
        seen = seen or watts is not None
        previous = (at, watts)
    return total_ws / 3_600_000.0 if seen else None
