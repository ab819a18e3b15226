"""What every autoencoder shares: networks, likelihood, prior, the public API and persistence.

A variant overrides only what makes it different: how x is encoded (``posterior``), and the
named per-example loss terms (``loss``). Everything else (encode, decode, reconstruct, sample,
interpolate, save, load) lives here once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import math
import numbers
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..checks import is_whole
from ..data.validation import check_float32_rounding, example_shape_problem
from ..io import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CorruptFileError,
    atomic_write_json,
    load_tensors,
    one_line,
    read_json,
    save_tensors,
)
from ..likelihoods import LIKELIHOODS, make_likelihood
from ..nets import NETWORKS, build_decoder, build_encoder
from ..nets.registry import estimated_parameters
from ..priors import PRIORS, make_prior
from .registry import model_class


@contextlib.contextmanager
def seeded(seed: int, stream: int = 0):
    """Draw from torch's global generator seeded by (seed, stream), restoring it afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1000 + stream)
        yield


class UnsupportedMethodError(ValueError):
    """A public method the model cannot offer (``Autoencoder.unsupported`` says why)."""


class NoLikelihoodError(TypeError):
    """Raised when a likelihood is asked of a model that defines none (a deterministic AE)."""


_INVALID = object()
_EXPECTED = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
             dict: "a JSON object"}
_EXPECTED_ITEMS = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}


def _converted(value, annotation):
    """``value`` as the type ``annotation`` names, or _INVALID. Options come from JSON and the
    command line, so a string is never read as a number nor a bool as either."""
    origin = typing.get_origin(annotation) or annotation
    is_bool = isinstance(value, (bool, np.bool_))
    if origin is bool:
        return bool(value) if is_bool else _INVALID
    if origin is int:
        return int(value) if is_whole(value) else _INVALID
    if origin is float:
        if isinstance(value, numbers.Real) and not is_bool and math.isfinite(value):
            return float(value)
        return _INVALID
    if origin is str:
        return value if isinstance(value, str) else _INVALID
    if origin is dict:
        return dict(value) if isinstance(value, dict) else _INVALID
    if origin is tuple:
        element = (typing.get_args(annotation) or (Any,))[0]
        if is_whole(value):
            value = (value,)  # one hidden width, say, given as a bare number
        if isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable):
            return _INVALID
        items = tuple(_converted(item, element) for item in value)
        return _INVALID if any(item is _INVALID for item in items) else items
    return value  # a type without a rule here is left to the config's own checks


def _checked_option(name: str, value, annotation):
    """``value`` converted to the field's type, or ValueError naming the option."""
    arguments = typing.get_args(annotation)
    optional = (typing.get_origin(annotation) in (typing.Union, types.UnionType)
                and type(None) in arguments)
    if optional:
        if value is None:
            return None
        annotation = next(argument for argument in arguments if argument is not type(None))
    converted = _converted(value, annotation)
    if converted is _INVALID:
        origin = typing.get_origin(annotation) or annotation
        if origin is tuple:
            element = (typing.get_args(annotation) or (None,))[0]
            expected = f"a list of {_EXPECTED_ITEMS.get(element, 'values')}"
        else:
            expected = _EXPECTED[origin]
        raise ValueError(
            f"option {name}: expected {expected}{' or null' if optional else ''}, got {value!r}"
        )
    return converted


def checked_missing(x, observed) -> tuple[np.ndarray, np.ndarray]:
    """(x as float32, the observed mask as booleans) for imputation: the mask shaped like x and
    every observed entry finite (the missing ones may hold anything, NaN typically)."""
    observed = np.asarray(observed, dtype=bool)
    values = np.asarray(x, dtype=np.float32)
    if observed.shape != values.shape:
        raise ValueError(f"the mask must be shaped like x {values.shape}, got {observed.shape}")
    if not np.isfinite(values[observed]).all():
        raise ValueError("observed entries must be finite")
    return values, observed


@functools.cache
def _field_types(cls) -> dict:
    return typing.get_type_hints(cls)


def _part_options(kind: str, name: str, part: type, options: dict) -> dict:
    """A likelihood's or prior's options checked by name and declared type, as the config's own
    are: they come from JSON and the command line too."""
    accepted = list(inspect.signature(part.__init__).parameters)[2:]  # after self and the size
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"{kind}_options: unexpected keyword(s) {', '.join(unknown)} for the "
                         f"{name} {kind} (it takes: {', '.join(accepted) or 'none'})")
    hints = typing.get_type_hints(part.__init__)
    return {key: _checked_option(f"{kind}_options.{key}", value, hints.get(key, Any))
            for key, value in options.items()}


def _float_tensor(value, name: str) -> torch.Tensor:
    """``value`` (array, nested list or tensor) as a float32 tensor; anything but finite real
    numbers raises ValueError naming ``name``."""
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise ValueError(f"{name} must hold real numbers; got a {value.dtype} tensor")
        tensor = value.to(torch.float32)
        if value.dim() and value.numel() and bool(torch.isfinite(tensor).all()):
            check_float32_rounding(value, name, ValueError)  # (not finite: said below)
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} is not an array of numbers ({one_line(error, 200)})"
                             ) from None
        if array.dtype.kind not in "biuf":
            raise ValueError(f"{name} must hold numbers; got dtype {array.dtype}")
        with np.errstate(over="ignore"):
            # Contiguous: torch takes no negative strides (x[::-1], np.flip).
            tensor = torch.as_tensor(np.ascontiguousarray(array, dtype=np.float32))
        if array.size and array.ndim and np.isfinite(tensor.numpy()).all():
            check_float32_rounding(array, name, ValueError)
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        raise ValueError(f"{name} holds {int((~finite).sum())} NaN or infinite value(s) (in "
                         "float32, beyond about 3.4e38); the model needs finite numbers")
    return tensor


def _module_device(module: nn.Module) -> torch.device:
    return next((tensor.device for tensor in module.state_dict().values()), torch.device("cpu"))


def check_impute_options(options: dict, ignored: tuple[str, ...]) -> None:
    """The options of the other imputation method are taken and ignored (callers pass one
    set to any model); any other name is a mistake, not silently ignored."""
    unknown = sorted(set(options) - set(ignored))
    if unknown:
        raise TypeError(f"impute got unexpected option(s) {', '.join(unknown)}")


def check_sample_request(n, seed) -> None:
    if not is_whole(n) or n < 1:
        raise ValueError(f"n must be an integer of at least 1, got {n!r}")
    if seed is not None and (not is_whole(seed) or not 0 <= seed < 2**64):
        raise ValueError(f"seed must be None or an integer in [0, 2**64), got {seed!r}")


def check_model_size(config) -> None:
    """ValueError naming the option when the networks' parameters alone would not fit in the
    memory available now: said before any tensor is allocated, not by the allocator."""
    from ..training.devices import available_memory

    parameters = estimated_parameters(config.network, config.input_shape, config.latent_dim,
                                      config.hidden, config.activation)
    needed = 4 * parameters  # float32
    available = available_memory()
    if available is None or needed <= available:
        return
    widest = max(config.hidden, default=0)
    if config.latent_dim >= widest:
        culprit = f"latent_dim {config.latent_dim}"
    elif widest >= math.prod(config.input_shape):
        culprit = f"hidden {','.join(map(str, config.hidden))}"
    else:
        culprit = (f"input_shape {tuple(config.input_shape)} with hidden "
                   f"{','.join(map(str, config.hidden))}")
    raise ValueError(f"{culprit} needs up to {needed / 2**30:,.0f} GiB for the model's "
                     f"{parameters:.2g} parameters; this machine has "
                     f"{available / 2**30:,.0f} GiB of memory available")


@dataclass
class AutoencoderConfig:
    """Options every model shares. Saved as JSON beside the weights; all ``load`` needs."""

    # The shape of one example, e.g. (1, 28, 28) or (30,).
    input_shape: tuple[int, ...]
    # Size of the code z.
    latent_dim: int = 16
    # Encoder/decoder architecture: mlp, conv, linear, locatello_mlp, recurrent (see
    # `aevae models`).
    network: str = "mlp"
    # Hidden widths of the encoder; the decoder mirrors them.
    hidden: tuple[int, ...] = (512,)
    # Hidden activation: relu, leaky_relu, elu, gelu, tanh, softplus, silu, or gated layers.
    activation: str = "relu"
    # Normalisation after each hidden layer: none, batch or layer.
    norm: str | None = None
    # Weight initialisation: default (torch's), xavier, kaiming or orthogonal.
    init: str = "default"
    # Decoder likelihood p(x|z): bernoulli, gaussian, gaussian-learned or student-t.
    likelihood: str = "bernoulli"
    # Options of the likelihood, e.g. {"sigma": 0.1} or {"per_dimension": true}.
    likelihood_options: dict = field(default_factory=dict)
    # Prior p(z): standard-normal, mixture or vamp.
    prior: str = "standard-normal"
    # Options of the prior, e.g. {"components": 10} or {"pseudo_inputs": 500}.
    prior_options: dict = field(default_factory=dict)
    # Denoising: std of Gaussian noise added to the encoder's input in training (any model).
    input_noise_std: float = 0.0
    # Denoising: share of input values set to 0 for the encoder in training (any model).
    input_mask_fraction: float = 0.0
    # Seeds the weight initialisation, so the same options build the same model.
    seed: int = 0

    def __post_init__(self):
        annotations = _field_types(type(self))
        for option in dataclasses.fields(self):
            value = getattr(self, option.name)
            setattr(self, option.name,
                    _checked_option(option.name, value, annotations[option.name]))
        if not self.input_shape or min(self.input_shape) < 1:
            raise ValueError(f"input_shape must be positive sizes, got {self.input_shape}")
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be at least 1, got {self.latent_dim}")
        if any(width < 1 for width in self.hidden):
            raise ValueError(f"hidden widths must be positive, got {self.hidden}")
        for name, known in (("network", NETWORKS), ("likelihood", LIKELIHOODS),
                            ("prior", PRIORS)):
            if getattr(self, name) not in known:
                raise ValueError(
                    f"unknown {name} {getattr(self, name)!r}; known: {', '.join(sorted(known))}"
                )
        if not 0.0 <= self.input_mask_fraction < 1.0:
            raise ValueError("input_mask_fraction must be in [0, 1)")
        if self.input_noise_std < 0:
            raise ValueError("input_noise_std must be non-negative")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be in [0, 2**32), got {self.seed}")
        self.likelihood_options = _part_options("likelihood", self.likelihood,
                                                LIKELIHOODS[self.likelihood],
                                                self.likelihood_options)
        self.prior_options = _part_options("prior", self.prior, PRIORS[self.prior],
                                           self.prior_options)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_options(cls, options: dict, *, check_size: bool = True):
        """The config ``options`` describe, checked; with ``check_size``, also that the
        networks' parameters fit in the memory available (before anything is allocated)."""
        fields = dataclasses.fields(cls)
        known = {f.name for f in fields}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(unknown)}; options: {', '.join(sorted(known))}"
            )
        missing = [f.name for f in fields if f.name not in options
                   and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ValueError(f"missing option(s) {', '.join(missing)}")
        config = cls(**options)
        if check_size:
            check_model_size(config)
        return config


@dataclass
class LossOutput:
    """Per-example loss terms in nats. ``loss`` is what training minimises (weights applied);
    ``terms`` are unweighted; ``elbo`` is the evidence lower bound where the model has one."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    elbo: torch.Tensor | None = None


class Autoencoder(nn.Module):
    """Shared base. Subclasses set ``name``, ``description``, ``Config`` and implement
    ``encode_tensor`` and ``loss``."""

    name: ClassVar[str]
    description: ClassVar[str]
    Config: ClassVar[type[AutoencoderConfig]] = AutoencoderConfig
    # How many numbers per latent dimension the encoder emits (VAE: mean and log-variance).
    posterior_parameters: ClassVar[int] = 1
    # Whether the model defines a likelihood (ELBO, importance-sampled log p(x)).
    has_likelihood: ClassVar[bool] = False
    # Whether training pulls the codes towards the prior, so that decoding prior draws is
    # something the model was trained for (a plain AE's codes go wherever they like).
    trains_prior: ClassVar[bool] = False
    # Whether the model hands priors built from q(z|x) (the VampPrior) its posterior.
    binds_prior: ClassVar[bool] = False
    # Batch fields besides x the model reads (labels, label_known, observed, lengths); see
    # aevae.data.batch. A model that needs only x implements ``loss`` and never sees them.
    uses: ClassVar[tuple[str, ...]] = ()
    # Whether ``fit`` solves for the weights in closed form instead of training (pca, ppca).
    closed_form: ClassVar[bool] = False
    # Whether the loss has a term the KL weight (``kl_schedule``) scales: the KL, or what a
    # deterministic model puts in its place (WAE's MMD, the adversarial AE's penalty).
    weighs_kl: ClassVar[bool] = True
    # Whether the shared network and likelihood options (hidden, likelihood) apply to it.
    shares_network: ClassVar[bool] = True
    # A method x -> exact per-example log p(x) (nats) where the model has one (ppca), else None.
    exact_log_likelihood: ClassVar[Any] = None
    # Public methods the model cannot offer, with why: said in one line instead of a crash
    # deep in its networks (a decoder that needs a class, a latent per time step).
    unsupported: ClassVar[dict[str, str]] = {}

    def require(self, method: str) -> None:
        """UnsupportedMethodError naming ``method`` and why, when the model does not offer it."""
        if method in self.unsupported:
            raise UnsupportedMethodError(
                f"{self.name} has no {method}(): {self.unsupported[method]}")

    def __init__(self, config: AutoencoderConfig | None = None, *, encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None, **options):
        super().__init__()
        if config is None:
            config = self.Config.from_options(options)
        elif options:
            raise ValueError("pass either a config or keyword options, not both")
        self.config = config
        network_options = self.network_options()
        self.custom_networks = encoder is not None or decoder is not None
        if config.network == "recurrent" and "lengths" not in self.uses and decoder is None:
            raise ValueError(f"the recurrent network decodes sequences step by step, reading the "
                             f"previous step: {self.name} decodes a code alone; use it with "
                             "sequence_vae, or another network")
        with self.seeded_initialisation(0):
            self.encoder = encoder if encoder is not None else build_encoder(
                config.network, config.input_shape,
                config.latent_dim * self.posterior_parameters, **network_options,
            )
            self.decoder = decoder if decoder is not None else build_decoder(
                config.network, config.latent_dim,
                self.decoder_output_shape, **network_options
            )
            self.likelihood = make_likelihood(
                config.likelihood, config.input_shape, **config.likelihood_options
            )
            self.prior = make_prior(config.prior, config.latent_dim, **config.prior_options)
        if self.prior.uses_posterior and not self.binds_prior:
            raise ValueError(f"the {config.prior} prior is built from a posterior q(z|x), which "
                             f"{self.name} does not have; use it with a VAE")
        if self.custom_networks:
            self._check_custom_networks(encoder, decoder)

    def _check_custom_networks(self, encoder, decoder) -> None:
        """Your own networks follow the contract (docs/models/index.md): one probe pass on a
        batch of two. A 3-wide encoder for a 2-d VAE trained and scored on a log-variance
        broadcast across dimensions, silently."""
        for name, network in (("encoder", encoder), ("decoder", decoder)):
            if network is not None and not isinstance(network, nn.Module):
                raise TypeError(f"{name}= must be a torch.nn.Module, got {type(network).__name__}")
        if {"labels", "lengths"} & set(self.uses) or self.name.startswith("hierarchical"):
            return  # networks of another shape (conditioned, sequences, hierarchies)
        config = self.config
        checks = []
        if encoder is not None:
            checks.append(("encoder", encoder, (2, *config.input_shape),
                           (2, config.latent_dim * self.posterior_parameters)))
        if decoder is not None:
            checks.append(("decoder", decoder, (2, config.latent_dim),
                           (2, *self.decoder_output_shape)))
        for name, network, size, expected in checks:
            training = network.training
            network.eval()  # no batch-norm statistics moved by the probe
            try:  # on the network's own device (the meta device when a run is loaded)
                with torch.no_grad():
                    probe = torch.zeros(size, device=_module_device(network))
                    shape = tuple(network(probe).shape)
            except Exception as error:  # noqa: BLE001 (any failure: say which network)
                raise ValueError(f"{name}= fails on a batch shaped {size}: "
                                 f"{one_line(error, 200)}") from None
            finally:
                network.train(training)
            if shape != expected:
                raise ValueError(f"{name}= gives outputs shaped {shape} for a batch shaped "
                                 f"{size}; {self.name} needs {expected}")

    def training_refusal(self) -> str | None:
        """Why this configuration is not trained (a prior it would never fit, an option its
        objective ignores), or None. Checked when a model is made and when it is trained, not
        when a saved one is loaded: runs that older versions trained still load."""
        if not self.trains_prior and self.config.prior != "standard-normal":
            # Sampling such a model decodes prior draws its training never saw; an untrained
            # mixture would only make those draws arbitrary.
            return (f"{self.name} does not fit its codes to a prior, so a {self.config.prior} "
                    "prior would stay as it was initialised: keep the standard-normal prior, "
                    "or fit a density to its codes after training (aevae.ExPostSampler)")
        return None

    def network_options(self) -> dict:
        """The options the network registry builds this model's encoder and decoder with."""
        return {"hidden": self.config.hidden, "activation": self.config.activation,
                "norm": self.config.norm, "init": self.config.init}

    def seeded_initialisation(self, stream: int = 1):
        """Build modules with weights drawn from ``config.seed`` (and a per-part ``stream``)
        without touching the caller's global random state. Variants that add modules in their
        own ``__init__`` build them inside this block."""
        return seeded(self.config.seed, stream)

    # ----- what variants implement -------------------------------------------------------
    def encode_tensor(self, x: torch.Tensor, sample: bool = False):
        """(codes, variance or None) for a batch tensor; codes are E[z|x] unless ``sample``."""
        raise NotImplementedError

    def loss(self, x: torch.Tensor, *, kl_weight: float = 1.0, step: int | None = None
             ) -> LossOutput:
        """Named per-example terms. ``kl_weight`` comes from the training schedule; ``step`` is
        the global training step (None outside training) for models whose target moves."""
        raise NotImplementedError

    @property
    def loss_uses_step(self) -> bool:
        """Whether the training loss reads ``step`` (a step replayed from a CUDA graph would
        see the step it was captured at, so such a model trains eagerly)."""
        return False

    def prepare_training(self, data, count: int, labelled_per_batch: int | None = None) -> None:
        """Shown the training data (a Batch, or None when it is streamed), its size and how
        batches are drawn (``labelled_per_batch`` labelled examples in each, or None: uniformly)
        before training starts, for what depends on the whole set (beta-TCVAE's
        minibatch-weighted sampling needs N; M2 weighs its classifier by the share of known
        labels). Most models ignore it."""

    def batch_loss(self, batch, *, kl_weight: float = 1.0, step: int | None = None
                   ) -> LossOutput:
        """The loss of a named batch (``aevae.data.batch.Batch``): what training calls.
        Models that read more than x override this; the others implement ``loss``."""
        return self.loss(batch.x, kl_weight=kl_weight, step=step)

    def auxiliary_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by ``auxiliary_loss`` with their own optimizer (an adversarial
        model's discriminator); the main optimizer leaves them alone."""
        return []

    def auxiliary_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Scalar loss for ``auxiliary_parameters``, minimised after each main step."""
        raise NotImplementedError

    # ----- shared pieces -------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.config.input_shape

    @property
    def decoder_output_shape(self) -> tuple[int, ...]:
        """What a decoder of this model outputs: the likelihood's parameters for one example
        (the data's shape, or a multiple of it along the first axis)."""
        return LIKELIHOODS[self.config.likelihood].output_shape(self.config.input_shape)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's input: x itself, or a corrupted copy while training a denoising model."""
        if not self.training:
            return x
        if self.config.input_noise_std > 0:
            x = x + self.config.input_noise_std * torch.randn_like(x)
        if self.config.input_mask_fraction > 0:
            x = x * (torch.rand_like(x) >= self.config.input_mask_fraction)
        return x

    def decoder_output(self, z: torch.Tensor) -> torch.Tensor:
        """Raw decoder output (likelihood parameters); z may have leading sample dimensions."""
        if z.dim() == 2:
            return self.decoder(z)
        leading = z.shape[:-1]
        output = self.decoder(z.reshape(-1, z.shape[-1]))
        return output.view(*leading, *output.shape[1:])

    def reconstruction_log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per example; z shaped (N, D) or (S, N, D) giving (N,) or (S, N)."""
        return self.likelihood.log_prob(x, self.decoder_output(z))

    # ----- public API on arrays or tensors ----------------------------------------------------
    def _prepare(self, x, name: str = "x", scored: bool = False) -> tuple[torch.Tensor, bool]:
        """x as a float tensor batch on the model's device, and whether it came as numpy.
        ``scored``: the likelihood will score x, so x must lie in its support ([0, 1] for a
        Bernoulli decoder: 0-255 pixels would get impossible log-probabilities)."""
        as_numpy = not isinstance(x, torch.Tensor)
        tensor = _float_tensor(x, name)
        batch = f"(N, {', '.join(map(str, self.input_shape))})"
        if self._single(tensor):
            raise ValueError(
                f"expected a batch shaped {batch}, got a "
                f"single example shaped {tuple(tensor.shape)}; add a leading batch dimension"
            )
        if tensor.dim() == 0:
            raise ValueError(f"expected a batch shaped {batch}, got a single number")
        if tensor.dim() == 1:
            raise ValueError(f"expected a batch shaped {batch}, got {tuple(tensor.shape)}")
        if tuple(tensor.shape[1:]) != self.input_shape:
            if problem := example_shape_problem(tensor.shape[1:], self.input_shape):
                raise ValueError(f"{name}: {problem}")
            tensor = tensor.reshape(tensor.shape[0], *self.input_shape)
        if len(tensor) == 0:
            raise ValueError(f"{name} is an empty batch shaped {tuple(tensor.shape)}")
        if scored and self.likelihood.needs_unit_interval:
            low, high = tensor.min().item(), tensor.max().item()
            if low < 0 or high > 1:
                raise ValueError(
                    f"{name} holds values from {low:g} to {high:g}, but the "
                    f"{self.likelihood.name} decoder scores values in [0, 1] only: scale x as "
                    "the training data was (e.g. pixels / 255)")
        return tensor.to(self.device), as_numpy

    def _single(self, tensor: torch.Tensor) -> bool:
        """Whether a tensor is one example (its shape, or its values flat), not a batch."""
        return tuple(tensor.shape) == self.input_shape or (
            tensor.dim() == 1 and len(tensor) == math.prod(self.input_shape))

    @staticmethod
    def _output(tensor: torch.Tensor, as_numpy: bool):
        return tensor.cpu().numpy() if as_numpy else tensor

    def _in_batches(self, function, x: torch.Tensor, batch_size: int):
        """Apply ``function`` to slices of x in eval mode without gradients; concatenate."""
        if not is_whole(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer of at least 1, got {batch_size!r}")
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                pieces = [function(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        finally:
            self.train(was_training)
        if isinstance(pieces[0], tuple):
            return tuple(
                None if part[0] is None else torch.cat(part) for part in zip(*pieces)
            )
        if isinstance(pieces[0], dict):
            return {key: torch.cat([piece[key] for piece in pieces]) for key in pieces[0]}
        return torch.cat(pieces)

    def encode(self, x, *, sample: bool = False, return_variance: bool = False,
               batch_size: int = 1024, **fields):
        """Codes of x: the posterior mean (a VAE's E[z|x]), or one posterior sample with
        ``sample=True``; with ``return_variance=True`` also the posterior variance (VAEs).
        ``fields`` (e.g. lengths=) for the models that read them."""
        batch, as_numpy = self.make_batch(x, **fields)
        codes, variance = self._in_batches(
            lambda piece: self.encode_batch(piece, sample=sample), batch, batch_size
        )
        if return_variance:
            if variance is None:
                raise NoLikelihoodError(f"{self.name} is deterministic: its codes have no variance")
            return self._output(codes, as_numpy), self._output(variance, as_numpy)
        return self._output(codes, as_numpy)

    def decode(self, z, *, batch_size: int = 1024):
        """Mean of p(x|z) (pixel probabilities for a Bernoulli decoder)."""
        as_numpy = not isinstance(z, torch.Tensor)
        tensor = _float_tensor(z, "codes")
        if tensor.dim() != 2 or tensor.shape[1] != self.latent_dim or len(tensor) == 0:
            raise ValueError(
                f"expected codes shaped (N, {self.latent_dim}) with N >= 1, got "
                f"{tuple(tensor.shape)}"
            )
        tensor = tensor.to(self.device)
        decoded = self._in_batches(
            lambda batch: self.likelihood.mean(self.decoder(batch)), tensor, batch_size
        )
        return self._output(decoded, as_numpy)

    def encode_batch(self, batch, sample: bool = False):
        """(codes, variance or None) of a Batch; models that read more than x override it."""
        return self.encode_tensor(batch.x, sample=sample)

    def reconstruct_batch(self, batch) -> torch.Tensor:
        """The decoder's mean at the codes of a Batch."""
        return self.likelihood.mean(self.decoder(self.encode_batch(batch)[0]))

    def reconstruct(self, x, *, batch_size: int = 1024, **fields):
        batch, as_numpy = self.make_batch(x, **fields)
        decoded = self._in_batches(self.reconstruct_batch, batch, batch_size)
        return self._output(decoded, as_numpy)

    def sample_latent(self, n: int, seed: int | None = None) -> torch.Tensor:
        generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            return self.prior.sample(int(n), generator=generator)

    def sample(self, n: int, *, seed: int | None = None, as_numpy: bool = True):
        """Decode ``n`` draws from the prior; returns the decoder means."""
        check_sample_request(n, seed)
        decoded = self.decode(self.sample_latent(n, seed))
        return self._output(decoded, as_numpy)

    def interpolate(self, x_start, x_end, steps: int = 10):
        """Decode the straight line between the codes of two examples (or two equal batches).
        Returns (steps, *shape) for single examples, (N, steps, *shape) for batches."""
        if not is_whole(steps) or steps < 2:
            raise ValueError(f"steps must be an integer of at least 2, got {steps!r}")
        self.require("interpolate")
        as_numpy = not isinstance(x_start, torch.Tensor)
        start, end = _float_tensor(x_start, "x_start"), _float_tensor(x_end, "x_end")
        single = self._single(start)
        if single:
            start, end = start[None], end[None]
        start, _ = self._prepare(start, "x_start")
        end, _ = self._prepare(end, "x_end")
        if start.shape != end.shape:
            raise ValueError("x_start and x_end must have the same shape")
        code_start = self.encode(start)
        code_end = self.encode(end)
        fractions = torch.linspace(0, 1, steps, device=code_start.device)[None, :, None]
        path = code_start[:, None] + fractions * (code_end - code_start)[:, None]
        decoded = self.decode(path.reshape(-1, self.latent_dim))
        decoded = decoded.view(len(start), steps, *self.input_shape)
        return self._output(decoded[0] if single else decoded, as_numpy)

    def vary(self, x, n: int, *, sample_likelihood: bool = False, seed: int | None = 0):
        """``n`` variations of each example of x, shaped (len(x), n, *shape): decoded draws
        z ~ q(z|x) (the decoder's mean, or a draw from p(x|z) with ``sample_likelihood``). A
        deterministic model has one code per input, so its variations all equal the
        reconstruction (unless ``sample_likelihood`` adds the decoder's noise)."""
        self.require("vary")
        if not is_whole(n) or n < 1:
            raise ValueError(f"n must be a whole number of at least 1, got {n!r}")
        tensor, as_numpy = self._prepare(x)
        repeated = tensor.repeat_interleave(int(n), dim=0)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)

            def draw(piece):
                codes, _ = self.encode_tensor(piece, sample=self.has_likelihood)
                output = self.decoder(codes)
                return (self.likelihood.sample(output) if sample_likelihood
                        else self.likelihood.mean(output))

            decoded = self._in_batches(draw, repeated, 1024)
        return self._output(decoded.reshape(len(tensor), int(n), *self.input_shape), as_numpy)

    def impute(self, x, observed, *, iterations: int = 20, start=None, **options):
        """Fill the missing entries of x (``observed`` false; NaN there is fine) by iterated
        reconstruction: start from ``start`` (per-dimension values, default 0), reconstruct,
        put the reconstruction's values into the missing entries, and repeat. Observed entries
        are returned exactly as given. (MIWAE overrides this with importance sampling; its
        options, ``seed`` say, are taken and have nothing to do here.)"""
        self.require("impute")
        check_impute_options(options, ignored=("samples", "multiple", "seed", "batch_size"))
        values, observed = checked_missing(x, observed)
        if not is_whole(iterations) or iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {iterations!r}")
        fill = np.zeros(values.shape[1:], np.float32)
        if start is not None:
            try:
                fill = np.broadcast_to(np.asarray(start, dtype=np.float32), values.shape[1:])
            except (TypeError, ValueError):
                raise ValueError(f"start must be one value or one per data dimension "
                                 f"{values.shape[1:]}, got shape {np.shape(start)}") from None
            if not np.isfinite(fill).all():
                raise ValueError("start holds values that are not finite")
        current = np.where(observed, values, fill[None]).astype(np.float32)
        for _ in range(int(iterations)):
            reconstruction = np.asarray(self.reconstruct(current)).reshape(values.shape)
            current = np.where(observed, values, reconstruction).astype(np.float32)
        return current

    def dimension_usage(self, x) -> np.ndarray:
        """How much each latent dimension is used on x: its mean KL to N(0, 1) for models with a
        posterior, else the variance of its codes."""
        self.require("dimension_usage")
        if self.has_likelihood:
            means, variances = self.encode(x, return_variance=True)
            means, variances = np.asarray(means), np.asarray(variances)
            return 0.5 * (means**2 + variances - 1.0 - np.log(variances)).mean(axis=0)
        return np.asarray(self.encode(x)).var(axis=0)

    def traverse(self, x, *, dimensions=6, steps: int = 7, span: float = 2.0,
                 anchor: int = 0):
        """Latent traversals: each dimension swept on its own over its codes' mean +- ``span``
        standard deviations (codes of x), the others held at the code of ``x[anchor]``.

        ``dimensions``: a count (the most used ones, see ``dimension_usage``) or a list.
        Returns (decoded, dimensions): decoded shaped (len(dimensions), steps, *input_shape).
        """
        self.require("traverse")
        if not is_whole(steps) or steps < 2:
            raise ValueError(f"steps must be a whole number of at least 2, got {steps!r}")
        tensor, as_numpy = self._prepare(x)
        codes = np.asarray(self.encode(tensor.cpu().numpy()))
        if is_whole(dimensions):
            if dimensions < 1:
                raise ValueError(f"dimensions must be at least 1, got {dimensions}")
            order = np.argsort(-self.dimension_usage(tensor.cpu().numpy()), kind="stable")
            chosen = order[: min(dimensions, self.latent_dim)]
        else:
            chosen = np.asarray(dimensions, dtype=np.int64)
            if chosen.size == 0 or chosen.min() < 0 or chosen.max() >= self.latent_dim:
                raise ValueError(f"dimensions must lie in 0..{self.latent_dim - 1}")
        if not is_whole(anchor) or not 0 <= anchor < len(codes):
            raise ValueError(f"anchor must index x (0..{len(codes) - 1}), got {anchor}")
        offsets = np.linspace(-span, span, steps, dtype=np.float32)
        grid = np.repeat(codes[anchor:anchor + 1], len(chosen) * steps, axis=0)
        for row, dimension in enumerate(chosen):
            centre, spread = codes[:, dimension].mean(), codes[:, dimension].std()
            grid[row * steps:(row + 1) * steps, dimension] = centre + offsets * spread
        decoded = self.decode(grid).reshape(len(chosen), steps, *self.input_shape)
        return self._output(torch.as_tensor(decoded), as_numpy), chosen

    def make_batch(self, x, name: str = "x", *, scored: bool = False, **fields):
        """(Batch on the model's device, whether x came as numpy) from x and the fields this
        model uses; a field it does not use is an error rather than silently ignored.
        ``scored``: x must lie in the likelihood's support (``_prepare``)."""
        from ..data.batch import make_batch

        unused = sorted(field for field, value in fields.items()
                        if value is not None and field not in self.uses)
        if unused:
            reads = ", ".join(self.uses) or "nothing but x"
            raise ValueError(f"{self.name} does not use {', '.join(unused)} (it reads {reads})")
        tensor, as_numpy = self._prepare(x, name, scored=scored)
        return make_batch(tensor, fields, name).to(self.device), as_numpy

    def batch_loss_terms(self, batch, batch_size: int = 1024) -> dict:
        """Per-example ``loss``, each named term and ``elbo`` where defined, of a Batch, as
        tensors (eval mode, no gradients)."""

        def terms(piece):
            output = self.batch_loss(piece)
            values = {"loss": output.loss, **output.terms}
            if output.elbo is not None:
                values["elbo"] = output.elbo
            return values

        return self._in_batches(terms, batch, batch_size)

    def loss_terms(self, x, *, batch_size: int = 1024, **fields) -> dict:
        """Per-example ``loss``, each named term, and ``elbo`` where defined (eval mode);
        ``fields`` (labels=, observed=, lengths=, ...) for the models that use them."""
        batch, as_numpy = self.make_batch(x, scored=True, **fields)
        values = self.batch_loss_terms(batch, batch_size)
        return {key: self._output(value, as_numpy) for key, value in values.items()}

    def elbo(self, x, *, batch_size: int = 1024, **fields):
        if not self.has_likelihood:
            raise NoLikelihoodError(
                f"{self.name} is a deterministic autoencoder: it defines no likelihood p(x), so it "
                "has no ELBO; compare reconstruction terms, or fit a density to its codes"
            )
        return self.loss_terms(x, batch_size=batch_size, **fields)["elbo"]

    def log_likelihood(self, x, k: int = 5000, seed: int = 0, *, max_rows: int | None = None,
                       batch_size: int | None = None) -> np.ndarray:
        """Per-example importance-sampled log p(x) in nats with ``k`` samples z ~ q(z|x) (the
        IWAE_k bound), from ``seed`` alone: ``aevae.metrics.likelihood.log_likelihood_estimate``,
        the estimator the likelihood metrics and the scikit-learn facade use too (``max_rows``:
        its memory cap, by default its own). Raises NoLikelihoodError without a likelihood."""
        from ..metrics.likelihood import DEFAULT_MAX_ROWS, log_likelihood_estimate

        return log_likelihood_estimate(
            self, x, k=k, seed=seed, batch_size=batch_size,
            max_rows=DEFAULT_MAX_ROWS if max_rows is None else max_rows,
        )

    def fit(self, x, validation=None, **options):
        """Train on x (array, tensor, ``Batch``, Dataset or NpyStream): ``aevae.training.fit``,
        whose options (``TrainingConfig``'s fields, out=, resume=, ...) it takes."""
        from ..training import fit  # training imports models, not the reverse

        self.history_ = fit(self, x, validation=validation, **options)
        return self

    # ----- persistence -------------------------------------------------------------------
    def describe(self) -> dict:
        return {
            "model": self.name,
            "aevae_version": __version__,
            "custom_networks": self.custom_networks,
            "config": self.config.to_dict(),
        }

    def save(self, directory) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (both atomically) into ``directory``."""
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise FileExistsError(f"cannot save into {directory}: it is a file, and a model is "
                                  "saved as a folder")
        directory.mkdir(parents=True, exist_ok=True)
        save_tensors(directory / WEIGHTS_FILE, self.state_dict())
        atomic_write_json(directory / CONFIG_FILE, self.describe())
        return directory


def _read_config(path: Path) -> tuple[type[Autoencoder], AutoencoderConfig, dict]:
    """The model class, its checked config and the whole description in config.json. Only a
    registered model's name is accepted; any problem raises CorruptFileError naming the file."""
    description = read_json(path)
    try:
        if not isinstance(description, dict) or not isinstance(description.get("config"), dict):
            raise ValueError("expected an object with the keys 'model' and 'config'")
        if not isinstance(description.get("model"), str):
            raise ValueError("expected the key 'model' to name a model")
        cls = model_class(description["model"])
        # Sizes are checked against the weights first (build_saved): a file asking for more
        # than the weights hold is damaged, whatever the memory.
        config = cls.Config.from_options(description["config"], check_size=False)
    except (ValueError, TypeError) as error:
        raise CorruptFileError(f"{path}: {error}") from None
    return cls, config, description


_DOES_NOT_FIT = f"does not fit the model {CONFIG_FILE} describes"


def _check_weights_fit(expected: dict, state: dict, weights_path: Path) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        detail = "; ".join(f"{label}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                           for label, names in (("missing", missing), ("unexpected", unexpected))
                           if names)
        raise CorruptFileError(f"{weights_path}: {_DOES_NOT_FIT} ({detail})")
    for name, value in expected.items():
        if tuple(state[name].shape) != tuple(value.shape):
            raise CorruptFileError(
                f"{weights_path}: {_DOES_NOT_FIT} ({name} is {tuple(state[name].shape)} in the "
                f"file, {tuple(value.shape)} in the model)")


def build_saved(directory, *, encoder: nn.Module | None = None,
                decoder: nn.Module | None = None, state: dict | None = None) -> Autoencoder:
    """The model ``directory/config.json`` describes, freshly initialised (no weights loaded).

    It is first built on the meta device, which allocates nothing, and compared with the
    tensors of ``model.safetensors`` (or ``state``) where there are any: a config.json naming
    sizes the weights do not have (a damaged or hostile file asking for terabytes) fails there.
    """
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"no saved model in {directory}: {CONFIG_FILE} is missing")
    cls, config, description = _read_config(config_path)
    if description.get("custom_networks") and (encoder is None or decoder is None):
        raise ValueError(
            f"{directory} was trained with custom networks: pass encoder= and decoder= to load"
        )
    weights_path = directory / WEIGHTS_FILE
    if state is None and weights_path.is_file():
        state, _ = load_tensors(weights_path)
    try:
        if state is not None:
            with torch.device("meta"):
                outline = cls(config, encoder=encoder, decoder=decoder)
            _check_weights_fit(outline.state_dict(), state, weights_path)
        check_model_size(config)
        return cls(config, encoder=encoder, decoder=decoder)
    except (ValueError, TypeError) as error:
        if isinstance(error, CorruptFileError):
            raise
        raise CorruptFileError(f"{config_path}: {error}") from None


def load(directory, *, device: str | torch.device = "cpu", encoder: nn.Module | None = None,
         decoder: nn.Module | None = None) -> Autoencoder:
    """Rebuild a saved model from ``config.json`` + ``model.safetensors``; no pickle involved."""
    from ..training.devices import resolve_device

    device = resolve_device(device)  # an unusable device is one line, before any file is read
    directory = Path(directory)
    weights_path = directory / WEIGHTS_FILE
    for path in (directory / CONFIG_FILE, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"no saved model in {directory}: {path.name} is missing")
    state, _ = load_tensors(weights_path)
    model = build_saved(directory, encoder=encoder, decoder=decoder, state=state)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CorruptFileError(f"{weights_path}: {_DOES_NOT_FIT} ({one_line(error, 300)})"
                               ) from None
    for name, value in model.state_dict().items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CorruptFileError(f"{weights_path}: {name} holds NaN or infinite values")
    return model.to(device)
