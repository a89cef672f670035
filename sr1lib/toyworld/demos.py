"""Protocol demonstrations for pretraining: Search-R1 episodes over a world, imperfect on purpose.

An episode is exactly the text the rollout loop produces: `protocol.build_prompt(question)` (mode
"search", no chat template), then the model's turns `<think> ... </think>\\n<search> q </search>`,
each followed by `protocol.format_observation(hits)`, and a last turn ending in
`<answer> x </answer>`. Behaviours are drawn per episode from `DemoMix`:

    good        search with a fitting query (two-hop: two searches, the second naming the bridge
                entity), state the fact read in a passage, answer with it; when the retriever
                misses, search once more with other words, then guess
    guess       answer at once without searching (a type-correct name from the same world)
    poor_query  search with a vague or wrong query, then answer from whatever came back
    wrong_copy  search well but answer with another name of the right type from the passages
    shortcut    two-hop only: one search, then answer with the bridge entity
    bad_format  answer outside the tags, then stop
    verbose     `<answer> The answer is X </answer>` (exact match fails)

plus a share of no-search and RAG episodes (the baselines' prompts) so those baselines are measured
on a model that has seen their format. The passages shown come from a `DemoRetriever`: BM25 over the
world's corpus (`Bm25DemoRetriever`, sr1lib.retrieval's bm25s backend) or, where that backend is not
available, the gold passage plus word-sharing distractors (`GoldDistractorRetriever`).
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from typing import Sequence

from sr1lib import protocol
from sr1lib.toyworld.corpus import Passage
from sr1lib.toyworld.kb import KB, Entity
from sr1lib.toyworld.questions import Question
from sr1lib.types import Hit

# What the model "thinks" it needs, the query it writes, and the sentence it states after reading.
NEED = {
    ("born_in", "person"): "where {s} was born",
    ("educated_at", "person"): "where {s} studied",
    ("founded_by", "company"): "who founded {s}",
    ("headquartered_in", "company"): "where {s} is headquartered",
    ("located_in", "city"): "which country {s} is in",
    ("located_in", "university"): "which city {s} is in",
    ("located_on", "city"): "which river flows through {s}",
    ("capital", "country"): "the capital of {s}",
}
QUERIES = {
    ("born_in", "person"): ("{s} born", "where was {s} born"),
    ("educated_at", "person"): ("{s} studied", "{s} university"),
    ("founded_by", "company"): ("{s} founder", "who founded {s}"),
    ("headquartered_in", "company"): ("{s} headquarters", "{s} headquartered"),
    ("located_in", "city"): ("{s} country", "{s} located in"),
    ("located_in", "university"): ("{s} city", "{s} located in"),
    ("located_on", "city"): ("{s} river", "river through {s}"),
    ("capital", "country"): ("capital of {s}", "{s} capital"),
}
STATE = {
    ("born_in", "person"): "{s} was born in {o}.",
    ("educated_at", "person"): "{s} studied at {o}.",
    ("founded_by", "company"): "{s} was founded by {o}.",
    ("headquartered_in", "company"): "{s} is headquartered in {o}.",
    ("located_in", "city"): "{s} is in {o}.",
    ("located_in", "university"): "{s} is in {o}.",
    ("located_on", "city"): "The {o} flows through {s}.",
    ("capital", "country"): "The capital of {s} is {o}.",
}
VAGUE_QUERIES = ("{rel}", "famous {type}", "{other}", "{rel} {other}", "question")
REL_WORDS = {"born_in": "born", "educated_at": "studied", "founded_by": "founder", "headquartered_in": "headquarters",
             "located_in": "located", "located_on": "river", "capital": "capital"}


@dataclass(frozen=True)
class DemoMix:
    """Shares of behaviours (normalised per hop type) and of the baseline prompt formats.

    The base model is an overconfident reader, like an instruction-tuned LLM that answers from
    memory: over half of its demonstrations answer at once, so its greedy first turn guesses
    (near-chance EM) while sampling searches about 40% of the time and is then often right. That
    gap is what outcome-reward RL has to close, as in the paper, where the base models rarely
    search well. With searching most likely instead (the earlier mix, 50% good), greedy decoding
    already followed the good path and RL had little left to improve.
    """

    single: dict[str, float] = field(default_factory=lambda: {
        "guess": 0.55, "good": 0.3, "poor_query": 0.05, "wrong_copy": 0.03, "bad_format": 0.03, "verbose": 0.04})
    two: dict[str, float] = field(default_factory=lambda: {
        "guess": 0.55, "good": 0.18, "shortcut": 0.17, "poor_query": 0.04, "wrong_copy": 0.02,
        "bad_format": 0.02, "verbose": 0.02})
    no_search: float = 0.05  # share of episodes in the no-search (direct) prompt format
    rag: float = 0.1  # share of episodes in the RAG prompt format

    def to_json(self) -> dict:
        return asdict(self)


class DemoRetriever:
    """Top-k passages for a query; `gold` helps retrievers that cannot search for real."""

    name = ""

    def search(self, query: str, k: int, gold: Sequence[str] = ()) -> list[Hit]:
        raise NotImplementedError


def hit_of(p: Passage, score: float = 0.0) -> Hit:
    return Hit(p.docid, score, p.contents)


WORD_RE = re.compile(r"[a-z0-9]+")
STOP = {"the", "a", "an", "of", "in", "is", "was", "by", "and", "it", "its", "on", "at", "to", "where", "who",
        "which", "what", "through"}


def words(text: str) -> set[str]:
    return {w for w in WORD_RE.findall(text.lower()) if w not in STOP}


class GoldDistractorRetriever(DemoRetriever):
    """The gold passage (rank 1 mostly) plus passages that share the most query words.

    The fallback when sr1lib.retrieval's bm25s backend is not available: not a real retriever,
    but its distractors share names and words with the query as BM25's would.
    """

    name = "gold+distractors"

    def __init__(self, passages: Sequence[Passage], rng: random.Random):
        self.passages = list(passages)
        self.by_id = {p.docid: p for p in passages}
        self.words = [words(p.contents) for p in passages]
        self.rng = rng

    def search(self, query: str, k: int, gold: Sequence[str] = ()) -> list[Hit]:
        q = words(query)
        scored = [(len(q & w), i) for i, w in enumerate(self.words) if q & w]
        self.rng.shuffle(scored)
        scored.sort(key=lambda t: -t[0])
        out = [self.passages[i] for _, i in scored if self.passages[i].docid not in gold][:k]
        if gold:
            pos = self.rng.choices(range(3), weights=(0.75, 0.15, 0.1))[0]
            out.insert(min(pos, len(out)), self.by_id[self.rng.choice(list(gold))])
        return [hit_of(p) for p in out[:k]]


class Bm25DemoRetriever(DemoRetriever):
    """BM25 (sr1lib.retrieval's bm25s backend) over a corpus file; the same ranking RL sees."""

    name = "bm25s"

    def __init__(self, retriever):
        self.retriever = retriever

    def search(self, query: str, k: int, gold: Sequence[str] = ()) -> list[Hit]:
        return self.retriever.search([query], k)[0]


@dataclass
class DemoWriter:
    """Writes episodes for the questions of one world."""

    kb: KB
    retriever: DemoRetriever
    rng: random.Random
    mix: DemoMix
    topk: int = 3

    def names_of(self, etype: str) -> list[str]:
        return [e.name for e in self.kb.entities.values() if e.type == etype]

    # ------------------------------------------------------------------ pieces
    def key(self, relation: str, e: Entity) -> tuple[str, str]:
        return relation, e.type

    def search_turn(self, think: str, query: str, gold: Sequence[str]) -> tuple[str, list[Hit]]:
        hits = self.retriever.search(query, self.topk, gold)
        text = f"<think> {think} </think>\n<search> {query} </search>" + protocol.format_observation(hits)
        return text, hits

    def mentioned(self, hits: Sequence[Hit], etype: str, exclude: str) -> list[str]:
        text = " ".join(f"{h.title} {h.text}" for h in hits)
        return [n for n in self.names_of(etype) if n != exclude and n in text]

    def guess(self, etype: str, exclude: str = "") -> str:
        return self.rng.choice([n for n in self.names_of(etype) if n != exclude] or self.names_of(etype))

    def answer(self, text: str) -> str:
        return f"<answer> {text} </answer>"

    def read_hop(self, relation: str, s: Entity, o: Entity, support: Sequence[str], think: str
                 ) -> tuple[str, list[Hit], bool]:
        """Search for one fact, once more with the other query when the passages miss it."""
        need = NEED[self.key(relation, s)].format(s=s.name)
        first, second = QUERIES[self.key(relation, s)]
        if self.rng.random() < 0.5:
            first, second = second, first
        out = ""
        for attempt, query in enumerate((first, second)):
            text, hits = self.search_turn(think if attempt == 0 else f"The passages do not say {need}. "
                                          "I will search again.", query.format(s=s.name), support)
            out += text
            if o.name in " ".join(h.text for h in hits):
                return out, hits, True
        return out, hits, False

    def research(self, q: Question) -> tuple[str, list[Hit], str | None]:
        """The good behaviour's searches: (text, last hits, what was read; None when a search missed)."""
        out, said = "", ""
        hits: list[Hit] = []
        for i, r in enumerate(q.relations):
            s, o = q.chain[i], q.chain[i + 1]
            need = NEED[self.key(r, s)].format(s=s.name)
            think = f"{said}Now I need to find {need}." if said else \
                f"I need to find {need}{' first' if len(q.relations) > 1 else ''}."
            text, hits, found = self.read_hop(r, s, o, q.support[i], think)
            out += text
            if not found:
                return out, hits, None
            said = STATE[self.key(r, s)].format(s=s.name, o=o.name) + " "
        return out, hits, said.strip()

    # ------------------------------------------------------------------ episodes
    def episode(self, q: Question) -> str:
        """Prompt + response of one demonstration for `q` (prompt format and behaviour at random)."""
        u = self.rng.random()
        if u < self.mix.no_search:
            return self.no_search(q)
        if u < self.mix.no_search + self.mix.rag:
            return self.rag(q)
        shares = self.mix.single if q.hop == "single" else self.mix.two
        behaviour = self.rng.choices(list(shares), weights=list(shares.values()))[0]
        return protocol.build_prompt(q.text) + self.behaviours()[behaviour](q)

    def behaviours(self):
        return {"good": self.good, "guess": self.guess_at_once, "poor_query": self.poor_query,
                "wrong_copy": self.wrong_copy, "shortcut": self.shortcut, "bad_format": self.bad_format,
                "verbose": self.verbose}

    def no_search(self, q: Question) -> str:
        g = self.guess(q.answer.type)
        return (protocol.build_prompt(q.text, mode="no_search") + f"<think> I think it is {g}. </think>\n"
                + self.answer(g))

    def rag(self, q: Question) -> str:
        hits = self.retriever.search(q.text, self.topk, q.support[0])
        prompt = protocol.build_prompt(q.text, mode="rag", passages=hits)
        o = q.answer.name
        if o in " ".join(h.text for h in hits):
            s, r = q.chain[-2], q.relations[-1]
            return prompt + f"<think> {STATE[self.key(r, s)].format(s=s.name, o=o)} </think>\n" + self.answer(o)
        g = self.rng.choice(self.mentioned(hits, q.answer.type, "") or [self.guess(q.answer.type)])
        return prompt + f"<think> The passages do not say it. Maybe {g}. </think>\n" + self.answer(g)

    def final(self, q: Question) -> tuple[str, str]:
        """(the good behaviour's text up to the answer, the answer it gives)."""
        text, _, said = self.research(q)
        if said is None:
            g = self.guess(q.answer.type)
            return text + f"<think> I could not find it. I guess {g}. </think>\n", g
        return text + f"<think> {said} </think>\n", q.answer.name

    def good(self, q: Question) -> str:
        text, a = self.final(q)
        return text + self.answer(a)

    def guess_at_once(self, q: Question) -> str:
        return "<think> I think I know this. </think>\n" + self.answer(self.guess(q.answer.type))

    def poor_query(self, q: Question) -> str:
        s = q.chain[0]
        other = self.guess(s.type, s.name)
        query = self.rng.choice(VAGUE_QUERIES).format(rel=REL_WORDS[q.relations[0]], type=s.type, other=other)
        need = NEED[self.key(q.relations[0], s)].format(s=s.name)
        text, hits = self.search_turn(f"I need to find {need}.", query, ())
        g = self.rng.choice(self.mentioned(hits, q.answer.type, "") or [self.guess(q.answer.type)])
        return text + f"<think> Maybe it is {g}. </think>\n" + self.answer(g)

    def wrong_copy(self, q: Question) -> str:
        text, hits, _ = self.research(q)
        g = self.rng.choice(self.mentioned(hits, q.answer.type, q.answer.name)
                            or [self.guess(q.answer.type, q.answer.name)])
        return text + f"<think> It is {g}. </think>\n" + self.answer(g)

    def shortcut(self, q: Question) -> str:
        r, s, b = q.relations[0], q.chain[0], q.chain[1]
        need = NEED[self.key(r, s)].format(s=s.name)
        text, _, _ = self.read_hop(r, s, b, q.support[0], f"I need to find {need}.")
        return text + f"<think> {STATE[self.key(r, s)].format(s=s.name, o=b.name)} </think>\n" + self.answer(b.name)

    def bad_format(self, q: Question) -> str:
        # No <answer> tags, then EOS: the rollout ends such a trajectory unfinished (reward 0).
        text, a = self.final(q)
        return text + (f"The answer is {a}." if self.rng.random() < 0.5 else a)

    def verbose(self, q: Question) -> str:
        text, a = self.final(q)
        return text + self.answer(f"The answer is {a}")
