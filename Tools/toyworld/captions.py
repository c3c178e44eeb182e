"""Captions with word-to-object alignment.

A caption is assembled word by word with `Builder`, so every word that names an object (its
shape noun, colour, size, count, class word, hat) carries that object's id and its character
span; a measurement can then tie a prompt token's attention map to the object's mask. Relations
(left of / right of / above / below) are only said when the bounding boxes really are separated
that way. Counts ("two red circles") only group objects of the same shape and colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import palette, version
from .shapes import PLURALS

NUMBERS = {2: "two", 3: "three"}
RELATION_PHRASES = {
    "left of": ["to the left of", "left of"],
    "right of": ["to the right of", "right of"],
    "above": ["above", "over"],
    "below": ["below", "under", "beneath"],
}
CONVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
PREFIXES = ["a picture of", "a drawing of", "an image of", "a photo of"]  # TI captions use them


@dataclass(frozen=True)
class Mention:
    """A caption word that names object(s): caption[start:end] == word."""
    word: str
    start: int
    end: int
    word_index: int            # index in caption.split()
    object_ids: tuple[int, ...]
    kind: str                  # shape | colour | size | count | class | hat | pattern | eyes


class Builder:
    """Accumulates words; punctuation attaches to the previous word."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, tuple[int, ...], str | None, bool, int | None]] = []
        self.alts: list[str] = []
        self._alt: int | None = None

    def add(self, text: str, ids: tuple[int, ...] = (), kind: str | None = None) -> "Builder":
        for w in text.split():
            self.parts.append((w, tuple(ids) if kind else (), kind, False, self._alt))
        return self

    def punct(self, text: str) -> "Builder":
        self.parts.append((text, (), None, True, self._alt))
        return self

    def begin_alt(self, alt: str) -> None:
        """Words until end_alt() are replaced by `alt` in the template (placeholder) text."""
        self.alts.append(alt)
        self._alt = len(self.alts) - 1

    def end_alt(self) -> None:
        self._alt = None

    def build(self) -> tuple[str, list[Mention], str]:
        """(caption, mentions, template with alt texts in place of their words)."""
        text, mentions, index = "", [], -1
        tmpl, last_alt = "", None
        for word, ids, kind, attach, alt in self.parts:
            if text and not attach:
                text += " "
            if not attach:
                index += 1
            start = len(text)
            text += word
            if kind:
                mentions.append(Mention(word, start, len(text), index, ids, kind))
            if alt is not None:
                if alt != last_alt:
                    tmpl += (" " if tmpl else "") + self.alts[alt]
            else:
                tmpl += ("" if attach or not tmpl else " ") + word
            last_alt = alt
        return text, mentions, tmpl


def relations(a, b) -> list[str]:
    """True relations of object a with respect to b, from their bounding boxes (x0,y0,x1,y1)."""
    ax0, ay0, ax1, ay1 = a.bbox
    bx0, by0, bx1, by1 = b.bbox
    out = []
    if ax1 <= bx0:
        out.append("left of")
    if bx1 <= ax0:
        out.append("right of")
    if ay1 <= by0:
        out.append("above")
    if by1 <= ay0:
        out.append("below")
    return out


def group_identical(objs) -> list[list]:
    """Shape objects grouped by (shape, colour), characters one per group, in scene order."""
    groups: dict[tuple, list] = {}
    for o in objs:
        key = (o.shape, o.colour) if o.kind == "shape" else ("char", o.id)
        groups.setdefault(key, []).append(o)
    return list(groups.values())


def article(next_word: str) -> str:
    return "an" if next_word[0] in "aeiou" else "a"


def _pick(rng: np.random.Generator, items):
    return items[rng.integers(len(items))]


def describe(b: Builder, group: list, rng: np.random.Generator, *, size: bool) -> None:
    """'a large red circle' / 'two blue hearts' / 'a person with a red cap' into the builder."""
    ids = tuple(o.id for o in group)
    o = group[0]
    if o.kind != "shape":
        describe_character(b, o, rng)
        return
    same_size = all(g.size == o.size for g in group)
    if len(group) == 1:
        b.add(article(o.size if size and same_size else o.colour))
    else:
        b.add(NUMBERS[len(group)], ids, "count")
    if size and same_size:
        b.add(o.size, ids, "size")
    b.add(o.colour, ids, "colour")
    b.add(o.shape if len(group) == 1 else PLURALS[o.shape], ids, "shape")


def describe_character(b: Builder, o, rng: np.random.Generator, *, attrs: bool = True,
                       alt: str | None = None) -> None:
    """'a person with a blue top hat', 'a grey striped cat'; alt = template placeholder."""
    ch, ids = o.character, (o.id,)
    if alt:
        b.begin_alt(alt)
    if ch.kind == "cat":
        words = []
        if attrs and rng.random() < 0.6:
            words.append(("colour", ch.colour))
        if attrs and ch.pattern != "plain" and rng.random() < 0.5:
            words.append(("pattern", {"stripes": "striped", "spots": "spotted"}[ch.pattern]))
        b.add("a")
        for kind, w in words:
            b.add(w, ids, kind)
        b.add("cat", ids, "class")
        if alt:
            b.end_alt()
        if attrs and ch.eyes != "dots" and rng.random() < 0.2:
            b.add("with").add(ch.eyes, ids, "eyes").add("eyes")
        return
    b.add("a")
    if attrs and version.VERSION >= 5 and rng.random() < 0.6:  # its skin, as a cat's fur
        b.add(ch.colour, ids, "colour")
    b.add("person", ids, "class")
    if alt:
        b.end_alt()
    if not attrs:
        return
    extras = []
    if ch.hat != "none" and rng.random() < 0.7:
        extras.append("hat")
    if ch.pattern != "plain" and rng.random() < 0.5:
        extras.append("pattern")
    if ch.eyes != "dots" and rng.random() < 0.25:
        extras.append("eyes")
    for i, e in enumerate(extras):
        # "wearing" only when the hat is all that follows ("wearing ... and freckles" is odd)
        solo_hat = e == "hat" and len(extras) == 1
        b.add(("wearing" if solo_hat and rng.random() < 0.4 else "with") if i == 0 else "and")
        if e == "hat":
            b.add(article(ch.hat_colour)).add(ch.hat_colour, ids, "hat").add(ch.hat, ids, "hat")
        elif e == "pattern":
            if ch.pattern == "freckles":
                b.add("freckles", ids, "pattern")
            else:
                b.add("a").add("striped", ids, "pattern").add("face")
        else:
            b.add(ch.eyes, ids, "eyes").add("eyes")


def position_phrase(group: list) -> tuple[str, str] | None:
    """Where a group of several objects is: (phrase, fact) for a shared row or column."""
    rows = {palette.row_col(o.position)[0] for o in group}
    cols = {palette.row_col(o.position)[1] for o in group}
    if len(rows) == 1 and (r := rows.pop()) in palette.ROW_PHRASES:
        return palette.ROW_PHRASES[r], f"row {r}"
    if len(cols) == 1 and (c := cols.pop()) in palette.COL_PHRASES:
        return palette.COL_PHRASES[c], f"column {c}"
    return None


def add_position(b: Builder, group: list, rng: np.random.Generator, facts: list) -> None:
    """The group's position phrase, if it has one; the claim goes into facts."""
    if len(group) == 1:
        phrase, fact = _pick(rng, palette.POSITION_PHRASES[group[0].position]), group[0].position
    elif (pf := position_phrase(group)) is not None:
        phrase, fact = pf
    else:
        return
    b.add(phrase)
    facts.append(("position", tuple(o.id for o in group), fact))


def caption(objs, background: str, rng: np.random.Generator, place_rate: float | None = None):
    """(caption, mentions, facts) for a scene of shapes and/or characters.

    facts are the claims the caption makes beyond naming: ("position", ids, cell | "row top" |
    "column left"...), ("relation", a_id, "left of" | ..., b_id), ("background", style).
    place_rate, if given, replaces the chances that a caption says where its objects are (0.3 to
    0.55 by caption form); the random draws are the same either way.
    """
    def says(p: float) -> bool:
        return rng.random() < (p if place_rate is None else place_rate)

    b, facts = Builder(), []
    groups = group_identical(objs)
    single_char = len(groups) == 1 and groups[0][0].kind != "shape"
    prefix = rng.random() < (0.2 if single_char else 0.12)
    size = rng.random() < 0.4
    if len(groups) == 1:
        g = groups[0]
        with_pos = says(0.5)
        if not (with_pos and len(g) == 1 and rng.random() < 0.25):
            if prefix:
                b.add(_pick(rng, PREFIXES))
            describe(b, g, rng, size=size)
            if with_pos:
                add_position(b, g, rng, facts)
        else:  # position first: "in the centre, a red circle"
            add_position(b, g, rng, facts)
            b.punct(",")
            describe(b, g, rng, size=size)
        return _finish(b, background, rng, facts)
    if prefix:
        b.add(_pick(rng, PREFIXES))
    two_alike = (len(groups) == 2 and all(g[0].kind != "shape" for g in groups)
                 and groups[0][0].kind == groups[1][0].kind)
    if two_alike and rng.random() < 0.3:  # "two cats", "two people side by side"
        ids = tuple(g[0].id for g in groups)
        b.add("two", ids, "count")
        b.add("people" if groups[0][0].kind == "person" else "cats", ids, "class")
        a, c = groups[0][0], groups[1][0]
        if ({"left of", "right of"} & set(relations(a, c))) and rng.random() < 0.5:
            b.add("side by side")
            facts.append(("relation", a.id, "side by side", c.id))
    elif len(groups) == 2 and all(len(g) == 1 for g in groups):
        a, c = groups[0][0], groups[1][0]
        rels = relations(a, c)
        if rels and says(0.55):
            rel = _pick(rng, rels)
            if rng.random() < 0.5:
                a, c, rel = c, a, CONVERSE[rel]
            describe(b, [a], rng, size=size)
            b.add(_pick(rng, RELATION_PHRASES[rel]))
            describe(b, [c], rng, size=size)
            facts.append(("relation", a.id, rel, c.id))
        else:
            with_pos = says(0.4)
            describe(b, [a], rng, size=size)
            if with_pos:
                add_position(b, [a], rng, facts)
            b.add("and")
            describe(b, [c], rng, size=size)
            if with_pos:
                add_position(b, [c], rng, facts)
    else:
        with_pos = says(0.3)
        for i, g in enumerate(groups):
            if i > 0:
                if i == len(groups) - 1:
                    b.add("and")
                else:
                    b.punct(",")
            describe(b, g, rng, size=size)
            if with_pos:
                add_position(b, g, rng, facts)
    return _finish(b, background, rng, facts)


def _finish(b: Builder, background: str, rng: np.random.Generator, facts: list):
    """Maybe name the background, then build: (caption, mentions, facts)."""
    if rng.random() < 0.35:
        b.add(_pick(rng, palette.BACKGROUND_PHRASES[background]))
        facts.append(("background", background))
    text, mentions, _ = b.build()
    return text, mentions, facts


def character_pair_caption(objs, background: str, rng: np.random.Generator,
                           names: tuple[str, str] | None = None):
    """'a person and a person side by side' style captions for two characters (left, right).

    With names, the template has '{name}' placeholders in place of each class phrase.
    """
    b = Builder()
    kinds = {o.character.kind for o in objs}
    if names is None and len(kinds) == 1 and rng.random() < 0.4:
        kind = kinds.pop()
        ids = tuple(o.id for o in objs)
        b.add("two", ids, "count").add("people" if kind == "person" else "cats", ids, "class")
    else:
        for i, o in enumerate(objs):
            if i:
                b.add("and")
            describe_character(b, o, rng, attrs=names is None,
                               alt=None if names is None else "{%s}" % names[i])
    if rng.random() < 0.5:
        b.add("side by side")
    if rng.random() < 0.35:
        b.add(_pick(rng, palette.BACKGROUND_PHRASES[background]))
    return b.build()


TI_TEMPLATES = [
    "a photo of {X}", "a picture of {X}", "{X}", "a drawing of {X}", "a photo of {X} {bg}",
    "{X} {bg}", "{X} {pos}", "a picture of {X} {pos}", "{X} next to {shape}", "{X} and {shape}",
    "a photo of {X} and {shape}",
]


def ti_caption(o, others: list, background: str, rng: np.random.Generator, name: str):
    """A textual-inversion caption using the class word; template has '{name}' instead."""
    tmpl = _pick(rng, [t for t in TI_TEMPLATES if ("{shape}" in t) == bool(others)])
    b = Builder()
    for piece in tmpl.split():
        if piece == "{X}":
            describe_character(b, o, rng, attrs=False, alt="{%s}" % name)
        elif piece == "{bg}":
            b.add(_pick(rng, palette.BACKGROUND_PHRASES[background]))
        elif piece == "{pos}":
            add_position(b, [o], rng, [])
        elif piece == "{shape}":
            describe(b, [others[0]], rng, size=False)
        else:
            b.add(piece)
    return b.build()
