"""The layout rules of the house (tools/house.py) hold for the tree as it is."""

from __future__ import annotations

import importlib.util

from tests.helpers import ROOT


def load_house():
    spec = importlib.util.spec_from_file_location("house", ROOT / "tools" / "house.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_package_keeps_the_house_rules():
    problems = load_house().check()
    assert problems, "the check names its rules"
    assert {rule: found for rule, found in problems.items() if found} == {}


def test_the_check_catches_an_upward_import_and_a_cycle():
    house = load_house()
    assert house.stage_of("parrot_lm.model.gpt") > house.stage_of("parrot_lm.training.run")
    assert house.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
