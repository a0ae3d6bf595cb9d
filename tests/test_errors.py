"""slowonly_zoo.errors: every error the package raises on purpose, under one base, keeping its builtin parent; the
old modules still export the names they had; the CLI prints any of them as one readable line."""

from __future__ import annotations

import ast
import builtins
import importlib
import subprocess
import sys

import pytest
from support import REPO_ROOT

import slowonly_zoo
from slowonly_zoo import cli, errors
from slowonly_zoo.errors import SlowOnlyZooError

PACKAGE = REPO_ROOT / "slowonly_zoo"
ERROR_CLASSES = [getattr(errors, name) for name in errors.__all__]

# (module, name) pairs that existed before errors.py held the classes; they must keep working.
FORMER_HOMES = [
    ("slowonly_zoo.index", "ModelIndexError"),
    ("slowonly_zoo.index", "UnknownModelError"),
    ("slowonly_zoo.weights.convert", "CheckpointMismatchError"),
    ("slowonly_zoo.weights.checkpoint", "UnsafeCheckpointError"),
    ("slowonly_zoo.weights.download", "DownloadError"),
    ("slowonly_zoo.weights.download", "HTTPAccessError"),
    ("slowonly_zoo.weights.download", "ChecksumMismatchError"),
    ("slowonly_zoo.weights.sources", "WeightsNotFoundError"),
    ("slowonly_zoo.data.annotations", "AnnotationError"),
    ("slowonly_zoo.data.decode", "VideoDecodeError"),
    ("slowonly_zoo.data.rawframes", "FrameReadError"),
    ("slowonly_zoo.inference", "InferenceError"),
    ("slowonly_zoo.evaluation.runner", "BadInputError"),
    ("slowonly_zoo.evaluation.scores", "RunMismatchError"),
    ("slowonly_zoo.evaluation.fusion", "ScoreMismatchError"),
    ("slowonly_zoo.cli", "CLIError"),
]


def _exception_classes_outside_errors_py() -> list[str]:
    """``path: ClassName`` of every public class defined outside errors.py whose name ends in Error/Exception."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            public = isinstance(node, ast.ClassDef) and not node.name.startswith("_")
            if public and node.name.endswith(("Error", "Exception")):
                found.append(f"{path.relative_to(REPO_ROOT).as_posix()}: {node.name}")
    return found


def test_every_exception_class_of_the_package_lives_in_errors_py():
    assert _exception_classes_outside_errors_py() == []


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_each_error_has_the_base_and_a_builtin_parent(cls):
    assert issubclass(cls, SlowOnlyZooError)
    if cls is SlowOnlyZooError:
        return
    builtin_parents = [
        c for c in cls.__mro__ if c.__module__ == "builtins" and c not in (Exception, BaseException, object)
    ]
    assert builtin_parents, f"{cls.__name__} has no builtin parent besides Exception"
    assert getattr(slowonly_zoo, cls.__name__) is cls  # exported at the top level too


@pytest.mark.parametrize(("module", "name"), FORMER_HOMES, ids=lambda x: x)
def test_former_modules_re_export_the_same_class(module, name):
    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


def test_builtin_behaviour_is_kept():
    with pytest.raises(KeyError) as info:  # callers that caught KeyError still do
        raise errors.UnknownModelError("slowonly_r50_typo", ["slowonly_r50_8x8x1_k400"])
    assert str(info.value).startswith("unknown SlowOnly model 'slowonly_r50_typo'. Did you mean: slowonly_r50")
    http = errors.HTTPAccessError("HTTP 404 Not Found: u", 404)
    assert isinstance(http, errors.DownloadError) and isinstance(http, RuntimeError) and http.status == 404
    decode = errors.VideoDecodeError("a.mp4", "no video stream")
    assert (decode.path, decode.reason, str(decode)) == (
        "a.mp4",
        "no video stream",
        "cannot decode video 'a.mp4': no video stream",
    )
    assert issubclass(errors.ConfigError, ValueError) and issubclass(errors.AnnotationError, ValueError)


def test_errors_module_imports_only_the_standard_library():
    tree = ast.parse((PACKAGE / "errors.py").read_text(encoding="utf-8"))
    runtime_imports = {
        alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names
    } | {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert runtime_imports <= set(sys.stdlib_module_names) | {"__future__"}
    code = "import sys, slowonly_zoo.errors; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=False).returncode == 0


# --------------------------------------------------------------------------------------------------
# the command line catches the base
# --------------------------------------------------------------------------------------------------


class _BrandNewError(SlowOnlyZooError, RuntimeError):
    """An error class the CLI has never heard of: catching the base is what makes it readable."""


@pytest.mark.parametrize(
    ("exc", "readable"),
    [
        (_BrandNewError("the new thing failed; do this instead"), True),
        (errors.UnknownModelError("nope", ["slowonly_r50_8x8x1_k400"]), True),
        (FileNotFoundError(2, "No such file or directory", "/no/such/video.mp4"), True),
        (PermissionError(13, "Permission denied", "/root/out"), True),
        (ZeroDivisionError("division by zero"), False),
        (ValueError("a plain ValueError is a bug, not a user error"), False),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, BaseException) else str(x),
)
def test_cli_prints_package_and_os_errors_as_one_line(monkeypatch, capsys, exc, readable):
    def failing_command(args):
        raise exc

    monkeypatch.setattr(cli, "cmd_info", failing_command)
    assert cli.main(["info", "slowonly_r50_8x8x1_k400"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("slowonly-zoo info: error: ")
    assert ("unexpected" not in err) is readable, err
    if isinstance(exc, OSError):
        assert exc.filename in err
    with pytest.raises(type(exc)):
        cli.main(["info", "slowonly_r50_8x8x1_k400", "--debug"])


def test_builtins_are_not_shadowed():
    for cls in ERROR_CLASSES:
        assert not hasattr(builtins, cls.__name__), cls.__name__
