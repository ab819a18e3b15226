"""Which models a study trains: roster entries parsed from ``--models``, and the presets.

An entry is a registered model name with options, written ``name:key=value:key=value`` and
separated by commas (values are JSON where they parse, so ``hidden=[64,32]`` works):
``vae,beta_vae:beta=2,iwae:importance_samples=5``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..models import model_class

DEFAULT_ROSTER = "pca,ppca,ae,vae,beta_vae,wae_mmd,rae"

PRESETS = {
    "latent-sweep": {
        "question": "How large should the latent space be? AE and VAE at latent size 2 to 32.",
        "models": ",".join(f"{name}:latent_dim={size}" for size in (2, 4, 8, 16, 32)
                           for name in ("ae", "vae")),
        "sweep": "latent_dim",
    },
    "ladder": {
        "question": "Why not a plain AE? The ladder from a deterministic AE to a VAE, one change "
        "at a time, ending with a VAE whose codes ignore the input.",
        "models": "ae,wae_mmd,fixed_variance_vae,vae,independent_vae",
        "sweep": None,
    },
    "beta-sweep": {
        "question": "Rate against distortion: beta-VAE with beta from 0.25 to 8, and the AE "
        "(beta = 0, no KL term) as the reference each beta is compared with.",
        "models": "ae," + ",".join(f"beta_vae:beta={beta:g}" for beta in (0.25, 0.5, 1, 2, 4, 8)),
        "sweep": "beta",
    },
}

LADDER_STEPS = {
    "ae": "deterministic codes, no prior",
    "wae_mmd": "codes pushed towards N(0, I) by an MMD penalty",
    "fixed_variance_vae": "noise of fixed variance added to the codes: the encoder learns the mean",
    "vae": "the encoder learns mean and variance",
    "independent_vae": "the encoder ignores x: z carries no information",
}


@dataclass(frozen=True)
class RosterEntry:
    """One model of the study: a registered name and the options that set it apart."""

    model: str
    options: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The canonical spelling, ``name:key=value`` with keys sorted."""
        parts = [self.model] + [f"{key}={json.dumps(value, separators=(',', ':'))}"
                                for key, value in sorted(self.options.items())]
        return ":".join(parts)

    @property
    def label(self) -> str:
        """For humans: ``beta_vae (beta=2)``."""
        if not self.options:
            return self.model
        shown = ", ".join(f"{key}={_short(value)}" for key, value in sorted(self.options.items()))
        return f"{self.model} ({shown})"


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "x".join(str(item) for item in value)
    return str(value)


def _split_top_level(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside brackets and quotes."""
    parts, depth, quote, current = [], 0, None, []
    for character in text:
        if quote:
            quote = None if character == quote else quote
        elif character in "\"'":
            quote = character
        elif character in "[{(":
            depth += 1
        elif character in "]})":
            depth -= 1
        elif character == separator and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(character)
    parts.append("".join(current))
    return [part.strip() for part in parts]


def _value(raw: str):
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


# Batch fields a study cannot give a model, and where such a model is compared instead.
UNSTUDIED_FIELDS = {
    "labels": "compare conditional and semi-supervised models with the Python API or "
    "benchmarks/labels.py (docs/models/labels.md)",
    "lengths": "compare sequence models with benchmarks/sequences.py (docs/models/sequences.md)",
}


def parse_roster(text: str) -> list[RosterEntry]:
    """Entries from ``name:key=value,...``; unknown names and malformed options are ValueErrors
    naming the entry. Duplicates are refused (they would be the same runs)."""
    entries: list[RosterEntry] = []
    for part in _split_top_level(text, ","):
        if not part:
            continue
        name, *options = _split_top_level(part, ":")
        cls = model_class(name)  # unknown model: a ValueError listing the known ones
        if needed := [field for field in cls.uses if field in UNSTUDIED_FIELDS]:
            raise ValueError(f"{name} reads {', '.join(needed)} with every example, which the "
                             f"study's tasks do not pass; {UNSTUDIED_FIELDS[needed[0]]}")
        parsed = {}
        for option in options:
            key, separator, raw = option.partition("=")
            if not separator or not key.strip():
                raise ValueError(f"model entry {part!r}: expected name:key=value, got {option!r}")
            parsed[key.strip().replace("-", "_")] = _value(raw.strip())
        entry = RosterEntry(name, parsed)
        if any(existing.key == entry.key for existing in entries):
            raise ValueError(f"model entry {entry.key!r} appears twice")
        entries.append(entry)
    if not entries:
        raise ValueError("the roster is empty: name at least one model")
    return entries
