"""The study's tasks: each a question in plain words, the figures that answer it, which way is
better, and what it needs from the data and the models.

The verdicts and the report read this registry and nothing else, so a new measurement joins the
study by adding one ``register_task(Task(...))`` here (or in the module that provides it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# What a task or metric may need from the data.
NEEDS = {
    "labels": "the data has no labels",
    "unit-interval": "its corruptions and PSNR assume values in [0, 1]",
    "images": "it needs image data",
    "factors": "the data has no known generative factors (e.g. dsprites has them)",
}


@dataclass(frozen=True)
class DataInfo:
    """What the tasks need to know about the study's data."""

    kind: str  # images, tabular, arrays
    values: str  # binary, unit-interval, real (after preparation)
    labels: bool
    likelihood: str  # the study's decoder likelihood
    factors: bool = False  # ground-truth factors of variation are known
    dimensions: int | None = None  # values per example (None in studies from before it)


@dataclass(frozen=True)
class ModelInfo:
    """What the tasks need to know about one roster entry."""

    key: str
    model: str
    has_likelihood: bool
    likelihood: str
    trains_prior: bool  # False: sampling "the prior" means decoding N(0, I) draws it never saw
    # For humans, as texts name it ("ae (latent_dim=4)"; "" reads the key): set from the
    # roster when a study is read, not kept in study.json (an older install could not read it).
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.key


@dataclass(frozen=True)
class Metric:
    """One figure: where it sits in the evaluation result and which way is better.

    ``paths`` are (group, key, ...) tuples tried in order, the first present wins (a VAE's
    aggregate posterior where it has one, else its codes). ``applies`` returns None when the
    figure means something for a model, else the reason it does not (shown as "n/a: reason");
    ``caveat`` adds a remark to a figure that does count.
    ``count`` points at the number of examples behind the figure; below ``min_count`` the figure
    is flagged as resting on too small a sample."""

    name: str
    label: str
    paths: tuple[tuple[str, ...], ...]
    direction: str  # "lower" or "higher"
    unit: str = ""
    digits: int = 3
    needs: tuple[str, ...] = ()
    applies: Callable[[ModelInfo, DataInfo], str | None] | None = None
    spread: tuple[str, ...] | None = None  # per-example standard error of the figure
    count: tuple[str, ...] | None = None
    min_count: int = 0
    # A remark on a model's figure that still counts (shown beside it), or None.
    caveat: Callable[[ModelInfo, DataInfo], str | None] | None = None
    # The figure's possible range (None: unbounded on that side); intervals are clipped to it.
    bounds: tuple[float | None, float | None] = (None, None)
    short: str = ""  # a few characters for narrow tables; the label when empty
    # A log-density in nats: its zero depends on the data's units, so its ties are absolute.
    log_density: bool = False
    # The same figure for a trivial method in the same run (filling in the training mean,
    # leaving the corrupted input as it is): a model no better than it wins nothing with it.
    baseline: tuple[str, ...] | None = None
    baseline_label: str = ""
    # Where a run records the figure's largest possible value (active units: the code size).
    upper: tuple[str, ...] | None = None
    # A share of ``count`` items (an accuracy): it moves in steps of 1 / count, so seeds that
    # agree to the step have not shown a spread of zero (their intervals keep the step's).
    proportion: bool = False

    def __post_init__(self):
        if self.direction not in ("lower", "higher"):
            raise ValueError(f"metric {self.name}: direction must be 'lower' or 'higher'")

    @property
    def groups(self) -> set[str]:
        return {path[0] for path in self.paths}


@dataclass(frozen=True)
class Guard:
    """A second figure a model must not fall far behind on to win its task.

    The best model on ``metric`` (a (task, metric) pair) sets the bar: a model passes when its
    figure is within ``ratio`` times the best (lower-is-better figures: at most ratio x best;
    higher-is-better: at least best / ratio) or within ``difference`` of it. ``why`` finishes
    "it cannot win: ..." and is followed by both figures ("... 0.68 against 0.91 for ae").
    Verdicts, claims and the bottom line read the same guards."""

    metric: tuple[str, str]
    why: str
    ratio: float | None = None
    difference: float | None = None

    def __post_init__(self):
        if (self.ratio is None) == (self.difference is None):
            raise ValueError("a guard takes a ratio or a difference, not both")

    def passes(self, value: float, best: float, direction: str) -> bool:
        if self.ratio is not None:
            if direction == "lower":
                return value <= best * self.ratio if best >= 0 else value <= best / self.ratio
            return value >= best / self.ratio if best >= 0 else value >= best * self.ratio
        if direction == "lower":
            return value <= best + self.difference
        return value >= best - self.difference

    def bar(self, best: float, direction: str) -> float:
        """The worst passing value."""
        if self.ratio is not None:
            up = (direction == "lower") == (best >= 0)
            return best * self.ratio if up else best / self.ratio
        return best + self.difference if direction == "lower" else best - self.difference


@dataclass(frozen=True)
class Task:
    """A question the study answers. ``metrics[0]`` is the primary figure of its verdict; a
    model that fails one of ``guards`` (or the run health checks) wins none of its figures."""

    name: str
    title: str
    question: str
    purpose: str  # completes "To ..., prefer X" in the summary
    metrics: tuple[Metric, ...]
    needs: tuple[str, ...] = ()
    note: str = ""
    extra_groups: tuple[str, ...] = field(default=())
    goal: str = ""  # the row of the AE-vs-VAE bottom line, e.g. "generate new examples"
    guards: tuple[Guard, ...] = ()

    @property
    def primary(self) -> Metric:
        return self.metrics[0]

    @property
    def groups(self) -> set[str]:
        guard_groups = set()
        for guard in self.guards:
            task = TASKS.get(guard.metric[0])
            if task is not None and task is not self:
                guard_groups |= metric_named(*guard.metric).groups
        return set().union(*(metric.groups for metric in self.metrics), self.extra_groups,
                           guard_groups)


TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} registered twice")
    TASKS[task.name] = task
    return task


def metric_named(task: str, name: str, tasks: dict[str, Task] | None = None) -> Metric:
    """The registered metric ``name`` of ``task`` (KeyError naming both if there is none)."""
    for metric in (tasks or TASKS)[task].metrics:
        if metric.name == name:
            return metric
    raise KeyError(f"task {task!r} has no metric {name!r}")


def lookup(result: dict, path: tuple[str, ...]):
    """The value at ``path`` in an evaluation's ``metrics`` dict, or None."""
    value = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def missing_needs(needs: tuple[str, ...], data: DataInfo) -> str | None:
    """The reason a need is not met by the data, or None."""
    for need in needs:
        if need == "labels" and not data.labels:
            return NEEDS[need]
        if need == "unit-interval" and data.values == "real":
            return NEEDS[need]
        if need == "images" and data.kind != "images":
            return NEEDS[need]
        if need == "factors" and not data.factors:
            return NEEDS[need]
    return None


# ----- when a figure applies -------------------------------------------------------------------
def needs_likelihood(model: ModelInfo, data: DataInfo) -> str | None:
    if not model.has_likelihood:
        return "no likelihood: a deterministic model defines no p(x)"
    if model.likelihood != data.likelihood and not _both_gaussian(model.likelihood,
                                                                   data.likelihood):
        return (f"its {model.likelihood} density is not comparable with the study's "
                f"{data.likelihood} probabilities")
    return None


def same_likelihood(model: ModelInfo, data: DataInfo) -> str | None:
    if model.likelihood != data.likelihood and not _both_gaussian(model.likelihood,
                                                                   data.likelihood):
        return f"scored with a {model.likelihood} decoder, not the study's {data.likelihood}"
    return None


def _both_gaussian(first: str, second: str) -> bool:
    return first.startswith("gaussian") and second.startswith("gaussian")


def has_likelihood(model: ModelInfo, data: DataInfo) -> str | None:
    return None if model.has_likelihood else "no likelihood: a deterministic model"


def untrained_prior(model: ModelInfo, data: DataInfo) -> str | None:
    return None if model.trains_prior else "no trained prior: decoded N(0, I) draws"


UNIT_RANGE = (0.0, 1.0)
POSITIVE = (0.0, None)


def sampling_metrics(source: str, what: str, caveat=None) -> tuple[Metric, ...]:
    count = ("generation", "reference_images")
    return (
        Metric(f"{source}_frechet_distance", f"{what}: Fréchet distance",
               (("generation", source, "frechet_distance", "value"),), "lower", digits=4,
               count=count, min_count=500, caveat=caveat, bounds=POSITIVE, short="FD"),
        Metric(f"{source}_precision", f"{what}: precision",
               (("generation", source, "precision_recall", "precision"),), "higher",
               count=count, min_count=200, bounds=UNIT_RANGE),
        Metric(f"{source}_recall", f"{what}: recall",
               (("generation", source, "precision_recall", "recall"),), "higher",
               count=count, min_count=200, bounds=UNIT_RANGE),
    )


def sampling_guards(task: str, source: str) -> tuple[Guard, ...]:
    # Precision alone rewards a sampler that covers one corner of the data (a collapsed model
    # decoding its mean); recall alone, one that sprays noise. Each guards the other.
    return (
        Guard((task, f"{source}_recall"), "its samples cover under half as much "
              "of the data", ratio=2.0),
        Guard((task, f"{source}_precision"), "under half as large a share of its "
              "samples looks like data", ratio=2.0),
    )


# Decoded codes are only worth judging if the model reconstructs its inputs: a model whose
# codes ignore the input lands every code on the prior and every midpoint on the mean.
RECONSTRUCTION_FLOOR = Guard(("compression", "mse"), "it reconstructs with over three times "
                             "the error", ratio=3.0)


# ----- the registry ----------------------------------------------------------------------------
register_task(Task(
    "compression", "Compression",
    "Which model reconstructs held-out data most accurately with a code of the same size?",
    "compress data and reconstruct it",
    (
        Metric("mse", "reconstruction MSE", (("reconstruction", "mse", "value"),), "lower",
               unit="per dimension", digits=4, bounds=POSITIVE,
               count=("reconstruction", "examples"), min_count=100, short="MSE"),
        Metric("psnr", "reconstruction PSNR", (("reconstruction", "psnr", "value"),), "higher",
               unit="dB", needs=("unit-interval",)),
        Metric("reconstruction_nll", "reconstruction -log p(x|z)",
               (("reconstruction", "negative_log_likelihood_of_reconstruction"),), "lower",
               unit="nats per example", applies=same_likelihood, log_density=True),
    ),
    note="Codes are posterior means E[z|x] for the VAE family, g(x) for deterministic models.",
    goal="compress",
))

register_task(Task(
    "likelihood", "Likelihood",
    "Which model assigns held-out data the highest probability?",
    "model the probability of the data (density estimation, scoring)",
    (
        Metric("log_likelihood", "log p(x), importance sampled",
               (("likelihood", "log_likelihood"),), "higher", unit="nats per example",
               digits=4, applies=needs_likelihood,
               spread=("likelihood", "log_likelihood_standard_error"),
               count=("likelihood", "examples"), min_count=100, short="log p(x)",
               log_density=True),
        Metric("elbo", "ELBO", (("likelihood", "elbo"),), "higher", unit="nats per example",
               digits=4, applies=needs_likelihood,
               spread=("likelihood", "elbo_standard_error"),
               count=("likelihood", "examples"), min_count=100, log_density=True),
    ),
    note="Deterministic models define no p(x). For PPCA the estimate equals its exact "
    "log-likelihood (reported in its metrics as exact_log_likelihood).",
    goal="estimate density",
))

register_task(Task(
    "prior_sampling", "Sampling from the prior",
    "Decoding draws z ~ N(0, I): whose samples look most like the data?",
    "generate new examples by sampling the prior",
    sampling_metrics("prior", "prior samples", caveat=untrained_prior),
    guards=sampling_guards("prior_sampling", "prior"),
    goal="generate (prior samples)",
    note="Models without a trained prior (deterministic AEs, PCA) are given N(0, I) draws "
    "anyway: that is what sampling a plain AE would mean. Features: a classifier trained on "
    "the data's labels, else the data's principal components.",
))

register_task(Task(
    "ex_post_sampling", "Sampling after fitting a density to the codes",
    "After fitting a 10-component Gaussian mixture to each model's training codes, whose "
    "decoded draws look most like the data?",
    "generate examples from a density fitted to the codes (ex-post)",
    sampling_metrics("ex_post", "ex-post samples"),
    guards=sampling_guards("ex_post_sampling", "ex_post"),
    goal="generate (ex-post density)",
    note="Ghosh et al. (2020): any autoencoder becomes a sampler this way.",
))

register_task(Task(
    "interpolation", "Interpolation",
    "Decoding points on straight lines between two codes: are the midpoints realistic, and do "
    "the decoded paths move evenly?",
    "interpolate between examples",
    (
        Metric("midpoint_distance", "midpoints: distance to the nearest training example",
               (("interpolation", "midpoint_realism", "value"),), "lower",
               unit="1 = as close as data is to data", count=("interpolation", "pairs"),
               min_count=50, bounds=POSITIVE, short="midpoint distance"),
        Metric("smoothness", "path evenness: largest / mean step",
               (("interpolation", "smoothness", "value"),), "lower", unit="1 = even"),
        Metric("midpoint_confidence", "midpoints: classifier confidence",
               (("interpolation", "midpoint_realism", "classifier", "mean_confidence"),),
               "higher", needs=("labels",), bounds=UNIT_RANGE),
    ),
    guards=(RECONSTRUCTION_FLOOR,),
    goal="interpolate",
))

register_task(Task(
    "few_labels", "Classification with few labels",
    "With only 10 or 100 labels per class, whose codes train the most accurate linear "
    "classifier?",
    "classify with few labels (codes as features)",
    (
        Metric("probe_10", "linear probe, 10 labels per class",
               (("structure", "linear_probe", "accuracy", "10"),), "higher", unit="accuracy",
               count=("structure", "n_test"), min_count=200, bounds=UNIT_RANGE,
               short="probe, 10/class", proportion=True),
        Metric("probe_100", "linear probe, 100 labels per class",
               (("structure", "linear_probe", "accuracy", "100"),), "higher", unit="accuracy",
               count=("structure", "n_test"), min_count=200, bounds=UNIT_RANGE,
               proportion=True),
        Metric("knn_all", "5-NN, all labels", (("structure", "knn", "accuracy", "all"),),
               "higher", unit="accuracy", count=("structure", "n_test"), min_count=200,
               bounds=UNIT_RANGE, proportion=True),
    ),
    needs=("labels",),
    goal="classify with few labels",
))

register_task(Task(
    "clustering", "Clustering",
    "Do the codes fall into clusters that match the classes (k-means, no labels used)?",
    "find clusters without labels",
    (
        Metric("kmeans_accuracy", "k-means accuracy (Hungarian)",
               (("structure", "clustering", "accuracy"),), "higher",
               count=("structure", "n_test"), min_count=200, bounds=UNIT_RANGE,
               short="k-means accuracy", proportion=True),
        Metric("kmeans_nmi", "k-means NMI", (("structure", "clustering", "nmi"),), "higher",
               count=("structure", "n_test"), min_count=200, bounds=UNIT_RANGE),
    ),
    needs=("labels",),
    goal="cluster",
))

register_task(Task(
    "anomaly", "Anomaly detection",
    "Trained on one class only, how well does each model flag the other classes as anomalies "
    "(mean AUROC over the classes)?",
    "detect anomalies",
    (
        Metric("anomaly_reconstruction", "AUROC, score = reconstruction error",
               (("anomaly", "auroc", "reconstruction_error", "value"),), "higher",
               count=("anomaly", "n_evaluation"), min_count=200, bounds=UNIT_RANGE, short="AUROC"),
        Metric("anomaly_likelihood", "AUROC, score = -log p(x)",
               (("anomaly", "auroc", "negative_log_likelihood", "value"),), "higher",
               applies=has_likelihood, count=("anomaly", "n_evaluation"), min_count=200,
               bounds=UNIT_RANGE),
    ),
    needs=("labels",),
    goal="detect anomalies",
    note="One-class protocol: a fresh copy of each model is trained on one class at a time "
    "(the study's budget sets its epochs).",
))

register_task(Task(
    "denoising", "Denoising",
    "Given a corrupted input, whose reconstruction is closest to the clean data?",
    "denoise (reconstruct clean data from corrupted inputs)",
    (
        Metric("denoise_noise", "PSNR after Gaussian noise (std 0.3)",
               (("denoising", "gaussian_noise", "0.3", "value"),), "higher", unit="dB",
               short="PSNR, noise 0.3",
               baseline=("denoising", "gaussian_noise", "0.3", "corrupted_psnr"),
               baseline_label="the noisy input left as it is"),
        Metric("denoise_mask", "PSNR after masking half the values",
               (("denoising", "masking", "0.5", "value"),), "higher", unit="dB",
               baseline=("denoising", "masking", "0.5", "corrupted_psnr"),
               baseline_label="the masked input left as it is"),
    ),
    needs=("unit-interval",),
    note="None of the models was trained to denoise; this asks what each gives for free. A "
    "model no better than leaving the corrupted input as it is wins nothing here.",
    goal="denoise",
))

register_task(Task(
    "imputation", "Imputing missing entries",
    "With entries missing completely at random, whose fill-ins are closest to the truth?",
    "impute missing entries",
    (
        Metric("impute_20", "RMSE on the missing entries, 20% missing",
               (("imputation", "by_fraction", "0.2", "rmse"),), "lower", digits=4,
               count=("imputation", "examples"), min_count=100, bounds=POSITIVE,
               short="RMSE, 20% missing",
               baseline=("imputation", "by_fraction", "0.2", "mean_imputation_rmse"),
               baseline_label="filling in the training mean"),
        Metric("impute_50", "RMSE on the missing entries, 50% missing",
               (("imputation", "by_fraction", "0.5", "rmse"),), "lower", digits=4,
               count=("imputation", "examples"), min_count=100, bounds=POSITIVE,
               baseline=("imputation", "by_fraction", "0.5", "mean_imputation_rmse"),
               baseline_label="filling in the training mean"),
    ),
    goal="impute",
    note="Models trained on complete data fill the gaps by iterated reconstruction starting "
    "from the training mean; MIWAE by importance sampling. A model no better than filling in "
    "the training mean wins nothing here.",
))

register_task(Task(
    "manipulation", "Editing by latent arithmetic",
    "Moving a code by the vector between two classes' mean codes and decoding it: does the "
    "result show the target class, and does it still look like data?",
    "edit examples by moving their codes (latent arithmetic)",
    (
        Metric("edit_success", "edits that show the target class",
               (("manipulation", "edit_success"),), "higher", unit="share",
               count=("manipulation", "edits"), min_count=200, bounds=UNIT_RANGE,
               short="edit success", proportion=True),
        Metric("edit_realism", "edited examples: distance to the nearest training example",
               (("manipulation", "realism", "value"),), "lower",
               unit="1 = as close as data is to data", bounds=POSITIVE),
    ),
    needs=("labels",),
    guards=(Guard(("manipulation", "edit_realism"), "its edits lie over 1.5 times as far "
                  "from the data", ratio=1.5),),
    goal="edit (latent arithmetic)",
    note="Class vectors from the training codes; up to 1,000 evaluation examples are moved to "
    "a randomly chosen other class.",
))

register_task(Task(
    "variation", "Variations of one input",
    "Several decodings of one input (z ~ q(z|x); input noise for deterministic models): how "
    "varied are they, and do they keep the input's class?",
    "draw several variants of one input",
    (
        Metric("variation_diversity", "variations: spread", (("variation", "diversity"),),
               "higher", unit="1 = as far apart as neighbouring data", bounds=POSITIVE,
               short="spread"),
        Metric("variation_faithfulness", "variations that keep the input's class",
               (("variation", "faithfulness"),), "higher", unit="share", bounds=UNIT_RANGE),
    ),
    needs=("labels",),
    guards=(
        Guard(("variation", "variation_faithfulness"), "its variations keep the input's "
              "class over 5 points less often", difference=0.05),
        Guard(("variation", "variation_diversity"), "its variations spread under half as far",
              ratio=2.0),
    ),
    goal="vary one input",
    note="A deterministic AE has one code per input: its only variation comes from noise on "
    "its input. Spread alone is no virtue: read it with faithfulness.",
))

register_task(Task(
    "latent_health", "Latent space",
    "Are the latent dimensions used, and do the codes fill the prior that samples are drawn "
    "from, without holes?",
    "get a latent space you can sample and move around in",
    (
        Metric("holes", "holes between the codes",
               (("latent", "holes", "value"),), "lower",
               unit="share of probes off the codes; about 0.05 for Gaussian codes",
               bounds=UNIT_RANGE, short="holes"),
        Metric("prior_mmd", "codes vs N(0, I): MMD²",
               (("latent", "aggregate_posterior_mismatch", "mmd_imq"),
                ("latent", "prior_mismatch", "mmd_imq")), "lower", digits=4,
               unit="VAE family: the aggregate posterior", bounds=POSITIVE),
        Metric("active_units", "active units", (("latent", "active_units", "value"),),
               "higher", digits=2, bounds=POSITIVE,
               upper=("latent", "active_units", "n_dimensions")),
    ),
    guards=(RECONSTRUCTION_FLOOR,),
    goal="latent space",
))

register_task(Task(
    "disentanglement", "Disentanglement",
    "Against the data's known factors of variation: does each latent dimension capture one "
    "factor, and each factor live in few dimensions?",
    "learn disentangled codes (one factor per dimension)",
    tuple(
        Metric(name, label, (("disentanglement", "scores", name),), "higher",
               bounds=UNIT_RANGE)
        for name, label in (
            ("mig", "MIG (mutual information gap)"),
            ("factor_vae_score", "FactorVAE score"),
            ("beta_vae_score", "beta-VAE score"),
            ("dci_disentanglement", "DCI disentanglement"),
            ("dci_completeness", "DCI completeness"),
            ("dci_informativeness", "DCI informativeness"),
            ("sap", "SAP score"),
            ("modularity", "modularity"),
            ("explicitness", "explicitness"),
        )
    ),
    needs=("factors",),
    note="Locatello et al. (2019)'s protocols (sizes in the run's metrics.json); the codes are "
    "posterior means for the VAE family. Their study found these scores vary more with the "
    "seed than with the model.",
    goal="disentangle",
))
