"""The local content-addressed store and the run-cache index, on real files."""

from __future__ import annotations

import os
import shutil
import threading

import pytest

from makeflow.store.cas import BlobError, Cas, blob_key
from makeflow.store.hashing import hash_file, hash_tree
from makeflow.store.runcache import RunCache, RunRecord


def write(path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def test_a_file_is_stored_under_its_digest_and_restored_byte_for_byte(tmp_path):
    cas = Cas(tmp_path / "cas")
    src = write(tmp_path / "a.bin", os.urandom(300_000))
    digest = cas.put(src)
    assert digest == hash_file(src)
    assert cas.has(digest)
    assert (tmp_path / "cas" / blob_key(digest)).is_file()
    cas.restore(digest, str(tmp_path / "out" / "b.bin"))
    assert (tmp_path / "out" / "b.bin").read_bytes() == (tmp_path / "a.bin").read_bytes()


def test_a_folder_is_stored_as_a_manifest_and_file_blobs(tmp_path):
    cas = Cas(tmp_path / "cas")
    write(tmp_path / "d" / "x.txt", b"x")
    write(tmp_path / "d" / "sub" / "y.txt", b"y")
    (tmp_path / "d" / "empty").mkdir()
    os.symlink("x.txt", tmp_path / "d" / "link")
    digest = cas.put(str(tmp_path / "d"))
    assert digest == hash_tree(str(tmp_path / "d"))
    assert len(cas.blobs(digest)) == 3  # the manifest and two files (the link is x's blob)
    dest = tmp_path / "restored"
    write(dest / "old.txt", b"to be replaced")
    cas.restore(digest, str(dest))
    assert hash_tree(str(dest)) == digest
    assert not (dest / "old.txt").exists()
    # a link counts by what it points to (hashing follows links), so it comes back as a file
    assert (dest / "link").read_bytes() == b"x"


def test_put_with_a_digest_that_no_longer_matches_stores_nothing(tmp_path):
    cas = Cas(tmp_path / "cas")
    src = write(tmp_path / "a", b"now")
    with pytest.raises(BlobError):
        cas.put(src, "0" * 32)
    assert cas.usage() == (0, 0)


def test_a_corrupt_blob_is_dropped_and_the_target_left_alone(tmp_path):
    cas = Cas(tmp_path / "cas")
    digest = cas.put(write(tmp_path / "a", b"good content"))
    blob = cas.path(digest)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"evil content")
    target = write(tmp_path / "target", b"what was there")
    with pytest.raises(BlobError, match="corrupt"):
        cas.restore(digest, target)
    assert (tmp_path / "target").read_bytes() == b"what was there"
    assert not cas.has(digest)
    assert [p for p in os.listdir(tmp_path) if "makeflow" in p] == []  # no temp left


def test_a_tampered_manifest_is_refused(tmp_path):
    cas = Cas(tmp_path / "cas")
    write(tmp_path / "d" / "x", b"x")
    digest = cas.put(str(tmp_path / "d"))
    os.chmod(cas.path(digest), 0o644)
    cas.path(digest).write_bytes(b'{"entries": [["../../escape", "f", "00"]]}')
    with pytest.raises(BlobError):
        cas.restore(digest, str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_many_threads_storing_the_same_content_leave_one_good_blob(tmp_path):
    cas = Cas(tmp_path / "cas")
    src = write(tmp_path / "a", os.urandom(2_000_000))
    digests: list[str] = []
    threads = [threading.Thread(target=lambda: digests.append(Cas(cas.root).put(src)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(digests)) == 1
    assert cas.usage()[0] == 1
    assert hash_file(str(cas.path(digests[0]))) == digests[0]


def test_a_killed_writer_leaves_only_a_temporary_file_that_gc_removes(tmp_path):
    cas = Cas(tmp_path / "cas")
    half = cas._tmp_name()
    with open(half, "wb") as f:
        f.write(b"half a blob")
    os.utime(half, (1, 1))
    assert cas.usage() == (0, 0)
    cas.gc(10**9)
    assert not os.path.exists(half)


def test_gc_evicts_the_least_recently_used_blobs_first(tmp_path):
    cas = Cas(tmp_path / "cas")
    old = cas.put(write(tmp_path / "old", b"o" * 1000))
    new = cas.put(write(tmp_path / "new", b"n" * 1000))
    os.utime(cas.path(old), (1000, 1000))
    removed, freed = cas.gc(1500)
    assert (removed, freed) == (1, 1000)
    assert cas.has(new) and not cas.has(old)


def test_drop_unused_keeps_only_the_blobs_used_since_a_time(tmp_path):
    cas = Cas(tmp_path / "cas")
    old = cas.put(write(tmp_path / "old", b"o" * 1000))
    used = cas.put(write(tmp_path / "used", b"u" * 10))
    placed = cas.put(write(tmp_path / "placed", b"p" * 10))
    for digest in (old, used, placed):
        os.utime(cas.path(digest), (1000, 1000))
    cas.put(str(tmp_path / "used"), used)  # storing it again counts as a use
    cas.restore(placed, str(tmp_path / "out"))  # so does placing it
    assert cas.drop_unused(2000) == (1, 1000)
    assert not cas.has(old) and cas.has(used) and cas.has(placed)


def test_hardlink_mode_stores_and_restores_without_copying(tmp_path):
    cas = Cas(tmp_path / "cas", link=True)
    src = write(tmp_path / "a", b"linked")
    digest = cas.put(src)
    assert os.stat(src).st_ino == os.stat(cas.path(digest)).st_ino
    cas.restore(digest, str(tmp_path / "b"))
    assert os.stat(tmp_path / "b").st_ino == os.stat(cas.path(digest)).st_ino


def test_run_cache_records_outputs_and_log_and_restores_them(tmp_path):
    cache = RunCache(tmp_path / "cache")
    out = write(tmp_path / "out.txt", b"result")
    log = write(tmp_path / "step.log", b"it ran")
    record = cache.save("k" * 32, "train", {out: hash_file(out)}, log, 1.5)
    assert cache.get("k" * 32) == record
    os.unlink(out)
    os.unlink(log)
    cache.restore(record, log)
    assert (tmp_path / "out.txt").read_bytes() == b"result"
    assert (tmp_path / "step.log").read_bytes() == b"it ran"


def test_a_record_whose_blob_was_evicted_is_a_miss(tmp_path):
    cache = RunCache(tmp_path / "cache")
    out = write(tmp_path / "out.txt", b"result")
    cache.save("a" * 32, "s", {out: hash_file(out)})
    cache.cas.gc(0)
    assert cache.read("a" * 32) is not None
    assert cache.get("a" * 32) is None


def test_a_damaged_or_foreign_record_reads_as_none():
    assert RunRecord.from_bytes(b"<<<<<<< HEAD") is None
    assert RunRecord.from_bytes(b'{"version": 99, "step": "s", "outputs": {}}') is None
    r = RunRecord("s", {"b": "1" * 32, "a": "2" * 32}, None, 0.5)
    assert RunRecord.from_bytes(r.to_bytes()) == r


def test_hit_counts_add_up_across_instances(tmp_path):
    RunCache(tmp_path).count(2, 1)
    RunCache(tmp_path).count(1, 0)
    assert RunCache(tmp_path).counts() == {"hits": 3, "misses": 1}


def test_a_writer_killed_with_sigkill_mid_blob_leaves_no_blob(tmp_path):
    """A real `kill -9` while a blob is half written: the source is a FIFO that the test
    feeds, so the writer is certainly in the middle of the copy when it dies."""
    import signal
    import subprocess
    import sys

    from waiting import wait_for

    data = os.urandom(3 << 20)
    fifo = tmp_path / "output.fifo"
    os.mkfifo(fifo)
    root = tmp_path / "cas"
    code = "import sys; from makeflow.store.cas import Cas; Cas(sys.argv[1]).put(sys.argv[2])"
    writer = subprocess.Popen([sys.executable, "-c", code, str(root), str(fifo)])
    try:
        with open(fifo, "wb") as feed:
            feed.write(data[: 1 << 20])
            feed.flush()
            wait_for(lambda: any(p.stat().st_size > 0 for p in (root / "tmp").glob("*"))
                     if (root / "tmp").is_dir() else False)
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=30)
    except BrokenPipeError:
        pass
    finally:
        writer.kill()
    assert writer.returncode == -signal.SIGKILL
    cas = Cas(root)
    assert cas.usage() == (0, 0)  # no blob, only a temporary file
    digest = hash_file(write(tmp_path / "whole", data))
    assert not cas.has(digest)
    with pytest.raises(BlobError):
        cas.restore(digest, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    for leftover in (root / "tmp").iterdir():
        os.utime(leftover, (1, 1))  # an hour later
    cas.gc(10**9)
    assert list((root / "tmp").iterdir()) == []
    assert cas.put(str(tmp_path / "whole")) == digest  # the next writer is unaffected


@pytest.mark.parametrize("log_bytes, inline", [
    (b"$ cp a b\n", True),                   # a step that printed nothing but its command
    (b"x" * 5000, False),                    # longer than a record keeps: a blob
    (b"\xff\xfe not utf-8\n", False),        # not text: a blob, byte for byte
])
def test_a_log_is_kept_in_its_record_when_short_text_and_restored_either_way(
        tmp_path, log_bytes, inline):
    cache = RunCache(tmp_path / "cache")
    out = write(tmp_path / "out.txt", b"result")
    log = write(tmp_path / "step.log", log_bytes)
    record = cache.save("c" * 32, "s", {out: hash_file(out)}, log)
    assert (record.log_text is not None) == inline
    assert (record.log is None) == inline
    assert cache.cas.usage()[0] == (1 if inline else 2)
    again = RunCache(tmp_path / "cache").get("c" * 32)
    assert again == record
    os.unlink(out)
    os.unlink(log)
    cache.restore(again, log)
    assert (tmp_path / "step.log").read_bytes() == log_bytes
    assert (tmp_path / "out.txt").read_bytes() == b"result"
    assert sorted(os.listdir(tmp_path)) == ["cache", "out.txt", "step.log"]  # no leftovers


def test_a_record_with_its_log_inside_survives_gc_of_every_blob_only_as_a_miss(tmp_path):
    cache = RunCache(tmp_path / "cache")
    out = write(tmp_path / "out.txt", b"result")
    log = write(tmp_path / "step.log", b"$ true\n")
    cache.save("d" * 32, "s", {out: hash_file(out)}, log)
    assert cache.cas.gc(0) == (1, 6)  # the output's blob; the log has none
    assert cache.get("d" * 32) is None


def test_a_stored_blob_is_read_only_and_leaves_no_temporary_file(tmp_path):
    cas = Cas(tmp_path / "cas")
    digests = [cas.put(write(tmp_path / f"f{i}", f"content {i}".encode())) for i in range(5)]
    for digest in digests:
        assert os.stat(cas.path(digest)).st_mode & 0o777 == 0o444
    assert os.listdir(tmp_path / "cas" / "tmp") == []
    assert cas.put(str(tmp_path / "f0"), digests[0]) == digests[0]  # already there
    assert cas.usage()[0] == 5


def test_a_store_folder_removed_while_in_use_is_made_again(tmp_path):
    cache = RunCache(tmp_path / "cache")
    out = write(tmp_path / "out.txt", b"first")
    cache.save("e" * 32, "s", {out: hash_file(out)})
    shutil.rmtree(tmp_path / "cache")  # the same objects believe their folders exist
    out = write(tmp_path / "out.txt", b"second")
    record = cache.save("e" * 32, "s", {out: hash_file(out)})
    assert cache.get("e" * 32) == record
    assert cache.cas.has(hash_file(out))
