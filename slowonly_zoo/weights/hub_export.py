"""``slowonly-zoo export``: a model's weights as a folder ready for the Hugging Face Hub.

:func:`export` writes ``model.safetensors`` + ``config.json`` + ``README.md`` (a model card built from the index
entry: reported results, test protocol, usage, source checkpoint, citation), loadable by
``create_model(..., checkpoint_path=DIR)`` and by the Hub source of :mod:`.sources`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._fileio import atomic_replace, atomic_write_text
from ..errors import ExportError, WeightsFileError
from . import cache
from .file_checks import read_metadata, require_regular_file
from .hashing import sha256_file, sha256_matches_prefix
from .layout import (
    CONFIG_FILE,
    META_CONVERTER_VERSION,
    META_NAME,
    META_SOURCE_FILENAME,
    META_SOURCE_SHA256,
    MODEL_CARD_FILE,
    WEIGHTS_FILE,
    read_safetensors_metadata,
)
from .sources import accepted_prefixes, fetch_weights_report

if TYPE_CHECKING:
    from ..index import ModelEntry

__all__ = ["ExportResult", "check_export_folder", "export"]

_CITATION = """\
@inproceedings{feichtenhofer2019slowfast,
  title     = {SlowFast Networks for Video Recognition},
  author    = {Feichtenhofer, Christoph and Fan, Haoqi and Malik, Jitendra and He, Kaiming},
  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  pages     = {6202--6211},
  year      = {2019}
}

@misc{2020mmaction2,
  title        = {OpenMMLab's Next Generation Video Understanding Toolbox and Benchmark},
  author       = {MMAction2 Contributors},
  howpublished = {\\url{https://github.com/open-mmlab/mmaction2}},
  year         = {2020}
}"""


@dataclass(frozen=True)
class ExportResult:
    """The files written by :func:`export`."""

    out_dir: Path
    weights: Path
    config: Path
    readme: Path
    source_sha256: str


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("slowonly-zoo")
    except Exception:  # noqa: BLE001 - not installed as a distribution (e.g. a source checkout)
        return "unknown"


def _labels(entry: ModelEntry) -> list[str] | None:
    try:
        labels = list(entry.labels)
    except Exception:  # noqa: BLE001 - a missing label file only leaves the labels out
        return None
    return labels or None


def _config(entry: ModelEntry, source_sha256: str, conv_version: str) -> dict[str, Any]:
    arch, ck = entry.architecture, entry.checkpoint
    assert arch is not None and ck is not None
    plain = entry.to_dict()  # JSON-ready, protocol with num_views
    return {
        "library_name": "slowonly-zoo",
        "model_type": "slowonly",
        "name": entry.name,
        "aliases": list(entry.aliases),
        "architecture": "SlowOnly",
        "model_args": {
            "depth": arch.depth,
            "num_classes": entry.num_classes,
            "in_channels": arch.in_channels,
            "non_local": arch.non_local,
            "with_pool1": arch.with_pool1,
        },
        "backbone": plain["architecture"],
        "num_classes": entry.num_classes,
        "dataset": entry.dataset,
        "labels": _labels(entry),
        "pretrain": entry.pretrain,
        "train_resolution": entry.train_resolution,
        "test_protocol": plain["protocol"],
        "reported_results": plain["results"],
        "upstream_config": entry.config,
        "source_checkpoint": {"url": ck.url, "filename": ck.filename, "sha256": source_sha256},
        "converter_version": conv_version,
        "slowonly_zoo_version": _package_version(),
    }


def _fmt(value: Any) -> str:
    return "—" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))


def _provenance_sentence(entry: ModelEntry, config: dict[str, Any]) -> str:
    """Where the exported weights come from, as the card states it: mmaction2's release for the packaged index's
    entries, the user's own registration (with the file's hash) for any other entry."""
    from ..index.registry import PACKAGED_ORIGIN, entry_origin

    ck = entry.checkpoint
    assert ck is not None
    origin = entry_origin(entry.name)
    if origin == PACKAGED_ORIGIN:
        return (
            f"The weights are mmaction2's released checkpoint `{ck.filename}`, converted to safetensors by "
            "[slowonly-zoo](https://pypi.org/project/slowonly-zoo/) (key renaming only; tensors are unchanged)."
        )
    like = f" as upstream's `{entry.config}`" if entry.config else ""
    return (
        f"The weights are `{ck.filename}` (sha256 `{config['source_checkpoint']['sha256']}`), registered by a user "
        f"in `{origin}` with the architecture and test protocol{like}; they are not a checkpoint released by "
        "mmaction2. Converted to safetensors by [slowonly-zoo](https://pypi.org/project/slowonly-zoo/) (key "
        "renaming only; tensors are unchanged)."
    )


def _model_card(entry: ModelEntry, config: dict[str, Any]) -> str:
    arch, ck, p = entry.architecture, entry.checkpoint, entry.protocol
    assert arch is not None and ck is not None
    from ..index.registry import PACKAGED_ORIGIN, entry_origin

    released = entry_origin(entry.name) == PACKAGED_ORIGIN
    lines = [
        "---",
        "license: apache-2.0",
        "library_name: slowonly-zoo",
        "pipeline_tag: video-classification",
        "tags:",
        *[f"- {t}" for t in ("video-classification", "action-recognition", "slowonly", "mmaction2", "safetensors")],
        "---",
        "",
        f"# {entry.name}",
        "",
        f"SlowOnly ResNet3D-{arch.depth}{' with non-local blocks' if arch.non_local else ''} "
        f"({arch.modality}, {arch.clip_len}x{arch.frame_interval}, {entry.num_classes} classes), "
        f"evaluated on {entry.dataset}. " + _provenance_sentence(entry, config),
        "",
        "## Reported results",
        "",
        "| dataset | top-1 | top-5 | mean class acc. | resolution | source |",
        "|---|---|---|---|---|---|",
    ]
    for r in entry.results:
        lines.append(
            f"| {r.dataset} | {_fmt(r.top1)} | {_fmt(r.top5)} | {_fmt(r.mean_class_accuracy)} | "
            f"{_fmt(r.resolution)} | {r.source} |"
        )
    if not entry.results:
        lines.append("| — | — | — | — | — | no reported results for these weights |")
    lines += [
        "",
        "Numbers are those reported by mmaction2; `slowonly-zoo verify` reproduces them."
        if released
        else "`slowonly-zoo verify` measures these weights on your copy of a test set.",
        "",
    ]
    if p is not None:
        resize = f"resize the short side to {p.resize_short}" if p.resize_short else "no resize"
        lines += [
            "## Test protocol",
            "",
            f"- {p.num_clips} clips of {p.clip_len} frames, frame interval {p.frame_interval}, sampled uniformly "
            "over the video",
            f"- {resize}, then {'three crops' if p.crop == 'three' else 'a center crop'} of {p.crop_size}x{p.crop_size}"
            f" ({p.num_views} view{'s' if p.num_views != 1 else ''} in all)",
            f"- normalisation: {p.normalize} (mean {list(p.mean)}, std {list(p.std)})",
            f"- scores: softmax per view, averaged over the views (`average_clips='{p.average_clips}'`)",
            f"- data: {p.data_format}",
            "",
        ]
    lines += [
        "## Usage",
        "",
        "```python",
        "import slowonly_zoo",
        "",
        f'model = slowonly_zoo.create_model("{entry.name}", pretrained=True)',
        "# or from a local copy of this folder:",
        f'model = slowonly_zoo.create_model("{entry.name}", checkpoint_path="path/to/this/folder")',
        "```",
        "",
        "## Source checkpoint",
        "",
        f"- file: `{ck.filename}`",
        f"- {'upstream URL' if released else 'registered URL'}: {ck.url}",
        f"- sha256: `{config['source_checkpoint']['sha256']}`",
        f"- upstream config: `{entry.config}`" if entry.config else "- upstream config: —",
        f"- converter version: {config['converter_version']}",
        "",
        "## Citation",
        "",
        "```bibtex",
        _CITATION,
        "```",
        "",
    ]
    return "\n".join(lines)


def _written_by_export(path: Path) -> bool:
    """Whether ``path`` (one of the three files :func:`export` writes) was written by an earlier export."""
    try:
        if path.name == WEIGHTS_FILE:
            return bool(read_safetensors_metadata(path).get(META_NAME))
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if path.name == CONFIG_FILE:
        try:
            data = json.loads(text)
        except ValueError:
            return False
        return isinstance(data, dict) and data.get("library_name") == "slowonly-zoo"
    return text.startswith("---\n") and "\nlibrary_name: slowonly-zoo\n" in text.split("\n---", 1)[0] + "\n"


def refuse_foreign_files(
    out_dir: str | os.PathLike[str],
    names: Iterable[str],
    is_ours: Callable[[Path], bool],
    *,
    force: bool,
    writer: str,
) -> None:
    """Refuse to write ``names`` into ``out_dir`` where that would replace what someone else put there.

    A missing or empty folder is fine. A non-empty one needs ``force``, and even then each of ``names`` present
    there must be a file ``is_ours`` recognises as ``writer``'s (other files are left alone). Raises
    :class:`ExportError` naming the folder or file, before anything is written. Shared by the hub export below and
    the deployment export (``slowonly_zoo/deploy.py``).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file, not a folder; pass a new or empty folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise ExportError(
            f"--out {out} is not empty; pass a new or empty folder, or --force to replace an earlier export there"
        )
    for fname in names:
        target = out / fname
        if (target.exists() or target.is_symlink()) and not (target.is_file() and is_ours(target)):
            raise ExportError(
                f"{target} was not written by {writer}, so it is not replaced even with --force; "
                "move it away or choose another --out folder"
            )


def check_export_folder(out_dir: str | os.PathLike[str], *, force: bool = False) -> None:
    """:func:`refuse_foreign_files` for the hub export's ``model.safetensors``, ``config.json`` and ``README.md``."""
    refuse_foreign_files(
        out_dir,
        (WEIGHTS_FILE, CONFIG_FILE, MODEL_CARD_FILE),
        _written_by_export,
        force=force,
        writer="slowonly-zoo export",
    )


def export(
    name: str,
    out_dir: str | os.PathLike[str],
    weights_path: str | os.PathLike[str] | None = None,
    *,
    progress: bool | None = None,
    force: bool = False,
) -> ExportResult:
    """Write ``out_dir/{model.safetensors, config.json, README.md}`` for model ``name``.

    ``weights_path`` may be an upstream ``.pth`` (verified against the index hash), a ``.safetensors`` written
    by this package, or an export folder; by default the weights are fetched into the cache first. ``out_dir``
    must be new or empty, or (``force``) hold an earlier export, which is replaced (see
    :func:`check_export_folder`).
    """
    from ..index import get_model_info
    from .checkpoint import read_safetensors, read_upstream_checkpoint, save_safetensors

    entry = get_model_info(name)
    ck = entry.checkpoint
    if ck is None or entry.architecture is None:
        raise ValueError(f"{entry.name!r} has no checkpoint of its own, so there is nothing to export")
    check_export_folder(out_dir, force=force)
    if weights_path is None:
        weights_path = fetch_weights_report(entry, progress=progress).path
    src = Path(weights_path)
    if src.is_dir():
        src = src / WEIGHTS_FILE
    require_regular_file(src)
    prefixes = accepted_prefixes(entry)
    if src.suffix == ".safetensors":
        meta = read_metadata(src)
        source_sha = meta.get(META_SOURCE_SHA256, "")
        conv_version = meta.get(META_CONVERTER_VERSION, cache.converter_version())
        state = read_safetensors(src)
    else:
        source_sha = sha256_file(src)
        conv_version = cache.converter_version()
        state = read_upstream_checkpoint(src)
    if not source_sha:
        raise WeightsFileError(
            f"{src} does not record which checkpoint it was converted from "
            f"('{META_SOURCE_SHA256}' metadata); export from the .pth or the cache instead"
        )
    if prefixes and not any(sha256_matches_prefix(source_sha, p) for p in prefixes):
        raise WeightsFileError(
            f"--weights {src} comes from a file with sha256 {source_sha[:8]}…, but {entry.name} is "
            f"{ck.filename} ({' or '.join(prefixes)}): give that file, or register your own entry to export "
            "other weights"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights_out = out / WEIGHTS_FILE
    with atomic_replace(weights_out) as tmp:
        save_safetensors(
            state,
            tmp,
            {
                "format": "pt",
                META_NAME: entry.name,
                META_SOURCE_SHA256: source_sha,
                META_SOURCE_FILENAME: ck.filename,
                META_CONVERTER_VERSION: conv_version,
            },
        )
    config = _config(entry, source_sha, conv_version)
    config_out, readme_out = out / CONFIG_FILE, out / MODEL_CARD_FILE
    atomic_write_text(config_out, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(readme_out, _model_card(entry, config))
    return ExportResult(out, weights_out, config_out, readme_out, source_sha)
