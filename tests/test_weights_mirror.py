"""``slowonly-zoo mirror`` (slowonly_zoo/weights/mirror.py): the cached models' original files written into a folder
laid out like their upstream hosts, plus ``weights.lock``. Real HTTP on 127.0.0.1 (tests/loopback_server.py): a
model is cached from a loopback "upstream" (``origins.UPSTREAM_PREFIX`` pointed at it), the mirror folder is written,
the upstream goes down, the folder is served by another loopback server, and a fresh, empty cache gets the model
from it through ``SLOWONLY_ZOO_MIRRORS``, verified, with ``SLOWONLY_ZOO_LOCK`` set to the mirror's lock file.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from pathlib import Path

import pytest
import torch
from loopback_server import Fault, LoopbackServer
from weights_helpers import make_entry, write_tiny_checkpoint

from slowonly_zoo import cli
from slowonly_zoo.errors import MirrorError
from slowonly_zoo.index import get_model_info, register_model_entry
from slowonly_zoo.weights import cache, lockfile, origins, pins
from slowonly_zoo.weights.hashing import sha256_file
from slowonly_zoo.weights.mirror import LOCK_NAME, mirror, mirror_path
from slowonly_zoo.weights.sources import WeightsNotFoundError, fetch_weights_report, mirror_candidates
from slowonly_zoo.weights.transfer import import_files

FAIR_BASE = "slow_r50_8x8_k400_pytorchvideo"


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setenv("SLOWONLY_ZOO_RETRIES", "0")
    monkeypatch.setenv("SLOWONLY_ZOO_TIMEOUT", "5")
    monkeypatch.setenv("SLOWONLY_ZOO_PROGRESS", "0")
    monkeypatch.delenv("SLOWONLY_ZOO_LOCK", raising=False)
    monkeypatch.delenv("SLOWONLY_ZOO_KEEP_DOWNLOADS", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture
def upstream(monkeypatch):
    """A loopback server standing in for https://download.openmmlab.com/ (its ``/upstream/`` folder)."""
    with LoopbackServer() as up:
        monkeypatch.setattr(origins, "UPSTREAM_PREFIX", up.url("/upstream/"))
        yield up


def _mm_entry(up: LoopbackServer, folder: Path, seed: int):
    """A small mmaction2-format checkpoint served at its upstream path, and an index entry for it."""
    ckpt = write_tiny_checkpoint(folder, seed=seed)
    rel = f"mmaction/recognition/slowonly/{ckpt.name.rsplit('-', 1)[0]}/{ckpt.name}"
    up.add("/upstream/" + rel, ckpt.read_bytes())
    return ckpt, rel, make_entry(ckpt, url=up.url("/upstream/" + rel))


def _tiny_pyth(seed: int) -> bytes:
    """A small pytorchvideo-layout ``.pyth`` (two stem tensors: enough to convert and cache)."""
    g = torch.Generator().manual_seed(seed)
    state = {"blocks.0.conv.weight": torch.randn(64, 3, 1, 7, 7, generator=g), "blocks.0.norm.weight": torch.ones(64)}
    buf = io.BytesIO()
    torch.save({"model_state": state, "epoch": 1}, buf)
    return buf.getvalue()


def _fair_entry(up: LoopbackServer, data: bytes, tag: str):
    """A copy of a FAIR entry (no hash in its name or index) whose file is served at FAIR's path on ``up``."""
    base = get_model_info(FAIR_BASE)
    assert base.checkpoint is not None and not base.checkpoint.sha256_prefix and not base.checkpoint.sha256
    rel = f"pytorchvideo/model_zoo/kinetics/{tag}/{base.checkpoint.filename}"
    checkpoint = dataclasses.replace(base.checkpoint, url=up.add("/" + rel, data), alternate_urls=(), hf_hub_id=None)
    return rel, register_model_entry(
        dataclasses.replace(base, name=f"test_mirror_{tag}", aliases=(), checkpoint=checkpoint)
    )


def _serve_folder(server: LoopbackServer, root: Path) -> None:
    """Serve every file below ``root`` at its relative path (what `python -m http.server` in ``root`` does)."""
    for path in root.rglob("*"):
        if path.is_file():
            server.add("/" + path.relative_to(root).as_posix(), path.read_bytes())


def _fresh_cache(monkeypatch, tmp_path: Path, tag: str) -> Path:
    home = tmp_path / f"client_home_{tag}"
    monkeypatch.setenv("SLOWONLY_ZOO_HOME", str(home))
    return home


def test_a_mirrored_mmaction2_file_downloads_and_verifies_from_the_mirror_with_its_lock(
    upstream, tmp_path, monkeypatch, capsys
):
    ckpt, rel, entry = _mm_entry(upstream, tmp_path / "src", seed=41)
    monkeypatch.setenv("SLOWONLY_ZOO_KEEP_DOWNLOADS", "1")
    fetch_weights_report(entry)
    out = tmp_path / "mirror"

    assert cli.main(["mirror", str(out), entry.name]) == 0
    assert f"written  {entry.name}: {rel}" in capsys.readouterr().out
    served = out / rel  # the upstream path, where a mirror is searched first
    assert (
        served == mirror_path(out, entry)
        and Path(mirror_candidates(str(out), entry.checkpoint.url, ckpt.name)[1][0]) == served
    )
    assert served.read_bytes() == ckpt.read_bytes()
    lock = lockfile.read_lock(out / LOCK_NAME)
    assert lock == {entry.name: lockfile.LockedFile(ckpt.name, sha256_file(ckpt), ckpt.stat().st_size)}
    assert cli.main(["mirror", str(out), entry.name, "--json"]) == 0  # again: nothing to copy
    assert [f["status"] for f in json.loads(capsys.readouterr().out)["files"]] == ["unchanged"]

    # A fresh machine: empty cache, the upstream host down, the folder served, the lock in force.
    upstream.add("/upstream/" + rel, b"", faults=[Fault(status=404)] * 5)
    _fresh_cache(monkeypatch, tmp_path, "a")
    with LoopbackServer() as host:
        _serve_folder(host, out)
        monkeypatch.setenv("SLOWONLY_ZOO_MIRRORS", host.base_url)
        monkeypatch.setenv("SLOWONLY_ZOO_LOCK", str(out / LOCK_NAME))
        result = fetch_weights_report(entry)
        assert result.record.source == host.url("/" + rel) and result.record.source_kind == "mirror"
        assert result.record.original_sha256 == sha256_file(ckpt)
        assert cache.check_cached(entry.name, full=True).ok
        assert len(host.gets("/" + rel)) == 1
    assert len(upstream.gets("/upstream/" + rel)) == 1  # the first caching only: the mirror is tried first


def test_a_fair_file_without_a_hash_in_its_name_is_pinned_by_the_mirror_lock(upstream, tmp_path, monkeypatch):
    data = _tiny_pyth(7)
    rel, entry = _fair_entry(upstream, data, "k400")
    monkeypatch.setenv("SLOWONLY_ZOO_KEEP_DOWNLOADS", "1")
    fetch_weights_report(entry)  # pinned on first use
    out = tmp_path / "mirror"
    result = mirror(out, [entry.name])
    assert [f.path for f in result.files] == [out / rel] and (out / rel).read_bytes() == data

    # On a fresh machine, with FAIR's host down, no pin exists yet: the mirror's lock supplies the full hash.
    upstream.add("/" + rel, b"", faults=[Fault(status=404)] * 5)
    _fresh_cache(monkeypatch, tmp_path, "fair")
    monkeypatch.setenv("SLOWONLY_ZOO_LOCK", str(out / LOCK_NAME))
    with LoopbackServer() as host:
        _serve_folder(host, out)
        monkeypatch.setenv("SLOWONLY_ZOO_MIRRORS", host.base_url)
        got = fetch_weights_report(entry)
        assert (
            got.record.source == host.url("/" + rel)
            and got.record.original_sha256 == lockfile.read_lock(out / LOCK_NAME)[entry.name].sha256
        )
        assert pins.read_pin(entry.name).sha256 == got.record.original_sha256

        # The same folder serving other bytes (a forged or replaced file) is refused under the lock.
        _fresh_cache(monkeypatch, tmp_path, "forged")
        host.add("/" + rel, _tiny_pyth(8))
        with pytest.raises(WeightsNotFoundError) as info:
            fetch_weights_report(entry)
        text = str(info.value)
        assert "ChecksumMismatchError" in text and got.record.original_sha256 in text
        assert not cache.check_cached(entry.name).ok


def test_an_uncached_name_is_a_clear_error_naming_download_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "mirror"
    assert cli.main(["mirror", str(out), "slowonly_r50_8x8x1_k400", "slowonly_r50_4x16x1_k400"]) == 1
    err = capsys.readouterr().err
    assert "not in the cache: slowonly_r50_8x8x1_k400" in err
    assert "slowonly-zoo download slowonly_r50_8x8x1_k400 slowonly_r50_4x16x1_k400" in err
    assert not out.exists()
    assert cli.main(["mirror", str(out), "--all"]) == 1
    assert "nothing is cached" in capsys.readouterr().err
    assert cli.main(["mirror", str(out)]) == 1 and "or pass --all" in capsys.readouterr().err


def test_an_original_that_was_not_kept_is_refused_saying_how_to_get_it(upstream, tmp_path, monkeypatch):
    ckpt, rel, entry = _mm_entry(upstream, tmp_path / "src", seed=42)
    fetch_weights_report(entry)  # SLOWONLY_ZOO_KEEP_DOWNLOADS unset: only the converted file stays
    out = tmp_path / "mirror"
    with pytest.raises(MirrorError) as info:
        mirror(out, [entry.name])
    text = str(info.value)
    assert "only the converted weights" in text and sha256_file(ckpt) in text
    assert f"SLOWONLY_ZOO_KEEP_DOWNLOADS=1 slowonly-zoo download {entry.name}" in text
    assert str(cache.downloads_dir() / ckpt.name) in text and not out.exists()

    # The first fix it names: put the original where the cache keeps downloads.
    shutil.copyfile(ckpt, cache.downloads_dir() / ckpt.name)
    assert mirror(out, [entry.name]).files[0].status == "written" and (out / rel).read_bytes() == ckpt.read_bytes()

    # A kept file whose bytes changed since it was cached is refused, and nothing replaces the mirror's copy.
    data = ckpt.read_bytes()
    (cache.downloads_dir() / ckpt.name).write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    (out / rel).unlink()
    with pytest.raises(MirrorError, match="changed since it was cached"):
        mirror(out, [entry.name])
    assert not (out / rel).exists()


def test_all_mirrors_imported_and_downloaded_models_merging_the_lock_and_force_replaces(
    upstream, tmp_path, monkeypatch
):
    ckpt_a, rel_a, a = _mm_entry(upstream, tmp_path / "a", seed=43)
    ckpt_b, rel_b, b = _mm_entry(upstream, tmp_path / "b", seed=44)
    assert [r.status for r in import_files([ckpt_a])] == ["imported"]  # the imported file is the kept original
    out = tmp_path / "mirror"
    mirror(out, [a.name])
    monkeypatch.setenv("SLOWONLY_ZOO_KEEP_DOWNLOADS", "1")
    fetch_weights_report(b)

    (out / rel_a).write_bytes(b"someone else's file")
    with pytest.raises(MirrorError, match="pass --force"):
        mirror(out, None)
    result = mirror(out, None, force=True)  # --all: every cached model
    assert {f.name: f.status for f in result.files} == {a.name: "replaced", b.name: "written"}
    assert (out / rel_a).read_bytes() == ckpt_a.read_bytes() and (out / rel_b).read_bytes() == ckpt_b.read_bytes()
    assert set(lockfile.read_lock(out / LOCK_NAME)) == {a.name, b.name}

    cache.remove_entry(a.name)  # the lock keeps what an earlier run mirrored
    mirror(out, [b.name])
    assert set(lockfile.read_lock(out / LOCK_NAME)) == {a.name, b.name}
