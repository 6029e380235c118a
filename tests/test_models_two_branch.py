"""Li & Zhu's two-branch model: shapes, parameter counts, the frozen branch, and that it learns."""

import pytest
import torch

from timbrelab.losses.contrastive import bin_info_nce
from timbrelab.models import build_model, count_parameters
from timbrelab.models.two_branch import TwoBranch, TwoBranchConfig

#: Trainable (timbre-branch) parameters of each variant; the frozen AMT branch adds 18 992.
PARAMETERS = {
    "ours": ({}, 25_997),
    "D16": ({"embedding_dim": 16}, 26_961),
    "share": ({"share": True}, 13_125),
    "rescale": ({"rescale": True}, 25_997),
    "tanaka": ({"encoder": "blstm"}, 449_569),
}


@pytest.mark.parametrize("variant", PARAMETERS)
def test_output_shapes_and_parameter_counts(variant):
    config, trainable = PARAMETERS[variant]
    model = TwoBranch(TwoBranchConfig(**config))
    out = model(torch.randn(2, 5 * 256) * 0.1)
    d = model.config.embedding_dim
    assert out["frame"].shape == out["onset"].shape == (2, 88, 6)
    assert out["embedding"].shape == (2, d, 88, 6)
    assert torch.allclose(out["embedding"].norm(dim=1), torch.ones(2, 88, 6), atol=1e-5)
    assert count_parameters(model) == trainable
    assert count_parameters(model, trainable_only=False) == trainable + 18_992


def test_the_amt_branch_is_frozen_and_stays_in_eval_mode():
    model = TwoBranch().train()
    assert not model.amt.training and model.encoder.training
    assert not any(p.requires_grad for p in model.amt.parameters())
    out = model(torch.randn(1, 2048) * 0.1)
    assert not out["frame"].requires_grad  # no graph through the frozen branch
    out["embedding"].sum().backward()
    assert all(p.grad is not None for p in model.encoder.parameters() if p.requires_grad)


def test_load_amt_copies_a_trained_branch():
    model, amt = TwoBranch(), build_model("amt")
    with torch.no_grad():
        amt.frame_head.bias.fill_(3.0)
    model.load_amt(amt)
    audio = torch.randn(1, 4096) * 0.1
    amt.eval()
    assert torch.allclose(model.eval()(audio)["frame"], amt(audio)["frame"])
    assert not model.amt.frame_head.bias.requires_grad


def test_the_embedding_does_not_depend_on_the_rest_of_the_batch():
    # instance-style normalisation only: an item's embedding is its own
    model = TwoBranch().eval()
    a, b = torch.randn(1, 4096) * 0.1, torch.randn(1, 4096)
    alone = model(a)["embedding"]
    together = model(torch.cat([a, b]))["embedding"][:1]
    assert torch.allclose(alone, together, atol=1e-5)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"encoder": "rnn"}, "encoder"),
        ({"objective": "triplet"}, "objective"),
        ({"loss_level": "piece"}, "loss_level"),
        ({"encoder": "blstm", "share": True}, "conv encoder"),
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_bad_configs_are_refused(config, message):
    with pytest.raises(ValueError, match=message):
        TwoBranchConfig(**config)


def test_the_model_rejects_audio_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        TwoBranch()(torch.zeros(3))


@pytest.mark.parametrize("config", [{}, {"encoder": "blstm"}])
def test_tiny_overfit_separates_two_instruments(config):
    """On one fixed item the contrastive loss falls far: the branch can learn."""
    torch.manual_seed(0)
    model = TwoBranch(TwoBranchConfig(**config)).train()
    audio = torch.randn(1, 24 * 256) * 0.1
    targets = torch.zeros(1, 2, 88, 25)
    targets[0, 0, 40:44, 2:20] = 1  # instrument 0: four keys
    targets[0, 1, 50:53, 5:25] = 1  # instrument 1: three others
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(40):
        loss = bin_info_nce(model(audio)["embedding"], targets, temperature=0.15)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.3 * losses[0]


@pytest.mark.parametrize("config", [{}, {"share": True}, {"rescale": True}, {"encoder": "blstm"}])
def test_the_fast_twin_computes_the_same_outputs(config):
    torch.manual_seed(1)
    model = TwoBranch(TwoBranchConfig(**config)).eval()
    with torch.no_grad():  # give the frozen branch's BatchNorms non-trivial statistics
        for bn in (m for m in model.amt.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    audio = torch.randn(2, 700 * 256) * 0.1  # longer than one of FastAMT's tiles
    with torch.no_grad():
        slow, fast = model(audio), model.for_inference()(audio)
    for key in ("frame", "onset", "embedding"):
        assert torch.allclose(slow[key], fast[key], atol=1e-4), key
    assert torch.get_num_threads() >= 1
