"""The downloader against a real HTTP server on 127.0.0.1, and archive safety."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from panns_core import download as dl

PAYLOAD = bytes((i * 7 + i // 251) % 256 for i in range(300_000))
MD5 = hashlib.md5(PAYLOAD).hexdigest()
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """Serves PAYLOAD under several behaviours chosen by the path.

    /range.bin    honours Range (206)
    /norange.bin  ignores Range, always 200 with the whole body
    /flaky.bin    the first request is cut after half the body; later ones honour Range
    /drop.bin     always cut after half the body
    /busy.bin     503 on the first request, then like /range.bin
    anything else 404
    """

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        server = self.server
        with server.lock:
            server.requests.append((self.path, self.headers.get("Range")))
            n_for_path = sum(1 for p, _ in server.requests if p == self.path)
        if self.path == "/busy.bin" and n_for_path == 1:
            self.send_error(503, "Busy")
            return
        if self.path not in ("/range.bin", "/norange.bin", "/flaky.bin", "/drop.bin", "/busy.bin"):
            self.send_error(404, "Not Found")
            return
        cut = self.path == "/drop.bin" or (self.path == "/flaky.bin" and n_for_path == 1)
        start = 0
        rng = self.headers.get("Range")
        if rng and self.path != "/norange.bin":
            start = int(rng.split("=")[1].split("-")[0])
        if start >= len(PAYLOAD):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = PAYLOAD[start:]
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if cut:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture()
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    httpd.lock = threading.Lock()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_and_renames(server, tmp_path):
    dest = tmp_path / "sub" / "file.bin"
    out = dl.download(server.base + "/range.bin", dest, md5=MD5, sha256=SHA256,
                      size=len(PAYLOAD), progress=False)
    assert out == dest
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "file.bin.part").exists()


def test_complete_file_is_not_downloaded_again(server, tmp_path):
    dest = tmp_path / "file.bin"
    dl.download(server.base + "/range.bin", dest, md5=MD5, progress=False)
    n = len(server.requests)
    dl.download(server.base + "/range.bin", dest, md5=MD5, progress=False)
    assert len(server.requests) == n


def test_existing_file_with_wrong_checksum_is_replaced(server, tmp_path):
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"stale")
    dl.download(server.base + "/range.bin", dest, md5=MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_checksum_mismatch_deletes_partial_and_names_everything(server, tmp_path):
    dest = tmp_path / "file.bin"
    wrong = "0" * 32
    url = server.base + "/range.bin"
    with pytest.raises(dl.ChecksumError) as info:
        dl.download(url, dest, md5=wrong, progress=False)
    msg = str(info.value)
    assert url in msg and str(dest) in msg and wrong in msg and MD5 in msg
    assert not dest.exists()
    assert not (tmp_path / "file.bin.part").exists()


def test_size_mismatch_is_reported(server, tmp_path):
    with pytest.raises(dl.ChecksumError, match="size mismatch"):
        dl.download(server.base + "/range.bin", tmp_path / "f.bin", size=len(PAYLOAD) + 1,
                    progress=False)
    assert not (tmp_path / "f.bin.part").exists()


def test_dropped_connection_is_resumed_with_range(server, tmp_path):
    dest = tmp_path / "file.bin"
    dl.download(server.base + "/flaky.bin", dest, sha256=SHA256, retries=2, progress=False)
    assert dest.read_bytes() == PAYLOAD
    ranges = [r for p, r in server.requests if p == "/flaky.bin"]
    assert ranges == [None, f"bytes={len(PAYLOAD) // 2}-"]


def test_partial_file_survives_failure_and_next_call_resumes(server, tmp_path):
    dest = tmp_path / "file.bin"
    part = tmp_path / "file.bin.part"
    with pytest.raises(dl.DownloadError, match="received so far are kept in .*file.bin.part"):
        dl.download(server.base + "/drop.bin", dest, md5=MD5, retries=1, progress=False)
    assert part.stat().st_size > 0 and not dest.exists()
    # Each attempt resumes: the second one starts where the first stopped.
    drop_ranges = [r for p, r in server.requests if p == "/drop.bin"]
    assert drop_ranges[0] is None and drop_ranges[1] == f"bytes={len(PAYLOAD) // 2}-"
    kept = part.stat().st_size
    dl.download(server.base + "/range.bin", dest, md5=MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/range.bin", f"bytes={kept}-")


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(b"garbage that must not survive")
    dl.download(server.base + "/norange.bin", dest, md5=MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1][1] is not None  # we asked for a range, got 200


def test_complete_partial_file_is_accepted(server, tmp_path):
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)
    dl.download(server.base + "/range.bin", dest, md5=MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_resume_false_discards_partial(server, tmp_path):
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:1000])
    dl.download(server.base + "/range.bin", dest, md5=MD5, resume=False, progress=False)
    assert server.requests[-1][1] is None
    assert dest.read_bytes() == PAYLOAD


def test_unverified_download_records_sha256(server, tmp_path, capsys):
    dest = tmp_path / "file.bin"
    dl.download(server.base + "/range.bin", dest, progress=False)
    err = capsys.readouterr().err
    assert "could not be verified" in err and SHA256 in err
    assert (tmp_path / "file.bin.sha256").read_text().split()[0] == SHA256
    # The recorded digest protects the cached copy from silent corruption.
    dest.write_bytes(b"corrupted")
    dl.download(server.base + "/range.bin", dest, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_http_503_is_retried(server, tmp_path):
    dest = dl.download(server.base + "/busy.bin", tmp_path / "f.bin", md5=MD5, retries=1,
                       progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [p for p, _ in server.requests] == ["/busy.bin", "/busy.bin"]


def test_http_404_is_not_retried(server, tmp_path):
    url = server.base + "/missing.bin"
    with pytest.raises(dl.DownloadError, match="404") as info:
        dl.download(url, tmp_path / "x", retries=3, progress=False)
    assert url in str(info.value)
    assert len(server.requests) == 1


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/x"])
def test_non_http_urls_are_refused(url, tmp_path):
    with pytest.raises(ValueError, match="only http"):
        dl.download(url, tmp_path / "x", progress=False)


def test_cache_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PANNS_CACHE", str(tmp_path / "c"))
    assert dl.cache_dir() == tmp_path / "c"
    assert (tmp_path / "c").is_dir()
    monkeypatch.delenv("PANNS_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert dl.cache_dir() == tmp_path / "home" / ".cache" / "panns"


# --------------------------------------------------------------------------- archives


def _tar(path, entries, mode="w:gz"):
    """entries: (TarInfo, bytes | None)."""
    with tarfile.open(path, mode) as tf:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return path


def _file(name, data=b"x"):
    return tarfile.TarInfo(name), data


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


@pytest.mark.parametrize("mode,suffix", [("w:gz", ".tar.gz"), ("w:bz2", ".tar.bz2"),
                                         ("w:xz", ".tar.xz"), ("w", ".tar")])
def test_safe_extract_tar_ok(tmp_path, mode, suffix):
    d = tarfile.TarInfo("data")
    d.type = tarfile.DIRTYPE
    archive = _tar(tmp_path / ("a" + suffix), [(d, None), _file("data/a.txt", b"hello"),
                                              _link("data/b.txt", "a.txt")], mode)
    out = dl.safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "data" / "a.txt").read_bytes() == b"hello"
    assert (tmp_path / "out" / "data" / "b.txt").read_bytes() == b"hello"
    assert len(out) == 3


@pytest.mark.parametrize("entry,problem", [
    (_file("../evil.txt"), "'..'"),
    (_file("ok/../../evil.txt"), "'..'"),
    (_file("/tmp/evil_abs.txt"), "absolute"),
    (_link("ln", "/etc/passwd"), "symlink"),
    (_link("ln", "../../outside"), "symlink"),
    (_link("hl", "../outside", tarfile.LNKTYPE), "hard link"),
])
def test_safe_extract_tar_refuses_escapes(tmp_path, entry, problem):
    archive = _tar(tmp_path / "bad.tar.gz", [_file("first.txt"), entry])
    with pytest.raises(dl.UnsafeArchiveError, match=problem) as info:
        dl.safe_extract(archive, tmp_path / "out")
    assert "bad.tar.gz" in str(info.value)
    # all-or-nothing: the harmless first member was not written either
    assert not (tmp_path / "out" / "first.txt").exists()


def test_safe_extract_tar_refuses_device(tmp_path):
    dev = tarfile.TarInfo("dev0")
    dev.type = tarfile.CHRTYPE
    dev.devmajor, dev.devminor = 1, 3
    archive = _tar(tmp_path / "dev.tar", [(dev, None)], "w")
    with pytest.raises(dl.UnsafeArchiveError, match="device"):
        dl.safe_extract(archive, tmp_path / "out")


def test_safe_extract_zip(tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("d/x.txt", "zip ok")
    dl.safe_extract(good, tmp_path / "out")
    assert (tmp_path / "out" / "d" / "x.txt").read_text() == "zip ok"

    for name in ("../evil.txt", "/abs.txt", "C:\\win.txt"):
        bad = tmp_path / "bad.zip"
        with zipfile.ZipFile(bad, "w") as zf:
            zf.writestr("fine.txt", "x")
            zf.writestr(zipfile.ZipInfo(name), "evil")
        with pytest.raises(dl.UnsafeArchiveError, match="bad.zip"):
            dl.safe_extract(bad, tmp_path / "out2")
        assert not (tmp_path / "out2" / "fine.txt").exists()


def test_safe_extract_zip_refuses_symlink(tmp_path):
    bad = tmp_path / "link.zip"
    info = zipfile.ZipInfo("ln")
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(dl.UnsafeArchiveError, match="symlink"):
        dl.safe_extract(bad, tmp_path / "out")


def test_safe_extract_rejects_non_archive(tmp_path):
    f = tmp_path / "plain.txt"
    f.write_text("not an archive")
    with pytest.raises(ValueError, match="plain.txt"):
        dl.safe_extract(f, tmp_path / "out")
    with pytest.raises(FileNotFoundError):
        dl.safe_extract(tmp_path / "nope.zip", tmp_path / "out")
