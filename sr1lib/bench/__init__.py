"""Benchmarks behind `sr1 bench`: each module times sr1lib beside its reference (raw pyserini,
TRL, plain `generate`, ...) in one invocation and prints one JSON object; results go to
docs/BENCHMARKS.md. Modules named `_*` hold a benchmark's helpers and add no command."""
