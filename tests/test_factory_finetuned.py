"""``create_model(name, checkpoint_path=<fine-tune>)`` without ``num_classes``: the head size the trainer records
in the checkpoint (``num_classes`` metadata, slowonly_zoo/training/checkpoints.py) is built and loaded strictly;
without that record, or with tensors that disagree with it, the load stays a strict-load error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from support import scratch_dir

import slowonly_zoo
from slowonly_zoo.errors import CheckpointMismatchError
from slowonly_zoo.factory import build_architecture
from slowonly_zoo.index import get_model_info
from slowonly_zoo.training.checkpoints import CheckpointMeta, WorkDir
from slowonly_zoo.weights.checkpoint import save_safetensors

ENTRY = "slowonly_r50_8x8x1_k400"  # a 400-way entry
NAMES = ("juggling", "unicycling", "yoyo")


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory) -> Iterator[tuple[dict[str, torch.Tensor], tuple]]:
    """A 3-way fine-tune as the trainer saves it (.safetensors + upstream-layout .pth, class names, head size)."""
    torch.manual_seed(0)
    state = build_architecture(get_model_info(ENTRY), num_classes=3).state_dict()
    with scratch_dir(tmp_path_factory, "work") as work:
        yield state, WorkDir(work).save_epoch(state, CheckpointMeta(ENTRY, 1, 10, 3, NAMES))


def test_recorded_head_size_is_built_without_num_classes(finetuned):
    state, files = finetuned
    for path in files:
        model = slowonly_zoo.create_model(ENTRY, checkpoint_path=path)
        assert model.num_classes == 3, path
        assert model.pretrained_cfg["label_names"] == NAMES
        loaded = model.state_dict()
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state), path


def test_explicit_num_classes_still_replaces_the_head(finetuned):
    state, (safetensors_file, _) = finetuned
    model = slowonly_zoo.create_model(ENTRY, checkpoint_path=safetensors_file, num_classes=5)
    assert model.num_classes == 5 and model.pretrained_cfg["label_names"] is None
    assert torch.equal(model.state_dict()["backbone.stem.conv.weight"], state["backbone.stem.conv.weight"])


def test_without_a_recorded_head_size_the_load_stays_strict(finetuned, tmp_path):
    state, _ = finetuned
    bare = tmp_path / "bare.safetensors"
    save_safetensors(state, bare, {})  # a 3-way head, nothing recorded: the entry's 400-way model refuses it
    with pytest.raises(CheckpointMismatchError):
        slowonly_zoo.create_model(ENTRY, checkpoint_path=bare)


def test_a_record_that_disagrees_with_the_tensors_is_an_error(finetuned, tmp_path):
    state, _ = finetuned
    wrong = tmp_path / "wrong.safetensors"
    save_safetensors(state, wrong, {"num_classes": "7"})
    with pytest.raises(CheckpointMismatchError):
        slowonly_zoo.create_model(ENTRY, checkpoint_path=wrong)
    missing = tmp_path / "missing.safetensors"
    partial = {k: v for k, v in state.items() if k != "backbone.stem.conv.weight"}
    save_safetensors(partial, missing, {"num_classes": "3"})  # the head matches; a backbone tensor is missing
    with pytest.raises(CheckpointMismatchError):
        slowonly_zoo.create_model(ENTRY, checkpoint_path=missing)
    bad = tmp_path / "bad.safetensors"
    save_safetensors(state, bad, {"num_classes": "three"})
    with pytest.raises(CheckpointMismatchError, match="non-negative integer"):
        slowonly_zoo.create_model(ENTRY, checkpoint_path=bad)
