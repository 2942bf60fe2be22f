"""TaskSpec: what the rest of the suite needs to know about one task."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tasks.records import validate_splits
from tasks.sampling import SPLITS

KINDS = ("causal_lm", "classification", "regression")


@dataclass(frozen=True)
class TaskSpec:
    """One task. `generate_tiny` and `load_paper` return {"train", "validation", "test": [record]}
    and validate their output against `required_columns` before returning it."""
    name: str
    family: str
    kind: str
    num_labels: int | None            # classes for classification, 1 for regression, None for causal_lm
    metrics: list[str]
    lm_eval_tasks: list[str]          # lm-eval built-in tasks the paper profile evaluates with
    required_columns: tuple[str, ...]
    default_sizes: dict[str, int]
    generator: Callable[[int, dict], dict] = field(repr=False)
    paper_loader: Callable[..., dict] = field(repr=False)
    description: str = ""
    paper_source: str = ""            # the papers' data, in words (README and `--list`)
    # A task whose train split is, record for record, another task's (the continual-pretraining
    # probes): one run trained on that task can be evaluated on this one too.
    shares_train_with: str | None = None
    # Scored on its own training items (memorization: recall of the trained pairs). Its validation
    # and test splits are samples of train by design, so whatever selects on validation has seen
    # the reported items; the tables say so (analysis: selection_overlap).
    scored_on_train: bool = False
    # What a metric scores with the output's format right and no knowledge (memorization: any
    # well-formed uuid4): the headline marks a best value at or below it as not cleared.
    floors: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")

    def resolve_sizes(self, sizes: dict | None) -> dict[str, int]:
        """Defaults overridden by `sizes`; every split needs a positive integer size."""
        sizes = dict(sizes or {})
        unknown = set(sizes) - set(SPLITS)
        if unknown:
            raise ValueError(f"task {self.name!r}: unknown split(s) {sorted(unknown)} in sizes; use {list(SPLITS)}")
        merged = {**self.default_sizes, **sizes}
        for split, n in merged.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"task {self.name!r}: size of {split!r} must be a positive integer, got {n!r}")
        return merged

    def generate_tiny(self, seed: int, sizes: dict | None = None) -> dict[str, list[dict]]:
        splits = self.generator(seed, self.resolve_sizes(sizes))
        validate_splits(splits, self, source=f"{self.name} tiny generator")
        return splits

    def load_paper(self, **cfg) -> dict[str, list[dict]]:
        splits = self.paper_loader(**cfg)
        validate_splits(splits, self, source=f"{self.name} paper loader")
        return splits
