"""What a study is asked to do (``StudySettings``) and its budgets (``quick``, ``full``).

A budget fixes everything that trades time for precision: epochs and early stopping, the
importance samples of log p(x), how many samples sample quality is measured on, the one-class
models of anomaly detection. Every neural model of a study gets the same budget.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..checks import is_whole


@dataclass(frozen=True)
class Budget:
    name: str
    description: str
    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    evaluation: dict = field(default_factory=dict)  # EvaluationSettings overrides
    # Small data sets get more epochs, up to this many optimizer steps (and at most 10x the
    # epochs): 60 epochs of 142 wine rows are 180 steps, which leaves every model under-trained.
    min_steps: int = 0
    # Whether those runs also wait as many more epochs before stopping early (False once the
    # patience is given explicitly: it is then taken as given).
    patience_scales: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def training_config(self, epochs: int, *, seed: int, device, cuda_graphs: bool = False):
        """The ``TrainingConfig`` of one run under this budget (``epochs``: its epoch cap)."""
        from ..training import TrainingConfig

        return TrainingConfig(epochs=epochs, batch_size=self.batch_size,
                              learning_rate=self.learning_rate,
                              patience=self.patience_within(epochs), seed=seed,
                              device=str(device), cuda_graphs=cuda_graphs)

    def run_training(self, cap: int) -> dict:
        """What a run capped at ``cap`` epochs trains with: the budget's settings, with the
        patience it waits (``patience_within``)."""
        return {**{key: value for key, value in self.to_dict().items()
                   if key not in ("description", "patience_scales")},
                "patience": self.patience_within(cap)}

    def patience_within(self, cap: int) -> int:
        """The early-stopping patience of a run capped at ``cap`` epochs. Small data sets get
        more, shorter epochs (``min_steps``) and wait as many more, so that early stopping
        waits about as many steps as on large data (8 epochs of 4 steps stopped a VAE on 250
        rows at a fifth of its training, on a noisy 24-row validation loss)."""
        if not self.patience_scales or cap <= self.epochs:
            return self.patience
        return math.ceil(self.patience * cap / self.epochs)

    def epoch_cap(self, examples: int) -> int:
        """The epochs a run on ``examples`` training examples may take."""
        steps_per_epoch = max(1, -(-examples // self.batch_size))
        wanted = -(-self.min_steps // steps_per_epoch)
        return max(self.epochs, min(wanted, 10 * self.epochs))


BUDGETS = {
    "quick": Budget(
        "quick",
        "a first answer in minutes: up to 60 epochs with early stopping (patience 8; small "
        "data sets get up to 1,000 steps, at most 600 epochs), evaluation on up to "
        "2,000 test examples, k = 500 importance samples, 2,000 generated samples, one-class "
        "anomaly models of 30 epochs on up to 500 examples",
        epochs=60, batch_size=64, learning_rate=1e-3, patience=8, min_steps=1000,
        evaluation={
            "importance_samples": 500,
            "likelihood_examples": 1000,
            "bound_samples": (1, 50),
            "generated_samples": 2000,
            "max_examples": 2000,
            "reference_images": 2000,
            "interpolation_pairs": 100,
            "anomaly_training_epochs": 30,
            "anomaly_training_examples": 500,
            "anomaly_batch_size": 64,
            "anomaly_importance_samples": 20,
            "anomaly_classes": 10,
            "silhouette_examples": 2000,
            "disentanglement_train_points": 1000,
            "disentanglement_test_points": 500,
            "disentanglement_dci_trees": 20,
        },
    ),
    "full": Budget(
        "full",
        "publication settings: up to 100 epochs with early stopping (patience 10; small data "
        "sets get up to 5,000 steps, at most 1,000 epochs), log p(x) "
        "with k = 5000 on 2,000 test images, 10,000 generated samples, the whole test split, "
        "one-class anomaly models of 10 epochs on up to 2,000 examples per class",
        epochs=100, batch_size=100, learning_rate=1e-3, patience=10, min_steps=5000,
        evaluation={
            "importance_samples": 5000,
            "likelihood_examples": 2000,
            "generated_samples": 10000,
            "reference_images": 10000,
            "anomaly_training_epochs": 10,
            "anomaly_training_examples": 2000,
            "anomaly_importance_samples": 100,
        },
    ),
}


EXECUTORS = ("local", "ray")
TRACKERS = ("mlflow",)  # aevae.tracking.TRACKERS (kept here: reading settings imports no torch)


@dataclass
class StudySettings:
    """The options of ``aevae compare``. None means "chosen from the data" (and the report
    says what was chosen)."""

    data: str = "digits"
    data_dir: str | None = None
    labels: str | None = None
    models: str | None = None  # roster text; None: the preset's, else the default roster
    preset: str | None = None
    tasks: str | None = None  # comma-separated task names; None: every task that fits the data
    seeds: int = 3
    budget: str | Budget = "quick"  # a name in BUDGETS, or your own Budget
    epochs: int | None = None  # overrides the budget's
    patience: int | None = None  # early-stopping patience in epochs; overrides the budget's
    latent_dim: int | None = None
    network: str | None = None
    hidden: tuple[int, ...] | None = None
    likelihood: str | None = None
    device: str = "auto"
    cuda_graphs: bool = False  # neural runs' steps replayed from a CUDA graph (training/graphs)
    # Finished runs that other versions trained (versions.REPRODUCING_VERSIONS) are trained
    # again instead of reused.
    retrain_other_versions: bool = False
    store: str | None = None  # None: runs.sqlite in the output directory
    workers: int | None = None  # processes working at once; None: one per CPU core (max 4)
    executor: str = "local"  # "local" processes, or "ray": tasks on a Ray cluster
    split_seed: int = 0  # validation / test carving: the same for every seed and model
    limit: int | None = None  # train on the first N training examples (other splits unchanged)
    image_size: str | None = None  # "HxW": resize an image folder's images as they are read
    # "mlflow": the study as an MLflow run, each of its runs nested in it (the mlflow extra)
    track: str | None = None

    def __post_init__(self):
        if isinstance(self.budget, dict):  # read back from JSON
            self.budget = Budget(**self.budget)
        if not isinstance(self.budget, Budget) and self.budget not in BUDGETS:
            raise ValueError(f"unknown budget {self.budget!r}; known: {', '.join(BUDGETS)}")
        for name in ("seeds", "workers", "epochs", "patience", "latent_dim", "split_seed"):
            value = getattr(self, name, None)
            if value is not None and not is_whole(value):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"unknown executor {self.executor!r}; use {', '.join(EXECUTORS)}")
        if self.track is not None and self.track not in TRACKERS:
            raise ValueError(f"unknown tracker {self.track!r}; use {', '.join(TRACKERS)}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {self.seeds}")
        if self.limit is not None and (isinstance(self.limit, bool) or
                                       not isinstance(self.limit, int) or self.limit < 1):
            raise ValueError(f"limit must be a positive number of examples, got {self.limit!r}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be at least 1, got {self.patience}")
        if self.latent_dim is not None and self.latent_dim < 1:
            raise ValueError(f"latent dimension must be at least 1, got {self.latent_dim}")
        if self.hidden is not None:
            widths = self.hidden
            if isinstance(widths, str):  # "64,32", as on the command line (not "6", "4")
                widths = [part for part in widths.replace("x", ",").split(",") if part.strip()]
            try:
                floats = [float(width) for width in widths]
            except (TypeError, ValueError):
                floats = [math.nan]
            if not floats or not all(math.isfinite(width) and width == round(width) >= 1
                                     for width in floats):
                raise ValueError(f"hidden must be whole widths of at least 1 (e.g. (64, 32) or "
                                 f"'64,32'), got {self.hidden!r}")
            self.hidden = tuple(int(width) for width in floats)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def training_budget(self) -> Budget:
        budget = self.budget if isinstance(self.budget, Budget) else BUDGETS[self.budget]
        overrides = {name: value for name, value in (("epochs", self.epochs),
                                                     ("patience", self.patience))
                     if value is not None}
        if not overrides:
            return budget
        given = [f"{name} {value}" for name, value in overrides.items()]
        if "epochs" in overrides:  # the epochs asked for, exactly
            overrides["min_steps"] = 0
        if "patience" in overrides:  # and the patience
            overrides["patience_scales"] = False
        # Said in the description the report prints (the budget's own epochs no longer hold).
        overrides["description"] = (f"{budget.description}; overridden here: "
                                    f"{', '.join(given)}")
        return Budget(**{**budget.to_dict(), **overrides})


def default_network(shape: tuple[int, ...]) -> dict:
    """Network and latent size for data of this shape, when the user names none."""
    size = 1
    for side in shape:
        size *= side
    if len(shape) == 1:  # tabular
        return {"network": "mlp", "hidden": (128, 64), "latent_dim": max(2, min(8, size // 2))}
    if size <= 256:  # small images such as 8x8 digits
        return {"network": "mlp", "hidden": (256, 128), "latent_dim": 8}
    return {"network": "mlp", "hidden": (512, 256), "latent_dim": 16}
