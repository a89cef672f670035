"""The networks of one run: policy (optionally LoRA), frozen reference and critic, built on one device.
Their forward passes are `sr1lib.train.forward` (plain), `.prefix` (prompt shared) and `.batched`.

Choices (documented because results depend on them):
- the critic is `AutoModelForTokenClassification` with one label on the policy's architecture,
  initialised from the policy checkpoint (verl does the same), with its classifier dropout forced
  to 0 (transformers defaults it to 0.1, which would make values noisy in training mode); the
  value of target token t is read from the hidden state at t-1, the state before emitting it;
- with LoRA there is no separate reference model: the reference pass runs the policy with its
  adapters disabled; with `ref_offload` the reference lives on the CPU and visits the device for
  its forward pass only;
- every dropout is switched off (policy, reference, critic): the PPO ratio and the values must come
  from one deterministic function in the no-grad passes and in training (verl does the same);
- bf16 autocast applies on CUDA only (weights and optimizer state stay fp32); on CPU everything is
  fp32 and weights are re-allocated aligned after loading (`realign`), which is what makes `--resume`
  bit-for-bit there.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from sr1lib.errors import Sr1Error

Tensor = torch.Tensor


@dataclass
class Models:
    """Everything a training step runs on. `ref` is None when no KL is needed or LoRA provides it."""

    policy: Any
    tokenizer: Any
    ref: Any | None
    critic: Any | None
    device: torch.device
    bf16: bool
    ref_offload: bool
    lora: bool

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device, self.bf16)

    @contextlib.contextmanager
    def reference(self) -> Iterator[Any]:
        """The reference policy, ready on the device for one forward pass."""
        if self.lora:
            with self.policy.disable_adapter():
                yield self.policy
            return
        if self.ref is None:
            raise RuntimeError("no reference model was built (algorithm.kl_coef is 0)")
        if self.ref_offload and self.device.type != "cpu":
            self.ref.to(self.device)
            try:
                yield self.ref
            finally:
                self.ref.to("cpu")
        else:
            yield self.ref


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports (e.g. 'score.weight newly initialised' for the critic)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()


def load_critic(path: str | Path, *, seed: int) -> Any:
    """A one-label token-classification model (value head) from a policy or critic folder.

    The head is created with a seeded RNG that does not touch the global one, so a run's critic
    initialisation depends on `seed` alone.
    """
    from transformers import AutoConfig, AutoModelForTokenClassification

    with _quiet_transformers(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            config = AutoConfig.from_pretrained(str(path), num_labels=1)
            config.classifier_dropout = 0.0  # saved with the critic, so a reload keeps it
            critic = AutoModelForTokenClassification.from_pretrained(str(path), config=config, dtype=torch.float32)
        except (OSError, ValueError) as e:
            raise Sr1Error(f"{path}: cannot build a critic (value head) on this model ({e})") from None
    return no_dropout(critic)


def realign(model: Any) -> Any:
    """Give every parameter and buffer a fresh allocation (64-byte aligned by torch's allocator).

    Weights read from safetensors can sit at arbitrary offsets, and CPU kernels pick different
    vectorised code paths for differently aligned memory: a model reloaded from a checkpoint then
    computes results that differ in the last bit from the live one, which breaks bit-for-bit resume
    (measured on the prefix-shared pass). Costs one copy of the weights, one tensor at a time.
    """
    for t in list(model.parameters()) + list(model.buffers()):
        t.data = t.data.clone()
    return model


def no_dropout(model: Any) -> Any:
    """Switch off every dropout (modules and attention): the PPO ratio and the values must come from
    the same deterministic function in training and in the no-grad passes (verl does the same)."""
    for mod in model.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    for key in ("attention_dropout", "hidden_dropout", "classifier_dropout"):
        if hasattr(model.config, key):
            setattr(model.config, key, 0.0)
    return model


def apply_lora(model: Any, r: int) -> Any:
    """Wrap `model` with LoRA adapters of rank r on every linear layer (alpha = 2r, no dropout)."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules="all-linear", bias="none",
                     task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def checkpoint_activations(model: Any) -> None:
    """Activation (gradient) checkpointing, non-reentrant, under transformers' newer or older name."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def build_models(base_path: str | Path, *, device: torch.device, seed: int, need_ref: bool, need_critic: bool,
                 lora_r: int = 0, bf16: bool = True, ref_offload: bool = False,
                 gradient_checkpointing: bool = False, policy_path: str | Path | None = None,
                 critic_path: str | Path | None = None, adapter_path: str | Path | None = None) -> Models:
    """Policy, reference and critic on `device`.

    base_path: the run's starting model (`train.model`): the reference, and the critic's backbone.
    policy_path / critic_path / adapter_path: a checkpoint's weights when resuming (full policy
    weights, or a LoRA adapter applied to the base).
    """
    from sr1lib.models import load_policy

    def load(path: str | Path) -> tuple[Any, Any]:
        with _quiet_transformers():
            model, tok = load_policy(path, device="cpu", dtype="float32")
        return no_dropout(model), tok

    policy, tokenizer = load(policy_path if policy_path and not lora_r else base_path)
    ref = None
    if need_ref and lora_r == 0:
        ref = load(base_path)[0] if policy_path else copy.deepcopy(policy)
        ref = ref.eval().requires_grad_(False).to("cpu" if ref_offload else device)
    if lora_r > 0:
        if adapter_path is not None:
            from peft import PeftModel

            policy = PeftModel.from_pretrained(policy, str(adapter_path), is_trainable=True)
        else:
            policy = apply_lora(policy, lora_r)
    if gradient_checkpointing:
        checkpoint_activations(policy)
        if lora_r > 0:  # inputs must require grad for checkpointed blocks to reach the adapters
            policy.enable_input_require_grads()
    critic = None
    if need_critic:
        critic = load_critic(critic_path or base_path, seed=seed + 1)
        if gradient_checkpointing:
            checkpoint_activations(critic)
        critic.to(device).eval()
    policy = realign(policy.to(device).eval())
    ref = None if ref is None else realign(ref)
    critic = None if critic is None else realign(critic)
    return Models(policy=policy, tokenizer=tokenizer, ref=ref, critic=critic, device=device,
                  bf16=bf16, ref_offload=ref_offload, lora=lora_r > 0)
