"""slowonly_zoo.deploy / ``slowonly-zoo export --format``: ONNX, torch.export and TorchScript exports of every
architecture variant (R50, R101, non-local, flow, no pool1), loaded back with their own runtimes and compared with
the eager fp32 model at batch sizes other than the example's; the folder README and labels; the errors.

Models have random weights with non-trivial BatchNorm statistics (``randomize_``), so folding BatchNorm into the
convolutions is really exercised, and run at 4 frames of 64x64 so each export stays within seconds to a minute on
two idle cores; the ONNX exports and the CLI runs at the entry's full test view are marked slow.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from reference import randomize_
from support import scratch_dir
from upstream_checkpoints import write_upstream_checkpoint

import slowonly_zoo
from slowonly_zoo import cli, deploy
from slowonly_zoo._fileio import is_temp_file
from slowonly_zoo.errors import ExportCheckError, ExportError, MissingExtraError
from slowonly_zoo.index import get_model_info

VARIANTS = {
    "r50": "slowonly_r50_8x8x1_k400",
    "r101": "slowonly_r101_8x8x1_k400",
    "nl": "slowonly_r50_nl_8x8x1_k400",
    "flow": "slowonly_r50_4x16x1_k400_flow",
    "nopool1": "slowonly_r50_8x4x1_sthv1",
}
FRAMES, SIZE = 4, 64
SLOW = pytest.mark.slow
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
CASES = [
    pytest.param(("r50", "onnx"), id="r50-onnx", marks=SLOW),
    pytest.param(("r50", "torch-export"), id="r50-torch-export"),
    pytest.param(("r50", "torchscript"), id="r50-torchscript"),
    pytest.param(("r101", "onnx"), id="r101-onnx", marks=SLOW),
    pytest.param(("nl", "onnx"), id="nl-onnx", marks=SLOW),
    pytest.param(("flow", "onnx"), id="flow-onnx", marks=SLOW),
    pytest.param(("nopool1", "onnx"), id="nopool1-onnx", marks=SLOW),
]


def _cases(*ids: str) -> list:
    """Some of :data:`CASES`, for a test that needs only those exports (the module-scoped fixture reuses them)."""
    return [case for case in CASES if case.id in ids]


def _model(name: str, seed: int = 0) -> torch.nn.Module:
    return randomize_(slowonly_zoo.create_model(name), seed).eval()


def _view_shape(name: str) -> tuple[int, int, int, int]:
    return (get_model_info(name).architecture.in_channels, FRAMES, SIZE, SIZE)


def _runtime(path: Path, fmt: str):
    """The exported file loaded by its own runtime, independently of slowonly_zoo.deploy."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["video"]
        assert [o.name for o in session.get_outputs()] == ["logits"]
        return lambda x: torch.from_numpy(session.run(["logits"], {"video": x.numpy()})[0])
    if fmt == "torch-export":
        return torch.export.load(str(path)).module()
    return torch.jit.load(str(path))


@pytest.fixture(scope="module", params=CASES)
def exported(request, tmp_path_factory):
    variant, fmt = request.param
    name = VARIANTS[variant]
    model = _model(name)
    with scratch_dir(tmp_path_factory, f"{variant}-{fmt}") as out:
        result = deploy.export_model(
            model, get_model_info(name), out, fmt, view_shape=_view_shape(name), labels=get_model_info(name).labels
        )
        yield variant, fmt, name, model, result


def test_the_variants_are_what_they_say():
    arch = {k: get_model_info(v).architecture for k, v in VARIANTS.items()}
    assert arch["r50"].depth == 50 and not arch["r50"].non_local and arch["r50"].in_channels == 3
    assert arch["r101"].depth == 101
    assert arch["nl"].non_local
    assert arch["flow"].in_channels == 2 and arch["flow"].modality == "flow"
    assert not arch["nopool1"].with_pool1


def test_export_loads_back_within_tolerance_at_other_batch_sizes(exported):
    _variant, fmt, name, model, result = exported
    assert result.artefact.name == deploy.ARTEFACTS[fmt] and result.artefact.stat().st_size > 1_000_000
    assert 0 <= result.max_abs_diff <= 1e-4
    assert not [p for p in result.out_dir.iterdir() if is_temp_file(p)]
    run = _runtime(result.artefact, fmt)
    generator = torch.Generator().manual_seed(7)
    for batch in (1, 3):
        x = torch.randn((batch, *_view_shape(name)), generator=generator)
        with torch.inference_mode():
            eager, got = model(x), run(x)
        assert got.shape == (batch, model.num_classes)
        assert (got - eager).abs().max().item() <= 1e-4
        assert eager.abs().max().item() > 1e-2  # the comparison is of real numbers, not of near-zero logits


@pytest.mark.parametrize("exported", _cases("r50-onnx", "r50-torch-export", "nl-onnx"), indirect=True)
def test_dynamic_height_and_width(exported):
    """mmaction2's head pools the whole feature map, so the spatial size is free (here 96x80)."""
    _variant, fmt, name, model, result = exported
    assert result.dynamic_axes == ("batch", "height", "width")
    x = torch.randn((2, *_view_shape(name)[:2], 96, 80), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        assert (_runtime(result.artefact, fmt)(x) - model(x)).abs().max().item() <= 1e-4


def test_folder_readme_labels_and_config(exported):
    variant, fmt, name, _model, result = exported
    entry = get_model_info(name)
    readme = result.readme.read_text(encoding="utf-8")
    assert "(N, C, T, H, W)" in readme and f"`{deploy.ARTEFACTS[fmt]}`" in readme
    if variant == "flow":
        assert "optical flow" in readme and "(value - 128) / 128" in readme
    else:
        assert "mean [123.675, 116.28, 103.53], std [58.395, 57.12, 57.375]" in readme and "R, G, B" in readme
    assert f"max |logit diff| = {result.max_abs_diff:.3g}" in readme
    assert ("opset 18" in readme) == (fmt == "onnx")
    assert ("maintenance mode" in readme) == (fmt == "torchscript")
    assert result.labels is not None
    assert result.labels.read_text(encoding="utf-8").splitlines() == list(entry.labels)
    config = json.loads(result.config.read_text(encoding="utf-8"))
    assert config["export_format"] == fmt and config["input"]["example_shape"] == [1, *_view_shape(name)]
    assert set(config["files"]) == {p.name for p in result.out_dir.iterdir()}
    assert config["normalize"]["kind"] == entry.protocol.normalize


@pytest.mark.parametrize("exported", _cases("r50-onnx", "r50-torch-export", "r50-torchscript"), indirect=True)
def test_corrupt_export_is_a_clear_error(exported, tmp_path):
    _variant, fmt, name, model, result = exported
    broken = tmp_path / result.artefact.name
    shutil.copyfile(result.artefact, broken)
    with open(broken, "r+b") as fh:  # cut the file in half
        fh.truncate(broken.stat().st_size // 2)
    with pytest.raises(ExportCheckError, match="could not be loaded and run back"):
        deploy.check_artefact(broken, fmt, model, _view_shape(name))


@pytest.mark.parametrize("exported", _cases("r50-torchscript"), indirect=True)
def test_force_replaces_an_earlier_export_but_never_other_files(exported, tmp_path):
    _variant, fmt, _name, _model, result = exported
    folder = tmp_path / "again"
    shutil.copytree(result.out_dir, folder)
    with pytest.raises(ExportError, match="--force"):
        deploy.check_out_dir(folder, fmt)
    deploy.check_out_dir(folder, fmt, force=True)  # every file there is the earlier export's
    deploy.check_out_dir(folder, "onnx", force=True)  # and another format adds model.onnx beside it
    (folder / "model.onnx").write_bytes(b"someone else's model")
    with pytest.raises(ExportError, match="not written by slowonly-zoo export"):
        deploy.check_out_dir(folder, "onnx", force=True)
    (folder / "config.json").write_text('{"library_name": "slowonly-zoo"}', encoding="utf-8")  # a hub export's
    with pytest.raises(ExportError, match="not written by slowonly-zoo export"):
        deploy.check_out_dir(folder, fmt, force=True)


def test_a_tolerance_breach_keeps_no_file(tmp_path, monkeypatch):
    """A conversion that changes the numbers (here: a shifted classifier bias) is caught by the check."""
    real = deploy.optimize_for_inference

    def off_by_a_little(model, **kwargs):
        fused = real(model, **kwargs)
        with torch.no_grad():
            fused.head.fc.bias += 1e-3
        return fused

    monkeypatch.setattr(deploy, "optimize_for_inference", off_by_a_little)
    name = VARIANTS["nopool1"]
    with pytest.raises(ExportCheckError, match=r"differ from the eager model's by up to 0\.001"):
        deploy.export_model(_model(name), get_model_info(name), tmp_path, "torchscript", view_shape=_view_shape(name))
    assert list(tmp_path.iterdir()) == []


def test_missing_onnxruntime_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    name = VARIANTS["r50"]
    with pytest.raises(MissingExtraError, match=r"pip install 'slowonly-zoo\[export\]'"):
        deploy.export_model(_model(name), get_model_info(name), tmp_path, "onnx", view_shape=_view_shape(name))
    assert list(tmp_path.iterdir()) == []


@SLOW
def test_cli_exports_an_upstream_checkpoint(tmp_path, capsys, caplog):
    """``slowonly-zoo export NAME --format torchscript --weights FILE.pth`` at the entry's own test view (sthv1:
    3x8x128x128), with a checkpoint written in mmaction2's published layout."""
    name = VARIANTS["nopool1"]
    ckpt = write_upstream_checkpoint(tmp_path / "ckpts", name, seed=3)
    out = tmp_path / "ts"
    caplog.set_level(logging.WARNING, logger="slowonly_zoo")
    code = cli.main(["export", name, "--format", "torchscript", "--weights", str(ckpt), "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["format"] == "torchscript" and report["input_shape"] == [1, 3, 8, 128, 128]
    assert 0 <= report["max_abs_logit_diff"] <= 1e-4
    assert "maintenance mode" in caplog.text  # the deprecation note, as a warning
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert ckpt.name in readme and "10 clips of 8 frames" in readme
    assert len((out / "labels.txt").read_text(encoding="utf-8").splitlines()) == 174
    model = torch.jit.load(str(out / "model.torchscript.pt"))
    eager = slowonly_zoo.create_model(name, checkpoint_path=ckpt)
    x = torch.randn(1, 3, 8, 128, 128, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert np.abs((model(x) - eager(x)).numpy()).max() <= 1e-4
    assert cli.main(["export", name, "--format", "torchscript", "--weights", str(ckpt), "--out", str(out)]) == 1
    assert "--force" in capsys.readouterr().err


@SLOW
def test_cli_random_init_says_so(tmp_path, capsys):
    name = VARIANTS["nopool1"]
    out = tmp_path / "pt2"
    assert cli.main(["export", name, "--format", "torch-export", "--random-init", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "max |logit diff| = " in captured.out and "model.pt2" in captured.out
    assert "random weights (--random-init)" in (out / "README.md").read_text(encoding="utf-8")
    # a second format into the same folder with --force: both files stay the export's own
    assert cli.main(["export", name, "--format", "torchscript", "--random-init", "--force", "--out", str(out)]) == 0
    capsys.readouterr()
    assert {"model.pt2", "model.torchscript.pt"} <= set(json.loads((out / "config.json").read_text())["files"])
    deploy.check_out_dir(out, "torch-export", force=True)
    assert cli.main(["export", name, "--random-init", "--out", str(tmp_path / "hub")]) == 1
    assert "--random-init is for --format" in capsys.readouterr().err
