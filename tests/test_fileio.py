"""slowonly_zoo._fileio: the one atomic-write helper, and that every writer of the package uses it."""

from __future__ import annotations

import ast
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from support import REPO_ROOT

from slowonly_zoo import _fileio
from slowonly_zoo._fileio import (
    FILE_MODE,
    atomic_replace,
    atomic_write_bytes,
    atomic_write_text,
    commit_file,
    is_temp_file,
)

PACKAGE = REPO_ROOT / "slowonly_zoo"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_file_mode_follows_the_umask_not_mkstemps_0600():
    assert 0o666 & ~_current_umask() == FILE_MODE


def test_write_text_and_bytes_replace_the_old_content(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old", encoding="utf-8")
    assert atomic_write_text(path, '{"é": 1}\n') == path
    assert json.loads(path.read_text(encoding="utf-8")) == {"é": 1}
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert _mode(path) == FILE_MODE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]  # no temporary file left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "scores.npz"
    path.write_bytes(b"previous")
    seen: list[Path] = []
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_replace(path) as tmp:
        seen.append(tmp)
        tmp.write_bytes(b"half")
        raise RuntimeError("disk on fire")
    assert path.read_bytes() == b"previous"
    assert not seen[0].exists()
    assert [p.name for p in tmp_path.iterdir()] == ["scores.npz"]


def test_temporary_files_are_named_for_a_sweep(tmp_path):
    path = tmp_path / "slowonly_r50_8x8x1_k400.safetensors"
    with atomic_replace(path) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(f".{path.name}{_fileio.TEMP_MARKER}")
        assert is_temp_file(tmp)
        with tmp.open("wb") as fh:  # a writer that wants a file (numpy, safetensors)
            np.save(fh, np.arange(3))
        assert not path.exists()  # nothing in place before the block ends
    assert np.load(path).tolist() == [0, 1, 2]
    assert not is_temp_file(path) and not is_temp_file(tmp_path / "x.slowonly-tmp-")  # no leading dot


def test_commit_fsyncs_the_file_and_its_folder(tmp_path, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(_fileio.os, "fsync", recording_fsync)
    src = tmp_path / "part"
    src.write_bytes(b"payload")
    os.chmod(src, 0o600)
    commit_file(src, tmp_path / "final")
    assert synced == ["file", "dir"]
    assert (tmp_path / "final").read_bytes() == b"payload" and not src.exists()
    assert _mode(tmp_path / "final") == FILE_MODE


def test_cache_and_export_files_get_the_umask_mode(tmp_path):
    from slowonly_zoo.weights import cache

    record = cache.store_state_dict(
        "fileio_probe",
        {"w": torch.ones(2)},
        source="test",
        source_kind="import",
        original_filename="probe.pth",
        original_sha256="0" * 64,
        original_size=1,
    )
    weights, rec = cache.weights_path("fileio_probe"), cache.record_path("fileio_probe")
    assert _mode(weights) == FILE_MODE and _mode(rec) == FILE_MODE
    assert record.size == weights.stat().st_size
    assert cache.check_cached("fileio_probe").ok
    assert not [p for p in weights.parent.iterdir() if is_temp_file(p)]


def test_the_cache_sweeps_temporaries_of_killed_processes_only():
    from slowonly_zoo.weights import cache

    folder = cache.cache_root() / "weights"
    folder.mkdir(parents=True)
    old, fresh = folder / ".a.safetensors.slowonly-tmp-abc123", folder / ".b.safetensors.slowonly-tmp-def456"
    keep = folder / "c.safetensors"
    for path in (old, fresh, keep):
        path.write_bytes(b"x")
    a_day_ago = os.stat(old).st_mtime - cache.STALE_TEMP_AGE - 60
    os.utime(old, (a_day_ago, a_day_ago))
    os.utime(keep, (a_day_ago, a_day_ago))
    assert cache.remove_stale_temp_files() == [old]
    assert sorted(p.name for p in folder.iterdir()) == sorted([fresh.name, keep.name])


def _calls(tree: ast.AST) -> set[str]:
    """``module.function`` of every call in ``tree`` on a plain name (``os.replace``, ``tempfile.mkstemp``), plus
    ``.rename`` for a method call of that name (``Path.rename``; ``str`` has none)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if isinstance(node.func.value, ast.Name):
                names.add(f"{node.func.value.id}.{node.func.attr}")
            if node.func.attr == "rename":
                names.add(".rename")
    return names


def test_no_module_writes_files_in_place_by_hand():
    """Renames into place, temporary files and permission bits live in _fileio only; every writer calls it."""
    forbidden = {"os.replace", "os.rename", ".rename", "tempfile.mkstemp", "tempfile.NamedTemporaryFile", "os.chmod"}
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name != "_fileio.py":
            found = _calls(ast.parse(path.read_text(encoding="utf-8"))) & forbidden
            if found:
                offenders[path.relative_to(REPO_ROOT).as_posix()] = sorted(found)
    # A copied (not hard-linked) cache file gets the umask mode by hand: a link must keep its source's bits.
    assert offenders == {"slowonly_zoo/weights/cache.py": ["os.chmod"]}


def test_one_weights_file_name_and_one_metadata_reader():
    """``model.safetensors`` / ``config.json`` are spelt once (weights/layout.py), and only layout.py reads a
    safetensors header's metadata; the other modules import both from there."""
    from slowonly_zoo.weights import cache, checkpoint, layout

    spelt = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        hits = [s for s in ('"model.safetensors"', '"config.json"', ".metadata()") if s in text]
        if hits:
            spelt[path.relative_to(REPO_ROOT).as_posix()] = hits
    assert spelt == {"slowonly_zoo/weights/layout.py": ['"model.safetensors"', '"config.json"', ".metadata()"]}
    assert cache.read_safetensors_metadata is checkpoint.read_safetensors_metadata is layout.read_safetensors_metadata
