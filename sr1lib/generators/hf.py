"""The `hf` generator: transformers `generate`, batched with left padding, on CPU or GPU.

Prompts of different lengths are padded on the left so every row's last real token sits at the
same position and sampling starts together. The sampling distribution is set entirely here: a
fresh `GenerationConfig` with neutral values (so a checkpoint's own sampling defaults, e.g. Qwen
instruct's top_k=20 or repetition penalty, never leak in), then our temperature and top-p warpers
and, last, a recorder that keeps the log-softmax of the processed scores for one step at a time and
reads off the log-prob of the token sampled from it (O(B x V) memory instead of `output_scores`'s
O(B x T x V)).

Where a row ends is decided by `cut_at_stop` on the sampled ids, never by looking for pad ids
(a model may sample the pad token). `generate`'s own `stop_strings` criterion only ends the batch
early; rows it finished are trimmed by the same rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from sr1lib.errors import Sr1Error
from sr1lib.generators import Generation, Generator, SamplingParams, eos_token_ids, finish_generation


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both [B, widest prompt]: every row's last token in the last column."""
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        input_ids[row, width - len(p):] = torch.tensor(list(p), dtype=torch.long)
        attention_mask[row, width - len(p):] = 1
    return input_ids, attention_mask


class _LogprobRecorder:
    """A logits processor (placed after the warpers) recording log p(sampled token) per step.

    Step t's processor call sees the token sampled at step t-1 as `input_ids[:, -1]`, so it reads
    that token's log-prob from the distribution kept at step t-1; `finish` reads the last one.
    """

    def __init__(self) -> None:
        self.prev: torch.Tensor | None = None  # (B, V) log-probs of the previous step
        self.out: list[torch.Tensor] = []  # T_new tensors of shape (B,)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.prev is not None:
            self.out.append(self.prev.gather(1, input_ids[:, -1:]).squeeze(1))
        self.prev = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        """(B, T_new) log-probs of the generated tokens."""
        if self.prev is not None:
            self.out.append(self.prev.gather(1, sequences[:, -1:]).squeeze(1))
            self.prev = None
        return torch.stack(self.out, dim=1) if self.out else torch.zeros(sequences.shape[0], 0)


class HFGenerator(Generator):
    """transformers `generate` over a loaded policy.

    Pass `model` and `tokenizer` (the trainer's live objects: `update_weights` is then a no-op) or
    `model_path` (loaded with `sr1lib.models.load_policy`). `batch_size` caps the rows per
    `generate` call (None = all prompts at once).
    """

    name = "hf"

    def __init__(self, model: Any = None, tokenizer: Any = None, *, model_path: str | Path | None = None,
                 device: str = "auto", dtype: Any = None, batch_size: int | None = None) -> None:
        if model is None:
            if model_path is None:
                raise Sr1Error("hf generator: pass model= and tokenizer=, or model_path=")
            from sr1lib.models import load_policy

            model, tokenizer = load_policy(model_path, device=device, dtype=dtype)
        elif tokenizer is None:
            raise Sr1Error("hf generator: a model needs its tokenizer (tokenizer=)")
        if batch_size is not None and batch_size < 1:
            raise Sr1Error(f"hf generator: batch_size must be >= 1, got {batch_size}")
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self._eos = eos_token_ids(tokenizer, model)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else min(self._eos))

    @property
    def eos_ids(self) -> frozenset[int]:
        return self._eos

    def update_weights(self, model: Any) -> None:
        # Sharing the trainer's module means sampling already sees the new weights; a different
        # object (e.g. a trainer-side copy) is swapped in.
        if model is not self.model:
            self.model = model

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]:
        if any(len(p) == 0 for p in prompts):
            raise Sr1Error("hf generator: every prompt needs at least one token")
        step = self.batch_size or max(len(prompts), 1)
        out: list[Generation] = []
        for i in range(0, len(prompts), step):
            out += self._generate_chunk(prompts[i:i + step], params, chunk=i // step)
        return out

    @torch.no_grad()
    def _generate_chunk(self, prompts: Sequence[Sequence[int]], params: SamplingParams,
                        chunk: int) -> list[Generation]:
        from transformers import GenerationConfig, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

        device = next(self.model.parameters()).device
        input_ids, attention_mask = left_pad(prompts, self.pad_id)
        width = input_ids.shape[1]

        # Unset fields would be filled from the checkpoint's and transformers' defaults (top_k=50),
        # so every field that shapes the distribution is set explicitly.
        sampling = {} if params.greedy else dict(temperature=1.0, top_k=0, top_p=1.0)
        gen_cfg = GenerationConfig(
            do_sample=not params.greedy, max_new_tokens=params.max_new_tokens, num_beams=1,
            repetition_penalty=1.0, no_repeat_ngram_size=0, stop_strings=list(params.stop_strings) or None,
            pad_token_id=self.pad_id, eos_token_id=sorted(self._eos), bos_token_id=None, **sampling,
        )
        recorder = _LogprobRecorder()
        procs = LogitsProcessorList()
        if not params.greedy:
            if params.temperature != 1.0:
                procs.append(TemperatureLogitsWarper(params.temperature))
            if params.top_p < 1.0:
                procs.append(TopPLogitsWarper(params.top_p))
        procs.append(recorder)

        fork_devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices, enabled=params.seed is not None):
            if params.seed is not None:
                torch.manual_seed(params.seed + 1_000_003 * chunk)
            sequences = self.model.generate(
                input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                generation_config=gen_cfg, logits_processor=procs, tokenizer=self.tokenizer,
            )
        sequences = sequences if isinstance(sequences, torch.Tensor) else sequences.sequences
        new = sequences[:, width:].cpu()
        logprobs = recorder.finish(sequences).cpu()
        if logprobs.shape != new.shape:
            raise RuntimeError(f"hf generator: recorded {tuple(logprobs.shape)} log-probs for "
                               f"{tuple(new.shape)} tokens; transformers changed its processor calls")
        out = []
        for ids, lps in zip(new.tolist(), logprobs.tolist()):
            gen = finish_generation(ids, lps, self.tokenizer, params, self._eos)
            if gen.finish == "length" and len(ids) < params.max_new_tokens:
                # generate() ended every row early, yet this row matched neither EOS nor a stop
                # string under our rule: its tail would be pad fillers, not samples.
                raise RuntimeError(f"hf generator: a row ended after {len(ids)} tokens without a stop "
                                   f"string or EOS under sr1's rule: {gen.text!r}")
            out.append(gen)
        return out
