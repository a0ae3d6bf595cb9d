"""Every ``SLOWONLY_ZOO_*`` environment variable, read in one place, when it is needed (never cached at import,
so a change of ``os.environ`` applies to the next call).

One rule for flags: ``1``/``true``/``yes``/``on`` and ``0``/``false``/``no``/``off`` (any case); unset or empty
means the default; anything else is a :class:`~slowonly_zoo.errors.ConfigError` naming the variable. Numbers must
parse as numbers, likewise. :data:`VARIABLES` lists each variable with its meaning and default; the README's
table ("Getting the weights") shows the same list, and a test keeps the two, and the code, in step.

    >>> import slowonly_zoo.config as config
    >>> config.set_quiet(True)  # the one switch that silences progress bars and messages (also SLOWONLY_ZOO_QUIET)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

__all__ = [
    "VARIABLES",
    "Variable",
    "allow_emulated_bf16",
    "backoff",
    "connect_timeout",
    "dist_timeout",
    "env_bool",
    "env_float",
    "env_int",
    "extra_index_paths",
    "hf_prefix",
    "hf_revision",
    "home",
    "keep_downloads",
    "mirrors",
    "offline",
    "origins",
    "progress",
    "quiet",
    "retries",
    "set_quiet",
    "timeout",
    "trust_claims",
]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, what it means, and its default as the README states it."""

    name: str
    meaning: str
    default: str


#: Every variable slowonly-zoo reads, in the README table's order.
VARIABLES: tuple[Variable, ...] = (
    Variable("SLOWONLY_ZOO_HOME", "cache root", "`$XDG_CACHE_HOME/slowonly_zoo` or `~/.cache/slowonly_zoo`"),
    Variable(
        "SLOWONLY_ZOO_OFFLINE",
        "use only the cache (and the HF cache); a miss fails at once naming the file and the import command "
        "(`HF_HUB_OFFLINE=1` does the same)",
        "off",
    ),
    Variable("SLOWONLY_ZOO_MIRRORS", "comma-separated mirror base URLs / directories", "none"),
    Variable(
        "SLOWONLY_ZOO_ORIGINS",
        "comma-separated `https://` base URLs tried, in order, after the upstream URL of an mmaction2 file (same "
        "path, same hash check); empty: the upstream URL only",
        "the two Aliyun OSS hosts of the openmmlab bucket",
    ),
    Variable("SLOWONLY_ZOO_HF_PREFIX", "Hugging Face Hub organisation of the mirrors", "none"),
    Variable("SLOWONLY_ZOO_HF_REVISION", "Hub revision (branch, tag or commit) of the mirrors", "`main`"),
    Variable(
        "SLOWONLY_ZOO_CONNECT_TIMEOUT",
        "seconds to wait for a download server to accept the connection (a closed port or dead host fails this fast)",
        "10",
    ),
    Variable(
        "SLOWONLY_ZOO_TIMEOUT", "seconds to wait for a download server's answer and for each read once connected", "30"
    ),
    Variable("SLOWONLY_ZOO_RETRIES", "download retries after the first attempt", "5"),
    Variable("SLOWONLY_ZOO_BACKOFF", "first retry delay in seconds (doubled each retry, at most 30)", "1"),
    Variable("SLOWONLY_ZOO_KEEP_DOWNLOADS", "keep the original `.pth` next to the converted file", "off"),
    Variable(
        "SLOWONLY_ZOO_LOCK",
        "a lock file (`slowonly-zoo lock`): every download and load must match its full sha256 and size, and a "
        "model it does not list is refused (the CLI's `--lock`)",
        "none",
    ),
    Variable(
        "SLOWONLY_ZOO_TRUST_CLAIMS",
        "let a converted `.safetensors` that only *claims* its source sha256 (a Hugging Face mirror, an export) "
        "stand for an index entry; `import --trust-claims` does the same for one import",
        "off",
    ),
    Variable(
        "SLOWONLY_ZOO_EXTRA_INDEX", "extra index YAML files (`os.pathsep`-separated) with your own checkpoints", "none"
    ),
    Variable(
        "SLOWONLY_ZOO_PROGRESS",
        "`1`/`0` forces progress bars (downloads, `verify`) on/off",
        "on when stderr is a terminal",
    ),
    Variable(
        "SLOWONLY_ZOO_QUIET",
        "no progress bars and no messages below errors (the CLI's `--quiet`, `slowonly_zoo.config.set_quiet`)",
        "off",
    ),
    Variable(
        "SLOWONLY_ZOO_ALLOW_EMULATED_BF16",
        "let `--amp` run bf16 on a CPU without native bf16 (no `avx512_bf16` / `amx_bf16`), where torch emulates it "
        "slower than fp32",
        "off",
    ),
    Variable(
        "SLOWONLY_ZOO_DIST_TIMEOUT",
        "seconds a rank of a `torchrun` job waits for the others (e.g. while rank 0 merges the scores)",
        "21600",
    ),
)

_NAMES = frozenset(v.name for v in VARIABLES)


# --------------------------------------------------------------------------------------------------
# the rules
# --------------------------------------------------------------------------------------------------


def _raw(name: str) -> str | None:
    """The stripped value of ``name``, or None when unset or empty."""
    if name.startswith("SLOWONLY_ZOO_") and name not in _NAMES:  # a typo here would silently read nothing
        raise KeyError(f"{name} is not one of slowonly_zoo.config.VARIABLES")
    value = os.environ.get(name, "").strip()
    return value or None


def env_bool(name: str, default: bool) -> bool:
    """``name`` as a flag (``1/true/yes/on``, ``0/false/no/off``, any case); ``default`` when unset or empty."""
    raw = _raw(name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a flag: set it to 1 or 0 (or unset it)")


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    """``name`` as a number (at least ``minimum``); ``default`` when unset or empty."""
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not a number: set it to a number like {default:g} (or unset it)"
        ) from None
    if not value >= minimum:  # also refuses nan
        raise ConfigError(f"{name}={raw!r} is below {minimum:g}: set it to a number of at least {minimum:g}")
    return value


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    """``name`` as a whole number (at least ``minimum``); ``default`` when unset or empty."""
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number: set it to one like {default} (or unset it)") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} is below {minimum}: set it to a whole number of at least {minimum}")
    return value


# --------------------------------------------------------------------------------------------------
# the variables
# --------------------------------------------------------------------------------------------------


def home() -> Path:
    """The cache root: ``$SLOWONLY_ZOO_HOME``, else ``$XDG_CACHE_HOME/slowonly_zoo``, else ``~/.cache/slowonly_zoo``."""
    explicit = _raw("SLOWONLY_ZOO_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "slowonly_zoo"


def offline() -> bool:
    """``SLOWONLY_ZOO_OFFLINE``, or huggingface_hub's ``HF_HUB_OFFLINE`` (read as huggingface_hub reads it: a true
    value turns it on, anything else leaves it off)."""
    return env_bool("SLOWONLY_ZOO_OFFLINE", False) or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def mirrors() -> list[str]:
    """The entries of ``$SLOWONLY_ZOO_MIRRORS`` (comma-separated), stripped, in order."""
    return [m.strip() for m in (_raw("SLOWONLY_ZOO_MIRRORS") or "").split(",") if m.strip()]


def origins() -> tuple[str, ...] | None:
    """The base URLs of ``$SLOWONLY_ZOO_ORIGINS`` (comma-separated, stripped, in order); ``()`` when it is set but
    empty (the upstream URL only); None when unset (the built-in origins)."""
    raw = _raw("SLOWONLY_ZOO_ORIGINS")
    if raw is None:
        return () if "SLOWONLY_ZOO_ORIGINS" in os.environ else None
    found = tuple(o.strip() for o in raw.split(",") if o.strip())
    for origin in found:
        if not origin.startswith(("http://", "https://")):
            raise ConfigError(
                f"SLOWONLY_ZOO_ORIGINS entry {origin!r} is not a URL: list http(s):// base URLs separated by commas "
                "(put local folders in SLOWONLY_ZOO_MIRRORS)"
            )
    return found


def hf_prefix() -> str | None:
    """``$SLOWONLY_ZOO_HF_PREFIX`` without surrounding slashes, or None."""
    return (_raw("SLOWONLY_ZOO_HF_PREFIX") or "").strip("/") or None


def hf_revision() -> str | None:
    """``$SLOWONLY_ZOO_HF_REVISION``, or None (huggingface_hub then uses ``main``)."""
    return _raw("SLOWONLY_ZOO_HF_REVISION")


def timeout(default: float = 30.0) -> float:
    """``$SLOWONLY_ZOO_TIMEOUT``: seconds to wait for the server's answer and for each read (once connected)."""
    return env_float("SLOWONLY_ZOO_TIMEOUT", default)


def connect_timeout(default: float = 10.0) -> float:
    """``$SLOWONLY_ZOO_CONNECT_TIMEOUT``: seconds to wait for a download server to accept the connection."""
    return env_float("SLOWONLY_ZOO_CONNECT_TIMEOUT", default)


def trust_claims() -> bool:
    """``$SLOWONLY_ZOO_TRUST_CLAIMS``: accept a converted file's own claim about its source checkpoint."""
    return env_bool("SLOWONLY_ZOO_TRUST_CLAIMS", False)


def retries(default: int = 5) -> int:
    """``$SLOWONLY_ZOO_RETRIES``: download attempts after the first, on transient errors."""
    return env_int("SLOWONLY_ZOO_RETRIES", default)


def backoff(default: float = 1.0) -> float:
    """``$SLOWONLY_ZOO_BACKOFF``: the first retry delay in seconds."""
    return env_float("SLOWONLY_ZOO_BACKOFF", default)


def allow_emulated_bf16() -> bool:
    """``$SLOWONLY_ZOO_ALLOW_EMULATED_BF16``: run ``--amp`` on a CPU that would emulate bf16 instead of refusing."""
    return env_bool("SLOWONLY_ZOO_ALLOW_EMULATED_BF16", False)


def keep_downloads() -> bool:
    """``$SLOWONLY_ZOO_KEEP_DOWNLOADS``: keep the original upstream file after converting it."""
    return env_bool("SLOWONLY_ZOO_KEEP_DOWNLOADS", False)


def set_lock_file(path: str | os.PathLike[str] | None) -> None:
    """Force a lock file (the CLI's ``--lock``; it wins over ``$SLOWONLY_ZOO_LOCK``), or ``None`` to go back to
    ``$SLOWONLY_ZOO_LOCK``."""
    if path is None:
        _overrides.pop("lock", None)
    else:
        _overrides["lock"] = Path(path)


def lock_file() -> Path | None:
    """The lock file in force: ``--lock`` (:func:`set_lock_file`), else ``$SLOWONLY_ZOO_LOCK``, else None."""
    forced = _overrides.get("lock")
    if isinstance(forced, Path):
        return forced
    raw = (_raw("SLOWONLY_ZOO_LOCK") or "").strip()
    return Path(raw).expanduser() if raw else None


def extra_index_paths() -> list[Path]:
    """The files named by ``$SLOWONLY_ZOO_EXTRA_INDEX`` (``os.pathsep``-separated), in order."""
    return [
        Path(p.strip()).expanduser() for p in (_raw("SLOWONLY_ZOO_EXTRA_INDEX") or "").split(os.pathsep) if p.strip()
    ]


def dist_timeout(default: float = 6 * 3600.0) -> float:
    """``$SLOWONLY_ZOO_DIST_TIMEOUT``: seconds a distributed rank waits for the others."""
    return env_float("SLOWONLY_ZOO_DIST_TIMEOUT", default, minimum=1.0)


def progress() -> bool | None:
    """``$SLOWONLY_ZOO_PROGRESS`` as True / False, or None when unset (then: whether stderr is a terminal)."""
    if _raw("SLOWONLY_ZOO_PROGRESS") is None:
        return None
    return env_bool("SLOWONLY_ZOO_PROGRESS", False)


_overrides: dict[str, bool | Path] = {}  # set in code, taking precedence over the environment


def set_quiet(value: bool | None) -> None:
    """Silence (True) or allow (False) progress bars and messages below errors for this process; None goes back
    to ``$SLOWONLY_ZOO_QUIET``."""
    if value is None:
        _overrides.pop("quiet", None)
    else:
        _overrides["quiet"] = bool(value)


def quiet() -> bool:
    """Whether progress bars and messages below errors are silenced: :func:`set_quiet`, else ``SLOWONLY_ZOO_QUIET``."""
    if "quiet" in _overrides:
        return bool(_overrides["quiet"])
    return env_bool("SLOWONLY_ZOO_QUIET", False)
