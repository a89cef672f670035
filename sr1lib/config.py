"""Run configuration: frozen dataclasses nested by concern, with a JSON/YAML round trip.

`RunConfig` holds one section per concern (data, retrieval, rollout, algorithm, train). Every field
documents itself through `metadata["help"]`; validation happens on construction and names the bad
field by its dotted path (`rollout.max_turns`) with what would be valid. Defaults follow the
Search-R1 paper (arXiv 2503.09516, Sec. 4 and App. B) where a CPU-sized equivalent makes sense;
the toy world overrides the sizes.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sr1lib import choices
from sr1lib.errors import Sr1Error

T = TypeVar("T")


class ConfigError(Sr1Error, ValueError):
    """A configuration value is missing, unknown or out of range; the message names the field."""


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


def _check(cond: bool, name: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{name}: {msg}")


def _choice(value: str, name: str, choices: tuple[str, ...]) -> None:
    _check(value in choices, name, f"{value!r} is not one of {list(choices)}")


@dataclass(frozen=True)
class DataConfig:
    train: list[str] = _f(["toy"], "training data: files (parquet/jsonl/json) or dataset names")
    val: list[str] = _f([], "validation data, evaluated greedily every train.val_every steps")
    val_limit: int = _f(64, "at most this many validation questions per evaluation (0 = all)")
    shuffle: bool = _f(True, "shuffle training questions each epoch (seeded)")

    def __post_init__(self) -> None:
        _check(self.val_limit >= 0, "data.val_limit", f"must be >= 0, got {self.val_limit}")


@dataclass(frozen=True)
class RetrievalConfig:
    backend: str = _f("bm25s", "retriever backend: pyserini | bm25s | dense | http")
    index: str = _f("", "index folder (pyserini/bm25s/dense) or server URL (http)")
    topk: int = _f(3, "passages appended per search (Search-R1 uses 3)")
    cache: bool = _f(True, "cache results of repeated queries in memory")
    timeout_s: float = _f(30.0, "per-request timeout of the http backend")
    threads: int = _f(2, "search threads for batch search")

    def __post_init__(self) -> None:
        _choice(self.backend, "retrieval.backend", choices.RETRIEVER_BACKENDS)
        _check(self.topk >= 1, "retrieval.topk", f"must be >= 1, got {self.topk}")
        _check(self.timeout_s > 0, "retrieval.timeout_s", f"must be > 0, got {self.timeout_s}")


@dataclass(frozen=True)
class RolloutConfig:
    generator: str = _f("hf", "generator backend: hf | vllm")
    max_turns: int = _f(4, "maximum searches per trajectory; a final turn then runs with search disabled")
    max_new_tokens: int = _f(128, "maximum new tokens per generation turn")
    max_response_tokens: int = _f(512, "maximum response tokens (model + retrieved + feedback)")
    max_obs_tokens: int = _f(256, "token budget of one <information> block")
    max_prompt_tokens: int = _f(1024, "context budget of the generator's input; truncation never drops the question")
    temperature: float = _f(1.0, "sampling temperature (ignored when greedy)")
    top_p: float = _f(1.0, "nucleus sampling threshold")
    greedy: bool = _f(False, "greedy decoding (evaluation)")
    group_size: int = _f(5, "trajectories per question (GRPO's group; Search-R1 uses 5)")
    on_retriever_error: str = _f("observe", "observe: show an error observation and count it | raise")
    prompt_mode: str = _f("search", "prompt protocol: search (Search-R1's template and loop) | no_search "
                                    "(answer directly) | rag (the question's top-k passages in the prompt, no "
                                    "search; Search-R1's RAG baseline)")

    def __post_init__(self) -> None:
        _choice(self.generator, "rollout.generator", choices.ROLLOUT_GENERATORS)
        _choice(self.on_retriever_error, "rollout.on_retriever_error", choices.ON_RETRIEVER_ERROR)
        _choice(self.prompt_mode, "rollout.prompt_mode", choices.PROMPT_MODES)
        for name in ("max_turns",):
            _check(getattr(self, name) >= 0, f"rollout.{name}", f"must be >= 0, got {getattr(self, name)}")
        for name in ("max_new_tokens", "max_response_tokens", "max_obs_tokens", "max_prompt_tokens", "group_size"):
            _check(getattr(self, name) >= 1, f"rollout.{name}", f"must be >= 1, got {getattr(self, name)}")
        _check(self.temperature > 0, "rollout.temperature", f"must be > 0, got {self.temperature}")
        _check(0 < self.top_p <= 1, "rollout.top_p", f"must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class AlgorithmConfig:
    name: str = _f("grpo", "algorithm: ppo (GAE over a critic, arXiv 1707.06347) | grpo (group-relative, arXiv "
                           "2402.03300) | reinforce (batch-mean baseline) | rloo (leave-one-out, arXiv 2402.14740)")
    reward: str = _f("em", "reward function: em (Search-R1's outcome reward, arXiv 2503.09516) | format "
                           "(Search-R1 v0.3's format-aware reward)")
    kl_coef: float = _f(0.001, "KL coefficient (Search-R1: 0.001)")
    kl_type: str = _f("low_var_kl", "KL estimator: kl (k1) | abs | mse (k2) | low_var_kl (k3, Schulman's "
                                    "'Approximating KL divergence'; GRPO's loss term)")
    kl_in_reward: bool = _f(False, "KL penalty in the per-token reward (PPO in Search-R1, as InstructGPT) "
                                   "instead of a loss term (GRPO, arXiv 2402.03300)")
    clip_ratio: float = _f(0.2, "PPO clip epsilon (arXiv 1707.06347 eq. 7)")
    dual_clip: float = _f(0.0, "dual-clip constant c > 1 bounding the loss of negative advantages (arXiv "
                               "1912.09729; 0 = off)")
    gamma: float = _f(1.0, "discount for GAE (arXiv 1506.02438)")
    lam: float = _f(1.0, "GAE lambda (arXiv 1506.02438)")
    norm_adv_by_std: bool = _f(True, "GRPO: divide group-centred rewards by the group std (false: Dr. GRPO's "
                                     "unscaled advantages, arXiv 2503.20783)")
    loss_agg_mode: str = _f("token-mean", "token-mean (DAPO, arXiv 2503.14476) | seq-mean-token-sum | "
                                          "seq-mean-token-mean (GRPO's per-sequence mean, arXiv 2402.03300)")
    mask_retrieved: bool = _f(True, "mask retrieved tokens out of the policy loss (Search-R1's retrieved-token "
                                    "masking; false is its ablation)")
    critic_sees_retrieved: bool = _f(True, "critic and GAE see retrieved tokens (as Search-R1's trainer does)")
    entropy_coef: float = _f(0.0, "entropy bonus coefficient")
    value_clip: float = _f(0.5, "clip range of the value loss (verl's cliprange_value)")

    def __post_init__(self) -> None:
        _choice(self.name, "algorithm.name", tuple(choices.ALGORITHMS))
        _choice(self.reward, "algorithm.reward", choices.REWARDS)
        _choice(self.kl_type, "algorithm.kl_type", choices.KL_ESTIMATORS)
        _choice(self.loss_agg_mode, "algorithm.loss_agg_mode", choices.LOSS_AGG_MODES)
        _check(self.kl_coef >= 0, "algorithm.kl_coef", f"must be >= 0, got {self.kl_coef}")
        _check(self.clip_ratio > 0, "algorithm.clip_ratio", f"must be > 0, got {self.clip_ratio}")
        _check(self.dual_clip == 0 or self.dual_clip > 1, "algorithm.dual_clip", f"must be 0 or > 1, got {self.dual_clip}")
        _check(0 <= self.gamma <= 1, "algorithm.gamma", f"must be in [0, 1], got {self.gamma}")
        _check(0 <= self.lam <= 1, "algorithm.lam", f"must be in [0, 1], got {self.lam}")


@dataclass(frozen=True)
class TrainConfig:
    model: str = _f("", "policy model folder (HF save_pretrained layout)")
    steps: int = _f(10, "training steps (one rollout batch each)")
    batch_size: int = _f(8, "questions per step (x rollout.group_size trajectories)")
    mini_batch_size: int = _f(0, "trajectories per optimizer step (0 = the whole batch)")
    micro_batch_size: int = _f(0, "trajectories per forward pass, gradients accumulated (0 = mini batch)")
    ppo_epochs: int = _f(1, "passes over each rollout batch")
    lr: float = _f(1e-6, "policy learning rate (Search-R1: 1e-6)")
    critic_lr: float = _f(1e-5, "critic learning rate (Search-R1: 1e-5)")
    warmup_steps: int = _f(0, "linear learning-rate warm-up steps")
    grad_clip: float = _f(1.0, "max gradient norm (0 = off)")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    device: str = _f("auto", "auto | cpu | cuda | cuda:N")
    bf16: bool = _f(True, "bf16 autocast on CUDA (ignored on CPU)")
    gradient_checkpointing: bool = _f(False, "trade compute for memory")
    prefix_sharing: bool = _f(True, "encode each distinct prompt once per training forward pass (exact; "
                                    "off with gradient_checkpointing)")
    lora_r: int = _f(0, "LoRA rank via peft (0 = full fine-tuning)")
    ref_offload: bool = _f(False, "keep the reference model on CPU")
    save_every: int = _f(0, "checkpoint every N steps (0 = only at the end)")
    val_every: int = _f(0, "greedy validation before the first step (logged as step 0) and every N steps (0 = off)")
    log_rollouts: int = _f(4, "trajectories per step written to rollouts.jsonl")

    def __post_init__(self) -> None:
        _check(self.steps >= 0, "train.steps", f"must be >= 0, got {self.steps}")
        _check(self.batch_size >= 1, "train.batch_size", f"must be >= 1, got {self.batch_size}")
        _check(self.ppo_epochs >= 1, "train.ppo_epochs", f"must be >= 1, got {self.ppo_epochs}")
        _check(self.lr > 0, "train.lr", f"must be > 0, got {self.lr}")
        _check(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
               "train.device", f"{self.device!r} is not auto, cpu, cuda or cuda:N")
        for name in ("mini_batch_size", "micro_batch_size", "warmup_steps", "save_every", "val_every", "lora_r"):
            _check(getattr(self, name) >= 0, f"train.{name}", f"must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class RunConfig:
    name: str = _f("run", "run name (the run folder's name under out_dir)")
    out_dir: str = _f("runs", "parent folder of run folders")
    seed: int = _f(0, "seed for data order, sampling and initialisation")
    data: DataConfig = field(default_factory=DataConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


# ---------------------------------------------------------------- (de)serialisation


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Convert a JSON/YAML/CLI value to the annotated type, or raise naming the field."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        _check(isinstance(value, dict), name, f"expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, prefix=name)
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        _check(isinstance(value, (list, tuple)), name, f"expected a list, got {value!r}")
        return [_coerce(v, item_tp, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(value, args[0], name)
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        _check(isinstance(value, bool), name, f"expected true or false, got {value!r}")
        return value
    if tp in (int, float):
        # bool is an int subclass: `steps: true` must not silently become 1
        _check(not isinstance(value, bool), name, f"expected {tp.__name__}, got {value!r}")
        try:
            out = tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected {tp.__name__}, got {value!r}") from None
        _check(tp is float or isinstance(value, str) or out == value, name, f"expected int, got {value!r}")
        return out
    if tp is str:
        _check(isinstance(value, (str, int, float)), name, f"expected a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type[T], d: dict[str, Any], prefix: str = "") -> T:
    """Build `cls` from a mapping; unknown keys are errors that list the valid ones."""
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs = {}
    for key, value in d.items():
        name = f"{prefix}.{key}" if prefix else key
        if key not in valid:
            raise ConfigError(f"{name}: unknown field; valid fields are {valid}")
        kwargs[key] = _coerce(value, hints[key], name)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(str(e)) from None


def save(cfg: Any, path: str | Path) -> None:
    path = Path(path)
    data = to_dict(cfg)
    if path.suffix in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(data, sort_keys=False)
    else:
        text = json.dumps(data, indent=2) + "\n"
    from sr1lib.fsutil import write_text_atomic

    write_text_atomic(path, text)


def load(path: str | Path, cls: type[T] = RunConfig) -> T:  # type: ignore[assignment]
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as e:  # noqa: BLE001 - report any parse error with the file name
        raise ConfigError(f"{path}: cannot parse ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def with_overrides(cfg: T, assignments: list[str]) -> T:
    """Apply `section.field=value` strings (the CLI's `--set`), validating each."""
    data = to_dict(cfg)
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. rollout.max_turns=3")
        key, value = item.split("=", 1)
        node = data
        *parents, leaf = key.strip().split(".")
        for p in parents:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"--set {key}: {p!r} is not a config section; sections are "
                                  f"{[k for k, v in data.items() if isinstance(v, dict)]}")
            node = node[p]
        if leaf not in node:
            raise ConfigError(f"--set {key}: unknown field; valid fields are {list(node)}")
        parsed: Any = value
        if value.startswith(("[", "{")):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as e:
                raise ConfigError(f"--set {key}: {value!r} is not valid JSON ({e.msg}); write lists as "
                                  f'["a", "b"] or a,b') from None
        node[leaf] = parsed
    return from_dict(type(cfg), data)


def describe(cls: type) -> list[tuple[str, Any, str]]:
    """(dotted name, default, help) for every field, for docs and `--help`."""
    out = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            out += [(f"{f.name}.{n}", d, h) for n, d, h in describe(type(default))]
        else:
            out.append((f.name, default, f.metadata.get("help", "")))
    return out
