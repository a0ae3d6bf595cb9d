"""FAIR's Slow R50 checkpoints (PySlowFast, pytorchvideo, Caffe2) converted to this package's layout.

Three layouts name the same 320 tensors (../shared/reference/fair_slow_checkpoints.md section 4 and
``../shared/reference/keys/fair_slow_r50_key_map.tsv``); every key maps 1:1 with the same shape:

- stem conv: ``s1.pathway0_stem.conv.weight`` / ``blocks.0.conv.weight`` / ``conv1_w``
- stem BN: ``s1.pathway0_stem.bn.<p>`` / ``blocks.0.norm.<p>`` / ``res_conv1_bn_<b>``
- shortcut: ``sS.pathway0_resI.branch1{,_bn}`` / ``blocks.{S-1}.res_blocks.I.branch1_{conv,norm}`` /
  ``resS_I_branch1_{w,bn_<b>}``
- bottleneck convs x = a, b, c: ``sS.pathway0_resI.branch2.x{,_bn}`` / ``....branch2.{conv,norm}_x`` /
  ``resS_I_branch2x_{w,bn_<b>}``
- classifier: ``head.projection`` / ``blocks.5.proj`` / ``pred_{w,b}``

with S = 2..5 (this package's ``layerS-1``), BN parameters ``<p>`` weight / bias / running_mean / running_var /
num_batches_tracked and Caffe2's ``<b>`` s / b / rm / riv (SlowFast ``slowfast/utils/c2_model_loading.py``).
Conversion is strict like :mod:`.convert`: a key that fits no rule is an error naming it.

Files: ``.pyth`` are torch pickles read with ``torch.load(weights_only=True)`` (the state dict is under
``model_state``, SlowFast ``slowfast/utils/checkpoint.py``); ``.pkl`` are Caffe2 pickles (``{"blobs": {name:
ndarray}}``) read by :func:`load_caffe2_pickle`, a restricted unpickler that builds only numpy arrays, dtypes and
builtin containers.
"""

from __future__ import annotations

import codecs
import io
import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointMismatchError, UnsafeCheckpointError
from .convert import rename_keys

__all__ = [
    "caffe2_to_zoo",
    "fair_to_zoo",
    "load_caffe2_pickle",
    "pyslowfast_to_zoo",
    "pytorchvideo_to_zoo",
    "read_caffe2_checkpoint",
    "read_fair_pyth",
]

_BN_PARAMS = "weight|bias|running_mean|running_var|num_batches_tracked"
_CAFFE2_BN = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}
_BRANCH2 = {"a": "conv1", "b": "conv2", "c": "conv3"}


def _layer(stage: str) -> str:
    """PySlowFast / Caffe2 stage 2..5 (pytorchvideo block 1..4) -> this package's layer1..layer4."""
    return f"layer{int(stage) - 1}"


def _rules(rules: tuple[tuple[str, Callable[[re.Match[str]], str]], ...]):
    return tuple((re.compile(p), f) for p, f in rules)


_PYSLOWFAST_RULES = _rules(
    (
        (r"^s1\.pathway0_stem\.conv\.weight$", lambda m: "backbone.stem.conv.weight"),
        (rf"^s1\.pathway0_stem\.bn\.({_BN_PARAMS})$", lambda m: f"backbone.stem.bn.{m[1]}"),
        (
            r"^s([2-5])\.pathway0_res(\d+)\.branch1\.weight$",
            lambda m: f"backbone.{_layer(m[1])}.{m[2]}.downsample.conv.weight",
        ),
        (
            rf"^s([2-5])\.pathway0_res(\d+)\.branch1_bn\.({_BN_PARAMS})$",
            lambda m: f"backbone.{_layer(m[1])}.{m[2]}.downsample.bn.{m[3]}",
        ),
        (
            r"^s([2-5])\.pathway0_res(\d+)\.branch2\.([abc])\.weight$",
            lambda m: f"backbone.{_layer(m[1])}.{m[2]}.{_BRANCH2[m[3]]}.conv.weight",
        ),
        (
            rf"^s([2-5])\.pathway0_res(\d+)\.branch2\.([abc])_bn\.({_BN_PARAMS})$",
            lambda m: f"backbone.{_layer(m[1])}.{m[2]}.{_BRANCH2[m[3]]}.bn.{m[4]}",
        ),
        (r"^head\.projection\.(weight|bias)$", lambda m: f"head.fc.{m[1]}"),
    )
)

_PYTORCHVIDEO_RULES = _rules(
    (
        (r"^blocks\.0\.conv\.weight$", lambda m: "backbone.stem.conv.weight"),
        (rf"^blocks\.0\.norm\.({_BN_PARAMS})$", lambda m: f"backbone.stem.bn.{m[1]}"),
        (
            r"^blocks\.([1-4])\.res_blocks\.(\d+)\.branch1_conv\.weight$",
            lambda m: f"backbone.layer{m[1]}.{m[2]}.downsample.conv.weight",
        ),
        (
            rf"^blocks\.([1-4])\.res_blocks\.(\d+)\.branch1_norm\.({_BN_PARAMS})$",
            lambda m: f"backbone.layer{m[1]}.{m[2]}.downsample.bn.{m[3]}",
        ),
        (
            r"^blocks\.([1-4])\.res_blocks\.(\d+)\.branch2\.conv_([abc])\.weight$",
            lambda m: f"backbone.layer{m[1]}.{m[2]}.{_BRANCH2[m[3]]}.conv.weight",
        ),
        (
            rf"^blocks\.([1-4])\.res_blocks\.(\d+)\.branch2\.norm_([abc])\.({_BN_PARAMS})$",
            lambda m: f"backbone.layer{m[1]}.{m[2]}.{_BRANCH2[m[3]]}.bn.{m[4]}",
        ),
        (r"^blocks\.5\.proj\.(weight|bias)$", lambda m: f"head.fc.{m[1]}"),
    )
)

_CAFFE2_RULES = _rules(
    (
        (r"^conv1_w$", lambda m: "backbone.stem.conv.weight"),
        (r"^res_conv1_bn_(s|b|rm|riv)$", lambda m: f"backbone.stem.bn.{_CAFFE2_BN[m[1]]}"),
        (r"^res([2-5])_(\d+)_branch1_w$", lambda m: f"backbone.{_layer(m[1])}.{m[2]}.downsample.conv.weight"),
        (
            r"^res([2-5])_(\d+)_branch1_bn_(s|b|rm|riv)$",
            lambda m: f"backbone.{_layer(m[1])}.{m[2]}.downsample.bn.{_CAFFE2_BN[m[3]]}",
        ),
        (
            r"^res([2-5])_(\d+)_branch2([abc])_w$",
            lambda m: f"backbone.{_layer(m[1])}.{m[2]}.{_BRANCH2[m[3]]}.conv.weight",
        ),
        (
            r"^res([2-5])_(\d+)_branch2([abc])_bn_(s|b|rm|riv)$",
            lambda m: f"backbone.{_layer(m[1])}.{m[2]}.{_BRANCH2[m[3]]}.bn.{_CAFFE2_BN[m[4]]}",
        ),
        (r"^pred_(w|b)$", lambda m: "head.fc.weight" if m[1] == "w" else "head.fc.bias"),
    )
)

#: Caffe2 training-state blobs with no tensor in the model; PySlowFast's loader skips them too
#: (SlowFast ``slowfast/utils/checkpoint.py`` ``load_checkpoint``, the "momentum", "lr", "model_iter" names).
_CAFFE2_SKIPPED = ("momentum", "lr", "model_iter")


def _convert(state_dict: Mapping[str, Any], rules, layout: str) -> dict[str, Any]:
    """Rename by the first matching rule (``(pattern, target)``), strictly (:func:`.convert.rename_keys`)."""

    def rename(key: str) -> str | None:
        for pattern, target in rules:
            match = pattern.match(key)
            if match:
                return str(target(match))
        return None

    hint = "; is this another architecture (SlowFast, X3D, a detection model)?"
    return rename_keys(state_dict, rename, f"{layout} Slow R50", hint)


def pyslowfast_to_zoo(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a PySlowFast ``ResNet`` (Slow) state dict (``s1.pathway0_stem...``, ``head.projection``)."""
    return _convert(state_dict, _PYSLOWFAST_RULES, "PySlowFast")


def pytorchvideo_to_zoo(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a pytorchvideo ``create_resnet`` state dict (``blocks.N...``), with or without the ``model.`` prefix of
    PySlowFast's ``PTVResNet`` wrapper (the ``pysf_model_zoo`` copies)."""
    prefixed = [k.startswith("model.") for k in state_dict]
    if any(prefixed) and not all(prefixed):
        raise CheckpointMismatchError("some keys have the 'model.' prefix of PySlowFast's PTVResNet and some not")
    stripped = {k[len("model.") :] if k.startswith("model.") else k: v for k, v in state_dict.items()}
    return _convert(stripped, _PYTORCHVIDEO_RULES, "pytorchvideo")


def fair_to_zoo(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """:func:`pyslowfast_to_zoo` or :func:`pytorchvideo_to_zoo`, chosen by the stem's key."""
    keys = set(state_dict)
    if "s1.pathway0_stem.conv.weight" in keys:
        return pyslowfast_to_zoo(state_dict)
    if keys & {"blocks.0.conv.weight", "model.blocks.0.conv.weight"}:
        return pytorchvideo_to_zoo(state_dict)
    shown = ", ".join(sorted(keys)[:5])
    raise CheckpointMismatchError(
        f"neither a PySlowFast (s1.pathway0_stem.conv.weight) nor a pytorchvideo (blocks.0.conv.weight) Slow state "
        f"dict; first keys: {shown}"
    )


def caffe2_to_zoo(blobs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Caffe2 blobs (SlowFast ``c2_model_loading.py`` names) to this package's tensors.

    Training-state blobs (``momentum``, ``lr``, ``model_iter``) are dropped. Caffe2 keeps no
    ``num_batches_tracked``; each BN gets a 0, as a fresh PyTorch BN has. A conv blob with fewer than 5 dimensions
    gets trailing 1s, as PySlowFast's loader reshapes it.
    """
    kept = {k: v for k, v in blobs.items() if not any(s in k for s in _CAFFE2_SKIPPED)}
    for key, value in kept.items():
        if not isinstance(value, np.ndarray):
            raise CheckpointMismatchError(f"Caffe2 blob {key} is a {type(value).__name__}, not a numpy array")
    renamed = _convert(kept, _CAFFE2_RULES, "Caffe2")
    out: dict[str, torch.Tensor] = {}
    for key, value in renamed.items():
        array = np.ascontiguousarray(value)
        if key.endswith("conv.weight") and array.ndim < 5:
            array = array.reshape(array.shape + (1,) * (5 - array.ndim))
        out[key] = torch.from_numpy(array.copy())
        if key.endswith(".bn.running_var"):
            out[key[: -len("running_var")] + "num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return out


# ------------------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------------------

try:  # numpy >= 2 keeps the pickle helpers in numpy._core; older pickles name numpy.core
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]

#: The only globals a Caffe2 checkpoint pickle may name: what numpy needs to rebuild arrays and dtypes.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    ("builtins", "range"): range,
    ("_codecs", "encode"): codecs.encode,  # how Python 2 pickles of bytes come back under latin1
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays, dtypes and builtin containers, and nothing else: any other
    global (``os.system``, ``builtins.eval``, a class) is refused before it is looked up, so nothing runs."""

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise UnsafeCheckpointError(
                f"the pickle asks for {module}.{name}, and a Caffe2 checkpoint holds only numpy arrays and plain "
                "containers; slowonly-zoo refuses to load it (if you trust the file, convert it to a state dict of "
                "tensors in a separate environment and pass that instead)"
            )
        return found


def load_caffe2_pickle(data: bytes | io.BufferedIOBase, *, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` (Python 2 pickles decoded as latin1, as PySlowFast does) with the restricted unpickler."""
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    try:
        return _NumpyOnlyUnpickler(stream, encoding="latin1").load()
    except UnsafeCheckpointError as err:
        raise UnsafeCheckpointError(f"{source}: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise UnsafeCheckpointError(f"{source} is not a readable Caffe2 checkpoint pickle ({err})") from None


def read_caffe2_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """A PySlowFast Caffe2 ``.pkl`` (``{"blobs": {...}}``) in this package's layout."""
    path = Path(path)
    with path.open("rb") as handle:
        obj = load_caffe2_pickle(handle, source=str(path))
    blobs = obj.get("blobs", obj) if isinstance(obj, Mapping) else None
    if not isinstance(blobs, Mapping):
        raise CheckpointMismatchError(f"{path} is not a Caffe2 checkpoint: expected a dict with 'blobs'")
    return caffe2_to_zoo(blobs)


def read_fair_pyth(path: str | Path) -> dict[str, torch.Tensor]:
    """A pytorchvideo / PySlowFast ``.pyth`` (``{"model_state": ..., ...}`` or a bare state dict) in this
    package's layout; read with ``torch.load(weights_only=True)``."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"{path} holds more than tensors and plain values, so it would need arbitrary unpickling to load; "
            "slowonly-zoo refuses that. Re-save torch.load(path)['model_state'] with torch.save in a trusted "
            f"environment. (torch said: {str(err).splitlines()[0]})"
        ) from None
    if isinstance(obj, Mapping) and "model_state" in obj:
        obj = obj["model_state"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointMismatchError(f"{path} is not a FAIR Slow checkpoint: expected 'model_state' tensors")
    return fair_to_zoo(obj)
