"""Moving weights in and out of the cache: ``import`` files you have, ``download`` by name, ``export`` for the Hub.

These are the Python functions behind ``slowonly-zoo import / download / export``; each returns one result per
input and never stops at the first failure, so a command can print a per-item report.

* :func:`import_files` recognises upstream checkpoint files by name and sha256 prefix, and renamed files by
  their hash alone (against every index entry, including ``SLOWONLY_ZOO_EXTRA_INDEX`` / registered ones);
  it verifies, converts and caches them. Export folders / ``.safetensors`` written by :func:`export` are
  recognised by the source sha256 in their metadata.
* :func:`download` fetches names into the cache through :func:`.sources.fetch_weights`.
* :func:`export` writes ``model.safetensors`` + ``config.json`` + ``README.md`` (a model card), ready to
  upload to the Hugging Face Hub and loadable by ``create_model(..., checkpoint_path=DIR)`` and the Hub source.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from . import cache
from .hashing import hash_prefix_from_filename, sha256_file, sha256_matches_prefix
from .sources import HF_CONFIG_FILE, HF_WEIGHTS_FILE, WeightsNotFoundError, accepted_prefixes, fetch_weights_report

if TYPE_CHECKING:
    from ..index import ModelEntry

__all__ = ["DownloadReport", "ExportResult", "ImportResult", "download", "export", "import_files"]

_CHECKPOINT_SUFFIXES = (".pth", ".safetensors")


# ----------------------------------------------------------------------------------------------------------
# import
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    """What happened to one input file.

    ``status`` is 'imported', 'already-cached', 'mismatch' (named like a known checkpoint, wrong hash),
    'unknown' (no index entry has this hash) or 'error' (unreadable / not convertible).
    """

    path: Path
    status: str
    names: tuple[str, ...]
    sha256: str | None
    message: str

    @property
    def ok(self) -> bool:
        return self.status in ("imported", "already-cached")

    def __str__(self) -> str:
        return f"{self.status:>14}  {self.path}: {self.message}"


def _all_entries() -> list[ModelEntry]:
    from ..index import get_model_info, list_models

    return [get_model_info(n) for n in list_models(pretrained=True)]


def _expand(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _CHECKPOINT_SUFFIXES)
        else:
            files.append(path)
    return list(dict.fromkeys(files))


def _known_filenames(entry: ModelEntry) -> tuple[str, ...]:
    ck = entry.checkpoint
    return (ck.filename, *(getattr(ck, "previous_filenames", ()) or ())) if ck else ()


def _import_one(path: Path, entries: Sequence[ModelEntry]) -> ImportResult:
    if not path.is_file():
        return ImportResult(path, "error", (), None, "no such file")
    is_safetensors = path.suffix == ".safetensors" or path.name == HF_WEIGHTS_FILE
    if is_safetensors:
        meta = cache.read_safetensors_metadata(path)
        digest = meta.get(cache.META_SOURCE_SHA256)
        if not digest:
            return ImportResult(
                path,
                "unknown",
                (),
                None,
                f"a .safetensors without '{cache.META_SOURCE_SHA256}' "
                "metadata: cannot tell which checkpoint it comes from (import the .pth instead)",
            )
    else:
        digest = sha256_file(path)
    by_hash = [e for e in entries if any(sha256_matches_prefix(digest, p) for p in accepted_prefixes(e))]
    by_name = [e for e in entries if path.name in _known_filenames(e)]
    if not by_hash:
        if by_name and not is_safetensors:
            expected = " or ".join(dict.fromkeys(p for e in by_name for p in accepted_prefixes(e)))
            return ImportResult(
                path,
                "mismatch",
                tuple(e.name for e in by_name),
                digest,
                f"named like the checkpoint of {', '.join(e.name for e in by_name)} but its sha256 "
                f"starts {digest[:8]}, expected {expected}: the file is damaged or a different "
                "file; not imported",
            )
        suffix = hash_prefix_from_filename(path.name)
        note = (
            f"; its name ends in -{suffix} but its sha256 starts {digest[:8]} (damaged?)"
            if suffix and not sha256_matches_prefix(digest, suffix)
            else ""
        )
        return ImportResult(
            path,
            "unknown",
            (),
            digest,
            f"no index entry has a checkpoint with sha256 {digest[:8]}…{note}. To use your own "
            "checkpoint, add an entry with SLOWONLY_ZOO_EXTRA_INDEX or register_model_entry()",
        )

    how = "by name and sha256" if by_name else "by sha256 (renamed file)"
    imported, cached = [], []
    state: dict[str, Any] | None = None
    for entry in by_hash:
        with FileLock(str(cache.lock_path(entry.name))):
            check = cache.check_cached(entry.name, source_sha256_prefixes=accepted_prefixes(entry))
            if check.ok and check.record is not None and check.record.original_sha256 == digest:
                cached.append(entry.name)
                continue
            source = str(path.resolve())
            if is_safetensors:
                cache.store_safetensors_file(entry.name, path, source=source, source_kind="import")
            else:
                if state is None:
                    from .checkpoint import read_upstream_checkpoint

                    state = read_upstream_checkpoint(path)
                cache.store_state_dict(
                    entry.name,
                    state,
                    source=source,
                    source_kind="import",
                    original_filename=path.name,
                    original_sha256=digest,
                    original_size=path.stat().st_size,
                )
            imported.append(entry.name)
    names = tuple(e.name for e in by_hash)
    if imported:
        extra = f" (already cached: {', '.join(cached)})" if cached else ""
        return ImportResult(
            path,
            "imported",
            names,
            digest,
            f"recognised {how} as {', '.join(imported)}; verified, converted, cached{extra}",
        )
    return ImportResult(
        path,
        "already-cached",
        names,
        digest,
        f"recognised {how} as {', '.join(cached)}; the cache already holds these weights",
    )


def import_files(paths: Iterable[str | os.PathLike[str]]) -> list[ImportResult]:
    """Verify, convert and cache checkpoint files (folders are searched for ``*.pth`` / ``*.safetensors``).

    A file is recognised when the first 8 hex digits of its sha256 equal an index entry's ``sha256_prefix``
    (whatever its name), so renamed files work; a file named like a known checkpoint whose hash differs is
    reported as 'mismatch'. Every file gets an :class:`ImportResult`; failures never stop the others.
    """
    entries = _all_entries()
    results = []
    for path in _expand(paths):
        try:
            results.append(_import_one(path, entries))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the rest
            results.append(ImportResult(path, "error", (), None, f"{type(exc).__name__}: {exc}"))
    return results


# ----------------------------------------------------------------------------------------------------------
# download
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadReport:
    """Outcome for one model: ``status`` 'cached' (valid cache entry, cheap check), 'verified' (cache entry
    re-hashed in full), 'fetched' (got from ``source``), 'repaired' (a damaged cache entry was replaced) or
    'failed' (``message`` lists every source tried)."""

    name: str
    status: str
    path: Path | None
    source: str | None
    message: str

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def __str__(self) -> str:
        return f"{self.status:>9}  {self.name}: {self.message}"


def download(
    names: Iterable[str] | None = None,
    *,
    verify: bool = False,
    progress: bool | None = None,
    offline: bool | None = None,
) -> list[DownloadReport]:
    """Fetch each model (``None``: every model with a checkpoint) into the cache; one report per name.

    ``verify=True`` re-hashes cached files in full (a damaged entry is discarded and fetched again).
    """
    from ..index import get_model_info, list_models

    reports = []
    for raw in list_models(pretrained=True) if names is None else list(names):
        try:
            entry = get_model_info(raw)
        except KeyError as exc:  # UnknownModelError carries suggestions in its message
            reports.append(DownloadReport(raw, "failed", None, None, str(exc).strip("'\"")))
            continue
        try:
            result = fetch_weights_report(entry, progress=progress, offline=offline, verify=verify)
        except WeightsNotFoundError as exc:
            reports.append(DownloadReport(entry.name, "failed", None, None, str(exc)))
            continue
        record = result.record
        if result.from_cache:
            status = "verified" if verify else "cached"
            message = f"{status} in {result.path} (from {record.source})"
        else:
            status = "repaired" if result.discarded else "fetched"
            message = (
                f"{'replaced damaged cache entry (' + result.discarded + '); ' if result.discarded else ''}"
                f"got {record.original_filename or entry.name} from {record.source}, sha256 "
                f"{record.original_sha256[:12]}… -> {result.path}"
            )
        reports.append(DownloadReport(entry.name, status, result.path, record.source, message))
    return reports


# ----------------------------------------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------------------------------------

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


def _model_card(entry: ModelEntry, config: dict[str, Any]) -> str:
    arch, ck, p = entry.architecture, entry.checkpoint, entry.protocol
    assert arch is not None and ck is not None
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
        f"evaluated on {entry.dataset}. The weights are mmaction2's released checkpoint `{ck.filename}`, "
        "converted to safetensors by [slowonly-zoo](https://pypi.org/project/slowonly-zoo/) (key renaming "
        "only; tensors are unchanged).",
        "",
        "## Reported results",
        "",
        "| dataset | top-1 | top-5 | mean class acc. | resolution | source |",
        "|---|---|---|---|---|---|",
    ]
    for r in entry.results:
        where = getattr(r, "source", "") or ""
        lines.append(
            f"| {r.dataset} | {_fmt(r.top1)} | {_fmt(r.top5)} | {_fmt(r.mean_class_accuracy)} | "
            f"{_fmt(getattr(r, 'resolution', None))} | {where} |"
        )
    lines += ["", "Numbers are those reported by mmaction2; `slowonly-zoo verify` reproduces them.", ""]
    if p is not None:
        resize = f"resize the short side to {p.resize_short}" if p.resize_short else "no resize"
        lines += [
            "## Test protocol",
            "",
            f"- {p.num_clips} clips of {p.clip_len} frames, frame interval {p.frame_interval}, sampled uniformly "
            "over the video",
            f"- {resize}, then {'three crops' if p.crop == 'three' else 'a center crop'} of {p.crop_size}x{p.crop_size}"
            f" ({config['test_protocol'].get('num_views', '?')} views in all)",
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
        f"- upstream URL: {ck.url}",
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


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, cache.FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export(
    name: str,
    out_dir: str | os.PathLike[str],
    weights_path: str | os.PathLike[str] | None = None,
    *,
    progress: bool | None = None,
) -> ExportResult:
    """Write ``out_dir/{model.safetensors, config.json, README.md}`` for model ``name``.

    ``weights_path`` may be an upstream ``.pth`` (verified against the index hash), a ``.safetensors`` written
    by this package, or an export folder; by default the weights are fetched into the cache first.
    """
    from ..index import get_model_info
    from .checkpoint import read_safetensors, read_upstream_checkpoint, save_safetensors

    entry = get_model_info(name)
    ck = entry.checkpoint
    if ck is None or entry.architecture is None:
        raise ValueError(f"{entry.name!r} has no checkpoint of its own, so there is nothing to export")
    if weights_path is None:
        weights_path = fetch_weights_report(entry, progress=progress).path
    src = Path(weights_path)
    if src.is_dir():
        src = src / HF_WEIGHTS_FILE
    if not src.is_file():
        raise FileNotFoundError(f"no weights at {src}")
    prefixes = accepted_prefixes(entry)
    if src.suffix == ".safetensors":
        meta = cache.read_safetensors_metadata(src)
        source_sha = meta.get(cache.META_SOURCE_SHA256, "")
        conv_version = meta.get(cache.META_CONVERTER_VERSION, cache.converter_version())
        state = read_safetensors(src)
    else:
        source_sha = sha256_file(src)
        conv_version = cache.converter_version()
        state = read_upstream_checkpoint(src)
    if not source_sha:
        raise ValueError(
            f"{src} does not record which checkpoint it was converted from "
            f"('{cache.META_SOURCE_SHA256}' metadata); export from the .pth or the cache instead"
        )
    if prefixes and not any(sha256_matches_prefix(source_sha, p) for p in prefixes):
        raise ValueError(
            f"{src} comes from a file with sha256 {source_sha[:8]}…, but {entry.name} is "
            f"{ck.filename} ({' or '.join(prefixes)}); register your own entry to export other weights"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights_out = out / HF_WEIGHTS_FILE
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{HF_WEIGHTS_FILE}.", suffix=".tmp")
    os.close(fd)
    try:
        save_safetensors(
            state,
            tmp,
            {
                "format": "pt",
                cache.META_NAME: entry.name,
                cache.META_SOURCE_SHA256: source_sha,
                cache.META_SOURCE_FILENAME: ck.filename,
                cache.META_CONVERTER_VERSION: conv_version,
            },
        )
        os.chmod(tmp, cache.FILE_MODE)
        os.replace(tmp, weights_out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    config = _config(entry, source_sha, conv_version)
    config_out, readme_out = out / HF_CONFIG_FILE, out / "README.md"
    _atomic_write(config_out, (json.dumps(config, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    _atomic_write(readme_out, _model_card(entry, config).encode("utf-8"))
    return ExportResult(out, weights_out, config_out, readme_out, source_sha)
