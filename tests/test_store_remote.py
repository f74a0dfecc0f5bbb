"""The remote store over real fsspec back ends: a folder (file://), memory:// and S3
served by moto on 127.0.0.1. One suite for every back end."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from makeflow.store.cas import BlobError, Cas, blob_key
from makeflow.store.remote import Remote, RemoteError
from makeflow.store.runcache import RunCache, RunRecord


@pytest.fixture(params=["file", "memory", "s3"])
def url(request, tmp_path):
    if request.param == "file":
        (tmp_path / "remote").mkdir()
        return (tmp_path / "remote").as_uri()
    if request.param == "memory":
        return f"memory://mf-{uuid.uuid4().hex}"
    return request.getfixturevalue("s3_url")


def filled(tmp_path, name: str = "cache") -> tuple[RunCache, RunRecord]:
    cache = RunCache(tmp_path / name)
    out = tmp_path / "work" / "model.bin"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(os.urandom(100_000))
    folder = tmp_path / "work" / "plots"
    folder.mkdir(exist_ok=True)
    (folder / "a.png").write_bytes(b"a")
    (folder / "b.png").write_bytes(b"b")
    digests = {str(out): Cas(tmp_path / "x").put(str(out)),
               str(folder): Cas(tmp_path / "x").put(str(folder))}
    return cache, cache.save("f" * 32, "train", digests)


def test_push_then_pull_into_another_store_restores_identical_files(tmp_path, url):
    cache, record = filled(tmp_path)
    remote = Remote(url)
    remote.check(create=True)
    assert remote.push_run(cache.cas, "f" * 32, record)
    other = RunCache(tmp_path / "other")
    got = Remote(url).pull_run(other.cas, "f" * 32)
    assert got == record
    restored = tmp_path / "restored"
    for path, digest in record.outputs.items():
        other.cas.restore(digest, str(restored / os.path.basename(path)))
    assert (restored / "model.bin").read_bytes() == (tmp_path / "work/model.bin").read_bytes()
    assert (restored / "plots" / "b.png").read_bytes() == b"b"


def test_an_unknown_key_is_none(url):
    assert Remote(url).get_record("e" * 32) is None


def test_the_first_writer_wins_and_a_second_is_a_no_op(tmp_path, url):
    cache, record = filled(tmp_path)
    remote = Remote(url)
    assert remote.push_run(cache.cas, "f" * 32, record)
    assert not remote.push_run(cache.cas, "f" * 32, record)
    assert remote.upload(cache.cas, record.outputs.values()) == 0


def test_two_pushers_of_the_same_step_at_once_leave_one_good_record(tmp_path, url):
    cache, record = filled(tmp_path)
    wins: list[bool] = []
    errors: list[BaseException] = []

    def push() -> None:
        try:
            wins.append(Remote(url).push_run(cache.cas, "f" * 32, record))
        except BaseException as exc:  # collected: the test fails on it below
            errors.append(exc)

    threads = [threading.Thread(target=push) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert wins.count(True) <= 1
    assert Remote(url).get_record("f" * 32) == record


def test_a_corrupt_remote_blob_is_never_kept(tmp_path, url):
    cache, record = filled(tmp_path)
    remote = Remote(url)
    remote.push_run(cache.cas, "f" * 32, record)
    model = next(d for d in record.outputs.values() if not d.startswith("tree:"))
    path = f"{remote.root}/{blob_key(model)}"
    remote.fs.rm(path)
    with remote.fs.open(path, "wb") as f:
        f.write(b"poisoned")
    other = RunCache(tmp_path / "other")
    with pytest.raises(BlobError):
        remote.pull_run(other.cas, "f" * 32)
    assert not other.cas.has(model)


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_a_missing_bucket_or_folder_is_a_remote_error_naming_the_url(tmp_path, kind, request):
    if kind == "s3":
        request.getfixturevalue("s3_url")
    bad = (tmp_path / "nowhere").as_uri() if kind == "file" else "s3://no-such-bucket-here/c"
    with pytest.raises(RemoteError, match=r"no-such-bucket-here|nowhere"):
        Remote(bad).check()


def test_an_unreachable_endpoint_is_a_remote_error(monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pytest.importorskip("s3fs")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    with pytest.raises(RemoteError, match="s3://b/p"):
        Remote("s3://b/p").get_record("a" * 32)


def test_an_unknown_protocol_is_a_remote_error():
    with pytest.raises(RemoteError, match="nosuchproto://x"):
        Remote("nosuchproto://x")


def test_transfers_report_each_blob_with_its_size(tmp_path, url):
    """Every back end tells the progress callback each chunk: which blob, which way, how
    far, out of how much (read from the open file, not asked again)."""
    cas = Cas(tmp_path / "cas")
    big = tmp_path / "big"
    big.write_bytes(os.urandom(9 << 20))
    digest = cas.put(str(big))
    events: list[tuple] = []
    lock = threading.Lock()

    def progress(*event):
        with lock:
            events.append(event)

    remote = Remote(url, progress=progress)
    remote.check(create=True)
    remote.upload(cas, [digest])
    other = Cas(tmp_path / "other")
    remote.download(other, [digest])
    sent = [e for e in events if e[1]]
    got = [e for e in events if not e[1]]
    for moved in (sent, got):
        assert {e[0] for e in moved} == {digest}
        assert {e[3] for e in moved} == {9 << 20}
        assert [e[2] for e in moved] == sorted(e[2] for e in moved)
        assert moved[-1][2] == 9 << 20 and len(moved) >= 3  # 4 MiB chunks
    assert other.path(digest).read_bytes() == big.read_bytes()


def test_many_small_files_go_in_one_concurrent_batch(tmp_path, url, monkeypatch):
    """push sends every step's blobs as one batch over a pool of threads, both ways."""
    cache = RunCache(tmp_path / "cache")
    runs = []
    for i in range(40):
        out = tmp_path / "work" / f"{i}.txt"
        out.parent.mkdir(exist_ok=True)
        out.write_text(f"small {i}\n")
        key = f"{i:02d}" + "a" * 30
        runs.append((key, cache.save(key, f"s{i}", {str(out): Cas(tmp_path / "x").put(str(out))})))
    threads: set[int] = set()
    remote = Remote(url)
    remote.check(create=True)
    for name in ("_put_blob", "_get_blob"):
        real = getattr(Remote, name)

        def spy(self, *args, _real=real):
            threads.add(threading.get_ident())
            time.sleep(0.01)  # long enough for the pool to start more than one thread
            return _real(self, *args)

        monkeypatch.setattr(Remote, name, spy)
    assert remote.push_runs(cache.cas, runs) == 40
    sent, threads = threads, set()
    other = Cas(tmp_path / "other")
    assert remote.download(other, [r.outputs[p] for _, r in runs for p in r.outputs]) == 40
    assert len(sent) > 1 and len(threads) > 1, (len(sent), len(threads))
