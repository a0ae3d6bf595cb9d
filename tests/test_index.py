"""The model index: generated file in sync with its generator, names, aliases, facts, labels, extra entries."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from support import SEED_README, require_shared

from slowonly_zoo import index as ix

REPO = Path(__file__).resolve().parents[1]
PACKAGED = REPO / "slowonly_zoo" / "model_index.yml"

# The canonical names (README "Model index"): canonical name -> checkpoint suffix (None: the ensemble)
CANONICAL = {
    "slowonly_r50_4x16x1_k400": "a69556c6",
    "slowonly_r50_4x16x1_k400_256p": "bea7701f",
    "slowonly_r50_8x8x1_k400": "a79c555a",
    "slowonly_r50_8x8x1_k400_256p": "75851a7d",
    "slowonly_r50_4x16x1_k400_video": "c9cdc656",
    "slowonly_r50_4x16x1_k400_in1k": "1e8fc736",
    "slowonly_r50_8x8x1_k400_in1k": "3f9ce182",
    "slowonly_r50_nl_4x16x1_k400": "0d6e5a69",
    "slowonly_r50_nl_8x8x1_k400": "e8dd9e82",
    "slowonly_r50_4x16x1_k400_flow": "decb8568",
    "slowonly_r50_8x8x1_k400_flow": "6b384243",
    "slowonly_r50_4x16x1_k400_340x256": "dadca1a3",
    "slowonly_r50_4x16x1_k400_omni": "51b1f7ea",
    "slowonly_r101_8x8x1_k400": "0c730aef",
    "slowonly_r101_8x8x1_k400_omni": "b5dbb701",
    "slowonly_r50_8x8x1_k600": "81e5153e",
    "slowonly_r50_8x8x1_k700": "9250f662",
    "slowonly_r50_4x16x1_gym99": "a9c34b54",
    "slowonly_r50_4x16x1_gym99_flow": "66ecdb3c",
    "slowonly_r50_4x16x1_gym99_fusion": None,
    "slowonly_r50_8x8x1_jester": "b56a5389",
    "slowonly_r50_8x4x1_hmdb51_in1k": "16faeb6a",
    "slowonly_r50_8x4x1_hmdb51_k400": "cee5f725",
    "slowonly_r50_8x4x1_ucf101_in1k": "181e1661",
    "slowonly_r50_8x4x1_ucf101_k400": "ee8c850f",
    "slowonly_r50_8x4x1_sthv1": "d034ff12",
}

ALIASES = {
    # configs with two checkpoints resolve to the short-side-320 one
    "slowonly_r50_4x16x1_256e_kinetics400_rgb": "slowonly_r50_4x16x1_k400",
    "slowonly_r50_8x8x1_256e_kinetics400_rgb": "slowonly_r50_8x8x1_k400",
    # data benchmark configs
    "slowonly_r50_randomresizedcrop_320p_4x16x1_256e_kinetics400_rgb": "slowonly_r50_4x16x1_k400",
    "slowonly_r50_randomresizedcrop_256p_4x16x1_256e_kinetics400_rgb": "slowonly_r50_4x16x1_k400_256p",
    "slowonly_r50_randomresizedcrop_340x256_4x16x1_256e_kinetics400_rgb": "slowonly_r50_4x16x1_k400_340x256",
    # the 256p checkpoints' own names
    "slowonly_r50_256p_8x8x1_256e_kinetics400_rgb_20200820-75851a7d": "slowonly_r50_8x8x1_k400_256p",
    "slowonly_r50_256p_4x16x1_256e_kinetics400_rgb": "slowonly_r50_4x16x1_k400_256p",
    # displayed vs real flow config name (the 0.x README row says 196e, the config file 256e)
    "slowonly_r50_8x8x1_196e_kinetics400_flow": "slowonly_r50_8x8x1_k400_flow",
    "slowonly_r50_8x8x1_256e_kinetics400_flow": "slowonly_r50_8x8x1_k400_flow",
    # checkpoint file names, paths and URLs, any case
    "slowonly_r50_8x8x1_256e_kinetics400_flow_20200704-6b384243.pth": "slowonly_r50_8x8x1_k400_flow",
    "configs/recognition/slowonly/slowonly_r50_video_4x16x1_256e_kinetics400_rgb.py": "slowonly_r50_4x16x1_k400_video",
    "https://download.openmmlab.com/mmaction/recognition/slowonly/omni/"
    "slowonly_r101_omni_8x8x1_kinetics400_rgb_20200926-b5dbb701.pth": "slowonly_r101_8x8x1_k400_omni",
    "SlowOnly_R101_8x8x1_196e_Kinetics400_RGB": "slowonly_r101_8x8x1_k400",
    # OmniSource's first file names (0.x slowonly metafile.yml history)
    "slowonly_OmniSource_kinetics400_se_rgb_r50_seg1_4x16_scratch-71f7b8ee.pth": "slowonly_r50_4x16x1_k400_omni",
    "slowonly_OmniSource_kinetics400_se_rgb_r101_seg1_8x8_scratch-2f838cb0": "slowonly_r101_8x8x1_k400_omni",
    # the gym99 flow checkpoint folder says 'kinetics', the config 'k400'
    "slowonly_kinetics_pretrained_r50_4x16x1_120e_gym99_flow": "slowonly_r50_4x16x1_gym99_flow",
    "slowonly_k400_pretrained_r50_4x16x1_120e_gym99_flow": "slowonly_r50_4x16x1_gym99_flow",
    # the 0.x metafile.yml's naming slip must not move the ImageNet HMDB51 name
    "slowonly_imagenet_pretrained_r50_8x4x1_64e_hmdb51_rgb": "slowonly_r50_8x4x1_hmdb51_in1k",
    "slowonly_k400_pretrained_r50_8x4x1_40e_hmdb51_rgb": "slowonly_r50_8x4x1_hmdb51_k400",
    "slowonly_imagenet_pretrained_r50_8x8x1_64e_jester_rgb-b56a5389": "slowonly_r50_8x8x1_jester",
}

LABEL_LINES = {
    "kinetics400.txt": 400, "kinetics600.txt": 600, "kinetics700.txt": 700, "gym99.txt": 99,
    "jester.txt": 27, "hmdb51.txt": 51, "ucf101.txt": 101, "sthv1.txt": 174, "kinetics710.txt": 710,
}  # fmt: skip
LABEL_SHA256_PREFIX = {  # mmaction2's tools/data/*/label_map*.txt
    "kinetics400.txt": "e9f2806f", "kinetics600.txt": "8dfca420", "kinetics700.txt": "2f265d35",
    "ucf101.txt": "fabeefc5", "hmdb51.txt": "c24c56a7", "kinetics710.txt": "a853307b",
}  # fmt: skip


@pytest.fixture
def fresh_index(monkeypatch: pytest.MonkeyPatch):
    """An index reloaded for this test (env var changes apply) and reloaded again afterwards."""
    monkeypatch.delenv(ix.EXTRA_INDEX_ENV, raising=False)
    ix.reload_index()
    yield monkeypatch
    monkeypatch.undo()
    ix.reload_index()


def _load_build_index():
    spec = importlib.util.spec_from_file_location("build_index_under_test", REPO / "tools" / "build_index.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --- the generated file ---------------------------------------------------------------------------


def test_committed_index_is_the_generator_output() -> None:
    require_shared(SEED_README)
    rendered = _load_build_index().render(SEED_README.read_text(encoding="utf-8"))
    committed = PACKAGED.read_bytes()
    assert rendered.encode("utf-8") == committed, (
        "slowonly_zoo/model_index.yml differs from the generator's output; run "
        "`python tools/build_index.py ../shared/seed/slowonly_README.md -o slowonly_zoo/model_index.yml`"
    )


def test_top_level_index_is_the_packaged_file() -> None:
    assert (REPO / "model_index.yml").read_bytes() == PACKAGED.read_bytes()


def test_index_layout_follows_model_index_convention() -> None:
    doc = yaml.load(PACKAGED.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert [c["Name"] for c in doc["Collections"]] == ["SlowOnly"]
    for m in doc["Models"]:
        assert {"Name", "In Collection", "Alias", "Config", "Metadata", "Results", "Weights"} <= set(m)
        assert m["In Collection"] == "SlowOnly"
        for r in m["Results"]:
            task = "Action Detection" if "Not Supported" in m else "Action Recognition"  # FAIR's AVA detector
            assert r["Task"] == task and r["Dataset"] and r["Metrics"]


# --- names ----------------------------------------------------------------------------------------


MM0X = "mmaction2-0.x"  # the README's entries (FAIR's: tests/test_index_fair.py)


def test_exactly_the_canonical_names() -> None:
    assert ix.list_models(provenance=MM0X) == sorted(CANONICAL)
    assert ix.list_models(pretrained=True, provenance=MM0X) == sorted(n for n, s in CANONICAL.items() if s)
    assert ix.list_models(pretrained=False) == ["slowonly_r50_4x16x1_gym99_fusion"]
    assert ix.list_models("*GYM99*") == [
        "slowonly_r50_4x16x1_gym99", "slowonly_r50_4x16x1_gym99_flow", "slowonly_r50_4x16x1_gym99_fusion",
    ]  # fmt: skip


@pytest.mark.parametrize("name,suffix", sorted(CANONICAL.items()))
def test_canonical_name_maps_to_its_checkpoint(name: str, suffix: str | None) -> None:
    entry = ix.get_model_info(name)
    assert entry.name == name and ix.resolve_name(name) == name
    if suffix is None:
        assert entry.checkpoint is None and entry.is_ensemble
        return
    ck = entry.checkpoint
    assert ck is not None and ck.sha256_prefix == suffix
    assert ck.filename.endswith(f"-{suffix}.pth") and ck.url.endswith("/" + ck.filename)
    assert ck.url.startswith("https://download.openmmlab.com/mmaction/recognition/slowonly/")
    assert Path(ck.filename).stem in entry.aliases  # every checkpoint file stem is an alias


@pytest.mark.parametrize("alias,canonical", sorted(ALIASES.items()))
def test_alias_resolves(alias: str, canonical: str) -> None:
    assert ix.resolve_name(alias) == canonical
    assert ix.get_model_info(alias).name == canonical


def test_every_alias_resolves_to_its_own_entry_and_is_unique() -> None:
    seen: dict[str, str] = {}
    for name in ix.list_models():
        entry = ix.get_model_info(name)
        for alias in (name, *entry.aliases):
            assert ix.resolve_name(alias) == name
            assert ix.resolve_name(alias + ".pth") == name
            assert alias.lower() not in seen, f"{alias} used by {seen.get(alias.lower())} and {name}"
            seen[alias.lower()] = name


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(KeyError) as info:
        ix.get_model_info("slowonly_r50_8x8_k400")
    err = info.value
    assert isinstance(err, ix.UnknownModelError)
    assert "slowonly_r50_8x8x1_k400" in err.suggestions
    text = str(err)
    assert text.startswith("unknown SlowOnly model 'slowonly_r50_8x8_k400'")  # not KeyError's repr quirk
    assert "Did you mean: slowonly_r50_8x8x1_k400" in text and "list_models" in text
    with pytest.raises(ix.UnknownModelError, match="slowonly_r50_8x8x1_k700"):
        ix.resolve_name("k700")


# --- README rows ------------------------------------------------------------------------------------


def test_every_readme_checkpoint_is_in_exactly_one_entry() -> None:
    require_shared(SEED_README)
    urls = set(re.findall(r"\[ckpt\]\((https://[^)\s]+)\)", SEED_README.read_text(encoding="utf-8")))
    assert len(urls) == 25
    entries = [ix.get_model_info(n) for n in ix.list_models(provenance=MM0X)]
    for url in urls:
        holders = [e.name for e in entries if e.checkpoint and e.checkpoint.url == url]
        assert len(holders) == 1, (url, holders)
    assert {e.checkpoint.url for e in entries if e.checkpoint} == urls


def _figures(entry: ix.ModelEntry) -> list[tuple[str | None, float | None, float | None]]:
    return [(r.section, r.top1, r.top5) for r in entry.results]


def test_rows_reusing_a_checkpoint_are_extra_results() -> None:
    assert _figures(ix.get_model_info("slowonly_r50_4x16x1_k400")) == [
        ("Kinetics-400", 73.02, 90.77),
        ("Kinetics-400 Data Benchmark", 73.02, 90.77),
        ("Kinetics-400 OmniSource Experiments", 73.0, 90.8),
    ]
    assert _figures(ix.get_model_info("slowonly_r50_4x16x1_k400_256p")) == [
        ("Kinetics-400", 72.76, 90.51),
        ("Kinetics-400 Data Benchmark", 72.76, 90.51),
    ]
    first = ix.get_model_info("slowonly_r50_4x16x1_k400").results[0]
    assert (first.inference_time, first.inference_frames, first.gpu_mem) == (4.0, "40x3 frames", 3168)
    assert first.resolution == "short-side 320" and first.row == 4
    total_rows = sum(len(ix.get_model_info(n).results) for n in ix.list_models(provenance=MM0X))
    assert total_rows == 29  # 11 + 3 + 4 + 1 + 1 + 3 + 1 + 2 + 2 + 1 README rows
    assert ix.get_model_info("slowonly_r50_8x8x1_k400").train_resolution == "short-side 320"
    assert ix.get_model_info("slowonly_r50_8x8x1_k400_256p").train_resolution == "short-side 256"


def test_reported_figures() -> None:
    hmdb = ix.get_model_info("slowonly_r50_8x4x1_hmdb51_k400").results
    assert [(r.top1, r.top5, r.gpu_mem) for r in hmdb] == [(65.95, 91.05, 5812)]
    jester = ix.get_model_info("slowonly_r50_8x8x1_jester").results[0]
    assert (jester.top1, jester.top5) == (97.2, None)
    gym = ix.get_model_info("slowonly_r50_4x16x1_gym99_flow").results[0]
    assert (gym.top1, gym.mean_class_accuracy) == (80.3, 71.0)
    omni = ix.get_model_info("slowonly_r101_8x8x1_k400_omni")
    assert (omni.results[0].top1, omni.results[0].top5) == (80.4, 94.4)
    assert omni.training_data == "Kinetics-400 + OmniSource"
    assert omni.config == "configs/recognition/slowonly/slowonly_r101_8x8x1_196e_kinetics400_rgb.py"


def test_gym99_fusion_ensemble() -> None:
    e = ix.get_model_info("slowonly_r50_4x16x1_gym99_fusion")
    assert e.members == ("slowonly_r50_4x16x1_gym99", "slowonly_r50_4x16x1_gym99_flow")
    assert e.member_weights == (1.0, 1.0)
    assert e.checkpoint is None and e.architecture is None and e.protocol is None
    r = e.results[0]
    assert (r.top1, r.mean_class_accuracy, r.top5) == (83.7, 74.8, None)
    assert e.num_classes == 400 and len(e.labels) == 99


# --- hand-kept facts (0.x configs) --------------------------------------------------------------------


def test_architecture_and_protocol_facts() -> None:
    for name in ("slowonly_r50_4x16x1_gym99", "slowonly_r50_4x16x1_gym99_flow"):
        assert ix.get_model_info(name).num_classes == 400  # the gym99 0.x configs keep the base 400-way head
    sth = ix.get_model_info("slowonly_r50_8x4x1_sthv1")
    assert sth.architecture.with_pool1 is False  # the sthv1 0.x config
    assert (sth.protocol.resize_short, sth.protocol.crop, sth.protocol.crop_size) == (128, "three", 128)
    assert sth.num_classes == 174
    for name in ("slowonly_r50_8x8x1_k600", "slowonly_r50_8x8x1_k700"):
        p = ix.get_model_info(name).protocol
        assert p.resize_short is None and p.crop_size == 256 and p.data_format == "video"  # K600/K700 0.x test_pipeline
        assert p.start_index == 0 and p.filename_tmpl is None
    flow = ix.get_model_info("slowonly_r50_4x16x1_gym99_flow")
    assert flow.protocol.crop == "center" and flow.protocol.num_views == 10  # gym99 flow 0.x test_pipeline
    assert flow.architecture.in_channels == 2 and flow.protocol.mean == ix.FLOW_MEAN
    jester = ix.get_model_info("slowonly_r50_8x8x1_jester")
    assert (jester.architecture.clip_len, jester.architecture.frame_interval) == (8, 4)  # the jester 0.x config
    assert jester.protocol.frame_interval == 4 and jester.protocol.filename_tmpl == "{:05}.jpg"
    nl = ix.get_model_info("slowonly_imagenet_pretrained_r50_8x8x1_150e_kinetics400_rgb")
    assert nl.architecture.non_local is False and nl.pretrain == "ImageNet"
    assert ix.get_model_info("slowonly_r50_nl_8x8x1_k400").architecture.non_local is True
    assert ix.get_model_info("slowonly_r101_8x8x1_k400_omni").architecture.depth == 101
    for name in ix.list_models(pretrained=True, provenance=MM0X):
        e = ix.get_model_info(name)
        p, a = e.protocol, e.architecture
        assert (p.num_clips, p.average_clips) == (10, "prob")
        assert p.is_mmaction2 and a.head_mode == "global" and e.checkpoint.format == "mmaction2-pth"
        assert (p.clip_len, p.frame_interval) == (a.clip_len, a.frame_interval)
        assert p.num_views == (10 if name == "slowonly_r50_4x16x1_gym99_flow" else 30)
        assert (p.mean, p.std) == ((ix.RGB_MEAN, ix.RGB_STD) if a.modality == "rgb" else (ix.FLOW_MEAN, ix.FLOW_STD))
        assert p.start_index == (1 if p.data_format == "rawframes" else 0)


def test_parameter_counts() -> None:
    head = lambda k: 2048 * k + k  # noqa: E731
    assert ix.get_model_info("slowonly_r50_8x8x1_k400").params == 32_454_096  # counted on the built 0.x model
    assert ix.get_model_info("slowonly_r50_8x8x1_k400_flow").params == 32_450_960
    assert ix.get_model_info("slowonly_r50_nl_4x16x1_k400").params == 39_808_464
    assert ix.get_model_info("slowonly_r101_8x8x1_k400_omni").params == 60_359_120
    assert ix.get_model_info("slowonly_r50_4x16x1_gym99_flow").params == 32_450_960
    assert ix.get_model_info("slowonly_r50_8x8x1_k700").params == 32_454_096 - head(400) + head(700)
    assert ix.get_model_info("slowonly_r50_8x4x1_sthv1").params == 32_454_096 - head(400) + head(174)


# --- labels ---------------------------------------------------------------------------------------


def test_label_files() -> None:
    folder = REPO / "slowonly_zoo" / "labels"
    assert sorted(p.name for p in folder.glob("*.txt")) == sorted(LABEL_LINES)
    for name, count in LABEL_LINES.items():
        data = (folder / name).read_bytes()
        assert data.endswith(b"\n") and b"\r" not in data and data.count(b"\n") == count, name
        if name in LABEL_SHA256_PREFIX:
            assert hashlib.sha256(data).hexdigest()[:8] == LABEL_SHA256_PREFIX[name]
    k400 = ix.get_model_info("slowonly_r50_8x8x1_k400").labels
    assert len(k400) == 400 and k400[0] == "abseiling" and "massaging person's head" in k400
    for name in ix.list_models(provenance=MM0X):
        e = ix.get_model_info(name)
        assert 0 < len(e.labels) <= e.num_classes
        assert len(e.labels) == (99 if "gym99" in name else e.num_classes)


def test_label_count_above_head_size_is_an_error(tmp_path: Path) -> None:
    labels = tmp_path / "three.txt"
    labels.write_text("a\nb\nc\n", encoding="utf-8")
    e = ix.get_model_info("slowonly_r50_8x8x1_jester")
    import dataclasses

    bad = dataclasses.replace(e, name="x", num_classes=2, label_file=str(labels))
    with pytest.raises(ix.ModelIndexError, match="3 names but the head has only 2"):
        _ = bad.labels


# --- serialisation, extra entries -------------------------------------------------------------------


def test_round_trips() -> None:
    for name in ix.list_models(supported=False):
        e = ix.get_model_info(name)
        assert ix.entry_from_index(ix.entry_to_index(e)) == e
        assert ix.entry_from_index(json.loads(json.dumps(ix.entry_to_index(e)))) == e
    d = ix.get_model_info("slowonly_r50_4x16x1_gym99_flow").to_dict()
    assert d["protocol"]["num_views"] == 10 and d["checkpoint"]["sha256_prefix"] == "66ecdb3c"


def _custom_model(name: str, aliases: list[str], label_file: str | None = None) -> dict:
    d = ix.entry_to_index(ix.get_model_info("slowonly_r50_8x4x1_ucf101_k400"))
    d.update(Name=name, Alias=aliases, Results=[], **{"Num Classes": 3})
    d["Checkpoint"] = dict(d["Checkpoint"], URL="http://127.0.0.1:1/my_ft-0123abcd.pth",
                           Filename="my_ft-0123abcd.pth", **{"SHA256 Prefix": "0123abcd"})  # fmt: skip
    d["Label File"] = label_file
    return d


def test_extra_index_from_environment(tmp_path: Path, fresh_index: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_labels.txt").write_text("one\ntwo\nthree\n", encoding="utf-8")
    extra = tmp_path / "extra.yml"
    extra.write_text(yaml.safe_dump({"Models": [_custom_model("my_slowonly_ft", ["my_ft"], "my_labels.txt")]}))
    empty = tmp_path / "none.yml"
    empty.write_text("Models: []\n")
    fresh_index.setenv(ix.EXTRA_INDEX_ENV, f"{extra}{__import__('os').pathsep}{empty}")
    ix.reload_index()
    e = ix.get_model_info("MY_FT.pth")
    assert e.name == "my_slowonly_ft" and e.labels == ("one", "two", "three")
    assert Path(e.label_file).is_absolute()
    assert "my_slowonly_ft" in ix.list_models(pretrained=True)
    assert len(ix.list_models()) == 43  # 26 mmaction2 0.x + 10 mmaction2 1.x + 6 FAIR + 1


def test_extra_index_clash_names_the_file(tmp_path: Path, fresh_index: pytest.MonkeyPatch) -> None:
    extra = tmp_path / "clash.yml"
    extra.write_text(yaml.safe_dump({"Models": [_custom_model("mine", ["slowonly_r50_8x8x1_256e_kinetics400_rgb"])]}))
    fresh_index.setenv(ix.EXTRA_INDEX_ENV, str(extra))
    ix.reload_index()
    with pytest.raises(ValueError, match=r"clash\.yml.*clashes with model 'slowonly_r50_8x8x1_k400'"):
        ix.list_models()
    fresh_index.setenv(ix.EXTRA_INDEX_ENV, str(tmp_path / "missing.yml"))
    ix.reload_index()
    with pytest.raises(ix.ModelIndexError, match="missing.yml.*not a file"):
        ix.get_model_info("slowonly_r50_8x8x1_k400")


def test_register_model_entry(fresh_index: pytest.MonkeyPatch) -> None:
    stored = ix.register_model_entry(_custom_model("my_other_ft", ["other"]))
    assert ix.get_model_info("other") is stored and stored.labels == ()
    with pytest.raises(ValueError, match="clashes with model 'slowonly_r50_8x8x1_k400'"):
        ix.register_model_entry(_custom_model("slowonly_r50_8x8x1_k400", []))
    with pytest.raises(ValueError, match="clashes with model 'slowonly_r50_8x8x1_k400_flow'"):
        ix.register_model_entry(_custom_model("x2", ["SLOWONLY_R50_8x8x1_196e_kinetics400_flow"]))
    with pytest.raises(ValueError, match="invalid name or alias 'configs/x.py'"):
        ix.register_model_entry(_custom_model("x3", ["configs/x.py"]))
    with pytest.raises(ValueError, match="clashes with model 'my_other_ft'"):
        ix.register_model_entry(ix.get_model_info("other"))
    fusion = ix.entry_to_index(ix.get_model_info("slowonly_r50_4x16x1_gym99_fusion"))
    fusion.update(
        Name="my_fusion", Alias=[], Members=["slowonly_r50_8x8x1_k400", "other"], **{"Member Weights": [2, 1]}
    )
    fused = ix.register_model_entry(fusion)
    assert fused.members == ("slowonly_r50_8x8x1_k400", "my_other_ft") and fused.member_weights == (2.0, 1.0)
    fusion.update(Name="bad_fusion", Members=["nope"], **{"Member Weights": [1.0]})
    with pytest.raises(ValueError, match="unknown member 'nope'"):
        ix.register_model_entry(fusion)
    with pytest.raises(ix.ModelIndexError, match=r"model_index.yml schema .*entry_to_index"):
        ix.register_model_entry(ix.get_model_info("slowonly_r50_8x8x1_k400").to_dict())  # the read-only JSON form
    broken = _custom_model("broken", [])
    del broken["Num Classes"]
    with pytest.raises(ix.ModelIndexError, match="model 'broken': missing required key 'Num Classes'"):
        ix.register_model_entry(broken)
    ix.reload_index()
    with pytest.raises(ix.UnknownModelError):
        ix.get_model_info("other")


def test_generator_refuses_unmapped_rows() -> None:
    require_shared(SEED_README)
    build = _load_build_index()
    text = SEED_README.read_text(encoding="utf-8")
    jester_row = next(line for line in text.splitlines() if "-b56a5389.pth)" in line)
    new_ckpt = jester_row.replace("-b56a5389.pth", "-deadbeef.pth")
    with pytest.raises(SystemExit, match="unknown checkpoint .*deadbeef"):
        build.render(text.replace(jester_row, jester_row + "\n" + new_ckpt))
    with pytest.raises(SystemExit, match="unknown section"):
        build.render(text.replace("### Jester", "### Jester V2"))
    wrong_depth = jester_row.replace("ResNet50", "ResNet101")
    with pytest.raises(SystemExit, match="backbone 'ResNet101'"):
        build.render(text.replace(jester_row, wrong_depth))
