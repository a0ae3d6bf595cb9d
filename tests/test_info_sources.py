"""``slowonly-zoo info NAME`` lists the sources ``pretrained=True`` tries for the entry's file, in order
(``weights.sources.source_plan``: cache, Hub, ``SLOWONLY_ZOO_MIRRORS``, the upstream URL, then the openmmlab bucket's
origins or ``SLOWONLY_ZOO_ORIGINS``); ``list`` / ``info --json`` carry provenance and checkpoint format."""

from __future__ import annotations

import json
import re

import pytest

from slowonly_zoo import cli
from slowonly_zoo.index import get_model_info
from slowonly_zoo.weights.cache import weights_path
from slowonly_zoo.weights.origins import DEFAULT_ORIGINS

MM = "slowonly_r50_8x8x1_k400"
FAIR = "slow_r50_8x8_k400_pytorchvideo"


def _info_json(capsys, name: str) -> dict:
    assert cli.main(["info", name, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_info_lists_upstream_then_the_bucket_origins_after_the_mirrors(capsys, monkeypatch):
    monkeypatch.delenv("SLOWONLY_ZOO_ORIGINS", raising=False)  # the built-in origins
    monkeypatch.setenv("SLOWONLY_ZOO_MIRRORS", "http://lab:8000/,/srv/mirror")
    ck = get_model_info(MM).checkpoint
    assert ck is not None
    rel = ck.url.removeprefix("https://download.openmmlab.com/")
    want = [
        ("cache", str(weights_path(MM))),
        ("mirror", f"http://lab:8000/{rel}"),
        ("mirror", f"http://lab:8000/{ck.filename}"),
        ("mirror", f"/srv/mirror/{rel}"),
        ("mirror", f"/srv/mirror/{ck.filename}"),
        ("upstream", ck.url),
        ("origin", DEFAULT_ORIGINS[0] + rel),
        ("origin", DEFAULT_ORIGINS[1] + rel),
    ]
    data = _info_json(capsys, MM)
    assert [(s["kind"], s["location"]) for s in data["sources"]] == want
    assert (data["provenance"], data["checkpoint"]["format"]) == ("mmaction2-0.x", "mmaction2-pth")

    assert cli.main(["info", MM]) == 0
    text = capsys.readouterr().out
    assert "sources tried:" in text
    assert re.findall(r"^  \d+\. (\S+) +(\S+)$", text, re.MULTILINE) == want


@pytest.mark.parametrize(("value", "hosts"), [("https://b.example/,https://a.example", ["b", "a"]), ("", [])])
def test_the_origins_variable_reorders_or_removes_the_origins_info_shows(capsys, monkeypatch, value, hosts):
    monkeypatch.setenv("SLOWONLY_ZOO_ORIGINS", value)
    ck = get_model_info(MM).checkpoint
    assert ck is not None
    rel = ck.url.removeprefix("https://download.openmmlab.com/")
    sources = _info_json(capsys, MM)["sources"]
    assert [s["location"] for s in sources[1:]] == [ck.url, *(f"https://{h}.example/{rel}" for h in hosts)]


def test_a_fair_entry_has_its_own_host_only_and_offline_means_the_cache(capsys, monkeypatch):
    monkeypatch.delenv("SLOWONLY_ZOO_ORIGINS", raising=False)
    data = _info_json(capsys, FAIR)
    assert [(s["kind"], s["location"]) for s in data["sources"]] == [
        ("cache", str(weights_path(FAIR))),
        ("upstream", "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/SLOW_8x8_R50.pyth"),
    ]
    assert (data["provenance"], data["checkpoint"]["format"]) == ("pytorchvideo", "pytorchvideo-pyth")
    monkeypatch.setenv("SLOWONLY_ZOO_OFFLINE", "1")
    assert [s["kind"] for s in _info_json(capsys, FAIR)["sources"]] == ["cache", "offline"]


def test_list_filters_by_provenance_and_carries_the_checkpoint_format(capsys):
    assert cli.main(["list", "--provenance", "pyslowfast", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == {"slow_r50_4x16_k400_pyslowfast", "slow_r50_8x8_k400_pyslowfast"}
    assert {(r["provenance"], r["checkpoint_format"]) for r in rows} == {("pyslowfast", "caffe2-pkl")}
