"""Tests for the embedded story corpus: determinism, surface hygiene, grammar and coherence."""

from __future__ import annotations

import random
import re

import pytest

from parrot_lm.data.stories import (
    BOY_NAMES,
    GIRL_NAMES,
    generate_stories,
    generate_story,
    generate_story_with,
    make_character,
)

N = 2000
NAMES = set(GIRL_NAMES) | set(BOY_NAMES)
WORD = re.compile(r"[A-Za-z']+")
MALE = re.compile(r"\b(he|him|his|himself)\b", re.IGNORECASE)
FEMALE = re.compile(r"\b(she|her|hers|herself)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def stories() -> list[str]:
    return generate_stories(N, seed=1234)


def test_same_seed_is_identical() -> None:
    assert generate_stories(50, seed=7) == generate_stories(50, seed=7)


def test_different_seeds_differ() -> None:
    a, b = generate_stories(50, seed=1), generate_stories(50, seed=2)
    assert a != b
    assert sum(x != y for x, y in zip(a, b, strict=True)) > 40


def test_does_not_touch_global_rng() -> None:
    random.seed(99)
    expected = random.random()
    random.seed(99)
    generate_stories(20, seed=3)
    assert random.random() == expected


def test_generate_story_uses_given_rng() -> None:
    assert generate_story(random.Random(5)) == generate_story(random.Random(5))
    assert generate_story(random.Random(5)) == generate_stories(1, seed=5)[0]


def test_surface_hygiene(stories: list[str]) -> None:
    for s in stories:
        assert s.strip() == s and s
        assert s[0].isupper(), s
        assert s[-1] in '.!"', s
        assert "  " not in s, s
        assert s.isascii(), s
        assert "\n" not in s and "{" not in s and "}" not in s, s


def test_a_an_agreement(stories: list[str]) -> None:
    text = "\n".join(stories)
    bad_a = re.findall(r"\ba [aeiou]\w*", text, re.IGNORECASE)
    bad_an = re.findall(r"\ban [^aeiou\W]\w*", text, re.IGNORECASE)
    assert not bad_a, bad_a[:10]
    assert not bad_an, bad_an[:10]
    # The generator must actually exercise "an", or the check above proves nothing.
    assert re.search(r"\ban (old|orange|apple|owl)\b", text)


def test_sentences_start_with_capitals(stories: list[str]) -> None:
    # Lower case after a full stop is a bug; after a closing quote it is fine ('"Hi!" she said').
    for s in stories:
        assert not re.search(r"[.!?] +[a-z]", s), s


def test_length_is_reasonable(stories: list[str]) -> None:
    lengths = [len(s) for s in stories]
    mean = sum(lengths) / len(lengths)
    assert 400 <= mean <= 900, mean
    assert min(lengths) >= 250 and max(lengths) <= 1200
    for s in stories:
        assert 4 <= len(re.findall(r"[.!?]", s)), s


def test_hero_is_referred_back(stories: list[str]) -> None:
    ok = 0
    for s in stories:
        words = WORD.findall(s)
        hero = next(w for w in words if w in NAMES)
        ok += words.count(hero) >= 2
    assert ok >= 0.9 * len(stories)


def test_hero_has_a_second_character(stories: list[str]) -> None:
    with_two = sum(len({w for w in WORD.findall(s) if w in NAMES}) >= 2 for s in stories)
    assert with_two >= 0.9 * len(stories)


def test_variety(stories: list[str]) -> None:
    assert len(set(stories)) >= 1900
    firsts = {s.split(". ")[0] for s in stories}
    assert len(firsts) > 20
    # Several different plots: count distinctive plot phrases.
    markers = ["could not find", "sharing", "lonely", "stuck", "mom said", "rain", "noise", "sorry"]
    for m in markers:
        assert sum(m in s for s in stories) >= N // 40, m


def test_female_cast_uses_only_female_pronouns() -> None:
    rng = random.Random(0)
    for _ in range(500):
        hero = make_character(rng, female=True, human=True)
        friend = make_character(rng, female=True, exclude=(hero.name,))
        s = generate_story_with(rng, hero=hero, friend=friend)
        assert not MALE.search(s), s
        assert " girl" in s and hero.name in s and friend.name in s


def test_male_cast_uses_only_male_pronouns() -> None:
    rng = random.Random(1)
    for _ in range(500):
        hero = make_character(rng, female=False, human=True)
        friend = make_character(rng, female=False, exclude=(hero.name,))
        s = generate_story_with(rng, hero=hero, friend=friend)
        assert not FEMALE.search(s), s
        assert " boy" in s and hero.name in s and friend.name in s


def test_mixed_cast_uses_both_pronouns() -> None:
    rng = random.Random(2)
    both = 0
    for _ in range(200):
        hero = make_character(rng, female=True, human=True)
        friend = make_character(rng, female=False, human=True)
        s = generate_story_with(rng, hero=hero, friend=friend)
        both += bool(MALE.search(s)) and bool(FEMALE.search(s))
    assert both >= 60  # not every plot gives the friend a pronoun


def test_names_are_gendered_and_disjoint() -> None:
    assert len(GIRL_NAMES) >= 20 and len(BOY_NAMES) >= 20
    assert not set(GIRL_NAMES) & set(BOY_NAMES)
    rng = random.Random(3)
    for _ in range(200):
        c = make_character(rng)
        assert c.name in (GIRL_NAMES if c.female else BOY_NAMES)
        if c.kind in ("girl", "boy"):
            assert (c.kind == "girl") == c.female
