"""KAT models: sizes, equality with timm's VisionTransformer, checkpoint layouts, export graph, CLI listing."""

from __future__ import annotations

import functools
import json
import os

import pytest
import torch
import torch.nn as nn

if not torch.cuda.is_available():
    # Before anything imports triton (torch.compile and torch.export do): triton.language's own @jit
    # helpers are interpreted only if triton is imported with the flag set, and the kernels, once
    # imported interpreted, serve every later CPU call of the op. Same as test_grkan_triton.py.
    os.environ.setdefault("TRITON_INTERPRET", "1")

from mobiledeploy.errors import UserError
from mobiledeploy.models import create_model, list_models
from mobiledeploy.models.kat import KAT, KANMlp
from mobiledeploy.models.profile import count_params

GRKAN_PARAMS_PER_BLOCK = 2 * (6 + 8 * 4)


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial values everywhere (identity GR-KAN and zero biases would hide key mix-ups)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight_numerator"):
                p.mul_(1 + 0.1 * torch.randn(p.shape, generator=g)).add_(0.02 * torch.randn(p.shape, generator=g))
            elif name.endswith("weight_denominator"):
                p.add_(0.05 * torch.randn(p.shape, generator=g))
            elif name.startswith("norm") or ".norm" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model


def test_kat_tiny_has_5718328_parameters():
    assert count_params(create_model("kat_tiny_patch16_224")) == 5_718_328


@pytest.mark.parametrize("kat,vit", [("kat_tiny_patch16_224", "vit_tiny_patch16_224"),
                                     ("kat_small_patch16_224", "vit_small_patch16_224")])
def test_kat_is_vit_plus_grkan_parameters(kat, vit):
    timm = pytest.importorskip("timm")
    n_vit = count_params(timm.create_model(vit, pretrained=False))
    assert count_params(create_model(kat)) == n_vit + 12 * GRKAN_PARAMS_PER_BLOCK


def test_state_dict_has_kat_checkpoint_keys():
    sd = create_model("kat_tiny_patch16_224").state_dict()
    assert sd["blocks.0.mlp.act1.weight_numerator"].shape == (1, 6)
    assert sd["blocks.11.mlp.act2.weight_denominator"].shape == (8, 4)
    for k in ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.3.attn.qkv.weight",
              "blocks.3.attn.proj.bias", "blocks.3.norm1.weight", "blocks.3.mlp.fc1.weight", "blocks.3.mlp.fc2.bias",
              "norm.weight", "head.weight"):
        assert k in sd, k
    assert sd["pos_embed"].shape == (1, 197, 192)


def _timm_kat(dim: int, depth: int, heads: int, img: int):
    timm_vit = pytest.importorskip("timm.models.vision_transformer")

    class TimmKanMlp(KANMlp):
        def __init__(self, in_features, hidden_features, **_):
            super().__init__(in_features, hidden_features, backend="reference")

    return timm_vit.VisionTransformer(img_size=img, patch_size=16, embed_dim=dim, depth=depth, num_heads=heads,
                                      mlp_ratio=4.0, qkv_bias=True, mlp_layer=TimmKanMlp, global_pool="token",
                                      norm_layer=functools.partial(nn.LayerNorm, eps=1e-6))


def test_kat_tiny_equals_timm_vision_transformer_with_the_kan_mlp():
    ours = randomize_(create_model("kat_tiny_patch16_224")).eval()
    oracle = _timm_kat(192, 12, 3, 224).eval()
    oracle.load_state_dict(ours.state_dict(), strict=True)  # same keys, same shapes
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = oracle(x)
        got = ours(x)
    assert ((got - want).norm() / want.norm()).item() <= 1e-6


def test_export_graph_is_plain_ops_and_exact():
    model = randomize_(KAT(64, 2, 2, img_size=32, num_classes=10, backend="triton")).eval()
    x = torch.randn(2, 3, 32, 32)
    ep = torch.export.export(model, (x,))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not any("mobiledeploy" in t or "scaled_dot_product" in t for t in targets), targets
    with torch.no_grad():
        want = model(x)  # eager: SDPA attention and (on the CPU) the reference GR-KAN
    assert ((ep.module()(x) - want).norm() / want.norm()).item() <= 1e-6


def test_wrong_input_size_is_a_user_error():
    with pytest.raises(UserError, match="built for 32×32"):
        KAT(64, 1, 2, img_size=32)(torch.randn(1, 3, 48, 48))


def _ckpt_roundtrip(tmp_path, sd, name="ckpt.pth", model="kat_tiny_patch16_224", **kw):
    path = tmp_path / name
    torch.save(sd, path)
    return create_model(model, weights=str(path), **kw)


def test_loads_kat_checkpoint_in_training_wrapper(tmp_path):
    src = randomize_(create_model("kat_tiny_patch16_224"))
    sd = {f"module.{k}": v for k, v in src.state_dict().items()}
    got = _ckpt_roundtrip(tmp_path, {"state_dict_ema": sd, "epoch": 300})
    for k, v in src.state_dict().items():
        assert torch.equal(got.state_dict()[k], v), k


def test_loads_flashkat_names_and_flat_numerators(tmp_path):
    src = randomize_(create_model("kat_tiny_patch16_224"))
    sd = {}
    for k, v in src.state_dict().items():
        k = k.replace("weight_numerator", "numerator_v").replace("weight_denominator", "denominator_v")
        sd[k] = v.reshape(6) if k.endswith("numerator_v") else v
    assert any(k.endswith("numerator_v") for k in sd)
    got = _ckpt_roundtrip(tmp_path, sd)
    for k, v in src.state_dict().items():
        assert torch.equal(got.state_dict()[k], v), k


def test_per_group_numerator_must_be_shared(tmp_path):
    sd = create_model("kat_tiny_patch16_224").state_dict()
    sd["blocks.0.mlp.act2.weight_numerator"] = torch.randn(8, 6)
    with pytest.raises(UserError, match="not one shared"):
        _ckpt_roundtrip(tmp_path, sd)
    same = sd["blocks.1.mlp.act2.weight_numerator"].repeat(8, 1)
    sd["blocks.0.mlp.act2.weight_numerator"] = same
    got = _ckpt_roundtrip(tmp_path, sd, name="ok.pth")
    assert torch.equal(got.state_dict()["blocks.0.mlp.act2.weight_numerator"], same[:1])


def test_pos_embed_resized_for_another_input_size(tmp_path):
    src = randomize_(create_model("kat_tiny_patch16_224"))
    got = _ckpt_roundtrip(tmp_path, src.state_dict(), img_size=160)
    assert got.pos_embed.shape == (1, 101, 192)
    assert torch.equal(got.pos_embed[:, 0], src.pos_embed[:, 0])
    assert got(torch.randn(1, 3, 160, 160)).shape == (1, 1000)


def test_other_class_count_reinitialises_head(tmp_path):
    src = randomize_(create_model("kat_tiny_patch16_224"))
    got = _ckpt_roundtrip(tmp_path, src.state_dict(), num_classes=10)
    assert got.head.weight.shape == (10, 192)
    assert torch.equal(got.blocks[5].mlp.act2.weight_denominator, src.blocks[5].mlp.act2.weight_denominator)


def test_triton_backend_trains_like_the_reference(monkeypatch):
    # The custom op inside a whole (small) KAT: on the CPU under TRITON_INTERPRET=1, the kernels.
    # The flag goes first: triton.language's own @jit helpers (tl.zeros) are interpreted only when
    # triton is imported with it set (run alone, this test imported triton first and failed).
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    pytest.importorskip("triton")
    torch.manual_seed(0)
    ref = randomize_(KAT(64, 1, 2, img_size=32, num_classes=10, backend="reference")).to(device)
    ker = KAT(64, 1, 2, img_size=32, num_classes=10, backend="triton").to(device)
    ker.load_state_dict(ref.state_dict())
    x = torch.randn(3, 3, 32, 32, device=device)
    for m in (ref, ker):
        m(x).logsumexp(-1).sum().backward()
    for (name, p), q in zip(ref.named_parameters(), ker.parameters()):
        assert ((p.grad - q.grad).norm() / p.grad.norm()).item() <= 1e-5, name


def test_registered_under_family_kat():
    assert list_models("kat") == ["kat_base_patch16_224", "kat_small_patch16_224", "kat_tiny_patch16_224"]


@pytest.mark.slow
def test_cli_lists_kat_models(capsys):
    from mobiledeploy.cli import main

    assert main(["models", "--family", "kat", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"kat_tiny_patch16_224", "kat_small_patch16_224", "kat_base_patch16_224"}
    assert rows["kat_tiny_patch16_224"]["params"] == 5_718_328
    assert all(r["family"] == "kat" for r in rows.values())
    assert all(any("kat" in f.lower() for f in r["weights_formats"]) for r in rows.values())


def test_export_check_ignores_is_exporting_as_torch_2_11_compile_folds_it(monkeypatch):
    # torch 2.11's Dynamo folds torch.compiler.is_exporting() to True under torch.compile (this torch
    # reads the flag instead), so the path choice must read the flag itself.
    from mobiledeploy.models.grkan.layer import tracing_for_export

    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    assert tracing_for_export() is False
    monkeypatch.setattr(torch.compiler, "_is_exporting_flag", True)
    assert tracing_for_export() is True


def test_compile_keeps_grkan_ops_opaque_and_sdpa():
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    torch._dynamo.reset()
    model = randomize_(KAT(64, 2, 2, img_size=32, patch_size=16, num_classes=10, backend="triton"))
    graphs = {}

    def keep(kind):
        def compiler(gm, example_inputs):
            graphs[kind] = [str(n.target) for n in gm.graph.nodes if n.op == "call_function"]
            return make_boxed_func(gm.forward)
        return compiler

    compiled = torch.compile(model, fullgraph=True, backend=aot_autograd(fw_compiler=keep("fw"), bw_compiler=keep("bw")))
    x = torch.randn(2, 3, 32, 32)
    compiled(x).square().sum().backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    torch._dynamo.reset()
    assert sum("mobiledeploy.grkan_fwd" in t for t in graphs["fw"]) == 4, graphs["fw"]
    assert sum("mobiledeploy.grkan_bwd" in t for t in graphs["bw"]) == 4, graphs["bw"]
    for kind in ("fw", "bw"):
        assert not any(t.startswith(("aten.abs", "aten.sgn", "aten.sign")) for t in graphs[kind]), graphs[kind]
    assert any("scaled_dot_product" in t for t in graphs["fw"]), graphs["fw"]
    model.zero_grad()
    for m in model.modules():
        if hasattr(m, "backend"):
            m.backend = "reference"
    model(x).square().sum().backward()
    for n, p in model.named_parameters():
        assert torch.allclose(got[n], p.grad, rtol=1e-4, atol=1e-6), n
