"""Unpack a zip or tar archive (plain, gz, bz2, xz), refusing members that would escape.

Every member is checked before anything is written: an absolute name, a `..` that climbs
out, a link that points outside, or a device file fails the step and nothing is extracted.
"""

from __future__ import annotations

import posixpath
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any

from makeflow import StepError, UserError

from ._declare import declare, single_path

__makeflow_factory__ = True  # rule errors point at the line in Makeflow.py


def extract(name: str, *, archive: str, output: str | None = None,
            members: dict[str, str] | None = None, **options: Any) -> Any:
    """Declare rule `name`: unpack `archive` into the folder `output`, or pick `members`.

    With `output="data/raw"` the whole archive lands in that folder (hashed as a tree).
    With `members={"inside/a.csv": "data/a.csv"}` only those members are written, each to
    its own output file, so later rules can depend on them one by one. Other keyword
    arguments are rule options. The kind of archive is found from its content, not its name.

    Example::

        from makeflow_rules import extract

        extract("unpack", archive="downloads/survey.zip", output="data/survey")
        extract("pick", archive="downloads/survey.tar.gz",
                members={"survey/2024.csv": "data/2024.csv"})
    """
    archive = single_path("extract", name, "archive", archive)
    if (output is None) == (members is None):
        raise UserError(
            f"extract({name!r}) needs either output= (a folder for the whole archive) or "
            "members= (a dict of member name -> output file), not both or neither"
        )
    if output is not None:
        folder = single_path("extract", name, "output", output)
        return declare("extract", name, unpack, inputs=archive, outputs=folder,
                       params={"members": None}, options=options)
    if not isinstance(members, dict) or not members or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in members.items()):
        raise UserError(f"extract({name!r}): members= must be a non-empty dict of "
                        "member name -> output path (strings)")
    return declare("extract", name, unpack, inputs=archive, outputs=list(members.values()),
                   params={"members": list(members)}, options=options)


def unpack(step: Any) -> None:
    """The step: check every member, then extract all of them or the chosen ones."""
    source = Path(step.inputs[0])
    wanted = step.params["members"]
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as zf:
            _unpack_zip(zf, source, step, wanted)
    elif tarfile.is_tarfile(source):
        with tarfile.open(source) as tf:
            _unpack_tar(tf, source, step, wanted)
    else:
        raise StepError(f"{source} is neither a zip nor a tar archive (plain, gz, bz2, xz)")


def _unpack_zip(zf: zipfile.ZipFile, source: Path, step: Any, wanted: list[str] | None) -> None:
    infos = zf.infolist()
    for info in infos:
        _check_name(source, info.filename)
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise StepError(f"{source}: member {info.filename!r} is a symbolic link; "
                            "refusing to extract it (nothing was extracted)")
    if wanted is None:
        folder = Path(step.outputs[0])
        folder.mkdir(parents=True, exist_ok=True)
        zf.extractall(folder)
        return
    by_name = {_clean(info.filename): info for info in infos}
    for member, target in zip(wanted, step.outputs, strict=True):
        info = _member(by_name, source, member)
        with zf.open(info) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)


def _unpack_tar(tf: tarfile.TarFile, source: Path, step: Any, wanted: list[str] | None) -> None:
    infos = tf.getmembers()
    for info in infos:
        _check_name(source, info.name)
        _check_tar_kind(source, info)
    if wanted is None:
        folder = Path(step.outputs[0])
        folder.mkdir(parents=True, exist_ok=True)
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
            tf.extractall(folder, filter="data")  # a second guard, and no odd permissions
        else:  # every member was checked above, which is the guard that matters
            tf.extractall(folder)
        return
    by_name = {_clean(info.name): info for info in infos if info.isfile()}
    for member, target in zip(wanted, step.outputs, strict=True):
        src = tf.extractfile(_member(by_name, source, member))
        assert src is not None  # a regular file always has a body
        with src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)


def _clean(name: str) -> str:
    return posixpath.normpath(name.replace("\\", "/"))


def _member(by_name: dict[str, Any], source: Path, member: str) -> Any:
    info = by_name.get(_clean(member))
    if info is None:
        files = sorted(by_name)[:8]
        raise StepError(f"{source} has no file {member!r} (it has {', '.join(files)}"
                        f"{', ...' if len(by_name) > 8 else ''})")
    return info


def _escapes(name: str) -> bool:
    """Whether a member name, placed in a folder, would land outside of it."""
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return True
    clean = posixpath.normpath(name)
    return clean == ".." or clean.startswith("../")


def _check_name(source: Path, name: str) -> None:
    if _escapes(name):
        raise StepError(f"{source}: member {name!r} would be written outside the output "
                        "folder; refusing to extract the archive (nothing was extracted)")


def _check_tar_kind(source: Path, info: tarfile.TarInfo) -> None:
    if info.isfile() or info.isdir():
        return
    if info.issym() or info.islnk():
        target = info.linkname if info.islnk() else posixpath.join(
            posixpath.dirname(info.name), info.linkname)
        if _escapes(target) or info.linkname.startswith("/"):
            raise StepError(f"{source}: member {info.name!r} links to {info.linkname!r}, "
                            "outside the output folder; refusing to extract the archive "
                            "(nothing was extracted)")
        return
    raise StepError(f"{source}: member {info.name!r} is a device or pipe; refusing to "
                    "extract the archive (nothing was extracted)")
