"""Checks a weights file passes before it is read: a regular, non-empty file; a ``.pth`` that is a PyTorch
checkpoint at all; the sha256 prefix a user-supplied file's name carries.

Every refusal is a :class:`~slowonly_zoo.errors.WeightsFileError` (or ``FileNotFoundError``) whose message names
the file and says what to do. A FIFO would block ``open()`` forever, so the file type is checked with ``stat``
first. Importing this module does not import torch.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import WeightsFileError
from ..progress import logger as log
from .hashing import hash_prefix_from_filename, sha256_file, sha256_matches_prefix
from .layout import WEIGHTS_FILE

__all__ = ["check_torch_file", "check_user_checkpoint", "damaged", "read_metadata", "require_regular_file"]

#: How a file written by ``torch.save`` starts: a zip archive (torch >= 1.6) or a pickle (older torch).
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")


def require_regular_file(path: str | os.PathLike[str], what: str = "weights file") -> Path:
    """``path`` if it is an existing, non-empty regular file (symbolic links followed); else ``WeightsFileError``
    (or ``FileNotFoundError``)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no {what} at {path}") from None
    if not stat.S_ISREG(st.st_mode):
        raise WeightsFileError(
            f"{path} is not a regular file (a FIFO, socket, device or folder), so it is not read as a {what}; "
            "give the path of the file itself"
        )
    if st.st_size == 0:
        raise WeightsFileError(f"{path} is empty (0 bytes): download or copy the {what} again")
    return path


def check_torch_file(path: Path) -> None:
    """Refuse a file that does not start like a ``torch.save`` file (a text or HTML page saved as ``.pth``)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head.startswith(_TORCH_MAGIC):
        raise WeightsFileError(
            f"{path} is not a PyTorch checkpoint (it starts with {head!r}, not what torch.save writes; a text or "
            "HTML file?): give the .pth file itself, downloaded again if need be"
        )


def damaged(path: Path, kind: str, err: BaseException) -> WeightsFileError:
    """The error for a ``kind`` file (".pth", ".safetensors") that its reader could not parse."""
    detail = (str(err).strip().splitlines() or [""])[0].split(". ", 1)[0][:160]  # the reader's first sentence
    return WeightsFileError(
        f"{path} is a damaged or truncated {kind} file ({type(err).__name__}{': ' + detail if detail else ''}); "
        "download, copy or export it again"
    )


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The header metadata of a ``.safetensors`` file; a missing, non-regular or damaged file is a
    ``WeightsFileError`` (or ``FileNotFoundError``) naming it."""
    from .layout import read_safetensors_metadata

    path = require_regular_file(path, ".safetensors file")
    try:
        return read_safetensors_metadata(path)
    except Exception as err:  # noqa: BLE001 - safetensors raises its own SafetensorError for a damaged header
        raise damaged(path, ".safetensors", err) from None


def check_user_checkpoint(path: str | os.PathLike[str]) -> Path:
    """Check a weights file the user named (``checkpoint_path=``, ``--checkpoint``) before it is read.

    It must be a regular file. When its name ends like an upstream file (``...-<8 hex digits>.pth``), its sha256
    must start with those digits (``WeightsFileError`` otherwise); when it does not, a log line (INFO) says that
    it is loaded without a hash check. A folder (an export) is checked through its ``model.safetensors``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    path = require_regular_file(path, "checkpoint")
    prefix = hash_prefix_from_filename(path.name)
    if prefix is None:
        log.info("%s: its name carries no sha256 prefix, so it is loaded without a hash check", path)
        return path
    digest = sha256_file(path)
    if not sha256_matches_prefix(digest, prefix):
        raise WeightsFileError(
            f"{path} is named with sha256 prefix {prefix} but its sha256 starts {digest[:8]}: the file is damaged "
            "or a different one; download it again (or rename it if it is your own checkpoint)"
        )
    log.info("%s: sha256 matches the prefix %s in its name", path, prefix)
    return path
