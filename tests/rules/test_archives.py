"""extract: real zip and tar files, escaping members refused before anything is written."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from makeflow import StepError
from makeflow_rules.archives import unpack

from ruleshelp import fake_step

FILES = {"survey/a.csv": b"x\n1\n", "survey/sub/b.csv": b"y\n2\n"}


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def make_tar(path: Path, files: dict[str, bytes], mode: str = "w:gz",
             links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return path


ARCHIVES = [
    ("a.zip", make_zip),
    ("a.tar", lambda p, f: make_tar(p, f, "w")),
    ("a.tar.gz", make_tar),
    ("a.tgz", make_tar),
    ("a.tar.bz2", lambda p, f: make_tar(p, f, "w:bz2")),
    ("a.tar.xz", lambda p, f: make_tar(p, f, "w:xz")),
]


@pytest.mark.parametrize(("name", "make"), ARCHIVES)
def test_every_kind_unpacks_whole_into_a_folder(tmp_path, name, make):
    archive = make(tmp_path / name, FILES)
    out = tmp_path / "out"
    unpack(fake_step([archive], [out], members=None))
    assert (out / "survey/a.csv").read_bytes() == b"x\n1\n"
    assert (out / "survey/sub/b.csv").read_bytes() == b"y\n2\n"


@pytest.mark.parametrize(("name", "make"), ARCHIVES)
def test_chosen_members_go_to_their_own_files(tmp_path, name, make):
    archive = make(tmp_path / name, FILES)
    outs = [tmp_path / "b.csv", tmp_path / "a.csv"]
    unpack(fake_step([archive], outs, members=["survey/sub/b.csv", "./survey/a.csv"]))
    assert [p.read_bytes() for p in outs] == [b"y\n2\n", b"x\n1\n"]


def test_a_missing_member_names_what_is_there(tmp_path):
    archive = make_zip(tmp_path / "a.zip", FILES)
    with pytest.raises(StepError, match=r"has no file 'survey/c.csv' \(it has survey/a.csv"):
        unpack(fake_step([archive], [tmp_path / "c"], members=["survey/c.csv"]))


@pytest.mark.parametrize("evil", ["../escape.txt", "/etc/evil", "a/../../escape.txt",
                                  "..\\escape.txt"])
@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_members_that_escape_are_refused_and_nothing_is_written(tmp_path, evil, kind):
    files = {"fine.txt": b"ok", evil: b"bad"}
    archive = (make_zip(tmp_path / "a.zip", files) if kind == "zip"
               else make_tar(tmp_path / "a.tar.gz", files))
    out = tmp_path / "deep/out"
    with pytest.raises(StepError, match="outside the output folder; refusing"):
        unpack(fake_step([archive], [out], members=None))
    assert not out.exists() and not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize("link", ["../../outside", "/etc/passwd", "a/../../../x"])
def test_links_that_point_outside_are_refused(tmp_path, link):
    archive = make_tar(tmp_path / "a.tar", {"fine.txt": b"ok"}, "w", links={"sub/l": link})
    with pytest.raises(StepError, match=r"links to .* outside the output folder"):
        unpack(fake_step([archive], [tmp_path / "out"], members=None))
    assert not (tmp_path / "out").exists()


def test_a_link_inside_the_archive_is_kept(tmp_path):
    archive = make_tar(tmp_path / "a.tar", {"d/real.txt": b"ok"}, "w",
                       links={"d/alias.txt": "real.txt"})
    unpack(fake_step([archive], [tmp_path / "out"], members=None))
    assert (tmp_path / "out/d/alias.txt").read_bytes() == b"ok"


def test_a_zip_symlink_is_refused(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(StepError, match="symbolic link"):
        unpack(fake_step([archive], [tmp_path / "out"], members=None))


def test_a_file_that_is_no_archive_is_named(tmp_path):
    bogus = tmp_path / "a.zip"
    bogus.write_text("hello")
    with pytest.raises(StepError, match="neither a zip nor a tar"):
        unpack(fake_step([bogus], [tmp_path / "out"], members=None))


def test_a_pipeline_downloads_and_picks_members(project, tmp_path):
    archive = make_tar(tmp_path / "src.tar.gz", FILES)
    import hashlib
    pin = hashlib.sha256(archive.read_bytes()).hexdigest()
    project.rules(f"""
        from makeflow import rule
        from makeflow_rules import download, extract
        download("fetch", url={archive.as_uri()!r}, output="raw/src.tar.gz", sha256={pin!r})
        extract("whole", archive="raw/src.tar.gz", output="raw/all")
        extract("pick", archive="raw/src.tar.gz", members={{"survey/a.csv": "data/a.csv"}})
        rule("all", inputs=["raw/all", "data/a.csv"], default=True)
    """)
    done = project.run("build")
    assert done.code == 0, done.text
    assert project.read("data/a.csv") == "x\n1\n"
    assert project.read("raw/all/survey/sub/b.csv") == "y\n2\n"
    assert project.run("status", "--check").code == 0


@pytest.mark.parametrize(("args", "message"), [
    ('archive="a.zip"', "needs either output="),
    ('archive="a.zip", output="x", members={"a": "b"}', "not both or neither"),
    ('archive="a.zip", members={}', "non-empty dict"),
    ('archive=["a.zip"], output="x"', "archive= must be one path"),
])
def test_mistakes_in_an_extract_rule_name_the_line(project, args, message):
    project.rules(f"""
        from makeflow_rules import extract
        extract("x", {args})
    """)
    done = project.run("list")
    assert done.code == 2 and "Makeflow.py:3" in done.err and message in done.err, done.err
