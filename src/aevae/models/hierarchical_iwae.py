"""The importance weighted autoencoder on the two-layer model (Burda et al. 2016).

``hierarchical_vae.py`` with the objective of ``iwae.py``: each importance sample is a pair
(z1, z2) ~ q(z1|x) q(z2|z1), weighted by p(x|z1) p(z1|z2) p(z2) / (q(z1|x) q(z2|z1)).
"""

from __future__ import annotations

from dataclasses import dataclass

from .hierarchical_vae import HierarchicalVAE, HierarchicalVAEConfig
from .iwae import check_importance_samples, importance_weighted_output
from .registry import register_model


@dataclass
class HierarchicalIWAEConfig(HierarchicalVAEConfig):
    # k: importance samples per example in the training bound (k = 1 is hierarchical_vae).
    importance_samples: int = 5

    def __post_init__(self):
        super().__post_init__()
        check_importance_samples(self)


@register_model
class HierarchicalIWAE(HierarchicalVAE):
    name = "hierarchical_iwae"
    description = "IWAE_k bound on the two-stochastic-layer model (Burda et al. 2016)"
    Config = HierarchicalIWAEConfig

    def loss(self, x, *, kl_weight=1.0, step=None):
        # At k = 1 these are the very numbers hierarchical_vae's single sample draws.
        terms = self.layer_terms(self.corrupt(x), x, self.config.importance_samples)
        kl = terms.kl_intermediate + terms.kl_top
        output = importance_weighted_output(terms.log_likelihood, -kl, kl[0],
                                            kl_weight * self.config.beta)
        output.terms.update(kl_intermediate=terms.kl_intermediate[0], kl_top=terms.kl_top[0])
        return output
