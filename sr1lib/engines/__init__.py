"""Scale-out through existing RL engines: the same protocol bytes, masks and rewards, run by them.

- `verl`         sr1's search environment as a verl 0.9.1 agent loop (imports verl lazily);
- `verl_export`  an sr1 run config -> the parquet, agent-loop YAML, reward hook and launch script
                 of a verl run (`sr1 export verl`);
- `verl_import`  a verl run's metrics log and rollout dumps -> an sr1 run folder (`sr1 import verl`).
"""
