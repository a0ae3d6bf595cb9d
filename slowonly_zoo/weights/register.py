"""``slowonly-zoo register``: make your own weights a named model in one command.

:func:`register_weights` builds an index entry for a checkpoint you trained (or fine-tuned): the architecture and
test protocol of an existing entry (``like``), your head size and class names, no reported results (they are not
your model's numbers), and your file's own SHA-256. It appends the entry to an extra index file (the format of
``SLOWONLY_ZOO_EXTRA_INDEX``, see ``docs/architecture.md``) and imports the weights into the cache, so
``create_model(NAME, pretrained=True)``, ``predict NAME`` and ``export NAME`` work once ``SLOWONLY_ZOO_EXTRA_INDEX``
names that file. The model card ``export`` writes for such an entry says the weights are yours, not mmaction2's.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import config
from .._fileio import atomic_write_text
from ..errors import ExportError, ModelIndexError, UnknownModelError, WeightsFileError
from ..index import entry_to_index
from .hashing import sha256_file

__all__ = ["RegisterResult", "default_index_file", "register_weights"]

#: The extra index file :func:`register_weights` writes when ``SLOWONLY_ZOO_EXTRA_INDEX`` names none.
DEFAULT_INDEX_NAME = "slowonly_zoo_index.yml"


@dataclass(frozen=True)
class RegisterResult:
    """What :func:`register_weights` did: the entry's name, the index file it is in, the weights' sha256, whether
    that file is already read (named by ``SLOWONLY_ZOO_EXTRA_INDEX``) and the import's one-line outcome."""

    name: str
    index_file: Path
    sha256: str
    index_active: bool
    import_message: str


def default_index_file() -> Path:
    """The first file ``SLOWONLY_ZOO_EXTRA_INDEX`` names, else ``./slowonly_zoo_index.yml``."""
    paths = config.extra_index_paths()
    return paths[0] if paths else Path(DEFAULT_INDEX_NAME)


def _read_labels(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ModelIndexError(
            f"--labels {path} does not exist; pass a text file with one class name per line"
        ) from None
    except UnicodeDecodeError:
        raise ModelIndexError(f"--labels {path} is not UTF-8 text; save it as UTF-8, one class name per line") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ModelIndexError(f"--labels {path} holds no class names; write one name per line")
    return names


def _existing_models(index_file: Path) -> list[dict]:
    if not index_file.exists():
        return []
    try:
        data = yaml.safe_load(index_file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelIndexError(
            f"{index_file} is not a readable index file ({type(exc).__name__}); fix it or pass another --index"
        ) from None
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("Models", []), list):
        raise ModelIndexError(f"{index_file} is not an index file (a 'Models:' list); pass another --index")
    return list(data.get("Models") or [])


def _head_size(path: Path) -> int | None:
    """Outputs of the classifier in ``path`` (read without unpickling code); None when it has none."""
    from .checkpoint import read_upstream_checkpoint

    weight = read_upstream_checkpoint(path).get("head.fc.weight")
    return None if weight is None or weight.ndim != 2 else int(weight.shape[0])


def register_weights(
    weights: str | os.PathLike[str],
    name: str,
    like: str,
    *,
    num_classes: int | None = None,
    labels: str | os.PathLike[str] | None = None,
    dataset: str | None = None,
    index_file: str | os.PathLike[str] | None = None,
) -> RegisterResult:
    """Register ``weights`` (a ``.pth`` in mmaction2's layout, as ``train`` writes too) as model ``name``
    built like entry ``like``, in ``index_file`` (default :func:`default_index_file`), and cache them.

    ``num_classes`` defaults to the number of ``labels`` (a text file, one class name per line), else to ``like``'s
    head size. Raises :class:`~slowonly_zoo.errors.ExportError` when ``name`` exists (in the index or the file),
    :class:`~slowonly_zoo.errors.ModelIndexError` for unusable labels or head sizes, and
    :class:`~slowonly_zoo.errors.WeightsFileError` for a missing or non-regular weights file.
    """
    from ..index import Checkpoint, get_model_info, reload_index
    from ..index.registry import register_model_entry
    from .transfer import import_files

    index_path = Path(index_file) if index_file is not None else default_index_file()
    active = index_path.resolve() in {p.resolve() for p in config.extra_index_paths()}
    if active and not index_path.exists():  # the index refuses a named file that is missing: start it empty
        index_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(index_path, "Models: []\n")
    base = get_model_info(like)
    if base.is_ensemble or base.architecture is None or base.checkpoint is None:
        raise ModelIndexError(f"--like {like}: pick a single model with an architecture, not an ensemble")
    try:
        get_model_info(name)
    except UnknownModelError:
        pass
    else:
        raise ExportError(f"a model named {name!r} exists already; choose another --as name")
    src = Path(weights)
    if not src.is_file():
        raise WeightsFileError(f"{src} is not a weights file; pass the .pth you trained")
    if src.suffix != ".pth":  # the cache converts and verifies .pth files by their own hash
        raise WeightsFileError(
            f"{src}: register takes a checkpoint in mmaction2's .pth layout (`slowonly-zoo train` writes one as "
            "epoch_N.pth beside each epoch_N.safetensors); pass that file"
        )
    label_path = Path(labels).expanduser().resolve() if labels is not None else None
    names = _read_labels(label_path) if label_path is not None else None
    if num_classes is None:
        num_classes = len(names) if names else base.num_classes
    if num_classes < 1:
        raise ModelIndexError(f"--num-classes must be 1 or more, got {num_classes}")
    if names is not None and len(names) > num_classes:
        raise ModelIndexError(
            f"--labels {label_path} names {len(names)} classes but --num-classes is {num_classes}; "
            "make them agree (or leave --num-classes out)"
        )
    head = _head_size(src)
    if head is not None and head != num_classes:
        raise ModelIndexError(
            f"{src} has a {head}-way head but the entry would have {num_classes} classes; pass --num-classes {head} "
            f"(and --labels with {head} names)"
        )
    # the like-entry's label file only fits a head of its size
    label_file = str(label_path) if label_path else (base.label_file if num_classes == base.num_classes else None)

    models = _existing_models(index_path)
    if any(isinstance(m, dict) and m.get("Name") == name for m in models):
        raise ExportError(f"{index_path} already holds a model named {name!r}; choose another --as name")

    sha = sha256_file(src)
    entry = dataclasses.replace(
        base,
        name=name,
        aliases=(),
        dataset=dataset or "custom",
        num_classes=num_classes,
        label_file=label_file,
        results=(),
        params=None,
        train_recipe=None,
        training_data=None,
        checkpoint=Checkpoint(
            url=src.resolve().as_uri(), filename=src.name, sha256_prefix=sha[:8], format=base.checkpoint.format
        ),
    )
    record = entry_to_index(entry)
    register_model_entry(record)  # validates the entry before anything is written; known to this process at once
    index_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(index_path, yaml.safe_dump({"Models": [*models, record]}, sort_keys=False, allow_unicode=True))
    if active:
        reload_index()
    results = import_files([src])
    message = str(results[0]) if results else "not imported"
    return RegisterResult(name, index_path, sha, active, message)
