"""The ``slowonly-zoo`` command line, run as a user runs it (``python -m slowonly_zoo ...`` in a subprocess), with
checkpoints in the exact upstream format written by the tests and the real clips of ../shared/videos.

Outputs are parsed and checked (JSON structure, labels from the label files, probabilities sorted and summing to
at most 1, the same numbers as the Python API), errors must be one readable sentence with the right exit code.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
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
from slowonly_zoo.index import Checkpoint, entry_to_index, get_model_info, list_models
from slowonly_zoo.inference import Predictor

REPO = Path(__file__).resolve().parents[1]
VIDEO_MODEL = "slowonly_r50_4x16x1_k400_video"
GYM_FLOW = "slowonly_r50_4x16x1_gym99_flow"
UPSTREAM = "https://download.openmmlab.com/mmaction/recognition/slowonly"


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m slowonly_zoo ARGS`` from the repository root, with this test's environment."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.setdefault("OMP_NUM_THREADS", "2")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "slowonly_zoo", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_readable_error(proc: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith("slowonly-zoo "), proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)


def check_topk(item: dict, labels: tuple[str, ...], k: int) -> None:
    """A predict JSON record: k classes, valid indices with their label-file names, sorted probabilities."""
    assert set(item) >= {"video", "topk", "num_views"}
    top = item["topk"]
    assert len(top) == k
    probs = [c["prob"] for c in top]
    assert probs == sorted(probs, reverse=True)
    assert all(0.0 < p <= 1.0 for p in probs) and sum(probs) <= 1.0 + 1e-6
    for c in top:
        assert 0 <= c["index"] < len(labels)
        assert c["label"] == labels[c["index"]]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> Iterator[dict[str, Path]]:
    with scratch_dir(tmp_path_factory, "upstream_ckpts") as d:
        yield {VIDEO_MODEL: write_upstream_checkpoint(d, VIDEO_MODEL, seed=1)}


@pytest.fixture()
def user_index(tmp_path, ckpts, monkeypatch) -> tuple[str, Path]:
    """A user model (a copy of the K400 video entry whose checkpoint is the test file) in an extra index YAML,
    and a mirror folder holding that file: the setup of ``SLOWONLY_ZOO_EXTRA_INDEX`` + ``SLOWONLY_ZOO_MIRRORS``."""
    src = ckpts[VIDEO_MODEL]
    name = "user_slowonly_r50_video_test"
    entry = dataclasses.replace(
        get_model_info(VIDEO_MODEL),
        name=name,
        aliases=(),
        checkpoint=Checkpoint(
            url=f"{UPSTREAM}/user/{src.name}", filename=src.name, sha256_prefix=src.stem.rsplit("-", 1)[1]
        ),
    )
    index_file = tmp_path / "extra_index.yml"
    index_file.write_text(yaml.safe_dump({"Models": [entry_to_index(entry)]}, sort_keys=False), encoding="utf-8")
    mirror = tmp_path / "mirror"
    (mirror / "mmaction/recognition/slowonly/user").mkdir(parents=True)
    os.link(src, mirror / "mmaction/recognition/slowonly/user" / src.name)
    monkeypatch.setenv("SLOWONLY_ZOO_EXTRA_INDEX", str(index_file))
    return name, mirror


# ------------------------------------------------------------------------------------------------ list / info


def test_list_json_every_model_with_filters(capsys):
    proc = run_cli("list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["name"] for r in rows] == list_models()
    by_name = {r["name"]: r for r in rows}
    k400 = by_name["slowonly_r50_8x8x1_k400"]
    assert (k400["top1"], k400["top5"], k400["params"]) == (74.93, 91.92, 32454096)
    assert k400["protocol"] == "8x8, 10 clips x 3 crops 256px" and k400["num_views"] == 30
    assert k400["cached"] is False  # a fresh cache per test
    assert by_name[GYM_FLOW]["num_views"] == 10 and by_name[GYM_FLOW]["mean_class_accuracy"] == 71.0
    assert by_name["slowonly_r50_8x4x1_sthv1"]["protocol"].endswith("128px")

    # filters, in process (same code path as the subprocess)
    assert cli.main(["list", "--dataset", "k400", "--modality", "flow", "--json"]) == 0
    flow = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in flow] == ["slowonly_r50_4x16x1_k400_flow", "slowonly_r50_8x8x1_k400_flow"]
    assert cli.main(["list", "*gym99*"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["name", "dataset", "modality", "top-1", "top-5", "params", "test", "protocol", "cached"]
    assert len([line for line in table if line.startswith("slowonly_")]) == 3
    assert any("70.20*" in line for line in table) and "mean class accuracy" in table[-1]
    assert cli.main(["list", "--dataset", "no-such-dataset"]) == 1


def test_info_json_text_and_unknown_name(capsys):
    proc = run_cli("info", "slowonly_imagenet_pretrained_r50_4x16x1_120e_gym99_rgb", "--json")  # an alias
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["name"] == "slowonly_r50_4x16x1_gym99"
    assert info["num_classes"] == 400 and info["num_labels"] == 99
    assert info["protocol"]["num_views"] == 30 and info["protocol"]["crop"] == "three"
    assert info["checkpoint"]["sha256_prefix"] == "a9c34b54" and info["cached"] is False

    assert cli.main(["info", GYM_FLOW]) == 0
    text = capsys.readouterr().out
    assert "CenterCrop(256)" in text and "10 per video" in text and "400 (99 named)" in text

    proc = run_cli("info", "slowonly_r50_8x8_k400")
    assert_readable_error(proc, 1, "unknown SlowOnly model", "Did you mean", "slowonly_r50_8x8x1_k400")
    assert len(proc.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------------ predict


def test_predict_json_matches_python_api_and_reports_bad_videos(tmp_path, ckpts, shared_videos):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)  # an MP4 header, then garbage
    videos = [shared_videos / "archery.avi", broken, shared_videos / "arm_wrestling.mp4"]
    proc = run_cli(
        "predict",
        VIDEO_MODEL,
        *map(str, videos),
        "--checkpoint",
        str(ckpts[VIDEO_MODEL]),
        "--clips",
        "1",
        "--topk",
        "5",
        "--json",
    )
    assert proc.returncode == 1, proc.stderr  # one input failed, the others were classified
    out = json.loads(proc.stdout)
    assert [o["video"] for o in out] == list(map(str, videos))
    labels = get_model_info(VIDEO_MODEL).labels
    for item in (out[0], out[2]):
        check_topk(item, labels, 5)
        assert item["num_views"] == 1
    assert "topk" not in out[1] and "broken.mp4" in out[1]["error"] and "cannot" in out[1]["error"]

    # the same numbers as the Python API
    torch.set_num_threads(2)
    predictor = Predictor(VIDEO_MODEL, checkpoint=ckpts[VIDEO_MODEL], clips=1, device="cpu")
    pred = predictor.predict_one(shared_videos / "archery.avi", topk=5)
    assert [c.index for c in pred.topk] == [c["index"] for c in out[0]["topk"]]
    np.testing.assert_allclose([c.prob for c in pred.topk], [c["prob"] for c in out[0]["topk"]], rtol=1e-5)
    assert abs(pred.probs.sum() - 1.0) < 1e-5

    # human-readable output of the same command (one good video)
    proc = run_cli(
        "predict", VIDEO_MODEL, str(videos[0]), "--checkpoint", str(ckpts[VIDEO_MODEL]), "--clips", "1", "--topk", "3"
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith(str(videos[0])) and "1 view" in lines[0]
    assert lines[1].split()[0] == "1." and lines[1].rstrip().endswith(f"[{pred.topk[0].index}]")
    assert pred.topk[0].label in lines[1]


def test_predict_refuses_rgb_video_for_flow_model(shared_videos):
    proc = run_cli(
        "predict", "slowonly_r50_8x8x1_k400_flow", str(shared_videos / "archery.avi"), env={"SLOWONLY_ZOO_OFFLINE": "1"}
    )
    assert_readable_error(proc, 1, "optical-flow model", "x_00001.jpg", "archery.avi")


def test_predict_missing_weights_and_missing_video(shared_videos, tmp_path, capsys, monkeypatch):
    proc = run_cli("predict", VIDEO_MODEL, str(shared_videos / "archery.avi"), env={"SLOWONLY_ZOO_OFFLINE": "1"})
    assert_readable_error(proc, 1, "slowonly-zoo import", "c9cdc656")
    # the same error path in process: one sentence on stderr, exit code 1
    monkeypatch.setenv("SLOWONLY_ZOO_OFFLINE", "1")
    for argv, fragment in (
        (["predict", VIDEO_MODEL, str(tmp_path / "nope.mp4")], "nope.mp4 does not exist"),
        (["predict", VIDEO_MODEL, str(shared_videos / "archery.avi"), "--clips", "0"], "--clips must be 1 or more"),
        (["predict", "slowonly_r50_4x16x1_gym99_fusion", str(shared_videos / "archery.avi")], "fuses the scores"),
    ):
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("slowonly-zoo predict: error:") and fragment in err and "Traceback" not in err


def test_predict_through_mirror_then_list_shows_cached(user_index, ckpts, shared_videos):
    name, mirror = user_index
    env = {"SLOWONLY_ZOO_MIRRORS": str(mirror)}
    proc = run_cli("predict", name, str(shared_videos / "cleaning_pool_32f.mp4"), "--clips", "1", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    (item,) = json.loads(proc.stdout)
    check_topk(item, get_model_info(VIDEO_MODEL).labels, 5)
    # the weights fetched from the mirror are the test checkpoint: same top-5 as loading it by path
    direct = Predictor(VIDEO_MODEL, checkpoint=ckpts[VIDEO_MODEL], clips=1, device="cpu").predict_one(
        shared_videos / "cleaning_pool_32f.mp4"
    )
    assert [c.index for c in direct.topk] == [c["index"] for c in item["topk"]]
    np.testing.assert_allclose([c.prob for c in direct.topk], [c["prob"] for c in item["topk"]], rtol=1e-5)

    proc = run_cli("list", name, "--json", env=env)
    (row,) = json.loads(proc.stdout)
    assert row["name"] == name and row["cached"] is True


# ------------------------------------------------------------------------------------------------ extract


def test_extract_resumable_with_layers_and_windows(tmp_path, ckpts, shared_videos, capsys):
    from safetensors import safe_open

    ck = str(ckpts[VIDEO_MODEL])
    videos = [shared_videos / "cleaning_pool_32f.mp4", shared_videos / "archery.avi"]
    out = tmp_path / "feats"
    proc = run_cli(
        "extract", VIDEO_MODEL, *map(str, videos), "--checkpoint", ck, "--clips", "1", "--out", str(out), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert sorted(report["written"]) == sorted(str(out / f"{v.stem}.safetensors") for v in videos)
    with safe_open(str(out / "archery.safetensors"), "pt") as fh:
        feats = fh.get_tensor("features")
        meta = fh.metadata()
    assert feats.shape == (2048,) and torch.isfinite(feats).all() and (feats >= 0).all()  # pooled ReLU output
    assert meta["model"] == VIDEO_MODEL and meta["layer"] == "pool" and meta["num_views"] == "1"
    assert int(meta["total_frames"]) == 131

    # rerun: nothing recomputed (resumable), files untouched
    mtime = (out / "archery.safetensors").stat().st_mtime_ns
    assert (
        cli.main(["extract", VIDEO_MODEL, *map(str, videos), "--checkpoint", ck, "--clips", "1", "--out", str(out)])
        == 0
    )
    assert "0 written, 2 already there, 0 failed" in capsys.readouterr().out
    assert (out / "archery.safetensors").stat().st_mtime_ns == mtime

    # the saved embedding is the classifier's input: its logits give the predict probabilities
    predictor = Predictor(VIDEO_MODEL, checkpoint=ck, clips=1, device="cpu")
    with torch.inference_mode():
        probs = torch.softmax(predictor.model.head.fc(feats[None]), -1)[0].double().numpy()
    np.testing.assert_allclose(probs, predictor.probabilities(videos[1])[0], rtol=1e-4, atol=1e-7)

    # sliding windows, npy; a list file as input
    listing = tmp_path / "list.txt"
    listing.write_text(f"{videos[1]}\n", encoding="utf-8")
    proc = run_cli(
        "extract",
        VIDEO_MODEL,
        str(listing),
        "--checkpoint",
        ck,
        "--clip-stride",
        "40",
        "--format",
        "npy",
        "--out",
        str(tmp_path / "win"),
    )
    assert proc.returncode == 0, proc.stderr
    windows = np.load(tmp_path / "win" / "archery.npy")
    assert windows.shape == (3, 2048)  # 131 frames, clips span 49: starts 0, 40, 80
    assert not np.allclose(windows[0], windows[2])


def test_extract_layer4_and_sharding_python_api(tmp_path, ckpts, shared_videos):
    from safetensors import safe_open

    from slowonly_zoo.features import extract

    video = shared_videos / "cleaning_pool_32f.mp4"
    s = extract(
        VIDEO_MODEL,
        [video],
        tmp_path,
        checkpoint=ckpts[VIDEO_MODEL],
        layer="layer4",
        clips=1,
        device="cpu",
        clip_stride=None,
    )
    (path,) = s.written
    with safe_open(str(path), "pt") as fh:
        assert fh.get_tensor("features").shape == (1, 2048, 4, 8, 8)
    # two ranks split the list (rank 1 of 2 gets archery only); a shard whose outputs all exist loads no model
    items = [video, shared_videos / "archery.avi", shared_videos / "chaplin.mp4"]
    (tmp_path / "shard").mkdir()
    (tmp_path / "shard" / "archery.safetensors").write_bytes(b"done")
    r1 = extract(VIDEO_MODEL, items, tmp_path / "shard", rank=1, world_size=2, checkpoint="/nonexistent.pth")
    assert r1.skipped == [tmp_path / "shard" / "archery.safetensors"] and r1.written == []


# ------------------------------------------------------------------------------------------------ benchmark


def test_benchmark_tiny(shared_videos, capsys):
    proc = run_cli(
        "benchmark",
        VIDEO_MODEL,
        "--iters",
        "3",
        "--warmup",
        "1",
        "--clips",
        "1",
        "--crop-size",
        "32",
        "--video",
        str(shared_videos / "cleaning_pool_32f.mp4"),
        "--e2e-iters",
        "1",
        "--json",
        "--device",
        "cpu",
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["device"] == "cpu" and r["views_per_video"] == 1 and r["input_per_view"] == [3, 4, 32, 32]
    assert r["iters"] == 3 and r["warmup"] == 1 and r["upstream_setting"] is False
    assert r["model_videos_per_second"] > 0 and r["end_to_end"]["videos_per_second"] > 0
    assert r["reported_videos_per_second"] is None or r["reported_videos_per_second"] > 0
    assert cli.main(["benchmark", VIDEO_MODEL, "--iters", "2", "--warmup", "5"]) == 1
    assert "--iters (2) must be larger than --warmup (5)" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ verify / fuse


def _flow_folder(root: Path, name: str, frames: int, seed: int) -> Path:
    from PIL import Image

    d = root / name
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(1, frames + 1):
        for axis in "xy":
            Image.fromarray(rng.integers(0, 256, (48, 64), dtype=np.uint8), "L").save(d / f"{axis}_{i:05d}.jpg")
    return d


@pytest.mark.slow
def test_verify_exit_2_then_fuse(tmp_path):
    """verify on a one-video flow dataset with a random checkpoint: measured accuracy is far from the reported one,
    so the exit code is 2; then fuse the score file with itself."""
    ck = write_upstream_checkpoint(tmp_path / "ck", GYM_FLOW, seed=3)
    data = tmp_path / "data"
    _flow_folder(data, "clip_a", 70, 0)
    ann = tmp_path / "val.txt"
    ann.write_text("clip_a 70 3\n", encoding="utf-8")
    out = tmp_path / "verify"
    proc = run_cli(
        "verify",
        GYM_FLOW,
        "--data-root",
        str(data),
        "--ann-file",
        str(ann),
        "--checkpoint",
        str(ck),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--num-workers",
        "0",
        "--no-progress",
        "--json",
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    report = json.loads(proc.stdout)
    assert report["verdict"] == "failed" and report["videos"]["evaluated"] == 1
    assert report["reported"]["top1"] == 80.3
    assert (out / "scores.npz").is_file() and (out / "results.json").is_file()

    proc = run_cli(
        "fuse", str(out / "scores.npz"), str(out), "--weights", "1,1", "--out", str(tmp_path / "fused"), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    fused = json.loads(proc.stdout)
    assert fused["videos"] == 1 and fused["weights"] == [1.0, 1.0]
    assert fused["metrics"]["top1"] == report["measured"]["top1"]  # fusing a score table with itself
    assert (tmp_path / "fused" / "scores.npz").is_file()
    proc = run_cli("fuse", str(out / "scores.npz"), "--weights", "1,x")
    assert_readable_error(proc, 1, "--weights must be comma-separated numbers")
    proc = run_cli("verify", GYM_FLOW, "--data-root", str(data), "--ann-file", str(tmp_path / "missing.txt"))
    assert_readable_error(proc, 1, "missing.txt")


# ------------------------------------------------------------------------------------------------ weights


def test_import_download_export(user_index, ckpts, tmp_path, capsys, monkeypatch):
    name, _mirror = user_index
    assert cli.main(["download", "--json"]) == 1 and "--all" in capsys.readouterr().err
    assert cli.main(["import", str(tmp_path / "nothing-here.pth")]) == 1
    capsys.readouterr()

    renamed = tmp_path / "renamed.pth"  # import recognises the file by its hash, whatever its name
    os.link(ckpts[VIDEO_MODEL], renamed)
    proc = run_cli("import", str(renamed), "--json")
    assert proc.returncode == 0, proc.stderr
    (res,) = json.loads(proc.stdout)
    assert res["status"] == "imported" and name in res["names"]

    proc = run_cli("download", name, env={"SLOWONLY_ZOO_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "cached" in proc.stdout and name in proc.stdout

    out = tmp_path / "export"
    proc = run_cli("export", name, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} >= {"model.safetensors", "config.json", "README.md"}
    assert json.loads((out / "config.json").read_text())["num_classes"] == 400


@pytest.mark.slow
def test_extract_under_torchrun_shards_the_list(tmp_path, ckpts, shared_videos):
    """``torchrun --nproc_per_node=2 -m slowonly_zoo extract``: each rank takes every other input, all get done."""
    videos = [shared_videos / "cleaning_pool_32f.mp4", shared_videos / "archery.avi"]
    out = tmp_path / "feats"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=0",
            "-m",
            "slowonly_zoo",
            "extract",
            VIDEO_MODEL,
            *map(str, videos),
            "--checkpoint",
            str(ckpts[VIDEO_MODEL]),
            "--clips",
            "1",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--json",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reports = [json.loads(chunk) for chunk in re.findall(r"^\{.*?^\}", proc.stdout, flags=re.S | re.M)]
    assert sorted((r["rank"], r["world_size"]) for r in reports) == [(0, 2), (1, 2)]
    written = sorted(p for r in reports for p in r["written"])
    assert written == sorted(str(out / f"{v.stem}.safetensors") for v in videos)
    assert all(len(r["written"]) == 1 for r in reports)
