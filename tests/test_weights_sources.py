"""fetch_weights end to end: upstream URL, mirror chain (URL and local directory), offline mode, failure report,
damaged cache entries, and several processes fetching at once. Real HTTP on 127.0.0.1 (tests/loopback_server.py)
serving real upstream-format checkpoint files; every download is hash-verified and converted for real.
"""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

import pytest
import torch
from loopback_server import Fault, LoopbackServer
from weights_helpers import fetch_in_child, make_entry, read_tensors, upstream_url, write_tiny_checkpoint

from slowonly_zoo.weights import cache
from slowonly_zoo.weights.checkpoint import read_upstream_checkpoint
from slowonly_zoo.weights.sources import UPSTREAM_PREFIX, WeightsNotFoundError, fetch_weights, fetch_weights_report


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setenv("SLOWONLY_ZOO_RETRIES", "2")
    monkeypatch.setenv("SLOWONLY_ZOO_BACKOFF", "0.01")
    monkeypatch.setenv("SLOWONLY_ZOO_TIMEOUT", "5")
    monkeypatch.setenv("SLOWONLY_ZOO_PROGRESS", "0")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def _served(server: LoopbackServer, ckpt: Path, prefix: str = "", **kw) -> tuple[str, str]:
    """Serve ``ckpt`` under its upstream path (below ``prefix``); return (URL path, URL)."""
    path = prefix + "/" + upstream_url(ckpt.name)[len(UPSTREAM_PREFIX) :]
    return path, server.add(path, ckpt.read_bytes(), **kw)


def _assert_same_as_original(cached: Path, original: Path) -> None:
    want = read_upstream_checkpoint(original)
    got = read_tensors(cached)
    assert sorted(got) == sorted(want)
    for key in want:
        assert got[key].dtype == want[key].dtype and torch.equal(got[key], want[key]), key


def _no_cache_entry(name: str) -> None:
    assert not cache.check_cached(name).ok
    assert not cache.weights_path(name).exists() and not cache.record_path(name).exists()
    assert not any(p.suffix in {".pth", ".part"} for p in (cache.cache_root() / "downloads").glob("*"))


def test_upstream_url_then_cache(server, tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path, seed=1)
    path, url = _served(server, ckpt)
    entry = make_entry(ckpt, url=url)

    result = fetch_weights_report(entry.name)
    assert not result.from_cache and result.record.source == url and result.record.source_kind == "upstream"
    assert result.path == cache.weights_path(entry.name)
    assert result.record.original_sha256 == cache.sha256_file(ckpt)
    assert result.record.original_filename == ckpt.name and result.record.original_size == ckpt.stat().st_size
    meta = cache.read_safetensors_metadata(result.path)
    assert meta[cache.META_NAME] == entry.name and meta[cache.META_SOURCE_SHA256] == result.record.original_sha256
    _assert_same_as_original(result.path, ckpt)
    assert [a.kind for a in result.attempts] == ["cache", "huggingface", "mirror", "upstream"]
    assert not list((cache.cache_root() / "downloads").glob("*.pth"))  # the original is not kept by default

    # Second use: from the cache, no request; --verify re-hashes in full.
    assert fetch_weights(entry) == result.path
    again = fetch_weights_report(entry, verify=True)
    assert again.from_cache and len(server.gets(path)) == 1


def test_damaged_cache_entries_are_detected_and_replaced(server, tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path, seed=2)
    path, url = _served(server, ckpt)
    entry = make_entry(ckpt, url=url)
    cached = fetch_weights(entry)

    # Same size, one flipped byte in the tensor data: the next ordinary use re-hashes the changed file (README
    # "Getting the weights": size always, full hash on first use per process); only `list` (quick) skips it.
    data = bytearray(cached.read_bytes())
    data[-3] ^= 0xFF
    cached.write_bytes(bytes(data))
    assert cache.check_cached(entry.name, quick=True).ok
    assert "differs from recorded" in cache.check_cached(entry.name).problem
    assert "differs from recorded" in cache.check_cached(entry.name, full=True).problem
    result = fetch_weights_report(entry)
    assert not result.from_cache and "differs from recorded" in result.discarded
    _assert_same_as_original(result.path, ckpt)

    # A truncated file fails the cheap size check on the next ordinary use.
    with open(cached, "r+b") as fh:
        fh.truncate(100)
    assert "bytes, the record says" in cache.check_cached(entry.name).problem
    result = fetch_weights_report(entry)
    assert not result.from_cache and cache.check_cached(entry.name, full=True).ok
    assert len(server.gets(path)) == 3


def test_mirror_chain_url_and_local_directory(server, tmp_path, monkeypatch):
    ckpt = write_tiny_checkpoint(tmp_path / "src", seed=3)
    entry = make_entry(ckpt)  # upstream URL on the real (unreachable) host: must not be needed
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    (bad_dir / ckpt.name).write_bytes(ckpt.read_bytes()[:-10] + b"0123456789")  # right name, wrong bytes
    flat_dir = tmp_path / "flat"  # a plain folder holding the upstream file, as users have them
    flat_dir.mkdir()
    shutil.copy(ckpt, flat_dir / ckpt.name)
    monkeypatch.setenv(
        "SLOWONLY_ZOO_MIRRORS", f"{empty_dir}, {server.url('/nothing-here')}, file://{bad_dir},{flat_dir}"
    )

    result = fetch_weights_report(entry)
    assert result.record.source == str(flat_dir / ckpt.name) and result.record.source_kind == "mirror"
    _assert_same_as_original(result.path, ckpt)
    tried = [(a.kind, a.error) for a in result.attempts]
    assert tried[0][0] == "cache" and tried[1][0] == "huggingface" and "not configured" in tried[1][1]
    assert "no " + ckpt.name in tried[2][1]
    assert all("HTTP 404" in err for kind, err in tried[3:5])  # prefix-replaced path, then flat name
    assert "does not match the expected" in tried[5][1]
    assert tried[6] == ("mirror", None) and len(tried) == 7
    assert len(server.gets()) == 2
    assert (flat_dir / ckpt.name).exists()  # a local mirror is read in place, never moved


def test_url_mirror_keeps_the_upstream_path_and_resumes(server, tmp_path, monkeypatch):
    ckpt = write_tiny_checkpoint(tmp_path, seed=4)
    size = ckpt.stat().st_size
    path, _ = _served(server, ckpt, prefix="/openmmlab-mirror", faults=[Fault(drop_after=size // 2)])
    entry = make_entry(ckpt)
    monkeypatch.setenv("SLOWONLY_ZOO_MIRRORS", server.url("/openmmlab-mirror/"))
    result = fetch_weights_report(entry)
    assert result.record.source == server.url(path)
    assert path.endswith("/mmaction/recognition/slowonly/" + ckpt.name.rsplit("-", 1)[0] + "/" + ckpt.name)
    assert [(g.status, g.range) for g in server.gets(path)] == [(200, None), (206, f"bytes={size // 2}-")]
    _assert_same_as_original(result.path, ckpt)


def test_every_source_failing_lists_each_and_leaves_no_cache_entry(server, tmp_path, monkeypatch):
    ckpt = write_tiny_checkpoint(tmp_path, seed=5)
    _, url = _served(server, ckpt, corrupt=True)  # upstream serves wrong bytes
    monkeypatch.setenv("SLOWONLY_ZOO_MIRRORS", f"{server.url('/mirror')},{tmp_path / 'no-such-dir'}")
    server.add("/mirror/" + upstream_url(ckpt.name)[len(UPSTREAM_PREFIX) :], b"", faults=[Fault(status=500)] * 9)
    entry = make_entry(ckpt, url=url)

    with pytest.raises(WeightsNotFoundError) as info:
        fetch_weights(entry)
    message = str(info.value)
    assert f"could not get verified weights for {entry.name!r}" in message
    assert "1. cache" in message and "not in the cache" in message
    assert "2. huggingface" in message and "not configured" in message
    assert "3. mirror" in message and "gave up after 3 attempts; last error: HTTP 500" in message
    assert "4. mirror" in message and "HTTP 404" in message
    assert "5. mirror" in message and "no-such-dir" in message
    assert "6. upstream" in message and "ChecksumMismatchError" in message
    assert "slowonly-zoo import" in message
    assert [a.kind for a in info.value.attempts] == ["cache", "huggingface", "mirror", "mirror", "mirror", "upstream"]
    _no_cache_entry(entry.name)


@pytest.mark.parametrize("variable", ["SLOWONLY_ZOO_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_mode_uses_only_the_cache(server, tmp_path, monkeypatch, variable):
    ckpt = write_tiny_checkpoint(tmp_path, seed=6)
    path, url = _served(server, ckpt)
    entry = make_entry(ckpt, url=url)
    monkeypatch.setenv("SLOWONLY_ZOO_MIRRORS", server.url("/mirror"))
    monkeypatch.setenv(variable, "1")
    with pytest.raises(WeightsNotFoundError) as info:
        fetch_weights(entry)
    message = str(info.value)
    assert "offline mode" in message and ckpt.name in message and "not in the cache" in message
    assert f"slowonly-zoo import /path/to/{ckpt.name}" in message
    assert server.gets() == []  # not a single request

    # Online once fills the cache; offline then works without the network.
    assert fetch_weights(entry, offline=False).is_file()
    server.add(path, b"", faults=[Fault(status=500)] * 9)
    assert fetch_weights_report(entry).from_cache
    assert len(server.gets(path)) == 1  # (the mirror answered 404 twice before the upstream URL delivered)


@pytest.mark.slow  # three spawned interpreters importing torch: 5-15 s on 2 busy cores
def test_concurrent_processes_download_once(server, tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path, seed=7)
    path, url = _served(server, ckpt, delay=1.0)  # slow enough that the workers overlap
    entry = make_entry(ckpt, url=url)
    ctx = multiprocessing.get_context("spawn")
    workers = 3
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=fetch_in_child, args=(entry, barrier, results)) for _ in range(workers)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in range(workers)]
    for p in procs:
        p.join(timeout=30)
    assert [o for o in outcomes if o[1] == "error"] == []
    assert [p.exitcode for p in procs] == [0] * workers
    assert len(server.gets(path)) == 1 and server.gets(path)[0].sent == ckpt.stat().st_size
    assert sorted(o[1] for o in outcomes) == [False, True, True]  # one fetched, the others read the cache
    assert {o[2] for o in outcomes} == {str(cache.weights_path(entry.name))}
    assert len({o[3] for o in outcomes}) == 1
    assert cache.check_cached(entry.name, full=True).ok


def test_mirror_locations_for_a_real_index_entry(tmp_path):
    """SLOWONLY_ZOO_MIRRORS replaces the upstream prefix of the real entry's URL and keeps the rest."""
    from slowonly_zoo.index import get_model_info
    from slowonly_zoo.weights.sources import mirror_candidates

    ck = get_model_info("slowonly_r50_8x8x1_k400").checkpoint
    rest = "mmaction/recognition/slowonly/slowonly_r50_8x8x1_256e_kinetics400_rgb/" + ck.filename
    assert ck.url == UPSTREAM_PREFIX + rest
    assert mirror_candidates("https://mirror.example/openmmlab/", ck.url, ck.filename) == (
        "url",
        [f"https://mirror.example/openmmlab/{rest}", f"https://mirror.example/openmmlab/{ck.filename}"],
    )
    assert mirror_candidates(f"file://{tmp_path}", ck.url, ck.filename) == (
        "dir",
        [str(tmp_path / rest), str(tmp_path / ck.filename)],
    )
