"""The toy world's base model: pretraining text that never mentions the evaluation world,
demonstrations in the exact protocol format (and imperfect), a deterministic smoke pretrain that
loads and generates, and a cache that builds once."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest
import torch

from sr1lib import protocol
from sr1lib.rewards import em_reward, is_valid_format
from sr1lib.toyworld import build_model, build_world, ensure_base_model, ensure_world, get_profile
from sr1lib.toyworld.demos import DemoMix, DemoWriter, GoldDistractorRetriever
from sr1lib.toyworld.names import name_words
from sr1lib.toyworld.pretrain import pretrain_documents, pretrain_seeds, tokenizer_texts
from sr1lib.toyworld.world import generate_world

SMOKE = get_profile("smoke")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tw") / "world"
    build_world(out, 11, config=SMOKE.world)
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory, world) -> Path:
    out = tmp_path_factory.mktemp("tw") / "model"
    build_model(out, world, SMOKE.pretrain, progress=False)
    return out


def invented_words(world: Path) -> set[str]:
    """Invented words of a world read from its files: entity names and event titles."""
    kb = json.loads((world / "kb.json").read_text())
    out = {w for e in kb["entities"] for w in name_words(e["name"])}
    for line in (world / "corpus.jsonl").read_text().splitlines():
        title = protocol.split_contents(json.loads(line)["contents"])[0]
        out.add(title.split()[0])
    return out


def test_pretraining_text_never_mentions_the_evaluation_world(world):
    from sr1lib.toyworld.cache import eval_world_names

    words = invented_words(world)
    assert len(words) > 50
    forbidden = eval_world_names(world)
    assert {w.lower() for w in words} <= forbidden  # the forbidden set is kept lower-case
    docs = pretrain_documents(11, SMOKE.pretrain, forbidden)
    texts = docs + tokenizer_texts(11, SMOKE.pretrain, forbidden, docs)
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, words))) + r")\b")
    leaks = [m.group(0) for t in texts for m in [pattern.search(t)] if m]
    assert not leaks, f"evaluation-world names in pretraining text: {leaks[:10]}"
    # the check can fail: the evaluation world's own text is caught by it
    assert all(pattern.search(p.contents) for p in generate_world(11, SMOKE.world).passages)
    assert 11 not in pretrain_seeds(11, 50)


def demo_writer(seed: int = 3, mix: DemoMix | None = None):
    w = generate_world(seed, SMOKE.world)
    rng = random.Random(seed)
    return w, DemoWriter(w.kb, GoldDistractorRetriever(w.passages, rng), rng, mix or DemoMix())


def test_good_demonstrations_are_exact_protocol_episodes():
    w, writer = demo_writer()
    for q in w.candidates:
        response = writer.good(q)
        assert is_valid_format(response), response
        assert em_reward(response, [q.answer.name]) == 1.0
        # every observation is exactly what the rollout appends after a search
        for block in re.findall(r"\n\n<information>.*?</information>\n\n", response, re.DOTALL):
            assert re.fullmatch(r"\n\n<information>(Doc \d\(Title: [^)]*\) [^\n]*\n?)+</information>\n\n", block)
        queries = re.findall(r"<search> (.*?) </search>", response)
        assert len(queries) == len(q.relations)  # the gold retriever always shows the fact
        assert q.chain[0].name in queries[0]
        if q.hop == "two":
            assert q.chain[1].name in queries[1]  # the second query uses the first answer


def test_demonstrations_are_imperfect_on_purpose():
    w, writer = demo_writer(4)
    ems, searches, valid, formats = [], [], [], Counter()
    for q in w.candidates * 2:
        text = writer.episode(q)
        for mode, marker in (("rag", "using the passages"), ("no_search", "first, then give")):
            if marker in text.split("Question:")[0]:
                formats[mode] += 1
                break
        else:
            formats["search"] += 1
            response = text[len(protocol.build_prompt(q.text)):]
            ems.append(em_reward(response, [q.answer.name]))
            searches.append(response.count("<search>"))
            valid.append(is_valid_format(response))
    n = len(ems)
    assert 0.15 < sum(ems) / n < 0.5  # often right, more often wrong
    assert 0.45 < searches.count(0) / n < 0.7  # mostly answers without searching (an overconfident base)
    assert 0 < valid.count(False) / n < 0.1  # now and then breaks the format
    assert formats["rag"] > 0 and formats["no_search"] > 0


def test_smoke_pretrain_loads_generates_and_is_deterministic(model, world, tmp_path):
    import torch

    from sr1lib.models import load_policy

    report = json.loads((model / "pretrain.json").read_text())
    assert report["config_hash"] == SMOKE.pretrain.hash() and report["parameters"] > 10_000
    assert report["loss_last10"] < report["loss_first"]  # it learned something
    policy, tok = load_policy(model, device="cpu")
    prompt = protocol.build_prompt("Who founded Zarvok Industries?")
    assert "</search>" in tok.convert_ids_to_tokens(tok("<search> x </search>")["input_ids"])
    enc = tok([prompt], return_tensors="pt")
    out = policy.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > enc["input_ids"].shape[1]
    again = build_model(tmp_path / "again", world, SMOKE.pretrain, progress=False)
    assert again["losses_every_10"] == report["losses_every_10"]
    p2, _ = load_policy(tmp_path / "again", device="cpu")
    for (n1, a), (n2, b) in zip(policy.state_dict().items(), p2.state_dict().items()):
        assert n1 == n2 and torch.equal(a, b), n1


def test_cache_builds_once_and_never_leaves_half_entries(tmp_path, monkeypatch):
    import sr1lib.toyworld.cache as cache

    w = ensure_world("smoke", 5, root=tmp_path)
    assert (w / "world.json").exists() and w.parent.name.startswith("5-")

    def no_rebuild(*a, **k):
        raise AssertionError("rebuilt a cached entry")

    def interrupted(seed, cfg, out, **k):
        Path(out).mkdir(parents=True)
        (Path(out) / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "pretrain", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_base_model("smoke", 5, root=tmp_path, progress=False)
    assert sorted(p.name for p in w.parent.iterdir()) == ["world"]  # nothing half-built left
    monkeypatch.undo()
    m = ensure_base_model("smoke", 5, root=tmp_path, progress=False)
    assert (m / "pretrain.json").exists() and (m / "config.json").exists()
    monkeypatch.setattr(cache, "build_world", no_rebuild)
    monkeypatch.setattr(cache, "pretrain", no_rebuild)
    assert ensure_world("smoke", 5, root=tmp_path) == w
    assert ensure_base_model("smoke", 5, root=tmp_path) == m


def test_cli_pretrain_prints_the_behaviour(world, tmp_path, capsys):
    from sr1lib.cli import main

    out = tmp_path / "m"
    assert main(["toyworld", "pretrain", "--world", str(world), "--out", str(out), "--profile", "smoke",
                 "--probe", "4"]) == 0
    text = capsys.readouterr().out
    assert "parameters" in text and '"greedy"' in text and '"search"' in text and "name_exact" in text
    assert main(["toyworld", "pretrain", "--world", str(world), "--profile", "smoke"]) == 2
    assert "--world needs --out" in capsys.readouterr().err


def test_drills_ask_what_they_stated_and_avoid_forbidden_words():
    from sr1lib.toyworld.drills import LOOKUPS, drills

    forbidden = {"tuvo", "zarvok"}
    docs = drills(40, random.Random(0), forbidden)
    assert len(docs) == 40
    text = "\n".join(docs)
    assert not ({w.lower() for w in re.findall(r"[A-Za-z]+", text)} & forbidden)
    repeats = [d for doc in docs for d in doc.split("\n") if d.startswith("Names:")]
    lookups = [d for doc in docs for d in doc.split("\n") if not d.startswith("Names:")]
    assert repeats and lookups
    for d in repeats:  # the second list copies the first
        first, again = re.fullmatch(r"Names: (.*)\. Again: (.*)\.", d).groups()
        assert first == again
    for d in lookups:  # every answer is the object stated for that subject
        sentences = re.split(r"(?<=[.?]) ", d)
        fact, question = next((f, q) for f, q, _ in LOOKUPS
                              if any(re.fullmatch(_pattern(q), x) for x in sentences))
        matches = [re.fullmatch(_pattern(fact), x) for x in sentences]
        facts = {m["s"]: m["o"] for m in matches if m}
        asked = [(re.fullmatch(_pattern(question), x)["s"], a[:-1])
                 for x, a in zip(sentences, sentences[1:]) if re.fullmatch(_pattern(question), x)]
        assert asked and all(facts[s] == o for s, o in asked), d


def _pattern(template: str) -> str:
    return re.escape(template).replace(r"\{s\}", "(?P<s>.+)").replace(r"\{o\}", "(?P<o>.+)")


def test_copy_spans_are_the_names_the_policy_writes():
    from sr1lib.toyworld.probe import written_name_spans

    response = ("<think> I need to find where Pesel Tudur was born. </think>\n<search> Pesel Tudur born </search>"
                "\n\n<information>Doc 1(Title: Pesel Tudur) Pesel Tudur was born in Gillil.</information>\n\n"
                "<think> Pesel Tudur was born in Gillil. </think>\n<answer> Gillil </answer>")
    spans = written_name_spans(response, ["Pesel", "Pesel Tudur", "Gillil"])
    written = sorted((response[a:b], is_answer) for a, b, is_answer in spans)
    # three copies of the subject and two of the answer; none inside <information>, the longer
    # name wins over its own first word, and only the name in <answer> counts as the answer
    assert written == [("Gillil", False), ("Gillil", True)] + [("Pesel Tudur", False)] * 3


def test_copy_accuracy_scores_a_model_that_copies_perfectly_above_one_that_does_not(world, model):
    """A 'model' whose next-token prediction is the true next token scores 1.0; the smoke model less."""
    import torch

    from sr1lib.models import load_policy
    from sr1lib.toyworld.probe import copy_accuracy

    policy, tok = load_policy(model, device="cpu")

    class Oracle(torch.nn.Module):  # logits peak at the next true token: teacher forcing made perfect
        device = torch.device("cpu")

        def forward(self, input_ids):
            ids = input_ids[0]
            logits = torch.zeros(1, len(ids), len(tok))
            logits[0, torch.arange(len(ids) - 1), ids[1:]] = 1.0
            return type("Out", (), {"logits": logits})()

    perfect = copy_accuracy(Oracle(), tok, world, n=6)
    real = copy_accuracy(policy, tok, world, n=6)
    assert perfect["names"] == real["names"] > 6
    assert perfect["token_acc"] == perfect["name_exact"] == perfect["answer_exact"] == 1.0
    assert real["name_exact"] < 1.0


def test_lr_schedule_holds_the_peak_then_decays_to_the_floor():
    from dataclasses import replace

    from sr1lib.toyworld.pretrain import PretrainConfig, lr_at

    cosine = PretrainConfig(steps=100, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    wsd = replace(cosine, decay_steps=30)
    assert lr_at(0, wsd) == pytest.approx(1e-4) and lr_at(9, wsd) == pytest.approx(1e-3)
    # held at the peak through step 69, where plain cosine has already decayed
    assert [lr_at(s, wsd) for s in (10, 40, 69)] == pytest.approx([1e-3] * 3)
    assert lr_at(40, cosine) < 0.8e-3
    decay = [lr_at(s, wsd) for s in range(70, 101)]
    assert all(a > b for a, b in zip(decay, decay[1:]))
    assert decay[-1] == pytest.approx(1e-4) and lr_at(100, cosine) == pytest.approx(1e-4)


def test_later_fields_change_the_hash_only_when_used():
    import hashlib
    from dataclasses import replace

    from sr1lib.protocol import TEMPLATE_VERSION
    from sr1lib.toyworld.pretrain import PRETRAIN_VERSION

    cfg = get_profile("smoke").pretrain
    fields = cfg.to_json()
    del fields["decay_steps"], fields["late_mix"], fields["previous_token_heads"], fields["init_jitter"]
    before_the_fields = hashlib.sha256(json.dumps({"version": PRETRAIN_VERSION, "template": TEMPLATE_VERSION, **fields},
                                                  sort_keys=True)
                                       .encode()).hexdigest()[:12]
    assert cfg.decay_steps == 0 and cfg.late_mix is None and cfg.previous_token_heads == 0 and cfg.init_jitter == 0
    assert cfg.hash() == before_the_fields  # existing caches stay valid
    assert replace(cfg, decay_steps=8).hash() != cfg.hash()
    late = replace(cfg, decay_steps=8, late_mix=DemoMix(single={"guess": 1.0}))
    assert late.hash() not in (cfg.hash(), replace(cfg, decay_steps=8).hash())
    assert replace(cfg, previous_token_heads=1).hash() != cfg.hash()


def test_the_late_mix_documents_replace_the_others_for_the_decay_steps(model):
    from dataclasses import replace

    import torch

    from sr1lib.models import build_tiny_model, load_tokenizer
    from sr1lib.toyworld.pretrain import train_lm

    cfg = replace(SMOKE.pretrain, steps=10, decay_steps=4, batch_tokens=64, warmup_steps=1)
    tok = load_tokenizer(model)
    lm = build_tiny_model(tok, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, seed=0)
    early = [[5 + i % 3] * (6 + i) for i in range(12)]  # token ids 5-7
    late = [[20 + i % 3] * (6 + i) for i in range(12)]  # token ids 20-22
    seen: list[set[int]] = []
    lm.register_forward_pre_hook(lambda m, args, kw: seen.append(set(kw["input_ids"].flatten().tolist())),
                                 with_kwargs=True)
    with torch.random.fork_rng(devices=[]):
        losses = train_lm(lm, early, tok.pad_token_id, cfg, seed=0, progress=False, late_seqs=late)
    pad = {tok.pad_token_id}
    assert len(losses) == len(seen) == 10
    assert all(ids - pad <= {5, 6, 7} for ids in seen[:6])
    assert all(ids - pad <= {20, 21, 22} for ids in seen[6:])
    assert set().union(*seen[6:]) - pad == {20, 21, 22}


def test_a_late_mix_pretrain_uses_its_own_documents(world, model, tmp_path):
    from dataclasses import replace

    from sr1lib.errors import Sr1Error
    from sr1lib.models import load_policy
    from sr1lib.toyworld.cache import GUESSING_MIX

    late = replace(SMOKE.pretrain, decay_steps=4, late_mix=GUESSING_MIX)
    report = build_model(tmp_path / "late", world, late, progress=False)
    assert report["late_documents"] > 0 and report["config_hash"] == late.hash() != SMOKE.pretrain.hash()
    a, _ = load_policy(model, device="cpu")
    b, _ = load_policy(tmp_path / "late", device="cpu")
    same = [bool((pa == pb).all()) for pa, pb in zip(a.parameters(), b.parameters())]
    assert not all(same)  # the last 4 steps saw other demonstrations
    with pytest.raises(Sr1Error, match="decay_steps"):
        replace(SMOKE.pretrain, late_mix=GUESSING_MIX)
    with pytest.raises(Sr1Error, match="decay_steps"):
        replace(SMOKE.pretrain, decay_steps=SMOKE.pretrain.steps + 1)


def test_planted_heads_attend_to_the_previous_token_and_the_others_do_not(model):
    import torch

    from sr1lib.models import build_tiny_model, load_tokenizer
    from sr1lib.toyworld.pretrain import init_previous_token_heads, reinit

    tok = load_tokenizer(model)
    lm = build_tiny_model(tok, hidden_size=128, num_layers=2, num_heads=4, intermediate_size=192, seed=3)
    reinit(lm, 0.06, seed=3)  # the profiles' init: content alone gives clearly non-uniform attention
    init_previous_token_heads(lm, heads=2)
    lm.set_attn_implementation("eager")  # the only implementation that returns attention weights
    ids = torch.randint(0, len(tok), (4, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        att = lm(input_ids=ids, output_attentions=True).attentions[0]  # layer 0: [B, heads, T, T]
    on_previous = (att[:, :, 1:].argmax(-1) == torch.arange(48)[1:] - 1).float().mean(dim=(0, 2))
    assert on_previous[:2].min() > 0.7, on_previous  # the planted heads (content adds noise)
    assert on_previous[2:].max() < 0.2, on_previous  # the random ones
    # only the biases were set: layer 1 and the weights are untouched, so the model is a plain Qwen2
    again = build_tiny_model(tok, hidden_size=128, num_layers=2, num_heads=4, intermediate_size=192, seed=3)
    reinit(again, 0.06, seed=3)
    changed = {n for n, p in lm.named_parameters() if not torch.equal(p, dict(again.named_parameters())[n])}
    assert changed == {"model.layers.0.self_attn.q_proj.bias", "model.layers.0.self_attn.k_proj.bias"}


def test_pretrain_plants_the_configured_heads_in_the_saved_model(world, tmp_path):
    # the config field reaches the checkpoint: with no training steps, head 0 of layer 0 keeps the
    # planted biases and head 1 its initial zeros
    from dataclasses import replace

    from sr1lib.models import load_policy
    from sr1lib.toyworld.pretrain import PREVIOUS_TOKEN_BIAS

    build_model(tmp_path / "m", world, replace(SMOKE.pretrain, steps=0, previous_token_heads=1), progress=False)
    policy, _ = load_policy(tmp_path / "m", device="cpu")
    att = policy.model.layers[0].self_attn
    q, k = att.q_proj.bias.detach().view(-1, att.head_dim), att.k_proj.bias.detach().view(-1, att.head_dim)
    half = att.head_dim // 2
    assert (q[0, :half] == PREVIOUS_TOKEN_BIAS).all() and (q[0, half:] == 0).all()
    assert (k[0] != 0).any() and not q[1].any() and not k[1].any()


def test_previous_token_heads_must_fit_the_model():
    from dataclasses import replace

    from sr1lib.errors import Sr1Error

    cfg = SMOKE.pretrain
    with pytest.raises(Sr1Error, match="previous_token_heads: 3 is not in \\[0, model.num_heads=2\\]"):
        replace(cfg, previous_token_heads=3)


def test_init_jitter_moves_only_the_low_bits_and_only_when_set():
    from dataclasses import replace

    from sr1lib.models import build_tiny_model, train_tokenizer
    from sr1lib.toyworld.pretrain import INIT_JITTER_SCALE, jitter

    tok = train_tokenizer(["a small text for a tiny tokenizer"] * 4, vocab_size=300)
    a, b = build_tiny_model(tok, seed=0), build_tiny_model(tok, seed=0)
    jitter(b, 3)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        if pa.ndim == 2:
            rel = ((pb - pa).abs() / pa.abs().clamp(min=1e-30)).max()
            assert 0 < rel < 10 * INIT_JITTER_SCALE, name
        else:
            assert torch.equal(pa, pb), name  # norms and biases untouched
    assert replace(SMOKE.pretrain, init_jitter=0).hash() == SMOKE.pretrain.hash()
    assert replace(SMOKE.pretrain, init_jitter=1).hash() != SMOKE.pretrain.hash()
