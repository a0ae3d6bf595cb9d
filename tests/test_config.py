"""slowonly_zoo.config (every SLOWONLY_ZOO_* variable, one truthiness rule, read at call time) and
slowonly_zoo.progress (the one switch that silences bars and messages)."""

from __future__ import annotations

import ast
import importlib
import logging
import re

import pytest
from support import REPO_ROOT

from slowonly_zoo import config, progress
from slowonly_zoo.errors import ConfigError, SlowOnlyZooError
from slowonly_zoo.weights import sources

# the module, not the ``slowonly_zoo.weights.download`` function of the package's public names
download = importlib.import_module("slowonly_zoo.weights.download")

PACKAGE = REPO_ROOT / "slowonly_zoo"
README = REPO_ROOT / "README.md"
CONFIG_SOURCE = (PACKAGE / "config.py").read_text(encoding="utf-8")
_VARIABLE_RE = re.compile(r"\bSLOWONLY_ZOO_[A-Z0-9_]*[A-Z0-9]\b")


@pytest.fixture(autouse=True)
def _no_quiet_override():
    config.set_quiet(None)
    yield
    config.set_quiet(None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[("1", True), ("true", True), ("YES", True), (" on ", True)],
        *[("0", False), ("False", False), ("no", False), ("OFF", False), ("", False), ("   ", False)],
    ],
)
def test_one_truthiness_rule_for_every_flag(monkeypatch, raw, expected):
    for name in ("SLOWONLY_ZOO_OFFLINE", "SLOWONLY_ZOO_KEEP_DOWNLOADS", "SLOWONLY_ZOO_QUIET"):
        monkeypatch.setenv(name, raw)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert config.offline() is expected
    assert config.keep_downloads() is expected
    assert config.quiet() is expected
    assert sources.is_offline() is expected


@pytest.mark.parametrize("name", ["SLOWONLY_ZOO_OFFLINE", "SLOWONLY_ZOO_KEEP_DOWNLOADS", "SLOWONLY_ZOO_QUIET"])
def test_a_flag_that_is_not_a_boolean_is_an_error_naming_the_variable(monkeypatch, name):
    monkeypatch.setenv(name, "maybe")
    reader = {"SLOWONLY_ZOO_OFFLINE": config.offline, "SLOWONLY_ZOO_KEEP_DOWNLOADS": config.keep_downloads}
    with pytest.raises(ConfigError, match=f"{name}='maybe' is not a flag: set it to 1 or 0") as info:
        reader.get(name, config.quiet)()
    assert isinstance(info.value, ValueError) and isinstance(info.value, SlowOnlyZooError)


def test_progress_is_tri_state_and_strict(monkeypatch):
    monkeypatch.delenv("SLOWONLY_ZOO_PROGRESS", raising=False)
    assert config.progress() is None
    monkeypatch.setenv("SLOWONLY_ZOO_PROGRESS", "0")
    assert config.progress() is False
    monkeypatch.setenv("SLOWONLY_ZOO_PROGRESS", "on")
    assert config.progress() is True
    monkeypatch.setenv("SLOWONLY_ZOO_PROGRESS", "2")
    with pytest.raises(ConfigError, match="SLOWONLY_ZOO_PROGRESS='2' is not a flag"):
        config.progress()


def test_numbers_are_read_at_call_time_and_checked(monkeypatch):
    monkeypatch.delenv("SLOWONLY_ZOO_TIMEOUT", raising=False)
    monkeypatch.delenv("SLOWONLY_ZOO_DIST_TIMEOUT", raising=False)
    assert config.timeout() == 30.0 and config.retries() == 5 and config.backoff() == 1.0
    assert config.dist_timeout() == 21600.0
    monkeypatch.setenv("SLOWONLY_ZOO_TIMEOUT", "2.5")  # after import: the next call sees it
    monkeypatch.setenv("SLOWONLY_ZOO_DIST_TIMEOUT", "60")
    assert config.timeout() == 2.5 and config.dist_timeout() == 60.0
    monkeypatch.setenv("SLOWONLY_ZOO_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="SLOWONLY_ZOO_TIMEOUT='soon' is not a number"):
        config.timeout()
    monkeypatch.setenv("SLOWONLY_ZOO_RETRIES", "2.5")
    with pytest.raises(ConfigError, match="SLOWONLY_ZOO_RETRIES='2.5' is not a whole number"):
        config.retries()
    monkeypatch.setenv("SLOWONLY_ZOO_RETRIES", "-1")
    with pytest.raises(ConfigError, match="is below 0"):
        config.retries()
    monkeypatch.setenv("SLOWONLY_ZOO_BACKOFF", "nan")
    with pytest.raises(ConfigError, match="SLOWONLY_ZOO_BACKOFF='nan' is below 0"):
        config.backoff()


def test_a_bad_number_fails_the_download_before_any_request(monkeypatch, tmp_path):
    monkeypatch.setenv("SLOWONLY_ZOO_RETRIES", "many")
    with pytest.raises(ConfigError, match="SLOWONLY_ZOO_RETRIES='many'"):
        download.download_file("http://127.0.0.1:9/never", tmp_path / "f.pth")
    assert not list(tmp_path.iterdir())


def test_paths_lists_and_strings(monkeypatch, tmp_path):
    monkeypatch.setenv("SLOWONLY_ZOO_HOME", f"  {tmp_path}  ")
    assert config.home() == tmp_path
    monkeypatch.delenv("SLOWONLY_ZOO_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert config.home() == tmp_path / "xdg" / "slowonly_zoo"
    monkeypatch.setenv("SLOWONLY_ZOO_MIRRORS", " /a , https://b/ ,, ")
    assert config.mirrors() == sources.mirror_list() == ["/a", "https://b/"]
    monkeypatch.setenv("SLOWONLY_ZOO_HF_PREFIX", "/my-org/")
    monkeypatch.setenv("SLOWONLY_ZOO_HF_REVISION", "")
    assert config.hf_prefix() == "my-org" and config.hf_revision() is None
    monkeypatch.setenv("SLOWONLY_ZOO_EXTRA_INDEX", f"{tmp_path / 'a.yml'}{__import__('os').pathsep} ")
    assert config.extra_index_paths() == [tmp_path / "a.yml"]


def test_hf_hub_offline_turns_offline_on(monkeypatch):
    monkeypatch.delenv("SLOWONLY_ZOO_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert config.offline() is True
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert config.offline() is False


# --------------------------------------------------------------------------------------------------
# the code, config.VARIABLES and the README table agree
# --------------------------------------------------------------------------------------------------


def _readme_table_variables() -> set[str]:
    """Variable names in the first column of the README table headed ``| variable | meaning | default |``."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("| variable | meaning | default |")
    names: set[str] = set()
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        first_cell = line.split("|")[1]
        found = set(_VARIABLE_RE.findall(first_cell))
        assert found, f"README table row without a SLOWONLY_ZOO_ variable: {line}"
        names |= found
    return names


def _variables_in_code() -> dict[str, list[str]]:
    """Every SLOWONLY_ZOO_ name mentioned outside config.py, with the files that mention it."""
    used: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "config.py":
            continue
        for name in _VARIABLE_RE.findall(path.read_text(encoding="utf-8")):
            used.setdefault(name, []).append(path.relative_to(REPO_ROOT).as_posix())
    return used


def test_every_variable_is_in_the_readme_table_and_config_and_vice_versa():
    declared = {v.name for v in config.VARIABLES}
    assert len(declared) == len(config.VARIABLES)
    assert _readme_table_variables() == declared
    # every declared variable is read by config's rules, and nothing else is
    read = set(re.findall(r"(?:_raw|env_bool|env_float|env_int)\(\s*\"(SLOWONLY_ZOO_\w+)\"", CONFIG_SOURCE))
    assert read == declared
    # every name the rest of the package mentions (messages, docstrings) is a declared one
    used = _variables_in_code()
    assert set(used) <= declared, {n: used[n] for n in set(used) - declared}


def test_only_config_reads_the_environment_for_slowonly_zoo_variables():
    """No ``os.environ.get("SLOWONLY_ZOO_...")`` outside config.py, nor through a constant holding the name
    (``ENV_X = "SLOWONLY_ZOO_..."``, then ``os.environ.get(ENV_X)``)."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "config.py":
            continue
        text = path.read_text(encoding="utf-8")
        constants = [
            target.id
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            and _VARIABLE_RE.fullmatch(node.value.value)
            for target in node.targets
            if isinstance(target, ast.Name)
        ]
        keys = "|".join([r"[\"']SLOWONLY_ZOO_", *(rf"{name}\b" for name in constants)])
        if re.search(rf"(environ\.get\(|environ\[|getenv\()\s*(?:{keys})", text):
            offenders.append(path.relative_to(REPO_ROOT).as_posix())
    assert offenders == []


def test_a_misspelt_variable_in_the_code_is_caught():
    with pytest.raises(KeyError, match="SLOWONLY_ZOO_OFLINE is not one of"):
        config.env_bool("SLOWONLY_ZOO_OFLINE", False)


# --------------------------------------------------------------------------------------------------
# one switch for progress bars and messages
# --------------------------------------------------------------------------------------------------


def test_progress_bars_follow_argument_then_env_then_terminal(monkeypatch):
    monkeypatch.delenv("SLOWONLY_ZOO_PROGRESS", raising=False)
    monkeypatch.delenv("SLOWONLY_ZOO_QUIET", raising=False)
    assert progress.progress_bar(total=3).disable is True  # pytest captures stderr: not a terminal
    assert progress.show_progress(True) is True
    monkeypatch.setenv("SLOWONLY_ZOO_PROGRESS", "1")
    assert progress.progress_bar(total=3).disable is False
    assert progress.show_progress(False) is False
    assert download.progress_enabled() is True and progress.tqdm_class() is None


def test_quiet_silences_bars_and_messages_but_not_errors(monkeypatch, caplog):
    monkeypatch.setenv("SLOWONLY_ZOO_PROGRESS", "1")
    monkeypatch.delenv("SLOWONLY_ZOO_QUIET", raising=False)
    with caplog.at_level(logging.INFO, logger="slowonly_zoo"):
        progress.logger.info("heard")
        config.set_quiet(True)
        progress.logger.info("silenced info")
        progress.logger.warning("silenced warning")
        progress.logger.error("still an error")
        assert progress.show_progress(True) is False  # quiet wins over an explicit progress=True
        assert progress.progress_bar(total=3, progress=True).disable is True
        assert progress.tqdm_class(True)(total=3).disable is True  # what huggingface_hub gets
        config.set_quiet(None)
        monkeypatch.setenv("SLOWONLY_ZOO_QUIET", "1")
        progress.logger.warning("silenced by the environment")
        monkeypatch.setenv("SLOWONLY_ZOO_QUIET", "0")
        progress.logger.info("heard again")
    assert [r.getMessage() for r in caplog.records] == ["heard", "still an error", "heard again"]


def test_cli_quiet_flag_is_the_same_switch_for_the_command_only(monkeypatch):
    from slowonly_zoo import cli

    monkeypatch.delenv("SLOWONLY_ZOO_QUIET", raising=False)
    seen: list[bool] = []

    def command(args):
        seen.append(config.quiet())
        return cli.EXIT_OK

    monkeypatch.setattr(cli, "cmd_info", command)
    assert cli.main(["info", "slowonly_r50_8x8x1_k400", "--quiet"]) == cli.EXIT_OK
    assert cli.main(["info", "slowonly_r50_8x8x1_k400"]) == cli.EXIT_OK
    assert seen == [True, False] and config.quiet() is False
