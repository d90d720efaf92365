"""Which labels go into a file, and under which field: the one place that decides what is written.

A track's tags are the Discogs styles above a probability ``threshold`` (at most ``top_k``, most
probable first; at least ``min_labels`` even below the threshold), or an own head's "on" labels.
``layout="split"`` writes ``Electronic---Techno`` as GENRE=Electronic and STYLE=Techno (the fields
Discogs-based taggers use); ``layout="joined"`` writes the whole ``Electronic---Techno`` to STYLE.
A label without ``---`` (an own head's label) always goes whole to the style field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SEPARATOR = "---"
LAYOUTS = ("split", "joined")
SETTINGS_FIELD = "MAEST_SETTINGS"  # what wrote the file's maest tags: a rerun with the same ones skips it
ADDED_FIELD = "MAEST_ADDED"  # "FIELD=value" for every value maest added: a rerun replaces them, undo removes them


class TagChoiceError(ValueError):
    """Options that cannot choose labels (a threshold outside 0..1, an unknown layout, clashing field names)."""


@dataclass(frozen=True)
class TagChoice:
    """What to write: selection (``threshold``, ``top_k``, ``min_labels``), ``layout`` and the field names."""

    threshold: float = 0.1
    top_k: int = 3
    min_labels: int = 1
    layout: str = "split"
    genre_field: str = "GENRE"
    style_field: str = "STYLE"

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise TagChoiceError(f"threshold must be a probability in 0..1, got {self.threshold}")
        if self.top_k < 1 or not 0 <= self.min_labels <= self.top_k:
            raise TagChoiceError(f"need top_k >= 1 and 0 <= min_labels <= top_k, got top_k={self.top_k}, "
                                 f"min_labels={self.min_labels}")
        if self.layout not in LAYOUTS:
            raise TagChoiceError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        names = [self.genre_field.upper(), self.style_field.upper()]
        for name in names:
            if not name or not name.replace("_", "").replace(" ", "").isalnum() or name.startswith("MAEST_"):
                raise TagChoiceError(f"field names are letters, digits, spaces and _ (not MAEST_...), got {name!r}")
        if names[0] == names[1]:
            raise TagChoiceError(f"the genre and style fields must differ, both are {names[0]!r}")

    def describe(self) -> str:
        """The selection as text (part of the settings stored in the file)."""
        return (f"threshold={self.threshold:g} top_k={self.top_k} min_labels={self.min_labels} "
                f"layout={self.layout} genre_field={self.genre_field.upper()} style_field={self.style_field.upper()}")


def choose_labels(probabilities: np.ndarray, labels: Sequence[str], choice: TagChoice) -> list[tuple[str, float]]:
    """``(label, probability)`` of the chosen labels, most probable first (ties: label order)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(-probabilities, kind="stable")[:choice.top_k]
    chosen = [(labels[i], float(probabilities[i])) for rank, i in enumerate(order)
              if probabilities[i] >= choice.threshold or rank < choice.min_labels]
    return chosen


def head_labels(tags: Sequence[tuple[str, float, bool]], choice: TagChoice) -> list[tuple[str, float]]:
    """An own head's "on" labels (by its fitted thresholds), most probable first, at most ``top_k``."""
    return [(label, p) for label, p, on in tags if on][:choice.top_k]


def field_values(chosen: Sequence[tuple[str, float]], choice: TagChoice) -> dict[str, list[str]]:
    """``{FIELD: values}`` for the chosen labels: both fields always present (empty: nothing chosen)."""
    genres: list[str] = []
    styles: list[str] = []
    for label, _ in chosen:
        genre, sep, style = label.partition(SEPARATOR)
        if choice.layout == "split" and sep:
            if genre not in genres:
                genres.append(genre)
            value = style
        else:
            value = label
        if value not in styles:
            styles.append(value)
    return {choice.genre_field.upper(): genres, choice.style_field.upper(): styles}
