"""The semi-supervised VAE M2 (Kingma et al. 2014), and M1+M2 (M2 on a trained VAE's codes).

A class y and a style z generate x: p(y) uniform, p(z) = N(0, I), p(x|y,z). Inference has a
classifier q(y|x) and q(z|x,y). For a labelled example the loss is the negative ELBO of log p(x,y),

    L(x, y) = -log p(x|y,z) + KL(q(z|x,y) || p(z)) - log p(y),

plus alpha times the classifier's cross-entropy; for an unlabelled one y is summed out,

    U(x) = sum_y q(y|x) L(x, y) - H(q(y|x)),

which is the negative ELBO of log p(x). Kingma et al.'s objective is sum_labelled (L + alpha CE)
+ sum_unlabelled U with alpha = 0.1 N, per labelled example 0.1 x (all / labelled examples).
``fit(..., labelled_per_batch=k)`` puts k labelled examples in every batch, and
``labelled_share`` says how a batch weighs its two parts. "batch" (the default, as most
re-implementations do): the mean over its labelled examples plus the mean over its unlabelled
ones, which counts every label far more often than the objective does. "data": an unbiased
estimate of the objective itself (each mean weighed by its part's share of the training data
under labelled_per_batch; the plain batch mean for uniformly drawn batches),
whose classifier term is then weak: on MNIST with 100 labels M2's classes settle on a partition
of the images other than the digits (66% test error after 30 epochs; see
benchmarks/results/labels_ablation.md), while M1+M2 does best with it. ``predict(x)``
classifies with q(y|x)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.batch import Batch, _as_tensor
from ..distributions import DiagonalGaussian
from ..nets import MLPEncoder
from ..nets.conditional import ConditionedDecoder, ConditionedEncoder
from ..priors import StandardNormal
from .base import LossOutput, UnsupportedMethodError, check_sample_request
from .cvae import Conditioned, _one_class, check_classes
from .registry import register_model
from .vae import VAE, VAEConfig

LABELLED_SHARES = ("batch", "data")


@dataclass
class M2Config(VAEConfig):
    # Number of classes y.
    classes: int = 10
    # Hidden widths of the classifier q(y|x).
    classifier_hidden: tuple[int, ...] = (500,)
    # alpha on the labelled examples' cross-entropy; None: 0.1 x all / labelled examples of
    # the training data (Kingma et al.'s 0.1 N).
    classification_weight: float | None = None
    # How a batch weighs its labelled and unlabelled parts: "batch" equally, "data" by their
    # shares of the training data (an unbiased estimate of Kingma et al.'s objective).
    labelled_share: str = "batch"

    def __post_init__(self):
        super().__post_init__()
        if self.labelled_share not in LABELLED_SHARES:
            raise ValueError(f"unknown labelled_share {self.labelled_share!r}; known: "
                             f"{', '.join(LABELLED_SHARES)}")
        check_classes(self.classes)
        if self.samples != 1:
            raise ValueError("m2 draws one z per example and class: samples=1")
        if self.classification_weight is not None and not self.classification_weight >= 0:
            raise ValueError("classification_weight must be non-negative")


@register_model
class M2(VAE):
    name = "m2"
    description = ("semi-supervised VAE M2: classifier q(y|x), q(z|x,y), p(x|y,z); labels "
                   "summed out where unknown")
    Config = M2Config
    uses = ("labels", "label_known")
    unsupported = {method: "it decodes a code only together with a class; use "
                   "decode(z, labels=...) or sample(n, labels=...)"
                   for method in ("vary", "interpolate", "traverse")}

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        if not isinstance(self.prior, StandardNormal):
            raise ValueError("m2 uses the standard-normal prior")
        config = self.config
        with self.seeded_initialisation(0):
            self.encoder = ConditionedEncoder(config.network, config.input_shape, config.classes,
                                              2 * config.latent_dim, **self.network_options())
            self.decoder = ConditionedDecoder(
                config.network, config.latent_dim, config.classes,
                self.decoder_output_shape, **self.network_options())
        with self.seeded_initialisation(5):
            self.classifier = MLPEncoder(config.input_shape, config.classes,
                                         hidden=config.classifier_hidden,
                                         activation=config.activation)
        # Saved with the weights: the alpha training used.
        weight = config.classification_weight
        self.register_buffer("alpha", torch.tensor(0.0 if weight is None else float(weight)))
        # The labelled share of the training data, for labelled_share="data", and whether each
        # batch holds a fixed number of labelled examples (both set by fit).
        self.labelled_fraction: float | None = None
        self.stratified = False

    def training_refusal(self) -> str | None:
        if self.config.free_bits:
            return "m2 does not floor its KL (free bits): leave free_bits at 0"
        return super().training_refusal()

    def prepare_training(self, data, count: int, labelled_per_batch: int | None = None) -> None:
        self.labelled_fraction, self.stratified = None, labelled_per_batch is not None
        if data is None:
            if self.config.labelled_share == "data":
                raise ValueError("labelled_share='data' weighs the labels by their share of the "
                                 "training data, which a stream does not say: train from "
                                 "arrays, or use labelled_share='batch'")
            return
        known = data.label_known
        if known is None:
            known = torch.full((len(data),), data.labels is not None)
        labelled = int(known.sum())
        if self.config.labelled_share == "data":
            self.labelled_fraction = labelled / max(count, 1)
        if self.config.classification_weight is None:
            self.alpha.fill_(0.1 * count / labelled if labelled else 0.0)

    def loss(self, x, *, kl_weight=1.0, step=None):
        """The loss of unlabelled x (labels summed out); labelled data go through batch_loss."""
        return self.batch_loss(Batch(x), kl_weight=kl_weight, step=step)

    # ----- the model's pieces -------------------------------------------------------------
    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)

    def conditional_posterior(self, x: torch.Tensor, labels: torch.Tensor) -> DiagonalGaussian:
        """q(z|x, y) for the given classes."""
        condition = F.one_hot(labels, self.config.classes).float()
        return DiagonalGaussian(*self.encoder(x, condition).chunk(2, dim=-1))

    def negative_elbo_given(self, x: torch.Tensor, labels: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction, KL) per example of -ELBO(x, y) for the given classes."""
        condition = F.one_hot(labels, self.config.classes).float()
        q = self.conditional_posterior(self.corrupt(x), labels)
        z = q.rsample()
        reconstruction = -self.likelihood.log_prob(x, self.decoder(z, condition))
        # float32 under autocast too: the terms are written into float32 buffers by index.
        return reconstruction.float(), q.kl_to_standard_normal().float()

    def batch_loss(self, batch, *, kl_weight=1.0, step=None):
        x, count = batch.x, len(batch)
        known = batch.label_known
        if known is None:
            known = torch.full((count,), batch.labels is not None, device=x.device)
        if batch.labels is not None and bool(known.any()):
            labels = batch.labels
            if int(labels[known].min()) < 0 or int(labels[known].max()) >= self.config.classes:
                raise ValueError(f"labels must be classes 0..{self.config.classes - 1}")
        log_prior_y = -math.log(self.config.classes)
        log_q = F.log_softmax(self.class_logits(x).float(), dim=-1)
        reconstruction = torch.empty(count, device=x.device)
        kl = torch.empty(count, device=x.device)
        classification = torch.zeros(count, device=x.device)
        entropy = torch.zeros(count, device=x.device)

        labelled = torch.nonzero(known).squeeze(1)
        if len(labelled):
            y = batch.labels[labelled]
            reconstruction[labelled], kl[labelled] = self.negative_elbo_given(x[labelled], y)
            classification[labelled] = F.nll_loss(log_q[labelled], y, reduction="none")
        unlabelled = torch.nonzero(~known).squeeze(1)
        if len(unlabelled):
            classes = self.config.classes
            x_u = x[unlabelled]
            every = torch.arange(classes, device=x.device).repeat_interleave(len(x_u))
            reconstruction_y, kl_y = self.negative_elbo_given(
                x_u.repeat(classes, *([1] * (x.dim() - 1))), every)
            weights = log_q[unlabelled].exp().T  # (classes, unlabelled)
            reconstruction[unlabelled] = (weights * reconstruction_y.view(classes, -1)).sum(0)
            kl[unlabelled] = (weights * kl_y.view(classes, -1)).sum(0)
            entropy[unlabelled] = -(weights.T * log_q[unlabelled]).sum(-1)
        # -ELBO of log p(x, y) (labelled) or of log p(x) (unlabelled).
        negative_elbo = reconstruction + kl - log_prior_y - entropy
        training = reconstruction + kl_weight * self.config.beta * kl - log_prior_y - entropy
        training = training + self.alpha * classification
        # Each part counts as the mean over its own examples, weighed equally ("batch", and
        # outside training) or by the part's share of the training data ("data").
        fraction = self.labelled_fraction if self.training else None
        if fraction is not None and not self.stratified:
            # Uniformly drawn batches hold each part at its share on average: the plain batch
            # mean is the unbiased estimate (reweighing by the labels a batch happens to hold
            # would drop the labelled part from every batch that holds none).
            share = torch.ones_like(training)
        else:
            labelled_weight, unlabelled_weight = ((1.0, 1.0) if fraction is None
                                                  else (fraction, 1.0 - fraction))
            share = torch.where(known, labelled_weight * count / max(len(labelled), 1),
                                unlabelled_weight * count / max(len(unlabelled), 1))
        return LossOutput(
            loss=share * training,
            terms={"reconstruction": reconstruction, "kl": kl, "classification": classification,
                   "label_entropy": entropy},
            elbo=-negative_elbo,
        )

    # ----- classifying ---------------------------------------------------------------------
    def predict_proba(self, x, *, batch_size: int = 1024):
        """q(y|x) per example."""
        tensor, as_numpy = self._prepare(x)
        probabilities = self._in_batches(lambda piece: F.softmax(self.class_logits(piece), -1),
                                         tensor, batch_size)
        return self._output(probabilities, as_numpy)

    def predict(self, x, *, batch_size: int = 1024):
        """The most probable class under q(y|x)."""
        return np.asarray(self.predict_proba(np.asarray(x) if not torch.is_tensor(x) else x,
                                             batch_size=batch_size)).argmax(axis=1)

    def reconstruct_batch(self, batch) -> torch.Tensor:
        """Decoded through each example's label where the batch has one, else the class q(y|x)
        finds most probable."""
        x = batch.x
        labels = self.class_logits(x).argmax(-1)
        if batch.labels is not None:
            known = (batch.label_known if batch.label_known is not None
                     else torch.ones_like(labels, dtype=torch.bool))
            labels = torch.where(known, batch.labels.to(labels.dtype), labels)
        condition = F.one_hot(labels, self.config.classes).float()
        return self.likelihood.mean(self.decoder(self.conditional_posterior(x, labels).mean,
                                                 condition))

    def log_importance_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x, y, z) - log q(y|x) q(z|x, y) for k draws of (y, z), shaped (k, N): their
        log-mean-exp estimates log p(x) with y summed out (a lower bound, exact as k grows)."""
        count = len(x)
        log_q_y = F.log_softmax(self.class_logits(x), dim=-1)
        labels = torch.distributions.Categorical(logits=log_q_y).sample((k,))  # (k, N)
        repeated = x.repeat(k, *([1] * (x.dim() - 1)))
        flat = labels.reshape(-1)
        q = self.conditional_posterior(repeated, flat)
        z = q.rsample()
        condition = F.one_hot(flat, self.config.classes).float()
        log_weights = (self.likelihood.log_prob(repeated, self.decoder(z, condition))
                       + self.prior.log_prob(z) - q.log_prob(z)
                       - math.log(self.config.classes) - log_q_y.gather(1, labels.T).T.reshape(-1))
        return log_weights.view(k, count)

    def decode(self, z, *, labels=None, batch_size: int = 1024):
        """Mean of p(x|y, z) for the class(es) ``labels`` (one class, or one per code)."""
        if labels is None:  # what decodes codes alone (an ex-post sampler, a path) cannot use it
            raise UnsupportedMethodError(f"{self.name} decodes a code only together with a "
                                         "class: pass labels=")
        return Conditioned.decode(self, z, labels=labels, batch_size=batch_size)

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        return Conditioned.one_hot(self, labels)

    def encode_tensor(self, x, sample=False):
        """Codes of z given the class q(y|x) finds most probable."""
        q = self.conditional_posterior(x, self.class_logits(x).argmax(-1))
        return (q.rsample() if sample else q.mean), q.variance

    def sample(self, n: int, *, labels=None, seed: int | None = None, as_numpy: bool = True):
        """Decode ``n`` prior draws as class(es) ``labels`` (default: drawn from p(y))."""
        check_sample_request(n, seed)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        codes = self.sample_latent(n, seed)
        if labels is None:
            labels = torch.randint(self.config.classes, (n,), generator=generator)
        elif np.ndim(labels) == 0:
            labels = torch.full((n,), _one_class(labels), dtype=torch.int64)
        else:
            labels = _as_tensor(labels, "labels", torch.int64)
            if labels.shape != (n,):
                raise ValueError(f"expected one class or {n} labels, got shape "
                                 f"{tuple(labels.shape)}")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.config.classes):
            raise ValueError(f"labels must be classes 0..{self.config.classes - 1}")
        with torch.no_grad():
            was_training = self.training
            self.eval()
            condition = F.one_hot(labels.long(), self.config.classes).float().to(self.device)
            decoded = self.likelihood.mean(self.decoder(codes.to(self.device), condition))
            self.train(was_training)
        return self._output(decoded, as_numpy)


# fit_m1_m2's M2 over a VAE's codes: real-valued inputs, so a Gaussian decoder with a variance per
# code dimension, and Kingma et al.'s weighting of the labelled part.
M1_M2_OPTIONS = {"likelihood": "gaussian-learned", "likelihood_options": {"per_dimension": True},
                 "labelled_share": "data"}


def fit_m1_m2(m1, x, *, labels, label_known, m2_options: dict | None = None, **fit_options):
    """M1+M2 (Kingma et al. 2014): an M2 trained on the posterior means of a trained VAE ``m1``,
    with a Gaussian decoder over the codes and ``labelled_share="data"`` (Kingma et al.'s
    objective: on M1's codes it beat equal weights, 4.8% against 7.6% test error on MNIST
    with 100 labels at 10 epochs; see benchmarks/results/labels_ablation.md). Returns the M2;
    classify new data with ``m2.predict(m1.encode(x))``."""
    codes = np.asarray(m1.encode(x))
    if fit_options.get("validation") is not None:  # validation data too live in code space
        fit_options["validation"] = np.asarray(m1.encode(fit_options["validation"]))
    options = {"latent_dim": m1.latent_dim, **M1_M2_OPTIONS, **(m2_options or {})}
    m2 = M2(input_shape=(codes.shape[1],), **options)
    return m2.fit(codes, labels=labels, label_known=label_known, **fit_options)
