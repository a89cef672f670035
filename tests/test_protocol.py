"""Table tests for sr1lib.protocol: prompts, chat templates, action parsing, passage formatting."""

from __future__ import annotations

import doctest

import pytest

from sr1lib import protocol
from sr1lib.protocol import (
    ANSWER, INVALID, SEARCH, TEMPLATE_VERSION, build_prompt, format_error_observation, format_observation, format_passage,
    format_passages, normalize_question, parse_action, split_contents,
)
from sr1lib.types import Hit

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tiny_tokenizer(chat_template: str | None):
    """A real fast tokenizer built in memory (word-level vocabulary), optionally with a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({"[UNK]": 0, "question": 1}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]")
    tok.chat_template = chat_template
    return tok


PARSE = [
    ("<search> capital of France </search>", (SEARCH, "capital of France")),         # plain search, stripped
    ("<think>hm</think>\n<answer>Paris</answer>", (ANSWER, "Paris")),               # answer after thinking
    ("<answer>Paris</answer><search>x</search>", (ANSWER, "Paris")),                # first complete pair wins
    ("<search>x</search><answer>Paris</answer>", (SEARCH, "x")),                    # ... in either order
    ("<search>unclosed", (INVALID, "")),                                            # unclosed tag
    ("<search>q</answer>", (INVALID, "")),                                          # mismatched closing tag
    ("<search>q</answer><answer>y</answer>", (ANSWER, "y")),                        # a broken pair is skipped
    ("<search><answer>x</answer></search>", (SEARCH, "<answer>x</answer>")),         # nested: outer pair starts first
    ("<search>a<search>b</search>", (SEARCH, "a<search>b")),                         # repeated opening tag
    ("<think>just thinking</think>", (INVALID, "")),                                # no action at all
    ("", (INVALID, "")),                                                            # empty generation
    ("<search>multi\nline</search>", (SEARCH, "multi\nline")),                       # content spans lines
    ("<search></search>", (SEARCH, "")),                                            # empty query is still a search
    ("<Search>x</Search>", (INVALID, "")),                                          # tags are case-sensitive
]


@pytest.mark.parametrize("text,expected", PARSE)
def test_parse_action(text, expected):
    assert parse_action(text) == expected


QUESTIONS = [
    ("who wrote hamlet", "who wrote hamlet?"),        # '?' appended
    ("who wrote hamlet?", "who wrote hamlet?"),       # not doubled
    ("  who wrote hamlet \n", "who wrote hamlet?"),   # white space stripped first
    ("", ""),                                         # empty stays empty
]


@pytest.mark.parametrize("question,expected", QUESTIONS)
def test_normalize_question(question, expected):
    assert normalize_question(question) == expected


def test_search_prompt_holds_instruction_and_question():
    text = build_prompt("who wrote hamlet")
    assert text.endswith("Question: who wrote hamlet?\n")
    for tag in ("<think>", "<search>", "</search>", "<information>", "<answer>"):
        assert tag in text


def test_no_search_prompt_does_not_offer_search():
    text = build_prompt("who wrote hamlet", mode="no_search")
    assert "<search>" not in text and "who wrote hamlet?" in text


def test_rag_prompt_puts_passages_before_the_question():
    hits = [Hit.from_title_text("d1", 1.0, "Hamlet", "A tragedy by Shakespeare."), Hit.from_title_text("d2", 0.5, "Globe", "A theatre.")]
    text = build_prompt("who wrote hamlet", mode="rag", passages=hits)
    assert 'Doc 1(Title: "Hamlet") A tragedy by Shakespeare.\nDoc 2(Title: "Globe") A theatre.' in text
    assert text.index("Doc 2") < text.index("Question: who wrote hamlet?")


def test_unknown_mode_lists_valid_modes():
    with pytest.raises(ValueError, match=r"'cot'.*\['search', 'no_search', 'rag'\]"):
        build_prompt("q", mode="cot")


def test_chat_template_applied_when_tokenizer_has_one():
    tok = tiny_tokenizer(CHAT_TEMPLATE)
    text = build_prompt("who wrote hamlet", tok)
    plain = build_prompt("who wrote hamlet")
    assert text == f"<|user|>{plain}<|end|><|assistant|>"


def test_no_chat_template_gives_plain_text():
    tok = tiny_tokenizer(None)
    assert build_prompt("who wrote hamlet", tok) == build_prompt("who wrote hamlet")


SPLIT = [
    ('"Hamlet"\nA tragedy.', ("Hamlet", "A tragedy.")),                  # wiki-18 layout
    ('"Hamlet (play)"\nA tragedy.\nIn five acts.', ("Hamlet (play)", "A tragedy.\nIn five acts.")),  # text keeps its newlines
    ('Hamlet\nA tragedy.', ("Hamlet", "A tragedy.")),                    # unquoted title
    ('"Hamlet"', ("Hamlet", "")),                                        # title only
    ('"\nA tragedy.', ('"', "A tragedy.")),                              # a lone quote is not a quoted title
    ('"Say "hi""\ntext', ('Say "hi"', "text")),                          # inner quotes survive
]


@pytest.mark.parametrize("contents,expected", SPLIT)
def test_split_contents(contents, expected):
    assert split_contents(contents) == expected


def test_split_contents_inverts_hit_contents():
    hit = Hit.from_title_text("d", 0.0, "Paris", "The capital of France.")
    assert split_contents(hit.contents) == (hit.title, hit.text) == ("Paris", "The capital of France.")


def search_r1_lines(contents: list[str]) -> str:
    """Search-R1's `_passages2string` restated from its definition (generation.py): the first line
    of each stored `contents` is the title as it stands, every later line is the text."""
    out = ""
    for i, c in enumerate(contents):
        lines = c.split("\n")
        out += "Doc " + str(i + 1) + "(Title: " + lines[0] + ") " + "\n".join(lines[1:]) + "\n"
    return out


STORED = [
    '"Paul Walker"\nalso had a large car collection of about 30 cars',  # wiki-18, quoted title
    "Evan Morris\nEvan L. Morris was a lobbyist.",                     # a title stored without quotes
    '"Hamlet (play)"\nA tragedy.\nIn five acts.\n',                   # later lines and a final newline
    '  "Spaced" \n  text with margins  ',                              # white space is kept
    "no title line",                                                    # no newline at all
    '"Say "hi""\n',                                                    # inner quotes, empty text
]


def test_passage_lines_are_search_r1_bytes():
    hits = [Hit(str(i), 1.0, c) for i, c in enumerate(STORED)]
    assert format_passages(hits) == search_r1_lines(STORED)
    assert format_passage(1, hits[0]) == 'Doc 1(Title: "Paul Walker") also had a large car collection of about 30 cars'
    # Search-R1 writes the block as f"\n\n<information>{lines.strip()}</information>\n\n"
    assert format_observation(hits) == f"\n\n<information>{search_r1_lines(STORED).strip()}</information>\n\n"
    assert format_observation([]) == "\n\n<information></information>\n\n"


def test_the_template_version_names_search_r1_passage_bytes():
    assert TEMPLATE_VERSION == "sr1-v2"  # v1 showed titles without their quotes


def test_error_observation_is_an_information_block():
    obs = format_error_observation("timeout after 30 s")
    assert obs.strip().startswith("<information>") and obs.strip().endswith("</information>")
    assert "timeout after 30 s" in obs


def test_invalid_feedback_teaches_both_actions_on_its_own_lines():
    # The feedback quotes both tag pairs, and starts/ends with a newline so it never fuses with the
    # model's text; generation stops after either closing tag.
    fb = protocol.INVALID_ACTION_FEEDBACK
    assert "<search> and </search>" in fb and "<answer> and </answer>" in fb
    assert fb.startswith("\n") and fb.endswith("\n")
    assert set(protocol.STOP_STRINGS) == {"</search>", "</answer>"}


def test_docstring_examples():
    result = doctest.testmod(protocol, verbose=False)
    assert result.attempted >= 3 and result.failed == 0
