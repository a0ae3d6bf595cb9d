"""Lock files (README "Getting the weights"): `slowonly-zoo lock` writes the full sha256 and size of what is cached
(JSON); with SLOWONLY_ZOO_LOCK / --lock every download and load must match it, and a model it does not list is
refused. Real HTTP on 127.0.0.1 serving real upstream-format checkpoint files."""

from __future__ import annotations

import json

import pytest
from weights_helpers import make_entry, upstream_url, write_tiny_checkpoint

from slowonly_zoo import cli
from slowonly_zoo.errors import WeightsFileError
from slowonly_zoo.weights import cache
from slowonly_zoo.weights.hashing import sha256_file
from slowonly_zoo.weights.sources import UPSTREAM_PREFIX, WeightsNotFoundError, fetch_weights_report


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setenv("SLOWONLY_ZOO_RETRIES", "0")
    monkeypatch.setenv("SLOWONLY_ZOO_TIMEOUT", "5")
    monkeypatch.setenv("SLOWONLY_ZOO_PROGRESS", "0")
    monkeypatch.delenv("SLOWONLY_ZOO_LOCK", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def _cached_entry(server, tmp_path, seed):
    ckpt = write_tiny_checkpoint(tmp_path, seed=seed)
    path = "/" + upstream_url(ckpt.name)[len(UPSTREAM_PREFIX) :]
    entry = make_entry(ckpt, url=server.add(path, ckpt.read_bytes()))
    fetch_weights_report(entry)
    return ckpt, path, entry


def _edit_lock(lock, name, **changes):
    data = json.loads(lock.read_text(encoding="utf-8"))
    data["models"][name].update(changes)
    lock.write_text(json.dumps(data), encoding="utf-8")


def test_lock_command_writes_full_hashes_and_sizes_and_a_matching_lock_loads(server, tmp_path, monkeypatch, capsys):
    ckpt, path, entry = _cached_entry(server, tmp_path, seed=41)
    lock = tmp_path / "weights.lock"
    assert cli.main(["lock", entry.name, "--out", str(lock)]) == 0
    data = json.loads(lock.read_text(encoding="utf-8"))
    assert data == {
        "format": 1,
        "models": {entry.name: {"filename": ckpt.name, "sha256": sha256_file(ckpt), "size": ckpt.stat().st_size}},
    }
    monkeypatch.setenv("SLOWONLY_ZOO_LOCK", str(lock))
    assert fetch_weights_report(entry, verify=True).from_cache
    cache.remove_entry(entry.name)  # a download under the lock verifies against it
    assert not fetch_weights_report(entry).from_cache and len(server.gets(path)) == 2


def test_wrong_hash_in_the_lock_is_refused_for_load_and_download(server, tmp_path, monkeypatch):
    ckpt, _, entry = _cached_entry(server, tmp_path, seed=42)
    lock = tmp_path / "weights.lock"
    assert cli.main(["lock", entry.name, "--out", str(lock)]) == 0
    wrong = sha256_file(ckpt)[:8] + "0" * 56
    _edit_lock(lock, entry.name, sha256=wrong)
    monkeypatch.setenv("SLOWONLY_ZOO_LOCK", str(lock))
    with pytest.raises(WeightsNotFoundError) as info:
        fetch_weights_report(entry)
    assert wrong in str(info.value) and sha256_file(ckpt) in str(info.value)
    assert not cache.check_cached(entry.name).ok


def test_wrong_size_in_the_lock_is_refused(server, tmp_path, monkeypatch):
    ckpt, path, entry = _cached_entry(server, tmp_path, seed=43)
    lock = tmp_path / "weights.lock"
    assert cli.main(["lock", entry.name, "--out", str(lock)]) == 0
    _edit_lock(lock, entry.name, size=ckpt.stat().st_size + 1)
    server.add(path, b"gone")  # so only the cached copy could answer, and its size is not the locked one
    monkeypatch.setenv("SLOWONLY_ZOO_LOCK", str(lock))
    with pytest.raises(WeightsNotFoundError) as info:
        fetch_weights_report(entry)
    assert f"{ckpt.stat().st_size + 1} bytes are pinned" in str(info.value)


def test_a_model_the_lock_does_not_list_is_refused_also_with_the_lock_flag(server, tmp_path, capsys):
    _, _, listed = _cached_entry(server, tmp_path, seed=44)
    (tmp_path / "other").mkdir()
    _, _, other = _cached_entry(server, tmp_path / "other", seed=45)
    lock = tmp_path / "weights.lock"
    assert cli.main(["lock", listed.name, "--out", str(lock)]) == 0
    capsys.readouterr()
    assert cli.main(["download", other.name, "--lock", str(lock)]) != 0
    err = capsys.readouterr()
    assert f"{other.name!r} is not listed in the lock file {lock}" in err.out + err.err
    assert cli.main(["download", listed.name, "--lock", str(lock)]) == 0
    from slowonly_zoo import config

    assert config.lock_file() is None  # --lock lasts one command
    with pytest.raises(WeightsFileError, match="not listed in the lock file"):
        config.set_lock_file(lock)
        try:
            fetch_weights_report(other)
        finally:
            config.set_lock_file(None)
