"""import / download / export, and the Hugging Face Hub source.

The Hub is mimicked by the loopback HTTP server (tests/loopback_server.py), answering the same URLs
``huggingface_hub.hf_hub_download`` asks for (``<HF_ENDPOINT>/<repo>/resolve/<revision>/<file>``, with the
``X-Repo-Commit`` and ``ETag`` headers the client requires); the real ``huggingface_hub`` client and cache are
used against it. Checkpoints are real upstream-format files; the export round trip uses a full-size
randomised R50 checkpoint and loads it into the real model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from loopback_server import Fault, LoopbackServer
from weights_helpers import make_entry, read_tensors, write_tiny_checkpoint

from slowonly_zoo.errors import WeightsNotFoundError
from slowonly_zoo.weights import cache
from slowonly_zoo.weights.checkpoint import read_state_dict, read_upstream_checkpoint
from slowonly_zoo.weights.hub_export import export
from slowonly_zoo.weights.sources import fetch_weights_report
from slowonly_zoo.weights.transfer import download, import_files


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setenv("SLOWONLY_ZOO_RETRIES", "1")
    monkeypatch.setenv("SLOWONLY_ZOO_BACKOFF", "0.01")
    monkeypatch.setenv("SLOWONLY_ZOO_PROGRESS", "0")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def _assert_bit_identical(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        assert torch.equal(got[key].view(-1).view(torch.uint8), value.reshape(-1).view(torch.uint8)), key


# ------------------------------------------------------------------------------------------------- import


def test_import_recognises_named_renamed_damaged_and_unknown_files(tmp_path, server):
    a = write_tiny_checkpoint(tmp_path / "made", seed=11)
    b = write_tiny_checkpoint(tmp_path / "made", seed=12)
    c = write_tiny_checkpoint(tmp_path / "made", seed=13)
    entry_a, entry_b = (
        make_entry(a, url=server.url("/gone/" + a.name)),
        make_entry(b, url=server.url("/gone/" + b.name)),
    )
    entry_c = make_entry(c, url=server.url("/gone/" + c.name))

    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    shutil.copy(a, inbox / a.name)  # upstream name
    shutil.copy(b, inbox / "sub" / "my_model_final.pth")  # renamed: only the hash can tell
    damaged = bytearray(c.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    (inbox / c.name).write_bytes(bytes(damaged))  # upstream name, wrong bytes
    unknown = write_tiny_checkpoint(inbox, seed=99)  # well-formed but in no index entry
    (inbox / "notes.txt").write_text("not a checkpoint")  # ignored in a folder walk

    results = {r.path.name: r for r in import_files([inbox, tmp_path / "missing.pth"])}
    assert results[a.name].status == "imported" and results[a.name].names == (entry_a.name,)
    assert "by name and sha256" in results[a.name].message
    assert results["my_model_final.pth"].status == "imported" and results["my_model_final.pth"].names == (entry_b.name,)
    assert "renamed file" in results["my_model_final.pth"].message
    assert results[c.name].status == "mismatch" and entry_c.name in results[c.name].message
    assert results[unknown.name].status == "unknown" and "SLOWONLY_ZOO_EXTRA_INDEX" in results[unknown.name].message
    assert results["missing.pth"].status == "error" and "no such file" in results["missing.pth"].message
    assert "notes.txt" not in results

    for entry, original in ((entry_a, a), (entry_b, b)):
        check = cache.check_cached(entry.name, full=True)
        assert check.ok and check.record.source_kind == "import"
        assert check.record.original_sha256 == hashlib.sha256(original.read_bytes()).hexdigest()
        _assert_bit_identical(read_tensors(check.path), read_upstream_checkpoint(original))
    assert not cache.check_cached(entry_c.name).ok

    # Imported weights serve fetch_weights (its URLs are dead) and offline use; importing again is a no-op.
    assert fetch_weights_report(entry_b, offline=True).from_cache
    assert import_files([inbox / a.name])[0].status == "already-cached"
    assert server.gets() == []


def test_download_reports_per_model(tmp_path, server):
    ckpt = write_tiny_checkpoint(tmp_path, seed=21)
    good = make_entry(ckpt, url=server.add("/files/" + ckpt.name, ckpt.read_bytes()))
    absent = write_tiny_checkpoint(tmp_path / "other", seed=22)
    bad = make_entry(absent, url=server.url("/files/" + absent.name))  # not served: 404

    reports = download([good.name, bad.name, "slowonly_no_such_model"])
    assert [r.status for r in reports] == ["fetched", "failed", "failed"]
    assert reports[0].source == server.url("/files/" + ckpt.name) and reports[0].path.is_file()
    assert "HTTP 404" in reports[1].message and "slowonly-zoo import" in reports[1].message
    assert "slowonly_no_such_model" in reports[2].message

    # Damage the cached file without changing its size: the next use re-hashes the changed file and repairs it.
    path = reports[0].path
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    again = download([good.name])
    assert again[0].status == "repaired" and "differs from recorded" in again[0].message
    assert [r.status for r in download([good.name], verify=True)] == ["verified"]
    assert len(server.gets("/files/" + ckpt.name)) == 2

    # Damage in place that keeps inode, size and mtime (bit rot): this process hashed the file already, so the
    # ordinary check trusts it; --verify is the deep check and re-hashes whatever this process has seen.
    stat = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        last = fh.read(1)
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([last[0] ^ 0xFF]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert [r.status for r in download([good.name])] == ["cached"]
    assert [r.status for r in download([good.name], verify=True)] == ["repaired"]
    assert len(server.gets("/files/" + ckpt.name)) == 3


# ------------------------------------------------------------------------------------------------- export


def test_export_round_trip_full_r50_is_bit_identical(tmp_path):
    """A full-size (randomised) R50 upstream file: import under a new name, export, reload, load the model."""
    from upstream_checkpoints import write_upstream_checkpoint

    from slowonly_zoo.factory import build_architecture
    from slowonly_zoo.weights.convert import load_state_dict_strict

    torch.set_num_threads(1)
    original = write_upstream_checkpoint(tmp_path / "orig", "slowonly_r50_8x8x1_k400", seed=5)
    entry = make_entry(original)
    renamed = tmp_path / "inbox" / "downloaded_from_somewhere.pth"
    renamed.parent.mkdir()
    original.rename(renamed)
    [result] = import_files([renamed])
    assert result.status == "imported" and result.names == (entry.name,)

    out = tmp_path / "export"
    exported = export(entry.name, out)  # from the cache
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    want = read_upstream_checkpoint(renamed)
    got = read_state_dict(out)  # the export folder, as create_model(checkpoint_path=DIR) reads it
    _assert_bit_identical(got, want)
    meta = cache.read_safetensors_metadata(exported.weights)
    assert meta[cache.META_SOURCE_SHA256] == hashlib.sha256(renamed.read_bytes()).hexdigest() == exported.source_sha256
    assert meta[cache.META_NAME] == entry.name

    config = json.loads(exported.config.read_text())
    assert config["architecture"] == "SlowOnly" and config["num_classes"] == 400 and len(config["labels"]) == 400
    assert config["model_args"] == {
        "depth": 50,
        "num_classes": 400,
        "in_channels": 3,
        "non_local": False,
        "with_pool1": True,
    }
    assert config["test_protocol"]["num_clips"] == 10 and config["test_protocol"]["num_views"] == 30
    assert config["reported_results"][0]["top1"] == 74.93 and config["reported_results"][0]["top5"] == 91.92
    assert config["source_checkpoint"]["sha256"] == exported.source_sha256
    card = exported.readme.read_text()
    for needle in (
        "| Kinetics-400 | 74.93 | 91.92 |",
        exported.source_sha256,
        "@inproceedings{feichtenhofer2019slowfast",
        "10 clips of 8 frames",
        "three crops of 256x256",
        entry.checkpoint.filename,
    ):
        assert needle in card, needle

    model = build_architecture(entry)
    load_state_dict_strict(model, got)  # every key and shape of the real model is there

    # Exporting straight from the .pth gives the same tensors and metadata.
    again = export(entry.name, tmp_path / "export2", weights_path=renamed)
    _assert_bit_identical(read_tensors(again.weights), want)
    assert again.source_sha256 == exported.source_sha256


def test_export_refuses_weights_of_another_checkpoint(tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path, seed=31)
    other = write_tiny_checkpoint(tmp_path, seed=32)
    entry = make_entry(ckpt)
    with pytest.raises(ValueError, match="register your own entry"):
        export(entry.name, tmp_path / "out", weights_path=other)
    assert not (tmp_path / "out" / "model.safetensors").exists()


# ------------------------------------------------------------------------------------------------- Hub


def _serve_hub_repo(server: LoopbackServer, repo: str, revision: str, folder: Path) -> str:
    """Serve an export folder the way the Hub serves a repository; returns the commit hash it reports."""
    commit = hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()
    for name in ("config.json", "model.safetensors"):
        data = (folder / name).read_bytes()
        server.add(
            f"/{repo}/resolve/{revision}/{name}",
            data,
            headers={"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'},
        )
    return commit


def test_hub_source_via_loopback_hub(tmp_path, server, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", server.base_url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    ckpt = write_tiny_checkpoint(tmp_path, seed=41)
    dead = server.url("/upstream/" + ckpt.name)
    server.add("/upstream/" + ckpt.name, b"", faults=[Fault(status=404)])

    # 0. A Hub file only claims its source sha256: without SLOWONLY_ZOO_TRUST_CLAIMS it is "unverified", refused.
    entry = make_entry(ckpt, url=dead, hf_hub_id="zoo-test/pinned@v1.0")
    exported = export(entry.name, tmp_path / "repo", weights_path=ckpt)
    commit = _serve_hub_repo(server, "zoo-test/pinned", "v1.0", exported.out_dir)
    with pytest.raises(WeightsNotFoundError) as refused:
        fetch_weights_report(entry)
    hf_attempt = next(a for a in refused.value.attempts if a.kind == "huggingface")
    assert hf_attempt.error.startswith("ValueError: unverified: model.safetensors in zoo-test/pinned claims")
    assert not cache.weights_path(entry.name).exists()

    # 1. hf_hub_id with a pinned revision, claims trusted on request.
    monkeypatch.setenv("SLOWONLY_ZOO_TRUST_CLAIMS", "1")
    server.clear_log()
    result = fetch_weights_report(entry)
    assert result.record.source == f"hf://zoo-test/pinned@{commit}" and result.record.source_kind == "hf"
    assert result.attempts[-1].kind == "huggingface" and result.attempts[-1].error is None
    _assert_bit_identical(read_tensors(result.path), read_upstream_checkpoint(ckpt))
    assert cache.check_cached(entry.name, full=True).ok
    assert server.gets("/upstream/" + ckpt.name) == []

    # 2. Offline: files already in the Hugging Face cache count as local (our cache entry removed first).
    cache.remove_entry(entry.name)
    server.clear_log()
    monkeypatch.setenv("SLOWONLY_ZOO_OFFLINE", "1")
    offline = fetch_weights_report(entry)
    assert offline.attempts[-1].kind == "huggingface-cache" and server.requests() == []
    monkeypatch.delenv("SLOWONLY_ZOO_OFFLINE")

    # 3. SLOWONLY_ZOO_HF_PREFIX/<name>, serving weights converted from a *different* checkpoint: rejected,
    #    and the chain goes on to the next source (a local mirror holding the right file).
    other = write_tiny_checkpoint(tmp_path / "other", seed=42)
    entry2 = make_entry(ckpt, url=dead)
    wrong = export(make_entry(other).name, tmp_path / "wrong", weights_path=other)
    _serve_hub_repo(server, f"zoo-org/{entry2.name}", "main", wrong.out_dir)
    monkeypatch.setenv("SLOWONLY_ZOO_HF_PREFIX", "zoo-org")
    monkeypatch.setenv("SLOWONLY_ZOO_MIRRORS", str(ckpt.parent))
    result2 = fetch_weights_report(entry2)
    hf_attempt = next(a for a in result2.attempts if a.kind == "huggingface")
    assert hf_attempt.location == f"zoo-org/{entry2.name}" and "converted from a file with sha256" in hf_attempt.error
    assert result2.record.source_kind == "mirror"
    _assert_bit_identical(read_tensors(result2.path), read_upstream_checkpoint(ckpt))

    # 4. A repository that does not exist on the "Hub": a clear reason, then the next source.
    entry3 = make_entry(ckpt, url=dead, hf_hub_id="zoo-test/absent")
    result3 = fetch_weights_report(entry3)
    hf_attempt = next(a for a in result3.attempts if a.kind == "huggingface")
    assert hf_attempt.location == "zoo-test/absent" and hf_attempt.error


def test_import_an_export_folder(tmp_path):
    """An export folder (e.g. downloaded from the Hub by hand) only claims its source sha256: 'unverified' and not
    cached, unless trust_claims=True, which imports it under that claim."""
    ckpt = write_tiny_checkpoint(tmp_path, seed=51)
    entry = make_entry(ckpt)
    exported = export(entry.name, tmp_path / "folder", weights_path=ckpt)
    [refused] = import_files([exported.out_dir])
    assert refused.status == "unverified" and not refused.ok and refused.names == (entry.name,)
    assert refused.message.startswith(f"unverified: claims to be converted from {ckpt.name}")
    assert "--trust-claims" in refused.message and not cache.check_cached(entry.name).ok
    [result] = import_files([exported.out_dir], trust_claims=True)
    assert result.status == "imported" and result.names == (entry.name,)
    assert "claims" in result.message and "not verified" in result.message
    assert cache.read_record(entry.name).source_kind == "import-claimed"
    check = cache.check_cached(entry.name, full=True)
    assert check.ok and check.record.original_sha256 == exported.source_sha256
    assert check.path.stat().st_ino != exported.weights.stat().st_ino  # a copy, not a link to the user's file
    _assert_bit_identical(read_tensors(check.path), read_upstream_checkpoint(ckpt))


def test_weights_package_names_its_public_api_and_imports_it_lazily():
    import subprocess
    import sys

    from slowonly_zoo import weights
    from slowonly_zoo.weights import hub_export, sources, transfer

    assert weights.export is hub_export.export and weights.import_files is transfer.import_files
    assert weights.fetch_weights is sources.fetch_weights
    assert all(getattr(weights, name) is not None for name in weights.__all__)
    code = "import sys, slowonly_zoo.weights; assert 'requests' not in sys.modules and 'filelock' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
