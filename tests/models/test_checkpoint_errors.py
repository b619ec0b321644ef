"""Checkpoints that are not what they seem: named errors, NaN weights by name, hashes checked
before unpickling, and labels that find the checkpoint again from any folder."""

from __future__ import annotations

import json

import pytest
import torch

from vidtldr_deploy.errors import InputError, VidTLDRError
from vidtldr_deploy.models.checkpoint import read_checkpoint
from vidtldr_deploy.models.registry import get_architecture
from vidtldr_deploy.models.source import load_source


def _tiny_state(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return get_architecture("umt-tiny").build().state_dict()


def test_nan_weights_are_named(tmp_path):
    state = _tiny_state()
    key = next(k for k in state if k.endswith("qkv.weight"))
    state[key][0, 0] = float("nan")
    path = tmp_path / "nan.pt"
    torch.save(state, path)
    with pytest.raises(InputError, match=rf"NaN or Inf values in 1 tensor\(s\): {key}"):
        load_source(str(path), arch="umt-tiny")


def test_frames_zero_is_not_the_default():
    with pytest.raises(VidTLDRError, match="--frames"):
        load_source("demo-random", frames=0)
    with pytest.raises(VidTLDRError, match="--ckpt-frames"):
        load_source("demo-random", ckpt_frames=0)


def test_label_is_absolute_so_validate_finds_it_from_another_folder(tmp_path, monkeypatch):
    torch.save(_tiny_state(), tmp_path / "m.pt")
    monkeypatch.chdir(tmp_path)
    loaded = load_source("m.pt", arch="umt-tiny")
    assert loaded.label == str(tmp_path / "m.pt")


def test_expected_hash_is_checked_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    torch.save(_tiny_state(), path)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("loaded before the hash check"))
    with pytest.raises(InputError, match=f"{path}.*is not the one the graph was exported from"):
        read_checkpoint(path, unsafe_load=True, expected_sha256="00" * 32)


def test_hf_folder_is_recorded_as_the_folder(tmp_path, monkeypatch):
    pytest.importorskip("safetensors")
    from safetensors.torch import save_file

    transformers = pytest.importorskip("transformers")
    config = transformers.VideoMAEConfig(
        image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=48,
        num_hidden_layers=2, num_attention_heads=3, intermediate_size=96,
    )  # fmt: skip
    model = transformers.VideoMAEModel(config)
    folder = tmp_path / "hf"
    model.save_pretrained(folder)
    assert (folder / "model.safetensors").exists() or save_file  # either weights file works
    monkeypatch.chdir(tmp_path)
    loaded = load_source("hf")
    assert loaded.label == str(folder)  # the folder, so config.json is found again
    assert "sizes from config.json: 48 wide, 2 layers, 3 heads" in loaded.description
    assert json.loads((folder / "config.json").read_text())["hidden_size"] == 48
