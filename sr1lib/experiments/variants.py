"""Variant names, one per concept: an algorithm name (`sr1lib.choices.ALGORITHMS`), with `-nomask` for
the masking ablation (retrieved tokens trained on), as run folders, figures, tables and
`sr1 toyworld run` all name them (`ppo`, `ppo-nomask`)."""

from __future__ import annotations

from sr1lib import choices
from sr1lib.errors import Sr1Error

ALGORITHMS = tuple(choices.ALGORITHMS)


def parse_variant(variant: str) -> tuple[str, bool]:
    """`grpo` -> ("grpo", True); `ppo-nomask` -> ("ppo", False) (retrieved tokens trained on)."""
    name, _, suffix = variant.partition("-")
    if name not in ALGORITHMS or suffix not in ("", "nomask"):
        raise Sr1Error(f"variant {variant!r}: expected an algorithm {list(ALGORITHMS)} optionally followed by "
                       "'-nomask' (e.g. 'ppo', 'ppo-nomask')")
    return name, suffix != "nomask"


def variant_slug(algorithm: str, mask_retrieved: bool) -> str:
    return algorithm if mask_retrieved else f"{algorithm}-nomask"


def default_run_name(prefix: str, algorithm: str, mask_retrieved: bool, seed: int) -> str:
    return f"{prefix}-{variant_slug(algorithm, mask_retrieved)}-s{seed}"


def name_prefix(profile: str, model: str = "", data: str = "") -> str:
    """Run names start with the profile on the toy world's own data and model, else `custom`."""
    return "custom" if (model or data) else profile
