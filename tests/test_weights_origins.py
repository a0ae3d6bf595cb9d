"""The alternate origins of the mmaction2 files (slowonly_zoo/weights/origins.py): after the upstream URL, the same
path on each origin of the openmmlab bucket, each under the same hash check, in the order of
``SLOWONLY_ZOO_ORIGINS`` when it is set. Real HTTP on 127.0.0.1 (tests/loopback_server.py): the upstream host is
redirected to the loopback server by pointing :data:`origins.UPSTREAM_PREFIX` at it, and the origins are loopback
base URLs, so every request of a test is answered (or refused) here.
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest
from loopback_server import Fault, LoopbackServer
from weights_helpers import make_entry, write_tiny_checkpoint

from slowonly_zoo.errors import ConfigError
from slowonly_zoo.index import get_model_info
from slowonly_zoo.weights import cache, origins
from slowonly_zoo.weights.origins import DEFAULT_ORIGINS, Candidate, origin_candidates, origin_list
from slowonly_zoo.weights.sources import WeightsNotFoundError, fetch_weights, fetch_weights_report


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setenv("SLOWONLY_ZOO_RETRIES", "1")
    monkeypatch.setenv("SLOWONLY_ZOO_BACKOFF", "0.01")
    monkeypatch.setenv("SLOWONLY_ZOO_TIMEOUT", "5")
    monkeypatch.setenv("SLOWONLY_ZOO_PROGRESS", "0")
    monkeypatch.delenv("SLOWONLY_ZOO_ORIGINS", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture
def upstream(server, monkeypatch) -> str:
    """The loopback server's ``/upstream/`` folder standing in for https://download.openmmlab.com/."""
    base = server.url("/upstream/")
    monkeypatch.setattr(origins, "UPSTREAM_PREFIX", base)
    return base


def _rel(ckpt: Path) -> str:
    """The upstream path of a test checkpoint (as tests/weights_helpers.upstream_url lays it out)."""
    return f"mmaction/recognition/slowonly/{ckpt.name.rsplit('-', 1)[0]}/{ckpt.name}"


def _closed_port_base() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: connection refused
    return f"http://127.0.0.1:{port}/"


def test_default_origins_are_the_bucket_hosts_in_order_after_the_upstream_url():
    ck = get_model_info("slowonly_r50_8x8x1_k400").checkpoint
    assert ck is not None
    rel = ck.url.removeprefix("https://download.openmmlab.com/")
    assert rel != ck.url and origin_list() == DEFAULT_ORIGINS
    assert origin_candidates(ck) == [
        Candidate("upstream", ck.url),
        Candidate("origin", "https://openmmlab.oss-cn-hangzhou.aliyuncs.com/" + rel),
        Candidate("origin", "https://openmmlab.oss-accelerate.aliyuncs.com/" + rel),
    ]


def test_the_variable_reorders_replaces_or_empties_the_origins(monkeypatch):
    ck = get_model_info("slowonly_r50_8x8x1_k400").checkpoint
    assert ck is not None
    rel = ck.url.removeprefix("https://download.openmmlab.com/")
    monkeypatch.setenv("SLOWONLY_ZOO_ORIGINS", f" {DEFAULT_ORIGINS[1]} , https://my.host/openmmlab ")
    assert [c.url for c in origin_candidates(ck)] == [
        ck.url,
        DEFAULT_ORIGINS[1] + rel,
        "https://my.host/openmmlab/" + rel,
    ]
    monkeypatch.setenv("SLOWONLY_ZOO_ORIGINS", "")
    assert origin_candidates(ck) == [Candidate("upstream", ck.url)]
    monkeypatch.setenv("SLOWONLY_ZOO_ORIGINS", "/mnt/models")
    with pytest.raises(ConfigError, match="SLOWONLY_ZOO_ORIGINS entry '/mnt/models' is not a URL"):
        origin_list()


def test_an_entry_with_several_urls_tries_each_then_each_on_every_origin():
    ck = get_model_info("slowonly_r50_8x8x1_k400").checkpoint
    assert ck is not None
    other = f"https://download.openmmlab.com/mmaction/v1.0/recognition/slowonly/x/{ck.filename}"
    foreign = f"https://elsewhere.example/{ck.filename}"  # not on the upstream host: tried as is, no origins
    ck = dataclasses.replace(ck, alternate_urls=(other, foreign))
    rel = ck.url.removeprefix("https://download.openmmlab.com/")
    rel2 = other.removeprefix("https://download.openmmlab.com/")
    assert [c.url for c in origin_candidates(ck, ("https://a/", "https://b"))] == [
        ck.url,
        other,
        foreign,
        "https://a/" + rel,
        "https://a/" + rel2,
        "https://b/" + rel,
        "https://b/" + rel2,
    ]


@pytest.mark.parametrize("down", ["404", "500", "closed"])
def test_upstream_and_first_origin_down_second_serves(server: LoopbackServer, upstream, tmp_path, monkeypatch, down):
    ckpt = write_tiny_checkpoint(tmp_path, seed=31)
    rel = _rel(ckpt)
    server.add("/upstream/" + rel, b"", faults=[Fault(status=503)] * 9)
    first = _closed_port_base() if down == "closed" else server.url("/first/")
    if down == "500":
        server.add("/first/" + rel, b"", faults=[Fault(status=500)] * 9)
    second = server.add("/second/" + rel, ckpt.read_bytes())
    monkeypatch.setattr(origins, "DEFAULT_ORIGINS", (first, server.url("/second")))  # the built-in list, unset var
    entry = make_entry(ckpt, url=upstream + rel)

    result = fetch_weights_report(entry)
    assert result.record.source == second and result.record.source_kind == "origin"
    assert result.record.original_sha256 == cache.sha256_file(ckpt)
    assert cache.check_cached(entry.name, full=True).ok
    tried = [(a.kind, a.location, a.error) for a in result.attempts][3:]  # after cache, huggingface, mirror
    assert [t[:2] for t in tried] == [("upstream", upstream + rel), ("origin", first + rel), ("origin", second)]
    assert "HTTP 503" in tried[0][2]
    assert {"404": "HTTP 404", "500": "HTTP 500", "closed": "connection refused"}[down] in tried[1][2]
    assert tried[2][2] is None
    assert len(server.gets("/second/" + rel)) == 1
    assert fetch_weights_report(entry).from_cache  # the next use needs no host


def test_every_origin_down_lists_each_url_tried(server: LoopbackServer, upstream, tmp_path, monkeypatch):
    ckpt = write_tiny_checkpoint(tmp_path, seed=32)
    rel = _rel(ckpt)
    closed = _closed_port_base()
    monkeypatch.setenv("SLOWONLY_ZOO_ORIGINS", f"{server.url('/a')},{closed}")
    entry = make_entry(ckpt, url=upstream + rel)

    with pytest.raises(WeightsNotFoundError) as info:
        fetch_weights(entry)
    message = str(info.value)
    assert f"4. upstream {upstream + rel}: HTTPAccessError: HTTP 404" in message
    assert f"5. origin {server.url('/a/' + rel)}: HTTPAccessError: HTTP 404" in message
    assert f"6. origin {closed + rel}: DownloadError" in message and "connection refused" in message
    assert "SLOWONLY_ZOO_ORIGINS" in message
    assert [a.kind for a in info.value.attempts][3:] == ["upstream", "origin", "origin"]
    assert not cache.check_cached(entry.name).ok and not cache.weights_path(entry.name).exists()


def test_the_variable_reorders_the_origins_tried(server: LoopbackServer, upstream, tmp_path, monkeypatch):
    ckpt = write_tiny_checkpoint(tmp_path, seed=33)
    rel = _rel(ckpt)
    for folder in ("/one/", "/two/"):
        server.add(folder + rel, ckpt.read_bytes())
    monkeypatch.setattr(origins, "DEFAULT_ORIGINS", (server.url("/one/"), server.url("/two/")))
    monkeypatch.setenv("SLOWONLY_ZOO_ORIGINS", f"{server.url('/two/')},{server.url('/one/')}")
    entry = make_entry(ckpt, url=upstream + rel)

    assert fetch_weights_report(entry).record.source == server.url("/two/" + rel)
    assert server.gets("/one/" + rel) == [] and len(server.gets("/two/" + rel)) == 1

    monkeypatch.setenv("SLOWONLY_ZOO_ORIGINS", "")  # set but empty: the upstream URL only
    other = make_entry(ckpt, url=upstream + rel)
    with pytest.raises(WeightsNotFoundError) as info:
        fetch_weights(other)
    assert [a.kind for a in info.value.attempts][3:] == ["upstream"]
    assert server.gets("/one/" + rel) == [] and len(server.gets("/two/" + rel)) == 1


def test_an_origin_serving_wrong_bytes_is_refused_and_the_next_one_used(
    server: LoopbackServer, upstream, tmp_path, monkeypatch
):
    ckpt = write_tiny_checkpoint(tmp_path, seed=34)
    rel = _rel(ckpt)
    server.add("/forged/" + rel, ckpt.read_bytes(), corrupt=True)
    good = server.add("/good/" + rel, ckpt.read_bytes())
    monkeypatch.setenv("SLOWONLY_ZOO_ORIGINS", f"{server.url('/forged')},{server.url('/good')}")
    entry = make_entry(ckpt, url=upstream + rel)

    result = fetch_weights_report(entry)
    assert result.record.source == good and result.record.original_sha256 == cache.sha256_file(ckpt)
    forged = result.attempts[-2]
    assert forged.kind == "origin" and forged.location == server.url("/forged/" + rel)
    assert forged.error is not None and "ChecksumMismatchError" in forged.error
    assert len(server.gets("/forged/" + rel)) == 1  # a wrong hash is not retried
    assert not any(p.suffix in {".pth", ".part"} for p in (cache.cache_root() / "downloads").glob("*"))


def test_alternate_urls_round_trip_through_the_index_and_must_name_the_file():
    from slowonly_zoo.errors import ModelIndexError
    from slowonly_zoo.index.schema import entry_from_index, entry_to_index, validate_entry

    base = get_model_info("slowonly_r50_8x8x1_k400")
    assert base.checkpoint is not None
    assert "Alternate URLs" not in entry_to_index(base)["Checkpoint"]  # the packaged index stays as it is
    other = f"https://download.openmmlab.com/mmaction/v1.0/x/{base.checkpoint.filename}"
    entry = dataclasses.replace(base, checkpoint=dataclasses.replace(base.checkpoint, alternate_urls=(other,)))
    data = entry_to_index(entry)
    assert data["Checkpoint"]["Alternate URLs"] == [other]
    assert entry_from_index(data, "test").checkpoint == entry.checkpoint
    wrong = dataclasses.replace(base.checkpoint, alternate_urls=("https://download.openmmlab.com/x/other.pth",))
    with pytest.raises(ModelIndexError, match="does not end with its Filename"):
        validate_entry(dataclasses.replace(base, checkpoint=wrong), "test")
