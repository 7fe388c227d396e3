"""Pipeline configs: validation against plugin models, YAML paths in errors, overrides, extends."""

from __future__ import annotations

import textwrap

import pytest

from devis_core.config import (
    apply_overrides,
    dump_config,
    load_config,
    parse_override,
    parse_yaml,
    pipeline_model,
    validate_config,
)
from devis_core.errors import ConfigError, UsageError
from devis_core.plugins import load_registry
from tests.plugins import toy_components


@pytest.fixture
def toys():
    return load_registry(plugins=[("toys", toy_components)], use_entry_points=False)


def _problems(data, registry):
    with pytest.raises(ConfigError) as error:
        validate_config(data, registry)
    return dict(error.value.problems)


def test_valid_config_fills_defaults(toys):
    config = validate_config(
        {"depth": {"kind": "toy-constant"}, "metrics": ["toy-max-error"], "seed": 3}, toys
    )
    assert config.depth.scale == 2.0 and config.seed == 3 and config.device == "auto"
    assert config.metrics[0].kind == "toy-max-error"
    assert config.backbone is None and config.rewards == []


def test_unknown_field_of_a_component_names_its_yaml_path(toys):
    problems = _problems({"depth": {"kind": "toy-constant", "scael": 1}}, toys)
    assert "depth.scael" in problems
    assert "allowed: kind, scale" in problems["depth.scael"]


def test_error_inside_a_list_entry_has_the_index(toys):
    data = {"rewards": [{"kind": "toy-mean"}, {"kind": "toy-mean", "weight": "heavy"}]}
    problems = _problems(data, toys)
    assert list(problems) == ["rewards[1].weight"]
    assert "number" in problems["rewards[1].weight"]


def test_reward_entries_take_weight_and_range(toys):
    config = validate_config(
        {"rewards": [{"kind": "toy-mean", "weight": 0.5, "range": [0, 2]}]}, toys
    )
    assert config.rewards[0].weight == 0.5 and config.rewards[0].range == (0.0, 2.0)


def test_unknown_kind_lists_registered_names_and_closest(toys):
    problems = _problems({"depth": {"kind": "toy-constnt"}}, toys)
    assert "did you mean 'toy-constant'" in problems["depth.kind"]
    assert "Registered depth components: toy-constant" in problems["depth.kind"]


def test_missing_kind_and_wrong_shapes_are_all_reported_at_once(toys):
    problems = _problems(
        {"depth": {"scale": 1}, "backbone": "toy-identity", "metrics": {"kind": "x"}}, toys
    )
    assert set(problems) == {"depth.kind", "backbone", "metrics"}
    assert "toy-constant" in problems["depth.kind"]


def test_unknown_top_level_key_lists_sections(toys):
    problems = _problems({"acumulator": {"kind": "toy-source"}}, toys)
    assert "acumulator" in problems and "accumulator" in problems["acumulator"]


def test_bad_device_is_rejected(toys):
    assert "device" in _problems({"device": "gpu"}, toys)


def test_yaml_cannot_construct_python_objects(tmp_path, toys):
    path = tmp_path / "evil.yaml"
    path.write_text("depth: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, toys)
    assert "not valid YAML" in str(error.value)


def test_yaml_syntax_error_gives_line_and_column():
    with pytest.raises(ConfigError) as error:
        parse_yaml("seed: 1\ndepth: {kind: a\n", "bad.yaml")
    [(where, reason)] = error.value.problems
    assert where.startswith("line 3") and "bad.yaml" in str(error.value)


def test_top_level_must_be_a_mapping():
    with pytest.raises(ConfigError):
        parse_yaml("- a\n- b\n")


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("accumulator.steps=3", ["accumulator", "steps"], 3),
        ("rewards[1].weight=0.5", ["rewards", 1, "weight"], 0.5),
        ("rewards.1.weight=0.5", ["rewards", 1, "weight"], 0.5),
        ("device=cpu", ["device"], "cpu"),
        ("metrics=[psnr, ssim]", ["metrics"], ["psnr", "ssim"]),
        ("output=", ["output"], ""),
        ("a.b=null", ["a", "b"], None),
    ],
)
def test_parse_override(text, path, value):
    assert parse_override(text) == (path, value)


@pytest.mark.parametrize("text", ["noequals", "=3", "a..b=1", "[0]=1", "a[x]=1"])
def test_bad_overrides_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_override(text)


def test_apply_overrides_sets_nested_values_without_touching_the_input():
    data = {"rewards": [{"kind": "a"}, {"kind": "b"}], "metrics": ["psnr"]}
    result = apply_overrides(data, ["rewards[1].weight=2", "accumulator.steps=4", "metrics[0].x=1"])
    assert result["rewards"][1] == {"kind": "b", "weight": 2}
    assert result["accumulator"] == {"steps": 4}
    assert result["metrics"][0] == {"kind": "psnr", "x": 1}
    assert data["rewards"][1] == {"kind": "b"}


def test_changing_kind_drops_the_old_components_fields():
    data = {"dataset": {"kind": "synthetic", "frames": 8}, "depth": {"kind": "a", "x": 1}}
    result = apply_overrides(data, ["dataset.kind=video", "dataset.path=c.mp4", "depth.kind=a"])
    assert result["dataset"] == {"kind": "video", "path": "c.mp4"}
    assert result["depth"] == {"kind": "a", "x": 1}


def test_override_index_out_of_range_is_a_usage_error():
    with pytest.raises(UsageError, match="out of range"):
        apply_overrides({"rewards": [{"kind": "a"}]}, ["rewards[3].weight=1"])


def test_extends_merges_mappings_and_replaces_lists(tmp_path, toys):
    (tmp_path / "base.yaml").write_text(
        textwrap.dedent("""
        seed: 1
        depth: {kind: toy-constant, scale: 4}
        metrics: [toy-max-error]
    """)
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "child.yaml").write_text(
        textwrap.dedent("""
        extends: ../base.yaml
        seed: 2
        depth: {scale: 5}
        metrics: []
    """)
    )
    config = load_config(tmp_path / "sub" / "child.yaml", toys, ["depth.scale=6"])
    assert config.seed == 2 and config.depth.kind == "toy-constant" and config.depth.scale == 6
    assert config.metrics == []


def test_extends_cycle_is_reported(tmp_path, toys):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        load_config(tmp_path / "a.yaml", toys)


def test_missing_config_file_is_a_usage_error(tmp_path, toys):
    with pytest.raises(UsageError, match="not found"):
        load_config(tmp_path / "nope.yaml", toys)


def test_dump_round_trips_and_records_provenance(toys):
    config = validate_config({"depth": {"kind": "toy-constant", "scale": 3}}, toys)
    dumped = dump_config(config, toys)
    assert dumped["provenance"] == [
        {
            "slot": "depth",
            "name": "toy-constant",
            "plugin": "toys",
            "distribution": "<not installed>",
            "version": "",
        }
    ]
    assert validate_config(dumped, toys).model_dump() == config.model_dump()


def test_schema_is_built_from_installed_components(toys):
    schema = pipeline_model(toys).model_json_schema()
    text = str(schema)
    assert "toy-constant" in text and "toy-identity" in text
    assert schema["additionalProperties"] is False


def test_a_validated_entry_reaches_its_component_as_it_is(registry):
    """Typed configs flow through: no dump to a dict and validation again on the way."""
    config = validate_config(
        {"backbone": {"kind": "passthrough", "fill": 0.25}, "dataset": {"kind": "synthetic"}},
        registry,
    )
    backbone = registry.build("backbone", config.backbone)
    assert backbone.config is config.backbone
