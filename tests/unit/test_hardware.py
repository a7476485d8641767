import logging

import pytest

from parrot_lm.core import hardware


@pytest.mark.parametrize(
    "precision, accelerator, fast_bf16, warns",
    [
        ("bf16-mixed", "cpu", False, True),
        ("bf16-true", "auto", False, True),
        ("bf16-mixed", "cpu", True, False),
        ("32-true", "cpu", False, False),
    ],
)
def test_bf16_on_cpu_without_support_warns_once_in_one_sentence(
    monkeypatch, caplog, precision, accelerator, fast_bf16, warns
):
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: fast_bf16)
    monkeypatch.setattr(hardware.torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="parrot_lm.core.hardware"):
        assert hardware.warn_if_slow_precision(precision, accelerator) is warns
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == int(warns)
    if warns:
        assert "far slower" in messages[0] and messages[0].count(". ") == 0
