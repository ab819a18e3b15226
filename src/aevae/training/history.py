"""The per-epoch record of a training run."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

HISTORY_FILE = "history.csv"


@dataclass
class TrainingHistory:
    """Per-epoch records (``epoch``, ``train_loss``, ``train_<term>``, ``validation_<term>``,
    ``kl_weight``, ``seconds``) and how training ended."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_validation_loss: float | None = None
    stopped_early: bool = False

    def column(self, name: str) -> list[float]:
        return [record[name] for record in self.epochs]

    def to_csv(self) -> str:
        if not self.epochs:
            return ""
        names = list(dict.fromkeys(key for record in self.epochs for key in record))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.epochs)
        return buffer.getvalue()

    def to_dict(self) -> dict:
        return {
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best_validation_loss": self.best_validation_loss,
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def from_dict(cls, values: dict) -> TrainingHistory:
        return cls(**values)

    def replace_with(self, other: TrainingHistory) -> None:
        """Take ``other``'s records in place (a resumed run continues the caller's object)."""
        self.epochs, self.best_epoch = other.epochs, other.best_epoch
        self.best_validation_loss = other.best_validation_loss
        self.stopped_early = other.stopped_early
