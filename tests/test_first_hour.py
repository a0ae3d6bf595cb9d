"""A new user's first hour and bad output folders: ``export`` never replaces what it did not write, ``extract`` goes
on past outputs it cannot write, every user error is one sentence with exit status 1, long work shows a bar on a
terminal (and nothing in pipes or with ``--quiet``), ``register`` makes your own weights a model whose card says
whose they are, and the smaller output details (file modes, ``clip_starts`` in ``.npy``, GIFs in folders, the
``download --all`` summary, ``list``'s modality column, ``--dataset``'s choices)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from support import scratch_dir
from upstream_checkpoints import write_upstream_checkpoint

from slowonly_zoo import cli
from slowonly_zoo._fileio import FILE_MODE
from slowonly_zoo.index import entry_to_index, get_model_info

REPO = Path(__file__).resolve().parents[1]
MODEL = "slowonly_r50_4x16x1_k400_video"
SHORT_VIDEO = "cleaning_pool_32f.mp4"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Iterator[Path]:
    with scratch_dir(tmp_path_factory, "first_hour_ckpt") as d:
        yield write_upstream_checkpoint(d, MODEL, seed=5)


@pytest.fixture(scope="module")
def user_weights(tmp_path_factory) -> Iterator[tuple[Path, Path]]:
    """A user's fine-tuned checkpoint (mmaction2 format, a 3-way head, a name without a hash) and its labels."""
    with scratch_dir(tmp_path_factory, "user_weights") as d:
        src = write_upstream_checkpoint(d, MODEL, seed=6)
        ck = torch.load(src, map_location="cpu", weights_only=True)
        sd = ck["state_dict"]
        sd["cls_head.fc_cls.weight"] = sd["cls_head.fc_cls.weight"][:3].clone()
        sd["cls_head.fc_cls.bias"] = sd["cls_head.fc_cls.bias"][:3].clone()
        mine = d / "my_finetune.pth"
        torch.save(ck, mine)
        src.unlink()
        labels = d / "labels.txt"
        labels.write_text("pour\nstir\nwhisk\n", encoding="utf-8")
        yield mine, labels


def run_cli(*args: str, env: dict[str, str] | None = None, prelude: str = "") -> subprocess.CompletedProcess:
    """``slowonly_zoo.cli.main(ARGS)`` in a fresh interpreter, after ``prelude`` (e.g. a resource limit)."""
    code = f"import sys\n{prelude}\nfrom slowonly_zoo.cli import main\nsys.exit(main({list(args)!r}))\n"
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2", **(env or {})}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=full_env, capture_output=True, text=True)


def one_sentence_error(capsys, argv: list[str], *fragments: str) -> str:
    """Run the CLI in process; it must fail with status 1 and one line naming ``fragments``, no 'please report'."""
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "unexpected" not in err and "report it" not in err and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


# ------------------------------------------------------------------------------------------------ export --out


def test_export_refuses_a_non_empty_folder_and_never_replaces_foreign_files(
    tmp_path, user_weights, monkeypatch, capsys
):
    mine, labels = user_weights
    monkeypatch.setenv("SLOWONLY_ZOO_EXTRA_INDEX", str(tmp_path / "index.yml"))
    assert cli.main(["register", str(mine), "--as", "my_cooking", "--like", MODEL, "--labels", str(labels)]) == 0
    capsys.readouterr()

    out = tmp_path / "hub"
    out.mkdir()
    (out / "README.md").write_text("my own notes\n", encoding="utf-8")
    (out / "config.json").write_text('{"mine": true}\n', encoding="utf-8")
    one_sentence_error(capsys, ["export", "my_cooking", "--out", str(out)], "not empty", "--force")
    one_sentence_error(capsys, ["export", "my_cooking", "--out", str(out), "--force"], "not written by", "config.json")
    assert (out / "README.md").read_text(encoding="utf-8") == "my own notes\n"
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json"]  # nothing written at all

    # an earlier export is replaced with --force, and a file of the user's beside it is left alone
    fresh = tmp_path / "hub2"
    assert cli.main(["export", "my_cooking", "--out", str(fresh)]) == 0
    (fresh / "notes.txt").write_text("keep me\n", encoding="utf-8")
    one_sentence_error(capsys, ["export", "my_cooking", "--out", str(fresh)], "not empty")
    assert cli.main(["export", "my_cooking", "--out", str(fresh), "--force"]) == 0
    assert (fresh / "notes.txt").read_text(encoding="utf-8") == "keep me\n"
    assert json.loads((fresh / "config.json").read_text(encoding="utf-8"))["name"] == "my_cooking"


# ------------------------------------------------------------------------------------------------ register


def test_register_one_command_and_a_card_with_the_true_provenance(tmp_path, user_weights, monkeypatch, capsys):
    mine, labels = user_weights
    index_file = tmp_path / "my_index.yml"
    monkeypatch.setenv("SLOWONLY_ZOO_EXTRA_INDEX", str(index_file))
    argv = ["register", str(mine), "--as", "my_cooking", "--like", MODEL, "--labels", str(labels), "--json"]
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["index_active"] is True and Path(report["index_file"]) == index_file
    assert "imported" in report["import"]

    written = yaml.safe_load(index_file.read_text(encoding="utf-8"))["Models"]
    assert [m["Name"] for m in written] == ["my_cooking"]
    entry = get_model_info("my_cooking")
    base = get_model_info(MODEL)
    assert entry.num_classes == 3 and entry.labels == ("pour", "stir", "whisk")
    assert entry.architecture == base.architecture and entry.protocol == base.protocol
    assert entry.results == ()  # the like-entry's reported numbers are not these weights' numbers
    assert entry.checkpoint.filename == "my_finetune.pth"

    # a second registration of the same name is refused, the index file is unchanged
    before = index_file.read_text(encoding="utf-8")
    one_sentence_error(capsys, argv[:-1], "my_cooking", "--as")
    assert index_file.read_text(encoding="utf-8") == before

    out = tmp_path / "hub"
    assert cli.main(["export", "my_cooking", "--out", str(out)]) == 0
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "released checkpoint" not in card and "reported by mmaction2" not in card
    assert "not a checkpoint released by mmaction2" in card and "registered by a user" in card
    assert report["sha256"] in card and str(index_file) in card

    # the packaged entries keep their card: mmaction2's release
    from slowonly_zoo.weights.hub_export import _provenance_sentence

    assert "mmaction2's released checkpoint" in _provenance_sentence(base, {"source_checkpoint": {"sha256": "x"}})


def test_register_refuses_labels_that_do_not_fit_the_head(tmp_path, user_weights, monkeypatch, capsys):
    mine, labels = user_weights
    monkeypatch.setenv("SLOWONLY_ZOO_EXTRA_INDEX", str(tmp_path / "index.yml"))
    argv = ["register", str(mine), "--as", "x1", "--like", MODEL, "--labels", str(labels), "--num-classes", "2"]
    one_sentence_error(capsys, argv, "--labels", "--num-classes")
    no_labels = ["register", str(mine), "--as", "x1", "--like", MODEL]  # the like-entry's 400 classes
    one_sentence_error(capsys, no_labels, "3-way head", "--num-classes 3")
    st = tmp_path / "best.safetensors"
    st.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    one_sentence_error(capsys, ["register", str(st), "--as", "x2", "--like", MODEL], "epoch_N.pth")
    one_sentence_error(capsys, ["register", str(mine), "--as", MODEL, "--like", MODEL], "exists already")
    assert not (tmp_path / "index.yml").exists() or "x1" not in (tmp_path / "index.yml").read_text()


# ------------------------------------------------------------------------------------------------ extract


@pytest.mark.slow  # model runs on CPU
def test_extract_records_each_output_it_cannot_write_and_goes_on(tmp_path, ckpt, shared_videos):
    """A full disk (here: a file-size limit, which any user may set, so the write fails as on ENOSPC) fails each
    input with a reason in the summary and the exit status, instead of stopping at the first."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a.mp4", "b.mp4"):
        os.symlink(shared_videos / SHORT_VIDEO, inputs / name)
    limit = "import resource, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    limit += "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))"  # a 2048-float feature file needs 8 KiB
    out = tmp_path / "out"
    args = ("extract", MODEL, str(inputs), "--checkpoint", str(ckpt), "--clips", "1", "--out", str(out))
    proc = run_cli(*args, prelude=limit)
    assert proc.returncode == 1, proc.stderr
    assert "unexpected" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    failed = [line for line in proc.stderr.splitlines() if line.startswith("failed")]
    assert len(failed) == 2 and "a.mp4" in failed[0] and "b.mp4" in failed[1], proc.stderr
    assert all("could not write" in line and "--out" in line for line in failed)
    assert "0 written, 0 already there, 2 failed" in proc.stdout
    assert not [p for p in out.rglob("*") if p.is_file()]  # no half-written output, no temporary left


@pytest.mark.slow  # model runs on CPU
def test_extract_outputs_follow_the_umask_and_npy_keeps_clip_starts(tmp_path, ckpt, shared_videos, capsys):
    video = shared_videos / "archery.avi"
    out = tmp_path / "out"
    common = [MODEL, str(video), "--checkpoint", str(ckpt), "--clip-stride", "40"]
    assert cli.main(["extract", *common, "--out", str(out / "st")]) == 0
    assert cli.main(["extract", *common, "--format", "npy", "--out", str(out / "np")]) == 0
    capsys.readouterr()
    st, npy = out / "st" / "archery.safetensors", out / "np" / "archery.npy"
    assert stat.S_IMODE(st.stat().st_mode) == FILE_MODE == stat.S_IMODE(npy.stat().st_mode)

    from safetensors.torch import load_file

    ref = load_file(str(st))
    starts = np.load(out / "np" / "archery.clip_starts.npy")
    np.testing.assert_array_equal(starts, ref["clip_starts"].numpy())
    assert len(starts) >= 2 and set(np.diff(starts).tolist()) == {40}
    np.testing.assert_allclose(np.load(npy), ref["features"].numpy(), rtol=0, atol=0)


def test_a_folder_of_videos_includes_gifs(tmp_path):
    import av

    from slowonly_zoo.inputs import expand_inputs

    gif = tmp_path / "wave.gif"
    with av.open(str(gif), "w") as c:
        s = c.add_stream("gif", rate=10)
        s.width, s.height, s.pix_fmt = 32, 24, "rgb8"
        for i in range(4):
            frame = np.full((24, 32, 3), 40 * i, dtype=np.uint8)
            for packet in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    (tmp_path / "notes.txt.bak").write_text("not a video")
    assert expand_inputs([tmp_path]) == [gif]


# ------------------------------------------------------------------------------------------------ user errors


def test_counts_below_one_are_refused_by_name(tmp_path, ckpt, shared_videos, capsys):
    video = str(shared_videos / SHORT_VIDEO)
    ann = tmp_path / "test.txt"
    ann.write_text(f"{SHORT_VIDEO} 1\n", encoding="utf-8")
    one_sentence_error(capsys, ["predict", MODEL, video, "--batch-views", "0"], "--batch-views must be 1 or more")
    out = str(tmp_path / "o")
    one_sentence_error(capsys, ["extract", MODEL, video, "--batch-views", "0", "--out", out], "--batch-views")
    verify = ["verify", MODEL, "--data-root", str(shared_videos), "--ann-file", str(ann), "--checkpoint", str(ckpt)]
    one_sentence_error(capsys, [*verify, "--limit", "0"], "--limit must be 1 or more")
    one_sentence_error(capsys, [*verify, "--batch-views", "-2"], "--batch-views")
    assert not (tmp_path / "o").exists()


def test_bad_lists_and_devices_are_one_sentence(tmp_path, ckpt, shared_videos, capsys):
    video = str(shared_videos / SHORT_VIDEO)
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{SHORT_VIDEO} 1\n{SHORT_VIDEO} x y z\n", encoding="utf-8")
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf\xe9.mp4 1\n")
    verify = ["verify", MODEL, "--data-root", str(shared_videos), "--checkpoint", str(ckpt)]
    one_sentence_error(capsys, [*verify, "--ann-file", str(bad)], "bad.txt", "line 2")
    one_sentence_error(capsys, [*verify, "--ann-file", str(latin)], "latin.txt", "UTF-8")
    one_sentence_error(capsys, ["predict", MODEL, str(latin), "--checkpoint", str(ckpt)], "latin.txt", "UTF-8")
    if not torch.cuda.is_available():
        one_sentence_error(capsys, ["predict", MODEL, video, "--device", "cuda"], "--device cpu")
    one_sentence_error(capsys, ["predict", MODEL, video, "--device", "gpu"], "'gpu'", "'cuda'")


def test_a_damaged_run_json_is_a_sentence_naming_it(tmp_path, ckpt, shared_videos, capsys):
    ann = tmp_path / "test.txt"
    ann.write_text(f"{SHORT_VIDEO} 1\n", encoding="utf-8")
    out = tmp_path / "verify_out"
    out.mkdir()
    (out / "run.json").write_bytes(b'{"model": "slowonly_r50_4x16x1_k4')  # cut short by a crash or a full disk
    argv = ["verify", MODEL, "--data-root", str(shared_videos), "--ann-file", str(ann), "--checkpoint", str(ckpt)]
    one_sentence_error(capsys, [*argv, "--out", str(out)], "run.json", "damaged", "--out")


def test_a_non_numeric_mean_in_an_extra_index_names_the_field(tmp_path, monkeypatch, capsys):
    record = entry_to_index(get_model_info(MODEL))
    record.update(Name="user_bad_mean", Alias=[])
    record["Test Protocol"]["Mean"] = ["abc", 116.28, 103.53]
    index_file = tmp_path / "extra.yml"
    index_file.write_text(yaml.safe_dump({"Models": [record]}, sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("SLOWONLY_ZOO_EXTRA_INDEX", str(index_file))
    from slowonly_zoo.index import reload_index

    reload_index()
    try:
        one_sentence_error(capsys, ["list"], "user_bad_mean", "Mean", "numbers")
    finally:
        monkeypatch.delenv("SLOWONLY_ZOO_EXTRA_INDEX")
        reload_index()


def test_fuse_refuses_a_pickled_npz_in_one_sentence(tmp_path, capsys):
    evil = tmp_path / "scores.npz"
    np.savez(
        evil,
        ids=np.array([{"a": 1}], dtype=object),  # object arrays only come back through pickle
        labels=np.array([0]),
        scores=np.zeros((1, 3), dtype=np.float32),
    )
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    one_sentence_error(capsys, ["fuse", str(evil), str(evil)], str(evil), "never unpickles", "verify")
    one_sentence_error(capsys, ["fuse", str(garbage), str(garbage)], str(garbage), "scores.npz")


def test_examples_print_one_line_not_a_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"}
    script = REPO / "examples" / "classify_video.py"
    proc = subprocess.run(
        [sys.executable, str(script), MODEL, str(tmp_path / "missing.mp4")], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert proc.stderr.startswith("classify_video.py: error: ") and "missing.mp4" in proc.stderr


# ------------------------------------------------------------------------------------------------ progress


def test_predict_and_extract_show_a_bar_on_a_terminal_and_nothing_when_quiet(
    tmp_path, ckpt, shared_videos, monkeypatch, capsys
):
    video = str(shared_videos / SHORT_VIDEO)
    base = ["predict", MODEL, video, "--checkpoint", str(ckpt), "--clips", "2"]
    monkeypatch.setenv("SLOWONLY_ZOO_PROGRESS", "1")  # as on a terminal
    assert cli.main(base) == 0
    err = capsys.readouterr().err
    assert "2/2" in err and "view" in err, err

    assert cli.main([*base[:-1], "1", "--quiet"]) == 0
    assert capsys.readouterr().err == ""

    out = str(tmp_path / "feats")
    assert cli.main(["extract", MODEL, video, "--checkpoint", str(ckpt), "--clips", "1", "--out", out]) == 0
    captured = capsys.readouterr()
    assert "1/1" in captured.err and "video" in captured.err, captured.err
    assert "wrote" not in captured.out and "1 written" in captured.out  # the bar replaces the per-file lines

    from slowonly_zoo.progress import show_progress

    monkeypatch.delenv("SLOWONLY_ZOO_PROGRESS")
    assert show_progress() is False  # a pipe (pytest's capture is no terminal): no bar


def test_benchmark_cpu_default_is_short():
    """The CPU defaults time few enough videos to finish in about a minute (upstream's 200 are for GPUs)."""
    import inspect

    from slowonly_zoo import benchmark as bench

    sig = inspect.signature(bench.benchmark)
    assert sig.parameters["iters"].default is None and sig.parameters["warmup"].default is None
    # about 20-60 s per 30-view video on a CPU: the defaults run 2 (was 10 + 3 end-to-end, over 10 minutes)
    assert bench.CPU_ITERS + bench.CPU_E2E_ITERS <= 2 and bench.CPU_ITERS > bench.CPU_WARMUP >= 1
    parser = cli.build_parser()
    args = parser.parse_args(["benchmark", MODEL])
    assert args.iters is None and args.warmup is None and args.e2e_iters is None


# ------------------------------------------------------------------------------------------------ small things


def test_list_has_a_modality_column_and_dataset_names_the_choices(capsys):
    assert cli.main(["list", "*k400_flow*"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["name", "dataset", "modality"]
    assert all(line.split()[2] == "flow" for line in table[2:] if line.startswith("slowonly_"))
    err = one_sentence_error(capsys, ["list", "--dataset", "foo"], "--dataset 'foo'", "Kinetics-400", "UCF101")
    assert "choose one of" in err


def test_download_all_ends_with_a_summary(monkeypatch, capsys):
    from slowonly_zoo.weights import transfer

    reports = [
        transfer.DownloadReport("a", "cached", Path("/c/a"), "cache", "cached in /c/a"),
        transfer.DownloadReport("b", "fetched", Path("/c/b"), "upstream", "got b"),
        transfer.DownloadReport("c", "failed", None, None, "no source"),
    ]
    monkeypatch.setattr(transfer, "download", lambda names, **kw: reports)
    assert cli.main(["download", "--all"]) == 1
    captured = capsys.readouterr()
    out = captured.out.strip().splitlines()
    assert out[-1] == "3 models: 1 cached, 1 fetched, 1 failed"
    assert not any(line.strip().startswith("cached") for line in out)  # cached models only counted with --all
    assert "no source" in captured.err


def test_one_view_is_singular(tmp_path, ckpt, shared_videos):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"}
    script = REPO / "examples" / "classify_video.py"
    video = str(shared_videos / SHORT_VIDEO)
    proc = subprocess.run(
        [sys.executable, str(script), MODEL, video, "--checkpoint", str(ckpt), "--clips", "1", "--topk", "1"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "(1 view)" in proc.stdout and "views)" not in proc.stdout


# ------------------------------------------------------------------------------------------------ README


def _readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_readme_says_how_to_install_the_cpu_build_of_torch():
    quick = _readme_section("Quick start")
    assert "pip install torch==2.14.1 torchvision==0.29.1 -e ." in quick  # the command as it was
    assert "pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu" in quick


def test_readme_states_the_suite_time_without_the_old_claim():
    tests = _readme_section("Running the tests")
    assert "about 9 minutes" not in tests and "8 min 34 s" not in tests
    assert re.search(r"python -m pytest` takes (TIME_TBD|about \d+ minutes|\d+ min \d+ s)", tests), tests
