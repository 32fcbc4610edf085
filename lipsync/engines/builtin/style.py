"""The built-in engine's prompt vocabulary: a few words that scale its motion.

    calm        smaller mouth motion, slow gentle head motion
    energetic   bigger mouth motion, livelier head motion
    smile       mouth corners raised and widened
    serious     no smile, slightly smaller head motion
    still       no head motion or breathing (blinks remain)
    subtle      smaller mouth motion
    expressive  bigger mouth motion
    neutral     the defaults

Filler words (a, an, the, and, with, very, slightly, ...) are ignored; any other word is reported back
in the job record as not understood, never silently dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Style:
    mouth: float = 1.0  # scales mouth opening
    head: float = 1.0  # scales head motion
    breathing: float = 1.0
    smile: float = 0.0  # 0..1 corner lift
    blinks: float = 1.0  # scales blink rate


VOCABULARY: dict[str, dict[str, float]] = {
    "calm": {"mouth": 0.8, "head": 0.5, "breathing": 0.8},
    "energetic": {"mouth": 1.25, "head": 1.8, "breathing": 1.3},
    "smile": {"smile": 0.8},
    "smiling": {"smile": 0.8},
    "happy": {"smile": 0.6, "head": 1.2},
    "serious": {"smile": 0.0, "head": 0.8},
    "still": {"head": 0.0, "breathing": 0.0},
    "subtle": {"mouth": 0.75},
    "expressive": {"mouth": 1.3, "head": 1.3},
    "neutral": {},
}
FILLERS = frozenset("a an the and with very slightly bit little more less but please of in on".split())


def parse_prompt(prompt: str | None) -> tuple[Style, list[str]]:
    """Words → Style (multiplicative for scales, max for smile); returns the words not understood."""
    style = Style()
    unknown: list[str] = []
    for word in re.findall(r"[a-zA-Z']+", (prompt or "").lower()):
        if word in FILLERS:
            continue
        effect = VOCABULARY.get(word)
        if effect is None:
            if word not in unknown:
                unknown.append(word)
            continue
        changes = {}
        for key, value in effect.items():
            changes[key] = max(getattr(style, key), value) if key == "smile" else getattr(style, key) * value
        if word == "serious":
            changes["smile"] = 0.0
        style = replace(style, **changes)
    return style, unknown
