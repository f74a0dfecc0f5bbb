"""The run cache: a step's cache key → the digests of the outputs it made, and its log.

The index beside the content-addressed store (`cas.py`), in the same root:

    runs.db                       one `RunRecord` per key (runindex.py); on a remote,
    runs/<2 hex>/<key>.json       one file per key

A record is written only after every blob it names is in the store, and a lookup checks
that they still are (`gc` may have removed some), so a hit can always be restored. The key
is computed by the planner (`plan/cachekey.py`) from the same pieces as a step's
fingerprint, without its outputs' digests; this module only stores strings.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from makeflow.store import fs
from makeflow.store.cas import BlobError, Cas
from makeflow.store.runindex import RunIndex, record_file

RECORD_VERSION = 1
INLINE_LOG = 4096  # bytes: a log up to this size is kept in its run record


@dataclass(frozen=True)
class RunRecord:
    """What a step made: each output path's digest, its log, how long it took.

    The log is either a blob (`log`, its digest) or, when it is short text, kept in the
    record itself (`log_text`): most steps print little or nothing, and a blob is one
    more file created per step, which costs more than a trivial step does.
    """

    step: str
    outputs: dict[str, str]
    log: str | None = None
    seconds: float = 0.0
    version: int = field(default=RECORD_VERSION)
    log_text: str | None = None

    def to_bytes(self) -> bytes:
        """Deterministic JSON, so two writers of one key write the same bytes."""
        raw = {"version": self.version, "step": self.step, "outputs": self.outputs,
               "log": self.log, "seconds": round(self.seconds, 3)}
        if self.log_text is not None:
            raw["log_text"] = self.log_text
        return json.dumps(raw, sort_keys=True, ensure_ascii=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> RunRecord | None:
        """The record, or None for one this makeflow cannot read (damaged, other version)."""
        try:
            raw = json.loads(data)
            if raw.get("version") != RECORD_VERSION:
                return None
            outputs = {str(k): str(v) for k, v in raw["outputs"].items()}
            text = raw.get("log_text")
            return cls(str(raw["step"]), outputs, raw.get("log"), float(raw.get("seconds", 0)),
                       log_text=None if text is None else str(text))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    @property
    def digests(self) -> list[str]:
        """Every object the record names: outputs, then the log."""
        return [*self.outputs.values(), *([self.log] if self.log else [])]


def record_key(key: str) -> str:
    """Where a key's record lives below a store's root, with "/" separators."""
    return record_file(_checked(key))


def _checked(key: str) -> str:
    """`key`, or ValueError for what is not a cache key."""
    if len(key) < 3 or not key.isalnum():
        raise ValueError(f"not a cache key: {key!r}")
    return key


class RunCache:
    """The local run cache: `get(key)`, `save(key, ...)` and `restore(record)` over a Cas."""

    def __init__(self, root: str | os.PathLike[str], link: bool = False):
        self.root = Path(root)
        self.cas = Cas(self.root, link=link)
        self.index = RunIndex(self.root)
        self.hits = self.misses = 0

    def get(self, key: str) -> RunRecord | None:
        """The record of `key` when every object it names is still in the store."""
        record = self.read(key)
        if record is None or not all(self.cas.has(d) for d in record.digests):
            return None
        return record

    def has_record(self, key: str) -> bool:
        """Whether a record of `key` is here (one lookup; `get` says whether it is usable)."""
        return self.index.has(_checked(key))

    def read(self, key: str) -> RunRecord | None:
        """The record of `key` as stored, whether or not its objects are all here."""
        data = self.index.get(_checked(key))
        return None if data is None else RunRecord.from_bytes(data)

    def save(self, key: str, step: str, outputs: dict[str, str], log: str | None = None,
             seconds: float = 0.0) -> RunRecord:
        """Store a step's outputs (path → the digest they were hashed to) and its log,
        then its record. BlobError when an output no longer matches its digest."""
        record = self.keep(step, outputs, log, seconds)
        self.put(key, record)
        return record

    def keep(self, step: str, outputs: dict[str, str], log: str | None = None,
             seconds: float = 0.0) -> RunRecord:
        """Store a step's outputs and log; the record that names them, not yet kept
        (`put`, `put_many`). BlobError when an output no longer matches its digest."""
        for path, digest in outputs.items():
            self.cas.put(path, digest)
        log_digest = log_text = None
        if log is not None:
            log_text = _short_text(log)
            if log_text is None and os.path.isfile(log):
                with contextlib.suppress(OSError, BlobError):
                    log_digest = self.cas.put(log)
        return RunRecord(step, dict(outputs), log_digest, seconds, log_text=log_text)

    def put(self, key: str, record: RunRecord) -> None:
        """Keep a record whose objects are already in the store (OSError on failure)."""
        self.put_many([(key, record)])

    def put_many(self, records: list[tuple[str, RunRecord]]) -> None:
        """Keep several records in one write (OSError on failure: none is kept)."""
        self.index.put_many([(_checked(key), record.to_bytes()) for key, record in records])

    def restore(self, record: RunRecord, log: str | None = None) -> None:
        """Place every output of `record` at its path, and the log at `log`.

        Each is written beside its target and checked first; only when all are good are
        they renamed into place, so a corrupt blob leaves the old outputs untouched
        (BlobError, and the blob is dropped).
        """
        ready: list[tuple[str, str]] = []
        try:
            for path, digest in record.outputs.items():
                ready.append((self.cas.prepare(digest, path), path))
            if log and record.log_text is not None:
                with contextlib.suppress(OSError):
                    ready.append((_write_beside(log, record.log_text), log))
            elif log and record.log:
                with contextlib.suppress(BlobError, OSError):
                    ready.append((self.cas.prepare(record.log, log), log))
        except BaseException:
            for near, _ in ready:
                fs.remove(near)
            raise
        for near, path in ready:
            fs.replace(near, path)

    def count(self, hits: int, misses: int) -> None:
        """Add a build's hits and misses to the totals `makeflow cache` shows."""
        if not hits and not misses:
            return
        with contextlib.suppress(sqlite3.Error, OSError), self._counts() as db:
            db.execute("INSERT INTO counts VALUES ('hits', ?), ('misses', ?) ON CONFLICT(name) "
                       "DO UPDATE SET n = n + excluded.n", (hits, misses))

    def counts(self) -> dict[str, int]:
        try:
            with self._counts() as db:
                return dict(db.execute("SELECT name, n FROM counts"))
        except (sqlite3.Error, OSError):
            return {}

    @contextlib.contextmanager
    def _counts(self):
        self.root.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.root / "counts.db", timeout=10, isolation_level=None)
        try:
            db.execute("CREATE TABLE IF NOT EXISTS counts (name TEXT PRIMARY KEY, n INTEGER)")
            yield db
        finally:
            db.close()

    def empty(self) -> bool:
        """Whether the index holds no record."""
        return self.index.empty()

    def records(self) -> int:
        return self.index.count()

    def close(self) -> None:
        """Close the index (a build's end; a later lookup opens it again)."""
        self.index.close()


def _short_text(path: str) -> str | None:
    """A log's text when it is short UTF-8 (kept in the record), else None (a blob, or
    no log at all when the file is missing)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, INLINE_LOG + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > INLINE_LOG:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _write_beside(dest: str, text: str) -> str:
    """`text` written to a new file beside `dest`; its path, for renaming into place."""
    parent = os.path.dirname(dest) or "."
    os.makedirs(parent, exist_ok=True)
    near = os.path.join(parent, f".{os.path.basename(dest)}.makeflow-{os.urandom(4).hex()}")
    try:
        with open(near, "xb") as f:
            f.write(text.encode("utf-8"))
    except BaseException:
        fs.remove(near)
        raise
    return near
