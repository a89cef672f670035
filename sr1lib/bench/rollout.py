"""`sr1 bench rollout`: where a rollout's wall time goes, and how its memory grows.

Prints one JSON object:
- `generate_s`, `retrieve_s`, `other_s` (everything else: prompts, segments, observation
  tokenisation, context building, rewards, metrics), `overhead_fraction` = other / total
  (target <= 0.15), summed over the timed rounds after one untimed warm-up;
- `retriever_calls_per_turn` (target 1 or less: one batched call per turn that has searches, never
  one per trajectory), `retriever_calls_per_search_turn` (target exactly 1; both counts are taken
  by wrappers outside the loop) and `searches_per_retriever_call`;
- `reencode_mismatch_fraction`: the share of model segments whose decode -> encode gives other ids
  (what a decode-and-re-tokenise loop like the reference's would have trained on instead);
- `memory`: for two (or more) batch x length sizes, each in a fresh process: the peak of live
  tensor memory (torch's memory profiler) and the Python heap peak (tracemalloc: the loop's own
  data). A rollout's tensor peak is set by its largest generate call,
  whose padded size (rows x (widest prompt + new tokens), `widest_call_tokens`) depends on how many
  trajectories are still active when contexts are longest. A controlled twin removes that noise:
  one generate call of exactly batch ragged prompts of ~length tokens (+16 new), whose peak
  (`generate_call_peak_mb`) should grow like batch x length (`generate_call_bytes_per_token` flat).
  `memory_growth` compares the last size with the first.

`--policy searching` (the default) makes retrieval part of what is measured: the model in `--model`
still runs every generate call (so `generate_s` is a real model's decode time for that many tokens),
but its outputs are replaced by a scripted policy's (`SearchingPolicy`) that thinks for about
`--max-new-tokens` tokens and searches on every turn until its `--searches` budget, then answers:
3 searches in 4 turns by default. `--policy model` keeps the model's own outputs (a tiny untrained
model rarely searches, so retrieval would be left out). For the memory measurement the model's own
outputs are used; an untrained model rarely stops, so trajectories run to the response budget and
the length axis is controlled by `--max-response-tokens`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

QUESTIONS = [
    "Who wrote Hamlet?", "What is the capital of France?", "What is the longest river in the world?",
    "Who was the first person to walk on the Moon?", "What is the highest mountain on Earth?",
    "Which ocean is the largest?", "What is the capital of Japan?", "Who painted the Mona Lisa?",
    "In which year did the Berlin Wall fall?", "What is the chemical symbol for gold?",
    "Who developed the theory of relativity?", "What is the capital of Australia?",
    "Which planet is known as the red planet?", "Who wrote Pride and Prejudice?",
    "What is the largest desert in the world?", "What language is spoken in Brazil?",
]


def episode_text(title: str, text: str) -> str:
    """One protocol demonstration built from a passage: search its title, read it, answer the title."""
    from sr1lib import protocol
    from sr1lib.types import Hit

    passage = " ".join(text.split()[:40])
    return (protocol.build_prompt(f"What is {title}")
            + f"<think> I need to search for {title}. </think>\n<search> {title} </search>"
            + protocol.format_observation([Hit.from_title_text("0", 0.0, title, passage)])
            + f"<think> I found it. </think>\n<answer> {title} </answer>")


def prepare_model(corpus: str, out: str, *, steps: int = 300, seed: int = 0, threads: int = 1) -> dict[str, Any]:
    """A tiny Qwen2 that roughly follows the protocol (it searches, reads, answers), so the benchmark
    exercises retrieval: a tokenizer and ~1 M-parameter model trained for `steps` AdamW steps on
    demonstrations built from the corpus passages. Not a good model; a realistic workload."""
    import torch

    from sr1lib.fsutil import read_jsonl
    from sr1lib.models import build_tiny_model, save_model, train_tokenizer
    from sr1lib.protocol import split_contents

    torch.set_num_threads(threads)
    rows = list(read_jsonl(corpus))
    pairs = [split_contents(r["contents"]) if "contents" in r else (r["title"], r["text"]) for r in rows]
    episodes = [episode_text(t, x) for t, x in pairs]
    tok = train_tokenizer(episodes + [f"{t}\n{x}" for t, x in pairs], vocab_size=4000)
    ids = [tok.encode(e) + [tok.eos_token_id] for e in episodes]
    model = build_tiny_model(tok, seed=seed).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    t0, loss = time.perf_counter(), None
    for _ in range(steps):
        batch = [ids[i] for i in torch.randint(len(ids), (8,), generator=gen).tolist()]
        width = max(map(len, batch))
        x = torch.full((len(batch), width), tok.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        for i, b in enumerate(batch):
            x[i, : len(b)] = labels[i, : len(b)] = torch.tensor(b)
        loss = model(input_ids=x, attention_mask=(labels != -100).long(), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_model(model.eval(), tok, out)
    return {"model": out, "steps": steps, "final_loss": round(float(loss.detach()), 3) if loss is not None else None,
            "train_s": round(time.perf_counter() - t0, 1), "episodes": len(episodes)}


def register(sub) -> None:
    p = sub.add_parser("rollout", help="rollout time split (generate / retrieve / overhead) and memory growth")
    p.add_argument("--model", required=True, help="policy folder (a tiny local model is fine)")
    p.add_argument("--retriever", default=None, help="index folder or http(s):// server URL")
    p.add_argument("--prepare-model", metavar="CORPUS", default=None,
                   help="instead of benchmarking, train a tiny protocol-following model on demonstrations "
                        "built from CORPUS (JSONL passages) and save it to --model")
    p.add_argument("--prepare-steps", type=int, default=300, help="training steps for --prepare-model")
    p.add_argument("--data", default=None, help="questions file (default: 16 built-in questions)")
    p.add_argument("--n", type=int, default=16, help="questions per rollout (default 16)")
    p.add_argument("--group", type=int, default=4, help="trajectories per question (default 4)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="tokens per turn (default 64)")
    p.add_argument("--max-response-tokens", type=int, default=256, help="response budget (default 256)")
    p.add_argument("--max-turns", type=int, default=4, help="search budget (default 4)")
    p.add_argument("--policy", default="searching", choices=list(POLICIES),
                   help="searching: the model's generate calls with a scripted policy's outputs that search "
                        "on most turns (default); model: the model's own outputs")
    p.add_argument("--searches", type=int, default=3,
                   help="searching policy: searches per trajectory before it answers (default 3)")
    p.add_argument("--rounds", type=int, default=3, help="timed rollouts after one warm-up (default 3)")
    p.add_argument("--sizes", default="16x128,32x256",
                   help="two or more BATCHxLENGTH sizes for the memory measurement (default 16x128,32x256)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    p.add_argument("--out", default=None, help="also write the JSON object to this file")
    p.set_defaults(func=run)


def _records(data: str | None, n: int) -> list[Any]:
    from sr1lib.types import QARecord

    if data:
        from sr1lib.data import load_records

        base = load_records(data)
    else:
        base = [QARecord(f"bench/{i}", q, ("x",), "bench") for i, q in enumerate(QUESTIONS)]
    # Cycle through the questions with unique ids so any batch size can be measured.
    return [QARecord(f"{r.id}#{i // len(base)}", r.question, r.golden_answers, r.data_source)
            for i, r in ((i, base[i % len(base)]) for i in range(n))]


def _setup(model: str, retriever: str, device: str) -> tuple[Any, Any]:
    from sr1lib.generators import make_generator
    from sr1lib.retrieval import open_retriever

    return make_generator("hf", model_path=model, device=device), open_retriever(retriever, cache=False)


def _cfg(max_new: int, max_response: int, max_turns: int, group: int) -> Any:
    from sr1lib.config import RolloutConfig

    return RolloutConfig(max_new_tokens=max_new, max_response_tokens=max_response, max_turns=max_turns,
                         max_obs_tokens=min(256, max_response), max_prompt_tokens=4096, group_size=group)


def _reencode_mismatch(trajectories: list[Any], tok: Any) -> float:
    segs = [s for t in trajectories for s in t.segments if s.source == "model" and s.token_ids]
    bad = sum(list(tok.encode(tok.decode(list(s.token_ids), skip_special_tokens=False), add_special_tokens=False))
              != list(s.token_ids) for s in segs)
    return bad / len(segs) if segs else 0.0


class _Counting:
    """Counts, independently of the loop's own timers, the retriever's `search` calls and the
    generator calls whose output holds at least one search action."""

    def __init__(self, generator: Any, retriever: Any) -> None:
        self.generator, self.retriever = generator, retriever
        self.tokenizer, self.name = generator.tokenizer, generator.name
        self.search_calls = self.search_turns = 0

    def generate(self, prompts: Any, params: Any) -> Any:
        from sr1lib.protocol import SEARCH, parse_action

        out = self.generator.generate(prompts, params)
        self.search_turns += any(parse_action(g.text)[0] == SEARCH for g in out)
        return out

    def search(self, queries: Any, k: int) -> Any:
        self.search_calls += 1
        return self.retriever.search(queries, k)


def timing(args: Any) -> dict[str, Any]:
    from sr1lib.rollout import rollout

    model_gen, retriever = _setup(args.model, args.retriever, args.device)
    gen = POLICIES[args.policy](model_gen, args.searches)
    cfg = _cfg(args.max_new_tokens, args.max_response_tokens, args.max_turns, args.group)
    records = _records(args.data, args.n)
    rollout(records[:2], gen, retriever, cfg, group_size=1, seed=0)  # warm-up: lazy imports, first kernels
    counting = _Counting(gen, retriever)
    totals = {"generate_s": 0.0, "retrieve_s": 0.0, "other_s": 0.0, "total_s": 0.0, "retriever_calls": 0.0,
              "turns": 0.0}
    searches, model_turns, fractions, last = 0, 0, [], None
    for r in range(args.rounds):
        last = rollout(records, counting, counting, cfg, seed=r + 1, step=r)
        for k in totals:
            totals[k] += last.timings[k]
        fractions.append(last.timings["other_s"] / last.timings["total_s"])
        searches += sum(t.n_searches for t in last.trajectories)
        model_turns += sum(t.n_turns for t in last.trajectories)
    retriever.close()
    calls = counting.search_calls
    return {
        **{k: round(v, 4) for k, v in totals.items()},
        "overhead_fraction": round(totals["other_s"] / totals["total_s"], 4),
        "overhead_fraction_per_round": [round(f, 4) for f in fractions],
        "retriever_calls_per_turn": round(calls / totals["turns"], 4) if totals["turns"] else 0.0,
        "turns_with_searches": counting.search_turns,
        "retriever_calls_per_search_turn": round(calls / counting.search_turns, 4) if counting.search_turns else None,
        "searches": searches,
        "searches_per_retriever_call": round(searches / calls, 2) if calls else 0.0,
        "search_turn_fraction": round(searches / model_turns, 4) if model_turns else 0.0,
        "trajectories_per_round": len(records) * args.group,
        "reencode_mismatch_fraction": round(_reencode_mismatch(last.trajectories, gen.tokenizer), 4),
        "metrics_last_round": {k: round(v, 4) for k, v in last.metrics.items()},
    }


class SearchingPolicy:
    """The model's generate calls, with outputs from a scripted policy that searches on most turns.

    The model's call is made and its output dropped, so `generate_s` holds a real decode of about
    `max_new_tokens` tokens per row; the scripted output is what the loop appends (token-exact, as
    a model's): `<think>` words from the question filling about `max_new_tokens` tokens, then
    `<search> question, part n </search>` until `searches` searches, then `<answer>`. A row's
    searches so far are the `<information>` blocks in its prompt.
    """

    def __init__(self, model: Any, searches: int) -> None:
        from sr1lib.generators.scripted import ScriptedGenerator
        from sr1lib.rollout import OBS_OPEN

        self.model, self.searches, self.obs_open = model, searches, OBS_OPEN
        self.tokenizer, self.name = model.tokenizer, f"searching({model.name})"
        self.scripted = ScriptedGenerator(model.tokenizer, fn=self._output)
        self._budget = 64

    def update_weights(self, model: Any) -> None:  # a trainer's generator after each update
        self.model.update_weights(model)

    def generate(self, prompts: Any, params: Any) -> Any:
        self.model.generate(prompts, params)  # the cost of a real model's decode; its text is not used
        self._budget = params.max_new_tokens
        return self.scripted.generate(prompts, params)

    def _output(self, prompt: tuple[int, ...], call: int) -> str:
        text = self.tokenizer.decode(list(prompt), skip_special_tokens=True)
        done = text.count(self.obs_open)  # the instruction names the tag too, but not in this frame
        question = text[text.rfind("Question: ") + len("Question: "):].split("\n")[0].strip() or "the question"
        words = question.rstrip("?").split()
        action = (f"<search> {question} part {done + 1} </search>" if done < self.searches
                  else f"<answer> {words[-1]} </answer>")
        return self._fit(words, action)

    def _fit(self, words: list[str], action: str) -> str:
        """`<think> ... </think>` + action within the turn's token budget, thinking as long as fits."""
        n = self._budget
        while n >= 1:
            think = " ".join(words[i % len(words)] for i in range(n))
            text = f"<think> I need to find {think}. </think>\n{action}"
            if len(self.tokenizer.encode(text, add_special_tokens=False)) <= self._budget:
                return text
            n = n * 3 // 4
        return action  # a budget this small has no room to think


def _model_policy(model: Any, searches: int) -> Any:
    return model


POLICIES: dict[str, Any] = {"searching": SearchingPolicy, "model": _model_policy}


class _Widest:
    """Generator proxy noting the largest generate call in padded tokens: rows x (widest prompt +
    max_new_tokens), the quantity a batch's activation and KV-cache memory is linear in."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.tokenizer, self.name, self.widest = inner, inner.tokenizer, inner.name, 0

    def generate(self, prompts: Any, params: Any) -> Any:
        self.widest = max(self.widest, len(prompts) * (max(map(len, prompts)) + params.max_new_tokens))
        return self.inner.generate(prompts, params)


def _tensor_peak_mb(prof: Any) -> float:
    """Peak live tensor memory from a memory profile: allocations and frees in time order."""
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start)
    live = peak = 0
    for e in events:
        live += e.self_cpu_memory_usage
        peak = max(peak, live)
    return peak / 2**20


def memory_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs in a fresh process: one rollout of `batch` trajectories with a `length`-token budget.

    Two measures: the peak of live tensor memory (torch's memory profiler: exact for tensors,
    unlike RSS, which also holds allocator slack and the profiler's own records) and the Python
    heap peak (tracemalloc: the loop's own segments, ids and trajectories)."""
    import tracemalloc

    from torch.profiler import ProfilerActivity, profile

    from sr1lib.rollout import rollout

    gen, retriever = _setup(spec["model"], spec["retriever"], spec["device"])
    records = _records(spec["data"], spec["batch"])
    cfg = _cfg(min(64, spec["length"]), spec["length"], spec["max_turns"], 1)
    rollout(records[:2], gen, retriever, cfg, seed=0)  # warm-up
    widest = _Widest(gen)
    tracemalloc.start()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = rollout(records, widest, retriever, cfg, seed=1)
    heap_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    tensor_peak = _tensor_peak_mb(prof)
    tokens = sum(t.n_tokens for t in result.trajectories)
    # Controlled: one generate call of exactly `batch` ragged prompts of ~`length` tokens (+16 new).
    from sr1lib.generators import SamplingParams

    b, n = spec["batch"], spec["length"]
    prompts = [[(7 * i + j) % 200 + 50 for j in range(n - i % 3)] for i in range(b)]
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        gen.generate(prompts, SamplingParams(max_new_tokens=16, greedy=True))
    call_peak = _tensor_peak_mb(prof)
    return {"batch": b, "length": n, "tokens": tokens,
            "widest_call_tokens": widest.widest, "tensor_peak_mb": round(tensor_peak, 2),
            "tensor_bytes_per_widest_token": round(tensor_peak * 2**20 / widest.widest, 1),
            "generate_call_peak_mb": round(call_peak, 2),
            "generate_call_bytes_per_token": round(call_peak * 2**20 / (b * (n + 16)), 1),
            "heap_peak_mb": round(heap_peak, 2),
            "heap_bytes_per_token": round(heap_peak * 2**20 / tokens, 1)}


def memory(args: Any) -> list[dict[str, Any]]:
    out = []
    for size in args.sizes.split(","):
        batch, length = (int(x) for x in size.lower().split("x"))
        spec = {"model": args.model, "retriever": args.retriever, "data": args.data, "device": args.device,
                "batch": batch, "length": length, "max_turns": args.max_turns}
        code = ("import json, sys; from sr1lib.bench.rollout import memory_child; "
                "print('SR1JSON' + json.dumps(memory_child(json.loads(sys.argv[1]))))")
        r = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True)
        line = next((x for x in r.stdout.splitlines() if x.startswith("SR1JSON")), None)
        if r.returncode != 0 or line is None:
            from sr1lib.errors import Sr1Error

            raise Sr1Error(f"memory measurement for {size} failed:\n{r.stderr[-2000:]}")
        out.append(json.loads(line[len("SR1JSON"):]))
    return out


def run(args: Any) -> int:
    from sr1lib.errors import Sr1Error

    if args.prepare_model:
        print(json.dumps(prepare_model(args.prepare_model, args.model, steps=args.prepare_steps), indent=2))
        return 0
    if args.retriever is None:
        raise Sr1Error("--retriever is required (an index folder or URL), unless --prepare-model is given")
    if args.n < 1 or args.group < 1 or args.rounds < 1:
        raise Sr1Error("--n, --group and --rounds must be >= 1")
    t0 = time.perf_counter()
    if args.searches < 0:
        raise Sr1Error(f"--searches must be >= 0, got {args.searches}")
    report: dict[str, Any] = {"bench": "rollout", "policy": args.policy, "model": args.model, "retriever": args.retriever,
                              "n": args.n, "group": args.group, "max_new_tokens": args.max_new_tokens,
                              "max_response_tokens": args.max_response_tokens, "rounds": args.rounds,
                              "device": args.device, "cpu_count": os.cpu_count()}
    report.update(timing(args))
    if not args.no_memory:
        sizes = memory(args)
        report["memory"] = sizes
        if len(sizes) >= 2:
            a, b = sizes[0], sizes[-1]
            ratio = lambda k: round(b[k] / a[k], 3) if a[k] > 0 else None  # noqa: E731
            report["memory_growth"] = {
                "batch_x_length_ratio": round(b["batch"] * (b["length"] + 16) / (a["batch"] * (a["length"] + 16)), 3),
                "generate_call_peak_ratio": ratio("generate_call_peak_mb"),
                "widest_call_tokens_ratio": ratio("widest_call_tokens"), "tensor_peak_ratio": ratio("tensor_peak_mb"),
                "tokens_ratio": ratio("tokens"), "heap_peak_ratio": ratio("heap_peak_mb"),
            }
    report["bench_wall_s"] = round(time.perf_counter() - t0, 2)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        from sr1lib.fsutil import write_text_atomic

        write_text_atomic(args.out, text + "\n")
    return 0
