"""Model paths given as Hugging Face repo ids resolve from a local cache only (no network).

Each test lays out a fake hub cache (``models--org--name/refs/main`` and
``snapshots/<hash>/...``) under a temporary ``HF_HUB_CACHE``, as ``huggingface-cli download``
leaves it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devis_core.errors import MissingWeightsError
from devis_core.toolkit.hub_cache import hub_reference, resolve_model_path
from devis_core.toolkit.model_directories import load_model_directory
from devis_core.toolkit.weights import require_file

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A hub cache holding ``org/name`` with ``weights.pth`` and ``unet/`` (no config.json)."""
    cache = tmp_path / "hub"
    repo = cache / "models--org--name"
    snapshot = repo / "snapshots" / COMMIT
    (snapshot / "unet").mkdir(parents=True)
    (snapshot / "weights.pth").write_bytes(b"not really weights")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # no local folder named org/
    return snapshot


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("org/name", ("org/name", "")),
        ("org/name/unet", ("org/name", "unet")),
        ("org/name/a/b.pth", ("org/name", "a/b.pth")),
        ("/abs/path", None),
        ("./org/name", None),
        ("~/org/name", None),
        ("weights.pth", None),
        ("org//name", None),
    ],
)
def test_what_reads_as_a_repo_id(value, expected):
    assert hub_reference(value) == expected


def test_require_file_resolves_a_file_of_a_cached_repo(hub):
    found = require_file("org/name/weights.pth", "the weights", "See docs.", "metric.path")
    assert found == hub / "weights.pth" and found.read_bytes() == b"not really weights"


def test_home_variable_is_read_when_resolving(hub, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(hub.parents[2].parent))  # HF_HOME/hub is the cache
    assert resolve_model_path("org/name/unet", "UNet") == hub / "unet"


def test_uncached_repo_names_repo_file_and_the_download_command(hub):
    with pytest.raises(MissingWeightsError) as caught:
        require_file("other/model/head.pth", "the head", "See docs/metrics.md.", "metric.head")
    message = str(caught.value)
    assert "other/model" in message and "head.pth" in message and "metric.head" in message
    assert "huggingface-cli download other/model head.pth" in message
    assert caught.value.exit_code == 2


def test_file_missing_from_a_cached_repo_is_named(hub):
    with pytest.raises(MissingWeightsError, match="org/name is cached .* without other.pth"):
        require_file("org/name/other.pth", "the weights", "", "metric.path")


def test_a_repo_without_a_file_is_refused_for_a_file_field(hub):
    with pytest.raises(MissingWeightsError, match="not a file in it"):
        require_file("org/name", "the weights", "", "metric.path")


def test_a_local_path_wins_over_a_repo_id(hub, tmp_path):
    local = tmp_path / "org" / "name" / "weights.pth"
    local.parent.mkdir(parents=True)
    local.write_text("local")
    assert require_file("org/name/weights.pth", "w", "", "f") == Path("org/name/weights.pth")


def test_model_directory_resolves_a_repo_subfolder(hub):
    # the cached unet/ has no config.json: the error proves the id resolved into the snapshot
    with pytest.raises(MissingWeightsError) as caught:
        load_model_directory(object, "org/name/unet", where="From tencent/DepthCrafter.")
    assert str(hub / "unet" / "config.json") in str(caught.value)


def test_model_directory_of_an_uncached_repo_says_how_to_get_it(hub):
    with pytest.raises(MissingWeightsError) as caught:
        load_model_directory(object, "stabilityai/svd/vae", where="See docs/models.md.")
    message = str(caught.value)
    assert "stabilityai/svd" in message and "vae" in message
    assert 'huggingface-cli download stabilityai/svd --include "vae/*"' in message
