"""The box's SQLite database: the power log, the print jobs with their files, filaments and timelines, the spools.

The database lives on an SD card, so it is written rarely and in batches: samples are buffered by the power service
and written about once a minute and at every print event, in one transaction each. WAL with ``synchronous=NORMAL``
means a committed batch survives a crash or ``kill -9`` (a power cut may lose the last batch, never the file);
the database is never left corrupt. Old samples are averaged down: raw for 7 days, 1-minute averages for 90 days,
hourly averages after that.

The schema is versioned with ``PRAGMA user_version``: version 1 is the power log and the jobs (a file written before
versions existed has user_version 0 and exactly those tables, and is taken as version 1 without a change); each
later version is one step of :data:`MIGRATIONS`, run in one transaction when the file is opened, so a crash or a full
disk in the middle leaves the previous version whole and the next open tries again. A file of a version newer than
this code knows is refused and never touched: an older bambupi put back on the card does not spoil a newer one's data.

Every method is blocking and takes a lock, so it can be called from trio through ``trio.to_thread.run_sync`` and
from the web's worker threads alike. Reads have their own connection and lock: a write waiting for the database's
write lock (another process holding it, up to ``busy_timeout_s``) never holds up a read, which WAL lets go on beside
any writer; a read itself waits at most ``read_timeout_s`` for SQLite, so a page answers with what is in memory.

A full disk, a locked, read-only or corrupt file must never end the service: every failure (``COMMIT`` included)
raises :class:`DatabaseError` and is kept in :attr:`Database.problem` for ``/healthz``, ``GET /api/power`` and the
page until a write succeeds again. Nothing is deleted to make room and a broken file is never replaced; a file that
cannot be opened is tried again at the next use, so the log comes back by itself once the disk has room.

Job thumbnails are PNG files beside the database (``thumbnails/<job id>.png``), not rows: the database stays small
and the web serves them as files. They are bounded (:data:`THUMBNAIL_MAX_BYTES` each, the newest
:data:`THUMBNAILS_MAX` jobs' kept) and removed with their job; a thumbnail that cannot be written is left out, the
job's row is written all the same.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from bambupi.atomic_file import write_atomically

log = logging.getLogger("bambupi.database")

RAW_DAYS: Final = 7
MINUTE_DAYS: Final = 90
DAY_S: Final = 86400.0

THUMBNAIL_MAX_BYTES: Final = 256 * 1024  # one plate picture from a 3MF is 20-80 KiB
THUMBNAILS_MAX: Final = 1000  # about 100 MB at most on the card, years of prints
_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"

# Version 1: the tables as they were before versions (IF NOT EXISTS: a file of that time already has them).
_VERSION_1: Final = (
    """CREATE TABLE IF NOT EXISTS power_samples (
    printer TEXT NOT NULL,
    at REAL NOT NULL,             -- UTC epoch seconds (start of the bucket for averages)
    watts REAL,                   -- null: the plug does not measure power
    relay_on INTEGER NOT NULL,    -- 1 on, 0 off (for averages: on at any time in the bucket)
    total_kwh REAL,               -- the plug's own counter, when it has one
    span INTEGER NOT NULL         -- 0 raw sample, 60 one-minute average, 3600 hourly average
)""",
    "CREATE INDEX IF NOT EXISTS power_samples_by_time ON power_samples (printer, span, at)",
    """CREATE TABLE IF NOT EXISTS jobs (
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
)""",
    "CREATE INDEX IF NOT EXISTS jobs_by_start ON jobs (printer, started_at)",
)
_VERSION_1_NAMES: Final = frozenset({"power_samples", "power_samples_by_time", "jobs", "jobs_by_start"})

# Version 2 (issue 17): the job's file (planned grams, prediction, thumbnail), its filaments, its timeline; spools.
_VERSION_2: Final = (
    "ALTER TABLE jobs ADD COLUMN plate INTEGER",
    "ALTER TABLE jobs ADD COLUMN file_path TEXT",
    "ALTER TABLE jobs ADD COLUMN predicted_s REAL",
    "ALTER TABLE jobs ADD COLUMN planned_g REAL",
    "ALTER TABLE jobs ADD COLUMN used_g REAL",
    "ALTER TABLE jobs ADD COLUMN file_problem TEXT",  # why grams are unknown ("FTPS ...", "3MF too large ...")
    "ALTER TABLE jobs ADD COLUMN print_error TEXT",  # a failed job's code, "0300_1234"
    "ALTER TABLE jobs ADD COLUMN error_text TEXT",  # and its text
    "ALTER TABLE jobs ADD COLUMN thumbnail TEXT",  # a file name in thumbnails/, null when none
    "CREATE INDEX jobs_by_time ON jobs (started_at)",  # the history of all printers, newest first
    """CREATE TABLE job_filaments (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,         -- the 3MF's filament id (1-based)
    material TEXT,
    colour TEXT,                  -- "#RRGGBB", "" when unknown
    planned_g REAL,
    planned_m REAL,
    used_g REAL,
    ams INTEGER,                  -- where it came from: AMS unit and tray, or the external holder
    tray INTEGER,
    external INTEGER NOT NULL DEFAULT 0,
    spool_id INTEGER,
    PRIMARY KEY (job_id, idx)
)""",
    """CREATE TABLE job_events (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    at REAL NOT NULL,
    kind TEXT NOT NULL,           -- started, paused, hms_raised, ...
    code TEXT,
    text TEXT
)""",
    "CREATE INDEX job_events_by_job ON job_events (job_id, at)",
    """CREATE TABLE spools (
    id INTEGER PRIMARY KEY,
    material TEXT NOT NULL,
    colour TEXT NOT NULL DEFAULT '',
    brand TEXT NOT NULL DEFAULT '',
    net_g REAL,
    remaining_g REAL,
    rfid TEXT UNIQUE,
    tray_info_idx TEXT,
    location TEXT NOT NULL DEFAULT 'shelf',  -- shelf | ams | external
    printer TEXT,
    ams INTEGER,
    tray INTEGER,
    spoolman_id INTEGER,
    low_notified INTEGER NOT NULL DEFAULT 0,
    archived INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
)""",
    """CREATE TABLE spool_usage (
    spool_id INTEGER NOT NULL REFERENCES spools(id) ON DELETE CASCADE,
    job_id INTEGER NOT NULL,
    grams REAL NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (spool_id, job_id)  -- a job is subtracted from a spool once
)""",
    "CREATE INDEX spool_usage_by_job ON spool_usage (job_id)",
)

# MIGRATIONS[n] takes a file from version n to n + 1.
MIGRATIONS: Final = (_VERSION_1, _VERSION_2)
SCHEMA_VERSION: Final = len(MIGRATIONS)

_JOB_COLUMNS: Final = (
    "id", "printer", "name", "model", "started_at", "ended_at", "duration_s", "result", "energy_kwh", "cost",
    "peak_watts", "plate", "file_path", "predicted_s", "planned_g", "used_g", "file_problem", "print_error",
    "error_text", "thumbnail",
)
_FILAMENT_COLUMNS: Final = (
    "idx", "material", "colour", "planned_g", "planned_m", "used_g", "ams", "tray", "external", "spool_id"
)


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
    print_error: str | None = None  # a failed job's error code ("0300_1234") and its text
    error_text: str | None = None


class PlannedFilamentLike(Protocol):
    """What :meth:`Database.set_job_file` reads of :class:`bambupi.jobfile.threemf.PlannedFilament` (the
    database does not import the 3MF reader)."""

    @property
    def index(self) -> int: ...
    @property
    def material(self) -> str: ...
    @property
    def colour(self) -> str: ...
    @property
    def grams(self) -> float: ...
    @property
    def metres(self) -> float | None: ...


@dataclass(frozen=True)
class JobFilamentUse:
    """One filament of a finished (or running) job: the grams it used and where it came from."""

    used_g: float | None
    ams: int | None = None  # AMS unit and tray; both None for the external holder or when unknown
    tray: int | None = None
    external: bool = False
    spool_id: int | None = None


class DatabaseError(Exception):
    """The database cannot be opened, read or written (disk full, locked, read-only, corrupt, of a newer version)."""


class _NewerVersion(Exception):
    """The file was written by a newer bambupi; nothing here may change it."""


# After these the connection is still good (the disk fills and frees, a lock is released); after any other failure
# (read-only, I/O error, corrupt, deleted) it is closed and opened afresh at the next use.
_CONNECTION_SURVIVES: Final = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_WRITING: Final = "cannot write the database"
_READING: Final = "cannot read the database"


class Database:
    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0, read_timeout_s: float = 1.0) -> None:
        """Opens (and if need be upgrades) the database now if it can; it never raises: a problem is in
        :attr:`problem` and the database is opened again at the next use."""
        self.path = path
        self.thumbnails = path.parent / "thumbnails"
        self.problem: str | None = None
        self._problem_writing = False  # a write problem is cleared only by a write; an open/read one by any use
        self._busy_timeout_s = busy_timeout_s
        self._read_timeout_s = read_timeout_s
        self._lock = threading.Lock()  # the writing connection
        self._db: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()  # the reading connection
        self._reader: sqlite3.Connection | None = None
        with contextlib.suppress(DatabaseError), self._lock, self._failures("cannot open the database"):
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
            db.execute("PRAGMA foreign_keys=ON")  # per connection: job_filaments/job_events go with their job
            _version(db)  # before anything writes: a newer file is refused untouched
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            _migrate(db)
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
        except (sqlite3.Error, OSError, ValueError, OverflowError, _NewerVersion) as exc:
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
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, BEGIN IMMEDIATE ... COMMIT under the lock; a failure anywhere, COMMIT included,
        rolls back (when SQLite has not already) and raises DatabaseError. A successful write clears
        :attr:`problem`. Values go in as parameters, never into the SQL text."""
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
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The reading connection, in one read transaction: what is read inside is one snapshot of the file, while
        writers go on (WAL). A failure raises DatabaseError."""
        with self._read_lock, self._failures(_READING):
            db = self._read_connection()
            db.execute("BEGIN")
            try:
                yield db
            finally:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("COMMIT")  # nothing was written: it only ends the snapshot
            if not self._problem_writing:
                self.problem = None  # it opens and reads again; whether it writes, the next write tells

    def health(self) -> dict[str, Any]:
        """The database's part of ``/healthz`` (named ``power_log`` since it began as one)."""
        return {"power_log": {"ok": self.problem is None, "error": self.problem}}

    def close(self) -> None:
        with self._lock:
            self._drop()
        with self._read_lock:
            self._drop_reader()

    def integrity(self) -> str:
        with self.reading() as db:
            row = db.execute("PRAGMA integrity_check").fetchone()
        return str(row[0])

    def version(self) -> int:
        """The schema version of the file (:data:`SCHEMA_VERSION` once it is open)."""
        with self.reading() as db:
            return _version(db)

    # -- writing ---------------------------------------------------------------------------------------------

    def add_samples(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        rows = [(s.printer, s.at, s.watts, int(s.on), s.total_kwh) for s in samples]
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO power_samples (printer, at, watts, relay_on, total_kwh, span) VALUES (?, ?, ?, ?, ?, 0)",
                rows,
            )

    def start_job(self, printer: str, name: str | None, model: str, started_at: float) -> int:
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO jobs (printer, name, model, started_at) VALUES (?, ?, ?, ?)",
                (printer, name, model, started_at),
            )
        return int(cursor.lastrowid or 0)

    def end_job(self, job_id: int, end: JobEnd) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET ended_at = ?, duration_s = COALESCE(?, MAX(? - started_at, 0)), result = ?,"
                " energy_kwh = ?, cost = ?, peak_watts = ?, print_error = ?, error_text = ? WHERE id = ?",
                (end.ended_at, end.duration_s, end.ended_at, end.result, end.energy_kwh, end.cost, end.peak_watts,
                 end.print_error, end.error_text, job_id),
            )

    def set_job_file(
        self,
        job_id: int,
        *,
        path: str,
        plate: int,
        predicted_s: float | None,
        planned_g: float | None,
        filaments: Sequence[PlannedFilamentLike],
        thumbnail_png: bytes | None,
    ) -> None:
        """What the job's 3MF says: its planned filaments replace any stored before, and its thumbnail is kept (a
        thumbnail too large, not a PNG or that cannot be written is left out; the rest is stored all the same)."""
        thumbnail = self._write_thumbnail(job_id, thumbnail_png)
        try:
            with self.transaction() as db:
                old = db.execute("SELECT thumbnail FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if old is None:  # deleted meanwhile: nothing to attach the file to
                    stale = [thumbnail] if thumbnail is not None else []
                else:
                    db.execute(
                        "UPDATE jobs SET plate = ?, file_path = ?, predicted_s = ?, planned_g = ?, file_problem = NULL,"
                        " thumbnail = ? WHERE id = ?",
                        (plate, path, predicted_s, planned_g, thumbnail, job_id),
                    )
                    db.execute("DELETE FROM job_filaments WHERE job_id = ?", (job_id,))
                    db.executemany(
                        "INSERT INTO job_filaments (job_id, idx, material, colour, planned_g, planned_m)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        [(job_id, f.index, f.material, f.colour, f.grams, f.metres) for f in filaments],
                    )
                    stale = [old[0]] if old[0] is not None and old[0] != thumbnail else []
                    stale += _thumbnails_over_bound(db)
        except BaseException:
            if thumbnail is not None:
                (self.thumbnails / thumbnail).unlink(missing_ok=True)
            raise
        self._remove_thumbnails(stale)

    def set_job_file_problem(self, job_id: int, reason: str) -> None:
        """Why the job's file could not be read (its grams are unknown); the job itself is recorded as usual."""
        with self.transaction() as db:
            db.execute("UPDATE jobs SET file_problem = ? WHERE id = ?", (reason, job_id))

    def set_job_usage(self, job_id: int, used_g: float | None, per_filament: Mapping[int, JobFilamentUse]) -> None:
        """The grams the job used, in total and per filament index (a filament its file did not name is added)."""
        with self.transaction() as db:
            db.execute("UPDATE jobs SET used_g = ? WHERE id = ?", (used_g, job_id))
            db.executemany(
                "INSERT INTO job_filaments (job_id, idx, used_g, ams, tray, external, spool_id)"
                " SELECT id, ?, ?, ?, ?, ?, ? FROM jobs WHERE id = ?"
                " ON CONFLICT (job_id, idx) DO UPDATE SET used_g = excluded.used_g, ams = excluded.ams,"
                " tray = excluded.tray, external = excluded.external, spool_id = excluded.spool_id",
                [(index, use.used_g, use.ams, use.tray, int(use.external), use.spool_id, job_id)
                 for index, use in per_filament.items()],
            )

    def add_job_event(
        self, job_id: int, at: float, kind: str, code: str | None = None, text: str | None = None
    ) -> None:
        """One entry of the job's timeline (a job deleted meanwhile takes none)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO job_events (job_id, at, kind, code, text) SELECT id, ?, ?, ?, ? FROM jobs WHERE id = ?",
                (at, kind, code, text, job_id),
            )

    def delete_job(self, job_id: int) -> bool:
        """Remove the job, its filaments, its timeline and its thumbnail; False when there was no such job."""
        with self.transaction() as db:
            row = db.execute("SELECT thumbnail FROM jobs WHERE id = ?", (job_id,)).fetchone()
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            return False
        self._remove_thumbnails([row[0]] if row[0] is not None else [])
        return True

    def downsample(self, now: float) -> int:
        """Average raw samples older than 7 days into minutes, and minutes older than 90 days into hours.

        Cut-offs are aligned to whole hours so every bucket that is averaged is complete. Returns rows removed.
        """
        removed = 0
        with self.transaction() as db:
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

    def _write_thumbnail(self, job_id: int, png: bytes | None) -> str | None:
        """The thumbnail's file name once written, None when there is none to keep."""
        if png is None:
            return None
        if len(png) > THUMBNAIL_MAX_BYTES or not png.startswith(_PNG_SIGNATURE):
            log.info("job %d: thumbnail left out (%d bytes, %s)", job_id, len(png),
                     "not a PNG" if not png.startswith(_PNG_SIGNATURE) else f"over {THUMBNAIL_MAX_BYTES}")
            return None
        name = f"{int(job_id)}.png"
        try:
            write_atomically(self.thumbnails / name, png)
        except OSError as exc:
            log.warning("job %d: cannot write its thumbnail (%s); the job is stored without it", job_id, exc)
            return None
        return name

    def _remove_thumbnails(self, names: Iterable[str]) -> None:
        for name in names:
            try:
                (self.thumbnails / Path(name).name).unlink(missing_ok=True)
            except OSError as exc:  # the row no longer names it; a leftover file is harmless
                log.warning("cannot remove thumbnail %s: %s", name, exc)

    # -- reading ---------------------------------------------------------------------------------------------

    def samples(self, printer: str, since: float, until: float | None = None) -> list[Sample]:
        """Raw samples in ``[since, until)``, oldest first (averages are not included)."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT printer, at, watts, relay_on, total_kwh FROM power_samples"
                " WHERE printer = ? AND span = 0 AND at >= ? AND at < ? ORDER BY at",
                (printer, since, until if until is not None else float("inf")),
            ).fetchall()
        return [Sample(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]

    def series(self, printer: str, since: float, bucket_s: float) -> list[tuple[float, float | None]]:
        """Average watts per ``bucket_s`` since ``since`` (all resolutions), for charts."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT CAST(at / ? AS INTEGER) * ? AS bucket, AVG(watts) FROM power_samples"
                " WHERE printer = ? AND at >= ? GROUP BY bucket ORDER BY bucket",
                (bucket_s, bucket_s, printer, since),
            ).fetchall()
        return [(float(r[0]), r[1]) for r in rows]

    def count_samples(self) -> dict[int, int]:
        with self.reading() as db:
            rows = db.execute("SELECT span, COUNT(*) FROM power_samples GROUP BY span").fetchall()
        return {int(r[0]): int(r[1]) for r in rows}

    def jobs(
        self,
        printer: str | None = None,
        limit: int | None = 50,
        *,
        result: str | None = None,
        material: str | None = None,
        since: float | None = None,
        until: float | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Most recent first, each with its ``filaments``; ``since``/``until`` bound the start (``[since, until)``),
        ``material`` matches any of its filaments (any case), ``limit`` None is all."""
        where: list[str] = []
        args: list[Any] = []
        for clause, value in (("printer = ?", printer), ("result = ?", result), ("started_at >= ?", since),
                              ("started_at < ?", until)):
            if value is not None:
                where.append(clause)
                args.append(value)
        if material is not None:
            where.append("EXISTS (SELECT 1 FROM job_filaments f WHERE f.job_id = jobs.id"
                         " AND f.material = ? COLLATE NOCASE)")
            args.append(material)
        chosen = "SELECT id FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        chosen += " ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?"
        args += [-1 if limit is None else max(limit, 0), max(offset, 0)]
        with self.reading() as db:
            rows = db.execute(
                f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs WHERE id IN ({chosen})"
                " ORDER BY started_at DESC, id DESC", args
            ).fetchall()
            filaments = _filaments(db, f"job_id IN ({chosen})", args)
        return [{**dict(zip(_JOB_COLUMNS, row, strict=True)), "filaments": filaments.get(row[0], [])} for row in rows]

    def job(self, job_id: int) -> dict[str, Any] | None:
        """One job with its ``filaments`` and ``events`` (its timeline, oldest first), or None."""
        with self.reading() as db:
            row = db.execute(f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            filaments = _filaments(db, "job_id = ?", [job_id])
            events = db.execute(
                "SELECT at, kind, code, text FROM job_events WHERE job_id = ? ORDER BY at, rowid", (job_id,)
            ).fetchall()
        return {
            **dict(zip(_JOB_COLUMNS, row, strict=True)),
            "filaments": filaments.get(job_id, []),
            "events": [dict(zip(("at", "kind", "code", "text"), event, strict=True)) for event in events],
        }

    def thumbnail_path(self, job_id: int) -> Path | None:
        """The job's thumbnail file, None when it has none (or the file is gone)."""
        with self.reading() as db:
            row = db.execute("SELECT thumbnail FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        path = self.thumbnails / Path(row[0]).name
        return path if path.is_file() else None

    def open_jobs(self) -> dict[str, int]:
        """The latest unfinished job of each printer (a job running when bambupi last stopped)."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT printer, MAX(id) FROM jobs WHERE ended_at IS NULL GROUP BY printer"
            ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}


def _version(db: sqlite3.Connection) -> int:
    """The file's schema version: user_version, where 0 with today's tables (a file from before versions) is 1."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise _NewerVersion(
            f"the database is version {version}, newer than this bambupi's {SCHEMA_VERSION}: it is left as it is"
            " (run the newer bambupi, or move the file aside to start a new one)"
        )
    if version == 0:
        names = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master")}
        if names >= _VERSION_1_NAMES:
            return 1
    return version


def _migrate(db: sqlite3.Connection) -> None:
    """Take the file to :data:`SCHEMA_VERSION`, one transaction per version."""
    while _version(db) < SCHEMA_VERSION:
        db.execute("BEGIN IMMEDIATE")
        try:
            version = _version(db)  # again inside the write lock: another process may have done it meanwhile
            upgrading = version < SCHEMA_VERSION
            if upgrading:
                for statement in MIGRATIONS[version]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {version + 1:d}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise
        if upgrading:
            log.info("database upgraded to version %d", version + 1)


def _filaments(db: sqlite3.Connection, where: str, args: Sequence[Any]) -> dict[int, list[dict[str, Any]]]:
    """The filaments of the jobs ``where`` chooses, by job id, in the 3MF's order."""
    rows = db.execute(
        f"SELECT job_id, {', '.join(_FILAMENT_COLUMNS)} FROM job_filaments WHERE {where} ORDER BY job_id, idx", args
    ).fetchall()
    found: dict[int, list[dict[str, Any]]] = {}
    for job_id, *values in rows:
        filament = dict(zip(_FILAMENT_COLUMNS, values, strict=True))
        filament["index"] = filament.pop("idx")
        filament["external"] = bool(filament["external"])
        found.setdefault(int(job_id), []).append(filament)
    return found


def _thumbnails_over_bound(db: sqlite3.Connection) -> list[str]:
    """Unlink (in the rows) the thumbnails beyond the newest :data:`THUMBNAILS_MAX` jobs'; their names, for the files
    to be removed once this commits."""
    rows = db.execute(
        "SELECT id, thumbnail FROM jobs WHERE thumbnail IS NOT NULL ORDER BY started_at DESC, id DESC"
        " LIMIT -1 OFFSET ?", (THUMBNAILS_MAX,)
    ).fetchall()
    db.executemany("UPDATE jobs SET thumbnail = NULL WHERE id = ?", [(r[0],) for r in rows])
    return [str(r[1]) for r in rows]


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
