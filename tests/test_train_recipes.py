"""Train recipes (``ModelEntry.train_recipe``) against the mmaction2 0.x configs they were written from.

Every recipe's config is read by mmcv 1.7.0's ``Config.fromfile`` from the mmaction2 0.24.1 wheel
(``mmaction/.mim/configs/recognition/slowonly/`` and ``data_benchmark/``) in the 0.x subprocess
(``tests/reference0x.py``). Upstream's own objects are then built from it, so defaults come from upstream's code,
not from this test: the lr hook as ``BaseRunner.register_lr_hook`` builds it, and every train and val pipeline op
through mmaction2's ``PIPELINES`` registry (``RandomResizedCrop``'s ranges, ``Flip``'s label map, ``Resize``'s
scale). The recipe must equal what those objects hold, field by field.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
from reference0x import CONFIGS_0X, run_reference_0x

import slowonly_zoo.index as ix
from slowonly_zoo.errors import ModelIndexError, RecipeError
from slowonly_zoo.index.recipes import INIT_IMAGENET, INIT_SCRATCH, TrainRecipe

CONFIG_PREFIX = "configs/recognition/slowonly/"
RECIPE_NAMES = sorted(n for n in ix.list_models() if ix.get_model_info(n).train_recipe is not None)

_READ_CONFIGS = """
from mmcv import Config
from mmcv.runner.hooks import HOOKS
from mmcv.utils import build_from_cfg
from mmaction.datasets import PIPELINES


def plain(value):
    # numpy arrays, tuples and ConfigDicts as plain Python values
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def op_facts(cfg):
    # the op as upstream builds it: its type and every attribute it set (defaults included)
    op = build_from_cfg(dict(cfg), PIPELINES)
    facts = {k: plain(v) for k, v in vars(op).items() if not k.startswith("_")}
    facts["type"] = type(op).__name__
    facts["config"] = plain(cfg)
    return facts


def lr_hook_facts(lr_config):
    # mmcv 1.7.0 BaseRunner.register_lr_hook: a lower-case policy is title-cased, then + 'LrUpdaterHook'
    cfg = dict(lr_config)
    policy = cfg.pop("policy")
    if policy == policy.lower():
        policy = policy.title()
    cfg["type"] = policy + "LrUpdaterHook"
    dropped = []
    if policy == "CosineAnnealing" and "step" in cfg:
        # a cosine config over a step _base_ keeps the base's `step`, which the cosine hook rejects (TypeError)
        dropped.append(("step", plain(cfg.pop("step"))))
    hook = build_from_cfg(cfg, HOOKS)
    facts = {k: plain(v) for k, v in vars(hook).items() if k in (
        "by_epoch", "warmup", "warmup_iters", "warmup_ratio", "warmup_by_epoch", "warmup_epochs", "step", "gamma",
        "min_lr", "min_lr_ratio")}
    facts["type"] = type(hook).__name__
    facts["dropped"] = dropped
    return facts


for rel, path in inputs["configs"].items():
    cfg = Config.fromfile(path)
    data = cfg.data
    outputs[rel] = dict(
        optimizer=plain(cfg.optimizer),
        optimizer_config=plain(cfg.optimizer_config),
        lr_hook=lr_hook_facts(cfg.lr_config),
        total_epochs=cfg.total_epochs,
        videos_per_gpu=data.videos_per_gpu,
        backbone=plain(cfg.model.backbone),
        cls_head=plain(cfg.model.cls_head),
        load_from=cfg.get("load_from"),
        resume_from=cfg.get("resume_from"),
        evaluation=plain(cfg.evaluation),
        checkpoint_config=plain(cfg.checkpoint_config),
        log_interval=cfg.log_config.interval,
        train_dataset={k: plain(v) for k, v in data.train.items() if k != "pipeline"},
        train_pipeline=[op_facts(op) for op in data.train.pipeline],
        val_pipeline=[op_facts(op) for op in data.val.pipeline],
    )
"""


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """What the 0.x code makes of every recipe's config, keyed by the recipe's ``config``."""
    configs = {}
    for name in RECIPE_NAMES:
        rel = ix.get_model_info(name).train_recipe.config  # type: ignore[union-attr]
        assert rel.startswith(CONFIG_PREFIX), (name, rel)
        configs[rel] = str(CONFIGS_0X / rel[len(CONFIG_PREFIX) :])
    return run_reference_0x(_READ_CONFIGS, tmp_path_factory.mktemp("recipes0x"), {"configs": configs})


def _recipe(name: str) -> TrainRecipe:
    recipe = ix.get_model_info(name).train_recipe
    assert recipe is not None
    return recipe


def _decode_ops(entry: ix.ModelEntry) -> tuple[list[str], list[str]]:
    """The op types around SampleFrames for the entry's data format (VideoDataset / RawframeDataset configs)."""
    assert entry.protocol is not None
    if entry.protocol.data_format == "video":
        return ["DecordInit"], ["DecordDecode"]
    return [], ["RawFrameDecode"]


def _norm_facts(recipe: TrainRecipe) -> dict[str, Any]:
    # mean/std as the config writes them (the op keeps float32 copies); the flow configs give no to_bgr
    given = {"type": "Normalize", "mean": list(recipe.mean), "std": list(recipe.std)}
    if recipe.mean != (128.0, 128.0):
        given["to_bgr"] = False
    return {"type": "Normalize", "config": given, "to_bgr": False, "adjust_magnitude": False}


def _pick(op: dict[str, Any], keys: dict[str, Any]) -> dict[str, Any]:
    return {k: op.get(k, "<absent>") for k in keys}


def _check_ops(where: str, got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [op["type"] for op in got] == [op["type"] for op in expected], where
    for i, (g, e) in enumerate(zip(got, expected)):
        assert _pick(g, e) == e, f"{where}: op {i} ({e['type']})"


def _expected_train_ops(entry: ix.ModelEntry, recipe: TrainRecipe) -> list[dict[str, Any]]:
    before, after = _decode_ops(entry)
    s = recipe.sampling
    ops: list[dict[str, Any]] = [{"type": t} for t in before]
    ops.append({"type": "SampleFrames", "clip_len": s.clip_len, "frame_interval": s.frame_interval,
                "num_clips": s.num_clips, "test_mode": False, "out_of_bound_opt": "loop",
                "temporal_jitter": False})  # fmt: skip
    ops += [{"type": t} for t in after]
    if recipe.resize_short is not None:  # Resize(scale=(-1, S)) keeps the aspect: scale (inf, S)
        ops.append({"type": "Resize", "scale": [math.inf, recipe.resize_short], "keep_ratio": True,
                    "interpolation": "bilinear"})  # fmt: skip
    ops.append({"type": "RandomResizedCrop", "area_range": list(recipe.crop.area),
                "aspect_ratio_range": list(recipe.crop.aspect)})  # fmt: skip
    ops.append({"type": "Resize", "scale": [recipe.out_size, recipe.out_size], "keep_ratio": False,
                "interpolation": "bilinear"})  # fmt: skip
    ops.append({"type": "Flip", "flip_ratio": recipe.flip_ratio, "direction": "horizontal",
                "flip_label_map": recipe.flip_labels or None})  # fmt: skip
    ops.append(_norm_facts(recipe))
    ops.append({"type": "FormatShape", "input_format": "NCTHW"})
    ops.append({"type": "Collect", "keys": ["imgs", "label"]})
    ops.append({"type": "ToTensor", "keys": ["imgs", "label"]})
    return ops


def _expected_val_ops(entry: ix.ModelEntry, recipe: TrainRecipe) -> list[dict[str, Any]]:
    before, after = _decode_ops(entry)
    s, v = recipe.sampling, recipe.val
    ops: list[dict[str, Any]] = [{"type": t} for t in before]
    ops.append({"type": "SampleFrames", "clip_len": s.clip_len, "frame_interval": s.frame_interval,
                "num_clips": v.num_clips, "test_mode": True})  # fmt: skip
    ops += [{"type": t} for t in after]
    if v.resize_short is not None:
        ops.append({"type": "Resize", "scale": [math.inf, v.resize_short], "keep_ratio": True})
    ops.append({"type": "CenterCrop", "crop_size": [v.crop_size, v.crop_size]})
    ops.append(_norm_facts(recipe))
    ops.append({"type": "FormatShape", "input_format": "NCTHW"})
    ops.append({"type": "Collect", "keys": ["imgs", "label"]})
    ops.append({"type": "ToTensor", "keys": ["imgs"]})
    return ops


def _expected_init(up: dict[str, Any]) -> str:
    """mmcv loads ``load_from`` after the backbone's own init, so it wins over ``pretrained``."""
    if up["load_from"]:
        owners = [
            n
            for n in ix.list_models()
            if (c := ix.get_model_info(n).checkpoint) is not None and c.url == up["load_from"]
        ]
        assert len(owners) == 1, f"load_from {up['load_from']} is not the checkpoint of exactly one entry: {owners}"
        return owners[0]
    pretrained = up["backbone"].get("pretrained")
    assert pretrained in (None, "torchvision://resnet50"), pretrained
    return INIT_SCRATCH if pretrained is None else INIT_IMAGENET


# --------------------------------------------------------------------------------------------------
# the recipes against the configs
# --------------------------------------------------------------------------------------------------


def test_every_model_but_the_fusion_has_a_recipe() -> None:
    assert len(RECIPE_NAMES) == 25
    for name in ix.list_models():
        entry = ix.get_model_info(name)
        if entry.provenance != "mmaction2-0.x":  # FAIR's entries record no recipe (trained with PySlowFast)
            assert entry.train_recipe is None, name
            continue
        assert (entry.train_recipe is None) == entry.is_ensemble, name
    omni = [n for n in RECIPE_NAMES if not _recipe(n).runnable]
    assert omni == ["slowonly_r101_8x8x1_k400_omni", "slowonly_r50_4x16x1_k400_omni"]
    for name in omni:
        assert "OmniSource" in (_recipe(name).note or "") and "cannot be rerun" in (_recipe(name).note or "")


@pytest.mark.slow  # the `upstream` fixture: one 0.x subprocess reading all 22 configs, ~10 s
@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_optimisation_equals_config(upstream, name: str) -> None:
    recipe = _recipe(name)
    up = upstream[recipe.config]
    opt = up["optimizer"]
    # mmcv's DefaultOptimizerConstructor without paramwise_cfg: one group, weight decay on every parameter
    assert opt == {"type": "SGD", "lr": recipe.lr, "momentum": recipe.momentum, "weight_decay": recipe.weight_decay}
    clip = up["optimizer_config"].get("grad_clip")
    if recipe.clip_max_norm is None:
        assert clip is None
    else:
        assert clip == {"max_norm": recipe.clip_max_norm, "norm_type": 2}
    assert up["total_epochs"] == recipe.epochs
    assert up["videos_per_gpu"] == recipe.videos_per_gpu and recipe.lr_gpus == 8
    assert up["cls_head"]["dropout_ratio"] == recipe.dropout
    assert _expected_init(up) == recipe.init
    assert up["resume_from"] is None


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_lr_policy_equals_the_built_hook(upstream, name: str) -> None:
    recipe = _recipe(name)
    hook = upstream[recipe.config]["lr_hook"]
    s = recipe.schedule
    assert hook["type"] == {"cosine": "CosineAnnealingLrUpdaterHook", "step": "StepLrUpdaterHook"}[s.policy]
    assert hook["by_epoch"] == s.by_epoch
    assert hook["warmup"] == s.warmup
    if s.warmup is not None:
        # warmup_by_epoch=True: mmcv keeps the length in warmup_epochs and fills warmup_iters at the first epoch
        assert hook["warmup_by_epoch"] is True and hook["warmup_epochs"] == s.warmup_epochs
        assert hook["warmup_ratio"] == s.warmup_ratio
    if s.policy == "step":
        assert hook["step"] == list(s.steps) and hook["gamma"] == s.gamma
        assert (hook["min_lr"] or 0.0) == s.min_lr
    else:
        assert s.steps == () and hook["min_lr"] == s.min_lr and hook["min_lr_ratio"] is None


@pytest.mark.slow
def test_cosine_configs_over_a_step_base_are_the_known_ones(upstream) -> None:
    """The configs whose merged lr_config still carries the step _base_'s milestones (mmcv's Config merges
    dicts); the cosine hook cannot take them, so the recipe records none."""
    dropped = sorted(rel.rsplit("/", 1)[-1] for rel, up in upstream.items() if up["lr_hook"]["dropped"])
    assert dropped == [
        "slowonly_imagenet_pretrained_r50_8x4x1_64e_hmdb51_rgb.py",
        "slowonly_imagenet_pretrained_r50_8x4x1_64e_sthv1_rgb.py",
        "slowonly_imagenet_pretrained_r50_8x4x1_64e_ucf101_rgb.py",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_train_pipeline_equals_config(upstream, name: str) -> None:
    entry = ix.get_model_info(name)
    recipe = _recipe(name)
    up = upstream[recipe.config]
    _check_ops(f"{name} train", up["train_pipeline"], _expected_train_ops(entry, recipe))
    # the train data come in the test protocol's format
    assert entry.protocol is not None and entry.architecture is not None
    ds = up["train_dataset"]
    assert ds["type"] == {"video": "VideoDataset", "rawframes": "RawframeDataset"}[entry.protocol.data_format]
    assert ds.get("modality", "RGB") == {"rgb": "RGB", "flow": "Flow"}[entry.architecture.modality]
    if entry.protocol.data_format == "rawframes":
        assert ds.get("filename_tmpl", "img_{:05}.jpg") == entry.protocol.filename_tmpl


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_val_pipeline_and_intervals_equal_config(upstream, name: str) -> None:
    entry = ix.get_model_info(name)
    recipe = _recipe(name)
    up = upstream[recipe.config]
    _check_ops(f"{name} val", up["val_pipeline"], _expected_val_ops(entry, recipe))
    assert up["evaluation"] == {"interval": recipe.val_interval, "metrics": ["top_k_accuracy", "mean_class_accuracy"]}
    assert up["checkpoint_config"] == {"interval": recipe.save_interval}
    assert up["log_interval"] == recipe.log_interval


@pytest.mark.slow
def test_the_comparison_sees_the_differences(upstream) -> None:
    """The parity checks are not of constants: the configs differ in what the recipes say they differ in."""
    recipes = [_recipe(n) for n in RECIPE_NAMES]
    assert len({r.config for r in recipes}) == 22
    assert {r.resize_short for r in recipes} == {None, 128, 256}
    assert {r.val.crop_size for r in recipes} == {112, 224, 256}
    assert {r.clip_max_norm for r in recipes} == {20.0, 40.0}
    assert {r.init for r in recipes} == {
        "scratch",
        "imagenet",
        "slowonly_r50_8x8x1_k400",
        "slowonly_r50_4x16x1_k400_flow",
    }
    jester = upstream[_recipe("slowonly_r50_8x8x1_jester").config]["train_pipeline"]
    assert next(op for op in jester if op["type"] == "Flip")["flip_label_map"] == {0: 1, 1: 0, 6: 7, 7: 6}


# --------------------------------------------------------------------------------------------------
# derived values and the index schema
# --------------------------------------------------------------------------------------------------


def test_lr_schedule_is_the_training_schedule() -> None:
    from slowonly_zoo.training.schedule import LrSchedule, lr_at

    recipe = _recipe("slowonly_r50_8x4x1_hmdb51_in1k")
    schedule = LrSchedule.from_policy(recipe.schedule)
    assert schedule == LrSchedule(policy="cosine", by_epoch=False, warmup="linear", warmup_epochs=10.0)
    # first iteration: warmup from 0.1 x the cosine lr
    assert lr_at(schedule, recipe.lr, epoch=0, iter_in_epoch=0, iters_per_epoch=5, max_epochs=64) == pytest.approx(0.01)
    step = LrSchedule.from_policy(_recipe("slowonly_r50_8x4x1_hmdb51_k400").schedule)
    assert step.policy == "step" and step.steps == (15, 30) and step.warmup is None
    for name in RECIPE_NAMES:
        policy = _recipe(name).schedule
        assert dataclasses.asdict(LrSchedule.from_policy(policy)) == dataclasses.asdict(policy)


def test_scaled_lr_is_the_linear_scaling_rule() -> None:
    recipe = _recipe("slowonly_r50_8x8x1_k400")  # lr 0.1 for 8 GPUs x 8 clips
    assert recipe.reference_batch == 64
    assert recipe.scaled_lr(64) == 0.1
    assert recipe.scaled_lr(8) == pytest.approx(0.0125)
    assert recipe.scaled_lr(24 * 8) == pytest.approx(0.3)  # the README's 8x3 GPUs
    assert "0.0125 = 0.1 x 8 / (8 x 8)" in recipe.describe_lr(8)
    flow = _recipe("slowonly_r50_4x16x1_k400_flow")  # lr 0.06 for 8 x 24
    assert flow.scaled_lr(48) == pytest.approx(0.015)
    for bad in (0, -8, 2.5, True):
        with pytest.raises(RecipeError, match="total batch must be a positive integer"):
            recipe.scaled_lr(bad)  # type: ignore[arg-type]


def test_recipe_round_trips_and_defaults() -> None:
    entry = ix.get_model_info("slowonly_r50_8x8x1_jester")
    d = ix.entry_to_index(entry)
    assert d["Train Recipe"]["Flip Label Map"] == [[0, 1], [1, 0], [6, 7], [7, 6]]
    assert ix.entry_from_index(d) == entry
    # a hand-written recipe may leave out what upstream's defaults give
    minimal = {k: d["Train Recipe"][k] for k in ("Config", "Videos Per GPU", "LR", "Epochs", "Init", "Out Size")}
    minimal.update({"LR Schedule": {"Policy": "cosine"}, "Sampling": {"Clip Len": 8, "Frame Interval": 4},
                    "Val": {"Crop Size": 224}})  # fmt: skip
    d2 = dict(d, Name="my_jester", Alias=[], **{"Train Recipe": minimal})
    r = ix.entry_from_index(d2).train_recipe
    assert r is not None
    assert (r.momentum, r.weight_decay, r.clip_max_norm, r.dropout, r.flip_ratio) == (0.9, 1e-4, 40.0, 0.5, 0.5)
    assert r.mean == entry.protocol.mean and r.resize_short is None and r.val.resize_short is None  # type: ignore[union-attr]
    assert r.crop.area == (0.08, 1.0) and r.val_interval == 5 and r.runnable and r.flip_label_map == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"LR": 0}, "'LR' must be positive, got 0.0"),
        ({"LR": "fast"}, "'LR' must be a number"),
        ({"Videos Per GPU": None}, "missing required key 'Videos Per GPU'"),
        ({"LR Schedule": {"Policy": "poly"}}, "LR Schedule: 'Policy' must be one of ('cosine', 'step')"),
        ({"LR Schedule": {"Policy": "step"}}, "'LR Schedule: Steps' needs at least one milestone"),
        ({"LR Schedule": {"Policy": "step", "Steps": [30, 15]}}, "'LR Schedule: Steps' must be increasing"),
        ({"LR Schedule": {"Policy": "step", "Steps": [15, 400]}}, "must lie inside the 40 epochs"),
        ({"LR Schedule": {"Policy": "cosine", "Warmup": "exp"}}, "'Warmup' must be one of ('linear',) or null"),
        ({"Sampling": {"Clip Len": 4, "Frame Interval": 4}}, "'Sampling: Clip Len' must equal the architecture's 8"),
        ({"Crop": {"Area": [0.5, 0.1]}}, "'Crop: Area' must be [low, high]"),
        ({"Flip Label Map": [[0, 101]]}, "'Flip Label Map' labels must be in [0, 101)"),
        ({"Flip Label Map": {"a": 1}}, "'Flip Label Map' must be a list of [label, label when flipped] pairs"),
        ({"Init": "../x.pth"}, "'Init' must be 'scratch', 'imagenet' or a model name"),
        ({"Mean": [1.0, 2.0]}, "'Mean/Std' need 3 values each"),
        ({"Runnable": False}, "'Note' must say why a recipe with 'Runnable: false' cannot be rerun"),
        ({"Val Interval": 0}, "'Val Interval' must be 1 or more"),
    ],
)
def test_bad_recipes_are_errors_naming_entry_and_key(change: dict[str, Any], message: str) -> None:
    d = ix.entry_to_index(ix.get_model_info("slowonly_r50_8x4x1_ucf101_k400"))
    d["Train Recipe"] = dict(d["Train Recipe"], **change)
    with pytest.raises(ModelIndexError) as info:
        ix.entry_from_index(d, origin="my.yml")
    text = str(info.value)
    assert text.startswith("my.yml: model 'slowonly_r50_8x4x1_ucf101_k400': Train Recipe"), text
    assert message in text, text


def test_an_ensemble_cannot_have_a_recipe() -> None:
    d = ix.entry_to_index(ix.get_model_info("slowonly_r50_4x16x1_gym99_fusion"))
    d["Train Recipe"] = ix.entry_to_index(ix.get_model_info("slowonly_r50_4x16x1_gym99"))["Train Recipe"]
    with pytest.raises(ModelIndexError, match="an ensemble entry .* has no train recipe of its own"):
        ix.entry_from_index(d)


def test_index_package_stays_free_of_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = "import sys, slowonly_zoo.index as ix; ix.get_model_info('slowonly_r50_8x8x1_k400').train_recipe; "
    code += "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------------
# slowonly-zoo info
# --------------------------------------------------------------------------------------------------


def test_info_shows_the_recipe(capsys) -> None:
    import json

    from slowonly_zoo.cli import main

    assert main(["info", "slowonly_r50_8x4x1_hmdb51_k400"]) == 0
    text = capsys.readouterr().out
    assert "train recipe:     configs/recognition/slowonly/slowonly_k400_pretrained_r50_8x4x1_40e_hmdb51_rgb.py" in text
    assert "  lr schedule     step x0.1 at epochs 15, 30\n" in text
    assert "SGD lr 0.001 (x your total batch / 64), momentum 0.9, weight decay 0.0001, clip grad norm 20" in text
    assert "  init            the weights of slowonly_r50_8x8x1_k400" in text
    assert "val every 1, checkpoint every 1" in text
    assert "  val pipeline    1 clip, short side 256, CenterCrop(224)" in text

    assert main(["info", "slowonly_r50_8x4x1_sthv1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["train_recipe"]
    assert data["out_size"] == 112 and data["resize_short"] == 128 and data["val"]["crop_size"] == 112
    assert data["schedule"]["warmup"] == "linear" and data["reference_batch"] == 64

    assert main(["info", "slowonly_r50_4x16x1_k400_omni"]) == 0
    assert "  not rerunnable  trained with the OmniSource recipe" in capsys.readouterr().out
    assert main(["info", "slowonly_r50_4x16x1_gym99_fusion"]) == 0
    assert "train recipe" not in capsys.readouterr().out
    assert main(["info", "slowonly_r50_4x16x1_gym99_fusion", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["train_recipe"] is None
