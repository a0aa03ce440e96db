"""Prompt templates for rephrasing a document, one per family of the SPA recipe (Tang et al. 2026).

SPA's finding is that a fixed handful of plain, prompt-engineered rewrites, sampled many times, is
enough for knowledge injection; these prompts are written for this project and cover the seven
families it names. ``{document}`` is the only placeholder.
"""

from __future__ import annotations

from repetita.errors import UserError

TEMPLATES: dict[str, str] = {
    "key_concepts": (
        "Read the document below and list its key concepts. For each concept give a short name and two or "
        "three sentences explaining it using only facts stated in the document.\n\nDocument:\n{document}\n\n"
        "Key concepts:"
    ),
    "mind_map": (
        "Turn the document below into a mind map written as an indented outline: the main topic first, then "
        "its branches and sub-branches, keeping every name, number and date from the text.\n\n"
        "Document:\n{document}\n\nMind map:"
    ),
    "implications": (
        "State the implications of the document below: what follows from each of its facts, what they "
        "change, and what someone who knows them could now predict. Restate each fact before its "
        "consequence.\n\nDocument:\n{document}\n\nImplications:"
    ),
    "qa_critical": (
        "Write questions a careful reader would ask about the document below, each followed by an answer "
        "that reasons step by step from the text. Include at least one question that checks a number or "
        "a name.\n\nDocument:\n{document}\n\nQuestions and answers:"
    ),
    "case_study": (
        "Write a short case study in which the facts of the document below matter: describe a concrete "
        "situation, the decision taken, and how each fact from the document shaped it.\n\n"
        "Document:\n{document}\n\nCase study:"
    ),
    "discussion": (
        "Write a discussion between two people who are learning the material in the document below. They "
        "explain it to each other, correct each other's mistakes and repeat the key facts.\n\n"
        "Document:\n{document}\n\nDiscussion:"
    ),
    "teacher": (
        "You are a teacher. Explain the document below to a student who has never seen it: start with the "
        "big picture, then go through every fact in order, and end with a short summary.\n\n"
        "Document:\n{document}\n\nExplanation:"
    ),
}


def render(name: str, document: str) -> str:
    """The prompt for template ``name`` applied to ``document``."""
    if name not in TEMPLATES:
        raise UserError(f"unknown template '{name}'; known: {', '.join(TEMPLATES)}")
    return TEMPLATES[name].replace("{document}", document)
