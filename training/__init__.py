"""Training one run of the suite: an adapted (or fully trained) model on one task.

    from training import TrainConfig, train
    summary = train(TrainConfig.from_yaml("run.yaml"), "results/.../seed0")   # or a plain dict

CLI: `python -m training --config run.yaml --out DIR` (see `--help` for every config key),
and `python -m training.base_model --config config/base_model/tiny.yaml --out DIR` for the
tiny profile's pretrained base model. Files of a run and resuming: training/README.md.
"""
from .config import TrainConfig

__all__ = ["TrainConfig", "train"]


def __getattr__(name):
    # The trainer pulls in torch and transformers (seconds); `--help` and config checks need neither.
    if name == "train":
        from .trainer import train
        return train
    raise AttributeError(f"module 'training' has no attribute {name!r}")
