import copy

import pytest
import torch

from parrot_lm.model import GPT, GPTConfig
from parrot_lm.optim import build_optimizer, build_scheduler, decay_groups, warmup_cosine

OPTIM = dict(
    name="adamw",
    lr=1e-3,
    betas=[0.9, 0.95],
    eps=1e-8,
    weight_decay=0.1,
    warmup_steps=10,
    min_lr_ratio=0.1,
    grad_clip=1.0,
)


def test_decay_only_on_matrices():
    model = GPT(GPTConfig(vocab_size=50, context_length=8, d_model=16, n_layers=2, n_heads=2))
    decay, no_decay = decay_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() < 2 for p in no_decay["params"])
    # 2 layers x 2 norms + final norm; embedding counted once although tied to the head.
    assert len(no_decay["params"]) == 5
    n_grouped = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert n_grouped == model.num_params()


def test_schedule_values():
    f = lambda s: warmup_cosine(s, warmup_steps=10, total_steps=110, min_lr_ratio=0.1)  # noqa: E731
    assert f(0) == pytest.approx(0.1)
    assert f(9) == pytest.approx(1.0)  # end of warmup: peak
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.55)  # half way down the cosine
    assert f(110) == pytest.approx(0.1)  # the floor at the end
    assert f(500) == pytest.approx(0.1)
    assert all(f(s) >= f(s + 1) for s in range(10, 120))


def test_scheduler_steps_the_lr():
    model = torch.nn.Linear(4, 4)
    opt = build_optimizer(model, OPTIM)
    sched = build_scheduler(opt, OPTIM, total_steps=110)
    lrs = []
    for _ in range(110):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-4)
    assert lrs[9] == pytest.approx(1e-3)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert opt.param_groups[0]["betas"] == (0.9, 0.95)


MUON = {
    **OPTIM,
    "name": "muon",
    "muon_lr": 0.02,
    "muon_momentum": 0.95,
    "muon_nesterov": True,
    "muon_ns_steps": 5,
    "muon_weight_decay": 0.0,
}


def _tiny_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=50, context_length=8, d_model=16, n_layers=2, n_heads=2))


def _step(model: GPT, optimizer: torch.optim.Optimizer, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 50, (4, 8), generator=g)
    loss = torch.nn.functional.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def test_muon_takes_the_block_matrices_and_adamw_the_rest():
    model = _tiny_model()
    optimizer = build_optimizer(model, MUON)
    muon = {id(p) for g in optimizer.muon.param_groups for p in g["params"]}
    adamw = {id(p) for g in optimizer.adamw.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert muon.isdisjoint(adamw) and muon | adamw == {id(p) for p in named.values()}
    for name, p in named.items():
        hidden = name.startswith("blocks.") and p.dim() == 2
        assert (id(p) in muon) == hidden, name
    assert id(model.tok_emb.weight) in adamw  # tied with the head
    assert isinstance(optimizer.muon, torch.optim.Muon)
    assert optimizer.muon.param_groups[0]["lr"] == 0.02


def test_muon_schedule_scales_both_learning_rates():
    model = _tiny_model()
    optimizer = build_optimizer(model, MUON)
    scheduler = build_scheduler(optimizer, MUON, total_steps=100)
    for _ in range(5):
        _step(model, optimizer, 0)
        scheduler.step()
    factor = warmup_cosine(5, 10, 100, 0.1)
    assert optimizer.muon.param_groups[0]["lr"] == pytest.approx(0.02 * factor)
    assert optimizer.adamw.param_groups[0]["lr"] == pytest.approx(1e-3 * factor)


def test_muon_trains_and_its_state_round_trips():
    model = _tiny_model()
    optimizer = build_optimizer(model, MUON)
    losses = [_step(model, optimizer, 0) for _ in range(15)]
    assert losses[-1] < losses[0]  # the same batch: it learns it
    saved_model = {k: v.clone() for k, v in model.state_dict().items()}
    saved = copy.deepcopy(optimizer.state_dict())  # as a checkpoint holds it: not shared
    assert set(saved) == {"muon", "adamw"} and saved["muon"]["state"]

    twin = _tiny_model(seed=1)
    twin.load_state_dict(saved_model)
    twin_optimizer = build_optimizer(twin, MUON)
    twin_optimizer.load_state_dict(saved)
    for seed in (1, 2):
        assert _step(model, optimizer, seed) == _step(twin, twin_optimizer, seed)
    for key, value in model.state_dict().items():
        assert torch.equal(value, twin.state_dict()[key]), key
    assert len(optimizer.state) == len(list(model.parameters()))


def test_unknown_optimizer_is_one_sentence():
    from parrot_lm.core.errors import ConfigError

    with pytest.raises(ConfigError, match="expected 'adamw' or 'muon'"):
        build_optimizer(_tiny_model(), {**OPTIM, "name": "sgd"})


@pytest.mark.parametrize(("fused", "expected"), [(None, True), (True, True), (False, False)])
def test_adamw_is_fused_on_the_cpu_unless_the_config_says_no(fused, expected):
    model = GPT(GPTConfig(vocab_size=50, context_length=8, d_model=16, n_layers=2, n_heads=2))
    optimizer = build_optimizer(model, {**OPTIM, "fused": fused})
    assert bool(optimizer.defaults["fused"]) is expected
    # One step of either updates like the other (same algorithm, float rounding apart).
    reference = copy.deepcopy(model)
    other = build_optimizer(reference, {**OPTIM, "fused": not expected})
    idx = torch.randint(0, 50, (2, 8))
    for m, opt in ((model, optimizer), (reference, other)):
        m(idx).square().mean().backward()
        opt.step()
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b)
