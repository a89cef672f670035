"""The RL trainer (composition layer): PPO, GRPO, RLOO and REINFORCE over Search-R1 rollouts, with
retrieved-token masking, on CPU (tiny models) and CUDA with the same code.

    networks.py    policy / reference / critic, LoRA, built on one device
    forward.py     plain log-prob, entropy and value forward passes over a batch
    prefix.py      the same passes with each distinct prompt encoded once
    batched.py     TokenBatch and the micro-batch forward loop the passes and updates share
    update.py      PPO epochs x mini-batches x micro-batches, gradient clipping, NaN stop
    step.py        Trainer: one step, rollout -> log-probs -> rewards -> advantages -> updates -> metrics
    alarms.py      collapse alarms (entropy, KL, length, format failures)
    checkpoint.py  atomic checkpoints with optimizer, scheduler and RNG states
    data.py        training records and the (seed, step) -> batch order
    loop.py        train(cfg): run folder, validation, progress bar, resume

The math lives in `sr1lib.algos` (pure tensor functions); this package only composes it.
"""

from __future__ import annotations

from sr1lib.train.loop import train
from sr1lib.train.step import Trainer
from sr1lib.train.update import NonFiniteLossError

__all__ = ["train", "Trainer", "NonFiniteLossError"]
