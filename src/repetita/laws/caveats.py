"""Caveats as typed values: what kind of doubt, how much it matters, which law, and the sentence.

A fit's diagnostics and a plan's notes used to be English sentences, later ranked and folded by the words
they contained. Here every caveat carries its ``Kind`` from where it is made, so that ranking and folding
read the kind, never the wording (a reworded message changes no ranking). The command line shows at most
``SHOWN`` lines by default, one per (law, kind) with a count of the rest of that kind: the plan of three
laws fitted with ``--holdout kfold:5`` to datablations printed 24 warning lines, each split's diagnostics
repeating the full fit's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """What a caveat doubts. Its rank (``SEVERITY``): lower first."""

    OVERRULED = "overruled"  # a law's plan not taken: a measured run contradicts it, or the law fails its checks
    OUTSIDE_RUNS = "outside-runs"  # the decision lies beyond the fitted runs
    DIFFERENT_DATA = "different-data"  # fit files from different tables
    NOT_IDENTIFIED = "not-identified"  # a parameter (combination) the rows do not determine
    NO_INTERVAL = "no-interval"  # the plan has no parameter interval
    VANISHED = "vanished"  # a term of the law contributes nothing
    AT_BOUND = "at-bound"  # a parameter at its search bound
    MULTIMODAL = "multimodal"  # another optimum nearly as good, elsewhere
    HELD_OUT = "held-out"  # a held-out group predicted worse than its mean
    LOW_FIT = "low-fit"  # the law explains little of the loss
    PENALTY_UNMEASURED = "penalty-unmeasured"  # an overfitting penalty with no run past its turn
    GAIN_UNCERTAIN = "gain-uncertain"  # a recipe's gain over standard is within its interval of zero
    TURN_UNMEASURED = "turn-unmeasured"  # the best epoch count measured is the largest tried
    PAST_TURN_RUNS = "past-turn-runs"  # runs past the turn, outside a monotone law's fit
    MULTIPLIER_VARIES = "multiplier-varies"  # a recipe's measured multiplier varies across cells
    SEARCH_EDGE = "search-edge"  # the optimum at the edge of the sizes searched
    SIZE_UNDETERMINED = "size-undetermined"  # the loss is flat in N along the compute line
    NO_REPETITION = "no-repetition"  # a law without a repetition term
    NOT_MOVED = "not-moved"  # a parameter that never left its start
    FLAT_EXPONENT = "flat-exponent"  # an exponent near zero
    MIXED_ROWS = "mixed-rows"  # rows the law treats as one that are not
    UNITS = "units"  # perplexities for losses, params in millions, a column spanning too many decades
    DUPLICATES = "duplicates"  # exact duplicate rows (merged) or one configuration with conflicting losses
    INFLUENTIAL = "influential"  # one row moves a fitted exponent by more than its own interval
    WIDE_INTERVAL = "wide-interval"  # a Laplace interval far wider than the data's scatter
    SCHEDULE_ASSUMED = "schedule-assumed"  # curves read under the default LR schedule
    NO_RECIPE = "no-recipe"  # no recipe besides standard was measured
    OTHER = "other"  # a caveat from a file written before kinds were stored


SEVERITY = {k: i for i, k in enumerate(Kind)}  # the order above
SHOWN = 5  # caveat lines a command prints by default (--verbose: all)


@dataclass(frozen=True)
class Caveat:
    kind: Kind
    text: str
    law: str = ""  # the law or fit file it concerns ("" for the plan as a whole)
    split: int | None = None  # the training split of a held-out fit it came from (None: the fit itself)

    def to_dict(self) -> dict:
        return {"kind": str(self.kind), "text": self.text, "law": self.law, "split": self.split}

    @classmethod
    def from_dict(cls, d: dict) -> Caveat:
        kind = d.get("kind")
        return cls(Kind(kind) if kind in Kind._value2member_map_ else Kind.OTHER, str(d.get("text", "")),
                   str(d.get("law", "")), d.get("split"))

    @property
    def line(self) -> str:
        where = f"training split {self.split}: " if self.split is not None else ""
        return f"{self.law + ': ' if self.law else ''}{where}{self.text}"


def typed(kind: Kind, texts: list[str], **kw) -> list[Caveat]:
    return [Caveat(kind, t, **kw) for t in texts]


def of_record(record: dict, law: str = "") -> list[Caveat]:
    """A fit file's caveats: typed where the file stores kinds, else each warning as ``Kind.OTHER``."""
    if isinstance(record.get("caveats"), list):
        return [Caveat.from_dict(d | {"law": law}) for d in record["caveats"]
                if isinstance(d, dict) and isinstance(d.get("text"), str)]  # a damaged entry says nothing
    return [Caveat(Kind.OTHER, str(w), law) for w in record.get("warnings") or []]


def fold(caveats: list[Caveat], limit: int | None = SHOWN) -> list[str]:
    """One line per (law, kind), most severe first, with how many more of that kind it stands for (in how
    many training splits); at most ``limit`` lines, the last saying how many were left out."""
    groups: dict[tuple[str, Kind], list[Caveat]] = {}
    for c in caveats:
        groups.setdefault((c.law, c.kind), []).append(c)
    laws = list(dict.fromkeys(c.law for c in caveats))
    order = sorted(groups, key=lambda g: (SEVERITY[g[1]], laws.index(g[0])))
    lines = []
    for key in order:
        first, rest = groups[key][0], groups[key][1:]
        splits = {c.split for c in groups[key] if c.split is not None}
        more = (f" (+{len(rest)} more of this kind" + (f", in {len(splits)} training split(s)" if splits else "")
                + ")") if rest else ""
        lines.append(first.line + more)
    if limit is None or len(lines) <= limit:
        return lines
    hidden = sum(len(groups[k]) for k in order[limit - 1:])
    return lines[:limit - 1] + [f"{hidden} more caveat(s) in {len(order) - limit + 1} more (law, kind) group(s): "
                                "--verbose prints every one"]
