"""Serve the trained GLoRe models over HTTP (docs/architecture.md §7): draft -> when -> where -> how -> rerank.

    ray job submit --working-dir . -- python jobs/serve.py --config configs/tiny.yaml
    python jobs/serve.py --config configs/tiny.yaml serve.port=8123   # local Ray, blocks until Ctrl-C

Checkpoints come from <run_dir>/{student,reward_models/{orm,sorm},refiners/{global,local}}.
The same app deploys declaratively with `serve deploy configs/serve.yaml`.
"""

import argparse

from glore_ray.config import load_config
from glore_ray.serving.launch import run_service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="glore config YAML (default: built-in defaults)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. serve.port=8123")
    args = parser.parse_args()
    run_service(load_config(args.config, args.overrides), blocking=True)


if __name__ == "__main__":
    main()
