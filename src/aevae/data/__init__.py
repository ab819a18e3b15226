"""The data layer: named datasets, user data from files, and checks on arrays.

>>> dataset = load_dataset("digits")
>>> dataset.train.x.shape, dataset.shape
((1437, 1, 8, 8), (1, 8, 8))
"""

from . import named as _named  # noqa: F401  (registers the built-in datasets)
from . import sequences as _sequences  # noqa: F401  (registers the sequence datasets)
from .containers import Dataset, Split
from .directories import ENVIRONMENT_VARIABLE, data_directory, user_cache_directory
from .download import REMOTE_FILES, verify_files
from .dsprites import DSprites, render_sprites, small_dsprites
from .errors import DataError
from .ground_truth import GroundTruthData
from .loading import load_dataset
from .registry import list_datasets, register_dataset
from .streaming import ImageFolderStream, NpyStream
from .validation import validate_array

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "REMOTE_FILES",
    "DSprites",
    "DataError",
    "Dataset",
    "GroundTruthData",
    "ImageFolderStream",
    "NpyStream",
    "Split",
    "data_directory",
    "list_datasets",
    "load_dataset",
    "register_dataset",
    "render_sprites",
    "small_dsprites",
    "user_cache_directory",
    "validate_array",
    "verify_files",
]
