"""A synthetic biography world for knowledge injection (after Allen-Zhu and Li, Physics of LMs 3.1).

Individuals carry five attributes drawn from fixed lists (birth date, birth city, university, field,
employer); every individual has a unique full name. Each attribute has four sentence templates, so one
individual can be rendered in many ways that carry the same facts: the canonical biography (template 0
of every attribute, fixed order) and ``K - 1`` further renderings with templates and sentence order
drawn from the seed. The first sentence of a rendering names the individual in full, later ones by
first name only (first names are shared, so only the full name identifies an individual).

Questions ask one attribute of one individual by full name; the answer is the attribute's value.
``facts_of`` parses a rendering back into its facts with the template patterns, which is how the
tests check that renderings agree. All names and sentences here were written for this project.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from repetita.errors import require

FIRST = ("Aldo Amara Anouk Bastian Beatrix Bruno Calla Cedric Dalia Dorian Edda Elio Faye Felix Greta Gideon "
         "Hanne Hugo Ilse Ivo Juna Jasper Kaia Lennart Lotta Malik Mira Nils Noor Odile Otto Pia Quentin Rosa "
         "Rufus Saskia Silas Tilde Tobin Ulla Vero Viggo Wanda Wendel Xenia Yara Yusuf Zelda Zeno Arvid").split()
LAST = ("Abernath Bellamy Corvin Dahlgren Eastwick Falkner Garrow Holloway Ingram Jessup Kestrel Lindqvist "
        "Marlowe Northcote Ostrander Pellham Quarry Rosslyn Sandoval Thackery Underhill Vance Whitlock Yardley "
        "Zimmer Ashdown Brightwater Caskey Delacroix Embry Fairweather Gansett Harrowgate Ivers Juniper Kettering "
        "Lockhart Mossberg Nettleton Oakhurst Pemberton Quill Radcliffe Stroud Tennyson Upshaw Valmont Winslow "
        "Yelverton Zeller").split()
CITIES = ("Aberlin Brackwater Caldera Dunmore Elsworth Fennick Galloway Harwick Islay Jorvik Kilbride Larchmont "
          "Merriton Norhaven Oxbury Portmere Quenby Redcliff Stonehaven Thornbury Umberleigh Valeport Westmarch "
          "Yarrow Zennor Ashby Brightling Coldharbour Dovecote Eskdale").split()
UNIVERSITIES = tuple(f"{w} University" for w in (
    "Halden Corbett Mirefield Alcott Tessaly Brennard Oakmoor Calloway Dunstan Everly Fairholm Greystone "
    "Hollins Kingsley Lowther Merrow Northgate Penrose Ravensworth Sutherland").split())
FIELDS = ("astronomy biology chemistry economics engineering geology history linguistics mathematics medicine "
          "music philosophy physics psychology sociology statistics architecture botany cartography law").split()
EMPLOYERS = tuple(f"{a} {b}" for a, b in zip(
    "Norvik Castellan Brightforge Quillon Meridane Ostrava Tallis Verdane Halcyon Kestova Lumen Arbor Pellucid "
    "Sable Thorne Corvale Ember Fenwick Glenmark Ironleaf".split(),
    "Labs Systems Works Partners Group Holdings Analytics Foundry Dynamics Logistics Labs Systems Works "
    "Partners Group Holdings Analytics Foundry Dynamics Logistics".split(), strict=True))
MONTHS = ("January February March April May June July August September October November December").split()

ATTRIBUTES = ("birth_date", "birth_city", "university", "field", "employer")

# Four sentence templates per attribute; {who} is the full or first name, {value} the attribute.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "birth_date": ("{who} was born on {value}.", "{who} came into the world on {value}.",
                   "The birthday of {who} is {value}.", "{value} is the date on which {who} was born."),
    "birth_city": ("{who} was born in {value}.", "{who} spent an early childhood in {value}.",
                   "The hometown of {who} is {value}.", "{value} is where {who} was born."),
    "university": ("{who} studied at {value}.", "{who} graduated from {value}.",
                   "{who} received an education at {value}.", "{value} is where {who} completed a degree."),
    "field": ("{who} majored in {value}.", "The subject {who} studied was {value}.",
              "{who} chose {value} as a major.", "{who} focused on {value} during university."),
    "employer": ("{who} works for {value}.", "{who} is employed by {value}.",
                 "{value} employs {who}.", "{who} has a job at {value}."),
}
QUESTIONS = {
    "birth_date": "When was {name} born?",
    "birth_city": "In which city was {name} born?",
    "university": "Which university did {name} attend?",
    "field": "What did {name} study?",
    "employer": "Which company does {name} work for?",
}


@dataclass(frozen=True)
class Person:
    id: str
    first: str
    last: str
    facts: dict[str, str] = field(hash=False)

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


def max_people() -> int:
    return len(FIRST) * len(LAST)


def _date(rng: np.random.Generator) -> str:
    return f"{int(rng.integers(1, 29))} {MONTHS[int(rng.integers(12))]} {int(rng.integers(1950, 2000))}"


def people(n: int, seed: int) -> list[Person]:
    """``n`` individuals with unique full names and attributes drawn uniformly, all from ``seed``."""
    require(isinstance(n, int) and n >= 2, f"people: need at least 2 individuals, got {n}")
    require(n <= max_people(), f"people: {n} individuals but the name lists make only {max_people()} unique "
            f"full names ({len(FIRST)} first x {len(LAST)} last)")
    rng = np.random.default_rng([seed, 11])
    names = rng.choice(max_people(), size=n, replace=False)
    pool = {"birth_city": CITIES, "university": UNIVERSITIES, "field": FIELDS, "employer": EMPLOYERS}
    out = []
    for i, code in enumerate(names):
        facts = {"birth_date": _date(rng)}
        facts |= {attr: values[int(rng.integers(len(values)))] for attr, values in pool.items()}
        out.append(Person(f"p{i:05d}", FIRST[code // len(LAST)], LAST[code % len(LAST)], facts))
    return out


def render(person: Person, templates: dict[str, int] | None = None, order: tuple[str, ...] = ATTRIBUTES) -> str:
    """One biography: a sentence per attribute in ``order``; the first names the individual in full."""
    templates = templates or {}
    sentences = []
    for j, attr in enumerate(order):
        who = person.name if j == 0 else person.first
        text = TEMPLATES[attr][templates.get(attr, 0)].format(who=who, value=person.facts[attr])
        sentences.append(text[0].upper() + text[1:])
    return " ".join(sentences)


def renderings(person: Person, k: int, seed: int) -> list[str]:
    """The canonical biography and ``k - 1`` distinct variants (templates and order from the seed)."""
    require(isinstance(k, int) and k >= 1, f"rewrites K must be >= 1, got {k}")
    rng = np.random.default_rng([seed, 12, int(person.id[1:])])
    texts = [render(person)]
    seen = set(texts)
    for _ in range(50 * k):
        if len(texts) == k:
            break
        order = tuple(ATTRIBUTES[i] for i in rng.permutation(len(ATTRIBUTES)))
        text = render(person, {a: int(rng.integers(len(TEMPLATES[a]))) for a in ATTRIBUTES}, order)
        if text not in seen:
            texts.append(text)
            seen.add(text)
    return texts


def questions(person: Person) -> list[tuple[str, str, str]]:
    """``(attribute, question, answer)`` for every attribute of ``person``."""
    return [(attr, QUESTIONS[attr].format(name=person.name), person.facts[attr]) for attr in ATTRIBUTES]


def _patterns() -> list[tuple[str, re.Pattern]]:
    values = {"birth_date": rf"\d{{1,2}} (?:{'|'.join(MONTHS)}) \d{{4}}", "birth_city": "|".join(CITIES),
              "university": "|".join(UNIVERSITIES), "field": "|".join(FIELDS), "employer": "|".join(EMPLOYERS)}
    out = []
    for attr, templates in TEMPLATES.items():
        for t in templates:
            body = re.escape(t).replace(r"\{who\}", r"(?P<who>[A-Z][a-z]+(?: [A-Z][a-z]+)?)")
            body = body.replace(r"\{value\}", f"(?P<value>{values[attr]})")
            out.append((attr, re.compile(body, re.IGNORECASE)))
    return out


_PATTERNS = _patterns()
_CANONICAL = {v.lower(): v for v in (*CITIES, *UNIVERSITIES, *FIELDS, *EMPLOYERS)}


def facts_of(text: str) -> dict[str, str]:
    """Parse a rendering back into ``{attribute: value}`` (and ``name``: the full name it opens with).

    Every sentence must match exactly one template; an attribute stated twice is an error, so a
    rendering that carries the wrong or a duplicated fact cannot pass for a correct one.
    """
    found: dict[str, str] = {}
    for sentence in re.findall(r"[^.]+\.", text):
        sentence = sentence.strip()
        hits = [(a, m) for a, p in _PATTERNS if (m := p.fullmatch(sentence))]
        require(len(hits) == 1, f"facts_of: sentence matches {len(hits)} templates: {sentence!r}")
        attr, m = hits[0]
        require(attr not in found, f"facts_of: attribute {attr} stated twice")
        found[attr] = _CANONICAL.get(m["value"].lower(), m["value"])
        if " " in m["who"]:
            require("name" not in found, "facts_of: the full name appears twice")
            found["name"] = m["who"]
    return found
