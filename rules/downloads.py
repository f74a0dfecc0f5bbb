"""Download one file from an http(s), file:// or fsspec URL, checked against a sha256 pin.

The pin is required: a pipeline that downloads what happens to be at a URL today cannot be
reproduced tomorrow. A mismatch fails the step, naming both digests, and makeflow puts the
last good file back.

`python -m makeflow_rules.downloads URL` prints a URL's sha256, to write the first pin.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from makeflow import StepError, UserError

from ._declare import declare, single_path

__makeflow_factory__ = True  # rule errors point at the line in Makeflow.py

UNPINNED = "UNPINNED"
"""`sha256=UNPINNED` accepts whatever the source serves; allowed only with `max_age=` or
`always=True`, for data that is meant to change (a daily feed)."""

PIN = re.compile(r"[0-9a-f]{64}")
URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://.+|file:[^/].*")
"""Any scheme with an authority, or `file:` and a project-relative path (see `download`)."""
CHUNK = 1 << 20
MAX_DELAY = 60.0


def download(name: str, *, url: str, output: str, sha256: str, retries: int = 3,
             backoff: float = 1.0, socket_timeout: float = 60.0,
             max_age: float | str | None = None, **options: Any) -> Any:
    """Declare rule `name`: download `url` to `output` and check its sha256.

    A failed attempt that may pass next time (a refused connection, a timeout, an HTTP
    408/429/5xx, a body cut short) is retried up to `retries` times, waiting `backoff`
    seconds and doubling. `max_age="7d"` downloads again once the last download is older
    (and checks the pin again); other keyword arguments are rule options (`always`,
    `timeout`, `default`...). http, https and file URLs need nothing extra; any other
    scheme (s3://, gs://, memory://...) goes through fsspec (`pip install
    'makeflow[download]'` plus the filesystem's own package, such as s3fs).

    A file shipped with the project is best named relative to the project:
    `url="file:upstream/raw.csv"` (no `//`). The step runs in the project's folder, so
    the URL means the same file wherever the project is cloned, and the rule's params (and
    `makeflow.lock`) hold no absolute path.

    Example::

        from makeflow_rules import download

        download("fetch_iris", url="https://example.org/iris.csv", output="data/iris.csv",
                 sha256="6f608b71a7317216319b4d27b4d9bc84e6abd734eda7872b71a458569e2656c0")
    """
    output = single_path("download", name, "output", output)
    if "{" in output:
        raise UserError(
            f"download({name!r}): output={output!r} has a wildcard, but one download makes "
            "one pinned file",
            hint="Declare one download per file; a loop over a dict of url -> sha256 works.",
        )
    if not isinstance(url, str) or not URL.fullmatch(url):
        raise UserError(
            f"download({name!r}): url={url!r} is not a URL such as https://host/file.csv",
            hint="For a file in the project write url=\"file:upstream/raw.csv\" (relative to "
            "the project); elsewhere, Path(...).resolve().as_uri() (a file:// URL).",
        )
    refreshed = max_age is not None or bool(options.get("always"))
    params = {"url": url, "sha256": _pin(name, sha256, refreshed),
              "retries": _count(name, "retries", retries),
              "backoff": _seconds(name, "backoff", backoff),
              "socket_timeout": _seconds(name, "socket_timeout", socket_timeout)}
    return declare("download", name, fetch, inputs=(), outputs=output, params=params,
                   options={**options, "max_age": max_age})


def _pin(name: str, sha256: Any, refreshed: bool) -> str:
    if sha256 == UNPINNED and refreshed:
        return UNPINNED
    if isinstance(sha256, str) and PIN.fullmatch(sha256.strip().lower()):
        return sha256.strip().lower()
    if sha256 == UNPINNED:
        raise UserError(
            f"download({name!r}): sha256=UNPINNED without max_age= or always=True would "
            "download once and never again",
            hint="Pin the file's sha256, or say how often to refresh it with max_age=\"1d\".",
        )
    raise UserError(
        f"download({name!r}): sha256= must be the file's 64-digit hex sha256, not {sha256!r}",
        hint="Get it with `python -m makeflow_rules.downloads URL` (or sha256sum) once you "
        "trust the file.",
    )


def _count(name: str, what: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise UserError(f"download({name!r}): {what}= must be a whole number >= 0, not {value!r}")


def _seconds(name: str, what: str, value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    raise UserError(f"download({name!r}): {what}= must be a number of seconds, not {value!r}")


def fetch(step: Any) -> None:
    """The step: download `params.url` to `outputs[0]`, with retries, then check the pin."""
    p = step.params
    digest = fetch_with_retries(p["url"], Path(step.outputs[0]), p["retries"], p["backoff"],
                                p["socket_timeout"])
    if p["sha256"] != UNPINNED and digest != p["sha256"]:
        raise StepError(
            f"{p['url']} has sha256 {digest}, but the rule pins {p['sha256']}: this is not "
            "the expected file. If the source changed on purpose, check the new file and put "
            f"sha256=\"{digest}\" in the rule."
        )


class Truncated(OSError):
    """The body ended before its Content-Length: worth another try."""


def fetch_with_retries(url: str, target: Path, retries: int, backoff: float,
                       socket_timeout: float) -> str:
    """Copy `url` to `target` and return its sha256, trying again after transient errors."""
    for attempt in range(retries + 1):
        try:
            return copy_url(url, target, socket_timeout)
        except Exception as exc:
            if not transient(exc) or attempt == retries:
                tries = f" (after {attempt + 1} attempts)" if attempt else ""
                raise StepError(f"cannot download {url}: {describe(exc)}{tries}") from None
            delay = min(backoff * 2**attempt, MAX_DELAY)
            print(f"attempt {attempt + 1} to download {url} failed ({describe(exc)}); "
                  f"trying again in {delay:g}s", flush=True)
            time.sleep(delay)
    raise AssertionError("unreachable")


def copy_url(url: str, target: Path, socket_timeout: float) -> str:
    """One attempt: stream `url` into `target`, hashing as it goes."""
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("http", "https", "file"):
        return _copy_urllib(url, target, socket_timeout)
    return _copy_fsspec(url, target)


def _copy_urllib(url: str, target: Path, socket_timeout: float) -> str:
    from makeflow import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"makeflow/{__version__}"})
    with urllib.request.urlopen(request, timeout=socket_timeout) as response:
        expected = response.headers.get("Content-Length")
        digest, size = _stream(response, target)
    if expected is not None and expected.isdigit() and size != int(expected):
        raise Truncated(f"the body ended after {size} of {expected} bytes")
    return digest


def _copy_fsspec(url: str, target: Path) -> str:
    try:
        import fsspec
    except ImportError:
        raise StepError(
            f"downloading {url} needs fsspec: pip install 'makeflow[download]' (and the "
            "package of that filesystem, such as s3fs for s3://)"
        ) from None
    with fsspec.open(url, "rb") as source:
        return _stream(source, target)[0]


def _stream(source: Any, target: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(target, "wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed: network trouble yes, a missing file no."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in (408, 425, 429) or exc.code >= 500
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        return transient(exc.reason)
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError,
                        NotADirectoryError, StepError)):
        return False
    return isinstance(exc, (OSError, http.client.HTTPException, TimeoutError))


def describe(exc: BaseException) -> str:
    """A short reason: 'HTTP 503 Service Unavailable', 'connection refused'..."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return describe(reason) if isinstance(reason, BaseException) else str(reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if not exc.filename else f"{exc.strerror}: {exc.filename}"
    return str(exc) or type(exc).__name__


def main(argv: list[str]) -> int:
    """Print the sha256 of each URL given, as `DIGEST  URL`, to write a first pin."""
    if not argv:
        print("usage: python -m makeflow_rules.downloads URL...", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        for url in argv:
            try:
                digest = fetch_with_retries(url, Path(folder) / "file", 2, 1.0, 60.0)
            except StepError as exc:
                print(exc, file=sys.stderr)
                return 1
            print(f"{digest}  {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
