"""Passages of a toy world in the wiki-18 format, with the distractors that make retrieval real.

Every entity gets a main passage titled with its name that states all its facts, each in one of a
few templates. The object of a fact always comes right after a fixed phrase of its relation
("was born in", "founded by", "headquartered in", ...), so where the answer sits in a passage is
predictable enough for a tiny model to learn to copy it.

Main passages are short (two or three sentences, no filler) because a two-hop episode shows six of
them and must fit the rollout's response budget.

Distractors, so that the top passage for a name is not always the answer:
- similar names from the knowledge base itself (family names, company first words);
- extra passages with the same title as an entity that mention other places and people without
  stating any asked fact ("... travelled to Quenbrook ..." is not where someone was born);
- event passages that mention several entities together and state nothing that is asked.

`support[(subject_id, relation)]` lists every passage that states the fact, so questions can name
their supporting documents.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sr1lib.toyworld.kb import KB, Entity

EVENT_WORDS = ("Fair", "Treaty", "Festival", "Expedition", "Exhibition", "Congress", "Regatta")
TOPICS = ("mathematics", "medicine", "law", "music", "astronomy", "botany", "history", "chemistry")


@dataclass(frozen=True)
class Passage:
    docid: str
    title: str
    text: str
    kind: str  # main | extra | event
    entity_id: str = ""

    @property
    def contents(self) -> str:
        return f'"{self.title}"\n{self.text}'

    def to_json(self) -> dict[str, str]:
        return {"id": self.docid, "contents": self.contents}


def _pick(rng: random.Random, templates: tuple[str, ...], **kw: str) -> str:
    return rng.choice(templates).format(**kw)


def _person(kb: KB, e: Entity, rng: random.Random) -> tuple[str, list[str]]:
    city, uni = kb.obj("born_in", e.id), kb.obj("educated_at", e.id)
    pro = "She" if rng.random() < 0.5 else "He"
    occ = e.attr("occupation")
    out = [_pick(rng, ("{s} is a {occ} who was born in {o}.", "{s} was born in {o}.",
                       "{s}, a {occ}, was born in {o}."), s=e.name, o=city.name, occ=occ)]
    facts = ["born_in"]
    later = [(_pick(rng, ("{p} studied at {o}.", "{p} graduated from {o}.", "{s} studied at {o}."),
                    p=pro, s=e.name, o=uni.name), "educated_at")]
    for company in kb.inverse("founded_by", e.id):
        later.append((_pick(rng, ("{p} founded {o}.", "{s} is the founder of {o}.", "{p} later founded {o}."),
                            p=pro, s=e.name, o=company.name), f"founded:{company.id}"))
    rng.shuffle(later)
    for sentence, fact in later:
        out.append(sentence)
        facts.append(fact)
    return " ".join(out), facts


def _company(kb: KB, e: Entity, rng: random.Random) -> tuple[str, list[str]]:
    founder, hq = kb.obj("founded_by", e.id), kb.obj("headquartered_in", e.id)
    first = _pick(rng, ("{s} is a company founded by {o}.", "{s} was founded by {o}.",
                        "{s} makes {prod} and was founded by {o}."),
                  s=e.name, o=founder.name, prod=e.attr("product"))
    second = _pick(rng, ("It is headquartered in {o}.", "Its headquarters are in {o}.",
                         "{s} is headquartered in {o}."), s=e.name, o=hq.name)
    return f"{first} {second}", ["founded_by", "headquartered_in"]


def _city(kb: KB, e: Entity, rng: random.Random) -> tuple[str, list[str]]:
    country, river = kb.obj("located_in", e.id), kb.obj("located_on", e.id)
    parts = [_pick(rng, ("{s} is a city in {o}.", "{s} is located in {o}.", "{s} is a town in {o}."),
                   s=e.name, o=country.name)]
    facts = ["located_in"]
    if kb.rel["capital"].get(country.id) == e.id:
        parts.append(f"It is the capital of {country.name}.")
        facts.append(f"capital_of:{country.id}")
    parts.append(_pick(rng, ("It lies on the {o}.", "The {o} flows through {s}.", "{s} stands on the {o}."),
                       s=e.name, o=river.name))
    facts.append("located_on")
    return " ".join(parts), facts


def _country(kb: KB, e: Entity, rng: random.Random) -> tuple[str, list[str]]:
    capital = kb.obj("capital", e.id)
    parts = [_pick(rng, ("{s} is a country whose capital is {o}.", "The capital of {s} is {o}.",
                         "{s} is a country. Its capital is {o}."), s=e.name, o=capital.name)]
    others = [c for c in kb.inverse("located_in", e.id) if c.type == "city" and c.id != capital.id]
    if others:
        # Other cities of the country: distractors for the capital question.
        names = [c.name for c in rng.sample(others, min(2, len(others)))]
        parts.append(f"Other cities of {e.name} include {' and '.join(names)}.")
    return " ".join(parts), ["capital"]


def _river(kb: KB, e: Entity, rng: random.Random) -> tuple[str, list[str]]:
    cities = kb.inverse("located_on", e.id)
    if not cities:
        return f"The {e.name} is a small river.", []
    shown = rng.sample(cities, min(2, len(cities)))
    text = f"The {e.name} is a river. It flows through {' and '.join(c.name for c in shown)}."
    return text, [f"flows:{c.id}" for c in shown]


def _university(kb: KB, e: Entity, rng: random.Random) -> tuple[str, list[str]]:
    city = kb.obj("located_in", e.id)
    text = _pick(rng, ("{s} is a university in {o}.", "{s} is located in {o}.", "{s} stands in {o}."),
                 s=e.name, o=city.name)
    return text, ["located_in"]


MAKERS = {"person": _person, "company": _company, "city": _city, "country": _country, "river": _river,
          "university": _university}


def _extra(kb: KB, e: Entity, rng: random.Random) -> str:
    """A second passage about `e` that mentions others without stating anything that is asked."""
    year = rng.randint(1700, 1990)
    city = rng.choice(kb.of_type("city")).name
    person = rng.choice(kb.of_type("person")).name
    company = rng.choice(kb.of_type("company")).name
    if e.type == "person":
        return rng.choice((f"In {year}, {e.name} travelled to {city} and met {person}.",
                           f"{e.name} wrote letters to {person} about {company}.",
                           f"{e.name} lived in {city} for some years after {year}."))
    if e.type == "company":
        return rng.choice((f"In {year}, {e.name} opened a shop in {city}.",
                           f"{e.name} once bought a factory from {company} in {city}.",
                           f"{person} worked for {e.name} in {year}."))
    if e.type == "city":
        return rng.choice((f"In {year}, {e.name} hosted a fair visited by {person}.",
                           f"{company} opened an office in {e.name} in {year}.",
                           f"{e.name} is known for its {e.attr('trait')}. {person} painted them in {year}."))
    if e.type == "university":
        return f"{e.name} is known for {rng.choice(TOPICS)}. {person} taught there in {year}."
    return f"In {year}, {person} wrote about {e.name} after a visit to {city}."


def _event(kb: KB, rng: random.Random, name: str) -> str:
    year = rng.randint(1700, 1990)
    city = rng.choice(kb.of_type("city")).name
    p1, p2 = (p.name for p in rng.sample(kb.of_type("person"), 2))
    company = rng.choice(kb.of_type("company")).name
    return rng.choice((f"The {name} took place in {city} in {year}. {p1} and {p2} attended it.",
                       f"The {name} of {year} was held in {city}. It was sponsored by {company}.",
                       f"{p1} organised the {name} in {city}, and {p2} spoke there about {company}."))


def build_corpus(kb: KB, rng: random.Random, *, extra_fraction: float, events: int,
                 event_words: list[str]) -> tuple[list[Passage], dict[tuple[str, str], list[str]]]:
    """(passages with docids "0", "1", ... in shuffled order, support map (subject, relation) -> docids)."""
    drafts: list[tuple[str, str, str, str, list[str]]] = []  # title, text, kind, entity id, facts
    for e in kb.entities.values():
        text, facts = MAKERS[e.type](kb, e, rng)
        drafts.append((e.name, text, "main", e.id, facts))
        if rng.random() < extra_fraction:
            drafts.append((e.name, _extra(kb, e, rng), "extra", e.id, []))
    for word in event_words[:events]:
        name = f"{word} {rng.choice(EVENT_WORDS)}"
        drafts.append((name, _event(kb, rng, name), "event", "", []))
    rng.shuffle(drafts)
    passages, support = [], {}
    for i, (title, text, kind, eid, facts) in enumerate(drafts):
        docid = str(i)
        passages.append(Passage(docid, title, text, kind, eid))
        for fact in facts:
            for key in _support_keys(eid, fact):
                support.setdefault(key, []).append(docid)
    return passages, support


def _support_keys(eid: str, fact: str) -> list[tuple[str, str]]:
    """The (subject, relation) facts a passage sentence states; inverse sentences count for both."""
    if ":" not in fact:
        return [(eid, fact)]
    kind, other = fact.split(":", 1)
    if kind == "founded":
        return [(other, "founded_by")]
    if kind == "capital_of":
        return [(other, "capital")]
    if kind == "flows":
        return [(other, "located_on")]
    raise ValueError(f"unknown fact marker {fact!r}")
