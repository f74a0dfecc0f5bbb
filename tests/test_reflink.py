"""How the cache places a file: a reflink where the file system can, else a copy, and a
hard link only when the user asks for one. Every way is checked against the digest."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import subprocess

import pytest

from makeflow.store import fs
from makeflow.store.cas import BlobError, Cas
from makeflow.store.hashing import hash_file


def write(path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


class IoctlSpy:
    """Records every FICLONE asked of fcntl.ioctl; `then` decides what it does."""

    def __init__(self, then):
        self.then = then
        self.calls: list[tuple[int, int]] = []
        self.failed: list[int] = []
        self.real = fcntl.ioctl

    def __call__(self, fd, request, arg=0, *rest):
        if request != fs.FICLONE:
            return self.real(fd, request, arg, *rest)
        self.calls.append((fd, arg))
        try:
            return self.then(self.real, fd, request, arg)
        except OSError as exc:
            self.failed.append(exc.errno)
            raise


def spy(monkeypatch, then) -> IoctlSpy:
    ioctl = IoctlSpy(then)
    monkeypatch.setattr(fcntl, "ioctl", ioctl)
    return ioctl


def call_through(real, fd, request, arg):
    return real(fd, request, arg)


def test_restore_tries_a_reflink_and_copies_where_the_file_system_has_none(tmp_path,
                                                                            monkeypatch):
    """A reflink is tried first; on ext4 or tmpfs (here) the kernel refuses it and the copy
    lands, on a file system that clones the clone does: either way an independent file."""
    cas = Cas(tmp_path / "cas")
    data = os.urandom(1 << 20)
    digest = cas.put(write(tmp_path / "a.bin", data))
    ioctl = spy(monkeypatch, call_through)
    cas.restore(digest, str(tmp_path / "out" / "a.bin"))
    assert ioctl.calls, "no reflink was attempted"
    assert (tmp_path / "out" / "a.bin").read_bytes() == data
    assert os.stat(tmp_path / "out" / "a.bin").st_nlink == 1


@pytest.mark.parametrize("code", [errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY])
def test_a_refused_reflink_falls_back_to_a_checked_copy(tmp_path, monkeypatch, code):
    cas = Cas(tmp_path / "cas")
    data = os.urandom(300_000)
    digest = cas.put(write(tmp_path / "a.bin", data))

    def refuse(real, fd, request, arg):
        raise OSError(code, os.strerror(code))

    ioctl = spy(monkeypatch, refuse)
    cas.restore(digest, str(tmp_path / "b.bin"))
    assert ioctl.failed == [code]
    assert (tmp_path / "b.bin").read_bytes() == data
    assert hash_file(str(tmp_path / "b.bin")) == digest


def test_a_clone_is_checked_like_a_copy(tmp_path, monkeypatch):
    """A clone of a rotten blob holds the rot: the digest check catches it, drops the blob,
    and leaves the target as it was."""
    cas = Cas(tmp_path / "cas")
    digest = cas.put(write(tmp_path / "a.bin", b"good" * 1000))
    write(tmp_path / "b.bin", b"old output")

    def bad_clone(real, fd, request, arg):
        os.write(fd, b"rotten" * 100)  # what a clone of a blob rotted on disk would hold

    ioctl = spy(monkeypatch, bad_clone)
    with pytest.raises(BlobError, match="corrupt"):
        cas.restore(digest, str(tmp_path / "b.bin"))
    assert ioctl.calls and not ioctl.failed
    assert (tmp_path / "b.bin").read_bytes() == b"old output"
    assert not cas.has(digest)
    assert [p.name for p in tmp_path.iterdir() if ".makeflow-" in p.name] == []


def test_a_good_clone_is_kept_without_a_copy(tmp_path, monkeypatch):
    """When FICLONE works, nothing is copied by makeflow: the file is read once to check."""
    cas = Cas(tmp_path / "cas")
    data = os.urandom(200_000)
    digest = cas.put(write(tmp_path / "a.bin", data))

    def clone(real, fd, request, arg):
        os.write(fd, os.pread(arg, 1 << 20, 0))  # the kernel's clone, done by hand here

    spy(monkeypatch, clone)
    cas.restore(digest, str(tmp_path / "b.bin"))
    assert (tmp_path / "b.bin").read_bytes() == data


def test_hard_links_only_when_asked(tmp_path):
    plain = Cas(tmp_path / "plain")
    digest = plain.put(write(tmp_path / "a", b"x" * 5000))
    plain.restore(digest, str(tmp_path / "copied"))
    assert os.stat(tmp_path / "copied").st_ino != os.stat(plain.path(digest)).st_ino
    linked = Cas(tmp_path / "linked", link=True)
    linked.put(str(tmp_path / "a"))
    linked.restore(digest, str(tmp_path / "linked-out"))
    assert os.stat(tmp_path / "linked-out").st_ino == os.stat(linked.path(digest)).st_ino


# A real reflink: an XFS image (reflink=1) on a loop device, made and mounted for the
# test and removed after it. Needs root and xfsprogs; CI has both, so there it never skips.
@pytest.fixture
def xfs(tmp_path):
    mkfs = shutil.which("mkfs.xfs", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    image, mount = tmp_path / "xfs.img", tmp_path / "xfs"
    mount.mkdir()
    why = "mkfs.xfs is not installed (Debian: xfsprogs)" if mkfs is None else ""
    if mkfs is not None:
        with open(image, "wb") as f:
            f.truncate(320 << 20)  # XFS's smallest file system is 300 MiB
        steps = ([mkfs, "-q", "-m", "reflink=1", str(image)],
                 ["mount", "-o", "loop", str(image), str(mount)])
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                why = f"{' '.join(step[:1])}: {done.stderr.strip()}"
                break
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"an XFS loop mount is needed in CI: {why}")
        pytest.skip(f"no XFS loop mount here: {why}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_reflink_on_xfs(xfs, monkeypatch):
    cas = Cas(xfs / "cas")
    data = os.urandom(8 << 20)
    digest = cas.put(write(xfs / "made.bin", data))
    ioctl = spy(monkeypatch, call_through)
    target = xfs / "project" / "made.bin"
    cas.restore(digest, str(target))
    assert ioctl.calls and not ioctl.failed, "the clone failed on XFS"
    assert target.read_bytes() == data
    assert os.stat(target).st_ino != os.stat(cas.path(digest)).st_ino
    with open(target, "r+b") as f:  # editing the restored file leaves the blob alone
        f.write(b"edited")
    assert hash_file(str(cas.path(digest))) == digest
