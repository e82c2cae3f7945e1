"""Pure-Python downloads with resume and checksums, and safe archive extraction.

Checkpoints (~330 MB), AudioSet metadata and transfer datasets all come from
plain HTTP(S) servers (Zenodo, Google Storage, university sites). Large
transfers over slow links get cut; this module resumes them with an HTTP
``Range`` request instead of starting again, verifies what arrived (size and
md5/sha256) before the file is moved into place, and never leaves a
half-written file under the final name. It uses only :mod:`urllib`, so no
``wget``/``curl`` binary and no shell is involved.

:func:`safe_extract` unpacks zip and tar archives after checking every member,
because an archive is untrusted input: an entry named ``../../.bashrc``, an
absolute path, a link pointing outside the destination or a device node is
refused before anything is written.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import socket
import stat
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
"""Read/write block size; 1 MiB keeps the progress bar lively and memory flat."""

USER_AGENT = "panns_core-downloader/0.1 (+https://github.com/qiuqiangkong/audioset_tagging_cnn)"

# HTTP statuses worth retrying: the server is busy or the request timed out.
_RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(RuntimeError):
    """A download failed for good (after retries, or with a non-retryable status)."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the expected size or digest."""


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the destination, or is a device/link."""


# --------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """Where downloads are kept: ``$PANNS_CACHE`` if set, else ``~/.cache/panns``.

    One environment variable moves every cached file (checkpoints, metadata),
    e.g. onto a larger disk; the directory is created on first use.
    """
    root = os.environ.get("PANNS_CACHE")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "panns"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- digests


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in blocks so multi-GB files need no memory."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            h.update(block)
    return h.hexdigest()


def _sidecar(dest: Path) -> Path:
    """File that records the sha256 seen for a download that had no known checksum."""
    return dest.with_name(dest.name + ".sha256")


def verify_file(path: str | os.PathLike, md5: str | None = None, sha256: str | None = None,
                size: int | None = None, url: str | None = None) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the given size and digests.

    The message names the URL (if any), the file, and the expected and actual
    values, so a user can tell a truncated transfer from a changed upstream file.
    """
    path = Path(path)
    source = f" downloaded from {url}" if url else ""
    if size is not None:
        actual_size = path.stat().st_size
        if actual_size != int(size):
            raise ChecksumError(
                f"size mismatch for {path}{source}: expected {int(size)} bytes, got {actual_size}"
            )
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected is None:
            continue
        actual = file_digest(path, algorithm)
        if actual.lower() != expected.lower():
            raise ChecksumError(
                f"{algorithm} mismatch for {path}{source}: expected {expected.lower()}, got {actual}"
            )


def _existing_is_complete(dest: Path, md5, sha256, size) -> bool:
    """Whether ``dest`` can be reused without downloading it again.

    With a known checksum the file must match it. Without one, the sha256
    recorded on the first download (sidecar) is checked if present, so a file
    that was later corrupted is still caught.
    """
    if not dest.is_file():
        return False
    if md5 is None and sha256 is None:
        side = _sidecar(dest)
        if side.is_file():
            words = side.read_text().split()
            sha256 = words[0] if words else None
    try:
        verify_file(dest, md5=md5, sha256=sha256, size=size)
    except ChecksumError as err:
        log.warning("existing file is not the expected one, downloading again: %s", err)
        return False
    return True


# --------------------------------------------------------------------------- HTTP


def _check_url(url: str) -> None:
    """Only http(s): urllib would also open file:// and ftp:// URLs, which we never want."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"refusing to download {url!r}: only http and https URLs are supported")


def _content_range_start(header: str | None) -> int | None:
    """First byte offset of a ``Content-Range: bytes a-b/c`` header, or None."""
    if not header:
        return None
    m = re.match(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)", header)
    return int(m.group(1)) if m else None


def _total_from_headers(resp, offset: int) -> int | None:
    """Full file size as announced by the server (Content-Range total or offset + length)."""
    cr = resp.headers.get("Content-Range")
    if cr:
        m = re.match(r"\s*bytes\s+\d+-\d+/(\d+)", cr)
        if m:
            return int(m.group(1))
    length = resp.headers.get("Content-Length")
    return offset + int(length) if length is not None and length.isdigit() else None


def _fetch_once(url: str, part: Path, resume: bool, expected_size: int | None,
                timeout: float, progress: bool) -> None:
    """One HTTP attempt: append to ``part`` from where it stops, or restart it.

    Raises on any network problem; the caller decides whether to retry. A
    server that ignores ``Range`` and answers 200 makes us truncate and start
    over, which is always correct, only slower.
    """
    offset = part.stat().st_size if (resume and part.exists()) else 0
    if expected_size is not None and offset > expected_size:
        offset = 0  # a leftover from another file; start over
    if expected_size is not None and offset == expected_size and offset > 0:
        return  # the partial file is already complete; verification follows
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # Range not satisfiable: our partial file is at least as long as the
            # resource. Keep it if the server says so, else start over.
            total = None
            m = re.match(r"\s*bytes\s+\*/(\d+)", err.headers.get("Content-Range", "") or "")
            if m:
                total = int(m.group(1))
            if total is not None and total == offset:
                return
            part.unlink(missing_ok=True)
        raise
    with resp:
        status = getattr(resp, "status", 200)
        if status == 206 and _content_range_start(resp.headers.get("Content-Range")) == offset:
            mode = "ab"
        else:
            if offset:
                log.info("server ignored the Range request for %s; restarting from byte 0", url)
            offset, mode = 0, "wb"
        total = _total_from_headers(resp, offset)
        if expected_size is not None and total is not None and total != expected_size:
            raise ChecksumError(
                f"size mismatch for {url}: the server announces {total} bytes, expected {expected_size}"
            )
        received = offset
        bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=part.name[: -len(".part")], disable=not progress, leave=False,
                   file=sys.stderr)
        try:
            with open(part, mode) as out:
                while True:
                    block = resp.read(CHUNK_BYTES)
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
        finally:
            bar.close()
        if total is not None and received < total:
            raise http.client.IncompleteRead(b"", total - received)


def _describe_error(err: BaseException | None) -> str:
    """A network error as a short phrase (``URLError(reason)`` -> ``reason``)."""
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        return f"network error: {err.reason}"
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    return f"{type(err).__name__}: {err}" if err is not None else "unknown error"


def _is_retryable(err: BaseException) -> bool:
    if isinstance(err, urllib.error.HTTPError):
        return err.code in _RETRY_STATUSES or err.code == 416
    return isinstance(err, (urllib.error.URLError, http.client.HTTPException, ConnectionError,
                            TimeoutError, socket.timeout))


def download(url: str, dest: str | os.PathLike, md5: str | None = None, sha256: str | None = None,
             size: int | None = None, resume: bool = True, progress: bool = True,
             timeout: float = 60, retries: int = 3) -> Path:
    """Download ``url`` to ``dest`` and return ``dest`` as a Path.

    * Bytes go to ``dest + ".part"``; an interrupted transfer is resumed from
      there (HTTP ``Range``) on the next attempt or the next call, up to
      ``retries`` extra attempts with a short back-off.
    * When complete, the size and the md5/sha256 (those given) are checked;
      a mismatch deletes the partial file and raises :class:`ChecksumError`
      naming the URL, the file and both digests. Only then is the file renamed
      to ``dest`` (atomic on one filesystem).
    * An existing ``dest`` that passes the checks is returned untouched.
    * Without any checksum the sha256 that was received is logged, printed to
      stderr and recorded in ``dest + ".sha256"``, so later calls can detect
      that the file changed.
    """
    _check_url(url)
    dest = Path(dest).expanduser()
    if _existing_is_complete(dest, md5, sha256, size):
        log.info("already downloaded: %s", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if not resume:
        part.unlink(missing_ok=True)

    last_error: BaseException | None = None
    for attempt in range(int(retries) + 1):
        if attempt:
            time.sleep(min(0.25 * 2 ** (attempt - 1), 5.0))
            log.info("retrying %s (attempt %d of %d) after: %s", url, attempt + 1, retries + 1,
                     last_error)
        try:
            _fetch_once(url, part, resume, size, timeout, progress)
            break
        except ChecksumError:
            part.unlink(missing_ok=True)
            raise
        except urllib.error.HTTPError as err:
            last_error = err
            if not _is_retryable(err):
                raise DownloadError(f"cannot download {url} to {dest}: HTTP {err.code} {err.reason}") from err
        except Exception as err:  # network failures: retried, then reported
            if not _is_retryable(err):
                raise
            last_error = err
    else:
        kept = (f"the {part.stat().st_size} bytes received so far are kept in {part} and the next call "
                f"resumes from there" if part.is_file() and part.stat().st_size > 0 else "nothing was received")
        raise DownloadError(
            f"cannot download {url} to {dest} after {retries + 1} attempts ({_describe_error(last_error)}); "
            f"{kept}. Check the network (or a proxy: HTTPS_PROXY) and run the same command again."
        ) from last_error

    try:
        verify_file(part, md5=md5, sha256=sha256, size=size, url=url)
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    if md5 is None and sha256 is None:
        seen = file_digest(part, "sha256")
        message = (f"no checksum is known for {url}; it could not be verified. "
                   f"sha256 of the received file {dest.name}: {seen}")
        log.warning(message)
        print(message, file=sys.stderr)
        _sidecar(dest).write_text(f"{seen}  {dest.name}\n")
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------- archives


def _member_problem(name: str) -> str | None:
    """Why an archive member name is unsafe, or None if it stays below the destination."""
    if not name or name.strip() == "":
        return "empty name"
    if "\x00" in name:
        return "NUL byte in name"
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith(("/", "\\")):
        return "absolute path"
    if ".." in posix.parts or ".." in windows.parts:
        return "'..' path component"
    return None


class _Escape(Exception):
    """A path, followed through the archive's own links, leaves the destination."""


_MAX_LINK_HOPS = 40  # like the kernel's limit; a longer chain is treated as a loop


def _resolve_in_archive(name: str, links: dict, follow_last: bool) -> tuple:
    """The parts of ``name`` below the destination after following the archive's symlinks.

    The destination starts empty (we extract into a fresh folder), so the only links
    a path can run through are the archive's own symlink members (``links``: name ->
    target). Resolving here, before anything is written, catches chains such as
    ``a -> .``, ``b -> a/..``, ``b/escaped.txt`` whose every single member looks
    harmless. Raises :class:`_Escape` when the path leaves the destination.
    """
    resolved: list = []
    pending = [p for p in PurePosixPath(name).parts]
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                raise _Escape(name)
            resolved.pop()
            continue
        here = "/".join(resolved + [part])
        if here in links and (pending or follow_last):
            hops += 1
            target = links[here]
            if hops > _MAX_LINK_HOPS or PurePosixPath(target).is_absolute() or PureWindowsPath(target).drive:
                raise _Escape(name)
            pending = list(PurePosixPath(target).parts) + pending
            continue
        resolved.append(part)
    return tuple(resolved)


def _check_tar_members(members: list, archive: Path) -> None:
    """Refuse the whole archive if any member is unsafe (nothing is written yet)."""
    links = {"/".join(PurePosixPath(m.name).parts): m.linkname for m in members if m.issym()}
    for member in members:
        problem = _member_problem(member.name)
        if problem is None and (member.ischr() or member.isblk() or member.isfifo() or member.isdev()):
            problem = "device or FIFO entry"
        if problem is None and not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            problem = "unsupported entry type"
        try:
            if problem is None:
                # The member's folder is followed through links; the member itself replaces
                # whatever is at its name, so its last part is not followed.
                _resolve_in_archive(member.name, links, follow_last=False)
        except _Escape:
            problem = "path resolves outside the destination (through the archive's symlinks)"
        if problem is None and member.issym():
            link = member.linkname
            parent = str(PurePosixPath(member.name).parent)
            try:
                if PurePosixPath(link).is_absolute() or PureWindowsPath(link).drive:
                    raise _Escape(link)
                _resolve_in_archive(f"{parent}/{link}", links, follow_last=True)
            except _Escape:
                problem = f"symlink to {link!r} points outside the destination"
        if problem is None and member.islnk():
            link = member.linkname
            try:
                if _member_problem(link):
                    raise _Escape(link)
                _resolve_in_archive(link, links, follow_last=True)
            except _Escape:
                problem = f"hard link to {link!r} points outside the destination"
        if problem:
            raise UnsafeArchiveError(f"refusing to extract {archive}: member {member.name!r}: {problem}; "
                                     f"nothing was extracted")


def _check_zip_member(info: zipfile.ZipInfo, archive: Path) -> None:
    problem = _member_problem(info.filename)
    mode = info.external_attr >> 16
    if problem is None and stat.S_ISLNK(mode):
        problem = "symlink entry"
    if problem is None and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)):
        problem = "device or FIFO entry"
    if problem:
        raise UnsafeArchiveError(f"refusing to extract {archive}: member {info.filename!r}: {problem}; "
                                 f"nothing was extracted")


def _tar_filter():
    """tarfile's ``data`` filter where this Python has it (3.12, 3.11.4+, 3.10.12+), else None.

    Our own checks do not rely on it: :func:`_check_tar_members` resolves every member
    first, and tests run extraction with the filter switched off too.
    """
    return "data" if hasattr(tarfile, "data_filter") else None


def _move_into(staging: Path, dest: Path) -> None:
    """Move the extracted tree into ``dest``: one rename for a new or empty ``dest``,
    else entry by entry (merging folders; a symlink already in ``dest`` is replaced,
    never followed)."""
    if not dest.is_symlink() and (not dest.exists() or (dest.is_dir() and not any(dest.iterdir()))):
        if dest.exists():
            dest.rmdir()
        os.replace(staging, dest)
        return
    for entry in sorted(staging.iterdir()):
        target = dest / entry.name
        if target.is_symlink():
            target.unlink()
        if entry.is_dir() and not entry.is_symlink() and target.is_dir():
            _move_into(entry, target)
        elif target.is_dir():
            raise UnsafeArchiveError(f"cannot replace the folder {target} with a file from the archive")
        else:
            os.replace(entry, target)


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``dest``; return the paths written.

    All or nothing: every member is checked before anything is written
    (absolute names, ``..`` components, device or FIFO entries, and links, followed
    through the archive's own symlink chains, that leave ``dest``), each raising
    :class:`UnsafeArchiveError` naming the archive and the member. Extraction then
    goes into a temporary folder beside ``dest`` that is renamed into place only
    when every member was written, so a failure midway leaves ``dest`` untouched.
    Python's tar ``data`` filter, where available, is a second line of defence.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(f"archive not found: {archive}")
    if zipfile.is_zipfile(archive):
        kind = "zip"
    else:
        try:
            kind = "tar" if tarfile.is_tarfile(archive) else None
        except OSError:
            kind = None
    if kind is None:
        raise ValueError(f"{archive} is not a zip or tar archive (or it is corrupt)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extracting-", dir=dest.parent))
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                for info in infos:
                    _check_zip_member(info, archive)
                zf.extractall(staging, members=infos)
                names = [info.filename for info in infos]
        else:
            with tarfile.open(archive, "r:*") as tf:
                members = tf.getmembers()
                _check_tar_members(members, archive)
                flt = _tar_filter()
                tf.extractall(staging, members=members, **({"filter": flt} if flt else {}))
                names = [m.name for m in members]
        _move_into(staging, dest)
    except UnsafeArchiveError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as err:
        raise UnsafeArchiveError(f"cannot extract {archive} into {dest}: {type(err).__name__}: {err}; "
                                 f"nothing was extracted") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [dest / n for n in names]
