"""`toy`, `toy:PROFILE` and `toy:PROFILE:SEED`: how configs and commands name a cached toy world.

Training data, evaluation datasets and the default retrieval index all accept these names, so the
whole loop runs with no data files at all; the default is profile quick, seed 0.
"""

from __future__ import annotations

from pathlib import Path

from sr1lib.errors import Sr1Error

TOY = "toy"
DEFAULT_PROFILE = "quick"


def is_toy(spec: str) -> bool:
    return spec == TOY or spec.startswith(TOY + ":")


def parse_toy(spec: str) -> tuple[str, int]:
    """(profile, seed) of a toy-world name; a clear error for anything else."""
    from sr1lib.toyworld.cache import PROFILES

    parts = spec.split(":")
    profile = parts[1] if len(parts) > 1 and parts[1] else DEFAULT_PROFILE
    try:
        seed = int(parts[2]) if len(parts) > 2 else 0
    except ValueError:
        raise Sr1Error(f"{spec!r}: the toy world's seed must be an integer (toy:PROFILE:SEED)") from None
    if parts[0] != TOY or len(parts) > 3 or profile not in PROFILES:
        raise Sr1Error(f"{spec!r}: write toy, toy:PROFILE or toy:PROFILE:SEED with PROFILE one of {list(PROFILES)}")
    return profile, seed


def toy_world(spec: str) -> Path:
    """The folder of the world `spec` names, built on first use (seconds)."""
    from sr1lib.toyworld.cache import ensure_world

    return Path(ensure_world(*parse_toy(spec)))
