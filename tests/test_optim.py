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
