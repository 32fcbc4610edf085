"""ARPAbet phone -> mouth shape (viseme).

Each shape is ``open`` (0 closed .. 1 jaw fully dropped), ``width`` (-1 rounded/pursed ..
0 neutral .. 1 spread), ``closure`` (1 = lips pressed together) and ``labiodental`` (lower
lip tucked under the upper teeth), plus a ``dominance`` saying how strongly the phone holds
its shape against its neighbours when shapes are blended (coarticulation): lip-driven
consonants (P B M F V W) and rounded vowels dominate, tongue-only consonants (T D K G H)
barely show on the lips and mostly take the surrounding vowels' shape.

| phones               | open | width | closure | note                               |
|----------------------|------|-------|---------|------------------------------------|
| AA                   | 1.00 |  0.0  |         | "father": widest jaw               |
| AE AY                | 0.85 |  0.3  |         | "cat", "bite"                      |
| AW                   | 0.80 | -0.3  |         | "cow": ends rounded                |
| AO                   | 0.80 | -0.4  |         | "caught": open and rounded         |
| AH                   | 0.60 |  0.0  |         | "cut": neutral                     |
| EH                   | 0.60 |  0.4  |         | "bet"                              |
| EY                   | 0.50 |  0.5  |         | "bait"                             |
| OW OY                | 0.55 | -0.6  |         | "boat", "boy"                      |
| ER                   | 0.40 | -0.2  |         | "bird"                             |
| IH                   | 0.40 |  0.5  |         | "bit"                              |
| UH                   | 0.40 | -0.5  |         | "book"                             |
| IY                   | 0.30 |  0.8  |         | "beat": most spread                |
| UW                   | 0.30 | -0.9  |         | "boot": most rounded               |
| P B M                | 0.00 |  0.0  |   1     | bilabials: lips pressed            |
| F V                  | 0.15 |  0.1  |         | labiodental                        |
| W                    | 0.15 | -0.9  |         | tight rounding                     |
| SH ZH CH JH          | 0.20 | -0.4  |         | protruded lips                     |
| R                    | 0.30 | -0.4  |         |                                    |
| S Z                  | 0.15 |  0.4  |         | teeth nearly together              |
| TH DH                | 0.25 |  0.1  |         | tongue between teeth               |
| Y                    | 0.25 |  0.6  |         |                                    |
| T D N L              | 0.30 |  0.1  |         | tongue tip; lips follow vowels     |
| K G NG               | 0.35 |  0.0  |         | tongue back; lips follow vowels    |
| HH                   | 0.50 |  0.0  |         | takes the next vowel's shape       |
| SIL (and fillers)    | 0.00 |  0.0  |  0.5    | rest; real silence comes from VAD  |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping


@dataclass(frozen=True)
class Viseme:
    open: float  # 0..1
    width: float  # -1 rounded .. 1 spread
    closure: float = 0.0  # 0..1, 1 = lips pressed together
    labiodental: bool = False  # F/V: lower lip to upper teeth
    dominance: float = 0.5  # weight when blending with neighbouring phones


BILABIALS = frozenset({"P", "B", "M"})
LABIODENTALS = frozenset({"F", "V"})

NEUTRAL = Viseme(0.4, 0.0, dominance=0.1)
REST = Viseme(0.0, 0.0, closure=0.5, dominance=0.3)

VISEMES: Mapping[str, Viseme] = MappingProxyType(
    {
        "AA": Viseme(1.00, 0.0, dominance=0.6),
        "AE": Viseme(0.85, 0.3, dominance=0.6),
        "AY": Viseme(0.85, 0.3, dominance=0.6),
        "AW": Viseme(0.80, -0.3, dominance=0.6),
        "AO": Viseme(0.80, -0.4, dominance=0.7),
        "AH": Viseme(0.60, 0.0, dominance=0.4),
        "EH": Viseme(0.60, 0.4, dominance=0.5),
        "EY": Viseme(0.50, 0.5, dominance=0.6),
        "OW": Viseme(0.55, -0.6, dominance=0.8),
        "OY": Viseme(0.55, -0.6, dominance=0.8),
        "ER": Viseme(0.40, -0.2, dominance=0.5),
        "IH": Viseme(0.40, 0.5, dominance=0.5),
        "UH": Viseme(0.40, -0.5, dominance=0.7),
        "IY": Viseme(0.30, 0.8, dominance=0.7),
        "UW": Viseme(0.30, -0.9, dominance=0.9),
        "P": Viseme(0.0, 0.0, closure=1.0, dominance=1.0),
        "B": Viseme(0.0, 0.0, closure=1.0, dominance=1.0),
        "M": Viseme(0.0, 0.0, closure=1.0, dominance=1.0),
        "F": Viseme(0.15, 0.1, labiodental=True, dominance=0.9),
        "V": Viseme(0.15, 0.1, labiodental=True, dominance=0.9),
        "W": Viseme(0.15, -0.9, dominance=0.9),
        "SH": Viseme(0.20, -0.4, dominance=0.7),
        "ZH": Viseme(0.20, -0.4, dominance=0.7),
        "CH": Viseme(0.20, -0.4, dominance=0.7),
        "JH": Viseme(0.20, -0.4, dominance=0.7),
        "R": Viseme(0.30, -0.4, dominance=0.5),
        "S": Viseme(0.15, 0.4, dominance=0.6),
        "Z": Viseme(0.15, 0.4, dominance=0.6),
        "TH": Viseme(0.25, 0.1, dominance=0.5),
        "DH": Viseme(0.25, 0.1, dominance=0.4),
        "Y": Viseme(0.25, 0.6, dominance=0.5),
        "T": Viseme(0.30, 0.1, dominance=0.2),
        "D": Viseme(0.30, 0.1, dominance=0.2),
        "N": Viseme(0.30, 0.1, dominance=0.2),
        "L": Viseme(0.30, 0.1, dominance=0.2),
        "K": Viseme(0.35, 0.0, dominance=0.15),
        "G": Viseme(0.35, 0.0, dominance=0.15),
        "NG": Viseme(0.35, 0.0, dominance=0.15),
        "HH": Viseme(0.50, 0.0, dominance=0.05),
        "SIL": REST,
    }
)


def viseme_for(label: str) -> Viseme:
    """Shape for an ARPAbet label (stress digits and case ignored); unknown labels are neutral."""
    return VISEMES.get(re.sub(r"\d", "", label.strip().upper()), NEUTRAL)
