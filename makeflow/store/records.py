"""The records the state store keeps, as plain data: a file's stat and digest, a step's
last run, and the fingerprint that says whether a step is fresh.

Kept apart from the store (state.py), which reads and writes them, so the data can be
read alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple

from makeflow.store.fs import Stat
from makeflow.store.hashing import hash_text

REMOTE_ONLY = -1  # the inode of a FileRecord whose file is on the remote store only (see
# run/unshared.py): made by a worker that shares no disk with the build, not downloaded
SETTLE_NS = 1_000_000_000  # a hash this far from the file's mtime is trusted on any clock
FINE_SETTLE_NS = 100_000_000  # ... and this far on a file system with fine mtimes: see
# `FileRecord.settled`


def settle_margin_ns(mtime_ns: int) -> int:
    """How far from a file's mtime a hash must be taken to be trusted by its stat (see
    `FileRecord.settled`): an mtime with digits below the millisecond comes from a file
    system with fine timestamps."""
    return FINE_SETTLE_NS if mtime_ns % 1_000_000 else SETTLE_NS


class FileRecord(NamedTuple):
    """A file's stat and digest when it was last hashed; `checked_ns` is when that was.

    A tuple, so loading hundreds of thousands of them from the store stays cheap.
    """

    size: int
    mtime_ns: int
    inode: int
    digest: str
    checked_ns: int

    def same_stat(self, st: Stat) -> bool:
        return st.size == self.size and st.mtime_ns == self.mtime_ns and st.inode == self.inode

    def matches(self, st: Stat) -> bool:
        """Whether the cached digest can be trusted for a file that stats as `st`.

        A file modified within a second of being hashed could change again with the same
        mtime (coarse clocks), so such entries are never trusted and get hashed again.
        """
        return (
            st.size == self.size
            and st.mtime_ns == self.mtime_ns
            and st.inode == self.inode
            and self.settled
        )

    @property
    def settled(self) -> bool:
        """Whether the hash and the file's mtime are far enough apart, either way, that a
        later write cannot leave the same mtime.

        A write soon after the hash could get the same mtime as the one hashed: the file
        system's timestamps are coarse (whole seconds, or two on FAT), or its clock moves in
        ticks (Linux stamps files with a clock updated every 1 to 10 ms, Windows every
        16 ms). An mtime with digits below the millisecond comes from a file system that
        keeps fine timestamps, so there a tenth of a second is enough; any other needs a
        second. A write after the hash gets the clock's time as its mtime, so a file whose
        mtime is in the future (a skewed clock, an archive unpacked from another machine)
        can be trusted too, instead of being read again on every build until the clock
        catches up.
        """
        return abs(self.checked_ns - self.mtime_ns) > settle_margin_ns(self.mtime_ns)

    @property
    def ahead_ns(self) -> int:
        """How far in the future the file's mtime was when it was hashed (0 when not)."""
        ahead = self.mtime_ns - self.checked_ns
        return ahead if ahead > 1_000_000_000 else 0


@dataclass(frozen=True, slots=True)
class StepRecord:
    """The last successful run of a step: what it ran and the digests it saw and made.

    `moved` names an input that changed while the step ran: the run's outputs are known
    (so `clean` can remove them) but the step is stale, and says why. `skipped` is the
    reason a step gave for making no outputs (`Skip`): it stays skipped, without running,
    while its fingerprint holds (its previous outputs as they were, "" for none).
    """

    recipe: str
    params: dict
    inputs: dict[str, str]
    outputs: dict[str, str]
    finished_ns: int = 0
    seconds: float = 0.0
    moved: str = ""
    skipped: str = ""

    def as_json(self) -> dict:
        """The record as JSON stores it; not dataclasses.asdict, which deep-copies every
        dict (0.5 s for a step with 100,000 inputs)."""
        data = {"recipe": self.recipe, "params": self.params, "inputs": self.inputs,
                "outputs": self.outputs, "finished_ns": self.finished_ns,
                "seconds": self.seconds}
        if self.moved:
            data["moved"] = self.moved
        if self.skipped:
            data["skipped"] = self.skipped
        return data

    @property
    def fingerprint(self) -> str:
        """What a fresh step's current fingerprint equals; nothing, for a moved run."""
        if self.moved:
            return ""
        outputs = ([(p, d or None) for p, d in self.outputs.items()] if self.skipped
                   else list(self.outputs.items()))  # a skipped step's "": absent
        return fingerprint_of(self.recipe, dump(self.params), list(self.inputs.items()),
                              outputs)


def fingerprint_of(recipe: str, params_json: str, inputs: list[tuple[str, str | None]],
                   outputs: list[tuple[str, str | None]]) -> str:
    """One digest of everything that decides whether a step is fresh.

    Equal fingerprints mean fresh, so a no-op build compares one string per step and
    reads no record.
    """
    parts = [recipe, params_json]
    for path, digest in inputs:
        parts += (path, str(digest))
    parts.append("->")
    for path, digest in outputs:
        parts += (path, str(digest))
    return hash_text("\0".join(parts))


def dump(value: object) -> str:
    """JSON, ASCII-only so file names that are not UTF-8 survive (as \\udcXX escapes)."""
    return json.dumps(value, sort_keys=True, default=repr)


def to_db(text: str) -> str | bytes:
    """A path or step id for SQLite, whose text must be UTF-8: a name that is not (Linux
    allows any bytes) is stored as its bytes instead."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")
    return text


def from_db(value: str | bytes) -> str:
    """A path or step id as `to_db` stored it."""
    return value if isinstance(value, str) else value.decode("utf-8", "surrogateescape")
