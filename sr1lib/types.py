"""The vocabulary every layer speaks: questions, retrieved hits, segments and trajectories.

A trajectory is a list of segments, each tagged with where its tokens came from (the prompt, the
model's own samples, retrieved passages, or feedback text the environment wrote). The loss mask is
derived from those tags and nothing else: it is data recorded when tokens are appended, never
reconstructed from decoded text or sentinel ids (the reference implementation does the latter).

Everything here is a frozen dataclass with a JSON round trip, so rollouts written to
`rollouts.jsonl` can be read back by notebooks and the inspector without the code that made them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Where a segment's tokens came from. Only `model` tokens are ever trained on.
PROMPT, MODEL, RETRIEVED, FEEDBACK = "prompt", "model", "retrieved", "feedback"
SOURCES = (PROMPT, MODEL, RETRIEVED, FEEDBACK)


def unquote_title(line: str) -> str:
    """A wiki-18 title line without its white space and one pair of enclosing quotes."""
    title = line.strip()
    return title[1:-1] if len(title) >= 2 and title[0] == title[-1] == '"' else title


def split_contents(contents: str) -> tuple[str, str]:
    """Title and text of a wiki-18 `contents` field (`"Title"\\ntext`); the quotes are removed."""
    title, _, text = contents.partition("\n")
    return unquote_title(title), text.strip()


@dataclass(frozen=True)
class Hit:
    """One retrieved passage. `score` is the backend's own score (BM25 or inner product).

    `contents` is the corpus's own string, byte for byte (wiki-18: a title line, a newline, the
    text; 121 of 1,000 sampled rows store the title without quotes). Servers return it and the
    model is shown it as stored, so nothing rebuilds it from a title and a text.
    """

    docid: str
    score: float
    contents: str

    @classmethod
    def from_title_text(cls, docid: str, score: float, title: str, text: str) -> "Hit":
        """A hit for a `{"title", "text"}` source, stored in the wiki-18 layout `"Title"\\ntext`."""
        return cls(docid, score, f'"{title}"\n{text}')

    @property
    def title(self) -> str:
        """The title without its quotes (for display and matching, not for the model)."""
        return split_contents(self.contents)[0]

    @property
    def text(self) -> str:
        return split_contents(self.contents)[1]


@dataclass(frozen=True)
class QARecord:
    """One question with its gold answers, from any dataset format.

    `id` is globally unique (`data_source/local_id`), so GRPO groups keyed by it never mix rows
    of different datasets (a bug of the reference implementation).
    """

    id: str
    question: str
    golden_answers: tuple[str, ...]
    data_source: str
    split: str = ""
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["golden_answers"] = list(self.golden_answers)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "QARecord":
        return cls(
            id=str(d["id"]),
            question=str(d["question"]),
            golden_answers=tuple(str(a) for a in d["golden_answers"]),
            data_source=str(d["data_source"]),
            split=str(d.get("split", "")),
            extra=dict(d.get("extra") or {}),
        )


@dataclass(frozen=True)
class Segment:
    """A run of tokens from one source, as appended to the context.

    `logprobs` holds the sampling log-probability of each token for `model` segments (None for
    the others, and for model segments whose generator did not report them).
    """

    source: str
    token_ids: tuple[int, ...]
    text: str
    logprobs: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"Segment.source must be one of {SOURCES}, got {self.source!r}")
        if self.logprobs is not None and len(self.logprobs) != len(self.token_ids):
            raise ValueError(
                f"Segment.logprobs has {len(self.logprobs)} values for {len(self.token_ids)} tokens"
            )

    @property
    def trained(self) -> bool:
        """True when the policy loss may see these tokens (the model sampled them)."""
        return self.source == MODEL

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"source": self.source, "token_ids": list(self.token_ids), "text": self.text}
        if self.logprobs is not None:
            d["logprobs"] = [round(x, 6) for x in self.logprobs]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Segment":
        lp = d.get("logprobs")
        return cls(d["source"], tuple(d["token_ids"]), d["text"], tuple(lp) if lp is not None else None)


@dataclass(frozen=True)
class Trajectory:
    """One episode: the segments in order plus the facts measured about it.

    `group_id` is shared by the trajectories sampled for the same question in the same step
    (GRPO's group) and is globally unique across datasets and steps.
    """

    uid: str
    group_id: str
    record: QARecord
    segments: tuple[Segment, ...]
    reward: float = 0.0
    answer: str | None = None
    n_searches: int = 0
    n_valid_searches: int = 0
    n_invalid: int = 0
    n_turns: int = 0
    finished: bool = False
    truncated: bool = False
    retrieval_s: float = 0.0
    queries: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def prompt_ids(self) -> tuple[int, ...]:
        return tuple(t for s in self.segments if s.source == PROMPT for t in s.token_ids)

    @property
    def response_segments(self) -> tuple[Segment, ...]:
        """Everything after the prompt: model samples, retrieved passages and feedback."""
        return tuple(s for s in self.segments if s.source != PROMPT)

    @property
    def response_text(self) -> str:
        """The response only: rewards score this, never the prompt (which holds example tags)."""
        return "".join(s.text for s in self.response_segments)

    @property
    def model_token_ids(self) -> tuple[int, ...]:
        return tuple(t for s in self.segments if s.source == MODEL for t in s.token_ids)

    @property
    def n_model_tokens(self) -> int:
        return sum(len(s.token_ids) for s in self.segments if s.source == MODEL)

    @property
    def n_response_tokens(self) -> int:
        return sum(len(s.token_ids) for s in self.response_segments)

    @property
    def n_tokens(self) -> int:
        return sum(len(s.token_ids) for s in self.segments)

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["record"] = self.record.to_json()
        d["segments"] = [s.to_json() for s in self.segments]
        d["queries"] = list(self.queries)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Trajectory":
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        kw["record"] = QARecord.from_json(d["record"])
        kw["segments"] = tuple(Segment.from_json(s) for s in d["segments"])
        kw["queries"] = tuple(d.get("queries", ()))
        kw["extra"] = dict(d.get("extra") or {})
        return cls(**kw)
