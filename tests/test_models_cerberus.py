"""The Cerberus network: heads, shapes, parameter counts, and that it learns."""

from __future__ import annotations

import itertools

import pytest
import torch

from timbrelab.models import count_parameters
from timbrelab.models.cerberus import HEADS, Cerberus, CerberusConfig, parse_heads
from timbrelab.systems.cerberus import cerberus_loss_fn

TINY = dict(hidden_size=8, num_layers=2, embedding_dim=5, n_fft=64, hop_length=16)
SUBSETS = [s for r in (1, 2, 3) for s in itertools.combinations(HEADS, r)]


def _expected_parameters(config: CerberusConfig) -> int:
    """Count by the formulas: BLSTM layers, then each head's (factored) dense layer."""
    h, bins, s = config.hidden_size, config.n_fft // 2 + 1, config.n_sources
    count = 0
    for layer in range(config.num_layers):
        inputs = bins if layer == 0 else 2 * h
        count += 2 * (4 * h * (inputs + h) + 8 * h)  # two directions, two biases each
    outputs = {"dc": bins * config.embedding_dim, "mi": bins * s, "tr": 88 * s}
    for head in config.heads:
        rank = config.head_rank
        if rank is None or rank >= min(2 * h, outputs[head]):
            count += 2 * h * outputs[head] + outputs[head]
        else:
            count += 2 * h * rank + rank * outputs[head] + outputs[head]
    return count


@pytest.mark.parametrize("heads", SUBSETS, ids=["+".join(s) for s in SUBSETS])
def test_every_head_subset_has_its_outputs_shapes_and_parameter_count(heads):
    config = CerberusConfig(programs=(0, 25, 128), heads=heads, **TINY)
    model = Cerberus(config)
    out = model(torch.randn(2, 16 * 20))
    t, f = 21, 33
    assert out["mixture"].shape == (2, f, t) and out["mixture"].is_complex()
    expected = {"embedding": (2, 5, f, t), "masks": (2, 3, f, t), "transcription": (2, 3, 88, t)}
    keys = {"dc": "embedding", "mi": "masks", "tr": "transcription"}
    assert set(out) == {"mixture", *(keys[h] for h in heads)}
    for head in heads:
        assert out[keys[head]].shape == expected[keys[head]]
    assert count_parameters(model) == _expected_parameters(config)
    if "dc" in heads:
        assert torch.allclose(out["embedding"].norm(dim=1), torch.ones(2, f, t), atol=1e-5)
    if "mi" in heads:
        assert torch.allclose(out["masks"].sum(dim=1), torch.ones(2, f, t), atol=1e-5)


def test_the_shipped_size_and_the_paper_size_are_pinned():
    quick = CerberusConfig(programs=(0, 25, 33, 128), hidden_size=80, num_layers=2, head_rank=24)
    assert count_parameters(Cerberus(quick)) == _expected_parameters(quick) == 863_800
    paper = CerberusConfig(programs=(0, 25))
    assert count_parameters(Cerberus(paper)) == _expected_parameters(paper)
    assert (paper.hidden_size, paper.num_layers, paper.embedding_dim) == (300, 4, 20)


def test_heads_parse_from_the_command_line_form_and_bad_ones_fail():
    assert parse_heads("mi, dc") == ("dc", "mi")
    assert CerberusConfig(heads="tr,dc").heads == ("dc", "tr")
    assert CerberusConfig(heads=["mi"]).heads == ("mi",)
    for bad in ("", "dc,xx", ()):
        with pytest.raises(ValueError, match="heads"):
            parse_heads(bad)
    with pytest.raises(ValueError, match="programs"):
        CerberusConfig(programs=(200,))
    model = Cerberus(CerberusConfig(heads="mi", **TINY))
    with pytest.raises(ValueError, match="no 'dc' head"):
        model(torch.randn(1, 320), heads=("dc",))


def _tiny_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """Two sources, a low and a high tone, with their piano rolls: learnable in few steps."""
    g = torch.Generator().manual_seed(seed)
    n, rate = 16 * 31, 4000.0
    t = torch.arange(n) / rate
    low = torch.sin(2 * torch.pi * 250 * t) * (t < 0.06)
    high = 0.5 * torch.sin(2 * torch.pi * 1500 * t) * (t > 0.04)
    stems = torch.stack([low, high])[None] * (0.5 + torch.rand(1, 1, 1, generator=g))
    frame = torch.zeros(1, 2, 88, 32)
    frame[0, 0, 40, :15] = 1
    frame[0, 1, 70, 10:] = 1
    return {"audio": stems.sum(1), "stems": stems, "stem_frame": frame}


def _fit(model: torch.nn.Module, batch: dict, steps: int) -> list[float]:
    loss_fn = cerberus_loss_fn()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        loss, _ = loss_fn(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_a_tiny_network_overfits_one_batch():
    torch.manual_seed(0)
    model = Cerberus(CerberusConfig(programs=(0, 40), **TINY))
    batch = _tiny_batch()
    _, before = cerberus_loss_fn()(model, batch)
    losses = _fit(model, batch, 150)
    _, after = cerberus_loss_fn()(model, batch)
    assert losses[-1] < 0.3 * losses[0]
    for head in ("dc", "mi", "tr"):
        assert after[head] < 0.5 * before[head], (head, before, after)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_it_trains_on_cuda():
    torch.manual_seed(0)
    model = Cerberus(CerberusConfig(programs=(0, 40), **TINY)).cuda()
    batch = {k: v.cuda() for k, v in _tiny_batch().items()}
    losses = _fit(model, batch, 30)
    assert losses[-1] < losses[0]
