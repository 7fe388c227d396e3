"""Captions: one mechanism for every dataset (``devis_core.toolkit.dataset_files.Captions``).

Sources, most specific first: the ``captions`` table's entry for the sample id, the sample's
caption file beside its data, the config's ``caption``; else ``""`` (the backbone's fallback).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from devis_core.errors import UsageError
from devis_core.toolkit.dataset_files import CaptionOptions, Captions, read_caption_table
from devis_core.toolkit.media import write_video
from devis_plugins.dl3dv import DL3DVConfig, DL3DVDataset
from devis_plugins.iphone import IPhoneConfig, IPhoneDataset
from devis_plugins.kubric4d import Kubric4DConfig, Kubric4DDataset
from devis_plugins.video import caption_file
from tests.datasets.test_dl3dv import write_scene as write_dl3dv_scene
from tests.datasets.test_iphone import write_sequence
from tests.datasets.test_kubric4d import write_scene as write_kubric_scene


def test_table_entry_beats_caption_file_beats_config_caption(tmp_path):
    (tmp_path / "table.json").write_text(json.dumps({"a": "from the table"}))
    (tmp_path / "a.txt").write_text("a's file")
    (tmp_path / "b.txt").write_text("  b's file\n")
    (tmp_path / "empty.txt").write_text(" \n")
    captions = Captions(CaptionOptions(caption="everyone", captions=tmp_path / "table.json"))
    assert captions.for_sample("a", tmp_path / "a.txt") == "from the table"
    assert captions.for_sample("b", tmp_path / "b.txt") == "b's file"
    assert captions.for_sample("c", tmp_path / "empty.txt") == "everyone"
    assert captions.for_sample("c", tmp_path / "absent.txt") == "everyone"
    assert Captions(CaptionOptions()).for_sample("c", tmp_path / "absent.txt") == ""


def test_jsonl_table_and_its_errors_name_file_and_line(tmp_path):
    table = tmp_path / "captions.jsonl"
    rows = [{"sample_id": "x", "caption": "a cat"}, {"sample_id": "y", "caption": "a dog"}]
    table.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    assert read_caption_table(table) == {"x": "a cat", "y": "a dog"}
    table.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"sample_id": "y"}) + "\n")
    with pytest.raises(UsageError, match=r"captions.jsonl, line 2: expected string fields"):
        read_caption_table(table)
    table.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[0]) + "\n")
    with pytest.raises(UsageError, match=r"captions.jsonl, line 2: sample 'x' again"):
        read_caption_table(table)
    table.write_text("{not json\n")
    with pytest.raises(UsageError, match=r"captions.jsonl, line 1 is not valid JSON"):
        read_caption_table(table)
    (tmp_path / "list.json").write_text(json.dumps(["a cat"]))
    with pytest.raises(UsageError, match=r"list.json: expected a JSON object of sample_id"):
        read_caption_table(tmp_path / "list.json")
    with pytest.raises(UsageError, match="caption file not found"):
        read_caption_table(tmp_path / "absent.jsonl")


def test_iphone_reads_the_sequence_caption_file(tmp_path):
    sequence = write_sequence(tmp_path)
    (sequence / "caption.txt").write_text("a person spins a wheel\n")
    sample = IPhoneDataset(IPhoneConfig(root=sequence, frames=3))[0]
    assert sample.caption == "a person spins a wheel"
    table = tmp_path / "captions.json"
    table.write_text(json.dumps({sample.sample_id: "from the table"}))
    config = IPhoneConfig(root=sequence, frames=3, captions=table)
    assert IPhoneDataset(config)[0].caption == "from the table"


def test_kubric4d_reads_the_scene_caption_file(tmp_path):
    root = tmp_path / "data"
    for scene in ("scn02900", "scn02901"):
        (root / scene).mkdir(parents=True)
        write_kubric_scene(root, scene)
    (root / "scn02900" / "caption.txt").write_text("balls bounce")
    dataset = Kubric4DDataset(Kubric4DConfig(root=root, count=4, frames=2, caption="a scene"))
    captions = {dataset.trajectories[i].scene: dataset[i].caption for i in range(len(dataset))}
    assert captions == {"scn02900": "balls bounce", "scn02901": "a scene"}


def test_dl3dv_reads_the_scene_caption_file(tmp_path):
    folder = write_dl3dv_scene(tmp_path)
    (folder / "caption.txt").write_text("a garden")
    assert DL3DVDataset(DL3DVConfig(root=tmp_path, frames=2))[0].caption == "a garden"


def test_video_reads_the_caption_beside_the_clip(registry, tmp_path):
    write_video(tmp_path / "clip.mp4", torch.rand(3, 3, 16, 24), fps=8)
    np.save(tmp_path / "depth.npy", np.full((3, 16, 24), 3.0, dtype=np.float32))
    entry = {"kind": "video", "path": tmp_path / "clip.mp4", "depth": tmp_path / "depth.npy"}
    entry["frames"] = 3
    assert registry.build("dataset", entry)[0].caption == ""
    (tmp_path / "clip.txt").write_text("a toy train")
    assert registry.build("dataset", entry)[0].caption == "a toy train"
    assert caption_file(tmp_path) == tmp_path / "caption.txt"  # a folder of frames
