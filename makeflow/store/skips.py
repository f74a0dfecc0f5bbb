"""The steps whose last run chose to make no outputs (`Skip`), with their reasons.

A table of its own in the state store, beside the step records, so a build (a no-op one
too) learns every skipped step in one query on a table that is usually empty, without
reading a record. Rows are written in the transaction that writes the step's record.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from makeflow.store.records import from_db, to_db

Recover = Callable[[sqlite3.DatabaseError], None]
Change = tuple[str | bytes, str | None]  # (step id, reason); None drops the row


class Skips:
    """The skips table as one build sees it: read once, changes kept until written."""

    def __init__(self) -> None:
        self._known: dict[str, str] | None = None
        self.pending: list[Change] = []

    def known(self, db: sqlite3.Connection, recover: Recover) -> dict[str, str]:
        if self._known is None:
            try:
                rows = db.execute("SELECT id, reason FROM skips").fetchall()
            except sqlite3.OperationalError:  # a read-only store from before skips
                rows = []
            except sqlite3.DatabaseError as exc:
                recover(exc)
                rows = []
            self._known = {from_db(sid): reason for sid, reason in rows}
        return self._known

    def note(self, db: sqlite3.Connection, recover: Recover, step_id: str,
             reason: str) -> None:
        """The step's new record skipped (with `reason`) or not (''): the row follows."""
        known = self.known(db, recover)
        if reason:
            known[step_id] = reason
            self.pending.append((to_db(step_id), reason))
        elif known.pop(step_id, None) is not None:
            self.pending.append((to_db(step_id), None))

    def take(self) -> list[Change]:
        taken, self.pending = self.pending, []
        return taken


def write_skips(db: sqlite3.Connection, changes: list[Change]) -> None:
    """Apply the changes, inside the caller's transaction."""
    for sid, reason in changes:
        if reason is None:
            db.execute("DELETE FROM skips WHERE id=?", (sid,))
        else:
            db.execute("INSERT OR REPLACE INTO skips VALUES (?,?)", (sid, reason))
