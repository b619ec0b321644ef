"""VideoMAE family: transformers checkpoints load into MergeViT and match transformers' outputs."""

from __future__ import annotations

from functools import cache

import pytest
import torch

from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.models.checkpoint import infer_architecture, load_model, read_checkpoint
from vidtldr_deploy.models.registry import get_architecture
from vidtldr_deploy.models.videomae import convert_videomae

B, FRAMES, SIDE = 2, 4, 32
TINY = dict(
    image_size=SIDE,
    patch_size=8,
    num_frames=FRAMES,
    tubelet_size=2,
    hidden_size=64,
    num_hidden_layers=4,
    num_attention_heads=4,
    intermediate_size=256,
)
TOL = dict(atol=1e-5, rtol=1e-5)


def _hf_model(kind: str, seed: int = 0, **overrides):
    """A tiny random transformers VideoMAE with weights far from their (near-zero) init."""
    pytest.importorskip("transformers")
    return _build_hf_model(kind, seed, tuple(sorted(overrides.items())))


@cache
def _build_hf_model(kind: str, seed: int, overrides: tuple):
    import transformers

    overrides = dict(overrides)
    config = transformers.VideoMAEConfig(**{**TINY, **overrides})
    torch.manual_seed(seed)
    cls = {
        "encoder": transformers.VideoMAEModel,
        "classifier": transformers.VideoMAEForVideoClassification,
        "pretraining": transformers.VideoMAEForPreTraining,
    }[kind]
    model = cls(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0.0, 0.1)
            if "norm" in name and name.endswith("weight"):
                p.add_(1.0)
    return model


def _save(model, tmp_path, name: str = "hf"):
    path = tmp_path / name
    model.save_pretrained(path)
    return path


def _video(seed: int = 1) -> torch.Tensor:
    """HF layout (B, T, 3, H, W)."""
    return torch.randn(B, FRAMES, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(seed))


def _ours(video_hf: torch.Tensor) -> torch.Tensor:
    return video_hf.permute(0, 2, 1, 3, 4)  # MergeViT: (B, 3, T, H, W)


def _load_inferred(path):
    ckpt = read_checkpoint(path)
    arch = infer_architecture(ckpt)
    model, report = load_model(ckpt, arch, inferred=True)
    return arch, model, report


def test_registered_sizes():
    b, large, tiny = (get_architecture(n) for n in ("videomae-b", "videomae-l", "videomae-tiny"))
    assert {a.family for a in (b, large, tiny)} == {"videomae"}
    assert (b.config.embed_dim, b.config.depth, b.config.heads) == (768, 12, 12)
    assert (large.config.embed_dim, large.config.depth, large.config.heads) == (1024, 24, 16)
    assert (tiny.config.img_size, tiny.config.patch_size, tiny.config.embed_dim) == (32, 8, 64)
    assert tiny.tiny and tiny.default_frames == 4
    for arch in (b, large):
        assert arch.config.tubelet == 2 and arch.default_frames == 16
        with torch.device("meta"):
            assert arch.build().num_tokens == 1568


@pytest.mark.parametrize("mean_pooling", [True, False])
def test_encoder_matches_transformers(tmp_path, mean_pooling):
    hf = _hf_model("encoder", use_mean_pooling=mean_pooling)
    arch, model, _ = _load_inferred(_save(hf, tmp_path))
    assert arch.name == "videomae-tiny"
    assert model.output_names == ("tokens", "pooled")
    assert model.cfg.final_norm is not mean_pooling  # videomae.layernorm only without mean pooling
    video = _video()
    with torch.no_grad():
        want = hf(pixel_values=video).last_hidden_state
        tokens, pooled = model(_ours(video))
    torch.testing.assert_close(tokens, want, **TOL)
    torch.testing.assert_close(pooled, want.mean(dim=1), **TOL)


def test_pretraining_checkpoint_loads_its_encoder(tmp_path):
    hf = _hf_model("pretraining")
    arch, model, report = _load_inferred(_save(hf, tmp_path))
    assert arch.name == "videomae-tiny"
    decoder = ("decoder.", "encoder_to_decoder.", "mask_token")
    assert report.ignored and all(k.startswith(decoder) for k in report.ignored)
    video = _video()
    with torch.no_grad():
        want = hf.videomae(pixel_values=video).last_hidden_state
        tokens, _ = model(_ours(video))
    torch.testing.assert_close(tokens, want, **TOL)


def test_classifier_matches_transformers(tmp_path):
    hf = _hf_model("classifier", num_labels=7)
    arch, model, report = _load_inferred(_save(hf, tmp_path))
    assert arch.name == "videomae-tiny" and report.inferred
    assert model.output_names == ("logits",)
    assert model.cfg.num_classes == 7 and model.cfg.pool_norm and not model.cfg.final_norm
    video = _video()
    with torch.no_grad():
        want = hf(pixel_values=video).logits
        (logits,) = model(_ours(video))
    torch.testing.assert_close(logits, want, **TOL)


def test_other_size_loads_from_config(tmp_path):
    """Sizes no registered architecture has: configured from config.json under a videomae name."""
    hf = _hf_model(
        "classifier",
        num_labels=3,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=96,
        image_size=48,
        qv_bias=False,
        layer_norm_eps=1e-6,
        hidden_act="gelu",
    )
    ckpt = read_checkpoint(_save(hf, tmp_path))
    try:
        inferred = infer_architecture(ckpt)
    except VidTLDRError:
        inferred = None
    assert inferred is None or inferred.name != "videomae-tiny"
    model, _ = load_model(ckpt, get_architecture("videomae-tiny"), frames=FRAMES)
    cfg = model.cfg
    assert (cfg.depth, cfg.heads, cfg.img_size) == (2, 2, 48)
    assert (cfg.qv_bias, cfg.norm_eps) == (False, 1e-6)
    assert model.blocks[0].mlp.fc1.out_features == 96
    video = torch.randn(B, FRAMES, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(model(_ours(video))[0], hf(pixel_values=video).logits, **TOL)


def test_registered_size_loads_only_under_its_name(tmp_path):
    ckpt = read_checkpoint(_save(_hf_model("encoder"), tmp_path))
    with pytest.raises(VidTLDRError, match="videomae-b") as err:
        load_model(ckpt, get_architecture("videomae-b"))
    assert "--arch videomae-tiny" in str(err.value)


def test_plain_state_dict_without_config(tmp_path):
    hf = _hf_model("classifier", num_labels=5)
    path = tmp_path / "videomae.pt"
    torch.save(hf.state_dict(), path)
    arch, model, _ = _load_inferred(path)
    assert arch.name == "videomae-tiny"
    video = _video()
    with torch.no_grad():
        torch.testing.assert_close(model(_ours(video))[0], hf(pixel_values=video).logits, **TOL)


def test_old_transformers_q_bias_keys():
    """transformers < 4.4x stored q/v biases as `q_bias`/`v_bias` parameters."""
    hf = _hf_model("encoder")
    state = hf.state_dict()
    old = {
        k.replace("query.bias", "q_bias").replace("value.bias", "v_bias"): v
        for k, v in state.items()
    }
    assert any(k.endswith(".q_bias") for k in old)
    new_converted, _ = convert_videomae(state)
    old_converted, _ = convert_videomae(old)
    assert new_converted.keys() == old_converted.keys()
    for key, value in new_converted.items():
        assert torch.equal(value, old_converted[key])
    assert new_converted["blocks.0.attn.qkv.weight"].shape == (3 * 64, 64)


@pytest.mark.parametrize("kind", ["encoder", "classifier"])
@pytest.mark.parametrize("merge_impl", ["reference", "custom_op"])
def test_merged_schedule_static_shapes(tmp_path, kind, merge_impl):
    hf = _hf_model(kind, num_labels=5) if kind == "classifier" else _hf_model(kind)
    _, model, _ = _load_inferred(_save(hf, tmp_path))
    n = model.num_tokens
    assert n == (FRAMES // 2) * (SIDE // 8) ** 2
    model.set_schedule([4, 3, 0, 2], merge_impl)
    with torch.no_grad():
        outputs = model(_ours(_video()))
    for out in outputs:
        assert torch.isfinite(out).all()
    if kind == "classifier":
        assert outputs[0].shape == (B, 5)
    else:
        tokens, pooled = outputs
        assert tokens.shape == (B, n - 9, 64) and pooled.shape == (B, 64)


def test_wrong_family_is_named(tmp_path):
    videomae = read_checkpoint(_save(_hf_model("encoder"), tmp_path))
    with pytest.raises(VidTLDRError, match="umt-tiny") as err:
        load_model(videomae, get_architecture("umt-tiny"))
    assert "--arch videomae-tiny" in str(err.value)

    umt_path = tmp_path / "umt.pt"
    torch.save(get_architecture("umt-tiny").build().state_dict(), umt_path)
    umt = read_checkpoint(umt_path)
    with pytest.raises(VidTLDRError, match="videomae-tiny") as err:
        load_model(umt, get_architecture("videomae-tiny"))
    assert "--arch umt-tiny" in str(err.value)


def test_classifier_without_mean_pooling_is_refused(tmp_path):
    ckpt = read_checkpoint(_save(_hf_model("classifier", use_mean_pooling=False), tmp_path))
    with pytest.raises(VidTLDRError, match="use_mean_pooling=False"):
        load_model(ckpt, get_architecture("videomae-tiny"))
    with pytest.raises(VidTLDRError, match="token 0"):
        infer_architecture(ckpt)


def test_unsupported_activation_is_refused(tmp_path):
    ckpt = read_checkpoint(_save(_hf_model("encoder", hidden_act="gelu_new"), tmp_path))
    with pytest.raises(VidTLDRError, match="gelu_new"):
        load_model(ckpt, get_architecture("videomae-tiny"))


def test_classifier_folder_exports_and_validates_from_the_cli(tmp_path):
    """The whole path for a Hugging Face classifier folder: inferred architecture, `logits`
    output with top-k agreement in the verdict, ONNX Runtime against PyTorch."""
    import json

    import onnx
    from typer.testing import CliRunner

    from vidtldr_deploy.cli.main import app

    folder = _save(_hf_model("classifier", use_mean_pooling=True, num_labels=7), tmp_path)
    out = tmp_path / "videomae.onnx"
    result = CliRunner().invoke(app, [
        "export", str(folder), "--schedule", "4,2", "--merge-impl", "plugin", "--batch", "2",
        "-o", str(out), "--report", str(tmp_path / "r.json"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "videomae-tiny (inferred from the checkpoint)" in result.output
    graph = onnx.load(str(out))
    assert [o.name for o in graph.graph.output] == ["logits"]
    assert [d.dim_value for d in graph.graph.output[0].type.tensor_type.shape.dim] == [2, 7]
    report = json.loads((tmp_path / "r.json").read_text())
    (logits,) = report["outputs"]
    assert logits["name"] == "logits" and logits["gating"] and logits["passed"]
    assert logits["metrics"]["top1"] == 1.0 and logits["metrics"]["max_abs"] < 1e-4
