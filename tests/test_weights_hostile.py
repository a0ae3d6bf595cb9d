"""Hostile and broken inputs to the weights machinery: index file names that are paths, files that only claim
where they come from, damaged cache files, user checkpoints with a lying name, FIFOs, broken ``.pth`` /
``.safetensors`` files, a full disk, a killed converter, and the waits a user must be told about.

Each test uses real files, real processes and the loopback HTTP server; timeouts come from short env/arguments.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from loopback_server import Fault
from safetensors.torch import save_file
from support import REPO_ROOT
from weights_helpers import BASE_MODEL, make_entry, write_tiny_checkpoint

from slowonly_zoo import cli
from slowonly_zoo.errors import DownloadError, ModelIndexError, WeightsFileError, WeightsNotFoundError
from slowonly_zoo.index import Checkpoint, get_model_info, register_model_entry
from slowonly_zoo.weights import cache
from slowonly_zoo.weights.checkpoint import read_state_dict
from slowonly_zoo.weights.download import download_file
from slowonly_zoo.weights.file_checks import check_user_checkpoint
from slowonly_zoo.weights.hashing import sha256_file
from slowonly_zoo.weights.layout import META_NAME, META_SOURCE_FILENAME, META_SOURCE_SHA256
from slowonly_zoo.weights.sources import fetch_weights_report
from slowonly_zoo.weights.transfer import import_files

LOG = "slowonly_zoo"


def _entry_with_filename(filename: str, url: str, prefix: str, name: str) -> object:
    """An (unregistered, unvalidated) copy of the base entry whose checkpoint file name is ``filename``."""
    base = get_model_info(BASE_MODEL)
    return dataclasses.replace(
        base, name=name, aliases=(), checkpoint=Checkpoint(url=url, filename=filename, sha256_prefix=prefix)
    )


# ----------------------------------------------------------------------------------- 1. file names are plain names

BAD_FILENAMES = ["../../victim-12345678.pth", "/tmp/abs/victim-12345678.pth", "sub/x-12345678.pth", "..", ".hidden"]


@pytest.mark.parametrize("filename", BAD_FILENAMES)
def test_index_refuses_a_checkpoint_filename_that_is_a_path(filename):
    entry = _entry_with_filename(filename, f"https://example.org/{filename}", "12345678", "test_bad_filename")
    with pytest.raises(ModelIndexError) as err:
        register_model_entry(entry)
    assert "test_bad_filename" in str(err.value) or "register_model_entry" in str(err.value)
    assert "'Filename' must be a plain file name" in str(err.value) and repr(filename) in str(err.value)


def test_extra_index_yaml_with_a_traversing_filename_fails_at_load_naming_entry_and_field(tmp_path, monkeypatch):
    import yaml

    from slowonly_zoo.index.schema import entry_to_index, load_index_file

    good = make_entry(write_tiny_checkpoint(tmp_path, seed=1), register=False, name="test_yaml_traversal")
    data = entry_to_index(good)
    data["Checkpoint"]["Filename"] = "../../../etc/victim-12345678.pth"
    path = tmp_path / "extra.yml"
    path.write_text(yaml.safe_dump({"Models": [data]}), encoding="utf-8")
    with pytest.raises(ModelIndexError) as err:
        load_index_file(path)
    assert "test_yaml_traversal" in str(err.value) and "'Filename' must be a plain file name" in str(err.value)


@pytest.mark.parametrize("style", ["relative", "absolute"])
def test_a_path_filename_that_bypassed_the_index_never_touches_a_file_outside_the_cache(
    tmp_path, server, monkeypatch, style
):
    """Defence in depth: an entry built in code (never validated) still cannot make the cache delete, lock or write
    a file outside its root, even with SLOWONLY_ZOO_KEEP_DOWNLOADS=1 and a server that serves the right bytes."""
    home = tmp_path / "home" / "zoo"
    home.mkdir(parents=True)
    monkeypatch.setenv("SLOWONLY_ZOO_HOME", str(home))
    monkeypatch.setenv("SLOWONLY_ZOO_KEEP_DOWNLOADS", "1")
    ckpt = write_tiny_checkpoint(tmp_path / "src", seed=2)
    victim = tmp_path / "home" / ckpt.name  # home/zoo/downloads/../../<name> is this file
    victim.write_bytes(b"precious user data")
    filename = f"../../{ckpt.name}" if style == "relative" else str(victim)
    url = server.add("/x/" + ckpt.name, ckpt.read_bytes())
    entry = _entry_with_filename(filename, url, ckpt.name.rsplit("-", 1)[1][:8], f"test_traversal_{style}")
    with pytest.raises(WeightsNotFoundError) as err:
        fetch_weights_report(entry)
    assert "not a plain file name" in str(err.value)
    assert victim.read_bytes() == b"precious user data"
    assert sorted(p.name for p in victim.parent.iterdir()) == sorted([victim.name, "zoo"])  # no .lock, no .part
    assert server.gets("/x/" + ckpt.name) == []


def test_index_refuses_previous_filenames_that_are_paths():
    base = get_model_info(BASE_MODEL)
    entry = dataclasses.replace(
        base,
        name="test_bad_previous",
        aliases=(),
        checkpoint=dataclasses.replace(base.checkpoint, previous_filenames=("../../old-12345678.pth",)),
    )
    with pytest.raises(ModelIndexError) as err:
        register_model_entry(entry)
    assert "'Previous Filenames' must be a plain file name" in str(err.value)


@pytest.mark.parametrize("name", ["../evil", "/abs", ".hidden", "a/b", "x\nnewline"])
def test_cache_paths_refuse_names_that_are_not_plain(name):
    for make in (cache.weights_path, cache.record_path, cache.lock_path, cache.download_path):
        with pytest.raises(WeightsFileError):
            make(name)


# ---------------------------------------------------------------------- 2. a claim in a file is not a verification


def _forged_safetensors(path: Path, entry_name: str, claimed_sha: str, claimed_file: str) -> Path:
    """Tensors of an attacker's choosing, with a header claiming to come from a known checkpoint."""
    save_file(
        {"stem.conv.weight": torch.full((8, 3, 1, 7, 7), 6.66)},
        str(path),
        metadata={META_NAME: entry_name, META_SOURCE_SHA256: claimed_sha, META_SOURCE_FILENAME: claimed_file},
    )
    return path


def test_a_forged_safetensors_claiming_a_known_source_is_unverified_and_never_satisfies_pretrained(tmp_path, capsys):
    ckpt = write_tiny_checkpoint(tmp_path, seed=3)
    entry = make_entry(ckpt)
    forged = _forged_safetensors(tmp_path / "forged.safetensors", entry.name, sha256_file(ckpt), ckpt.name)
    [result] = import_files([forged])
    assert result.status == "unverified" and not result.ok
    assert result.message.startswith(f"unverified: claims to be converted from {ckpt.name}")
    assert "verified," not in result.message and not cache.weights_path(entry.name).exists()
    with pytest.raises(WeightsNotFoundError):  # nothing in the cache satisfies the entry
        fetch_weights_report(entry, offline=True)
    # The command line: not imported, exit status 1, the word "unverified"; --trust-claims is the opt-in.
    assert cli.main(["import", str(forged)]) == 1
    assert "unverified: claims to be converted from" in capsys.readouterr().out
    assert cli.main(["import", "--trust-claims", str(forged)]) == 0
    assert cache.read_record(entry.name).source_kind == "import-claimed"


# ------------------------------------------------------------------ 3. a damaged cache file is found on first use


def test_one_flipped_byte_in_a_cached_file_is_found_by_the_next_use_in_a_fresh_process(tmp_path, monkeypatch):
    ckpt = write_tiny_checkpoint(tmp_path, seed=4)
    entry = make_entry(ckpt, name="test_flip_fresh_process")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    os.link(ckpt, mirror / ckpt.name)
    monkeypatch.setenv("SLOWONLY_ZOO_MIRRORS", str(mirror))
    path = fetch_weights_report(entry).path
    stat = path.stat()
    with open(path, "r+b") as fh:  # flip one byte of tensor data in place; keep size and mtime
        fh.seek(-2, os.SEEK_END)
        byte = fh.read(1)
        fh.seek(-2, os.SEEK_END)
        fh.write(bytes([byte[0] ^ 0x01]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    code = (
        "from slowonly_zoo.weights import cache\n"
        f"check = cache.check_cached({entry.name!r})\n"
        "print('OK' if check.ok else 'PROBLEM ' + check.problem)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=dict(os.environ), check=True
    ).stdout
    assert out.startswith("PROBLEM ") and "differs from recorded" in out


def test_the_first_use_hash_is_not_repeated_for_an_unchanged_file_in_one_process(tmp_path, server, monkeypatch):
    ckpt = write_tiny_checkpoint(tmp_path, seed=13)
    entry = make_entry(ckpt, url=server.add("/h/" + ckpt.name, ckpt.read_bytes()))
    path = fetch_weights_report(entry).path
    calls: list[Path] = []
    real = cache.sha256_file
    monkeypatch.setattr(cache, "sha256_file", lambda p: calls.append(Path(p)) or real(p))
    cache._HASHED.clear()  # as in a fresh process
    assert cache.check_cached(entry.name).ok and cache.check_cached(entry.name).ok
    assert calls == [path]  # hashed once; the second use trusts this process's own check
    assert cache.check_cached(entry.name, full=True).ok and calls == [path, path]  # --verify always re-hashes
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # touched: hashed again
    assert cache.check_cached(entry.name).ok and len(calls) == 3


def test_leftover_temporaries_of_earlier_versions_are_swept_by_age():
    weights = cache.cache_root() / "weights"
    weights.mkdir(parents=True)
    old = [weights / ".tmpAbC123", weights / ".m.x1y2z3.safetensors.tmp", weights / ".m.safetensors.slowonly-tmp-1"]
    young = weights / ".tmpZyX987"
    mine = weights / "notes.tmp"  # not a temporary name: never touched
    for p in [*old, young, mine]:
        p.write_bytes(b"x" * 10)
    for p in old:
        os.utime(p, (time.time() - 2 * cache.STALE_TEMP_AGE,) * 2)
    assert sorted(cache.remove_stale_temp_files()) == sorted(old)
    assert young.exists() and mine.exists()


# ------------------------------------------------------------- 4. a user checkpoint named with a hash is verified


def test_checkpoint_path_named_like_an_upstream_file_is_verified(tmp_path, caplog):
    from slowonly_zoo import create_model

    ckpt = write_tiny_checkpoint(tmp_path, seed=5)
    data = bytearray(ckpt.read_bytes())
    data[-30] ^= 0xFF  # inside the zip's data, the name still says -<old hash>.pth
    ckpt.write_bytes(bytes(data))
    with pytest.raises(WeightsFileError) as err:
        create_model(BASE_MODEL, checkpoint_path=ckpt)
    assert str(ckpt) in str(err.value) and "named with sha256 prefix" in str(err.value)

    plain = tmp_path / "my_finetuned.pth"
    plain.write_bytes(write_tiny_checkpoint(tmp_path / "b", seed=6).read_bytes())
    with caplog.at_level(logging.INFO, logger=LOG):
        assert check_user_checkpoint(plain) == plain
    assert any(
        "carries no sha256 prefix" in r.getMessage() and "without a hash check" in r.getMessage()
        for r in caplog.records
    )


# --------------------------------------------------------------------------- 5. non-regular files are refused


def _within(seconds: float, fn, unblock=None):
    """Run ``fn`` in a thread; fail (after unblocking it with ``unblock``) when it takes longer than ``seconds``."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if unblock is not None:
            unblock()
        thread.join(5)
        pytest.fail(f"blocked for more than {seconds} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("suffix", [".pth", ".safetensors", "-deadbeef.pth"])
def test_a_fifo_given_as_a_checkpoint_is_refused_at_once(tmp_path, suffix):
    fifo = tmp_path / f"ckpt{suffix}"
    os.mkfifo(fifo)

    def unblock() -> None:  # a writer that closes at once: a blocked reader gets EOF
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    for call in (lambda: read_state_dict(fifo), lambda: check_user_checkpoint(fifo)):
        with pytest.raises(WeightsFileError) as err:
            _within(3, call, unblock)
        assert str(fifo) in str(err.value) and "not a regular file" in str(err.value)
    [result] = _within(3, lambda: import_files([fifo]), unblock)
    assert result.status == "error" and "not a regular file" in result.message


# ----------------------------------------------------- 15. broken weight files: one sentence naming the file


def _broken_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = write_tiny_checkpoint(tmp_path / "good", seed=7)
    raw = good.read_bytes()
    files: dict[str, tuple[Path, str]] = {}

    def put(name: str, data: bytes, expect: str) -> None:
        path = tmp_path / name
        path.write_bytes(data)
        files[name] = (path, expect)

    put("empty.pth", b"", "is empty")
    put("truncated.pth", raw[: len(raw) // 2], "damaged or truncated .pth")
    put("truncated_tail.pth", raw[:-7], "damaged or truncated .pth")
    put("notes.pth", b"these are my notes, not a checkpoint\n", "is not a PyTorch checkpoint")
    put("page.pth", b"<!DOCTYPE html><html>404</html>", "is not a PyTorch checkpoint")
    st = tmp_path / "ok.safetensors"
    save_file({"stem.conv.weight": torch.randn(8, 3, 1, 7, 7)}, str(st))
    st_raw = st.read_bytes()
    put("truncated.safetensors", st_raw[:-100], "damaged or truncated .safetensors")
    header_len = int.from_bytes(st_raw[:8], "little")
    put("lying_length.safetensors", (header_len + 10_000).to_bytes(8, "little") + st_raw[8:], "damaged or truncated")
    put("garbage_header.safetensors", st_raw[:8] + b"{" * header_len + st_raw[8 + header_len :], "damaged or truncated")
    put("empty.safetensors", b"", "is empty")
    return files


def test_broken_weight_files_are_one_sentence_naming_the_file(tmp_path):
    for name, (path, expect) in _broken_files(tmp_path).items():
        with pytest.raises(WeightsFileError) as err:
            read_state_dict(path)
        message = str(err.value)
        assert str(path) in message and expect in message, (name, message)
        assert "\n" not in message and "unpickling" not in message, (name, message)


def test_import_reports_a_damaged_safetensors_by_name_and_goes_on(tmp_path):
    files = _broken_files(tmp_path)
    results = import_files([files["lying_length.safetensors"][0], files["garbage_header.safetensors"][0]])
    assert [r.status for r in results] == ["error", "error"]
    for result in results:
        assert str(result.path) in result.message and "damaged or truncated .safetensors" in result.message


@pytest.mark.parametrize("name", ["empty.pth", "notes.pth", "truncated.pth", "lying_length.safetensors"])
def test_cli_reports_a_broken_checkpoint_in_one_line_with_exit_status_1(tmp_path, shared_videos, capsys, name):
    path, expect = _broken_files(tmp_path)[name]
    video = next(p for p in sorted(shared_videos.iterdir()) if p.suffix == ".mp4")
    assert cli.main(["predict", BASE_MODEL, str(video), "--checkpoint", str(path), "--clips", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and expect in err[0] and "please report" not in err[0], err


def test_cli_checkpoint_whose_name_hash_does_not_match_is_refused(tmp_path, shared_videos, capsys):
    renamed = tmp_path / "slowonly_r50_8x8x1_256e_kinetics400_rgb_20200703-deadbeef.pth"
    renamed.write_bytes(write_tiny_checkpoint(tmp_path / "src", seed=12).read_bytes())
    video = next(p for p in sorted(shared_videos.iterdir()) if p.suffix == ".mp4")
    assert cli.main(["predict", BASE_MODEL, str(video), "--checkpoint", str(renamed), "--clips", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(renamed) in err[0] and "named with sha256 prefix deadbeef" in err[0], err


def test_export_with_weights_of_the_wrong_checkpoint_is_one_line_exit_status_1(tmp_path, capsys):
    ckpt = write_tiny_checkpoint(tmp_path, seed=8)
    other = write_tiny_checkpoint(tmp_path / "other", seed=9)
    entry = make_entry(ckpt)
    code = cli.main(["export", entry.name, "--weights", str(other), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and str(other) in err[0] and "please report" not in err[0], err


# ------------------------------------------------------------------------------------ 12. a full disk, at once


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk_is_reported_at_once_and_not_retried_as_a_lost_connection(server, tmp_path):
    data = os.urandom(300_000)
    digest = __import__("hashlib").sha256(data).hexdigest()
    url = server.add(f"/f-{digest[:8]}.pth", data)
    dest = tmp_path / f"f-{digest[:8]}.pth"
    part = dest.with_name(dest.name + ".part")
    part.symlink_to("/dev/full")  # every write there fails with ENOSPC, as on a full disk
    started = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download_file(url, dest, sha256_prefix=digest[:8], progress=False, retries=3, backoff=0.5, timeout=5)
    assert time.monotonic() - started < 2.0  # no backoff waits
    assert "the disk is full" in str(err.value) and "connection lost" not in str(err.value)
    assert len(server.gets(f"/f-{digest[:8]}.pth")) == 1
    assert not part.exists() and not part.is_symlink() and not dest.exists()


_FSIZE_CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))
from slowonly_zoo.errors import DownloadError
from slowonly_zoo.weights.download import download_file
try:
    download_file(sys.argv[1], sys.argv[2], sha256_prefix=sys.argv[3], progress=False, retries=3, backoff=0.5)
except DownloadError as exc:
    print("ERROR", exc)
"""


def test_a_disk_that_cannot_take_the_file_leaves_no_partial_file_behind(server, tmp_path):
    """A real write failure after 100 kB were written (the file-size limit of the child process)."""
    data = os.urandom(300_000)
    digest = __import__("hashlib").sha256(data).hexdigest()
    url = server.add(f"/g-{digest[:8]}.pth", data)
    dest = tmp_path / f"g-{digest[:8]}.pth"
    out = subprocess.run(
        [sys.executable, "-c", _FSIZE_CHILD, url, str(dest), digest[:8]],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert out.startswith("ERROR cannot write") and "the file is larger than this system allows" in out, out
    assert "partial file was deleted" in out
    assert len(server.gets(f"/g-{digest[:8]}.pth")) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name + ".lock"]


def test_giving_up_names_the_partial_file_the_next_try_resumes(server, tmp_path):
    data = os.urandom(300_000)
    digest = __import__("hashlib").sha256(data).hexdigest()
    url = server.add(f"/p-{digest[:8]}.pth", data, faults=[Fault(drop_after=70_000), Fault(drop_after=70_000)])
    dest = tmp_path / f"p-{digest[:8]}.pth"
    part = dest.with_name(dest.name + ".part")
    with pytest.raises(DownloadError) as err:
        download_file(url, dest, sha256_prefix=digest[:8], progress=False, retries=1, backoff=0.01, timeout=5)
    assert f"The partial file {part} (" in str(err.value) and "the next try resumes it" in str(err.value)
    assert part.stat().st_size > 0
    assert download_file(url, dest, sha256_prefix=digest[:8], progress=False).sha256 == digest
    assert server.gets(f"/p-{digest[:8]}.pth")[-1].range is not None


_FSIZE_CONVERT_CHILD = """
import os, resource, signal, sys, torch
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from slowonly_zoo.weights import cache
state = {"w": torch.ones(1_000_000)}  # 4 MB, past the 1 MB file-size limit
resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, resource.RLIM_INFINITY))
try:
    cache.store_state_dict("test_full_convert", state, source="x", source_kind="import", original_filename="x.pth",
                           original_sha256="0" * 64, original_size=1)
except OSError as exc:
    print("OSError", exc.errno)
"""


def test_a_disk_that_fills_during_conversion_leaves_no_file_in_the_cache():
    out = subprocess.run(
        [sys.executable, "-c", _FSIZE_CONVERT_CHILD], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert out.stdout.startswith("OSError"), (out.stdout, out.stderr[-2000:])
    weights = cache.cache_root() / "weights"
    assert list(weights.iterdir()) == [] and not cache.check_cached("test_full_convert", quick=True).ok


# ------------------------------------------------------------ 13. kill -9 mid-conversion leaves nothing for long

_CONVERT_CHILD = """
import sys, torch
from filelock import FileLock
from slowonly_zoo.weights import cache
name = sys.argv[1]
state = {f"layer{i}.weight": torch.ones(4_000_000) for i in range(8)}  # 128 MB to write and hash
with FileLock(str(cache.lock_path(name))):  # as sources.py and transfer.py hold it around a conversion
    print("converting", flush=True)
    cache.store_state_dict(name, state, source="x", source_kind="import", original_filename="x.pth",
                           original_sha256="0" * 64, original_size=1)
"""


def test_a_conversion_killed_with_sigkill_leaves_temporaries_the_next_fetch_sweeps(tmp_path, server):
    ckpt = write_tiny_checkpoint(tmp_path, seed=10)
    name = f"test_killed_{os.getpid()}"
    weights = cache.cache_root() / "weights"
    child = subprocess.Popen(
        [sys.executable, "-c", _CONVERT_CHILD, name], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert child.stdout.readline().strip() == "converting"
        deadline = time.monotonic() + 60
        temps: list[Path] = []
        while not temps and time.monotonic() < deadline and child.poll() is None:
            temps = [p for p in weights.glob(".*") if p.is_file() and p.stat().st_size > 0] if weights.is_dir() else []
            time.sleep(0.002)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    left = list(weights.iterdir())
    assert left and all(p.name.startswith(f".{name}.") and cache.is_temp_file(p) for p in left), left
    assert not cache.check_cached(name, quick=True).ok

    # The next fetch of that model (holding its lock) deletes them, whatever their age, and fills the cache.
    entry = make_entry(ckpt, url=server.add("/k/" + ckpt.name, ckpt.read_bytes()), name=name)
    result = fetch_weights_report(entry)
    assert cache.check_cached(name, full=True).ok and result.path.is_file()
    assert sorted(p.name for p in weights.iterdir()) == sorted([f"{name}.safetensors", f"{name}.json"])


# ------------------------------------------------------------------------- 16. no silent waits


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith(LOG) and r.levelno >= logging.WARNING]


def test_a_closed_port_says_each_retry_and_its_wait(tmp_path, caplog):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: connection refused
    url = f"http://127.0.0.1:{port}/x-12345678.pth"
    with caplog.at_level(logging.WARNING, logger=LOG), pytest.raises(DownloadError):
        download_file(
            url, tmp_path / "x-12345678.pth", sha256_prefix="12345678", progress=False, retries=2, backoff=0.01
        )
    msgs = _messages(caplog)
    refused = f"connection refused by 127.0.0.1:{port} (nothing listens there); retry 1 of 2 in 0.0 s"
    assert any(m.startswith(url) and refused in m for m in msgs), msgs
    assert any("retry 2 of 2" in m for m in msgs), msgs


def test_a_server_that_never_answers_is_a_read_timeout_said_as_such(server, tmp_path, caplog):
    data = os.urandom(1000)
    digest = __import__("hashlib").sha256(data).hexdigest()
    url = server.add(f"/s-{digest[:8]}.pth", data, faults=[Fault(stall=3.0)])
    with caplog.at_level(logging.WARNING, logger=LOG):
        result = download_file(
            url,
            tmp_path / f"s-{digest[:8]}.pth",
            sha256_prefix=digest[:8],
            progress=False,
            retries=1,
            backoff=0.01,
            timeout=0.3,
        )
    assert result.sha256 == digest
    msgs = _messages(caplog)
    assert any("no answer within 0.3 s (SLOWONLY_ZOO_TIMEOUT)" in m and "retry 1 of 1" in m for m in msgs), msgs


def test_the_connect_timeout_is_separate_from_and_shorter_than_the_read_timeout(tmp_path, caplog, monkeypatch):
    """A listening socket whose backlog is full takes no more connections: connect() hangs, as to a dead host."""
    monkeypatch.setenv("SLOWONLY_ZOO_CONNECT_TIMEOUT", "0.3")
    monkeypatch.setenv("SLOWONLY_ZOO_TIMEOUT", "20")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):  # fill the backlog
            c = socket.socket()
            c.settimeout(0.2)
            with contextlib.suppress(OSError):  # the later ones time out: the backlog is full
                c.connect(("127.0.0.1", port))
            fillers.append(c)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger=LOG), pytest.raises(DownloadError) as err:
            download_file(
                f"http://127.0.0.1:{port}/c-12345678.pth",
                tmp_path / "c-12345678.pth",
                sha256_prefix="12345678",
                progress=False,
                retries=1,
                backoff=0.01,
            )
        elapsed = time.monotonic() - started
    finally:
        for c in fillers:
            c.close()
        listener.close()
    assert elapsed < 5.0  # two attempts of 0.3 s, not of 20 s
    assert "no connection to" in str(err.value) and "within 0.3 s (SLOWONLY_ZOO_CONNECT_TIMEOUT)" in str(err.value)
    assert any("retry 1 of 1" in m for m in _messages(caplog))


def test_waiting_for_another_process_download_is_said(server, tmp_path, caplog):
    data = os.urandom(2000)
    digest = __import__("hashlib").sha256(data).hexdigest()
    url = server.add(f"/l-{digest[:8]}.pth", data)
    dest = tmp_path / f"l-{digest[:8]}.pth"
    holder = FileLock(str(dest.with_name(dest.name + ".lock")))
    holder.acquire()
    with caplog.at_level(logging.WARNING, logger=LOG):
        worker = threading.Thread(
            target=download_file, args=(url, dest), kwargs={"sha256_prefix": digest[:8], "progress": False}
        )
        worker.start()
        deadline = time.monotonic() + 10
        while not any("waiting for another process" in m for m in _messages(caplog)) and time.monotonic() < deadline:
            time.sleep(0.01)
        holder.release()
        worker.join(10)
    msgs = _messages(caplog)
    assert any(m.startswith(f"waiting for another process downloading {dest.name}") for m in msgs), msgs
    assert dest.read_bytes() == data


def test_waiting_for_another_process_fetching_a_model_is_said(tmp_path, caplog, monkeypatch):
    ckpt = write_tiny_checkpoint(tmp_path, seed=11)
    entry = make_entry(ckpt)
    monkeypatch.setenv("SLOWONLY_ZOO_MIRRORS", str(ckpt.parent))
    holder = FileLock(str(cache.lock_path(entry.name)))
    holder.acquire()
    box: dict[str, object] = {}
    with caplog.at_level(logging.WARNING, logger=LOG):
        worker = threading.Thread(target=lambda: box.setdefault("r", fetch_weights_report(entry)))
        worker.start()
        deadline = time.monotonic() + 10
        while not any("waiting for another process" in m for m in _messages(caplog)) and time.monotonic() < deadline:
            time.sleep(0.01)
        holder.release()
        worker.join(20)
    assert any(m.startswith(f"waiting for another process fetching {entry.name}") for m in _messages(caplog))
    assert box["r"].path.is_file()


def test_readme_states_the_first_use_hash_check_and_names_its_tests():
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Getting the weights", 1)[1].split("\n## ", 1)[0]
    for promise in ("first use", "--trust-claims", "SLOWONLY_ZOO_CONNECT_TIMEOUT", "disk is full"):
        assert promise in section, promise
    for test in ("test_weights_hostile.py",):
        assert test in section
