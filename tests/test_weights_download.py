"""download_file against the fault-injecting loopback server (real HTTP on 127.0.0.1).

The payloads are arbitrary bytes under upstream-style names ``<stem>-<sha256[:8]>.pth``: the download and
verification machinery does not look inside the file. Each fault must end in a verified file or a clear
error, and never in a file at the destination that does not match its hash.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from loopback_server import Fault, LoopbackServer

from slowonly_zoo.weights.download import ChecksumMismatchError, DownloadError, HTTPAccessError, download_file

SIZE = 300_000  # several 64 KiB chunks


def _payload(seed: int) -> tuple[bytes, str, str]:
    data = hashlib.sha256(str(seed).encode()).digest() * (SIZE // 32)
    data = bytes((b + i) % 256 for i, b in enumerate(data))
    sha = hashlib.sha256(data).hexdigest()
    return data, sha, f"/mmaction/recognition/slowonly/test_ckpt_{seed}-{sha[:8]}.pth"


def _fetch(server: LoopbackServer, path: str, dest: Path, prefix: str, **kw):
    kw.setdefault("retries", 3)
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 5.0)
    return download_file(server.url(path), dest, sha256_prefix=prefix, progress=False, **kw)


def _assert_nothing_left(dest: Path) -> None:
    assert not dest.exists()
    assert not dest.with_name(dest.name + ".part").exists()


def test_plain_download_is_verified(server, tmp_path):
    data, sha, path = _payload(1)
    server.add(path, data)
    dest = tmp_path / Path(path).name
    result = _fetch(server, path, dest, sha[:8])
    assert result.sha256 == sha and result.size == SIZE and not result.reused
    assert dest.read_bytes() == data
    assert [r.status for r in server.gets(path)] == [200]
    # A second call reuses the verified file without any request.
    again = _fetch(server, path, dest, sha[:8])
    assert again.reused and len(server.gets(path)) == 1


def test_drop_mid_body_resumes_with_range(server, tmp_path):
    data, sha, path = _payload(2)
    server.add(path, data, faults=[Fault(drop_after=100_000)])
    dest = tmp_path / Path(path).name
    result = _fetch(server, path, dest, sha[:8])
    assert dest.read_bytes() == data and result.sha256 == sha
    gets = server.gets(path)
    assert [(g.status, g.range, g.sent) for g in gets] == [(200, None, 100_000), (206, "bytes=100000-", SIZE - 100_000)]


def test_drop_without_range_support_restarts(server, tmp_path):
    data, sha, path = _payload(3)
    server.add(path, data, ranges=False, faults=[Fault(drop_after=150_000)])
    dest = tmp_path / Path(path).name
    _fetch(server, path, dest, sha[:8])
    assert dest.read_bytes() == data
    gets = server.gets(path)
    assert [(g.status, g.sent) for g in gets] == [(200, 150_000), (200, SIZE)]
    assert gets[1].range == "bytes=150000-"  # asked to resume, server ignored it, client restarted cleanly


def test_interrupted_download_resumes_in_a_later_call(server, tmp_path):
    data, sha, path = _payload(4)
    server.add(path, data, faults=[Fault(drop_after=70_000)])
    dest = tmp_path / Path(path).name
    with pytest.raises(DownloadError, match="gave up after 1 attempts"):
        _fetch(server, path, dest, sha[:8], retries=0)
    assert not dest.exists()
    assert dest.with_name(dest.name + ".part").stat().st_size == 70_000
    _fetch(server, path, dest, sha[:8], retries=0)
    assert dest.read_bytes() == data
    assert server.gets(path)[-1].range == "bytes=70000-"


def test_wrong_bytes_fail_the_hash_check(server, tmp_path):
    data, sha, path = _payload(5)
    server.add(path, data, corrupt=True)
    dest = tmp_path / Path(path).name
    with pytest.raises(ChecksumMismatchError, match=f"expected {sha[:8]}"):
        _fetch(server, path, dest, sha[:8])
    _assert_nothing_left(dest)
    assert len(server.gets(path)) == 1  # a deterministic mismatch is not retried


def test_stale_partial_from_another_file_is_discarded(server, tmp_path):
    data, sha, path = _payload(6)
    server.add(path, data)
    dest = tmp_path / Path(path).name
    dest.with_name(dest.name + ".part").write_bytes(b"\x00" * 50_000)  # not a prefix of the real file
    _fetch(server, path, dest, sha[:8])
    assert dest.read_bytes() == data
    assert [(g.status, g.range) for g in server.gets(path)] == [(206, "bytes=50000-"), (200, None)]


@pytest.mark.parametrize("status", [404, 403])
def test_not_found_and_forbidden_are_clear_and_not_retried(server, tmp_path, status):
    data, sha, path = _payload(7)
    if status == 404:
        url_path = path.replace(".pth", "-missing.pth")
    else:
        server.add(path, data, faults=[Fault(status=403)])
        url_path = path
    dest = tmp_path / Path(path).name
    with pytest.raises(HTTPAccessError, match=f"HTTP {status}") as info:
        _fetch(server, url_path, dest, sha[:8])
    assert info.value.status == status and server.base_url in str(info.value)
    assert len(server.gets(url_path)) == 1
    _assert_nothing_left(dest)


def test_server_error_then_ok_is_retried(server, tmp_path):
    data, sha, path = _payload(8)
    server.add(path, data, faults=[Fault(status=500), Fault(status=503)])
    dest = tmp_path / Path(path).name
    _fetch(server, path, dest, sha[:8])
    assert dest.read_bytes() == data
    assert [g.status for g in server.gets(path)] == [500, 503, 200]


def test_persistent_server_error_gives_up_with_reason(server, tmp_path):
    data, sha, path = _payload(9)
    server.add(path, data, faults=[Fault(status=500)] * 3)
    dest = tmp_path / Path(path).name
    with pytest.raises(DownloadError, match="gave up after 3 attempts; last error: HTTP 500"):
        _fetch(server, path, dest, sha[:8], retries=2)
    assert len(server.gets(path)) == 3
    _assert_nothing_left(dest)


def test_slow_response_within_timeout_completes(server, tmp_path):
    data, sha, path = _payload(10)
    server.add(path, data, delay=0.05)  # 5 chunks, 0.05 s each
    dest = tmp_path / Path(path).name
    _fetch(server, path, dest, sha[:8], timeout=2.0)
    assert dest.read_bytes() == data


def test_stalled_server_times_out_then_recovers(server, tmp_path):
    data, sha, path = _payload(11)
    server.add(path, data, faults=[Fault(stall=1.0)])
    dest = tmp_path / Path(path).name
    _fetch(server, path, dest, sha[:8], timeout=0.3)
    assert dest.read_bytes() == data
    assert server.arrived(path) == 2  # the stalled request, then the retry


def test_stalled_server_timeout_from_environment(server, tmp_path, monkeypatch):
    data, sha, path = _payload(12)
    server.add(path, data, faults=[Fault(stall=1.0), Fault(stall=1.0)])
    monkeypatch.setenv("SLOWONLY_ZOO_TIMEOUT", "0.3")
    monkeypatch.setenv("SLOWONLY_ZOO_RETRIES", "1")
    monkeypatch.setenv("SLOWONLY_ZOO_BACKOFF", "0.01")
    dest = tmp_path / Path(path).name
    with pytest.raises(DownloadError, match="(?i)timed? ?out"):
        download_file(server.url(path), dest, sha256_prefix=sha[:8], progress=False)
    _assert_nothing_left(dest)


def test_existing_file_with_wrong_hash_is_replaced(server, tmp_path):
    data, sha, path = _payload(13)
    server.add(path, data)
    dest = tmp_path / Path(path).name
    dest.write_bytes(b"not the checkpoint")
    result = _fetch(server, path, dest, sha[:8])
    assert not result.reused and dest.read_bytes() == data
    assert not any(p.name.endswith(".part") for p in os.scandir(tmp_path))


def test_unresolvable_host_fails_at_once(tmp_path):
    dest = tmp_path / "x-00000000.pth"
    with pytest.raises(DownloadError, match="cannot resolve the host") as info:
        download_file(
            "http://no-such-host.invalid/x-00000000.pth",
            dest,
            sha256_prefix="00000000",
            progress=False,
            retries=3,
            backoff=5.0,
        )  # would take 35 s if it were retried
    assert "SLOWONLY_ZOO_MIRRORS" in str(info.value)
    _assert_nothing_left(dest)
