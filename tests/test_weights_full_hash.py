"""Full-sha256 pins (README "Getting the weights"): an index entry may carry the full sha256 of its checkpoint,
which wins over the 8-hex prefix in its file name; an entry with no hash at all (FAIR's files) is pinned on its
first download (trust on first use). Real HTTP on 127.0.0.1 (tests/loopback_server.py) serving real upstream-format
checkpoint files; a file that matches the prefix but not the full hash, or differs from the first-use pin, is
refused, naming both hashes.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import logging
from pathlib import Path

import pytest
import torch
from support import KEYS_DIR, require_shared
from weights_helpers import make_entry, upstream_url, write_tiny_checkpoint

from slowonly_zoo import create_model
from slowonly_zoo.errors import ModelIndexError
from slowonly_zoo.index import get_model_info, register_model_entry
from slowonly_zoo.index.schema import entry_from_index, entry_to_index
from slowonly_zoo.weights import cache, pins
from slowonly_zoo.weights.hashing import sha256_file
from slowonly_zoo.weights.sources import UPSTREAM_PREFIX, WeightsNotFoundError, fetch_weights_report
from slowonly_zoo.weights.transfer import import_files


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setenv("SLOWONLY_ZOO_RETRIES", "0")
    monkeypatch.setenv("SLOWONLY_ZOO_TIMEOUT", "5")
    monkeypatch.setenv("SLOWONLY_ZOO_PROGRESS", "0")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def _other_full_hash(real: str) -> str:
    """A full sha256 sharing ``real``'s 8-hex prefix but differing after it (what a forged prefix match gives)."""
    tail = "".join("0" if c != "0" else "1" for c in real[8:])
    return real[:8] + tail


def _pinned_entry(ckpt, url, full):
    entry = make_entry(ckpt, url=url, register=False)
    assert entry.checkpoint is not None
    return register_model_entry(
        dataclasses.replace(entry, checkpoint=dataclasses.replace(entry.checkpoint, sha256=full))
    )


def _serve(server, ckpt):
    path = "/" + upstream_url(ckpt.name)[len(UPSTREAM_PREFIX) :]
    return path, server.add(path, ckpt.read_bytes())


def test_download_matching_the_full_pin_is_cached_and_checked(server, tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path, seed=31)
    real = sha256_file(ckpt)
    _, url = _serve(server, ckpt)
    entry = _pinned_entry(ckpt, url, real)
    result = fetch_weights_report(entry)
    assert not result.from_cache and result.record.original_sha256 == real
    assert fetch_weights_report(entry, verify=True).from_cache
    # A cached copy converted from another file of the same prefix is not valid for the pinned entry.
    check = cache.check_cached(entry.name, source_sha256=_other_full_hash(real))
    assert not check.ok and real in check.problem and _other_full_hash(real) in check.problem


def test_download_matching_only_the_prefix_is_refused_naming_both_hashes(server, tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path, seed=32)
    real = sha256_file(ckpt)
    pinned = _other_full_hash(real)
    path, url = _serve(server, ckpt)
    entry = _pinned_entry(ckpt, url, pinned)
    with pytest.raises(WeightsNotFoundError) as info:
        fetch_weights_report(entry)
    assert real in str(info.value) and pinned in str(info.value)
    assert len(server.gets(path)) == 1
    assert not cache.check_cached(entry.name).ok
    assert not list((cache.cache_root() / "downloads").glob("*.pth"))


def test_import_matching_only_the_prefix_is_refused_naming_both_hashes(tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path, seed=33)
    real = sha256_file(ckpt)
    pinned = _other_full_hash(real)
    entry = _pinned_entry(ckpt, None, pinned)
    (result,) = import_files([ckpt])
    assert not result.ok and real in result.message and pinned in result.message
    assert not cache.check_cached(entry.name).ok


def test_index_schema_round_trips_and_validates_the_full_hash(tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path, seed=34)
    real = sha256_file(ckpt)
    entry = make_entry(ckpt, register=False)
    assert entry.checkpoint is not None
    pinned = dataclasses.replace(entry, checkpoint=dataclasses.replace(entry.checkpoint, sha256=real))
    data = entry_to_index(pinned)
    assert data["Checkpoint"]["SHA256"] == real
    assert "SHA256" not in entry_to_index(entry)["Checkpoint"]  # written only where set
    assert entry_from_index(data, "test").checkpoint.sha256 == real
    for bad, why in ((real.upper(), "64 lowercase hex"), (real[:63], "64 lowercase hex"), ("0" * 64, "Prefix")):
        wrong = dataclasses.replace(entry, checkpoint=dataclasses.replace(entry.checkpoint, sha256=bad))
        with pytest.raises(ModelIndexError, match=why):
            register_model_entry(wrong)


# ------------------------------------------------------------------------------------------------------
# FAIR-format entries (no hash in the file name): pinned on first use
# ------------------------------------------------------------------------------------------------------

FAIR_BASE = "slow_r50_8x8_k400_pytorchvideo"
_fair_count = iter(range(1000))


def _fair_entry(server, data: bytes):
    """A copy of a FAIR pytorchvideo entry (no hash pinned in the index) whose file is served on loopback."""
    base = get_model_info(FAIR_BASE)
    assert base.checkpoint is not None and base.checkpoint.sha256_prefix is None and base.checkpoint.sha256 is None
    name = f"test_fair_pin_{next(_fair_count)}"
    path = f"/pytorchvideo/{name}/{base.checkpoint.filename}"
    url = server.add(path, data)
    checkpoint = dataclasses.replace(base.checkpoint, url=url, alternate_urls=(), hf_hub_id=None)
    return path, register_model_entry(dataclasses.replace(base, name=name, aliases=(), checkpoint=checkpoint))


def _tiny_pyth(seed: int) -> bytes:
    """A small pytorchvideo-layout ``.pyth`` (two stem tensors; enough to convert, not to build a model)."""
    g = torch.Generator().manual_seed(seed)
    state = {"blocks.0.conv.weight": torch.randn(64, 3, 1, 7, 7, generator=g), "blocks.0.norm.weight": torch.ones(64)}
    buf = io.BytesIO()
    torch.save({"model_state": state, "epoch": 1}, buf)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_first_download_is_pinned_and_later_loads_check_it(server, caplog):
    data = _tiny_pyth(1)
    path, entry = _fair_entry(server, data)
    with caplog.at_level(logging.WARNING):
        result = fetch_weights_report(entry)
    assert not result.from_cache and result.record.original_sha256 == _sha(data)
    pin = pins.read_pin(entry.name)
    assert pin is not None and pin.sha256 == _sha(data) and pin.size == len(data)
    assert result.record.original_size == len(data)
    assert "pinned on first use (trust on first use)" in caplog.text and _sha(data) in caplog.text
    assert fetch_weights_report(entry, verify=True).from_cache and len(server.gets(path)) == 1

    # A cache wipe keeps the pin: the same bytes download again and verify against it.
    cache.remove_entry(entry.name)
    assert not fetch_weights_report(entry).from_cache and pins.read_pin(entry.name) == pin


def test_a_file_served_differently_after_the_pin_is_refused(server):
    first, second = _tiny_pyth(2), _tiny_pyth(3)
    path, entry = _fair_entry(server, first)
    fetch_weights_report(entry)
    cache.remove_entry(entry.name)
    server.add(path, second)
    with pytest.raises(WeightsNotFoundError) as info:
        fetch_weights_report(entry)
    text = str(info.value)
    assert entry.checkpoint.filename in text and _sha(first) in text and _sha(second) in text
    assert not cache.check_cached(entry.name).ok and pins.read_pin(entry.name).sha256 == _sha(first)


def test_a_replaced_cached_copy_is_refused(server, tmp_path):
    first, second = _tiny_pyth(4), _tiny_pyth(5)
    path, entry = _fair_entry(server, first)
    fetch_weights_report(entry)
    # Someone puts the conversion of another file into the cache under this name (record and all).
    other = tmp_path / entry.checkpoint.filename
    other.write_bytes(second)
    from slowonly_zoo.weights.checkpoint import read_upstream_checkpoint

    cache.store_state_dict(
        entry.name,
        read_upstream_checkpoint(other),
        source=str(other),
        source_kind="import",
        original_filename=other.name,
        original_sha256=_sha(second),
        original_size=len(second),
    )
    server.add(path, second)  # and the host now serves that file too: nothing verifies, so nothing loads
    with pytest.raises(WeightsNotFoundError) as info:
        fetch_weights_report(entry)
    text = str(info.value)
    assert str(cache.weights_path(entry.name)) in text and _sha(first) in text and _sha(second) in text


def _pytorchvideo_file(folder: Path, num_classes: int) -> tuple[Path, dict[str, torch.Tensor]]:
    """A random full Slow R50 in pytorchvideo's layout (key map ../shared/reference/keys), and its zoo state."""
    from slowonly_zoo.models import SlowOnly

    zoo = SlowOnly(50, num_classes).state_dict()
    gen = torch.Generator().manual_seed(7)
    zoo = {k: (torch.randn(v.shape, generator=gen) if v.is_floating_point() else v) for k, v in zoo.items()}
    with require_shared(KEYS_DIR / "fair_slow_r50_key_map.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    path = folder / "SLOW_8x8_R50.pyth"
    torch.save({"model_state": {r["pytorchvideo_key"]: zoo[r["slowonly_zoo_key"]] for r in rows}}, path)
    return path, zoo


def test_pretrained_true_works_for_a_fair_entry(server, tmp_path):
    base = get_model_info(FAIR_BASE)
    ckpt, want = _pytorchvideo_file(tmp_path, base.num_classes)
    _, entry = _fair_entry(server, ckpt.read_bytes())
    model = create_model(entry.name, pretrained=True)
    got = model.state_dict()
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert pins.read_pin(entry.name).sha256 == sha256_file(ckpt)
