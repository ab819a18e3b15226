"""What a study is asked to do (``StudySettings``) and its budgets (``quick``, ``full``).

A budget fixes everything that trades time for precision: epochs and early stopping, the
importance samples of log p(x), how many samples sample quality is measured on, the one-class
models of anomaly detection. Every neural model of a study gets the same budget.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Budget:
    name: str
    description: str
    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    evaluation: dict = field(default_factory=dict)  # EvaluationSettings overrides

    def to_dict(self) -> dict:
        return asdict(self)


BUDGETS = {
    "quick": Budget(
        "quick",
        "a first answer in minutes: short training with early stopping, evaluation on up to "
        "2,000 test examples, k = 500 importance samples, 2,000 generated samples, one-class "
        "anomaly models of 30 epochs on up to 500 examples",
        epochs=60, batch_size=64, learning_rate=1e-3, patience=8,
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
        "publication settings: up to 100 epochs with early stopping (patience 10), log p(x) "
        "with k = 5000 on 2,000 test images, 10,000 generated samples, the whole test split, "
        "one-class anomaly models of 10 epochs on up to 2,000 examples per class",
        epochs=100, batch_size=100, learning_rate=1e-3, patience=10,
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
    latent_dim: int | None = None
    network: str | None = None
    hidden: tuple[int, ...] | None = None
    likelihood: str | None = None
    device: str = "auto"
    store: str | None = None  # None: runs.sqlite in the output directory
    workers: int | None = None  # processes working at once; None: one per CPU core (max 4)
    executor: str = "local"  # "local" processes, or "ray": tasks on a Ray cluster
    split_seed: int = 0  # validation / test carving: the same for every seed and model

    def __post_init__(self):
        if isinstance(self.budget, dict):  # read back from JSON
            self.budget = Budget(**self.budget)
        if not isinstance(self.budget, Budget) and self.budget not in BUDGETS:
            raise ValueError(f"unknown budget {self.budget!r}; known: {', '.join(BUDGETS)}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"unknown executor {self.executor!r}; use {', '.join(EXECUTORS)}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {self.seeds}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.latent_dim is not None and self.latent_dim < 1:
            raise ValueError(f"latent dimension must be at least 1, got {self.latent_dim}")
        if self.hidden is not None:
            self.hidden = tuple(int(width) for width in self.hidden)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def training_budget(self) -> Budget:
        budget = self.budget if isinstance(self.budget, Budget) else BUDGETS[self.budget]
        if self.epochs is None:
            return budget
        return Budget(**{**budget.to_dict(), "epochs": self.epochs})


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
