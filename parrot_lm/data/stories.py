"""Embedded default training corpus: short children's stories in the style of TinyStories.

Why: the framework must be able to train a toy model offline with no download, and a corpus with
real, learnable structure (named characters, matching pronouns, objects and places that are
introduced and then referred back to) is a far better smoke test than random text. Everything is
driven by a caller-supplied ``random.Random``, never the global RNG, so corpora are reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

GIRL_NAMES = (
    "Lily", "Mia", "Sue", "Emma", "Anna", "Lucy", "Sara", "Ella", "Zoe", "Amy", "Rosie", "Ruby",
    "Daisy", "Molly", "Grace", "Chloe", "Kate", "Jane", "Nina", "Ivy", "Lola", "Maya", "Poppy",
    "Hannah", "Sophie",
)  # fmt: skip
BOY_NAMES = (
    "Tom", "Max", "Ben", "Sam", "Jack", "Leo", "Tim", "Jake", "Finn", "Noah", "Oscar", "Toby",
    "Ollie", "Luke", "Adam", "Eli", "Hugo", "Milo", "Ryan", "Owen", "Joe", "Bob", "Dan", "Alex",
    "Theo",
)  # fmt: skip
ANIMAL_KINDS = ("dog", "cat", "rabbit", "bird", "bear", "fox", "duck", "mouse", "frog", "owl")
HUMAN_ADJS = ("little", "kind", "happy", "curious", "brave", "friendly", "clever")
ANIMAL_ADJS = ("little", "small", "happy", "curious", "friendly", "playful")
LIKES = (
    "play outside", "run and jump", "sing songs", "explore new places", "play games",
    "look at the clouds", "make new friends", "help others", "laugh and have fun",
)  # fmt: skip
# How each kind shows joy; "{poss}" becomes his/her.
JOY = {
    "girl": ("jumped for joy", "clapped {poss} hands", "smiled a big smile"),
    "boy": ("jumped for joy", "clapped {poss} hands", "smiled a big smile"),
    "dog": ("wagged {poss} tail", "barked happily"),
    "cat": ("purred happily", "swished {poss} tail"),
    "rabbit": ("hopped up and down", "twitched {poss} nose happily"),
    "bird": ("sang a happy song", "flapped {poss} wings"),
    "bear": ("did a happy dance", "gave a big bear hug"),
    "fox": ("swished {poss} bushy tail", "did a happy dance"),
    "duck": ("quacked happily", "flapped {poss} wings"),
    "mouse": ("squeaked with joy", "did a little dance"),
    "frog": ("jumped up and down", "croaked a happy song"),
    "owl": ("hooted happily", "flapped {poss} wings"),
}
COLOURS = ("red", "blue", "green", "yellow", "orange", "purple", "pink")
# noun -> adjectives that fit it (no adjective or noun may need "an" unexpectedly).
OBJECTS = {
    "ball": COLOURS + ("big", "bouncy"),
    "kite": COLOURS + ("big",),
    "balloon": COLOURS + ("big", "shiny"),
    "hat": COLOURS + ("funny", "old"),
    "key": ("shiny", "old", "little", "golden"),
    "book": COLOURS + ("old", "big", "little"),
    "teddy bear": ("soft", "brown", "old", "little"),
    "shell": ("pretty", "pink", "white", "shiny"),
    "scarf": COLOURS + ("warm", "soft"),
    "toy boat": COLOURS + ("little", "wooden"),
    "toy car": COLOURS + ("little", "shiny", "fast"),
    "box": ("little", "wooden", "old", "shiny"),
    "bell": ("little", "shiny", "golden"),
    "drum": COLOURS + ("little", "loud"),
}
OBJECT_NOUNS = tuple(OBJECTS)
WINDBLOWN = ("kite", "balloon", "hat", "ball")  # things the wind can carry into a tree
FOODS = ("apple", "cookie", "orange", "banana", "sandwich", "cupcake", "pear")
FLYERS = ("bird", "owl", "duck")


class Place(NamedTuple):
    """A location: phrase after "went to", phrase for "played ___", things to see and hide in."""

    to: str
    at: str
    sights: tuple[str, ...]
    hides: tuple[str, ...]


PLACES = (
    Place("the park", "in the park", ("tall trees", "a big slide", "green grass", "a little pond"),
          ("under a bench", "behind a tree", "in the tall grass")),
    Place("the forest", "in the forest", ("tall trees", "pretty flowers", "a little stream",
          "big mushrooms"), ("under a bush", "behind a big rock", "next to an old log")),
    Place("the garden", "in the garden", ("red roses", "tall sunflowers", "busy bees",
          "green leaves"), ("under a bush", "behind the flowers", "next to the fence")),
    Place("the beach", "at the beach", ("blue waves", "white sand", "pretty shells",
          "little crabs"), ("behind a big rock", "in the sand", "under a beach towel")),
    Place("school", "at school", ("a big playground", "lots of books", "colorful pictures",
          "a tall swing"), ("under a desk", "behind the door", "next to the slide")),
    Place("the farm", "on the farm", ("a red barn", "big cows", "little chicks", "a muddy pig"),
          ("in the hay", "behind the barn", "next to the fence")),
    Place("the river", "by the river", ("clear water", "little fish", "green frogs",
          "a wooden bridge"), ("under the bridge", "behind a big rock", "in the tall grass")),
    Place("the meadow", "in the meadow", ("yellow flowers", "pretty butterflies", "soft grass",
          "a big oak tree"), ("in the tall grass", "under a bush", "behind a big rock")),
    Place("the playground", "at the playground", ("a big slide", "tall swings", "a sandbox",
          "a merry-go-round"), ("in the sandbox", "under the slide", "behind a bench")),
    Place("the hill", "on the hill", ("a windmill", "white sheep", "fluffy clouds",
          "the whole town"), ("behind a big rock", "in the tall grass", "under a bush")),
)  # fmt: skip


def a(word: str) -> str:
    """Indefinite article for ``word``; every word in the tables follows the spelling rule."""
    return "an" if word[0] in "aeiou" else "a"


def cap(text: str) -> str:
    """Upper-case only the first letter (str.capitalize would lower-case names)."""
    return text[0].upper() + text[1:]


@dataclass(frozen=True)
class Character:
    """A story character; pronouns derive from ``female`` so they always agree."""

    name: str
    kind: str
    female: bool
    adj: str

    @property
    def subj(self) -> str:
        return "she" if self.female else "he"

    @property
    def obj(self) -> str:
        return "her" if self.female else "him"

    @property
    def poss(self) -> str:
        return "her" if self.female else "his"

    @property
    def desc(self) -> str:
        """E.g. "a curious dog"; used the first time the reader meets this character."""
        return f"{a(self.adj)} {self.adj} {self.kind}"

    def joy(self, rng: random.Random) -> str:
        """A kind-specific happy action, e.g. "Max wagged his tail."."""
        return f"{self.name} {rng.choice(JOY[self.kind]).format(poss=self.poss)}."

    def friend_of(self, other: Character) -> str:
        """How ``other`` names this character: "her friend Max the dog"."""
        tail = "" if self.kind in ("girl", "boy") else f" the {self.kind}"
        return f"{other.poss} friend {self.name}{tail}"


class Thing(NamedTuple):
    """An object with an adjective, so later sentences can say "the red ball" again."""

    adj: str
    noun: str

    @property
    def a(self) -> str:
        return f"{a(self.adj)} {self.adj} {self.noun}"


def make_character(
    rng: random.Random,
    female: bool | None = None,
    human: bool | None = None,
    exclude: tuple[str, ...] = (),
) -> Character:
    """Random character; fix ``female``/``human`` to build casts for tests or curricula."""
    if female is None:
        female = rng.random() < 0.5
    if human is None:
        human = rng.random() < 0.6
    names = [n for n in (GIRL_NAMES if female else BOY_NAMES) if n not in exclude]
    if human:
        kind, adj = ("girl" if female else "boy"), rng.choice(HUMAN_ADJS)
    else:
        kind, adj = rng.choice(ANIMAL_KINDS), rng.choice(ANIMAL_ADJS)
    return Character(rng.choice(names), kind, female, adj)


def make_thing(rng: random.Random, nouns: tuple[str, ...] = OBJECT_NOUNS) -> Thing:
    """Random object from ``nouns`` with an adjective that suits it."""
    noun = rng.choice(nouns)
    return Thing(rng.choice(OBJECTS[noun]), noun)


def intro(rng: random.Random, h: Character) -> list[str]:
    """Opening: who the hero is and (usually) what they like."""
    first = rng.choice((
        f"Once upon a time, there was {h.desc} named {h.name}.",
        f"There once was {h.desc} called {h.name}.",
        f"{h.name} was {h.desc}.",
        f"Once upon a time, in a small town, there lived {h.desc} named {h.name}.",
        f"Long ago, there was {h.desc} whose name was {h.name}.",
    ))  # fmt: skip
    if rng.random() < 0.25:
        return [first]
    return [first, f"{cap(h.subj)} loved to {rng.choice(LIKES)}."]


def plot_lost(rng: random.Random, h: Character, f: Character, p: Place) -> list[str]:
    t = make_thing(rng)
    return [
        rng.choice((f"{h.name} had {t.a}. It was {h.poss} favorite thing.",
                    f"{h.name} had {t.a} that {h.subj} loved very much.")),
        rng.choice((f"One day, {h.name} took the {t.noun} to {p.to}.",
                    f"One sunny day, {h.subj} went to {p.to} with {h.poss} {t.adj} {t.noun}.")),
        rng.choice((f"{cap(h.subj)} played {p.at} all morning, but then the {t.noun} was gone!",
                    f"When it was time to go home, {h.name} could not find the {t.noun}.")),
        f"{h.name} felt very sad. {cap(h.subj)} looked everywhere, but {h.subj} could not find it.",
        f"Then {f.friend_of(h)} came by. \"Why are you sad?\" asked {f.name}.",
        f"\"I lost my {t.adj} {t.noun}!\" said {h.name}.",
        f"{f.name} helped {h.obj} look. Soon {f.subj} found the {t.noun} {rng.choice(p.hides)}.",
        f"{h.name} was so happy. \"Thank you, {f.name}!\" {h.subj} said.",
        rng.choice((f"From that day on, {h.name} always kept {h.poss} {t.noun} close.",
                    f"{h.name} and {f.name} played with the {t.adj} {t.noun} until dinner time.")),
    ]  # fmt: skip


def plot_share(rng: random.Random, h: Character, f: Character, p: Place) -> list[str]:
    t = make_thing(rng)
    s1, s2 = rng.sample(p.sights, 2)
    return [
        f"One day, {h.name} went to {p.to}. {cap(h.subj)} saw {s1} and {s2}.",
        f"{cap(p.at)}, {h.name} found {t.a}. {cap(h.subj)} was very happy.",
        f"Then {h.name} saw {f.desc} named {f.name}. {f.name} was sitting alone and looked sad.",
        rng.choice((f"{h.name} gave the {t.adj} {t.noun} to {f.name}.",
                    f"\"Do you want to play with my {t.noun}?\" asked {h.name}.")),
        f"{f.name} was not sad anymore. {f.joy(rng)} They played with the {t.noun} together.",
        rng.choice((f"{h.name} learned that sharing makes everyone happy.",
                    f"From that day on, {h.name} and {f.name} always shared their toys.")),
    ]  # fmt: skip


def plot_new_friend(rng: random.Random, h: Character, f: Character, p: Place) -> list[str]:
    t = make_thing(rng)
    return [
        f"One day, {h.name} went to {p.to} to play, but {h.subj} had nobody to play with.",
        f"{cap(h.subj)} felt lonely. Then {h.subj} saw {f.desc} with {t.a}.",
        f"\"Hello! My name is {h.name},\" {h.subj} said. \"What is your name?\"",
        f"\"I am {f.name},\" said the {f.kind}. \"Do you want to play with my {t.noun}?\"",
        rng.choice((f"{h.name} and {f.name} played with the {t.adj} {t.noun} all afternoon.",
                    f"They played with the {t.noun} {p.at} until the sun went down.")),
        f"{h.joy(rng)} {cap(h.subj)} was not lonely anymore.",
        rng.choice((f"From that day on, {h.name} and {f.name} were best friends.",
                    f"{h.name} went home happy. {cap(h.subj)} wanted to see {f.name} again.")),
    ]  # fmt: skip


def plot_stuck(rng: random.Random, h: Character, f: Character, p: Place) -> list[str]:
    t = make_thing(rng, WINDBLOWN)
    if f.kind in FLYERS:
        rescue = f"{f.name} flew up into the tree and pushed the {t.noun} down."
    elif f.kind in ("girl", "boy"):
        rescue = f"{f.name} found a long stick and gently pushed the {t.noun} down."
    else:
        rescue = f"{f.name} climbed up the tree and knocked the {t.noun} down."
    return [
        f"{h.name} had {t.a}. One windy day, {h.subj} took it to {p.to}.",
        f"Suddenly, a big wind came. The {t.adj} {t.noun} flew up and got stuck in a tall tree!",
        f"{h.name} jumped and jumped, but {h.subj} could not reach it. {cap(h.subj)} felt sad.",
        f"Just then, {f.friend_of(h)} came by. {f.name} wanted to help.",
        rescue,
        f"\"Thank you, {f.name}!\" said {h.name}. \"You are a good friend.\"",
        rng.choice((f"{h.name} learned that friends always help each other.",
                    f"After that, {h.name} held {h.poss} {t.noun} very tight on windy days.")),
    ]  # fmt: skip


def plot_trip(rng: random.Random, h: Character, f: Character, p: Place) -> list[str]:
    t = make_thing(rng)
    food = rng.choice(FOODS)
    s1, s2 = rng.sample(p.sights, 2)
    return [
        f"One morning, {h.poss} mom said, \"Today we are going to {p.to}!\"",
        f"{h.name} was so excited. {cap(h.subj)} packed {h.poss} {t.adj} {t.noun} and a snack.",
        f"When they got there, {h.name} saw {s1} and {s2}.",
        f"{cap(p.at)}, {h.subj} met {f.desc} named {f.name}, and they played with the {t.noun}.",
        f"Later, {h.name} and {f.name} sat down and shared {a(food)} {food}. It was yummy!",
        f"When the sun went down, it was time to go home. {h.name} was tired but happy.",
        rng.choice((f"That night, {h.name} dreamed about {p.to} and {h.poss} new friend {f.name}.",
                    f"It was the best day ever, and {h.name} wanted to go back to {p.to} soon.")),
    ]  # fmt: skip


def plot_rain(rng: random.Random, h: Character, f: Character, p: Place) -> list[str]:
    t = make_thing(rng)
    u = rng.choice(COLOURS + ("big",))
    return [
        f"One day, {h.name} and {f.friend_of(h)} were playing {p.at} with {t.a}.",
        rng.choice(("Suddenly, dark clouds came and it started to rain.",
                    "Suddenly, the sky turned gray and big drops of rain began to fall.")),
        f"{h.name} felt scared. \"Oh no! We will get wet!\" {h.subj} said.",
        rng.choice((f"{f.name} had {a(u)} {u} umbrella. \"Come under my umbrella!\" said {f.name}.",
                    f"{f.name} said, \"Let's hide under that big tree!\" So they ran and hid.")),
        "Soon the rain stopped and the sun came out. A big rainbow shone in the sky.",
        f"{h.name} and {f.name} laughed and played with the {t.adj} {t.noun} again.",
        rng.choice(("It was the best day ever.",
                    f"{h.name} learned that rainy days are fun with a good friend.")),
    ]  # fmt: skip


def plot_brave(rng: random.Random, h: Character, f: Character, p: Place) -> list[str]:
    return [
        f"One evening, {h.name} was {p.at} when {h.subj} heard a strange noise.",
        f"Something was moving {rng.choice(p.hides)}.",
        f"{h.name} felt scared. {cap(h.subj)} wanted to run home, but {h.subj} wanted to be brave.",
        f"Slowly, {h.name} went to look. It was {f.desc}!",
        f"\"I am {f.name},\" said the {f.kind}. \"I am lost and I cannot find my way home.\"",
        f"{h.name} was not scared anymore. {cap(h.subj)} helped {f.name} find {f.poss} home.",
        f"{f.joy(rng)} \"Thank you, {h.name}!\" said {f.name}.",
        rng.choice((f"{h.name} learned that it is good to be brave.",
                    f"From that day on, {h.name} and {f.name} were good friends.")),
    ]  # fmt: skip


def plot_sorry(rng: random.Random, h: Character, f: Character, p: Place) -> list[str]:
    t = make_thing(rng)
    return [
        f"{h.name} had a good friend, {f.desc} named {f.name}.",
        f"{f.name} had {t.a} and loved it very much.",
        f"One day, {h.name} and {f.name} were playing {p.at}.",
        f"{h.name} took the {t.noun} without asking. Oops! {cap(h.subj)} dropped it in the mud.",
        f"{f.name} was very sad, and {h.name} felt bad too.",
        f"\"I am sorry, {f.name},\" said {h.name}. \"I should have asked first.\"",
        f"{h.name} washed the {t.adj} {t.noun} until it was clean again.",
        f"{f.name} smiled. \"Thank you for saying sorry,\" {f.subj} said.",
        rng.choice((f"{h.name} learned to always ask before taking things.",
                    f"From that day on, {h.name} always asked first, and {f.name} shared.")),
    ]  # fmt: skip


Plot = Callable[[random.Random, Character, Character, Place], list[str]]
PLOTS: tuple[Plot, ...] = (
    plot_lost, plot_share, plot_new_friend, plot_stuck, plot_trip, plot_rain, plot_brave,
    plot_sorry,
)  # fmt: skip


def generate_story_with(
    rng: random.Random, hero: Character | None = None, friend: Character | None = None
) -> str:
    """One story with an optionally fixed cast, so tests can check pronoun agreement."""
    hero = hero or make_character(rng)
    friend = friend or make_character(rng, exclude=(hero.name,))
    sentences = intro(rng, hero) + rng.choice(PLOTS)(rng, hero, friend, rng.choice(PLACES))
    if rng.random() < 0.3:
        sentences.append("The end.")
    return " ".join(sentences)


def generate_story(rng: random.Random) -> str:
    """One random story (hero, friend, place and plot all drawn from ``rng``)."""
    return generate_story_with(rng)


def generate_stories(n: int, seed: int = 0) -> list[str]:
    """``n`` stories; a private ``random.Random(seed)`` makes the corpus reproducible."""
    rng = random.Random(seed)
    return [generate_story(rng) for _ in range(n)]
