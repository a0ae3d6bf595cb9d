"""The one channel for what slowonly-zoo tells you while it works: progress bars and messages.

* Messages go to the ``slowonly_zoo`` logger (:data:`logger`); configure it as any logger
  (``logging.getLogger("slowonly_zoo").setLevel(logging.ERROR)``). Without configuration Python prints warnings
  and errors to stderr.
* Progress bars (downloads, ``verify``) are tqdm bars made by :func:`progress_bar`. Whether one is drawn:
  a ``progress=`` argument the caller passed, else ``SLOWONLY_ZOO_PROGRESS``, else whether stderr is a terminal.
* One switch silences both: :func:`slowonly_zoo.config.set_quiet` (the CLI's ``--quiet``) or
  ``SLOWONLY_ZOO_QUIET=1``. It wins over everything above, errors excepted (they are raised, or logged at
  ``ERROR``).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from . import config

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["logger", "progress_bar", "show_progress", "tqdm_class"]

#: The package's logger: every message slowonly-zoo emits goes through it.
logger = logging.getLogger("slowonly_zoo")


class _QuietFilter(logging.Filter):
    """Drops records below ``ERROR`` while :func:`slowonly_zoo.config.quiet` is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not config.quiet()


if not any(isinstance(f, _QuietFilter) for f in logger.filters):
    logger.addFilter(_QuietFilter())


def show_progress(progress: bool | None = None) -> bool:
    """Whether to draw a progress bar: never when quiet; else ``progress`` when given; else
    ``SLOWONLY_ZOO_PROGRESS``; else whether stderr is a terminal."""
    if config.quiet():
        return False
    if progress is not None:
        return bool(progress)
    forced = config.progress()
    if forced is not None:
        return forced
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def progress_bar(iterable: Any = None, *, progress: bool | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar (``tqdm.auto``: a widget in notebooks) that is disabled unless :func:`show_progress` says so;
    ``kwargs`` go to tqdm (``total``, ``desc``, ``unit``, ...)."""
    from tqdm.auto import tqdm

    kwargs["disable"] = bool(kwargs.get("disable", False)) or not show_progress(progress)
    return tqdm(iterable, **kwargs)


def tqdm_class(progress: bool | None = None) -> type[tqdm] | None:
    """For libraries that take a tqdm class (huggingface_hub's ``tqdm_class=``): None (their default bar) when a
    bar should be shown, else a tqdm class whose bars are disabled."""
    if show_progress(progress):
        return None
    from tqdm.auto import tqdm

    class _DisabledTqdm(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return _DisabledTqdm
