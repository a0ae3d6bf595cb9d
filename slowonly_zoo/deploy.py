"""``slowonly-zoo export --format onnx|torch-export|torchscript``: a model for deployment outside this package,
checked against the eager model before it is kept.

What is exported is the inference form (:func:`~slowonly_zoo.models.fuse.optimize_for_inference`: BatchNorm
folded into the convolutions, eval mode), traced on a fixed example input of the entry's test view shape. It is
exported in the default contiguous layout, not channels-last 3D (nor with the frames-into-batch fold that comes
with it): ONNX has no memory layout at all, and in a ``.pt2`` / TorchScript file channels-last weights would only
fix a layout choice that belongs to the runtime that loads them. The batch axis is dynamic in every format, and
so are height and width where the head pools the whole feature map (mmaction2's head); frames stay fixed at the
entry's clip length.

Each file is written beside its destination and loaded back before it replaces anything (onnxruntime for ONNX,
``torch.export.load`` for ``.pt2``, ``torch.jit.load`` for TorchScript), run on a fixed seeded input with another
batch size than the example's, and compared with the eager fp32 model (the plain module, BatchNorm unfolded, run
the way ``verify`` runs it): a max abs logit difference above :data:`TOLERANCE` is an :class:`ExportCheckError`
and leaves no model file behind. The folder also gets ``README.md`` (input layout, normalisation, test protocol,
versions, the check's figure, usage), ``labels.txt`` and ``config.json``.

onnx, onnxruntime and onnxscript are the optional ``[export]`` extra; torch.export and TorchScript need only torch.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ._fileio import atomic_replace, atomic_write_text
from .errors import ExportCheckError, ExportError, MissingExtraError
from .models.fuse import optimize_for_inference
from .runtime import forward_views
from .weights.hub_export import refuse_foreign_files
from .weights.layout import CONFIG_FILE
from .weights.layout import MODEL_CARD_FILE as README_FILE

if TYPE_CHECKING:
    from .index import ModelEntry

__all__ = [
    "ARTEFACTS",
    "FORMATS",
    "ONNX_OPSET",
    "TOLERANCE",
    "DeployResult",
    "check_artefact",
    "check_out_dir",
    "export_for_deployment",
    "export_model",
    "view_shape_of",
]

logger = logging.getLogger("slowonly_zoo")

#: The deployment formats, as ``--format`` names them.
FORMATS = ("onnx", "torch-export", "torchscript")
#: The file each format writes.
ARTEFACTS = {"onnx": "model.onnx", "torch-export": "model.pt2", "torchscript": "model.torchscript.pt"}
#: The ONNX opset the exporter targets: torch's dynamo exporter emits opset 18 natively (its default, 20, needs a
#: newer onnxruntime for no gain in these models' operators).
ONNX_OPSET = 18
#: The largest max abs logit difference between an export and the eager fp32 model that is accepted.
TOLERANCE = 1e-4
#: The example batch: torch.export specialises a size-1 dimension to a constant, so the example has 2.
EXAMPLE_BATCH = 2
#: The check's batch: neither the example's nor 1, so the dynamic batch axis is exercised.
CHECK_BATCH = 3
CHECK_SEED = 20240601
#: The smallest dynamic height / width: torch.export specialises a size-1 feature map, which smaller inputs give.
MIN_SIZE = 64
INPUT_NAME, OUTPUT_NAME = "video", "logits"
LABELS_FILE = "labels.txt"
EXPORT_EXTRA_HINT = "pip install 'slowonly-zoo[export]'"
_README_MARKER = "<!-- written by slowonly-zoo export (deployment) -->"
TORCHSCRIPT_NOTE = (
    "TorchScript is in maintenance mode upstream (torch.jit.trace/script are deprecated in favour of torch.export); "
    "this file is kept for runtimes that still need it: prefer --format torch-export or onnx"
)


@dataclass(frozen=True)
class DeployResult:
    """What :func:`export_model` wrote and what its check measured."""

    out_dir: Path
    format: str
    artefact: Path
    readme: Path
    config: Path
    labels: Path | None
    max_abs_diff: float
    input_shape: tuple[int, ...]
    dynamic_axes: tuple[str, ...]
    weights: str


def _onnx_modules() -> tuple[Any, Any]:
    """onnxruntime and onnx (with onnxscript, which torch's ONNX exporter needs), or a clear error."""
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401 - torch.onnx.export(dynamo=True) imports it
    except ImportError as exc:
        raise MissingExtraError(
            f"ONNX export needs onnx, onnxruntime and onnxscript ({exc.name} is not installed): {EXPORT_EXTRA_HINT}"
        ) from exc
    return onnx, onnxruntime


def _dynamic_spatial(model: nn.Module) -> bool:
    """Height and width can be dynamic when the head pools the whole feature map (mmaction2's head); FAIR's heads
    pool a fixed window whose size the example input would fix."""
    return getattr(getattr(model, "head", None), "mode", "global") == "global"


def _dims(model: nn.Module) -> dict[int, Any]:
    dim = torch.export.Dim
    dims: dict[int, Any] = {0: dim("batch", min=1, max=4096)}
    if _dynamic_spatial(model):
        dims[3] = dim("height", min=MIN_SIZE, max=4096)
        dims[4] = dim("width", min=MIN_SIZE, max=4096)
    return dims


def _write_onnx(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    _onnx_modules()
    torch.onnx.export(
        module,
        (example,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=(_dims(module),),
        opset_version=ONNX_OPSET,
        dynamo=True,
        external_data=False,
        verbose=False,
    )


def _write_torch_export(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    program = torch.export.export(module, (example,), dynamic_shapes=(_dims(module),))
    with open(path, "wb") as fh:  # a file object: torch.export wants a path to end in .pt2, and this is a temp name
        torch.export.save(program, fh)


def _write_torchscript(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    logger.warning(TORCHSCRIPT_NOTE)
    with warnings.catch_warnings():
        # torch's own deprecation notice (said above) and the input check's shape test, which tracing fixes to
        # the example's channel count (as it should: the model has that many input channels)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module, example)
    torch.jit.save(traced, str(path))


_WRITERS: dict[str, Callable[[nn.Module, torch.Tensor, Path], None]] = {
    "onnx": _write_onnx,
    "torch-export": _write_torch_export,
    "torchscript": _write_torchscript,
}


def _load_runner(path: Path, fmt: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The exported file loaded back as a function of a (N, C, T, H, W) float32 tensor."""
    if fmt == "onnx":
        _, onnxruntime = _onnx_modules()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.contiguous().numpy()})[0])

        return run
    if fmt == "torch-export":
        with open(path, "rb") as fh:
            return torch.export.load(fh).module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")


def check_input(view_shape: tuple[int, int, int, int], batch: int = CHECK_BATCH) -> torch.Tensor:
    """The fixed seeded input of the check: ``batch`` normalised-like views (standard normal values)."""
    generator = torch.Generator().manual_seed(CHECK_SEED)
    return torch.randn((batch, *view_shape), generator=generator)


def check_artefact(
    path: str | os.PathLike[str],
    fmt: str,
    model: nn.Module,
    view_shape: tuple[int, int, int, int],
    *,
    tolerance: float = TOLERANCE,
) -> float:
    """Load the exported ``path`` back, run it on :func:`check_input` and return the max abs logit difference from
    ``model`` (the eager fp32 model, BatchNorm unfolded). Raises :class:`ExportCheckError` when the file does not
    load or run, or the difference exceeds ``tolerance`` (or is not finite)."""
    path = Path(path)
    x = check_input(view_shape)
    try:
        runner = _load_runner(path, fmt)
        with torch.inference_mode():
            exported = runner(x).float()
    except MissingExtraError:
        raise
    except Exception as exc:  # whatever the runtime raises, the file is not usable
        raise ExportCheckError(
            f"the exported {fmt} file {path} could not be loaded and run back ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:300] if str(exc) else 'no message'}); export again into a new folder"
        ) from exc
    model.eval()
    eager = forward_views(model, x, torch.device("cpu"), x.shape[0]).cpu()
    if exported.shape != eager.shape:
        raise ExportCheckError(
            f"the exported {fmt} file {path} returns logits of shape {tuple(exported.shape)} for a batch of "
            f"{x.shape[0]}, the eager model {tuple(eager.shape)}; export again into a new folder"
        )
    diff = float((exported - eager).abs().max())
    if not diff <= tolerance:  # also catches NaN
        raise ExportCheckError(
            f"the exported {fmt} model's logits differ from the eager model's by up to {diff:.3g} on the check "
            f"input (more than {tolerance:g}), so it was not kept; try another --format, and report this with "
            f"your torch version ({torch.__version__})"
        )
    return diff


def _owned_files(out: Path) -> set[str]:
    """The files an earlier deployment export recorded in ``out/config.json`` (empty when it is not one)."""
    try:
        data = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return set()
    if not (isinstance(data, dict) and data.get("library_name") == "slowonly-zoo" and "export_format" in data):
        return set()
    files = data.get("files")
    return {str(f) for f in files} if isinstance(files, list) else set()


def check_out_dir(out_dir: str | os.PathLike[str], fmt: str, *, force: bool = False) -> None:
    """Refuse to write into ``out_dir`` where that would replace what someone else put there: a non-empty folder
    needs ``force``, and even then each file this export writes that is already there must be listed in an earlier
    deployment export's ``config.json``. Raises :class:`ExportError` before anything is written."""
    out = Path(out_dir)
    owned = _owned_files(out) if out.is_dir() else set()
    refuse_foreign_files(
        out,
        (ARTEFACTS[fmt], README_FILE, LABELS_FILE, CONFIG_FILE),
        lambda target: target.name in owned,
        force=force,
        writer="slowonly-zoo export --format",
    )


def _versions(fmt: str) -> dict[str, str]:
    versions: dict[str, str] = {"torch": str(torch.__version__)}
    if fmt == "onnx":
        onnx, onnxruntime = _onnx_modules()
        versions.update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__)
    return versions


def export_model(
    model: nn.Module,
    entry: ModelEntry,
    out_dir: str | os.PathLike[str],
    fmt: str,
    *,
    view_shape: tuple[int, int, int, int] | None = None,
    weights: str = "the model object passed in",
    labels: tuple[str, ...] | None = None,
    force: bool = False,
    tolerance: float = TOLERANCE,
) -> DeployResult:
    """Export ``model`` (a SlowOnly module with its weights loaded, BatchNorm not yet folded; moved to the CPU) for
    ``entry`` into ``out_dir`` in format ``fmt`` (one of :data:`FORMATS`), check it (:func:`check_artefact`) and
    write the folder's README, labels and config.

    ``view_shape`` is the example view (C, T, H, W), by default the entry's test view (channels, clip length,
    crop, crop); ``weights`` says in the README where the weights come from.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)} (or hub)")
    if view_shape is None:
        view_shape = view_shape_of(entry)
    check_out_dir(out_dir, fmt, force=force)
    versions = _versions(fmt)
    model = model.cpu().eval()
    inference_form = optimize_for_inference(model, channels_last=False)
    example = torch.randn((EXAMPLE_BATCH, *view_shape), generator=torch.Generator().manual_seed(0))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    artefact = out / ARTEFACTS[fmt]
    logger.info("exporting %s as %s (example input %s)", entry.name, fmt, tuple(example.shape))
    with atomic_replace(artefact) as tmp:
        _WRITERS[fmt](inference_form, example, tmp)
        diff = check_artefact(tmp, fmt, model, view_shape, tolerance=tolerance)
    logger.info("%s: max |logit diff| = %.3g against the eager fp32 model", artefact, diff)
    dynamic = ("batch", "height", "width") if _dynamic_spatial(inference_form) else ("batch",)
    labels_path: Path | None = None
    if labels:
        labels_path = atomic_write_text(out / LABELS_FILE, "".join(f"{name}\n" for name in labels))
    # an earlier export's files stay listed (say an ONNX file beside this TorchScript one), so --force can replace
    # them later
    files = sorted(
        _owned_files(out) | {artefact.name, README_FILE, CONFIG_FILE} | ({LABELS_FILE} if labels_path else set())
    )
    info = _config(entry, fmt, model, view_shape, dynamic, diff, tolerance, weights, versions, labels, files)
    config_path = atomic_write_text(out / CONFIG_FILE, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    readme = atomic_write_text(out / README_FILE, _readme(entry, info))
    return DeployResult(out, fmt, artefact, readme, config_path, labels_path, diff, (1, *view_shape), dynamic, weights)


def view_shape_of(entry: ModelEntry) -> tuple[int, int, int, int]:
    """(C, T, crop, crop) of one test view of ``entry``."""
    arch, protocol = entry.architecture, entry.protocol
    if arch is None or protocol is None:
        raise ExportError(f"{entry.name} has no single network with a test protocol, so there is nothing to export")
    return (arch.in_channels, protocol.clip_len, protocol.crop_size, protocol.crop_size)


def export_for_deployment(
    name: str,
    out_dir: str | os.PathLike[str],
    fmt: str,
    *,
    weights_path: str | os.PathLike[str] | None = None,
    random_init: bool = False,
    force: bool = False,
) -> DeployResult:
    """``slowonly-zoo export NAME --format FMT``: build ``name`` with the released weights from the cache (or
    ``weights_path``, or random weights with ``random_init``, for trying the export only) and
    :func:`export_model` it at the entry's test view shape."""
    from .factory import class_names_of
    from .inference import load_model

    if random_init and weights_path is not None:
        raise ExportError("pass either --weights or --random-init, not both")
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)} (or hub)")
    check_out_dir(out_dir, fmt, force=force)  # before any download
    model, entry = load_model(name, checkpoint=weights_path, device="cpu", pretrained=not random_init, optimize=False)
    if random_init:
        source = "random weights (--random-init): for trying the export only; its outputs mean nothing"
    elif weights_path is not None:
        source = f"`{Path(weights_path).name}` (--weights)"
    else:
        source = f"the released checkpoint `{entry.checkpoint.filename}`" if entry.checkpoint else "the cache"
    return export_model(
        model, entry, out_dir, fmt, weights=source, labels=class_names_of(model, entry) or None, force=force
    )


def _config(
    entry: ModelEntry,
    fmt: str,
    model: nn.Module,
    view_shape: tuple[int, int, int, int],
    dynamic: tuple[str, ...],
    diff: float,
    tolerance: float,
    weights: str,
    versions: dict[str, str],
    labels: tuple[str, ...] | None,
    files: list[str],
) -> dict[str, Any]:
    protocol = entry.protocol
    return {
        "library_name": "slowonly-zoo",
        "name": entry.name,
        "export_format": fmt,
        "file": ARTEFACTS[fmt],
        "files": files,
        "opset": ONNX_OPSET if fmt == "onnx" else None,
        "versions": versions,
        "input": {
            "name": INPUT_NAME,
            "layout": "NCTHW",
            "dtype": "float32",
            "example_shape": [1, *view_shape],
            "dynamic": list(dynamic),
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", int(getattr(model, "num_classes", 0))],
            "probabilities": bool(getattr(getattr(model, "head", None), "outputs_probabilities", False)),
        },
        "modality": entry.architecture.modality if entry.architecture else None,
        "normalize": None
        if protocol is None
        else {"kind": protocol.normalize, "mean": list(protocol.mean), "std": list(protocol.std)},
        "test_protocol": entry.to_dict().get("protocol"),
        "labels_file": LABELS_FILE if labels else None,
        "num_labels": len(labels) if labels else 0,
        "weights": weights,
        "check": {"max_abs_logit_diff": diff, "tolerance": tolerance, "batch": CHECK_BATCH, "seed": CHECK_SEED},
    }


def _usage(fmt: str, shape: list[int]) -> list[str]:
    x = f"x = np.random.randn({', '.join(map(str, shape))}).astype(np.float32)  # normalised views, see above"
    if fmt == "onnx":
        return [
            "import numpy as np, onnxruntime as ort",
            f'session = ort.InferenceSession("{ARTEFACTS[fmt]}", providers=["CPUExecutionProvider"])',
            x,
            f'logits = session.run(["{OUTPUT_NAME}"], {{"{INPUT_NAME}": x}})[0]',
            "probs = np.exp(logits - logits.max(1, keepdims=True)); probs /= probs.sum(1, keepdims=True)",
        ]
    load = (
        f'model = torch.export.load("{ARTEFACTS[fmt]}").module()'
        if fmt == "torch-export"
        else f'model = torch.jit.load("{ARTEFACTS[fmt]}")'
    )
    return [
        "import torch",
        load,
        f"x = torch.randn({', '.join(map(str, shape))})  # normalised views, see above",
        "with torch.inference_mode():",
        "    probs = model(x).softmax(-1)",
    ]


def _readme(entry: ModelEntry, info: dict[str, Any]) -> str:
    fmt, inp, norm, protocol = info["export_format"], info["input"], info["normalize"], entry.protocol
    shape = inp["example_shape"]
    what = {
        "onnx": f"ONNX (opset {ONNX_OPSET}, exported by torch {torch.__version__}'s dynamo exporter)",
        "torch-export": f"a torch.export ExportedProgram (torch {torch.__version__}; `torch.export.load`)",
        "torchscript": f"TorchScript (traced with torch {torch.__version__}; `torch.jit.load`)",
    }[fmt]
    dynamic = ", ".join(inp["dynamic"])
    spatial = f"; height and width at least {MIN_SIZE}" if "height" in inp["dynamic"] else ""
    lines = [
        _README_MARKER,
        f"# {entry.name}: {fmt} export",
        "",
        f"`{info['file']}` is {what} of slowonly-zoo's `{entry.name}` in its inference form (BatchNorm folded into "
        f"the convolutions, eval mode). Weights: {info['weights']}.",
        "",
    ]
    if fmt == "torchscript":
        lines += [f"**Deprecated format.** {TORCHSCRIPT_NOTE}.", ""]
    lines += [
        "## Input and output",
        "",
        f"- input `{inp['name']}`: float32, layout (N, C, T, H, W), shape {shape} for one test view; dynamic "
        f"axes: {dynamic} (T is fixed at {shape[2]} frames{spatial})",
    ]
    if norm is not None and norm["kind"] == "flow":
        lines.append(
            f"- optical flow, {shape[1]} channels (x, y) per frame, stored as 0-255 images: input = (value - "
            f"{norm['mean'][0]:g}) / {norm['std'][0]:g}"
        )
    elif norm is not None:
        lines.append(
            f"- RGB frames (channel order R, G, B) with values 0-255, normalised per channel as (value - mean) / "
            f"std, mean {norm['mean']}, std {norm['std']}"
        )
    kind = (
        "scores, already softmax/sigmoid (PySlowFast's head)"
        if info["output"]["probabilities"]
        else "logits, softmax gives probabilities"
    )
    lines.append(f"- output `{OUTPUT_NAME}`: (N, {info['output']['shape'][1]}) {kind}")
    if info["labels_file"]:
        named = info["num_labels"]
        extra = "" if named == info["output"]["shape"][1] else f" (outputs past line {named} have no name)"
        lines.append(f"- `{LABELS_FILE}`: line i names output i{extra}")
    if protocol is not None:
        resize = f"short side resized to {protocol.resize_short}" if protocol.resize_short else "no resize"
        crops = "three crops" if protocol.crop == "three" else "a centre crop"
        lines += [
            "",
            "## Test protocol",
            "",
            f"{protocol.num_clips} clips of {protocol.clip_len} frames (interval {protocol.frame_interval}) x "
            f"{crops} of {protocol.crop_size}x{protocol.crop_size} ({resize}) = {protocol.num_views} views per "
            f"video; softmax per view, averaged over the views (`average_clips='{protocol.average_clips}'`). "
            "`slowonly-zoo predict` builds exactly these views.",
        ]
    check = info["check"]
    lines += [
        "",
        "## Check",
        "",
        f"Loaded back and run on a fixed seeded input of batch {check['batch']}: max |logit diff| = "
        f"{check['max_abs_logit_diff']:.3g} against the eager fp32 model (required <= {check['tolerance']:g}).",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".",
        "",
        "## Usage",
        "",
        "```python",
        *_usage(fmt, [2, *shape[1:]]),
        "```",
        "",
    ]
    return "\n".join(lines)
