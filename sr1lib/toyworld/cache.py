"""Profiles (smoke, quick, full) and the cache of built worlds and base models.

    .sr1-cache/toyworld/<seed>-<world hash>/world/                 the evaluation world of `seed`
    .sr1-cache/toyworld/<seed>-<world hash>/model-<pretrain hash>/ its base model

The model folder sits under its world's folder because it depends on it: its pretraining worlds
are derived from `seed` and forbid every invented word of that world (`sr1lib.toyworld.pretrain`).
Hashes cover every config field and the generator versions, so changing a profile never reuses a
stale entry. Entries are built in a temporary sibling folder and renamed into place: a killed build
leaves a `.*.building-*` folder that nothing reads, never a half entry. The cache root is
`$SR1_CACHE` or `.sr1-cache` in the working directory (ignored by git).
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sr1lib.errors import Sr1Error
from sr1lib.toyworld.demos import DemoMix
from sr1lib.toyworld.kb import KBSize
from sr1lib.toyworld.pretrain import ModelConfig, PretrainConfig, pretrain
from sr1lib.toyworld.world import MANIFEST, WorldConfig, build_world, generate_world, read_manifest, swap_into_place


@dataclass(frozen=True)
class Profile:
    name: str
    world: WorldConfig
    pretrain: PretrainConfig
    note: str = ""


# One base model serves quick and full (they differ in RL length and evaluation size): 128 wide, 4
# layers, 4 heads. Copying names arrives as a phase change that needs the learning rate still high,
# so pretraining holds its peak lr to step 2,400 of 3,400 and decays over the last 1,000 on the
# guess-heavy mix (the base model must guess when greedy yet search when sampled: RL can only
# amplify a behaviour it samples); one head of layer 0 is planted to attend to the previous token
# (pretrain.init_previous_token_heads). How the recipe was chosen: docs/LOG.md.
BASE_MODEL = ModelConfig(hidden_size=128, num_layers=4, num_heads=4, intermediate_size=192)
GUESSING_MIX = DemoMix(  # DemoMix's default with 65% guessing and two-hop shortcuts mostly turned into good episodes
    single={"guess": 0.65, "good": 0.2333, "poor_query": 0.0388, "wrong_copy": 0.0234, "bad_format": 0.0234,
            "verbose": 0.0311},
    two={"guess": 0.65, "good": 0.2592, "shortcut": 0.0167, "poor_query": 0.0297, "wrong_copy": 0.0148,
         "bad_format": 0.0148, "verbose": 0.0148})


def _profiles() -> dict[str, Profile]:
    smoke_kb = KBSize(countries=2, cities=6, rivers=3, universities=3, people=16, companies=8)
    smoke_world = WorldConfig(kb=smoke_kb, train_kb=smoke_kb, events=4,
                              questions={"train": 24, "validation": 8, "test": 12})
    full_kb = KBSize(countries=10, cities=30, rivers=10, universities=12, people=120, companies=60)
    full_world = WorldConfig(kb=full_kb, train_kb=full_kb, events=30,
                             questions={"train": 400, "validation": 60, "test": 160})
    base_pretrain = PretrainConfig(worlds=6, world=full_world, model=BASE_MODEL, steps=3400, decay_steps=1000,
                                   batch_tokens=2048, max_len=512, lr=3e-3, drills=10000, init_std=0.06,
                                   late_mix=GUESSING_MIX, previous_token_heads=1)
    return {
        "smoke": Profile("smoke", smoke_world, PretrainConfig(
            worlds=2, world=smoke_world, tokenizer_worlds=4, tokenizer_demos=50,
            model=ModelConfig(vocab_size=600, hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128),
            steps=12, batch_tokens=4096, warmup_steps=3, threads=1, drills=20, init_std=0.06),
            "seconds; structure only, the model learns little"),
        # quick and full share the world, its test questions and the base model; full's RL is longer
        "quick": Profile("quick", full_world, base_pretrain, "the main job's profile: 24 RL steps"),
        "full": Profile("full", full_world, base_pretrain, "80 RL steps and 60 validation questions"),
    }


PROFILES = _profiles()


def get_profile(name: str | Profile) -> Profile:
    if isinstance(name, Profile):
        return name
    if name not in PROFILES:
        raise Sr1Error(f"unknown toy-world profile {name!r}; valid profiles are {list(PROFILES)}")
    return PROFILES[name]


def cache_root(root: str | Path | None = None) -> Path:
    return Path(root or os.environ.get("SR1_CACHE") or ".sr1-cache") / "toyworld"


def world_dir(profile: str | Profile, seed: int, root: str | Path | None = None) -> Path:
    p = get_profile(profile)
    return cache_root(root) / f"{seed}-{p.world.hash()}" / "world"


def model_dir(profile: str | Profile, seed: int, root: str | Path | None = None) -> Path:
    p = get_profile(profile)
    return world_dir(p, seed, root).parent / f"model-{p.pretrain.hash()}"


def ensure_world(profile: str | Profile = "quick", seed: int = 0, *, root: str | Path | None = None) -> Path:
    """The folder of the evaluation world of (`profile`, `seed`), built only when missing."""
    p = get_profile(profile)
    out = world_dir(p, seed, root)
    if not (out / MANIFEST).exists():
        build_world(out, seed, config=p.world, overwrite=True)
    return out


def eval_world_names(folder: str | Path) -> set[str]:
    """Every invented word of the world in `folder` (regenerated from its manifest, then checked)."""
    manifest = read_manifest(folder)
    config = WorldConfig.from_json(manifest["config"])
    world = generate_world(manifest["seed"], config)
    from sr1lib.fsutil import sha256_file

    corpus = Path(folder) / "corpus.jsonl"
    if sha256_file(corpus) != manifest["files"]["corpus.jsonl"]["sha256"]:
        raise Sr1Error(f"{corpus}: does not match {Path(folder) / MANIFEST} (edited by hand?); rebuild the world")
    # A world built with forbidden words (a pretraining world) would regenerate differently.
    if manifest["config_hash"] != config.hash():
        raise Sr1Error(f"{folder}: config hash {manifest['config_hash']} != {config.hash()} (built by other code)")
    return world.name_words


def build_model(out: str | Path, world: str | Path, cfg: PretrainConfig, *, progress: bool = True,
                overwrite: bool = False) -> dict[str, Any]:
    """Pretrain the base model for the evaluation world in `world` into `out`, atomically."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise Sr1Error(f"{out} already exists and is not empty; choose another --out or pass --overwrite")
    seed = read_manifest(world)["seed"]
    forbidden = eval_world_names(world)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        report = pretrain(seed, cfg, tmp, forbidden=forbidden, progress=progress)
        swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def ensure_base_model(profile: str | Profile = "quick", seed: int = 0, *, root: str | Path | None = None,
                      progress: bool = True) -> Path:
    """The folder of the base model of (`profile`, `seed`), pretrained only when missing."""
    p = get_profile(profile)
    out = model_dir(p, seed, root)
    if not (out / "pretrain.json").exists():
        build_model(out, ensure_world(p, seed, root=root), p.pretrain, progress=progress, overwrite=True)
    return out


def with_overrides(profile: str | Profile, **pretrain_fields: Any) -> Profile:
    """A copy of `profile` with some PretrainConfig fields replaced (for experiments and tests)."""
    p = get_profile(profile)
    return replace(p, name=f"{p.name}*", pretrain=replace(p.pretrain, **pretrain_fields))
