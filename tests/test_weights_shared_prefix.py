"""Two index entries whose checkpoint files share an 8-hex sha256 prefix (mmaction2 1.x names its ImageNet and its
non-local 8x8x1 K400 files both ``...-df42dc84.pth``): one file must never satisfy both; the full upstream file
name decides, and a renamed file is refused."""

from __future__ import annotations

import dataclasses
import shutil

from weights_helpers import make_entry, write_tiny_checkpoint

import slowonly_zoo
from slowonly_zoo.index import register_model_entry
from slowonly_zoo.weights import cache
from slowonly_zoo.weights.transfer import import_files


def _twin_entries(tmp_path):
    """A tiny checkpoint and two entries whose checkpoints carry its hash prefix under different file names."""
    original = write_tiny_checkpoint(tmp_path / "made", seed=31)
    first = make_entry(original)
    prefix = first.checkpoint.sha256_prefix
    other_name = f"slowonly_twin_r50_8x8x1_20240101-{prefix}.pth"
    second = register_model_entry(
        dataclasses.replace(
            first,
            name=first.name + "_twin",
            checkpoint=dataclasses.replace(
                first.checkpoint, filename=other_name, url=first.checkpoint.url.rsplit("/", 1)[0] + "/" + other_name
            ),
        )
    )
    return original, first, second


def test_the_real_index_has_two_files_with_one_prefix() -> None:
    """The situation these tests guard: two 1.x entries, one prefix, two file names and URLs."""
    imagenet = slowonly_zoo.get_model_info("slowonly_r50_8x8x1_k400_in1k_mm1x").checkpoint
    non_local = slowonly_zoo.get_model_info("slowonly_r50_nl_8x8x1_k400_mm1x").checkpoint
    assert imagenet.sha256_prefix == non_local.sha256_prefix == "df42dc84"
    assert imagenet.filename != non_local.filename and imagenet.url != non_local.url


def test_a_file_named_like_one_entry_goes_to_that_entry_only(tmp_path) -> None:
    original, first, second = _twin_entries(tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(original, inbox / second.checkpoint.filename)

    (result,) = import_files([inbox / second.checkpoint.filename])
    assert result.status == "imported" and result.names == (second.name,), result
    assert cache.check_cached(second.name, full=True).ok
    assert not cache.check_cached(first.name).ok  # the shared prefix did not make it the other entry's file


def test_a_renamed_file_with_a_shared_prefix_is_refused(tmp_path) -> None:
    original, first, second = _twin_entries(tmp_path)
    renamed = tmp_path / "my_download.pth"
    shutil.copy(original, renamed)

    (result,) = import_files([renamed])
    assert result.status == "ambiguous" and not result.ok
    assert set(result.names) == {first.name, second.name}
    assert first.checkpoint.filename in result.message and second.checkpoint.filename in result.message
    assert not cache.check_cached(first.name).ok and not cache.check_cached(second.name).ok


def test_a_prefix_no_other_entry_shares_still_matches_a_renamed_file(tmp_path) -> None:
    """Without a twin, a renamed file is still recognised by its hash (the existing behaviour)."""
    original = write_tiny_checkpoint(tmp_path / "made", seed=32)
    entry = make_entry(original)
    renamed = tmp_path / "renamed.pth"
    shutil.copy(original, renamed)
    (result,) = import_files([renamed])
    assert result.status == "imported" and result.names == (entry.name,)
