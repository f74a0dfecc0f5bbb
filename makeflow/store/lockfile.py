"""`makeflow.lock`: what every step last ran with and made, meant to be committed.

One entry per step: its recipe digest, params, and each input's and output's path, digest
and size. Deterministic (sorted JSON, no timestamps, host names or absolute paths of
makeflow's own), so it diffs cleanly and two machines that build the same thing write the
same file. A fresh clone has no state store; a step whose entry matches its inputs,
recipe, params and outputs is fresh without running (see `plan/staleness.py`).

A lock that does not parse (a merge conflict) is a warning and is ignored: makeflow then
relies on its store and the content of the files, as without a lock.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from makeflow.store.hashing import hash_bytes
from makeflow.store.state import STATE_DIR, StepRecord, dump

LOCK_FILE = "makeflow.lock"
WRITTEN = "makeflow.lock.written"  # in .makeflow/: the digest of the lock makeflow wrote
VERSION = 1

Sizes = Callable[[str], int | None]


def entry_of(record: StepRecord, size: Sizes) -> dict:
    """A step's lock entry from its state record; `size` gives a file's size or None."""
    def files(digests: dict[str, str]) -> dict:
        out = {}
        for path, digest in digests.items():
            n = None if digest.startswith("tree:") else size(path)
            out[path] = {"digest": digest, **({"size": n} if n is not None else {})}
        return out

    return {"recipe": record.recipe, "params": json.loads(dump(record.params)),
            "inputs": files(record.inputs), "outputs": files(record.outputs)}


def record_of(entry: dict, inputs: Iterable[str], outputs: Iterable[str]) -> StepRecord | None:
    """The state record a lock entry stands for, files in the step's order; None when the
    entry is malformed or names other files than the step has."""
    try:
        ins = {p: entry["inputs"][p]["digest"] for p in inputs}
        outs = {p: entry["outputs"][p]["digest"] for p in outputs}
        if len(ins) != len(entry["inputs"]) or len(outs) != len(entry["outputs"]):
            return None
        return StepRecord(str(entry["recipe"]), dict(entry["params"]), ins, outs)
    except (KeyError, TypeError, AttributeError):
        return None


HEAD = '{\n "steps": {\n'
TAIL = f'\n }},\n "version": {VERSION}\n}}\n'
EMPTY = f'{{\n "steps": {{}},\n "version": {VERSION}\n}}\n'
BETWEEN = ',\n  "'  # only between two entries: an entry's own lines are indented deeper
_decoder = json.JSONDecoder()
_string = json.encoder.encode_basestring_ascii  # a str as JSON, as json.dumps writes it


def block(step_id: str, entry: dict) -> str:
    """One step's lines of the lock, exactly as `json.dumps` of the whole lock writes them."""
    return "  " + _string(step_id) + ": " + _indented(entry, 2)


def _indented(value: object, depth: int) -> str:
    """`json.dumps(value, sort_keys=True, indent=1)` as it stands `depth` deep in the lock.

    The same bytes, without json's pure-Python indenting encoder, which took most of a
    second for the one entry that lists 10,000 inputs: dicts with string keys and plain
    leaves are written here, anything else by json itself.
    """
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is int:
        return int.__repr__(value)
    if kind is dict and value and set(map(type, value)) == {str}:
        inner = "\n" + " " * (depth + 1)
        items = []
        for key in sorted(value):
            item, leaf = value[key], type(value[key])
            text = (_string(item) if leaf is str else int.__repr__(item) if leaf is int
                    else _file(item, inner) or _indented(item, depth + 1))
            items.append(f"{inner}{_string(key)}: {text}")
        return "{" + ",".join(items) + "\n" + " " * depth + "}"
    text = json.dumps(value, sort_keys=True, indent=1)  # no raw newline inside a value
    return text.replace("\n", "\n" + " " * depth) if "\n" in text else text


def _file(item: object, outer: str) -> str | None:
    """A file's {"digest", "size"} at the indent `outer` ("\\n" and spaces) of its name, as
    `_indented` would write it, in one step (there are 10,000 in a big step's entry)."""
    if type(item) is not dict or item.keys() != {"digest", "size"}:
        return None
    digest, size = item["digest"], item["size"]
    if type(digest) is not str or type(size) is not int:
        return None
    return f'{{{outer} "digest": {_string(digest)},{outer} "size": {size}{outer}}}'


def join(blocks: dict[str, str]) -> str:
    """The lock's text from each step's block, sorted by step id as `sort_keys` sorts."""
    if not blocks:
        return EMPTY
    return HEAD + ",\n".join(blocks[k] for k in sorted(blocks)) + TAIL


def render(entries: dict[str, dict]) -> str:
    """The whole lock: byte for byte `json.dumps({"steps": entries, "version": VERSION},
    sort_keys=True, indent=1) + "\n"` (ASCII: a file name that is not UTF-8, which Linux
    allows, survives as \\udcXX), built from blocks so one entry can be replaced alone."""
    return join({sid: block(sid, entry) for sid, entry in entries.items()})


def split(text: str) -> dict[str, str]:
    """Each step's block of a lock `render` wrote (the caller knows it did), by step id."""
    if text == EMPTY:
        return {}
    if not (text.startswith(HEAD) and text.endswith(TAIL)):
        raise ValueError("not a lock makeflow wrote")
    blocks = {}
    for i, part in enumerate(text[len(HEAD):-len(TAIL)].split(BETWEEN)):
        lines = part if i == 0 else '  "' + part
        step_id, _ = _decoder.raw_decode(lines, 2)
        blocks[step_id] = lines
    return blocks


class LockFile:
    """The lock beside the rules file, read on first use only: a build whose store knows
    every step never opens it.

    Updating it after a build replaces the changed steps' blocks in the text without
    parsing the rest, when the file is still the one makeflow last wrote (its digest is
    kept in `.makeflow/`); otherwise the whole file is parsed and written again. Both give
    the same bytes.
    """

    def __init__(self, root: Path):
        self.path = Path(root) / LOCK_FILE
        self.written = Path(root) / STATE_DIR / WRITTEN
        self._entries: dict[str, dict] | None = None
        self._text: str | None = None
        self._loaded = False
        self.warnings: list[str] = []

    @property
    def text(self) -> str | None:
        """The file's text as read (once), None when there is none or it cannot be read."""
        if not self._loaded:
            self._loaded = True
            try:
                self._text = self.path.read_text(encoding="utf-8")
            except FileNotFoundError:
                pass
            except (OSError, UnicodeDecodeError) as exc:
                self.warnings.append(f"{LOCK_FILE} could not be read ({exc}); it is ignored")
        return self._text

    def entries(self) -> dict[str, dict]:
        """Every step's entry; empty when there is no lock or it does not parse."""
        if self._entries is None:
            self._entries = self._parse()
        return self._entries

    def entry(self, step_id: str) -> dict | None:
        return self.entries().get(step_id)

    @property
    def readable(self) -> bool:
        self.entries()
        return self.text is not None and not self.warnings

    def ours(self) -> bool:
        """Whether the file is byte for byte the one makeflow last wrote here: then its
        entries can be replaced one by one without parsing it."""
        if self.text is None:
            return False
        try:
            recorded = self.written.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return False
        return recorded == hash_bytes(self.text.encode("utf-8"))

    def _parse(self) -> dict[str, dict]:
        text = self.text
        if text is None:
            return {}
        try:
            data = json.loads(text)
            steps = data["steps"]
            if data.get("version") != VERSION or not isinstance(steps, dict):
                raise ValueError(f"version {data.get('version')!r}")
            return steps
        except (ValueError, KeyError, TypeError) as exc:
            conflict = "<<<<<<<" in text
            why = "it has merge conflict markers" if conflict else f"it does not parse ({exc})"
            self.warnings.append(
                f"{self.path.name}: {why}; it is ignored, and makeflow relies on its store "
                "and the content of the files. The next successful build writes it again.")
            return {}

    def write(self, entries: dict[str, dict]) -> bool:
        """Write the lock with exactly these entries if its text changes; whether it did."""
        changed = self._write_text(render(entries))
        self._entries = entries
        return changed

    def update(self, changes: dict[str, dict | None]) -> bool:
        """Replace (or, for None, remove) these steps' entries and keep the others; whether
        the file changed. Parses the file only when it is not the one makeflow wrote."""
        if not self.ours():
            entries = dict(self.entries())
            for sid, entry in changes.items():
                if entry is None:
                    entries.pop(sid, None)
                else:
                    entries[sid] = entry
            return self.write(entries)
        blocks = split(self.text or "")
        for sid, entry in changes.items():
            if entry is None:
                blocks.pop(sid, None)
            else:
                blocks[sid] = block(sid, entry)
        self._entries = None  # parsed again only if someone asks
        return self._write_text(join(blocks))

    def _write_text(self, text: str) -> bool:
        if text == self.text:
            return False
        tmp = self.path.with_name(f".{LOCK_FILE}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)
        self._text, self._loaded, self.warnings = text, True, []
        self._remember(text)
        return True

    def _remember(self, text: str) -> None:
        """Keep the digest of what was written, so the next update can trust the text; a
        failure only costs that update a parse."""
        with contextlib.suppress(OSError):
            self.written.parent.mkdir(exist_ok=True)
            tmp = self.written.with_name(f".{WRITTEN}.{os.getpid()}.tmp")
            tmp.write_text(hash_bytes(text.encode("utf-8")) + "\n", encoding="ascii")
            os.replace(tmp, self.written)
