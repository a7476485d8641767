"""Budget solver (issue 18): counts equal the model's own, the ranking rule holds, the written
conf/model file composes with train.py's config, and refusals are one sentence."""

import random
import shutil

import pytest
import torch

from parrot_lm.core.cli import CONF_DIR, compose_config
from parrot_lm.core.errors import ConfigError
from parrot_lm.model.config import GPTConfig
from parrot_lm.model.gpt import GPT
from parrot_lm.planning import budget as solver
from parrot_lm.planning import budget_cli
from parrot_lm.planning.budget import (
    MAX_LAYERS,
    MAX_PARAMS,
    Budget,
    check_budget,
    count_params,
    head_choices,
    rank_key,
    solve,
    swiglu_d_ff,
)
from parrot_lm.planning.budget_cli import main, parse_args

REFERENCE = dict(d_model=320, n_layers=16, n_heads=8, n_kv_heads=8, d_ff=854, tie_embeddings=True)


def meta_params(vocab_size: int, context_length: int = 1024, **shape) -> int:
    """The model's own count, built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        return GPT(
            GPTConfig(vocab_size=vocab_size, context_length=context_length, **shape)
        ).num_params()


@pytest.fixture(scope="module")
def shapes_40m():
    return solve(Budget(params=40_000_000, vocab_size=50257, context_length=1024))


def test_reference_shape_is_listed_for_40m(shapes_40m):
    rows = [s for s in shapes_40m if s.params == 35_763_840]
    assert any(s.model_overrides() == REFERENCE for s in rows)
    assert swiglu_d_ff(320) == 854  # the reference's rounding of 8/3 * 320 = 853.3


def test_formula_equals_model_for_the_reference_and_untied_gqa_padded():
    assert count_params(50257, **REFERENCE) == meta_params(50257, **REFERENCE) == 35_763_840
    other = dict(d_model=256, n_layers=3, n_heads=8, n_kv_heads=2, d_ff=683, tie_embeddings=False)
    # vocab_multiple=64 pads 50,257 to 50,304 inside GPTConfig; the solver counts the padded one
    padded = Budget(params=10**9, vocab_size=50257, vocab_multiple=64).padded_vocab
    assert padded == 50304
    with torch.device("meta"):
        model = GPT(GPTConfig(vocab_size=50257, vocab_multiple=64, **other))
    assert count_params(padded, **other) == model.num_params()


def test_sampled_rows_equal_the_models_own_count(shapes_40m):
    sample = random.Random(0).sample(shapes_40m, 12) + shapes_40m[:3] + shapes_40m[-3:]
    for shape in sample:
        assert shape.params == meta_params(50257, **shape.model_overrides()), shape


def test_gqa_rows_equal_the_models_own_count():
    shapes = solve(Budget(params=20_000_000, vocab_size=8192, gqa=True, ff_multiple=64))
    gqa = [s for s in shapes if s.n_kv_heads < s.n_heads]
    assert gqa
    for shape in random.Random(1).sample(gqa, 8):
        assert shape.params == meta_params(8192, **shape.model_overrides()), shape
        assert shape.d_ff % 64 == 0


def test_every_row_is_within_budget_and_floor_with_valid_heads(shapes_40m):
    assert len(shapes_40m) > 10
    for s in shapes_40m:
        assert 0.75 * 40_000_000 <= s.params <= 40_000_000
        assert 32 <= s.head_dim <= 128 and s.head_dim % 2 == 0 and s.d_model % s.n_heads == 0
        assert s.d_ff == -(-8 * s.d_model // 3)  # ceil(8/3 * d_model)
        assert s.n_layers <= 32


def test_ranking_deeper_first_then_narrower_then_closer_to_budget(shapes_40m):
    keys = [rank_key(s) for s in shapes_40m]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)  # a strict total order
    for a, b in zip(shapes_40m, shapes_40m[1:], strict=False):
        assert a.n_layers >= b.n_layers
        if a.n_layers == b.n_layers:
            assert a.d_model <= b.d_model
            if a.d_model == b.d_model:
                assert a.params >= b.params
    assert shapes_40m[0].n_layers == 32 and shapes_40m[0].head_dim == 64


def test_budget_too_small_is_one_sentence():
    with pytest.raises(ConfigError, match=r"^No model shape fits 1,000,000 parameters.*vocab\.$"):
        solve(Budget(params=1_000_000, vocab_size=50257))
    with pytest.raises(ConfigError, match=r"lower floor or raise max_layers\.$"):
        solve(Budget(params=40_000_000, floor=0.999))


def test_arguments_parse_and_refuse():
    budget, output = parse_args(["params=40M", "vocab=50257", "context=1024", "top=5", "gqa=true"])
    assert (budget.params, budget.vocab_size, budget.gqa, output["top"]) == (
        40_000_000,
        50257,
        True,
        5,
    )
    assert parse_args(["params=40e6"])[0].params == 40_000_000
    with pytest.raises(ConfigError, match="Unknown argument 'prams'"):
        parse_args(["prams=40e6"])
    with pytest.raises(ConfigError, match="must be a whole number"):
        parse_args(["params=4.5"])


def test_table_output(capsys):
    main(["params=40e6", "top=3"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "rank",
        "layers",
        "d_model",
        "heads",
        "kv_heads",
        "head_dim",
        "d_ff",
        "params",
        "%",
    ]
    assert out[1].split() == ["1", "32", "256", "4", "4", "64", "683", "38,056,448", "95.1"]
    assert out[-1].endswith("showing 3.")


def test_written_yaml_composes_with_train_config_and_refuses_overwrite(
    tmp_path, capsys, monkeypatch
):
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    monkeypatch.setattr(budget_cli, "MODEL_DIR", conf / "model")  # not the real conf/model
    target = conf / "model" / "budget40m.yaml"
    rank = next(
        i
        for i, s in enumerate(solve(Budget(params=40_000_000)), 1)
        if s.model_overrides() == REFERENCE
    )
    main(["params=40e6", f"write={target}", f"pick={rank}"])
    cfg = compose_config(str(conf), "train", ["model=budget40m"])
    model = dict(cfg.model)
    assert {k: model[k] for k in ("d_model", "n_layers", "n_heads", "d_ff", "tie_embeddings")} == {
        k: REFERENCE[k] for k in ("d_model", "n_layers", "n_heads", "d_ff", "tie_embeddings")
    }
    assert model["context_length"] == 1024 and model["vocab_size"] is None  # from the tokenizer
    model["vocab_size"] = 50257
    with torch.device("meta"):
        assert GPT(GPTConfig(**model)).num_params() == 35_763_840
    before = target.read_text()
    with pytest.raises(SystemExit) as exit_info:
        main(["params=40e6", f"write={target}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {target} already exists; choose another name or add force=true."
    assert target.read_text() == before
    main(["params=40e6", f"write={target}", "force=true"])
    assert "n_layers: 32" in target.read_text()


def brute_force(budget: Budget) -> list[tuple]:
    """The search as first written: every divisor head count, every width until the embedding
    alone overflows, every layer count; rows as plain tuples, ranked like the solver's."""
    vocab, rows = budget.padded_vocab, []
    d = budget.width_multiple
    while vocab * d * (1 if budget.tie_embeddings else 2) <= budget.params:
        d_ff = swiglu_d_ff(d, budget.ff_multiple)
        for h in range(1, d // 32 + 1):
            hd = d // h
            if d % h or hd % 2 or not 32 <= hd <= 128:
                continue
            for kv in [k for k in range(1, h + 1) if h % k == 0] if budget.gqa else [h]:
                for n in range(budget.min_layers, budget.max_layers + 1):
                    p = count_params(vocab, d, n, h, kv, d_ff, budget.tie_embeddings)
                    if budget.floor * budget.params <= p <= budget.params:
                        rows.append((n, d, h, kv, d_ff, budget.tie_embeddings, p))
        d += budget.width_multiple
    return sorted(rows, key=lambda r: rank_key(solver.Shape(*r)))


@pytest.mark.parametrize(
    "budget",
    [
        Budget(params=3_000_000, vocab_size=257, floor=0.0, min_layers=1, width_multiple=2),
        Budget(params=20_000_000, vocab_size=8192, gqa=True, ff_multiple=64, floor=0.5),
        Budget(params=5_000_000, vocab_size=579, tie_embeddings=False, vocab_multiple=64),
        Budget(params=40_000_000, vocab_size=50257, floor=0.95, max_layers=12),
    ],
    ids=["floor0-width2", "gqa", "untied-padded", "tight"],
)
def test_bounded_search_lists_exactly_what_the_full_enumeration_does(budget):
    """The width bound, the head counts from head_dims and the closed-form layer range leave
    out no shape and add none (each would fail here if it cut too much or too little)."""
    rows = [tuple(vars(s).values()) for s in solve(budget)]
    assert rows == brute_force(budget) and rows


def test_head_choices_are_every_divisor_with_an_even_head_dim_in_range():
    for d_model in (64, 96, 320, 384, 1000, 3840, 7680):
        for gqa in (False, True):
            expected = [
                (h, kv)
                for h in range(1, d_model + 1)
                if d_model % h == 0 and (d_model // h) % 2 == 0 and 32 <= d_model // h <= 128
                for kv in (range(1, h + 1) if gqa else [h])
                if h % kv == 0
            ]
            assert head_choices(d_model, gqa) == expected, (d_model, gqa)


def test_widths_searched_stop_where_the_smallest_layers_overflow(monkeypatch):
    """125M with the byte tokenizer's vocab: the first search walked every width whose
    embedding alone fit (~7,600 widths, each over up to 15,000 head counts: 3 s); the widths
    now end where min_layers layers of that width overflow (d_model ~2,500)."""
    widths = []
    real = solver.head_choices
    monkeypatch.setattr(solver, "head_choices", lambda d, gqa: widths.append(d) or real(d, gqa))
    shapes = solve(Budget(params=125_000_000, vocab_size=257))
    assert shapes[0].n_layers == 32 and len(shapes) == 309
    assert max(widths) <= 2560 and len(widths) <= 40


def test_budget_and_depth_beyond_the_projects_models_are_one_sentence():
    check_budget(Budget(params=MAX_PARAMS, max_layers=MAX_LAYERS))  # the bounds themselves pass
    with pytest.raises(ConfigError) as e:
        check_budget(Budget(params=10**11))
    assert str(e.value) == (
        "params 100,000,000,000 is beyond what ParrotLM builds (models of ~1M to ~125M "
        "parameters); give a budget of at most 1,000,000,000."
    )
    with pytest.raises(ConfigError, match=r"^max_layers must be at most 128 .*got 129\.$"):
        check_budget(Budget(params=40_000_000, max_layers=129))


@pytest.mark.parametrize("arg", ["top=-1", "top=0", "pick=0", "pick=-2"])
def test_top_and_pick_must_be_positive(arg, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["params=40e6", arg])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    key, value = arg.split("=")
    assert err == f"error: {key} must be a positive integer, got {value}.\n"
    assert out == ""  # no table before the refusal


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("nowhere/x.yaml", "is outside conf/model/, where train.py's model=<name> finds"),
        ("nowhere/deeper/x.yaml", "write conf/model/x.yaml instead."),
        ("nowhere/my 40m.yaml", "is outside conf/model/"),
    ],
)
def test_write_outside_the_model_group_is_refused_and_creates_nothing(
    tmp_path, capsys, monkeypatch, name, fragment
):
    """train.py finds model=<name> only in the config tree's model group, so a file written
    anywhere else would be advice that fails: refused, with no table, file or parent dir."""
    monkeypatch.chdir(CONF_DIR.parent.parent)  # the repo root: conf/model is the model group
    target = tmp_path / name
    with pytest.raises(SystemExit) as exit_info:
        main(["params=1.2e6", "vocab=579", f"write={target}"])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"error: write={target} ") and fragment in err and err.count("\n") == 1
    assert out == ""
    assert list(tmp_path.iterdir()) == []


def test_write_name_must_be_spellable_as_model_option(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(budget_cli, "MODEL_DIR", tmp_path)
    target = tmp_path / "my 40m.yaml"
    with pytest.raises(SystemExit):
        main(["params=40e6", f"write={target}"])
    err = capsys.readouterr().err
    assert "has a name model= cannot spell" in err
    assert list(tmp_path.iterdir()) == []
    main(["params=40e6", f"write={tmp_path / 'my_40m.v2.yaml'}"])
    assert capsys.readouterr().out.endswith("use it with model=my_40m.v2\n")
