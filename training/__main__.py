"""`python -m training --config run.yaml --out DIR`: train one run (resumes an interrupted one)."""
from __future__ import annotations

import argparse
import inspect
import sys

from .config import InputError, TrainConfig


def config_keys_help() -> str:
    """The config dataclass's own lines (key: type = default  # meaning): one source of truth."""
    source = inspect.getsource(TrainConfig)
    body = source.split("def __post_init__")[0].splitlines()
    return "\n".join(line[4:] for line in body[2:] if line.strip() and not line.strip().startswith('"'))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train one run: a base model with an adapter method (or full fine-tuning) on one task. "
                    "Writes DIR/{adapter/, train_log.jsonl, train_summary.json, provenance.json}; "
                    "rerunning the same command resumes from DIR/checkpoints/. Exit status: 0 ok, "
                    "1 diverged or failed, 2 bad config or data (the message names the file, the key "
                    "or line, and the fix) or DIR in use by another run; a collapsed run (loss no better "
                    "than uniform output) exits 0 with a warning and `collapsed: true` in the summary.",
        epilog="run config keys (YAML mapping; unknown keys are an error; a method's config/methods/<method>.yaml "
               "`train:` section supplies defaults the run config overrides):\n\n" + config_keys_help())
    parser.add_argument("--config", required=True, help="the run's YAML config")
    parser.add_argument("--out", required=True, help="the run's output directory")
    parser.add_argument("--fresh", action="store_true", help="ignore existing checkpoints and start over")
    parser.add_argument("--stop-after-steps", type=int, default=None,
                        help="end this invocation after N steps without final files, like a kill (tests resuming)")
    args = parser.parse_args(argv)

    try:
        cfg = TrainConfig.from_yaml(args.config)
        check_shapes(cfg, args.config)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from .files import RunDirBusy
    from .trainer import train  # heavy imports only once the config is known to be good

    if not sys.stderr.isatty():  # logs of batch jobs: no transformers progress bars either
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    try:
        summary = train(cfg, args.out, stop_after_steps=args.stop_after_steps, fresh=args.fresh)
    except (InputError, RunDirBusy) as error:  # bad data, or --out in use: the message says what to do
        print(f"error: {error}", file=sys.stderr)
        return 2
    import torch.distributed as dist
    if dist.is_initialized():  # started by accelerate launch / torchrun
        dist.destroy_process_group()
    if summary["status"] in ("diverged", "failed"):
        print(f"{summary['status']}: {summary['reason']}", file=sys.stderr)
        return 1
    if summary.get("collapsed"):
        print(f"warning: collapsed: {summary['collapse']}", file=sys.stderr)
    return 0


def check_shapes(cfg: TrainConfig, path: str) -> None:
    """The method on the base model's layer shapes (its config.json; none on disk: checked at start)."""
    from .preflight import base_config, check_fits

    config = base_config(cfg.model, cfg.model_config if cfg.model_init == "random" else None)
    if config is not None:
        try:
            check_fits(cfg, config)
        except InputError as error:
            raise InputError(f"{path}: {error}") from None


if __name__ == "__main__":
    sys.exit(main())
