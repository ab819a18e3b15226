"""The ``aevae`` command line. The only module that parses arguments or prints for humans.

Bad input ends with one line on stderr and exit code 2, never a traceback
(set AEVAE_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import math
import os
import sys
import traceback
import warnings
from pathlib import Path

from .report.text import format_table as _format_table
from .report.text import wrapped_table as _wrapped_table

EXIT_BAD_INPUT = 2


class UsageError(ValueError):
    """A problem with the command line itself."""


# ----- helpers ------------------------------------------------------------------------------
def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None
    return values


def _option(text: str) -> tuple[str, object]:
    key, separator, raw = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.replace("-", "_"), value


# What data.json may hold: key -> (accepted types, what to say when it holds something else).
DATA_RECORD = {
    "data": ((str,), "a dataset name or path"),
    "data_dir": ((str, type(None)), "a path or null"),
    "labels": ((str, type(None)), "a path, a column name or null"),
    "validation_fraction": ((int, float), "a number"),
    "seed": ((int,), "an integer"),
    "limit": ((int, type(None)), "an integer or null"),
    "image_size": ((str, type(None)), "HEIGHTxWIDTH or null"),
    # The test split carved (a study's runs, train --test-fraction), and the rescaling a
    # study's run trained on.
    "test_fraction": ((int, float), "a number"),
    "preparation": ((dict,), "an object"),
    # Written by the conditional models' runs: the names of their classes; by runs on a table
    # with a header, its column names.
    "class_names": ((list,), "a list of names"),
    "feature_names": ((list,), "a list of names"),
}


def _read_data_record(run: Path) -> dict:
    """The run's data.json ({} if it has none), checked so bad content names the file."""
    from .data.loading import DATA_FILE
    from .io import CorruptFileError, read_json

    path = run / DATA_FILE
    if not path.is_file():
        return {}
    record = read_json(path)
    if not isinstance(record, dict) or "data" not in record:
        raise CorruptFileError(f"{path}: expected a JSON object with the key 'data'")
    for key, (types, expected) in DATA_RECORD.items():
        value = record.get(key)
        if key in record and (not isinstance(value, types) or isinstance(value, bool)):
            raise CorruptFileError(f"{path}: {key} should be {expected}, got {value!r}")
    return record


def _matched_columns(dataset, saved: dict, source: str):
    """A table read for a run trained on a table with a header: its columns matched to the
    training table's by name (in the training order), or an error naming the difference; a
    table without a header is taken in the training order."""
    trained = [str(name) for name in saved.get("feature_names") or []]
    given = [str(name) for name in dataset.feature_names or []]
    if not trained or not given or given == trained:
        return dataset
    if sorted(given) != sorted(trained) or len(set(given)) != len(given):
        missing = [name for name in trained if name not in given]
        extra = [name for name in given if name not in trained]
        raise UsageError(
            f"{source}: its columns are not those the run was trained on"
            + (f" (missing: {', '.join(missing[:5])})" if missing else "")
            + (f" (not in training: {', '.join(extra[:5])})" if extra else "")
            + f"; expected {', '.join(trained[:8])}{', ...' if len(trained) > 8 else ''}")
    order = [given.index(name) for name in trained]  # the same columns in another order

    def reordered(split):
        return None if split is None else dataclasses.replace(split, x=split.x[:, order])

    return dataclasses.replace(dataset, feature_names=tuple(trained), **{
        name: reordered(getattr(dataset, name)) for name in ("train", "validation", "test")})


def _check_examples(shape, model, run: Path, source: str) -> None:
    """Refuse examples (``shape``: one example's) that the run's model cannot read, in one line
    naming ``source`` (the option and file they came from) and what the run was trained on;
    checked before the run's rescaling, whose own complaint would name neither."""
    from .data.validation import example_shape_problem

    expected = tuple(model.input_shape)
    problem = example_shape_problem(shape, expected,
                                    expected_by=f"{run} was trained on examples shaped")
    if problem is None:
        return
    if len(shape) == len(expected) == 1:
        problem = f"rows of {shape[0]} values; {run} was trained on rows of {expected[0]}"
    raise UsageError(f"{source}: {problem}")


def _same_data(given: str, recorded: str | None) -> bool:
    """Whether --data names the data a run records (None: it records none)."""
    from .data.loading import recorded_data

    return recorded is not None and recorded_data(given) == recorded_data(recorded)


def _load_run_data(run: Path, data: str | None, data_dir: str | None,
                   image_size: str | None = None, model=None):
    """The data of ``run``, or the ``data`` given instead, on the scale its ``model`` was
    trained on (and checked to fit that model, when given)."""
    from .data import load_dataset
    from .data.preparation import apply_preparation

    saved = _read_data_record(run)
    name = data or saved.get("data")
    if name is None:
        raise UsageError(f"{run} does not record its data; pass --data NAME_OR_PATH")
    if data is not None and not _same_data(data, saved.get("data")):
        # Other data, at the image size and on the scale the model was trained on.
        if image_size is None and Path(data).expanduser().is_dir():
            image_size = saved.get("image_size")
        features = len(saved.get("feature_names") or []) or None
        other = _matched_columns(load_dataset(
            data, data_dir=data_dir, image_size=image_size,
            labels=_label_column_in(data, saved.get("labels"), features)), saved, data)
        if model is not None:
            _check_examples(other.shape, model, run, f"--data {data}")
        return apply_preparation(other, saved.get("preparation", {}))
    image_size = image_size or saved.get("image_size")
    # The same splits and values as in training, so the held-out part stays held out.
    dataset = load_dataset(
        name,
        data_dir=data_dir or saved.get("data_dir"),
        labels=saved.get("labels"),
        validation_fraction=saved.get("validation_fraction", 0.0),
        test_fraction=saved.get("test_fraction", 0.0),
        seed=saved.get("seed", 0),
        image_size=image_size,
    )
    if model is not None:  # the recorded file, changed since training
        source = f"--data {data}" if data is not None else f"{name} (the data {run} records)"
        _check_examples(dataset.shape, model, run, source)
    return apply_preparation(dataset, saved.get("preparation", {}))


def _load_model(run: Path, device: str = "cpu", command: str | None = None,
                out: str | None = None):
    """The run's model; ``command``: the command that will use it, refused for a model it
    cannot serve (one conditioned on a label that the command has no option to pass, or a
    sequence model asked for an image ``out``)."""
    from .models import load
    from .models.cvae import Conditioned
    from .training import resolve_device

    model = load(run, device=resolve_device(device))
    if out is not None and "lengths" in model.uses and Path(out).suffix.lower() not in (
            ARRAY_FORMATS):
        if command in ("reconstruct", "traverse"):  # image outputs only
            raise UsageError(f"{model.name} models sequences, which `aevae {command}` (an "
                             f"image) cannot show: call model.{command}() from Python")
        raise UsageError(f"--out {out}: {model.name} models sequences, which an image grid "
                         "does not show; write .npy or .csv")
    if command not in (None, "sample") and isinstance(model, Conditioned):
        raise UsageError(f"{model.name} encodes and decodes with a class, which `aevae "
                         f"{command}` has no option to pass; `aevae sample --label` draws a "
                         "class, and the Python API takes labels= (docs/models/labels.md)")
    return model


# ----- commands -----------------------------------------------------------------------------
def command_models(arguments) -> int:
    from .flows import FLOWS
    from .likelihoods import LIKELIHOODS
    from .models import MODELS, model_class
    from .models.base import AutoencoderConfig
    from .models.registry import option_help
    from .nets import NETWORKS
    from .priors import PRIORS

    if arguments.name:
        cls = model_class(arguments.name)
        meanings = option_help(cls.Config)
        shared = set(AutoencoderConfig.__dataclass_fields__)
        rows = []
        for own in (True, False):
            for option in dataclasses.fields(cls.Config):
                if (option.name in shared) == own or option.name == "input_shape":
                    continue
                default = (option.default_factory() if option.default_factory
                           is not dataclasses.MISSING else option.default)
                rows.append([option.name, json.dumps(default, default=list),
                             meanings.get(option.name, "")])
        print(f"{cls.name}: {cls.description}\n")
        print(_wrapped_table(["option", "default", "meaning"], rows))
        print("\nSet options with `aevae train MODEL --option KEY=VALUE`, `aevae compare --models "
              "MODEL:KEY=VALUE` or `aevae.make(MODEL, KEY=VALUE)`.")
        return 0
    print(_wrapped_table(["model", "description"],
                         [[name, MODELS[name].description] for name in sorted(MODELS)]))
    for title, registry in (("prior (prior=)", PRIORS), ("likelihood (likelihood=)", LIKELIHOODS),
                            ("network (network=)", NETWORKS),
                            ("flow (vae_flow's flow=)", FLOWS)):
        print()
        print(_wrapped_table([title, "description"],
                             [[name, registry[name].description] for name in sorted(registry)]))
    print("\n`aevae models NAME` lists a model's every option with its default and meaning.")
    return 0


def command_datasets(arguments) -> int:
    from .data import data_directory, list_datasets

    print(_format_table(["dataset", "description"], [list(row) for row in list_datasets()]))
    directory = data_directory(arguments.data_dir)
    state = ("" if directory.is_dir() else ", which is a file, not a folder"
             if directory.exists() else ", which does not exist yet")
    print(f"\ndata directory: {directory}{state} "
          "(set with --data-dir or AEVAE_DATA_DIR); or pass a path to .npy/.npz/.csv/images")
    return 0


MODEL_FLAGS = ("latent_dim", "network", "hidden", "activation", "norm", "init", "likelihood",
               "prior")
# The data settings data.json records, and their defaults for a new run.
SPLIT_DEFAULTS = {"validation_fraction": 0.1, "test_fraction": 0.0, "seed": 0, "limit": None}


def _model_options(arguments) -> dict:
    """The model options the command gives explicitly (flags and --option)."""
    options = dict(arguments.option or [])
    for flag in MODEL_FLAGS:
        value = getattr(arguments, flag)
        if value is not None:
            options[flag] = value
    if arguments.sigma is not None:
        options.setdefault("likelihood_options", {})["sigma"] = arguments.sigma
    return options


def _shown(values: dict) -> str:
    return " ".join(f"--{key.replace('_', '-')} {value}" for key, value in values.items())


def _image_size_text(text: str | None) -> str | None:
    """--image-size as data.json records it: "HxW" (checked), or None."""
    from .data.loading import parse_image_size

    size = parse_image_size(text)
    return None if size is None else f"{size[0]}x{size[1]}"


def _data_record(arguments, resumed: Path | None) -> dict:
    """What data.json records: the data as given (paths absolute). Resuming, the run's own
    record, which the command may repeat but not change."""
    from .data.loading import absolute_path, recorded_data, recorded_labels

    given = {
        "data": None if arguments.data is None else recorded_data(arguments.data),
        "data_dir": absolute_path(arguments.data_dir),
        "labels": recorded_labels(arguments.labels),
        "validation_fraction": arguments.validation_fraction,
        "test_fraction": arguments.test_fraction,
        "seed": arguments.seed,
        "limit": arguments.limit,
        "image_size": _image_size_text(arguments.image_size),
    }
    saved = _read_data_record(resumed) if resumed is not None else {}
    if not saved:
        return {key: SPLIT_DEFAULTS[key] if value is None and key in SPLIT_DEFAULTS else value
                for key, value in given.items()}
    # Older runs recorded paths as typed; compare them as absolute paths too.
    recorded = {**SPLIT_DEFAULTS, **saved, "data": recorded_data(saved["data"]),
                "labels": recorded_labels(saved.get("labels"))}
    changed = [key for key in ("data", "labels", "image_size", *SPLIT_DEFAULTS)
               if given[key] is not None and given[key] != recorded.get(key)]
    if changed:
        raise UsageError(
            f"cannot resume {resumed}: it was trained with "
            f"{_shown({key: recorded.get(key) for key in changed})}, the command gives "
            f"{_shown({key: given[key] for key in changed})}"
        )
    return {**recorded, "data_dir": given["data_dir"] or saved.get("data_dir")}


def _check_resumable(run: Path, model, name: str, options: dict) -> None:
    """Refuse to resume ``run`` as another model or with other explicitly given options."""
    from .models import model_class

    def as_json(values: dict) -> dict:
        return json.loads(json.dumps(values))  # tuples compare as the lists saved

    saved = as_json(model.config.to_dict())
    requested = as_json(options)
    cls = model_class(name)
    if cls is type(model):  # checks the options' names and types
        requested = as_json(cls.Config.from_options({**model.config.to_dict(), **options})
                            .to_dict())
    changed = [key for key in options if requested.get(key) != saved.get(key)]
    if name == model.name and not changed:
        return

    def described(model_name: str, values: dict) -> str:
        shown = ", ".join(f"{key}={values.get(key)}" for key in changed)
        return f"{model_name} ({shown})" if shown else model_name

    article = "an" if model.name[0] in "aeiou" else "a"
    raise UsageError(f"cannot resume {run}: it holds {article} {described(model.name, saved)}, "
                     f"the command asks for {described(name, requested)}")


# What a saved config leaves out: where to find it, and how to show progress.
NOT_SAVED = ("command", "handler", "help", "config", "save_config", "quiet")


def _available_memory() -> int | None:
    from .training.devices import available_memory

    return available_memory()


def _stream_source(arguments, record: dict):
    """(training stream, validation array) when the data is streamed from disk: asked with
    --stream, or a .npy file larger than half of the memory available now."""
    from .data.streaming import VALIDATION_LIMIT, ImageFolderStream, NpyStream

    path = Path(record["data"]).expanduser()
    is_npy = path.suffix.lower() == ".npy" and path.is_file()
    wanted = arguments.stream
    if not wanted and is_npy:
        available = _available_memory()
        wanted = available is not None and path.stat().st_size > available // 2
        if wanted and not arguments.quiet:
            print(f"{path} ({path.stat().st_size / 2**30:.1f} GiB) is larger than half of the "
                  "memory available: streaming it from disk in shuffled chunks",
                  file=sys.stderr)
    if not wanted:
        return None
    if record.get("image_size") is not None:
        raise UsageError("--stream reads images at their own size; --image-size needs them "
                         "loaded (leave out --stream)")
    if record["labels"] is not None:
        raise UsageError("--stream reads x only: labels need the data in memory")
    if record.get("test_fraction"):
        raise UsageError("a streamed file holds out a validation split only: --test-fraction "
                         "needs the data in memory" + (" (leave out --stream)" if
                                                       arguments.stream else ""))
    fraction, seed = record["validation_fraction"], record["seed"]
    if is_npy:
        # As load_dataset splits in memory: validation carved from the whole file, then the
        # limit taken from the rest.
        stream, validation = NpyStream(path), None
        if fraction > 0:
            stream, validation = stream.hold_out(fraction, seed)
        if record["limit"] is not None:
            stream = stream.first(record["limit"])
        sample = (validation if validation is not None
                  else stream.read_rows(stream.rows[:VALIDATION_LIMIT]))
        _check_streamed_scale(path, sample.reshape(len(sample), -1))
        return stream, validation
    if path.is_dir():
        import numpy as np
        import torch

        from .data.loading import carved_indices, some_of

        folder = ImageFolderStream(path)
        # The rows load_dataset would carve, then the limit: see the .npy case.
        rest, validation = np.arange(len(folder)), None
        if fraction > 0:
            rest, held = carved_indices(len(folder), fraction, seed)
            validation = torch.stack([folder[int(i)] for i in
                                      some_of(held, VALIDATION_LIMIT, seed)]).numpy()
        if record["limit"] is not None:
            rest = rest[:record["limit"]]
        train = torch.utils.data.Subset(folder, rest.tolist())
        train.example_shape = folder.example_shape
        return train, validation
    raise UsageError(f"--stream reads a .npy file or an image folder, not {record['data']}")


def _check_streamed_scale(path: Path, sample) -> None:
    """A loaded run standardises real values (outside [0, 1]); a stream reads them as they
    are, so it takes only values a loaded run would leave about as they are: in [0, 1], or
    columns already about mean 0 and std 1 (judged on up to 10,000 of its rows)."""
    import numpy as np

    low, high = float(sample.min()), float(sample.max())  # read_rows refused NaN already
    if low >= 0.0 and high <= 1.0:
        return
    means, spreads = sample.mean(axis=0), sample.std(axis=0)
    varying = spreads > 0
    if (np.abs(means).max() <= 0.5 and (spreads[varying] >= 0.5).all()
            and (spreads[varying] <= 2.0).all()):
        return
    raise UsageError(f"{path}: values span {low:g} to {high:g} (column means up to "
                     f"{np.abs(means).max():.3g}, spreads up to {spreads.max():.3g}); a "
                     "streamed run reads them as they are, without the standardising a loaded "
                     "run applies: standardise the file first (each column to mean 0, std 1), "
                     "or train from memory (leave out --stream)")


def _check_cuda_graphs(arguments, what: str) -> None:
    """--cuda-graphs asks for a CUDA device: refuse it on any other."""
    from .training import resolve_device

    if not arguments.cuda_graphs:
        return
    device = resolve_device(arguments.device)
    if device.type != "cuda":
        raise UsageError(f"--cuda-graphs needs a CUDA GPU; this {what} would train on the "
                         f"{device.type}")


def _compile_setting(text: str) -> bool | str:
    return {"on": True, "off": False}.get(text, text)


def _prepare_values(dataset, arguments, options: dict, record: dict, model):
    """What `aevae compare` does before training, for a new run: the likelihood chosen from the
    values unless given (set in ``options``), real values standardised with the training
    split's statistics (recorded in ``record``, the run's data.json). A resumed run redoes its
    recorded preparation. Returns the dataset and a line saying what was chosen (or None)."""
    from .data.preparation import apply_preparation, choose_likelihood, standardise, value_kind
    from .models import model_class

    if model is not None:
        return apply_preparation(dataset, record.get("preparation", {})), None
    values = value_kind(dataset.train.x)
    requested = options.get("likelihood")
    likelihood, reason = choose_likelihood(values, requested)
    # pca and ppca take no likelihood option: they are fitted to the values as they are.
    settable = model_class(arguments.model).shares_network
    if settable and requested is None:
        options["likelihood"] = likelihood
    if settable and likelihood == "bernoulli" and values == "real":
        low, high = dataset.value_range
        raise UsageError(f"{dataset.name}: a bernoulli likelihood needs values in [0, 1], but "
                         f"they span {low:g} to {high:g}; use --likelihood gaussian-learned, or "
                         "leave --likelihood out to choose from the values")
    notes = [f"likelihood {likelihood} ({reason})"] if settable else []
    record["preparation"] = {"transform": "none"}
    if values == "real" and (likelihood != "bernoulli" or not settable):
        dataset, record["preparation"] = standardise(dataset)
        notes.append(record["preparation"]["transform"] + " (recorded in data.json; "
                     "evaluate, reconstruct and traverse redo it)")
    # Returned, to be printed once every check has passed: bad input stays one line.
    return dataset, (f"{dataset.name}: {values} values: " + "; ".join(notes) if notes else None)


def _training_config(arguments, seed: int):
    """The training options of train's flags (checked here, before anything is loaded)."""
    from .training import TrainingConfig

    options = {item.name: getattr(arguments, item.name) for item in TrainingConfig.flags()}
    options.update(seed=seed, compile=_compile_setting(arguments.compile))
    try:
        return TrainingConfig(**options)
    except ValueError as error:  # the message starts with the option's name: say the flag
        message = str(error)
        name = next((item.name for item in TrainingConfig.flags()
                     if message.startswith(item.name + " ")), None)
        if name is not None:
            message = "--" + name.replace("_", "-") + message[len(name):]
        raise UsageError(message) from None


def _fit(model, train_x, validation, fields: dict, arguments, record: dict, out: Path,
         dataset, config) -> None:
    from .data.loading import DATA_FILE

    model.fit(
        train_x, validation=validation, **fields, config=config, out=out,
        resume=arguments.resume,
        batch_transform=dataset.binarize if dataset and dataset.dynamic_binarization else None,
        progress=not arguments.quiet,
        run_files={DATA_FILE: record},  # written with the first checkpoint, not before
        log_dir=arguments.tensorboard,
    )


def command_train(arguments) -> int:
    import numpy as np

    from .data import load_dataset
    from .io import write_toml
    from .models import make, model_class
    from .models.base import CONFIG_FILE, build_saved
    from .training import resolve_device
    from .training.distributed import is_main_process

    # Resuming, the run's own records name its model and data: they need not be repeated.
    resuming = (arguments.resume and arguments.out is not None
                and (Path(arguments.out) / CONFIG_FILE).is_file())
    for name in ("out",) if resuming else ("model", "data", "out"):
        if getattr(arguments, name) is None:
            flag = name if name == "model" else f"--{name}"
            raise UsageError(f"train needs {flag} (on the command line or in --config)")
    # Every check comes before the first write: a refused command leaves all files as they were.
    resolve_device(arguments.device)
    _check_cuda_graphs(arguments, "run")
    out = Path(arguments.out)
    options = _model_options(arguments)
    resumed = out if arguments.resume and (out / CONFIG_FILE).is_file() else None
    record = _data_record(arguments, resumed)
    if resumed is not None:  # what the run's records name, for --save-config to write
        for key in ("data", "labels", "data_dir", "image_size"):
            if getattr(arguments, key) is None:
                setattr(arguments, key, record.get(key))
    config = _training_config(arguments, record["seed"])
    model = None
    if resumed is not None:
        model = build_saved(out)
        if arguments.model is None:
            arguments.model = model.name
        _check_resumable(out, model, arguments.model, options)
        if (refused := model.training_refusal()) is not None:  # saved by an older version
            raise UsageError(f"cannot resume {out}: this version no longer trains its "
                             f"configuration ({refused}); the saved model still loads for "
                             "evaluate, sample and the other commands")
    stream, note = _stream_source(arguments, record), None
    if stream is not None:
        train_x, validation = stream
        shape, dataset = train_x.example_shape, None
    else:
        dataset = load_dataset(
            record["data"], data_dir=record["data_dir"], labels=record["labels"],
            validation_fraction=record["validation_fraction"],
            test_fraction=record.get("test_fraction", 0.0), seed=record["seed"],
            limit=record["limit"], image_size=record.get("image_size"),
        )
        if dataset.train.lengths is None:
            dataset, note = _prepare_values(dataset, arguments, options, record, model)
        train_x, shape = dataset.train.x, dataset.shape
        validation = dataset.validation.x if dataset.validation is not None else None
    if model is None:
        options["input_shape"] = shape
        options.setdefault("seed", record["seed"])  # one --seed fixes initialisation too
        if len(shape) == 1 and "latent_dim" not in options:
            # 16 codes for a 10-column table would be no bottleneck: sized as compare does.
            from .study.settings import default_network

            options["latent_dim"] = default_network(tuple(shape))["latent_dim"]
        if ("labels" in model_class(arguments.model).uses and "classes" not in options
                and dataset is not None and dataset.train.labels is not None):
            # The data's classes, not 10: every split's (a class may sit in validation only).
            labels = np.concatenate([split.labels for split in dataset.splits().values()
                                     if split.labels is not None])
            from .models.cvae import MAX_CLASSES

            if labels.min() < 0 or labels.max() >= MAX_CLASSES:
                raise UsageError(f"labels of {record['data']} run from {labels.min()} to "
                                 f"{labels.max()}: a conditional model takes classes 0 to "
                                 f"{MAX_CLASSES - 1} (text labels are numbered for you)")
            options["classes"] = int(labels.max()) + 1
        model = make(arguments.model, **options)
    if stream is not None:
        if model.uses:
            raise UsageError(f"{model.name} reads {', '.join(sorted(model.uses))} beside x, "
                             "which streamed data does not carry; train without --stream")
    fields = {}
    if "labels" in model.uses:  # conditional models learn from the dataset's labels
        from .data.batch import Batch

        if dataset.train.labels is None:
            raise UsageError(f"{model.name} needs labels: {record['data']} has none (--labels)")
        fields["labels"] = dataset.train.labels
        if validation is not None:
            validation = Batch(validation, labels=dataset.validation.labels)
    if dataset is not None and dataset.class_names:
        # So that `aevae sample --label` and `edit --from/--to` take a class by its name.
        record["class_names"] = list(dataset.class_names)
    if dataset is not None and dataset.feature_names:  # the header of the .csv it writes
        record["feature_names"] = list(dataset.feature_names)
    if note and not arguments.quiet:
        print(note, file=sys.stderr)
    if model.closed_form:
        from .training import TrainingConfig

        unused = [f"--{name.replace('_', '-')}" for name in CLOSED_FORM_UNUSED
                  if getattr(config, name) != TrainingConfig.default(name)]
        if unused:
            print(f"note: {model.name} is solved in closed form: {', '.join(unused)} do(es) not "
                  "apply", file=sys.stderr)
    try:
        _fit(model, train_x, validation, fields, arguments, record, out, dataset, config)
    finally:  # also after an interrupted resume: its finished epochs replaced the weights
        if resumed is not None and is_main_process():
            _set_aside_stale_metrics(out)
    if not is_main_process():  # under torchrun, rank 0 reports and writes
        return 0
    if arguments.save_config:
        # resume is an action on a folder, not a setting of the run: saved while resuming, it
        # would make every run started from the file "resume" an empty folder.
        options = {key: value for key, value in vars(arguments).items()
                   if key not in NOT_SAVED and key != "resume"}
        options["option"] = dict(options["option"] or [])
        options.update(seed=record["seed"], validation_fraction=record["validation_fraction"],
                       test_fraction=record.get("test_fraction", 0.0))
        write_toml(arguments.save_config, options,
                   comment=f"aevae train --config {Path(arguments.save_config).name}")
    last = model.history_.epochs[-1]
    shown = {key: round(value, 4) for key, value in last.items()
             if key.startswith(("train_loss", "validation_loss"))}
    done = (f"solved {model.name} in closed form" if model.closed_form else
            f"trained {model.name} for {last['epoch']} epoch{'s' if last['epoch'] != 1 else ''}")
    print(f"{done}: {shown}; saved in {out}")
    return 0


# Training options a closed-form solve never reads.
CLOSED_FORM_UNUSED = ("epochs", "batch_size", "learning_rate", "optimizer", "weight_decay",
                      "patience", "gradient_clip", "kl_schedule", "precision", "compile",
                      "cuda_graphs")
METRICS_FILE = "metrics.json"
STALE_METRICS_FILE = "metrics.stale.json"


def _weights_record(run: Path) -> dict | None:
    """Which weights a run holds: the epochs trained (rows of history.csv) and the sha256 of
    model.safetensors. `aevae evaluate` records it in metrics.json; a resumed run whose weights
    no longer match moves that file aside."""
    import hashlib

    from .models.base import WEIGHTS_FILE
    from .training import HISTORY_FILE

    weights = run / WEIGHTS_FILE
    if not weights.is_file():
        return None
    with open(weights, "rb") as stream:
        digest = hashlib.file_digest(stream, "sha256").hexdigest()
    history = run / HISTORY_FILE
    epochs = (max(0, len(history.read_text().splitlines()) - 1) if history.is_file() else None)
    return {"file": WEIGHTS_FILE, "epochs": epochs, "sha256": digest}


def _stale_metrics(run: Path) -> str | None:
    """Why RUN/metrics.json describes other weights than the run holds now (None if it does,
    or if there is none)."""
    from .io import read_json
    from .models.base import WEIGHTS_FILE

    path, current = run / METRICS_FILE, _weights_record(run)
    if not path.is_file() or current is None:
        return None
    try:
        recorded = read_json(path).get("weights")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if isinstance(recorded, dict) and "sha256" in recorded:
        if recorded["sha256"] == current["sha256"]:
            return None
        return (f"it measured the weights after {recorded.get('epochs')} epochs, the run now "
                f"holds those after {current['epochs']}")
    # Written before metrics.json recorded its weights: the file times tell.
    if path.stat().st_mtime >= (run / WEIGHTS_FILE).stat().st_mtime:
        return None
    return f"it is older than the weights, which are now those after {current['epochs']} epochs"


def _set_aside_stale_metrics(run: Path) -> None:
    reason = _stale_metrics(run)
    if reason is None:
        return
    os.replace(run / METRICS_FILE, run / STALE_METRICS_FILE)
    print(f"note: moved {run / METRICS_FILE} to {STALE_METRICS_FILE}: {reason}; run "
          f"`aevae evaluate {run}` to measure the new weights", file=sys.stderr)


def command_evaluate(arguments) -> int:
    import time

    from .io import atomic_write_json
    from .metrics.evaluate import (
        METRIC_GROUPS,
        PRACTICAL_CAPS,
        EvaluationSettings,
        estimate_seconds,
        evaluate,
        large_data,
        measure_speeds,
        practical_settings,
    )
    from .study.settings import BUDGETS

    if arguments.metrics is not None and not arguments.metrics.strip(", "):
        raise UsageError("--metrics is empty: name metric groups, or leave it out for all")
    metrics = arguments.metrics.split(",") if arguments.metrics else None
    unknown = [name for name in metrics or [] if name not in METRIC_GROUPS]
    if unknown:
        raise UsageError(f"unknown metric group(s) {', '.join(unknown)}; known: "
                         f"{', '.join(METRIC_GROUPS)}")
    run = Path(arguments.run)
    if arguments.data is not None and arguments.out is None:
        saved = _read_data_record(run).get("data") if run.is_dir() else None
        if saved is not None and not _same_data(arguments.data, saved):
            raise UsageError(f"--data {arguments.data} is not the data {run} was trained on: "
                             f"pass --out FILE for its figures ({run / _evaluation_file(run)} "
                             "keeps those on the run's own data)")
    model = _load_model(run, arguments.device, arguments.command)
    weights = _weights_record(run)
    dataset = _load_run_data(run, arguments.data, arguments.data_dir, arguments.image_size,
                             model)
    given = {}
    for name in ("importance_samples", "likelihood_examples", "generated_samples",
                 "max_examples"):
        if getattr(arguments, name) is not None:
            given[name] = getattr(arguments, name)
    if arguments.anomaly_epochs is not None:
        given["anomaly_training_epochs"] = arguments.anomaly_epochs
    protocol = EvaluationSettings(**{**BUDGETS[arguments.budget].evaluation, **given},
                                  seed=arguments.seed)
    settings, capped = protocol, not arguments.full and large_data(dataset)
    if capped:  # what the command line gives explicitly still wins
        settings = dataclasses.replace(practical_settings(protocol), **given)
        capped = settings != protocol
    names = metrics or list(METRIC_GROUPS)
    estimates = {}
    if not arguments.quiet:
        speeds = measure_speeds(model, dataset, names, settings)
        estimates, parts = estimate_seconds(model, dataset, names, settings, speeds)
        shown = ", ".join(f"{part} {seconds:.0f} s" for part, seconds in parts.items()
                          if seconds >= 1)
        print(f"estimated about {sum(estimates.values()):.0f} s on this machine"
              + (f" ({shown})" if shown else ""), file=sys.stderr, flush=True)
        if capped:
            uncapped = sum(estimate_seconds(model, dataset, names, protocol, speeds)[0].values())
            changed = ", ".join(f"{name} {getattr(settings, name)}" for name in PRACTICAL_CAPS
                                if getattr(settings, name) != getattr(protocol, name))
            print(f"{dataset.name} is large ({'x'.join(map(str, dataset.shape))} values an "
                  f"example): capped at {changed}; --full runs the {arguments.budget} protocol "
                  f"as is (about {uncapped:.0f} s here)", file=sys.stderr, flush=True)
    started = time.perf_counter()

    def report(name: str, done: int, total: int, seconds: float) -> None:
        elapsed = time.perf_counter() - started
        # Each remaining group's own estimate: the groups differ by orders of magnitude.
        remaining = sum(estimates.get(later, 0.0) for later in names[done:])
        print(f"[{done}/{total}] {name}: {seconds:.1f} s (elapsed {elapsed:.0f} s, about "
              f"{remaining:.0f} s to go)", file=sys.stderr, flush=True)

    result = evaluate(model, dataset, metrics=metrics, settings=settings,
                      progress=None if arguments.quiet else report)
    result["weights"] = weights  # so a later resume can tell these figures stale
    # A study's run (it has run.json) keeps its metrics.json: the study's results read it.
    default = _evaluation_file(run)
    out = Path(arguments.out) if arguments.out else run / default
    atomic_write_json(out, result)
    print(_evaluation_table(result, model))
    print(f"\n{result['examples']} {result['split']} examples of {dataset.name} "
          f"({arguments.budget} settings{', capped' if capped else ''}); every figure with "
          f"its settings in {out}")
    if result["split"] == "validation":  # early stopping chose the epoch on these examples
        print("note: measured on the validation split, which chose the best epoch, so the "
              "figures lean optimistic; `aevae train --test-fraction 0.2` keeps a test split "
              "for evaluate")
    elif result["split"] == "train":
        print("note: measured on the training split, which the model was fitted to, so the "
              "figures lean optimistic; `aevae train --test-fraction 0.2` keeps a test split "
              "for evaluate")
    return 0


def _evaluation_table(result: dict, model) -> str:
    """The headline figures by task, as the study words them."""
    from .study.tasks import TASKS, lookup
    from .study.verdicts import format_value

    rows = []
    for task in TASKS.values():
        for metric in task.metrics:
            value = next((lookup(result["metrics"], path) for path in metric.paths
                          if lookup(result["metrics"], path) is not None), None)
            if isinstance(value, (int, float)):
                better = "higher" if metric.direction == "higher" else "lower"
                rows.append([task.title, f"{metric.label} ({better} is better)",
                             format_value(float(value), metric.digits)])
    unavailable = [[name, "n/a", group.get("reason", "")] for name, group in
                   result["metrics"].items() if isinstance(group, dict)
                   and group.get("available") is False]
    for task in TASKS.values():  # figures a group left out, saying why (a label budget)
        for metric in task.metrics:
            reasons = [lookup(result["metrics"], (*path[:-2], "unmet", path[-1]))
                       for path in metric.paths]
            if reason := next((text for text in reasons if isinstance(text, str)), None):
                unavailable.append([metric.label, "n/a", reason])
    table = _format_table(["task", "figure", model.name], rows)
    if unavailable:
        table += "\n\n" + _format_table(["group", "", "why not measured"], unavailable)
    return table


def _flatten(values: dict, prefix: str = ""):
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, name + ".")
        elif not isinstance(value, list):
            yield name, value


def _short(value, width: int = 60) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _check_image_output(arguments) -> None:
    from .report.figures import image_format

    if arguments.n < 1:
        raise UsageError(f"-n must be at least 1, got {arguments.n}")
    image_format(arguments.out)


ARRAY_FORMATS = (".npy", ".csv")


def _check_array_or_image(out: str) -> str:
    """The output kind an --out path asks for: "npy", "csv" or an image format."""
    from .io import nearest_existing
    from .report.figures import image_format

    existing = nearest_existing(Path(out).parent)
    if not existing.is_dir():
        raise UsageError(f"--out {out}: {existing} is a file, not a folder")
    suffix = Path(out).suffix.lower()
    return suffix[1:] if suffix in ARRAY_FORMATS else image_format(out)


def _csv_header(width: int, record: dict) -> str:
    """The data's own column names where the run recorded them, else x0, x1, ..."""
    names = [str(name) for name in record.get("feature_names") or []]
    if len(names) != width:
        names = [f"x{index}" for index in range(width)]
    return ",".join(names)


def _write_examples(values, out: str, title: str, columns: int | None = None,
                    record: dict | None = None) -> None:
    """Examples as an image grid, or the values themselves for .npy / .csv (headed with the
    column names the run's data ``record`` keeps)."""
    import io

    import numpy as np

    from .io import atomic_write_bytes, atomic_write_text
    from .report.figures import save_image_grid

    kind = _check_array_or_image(out)
    if kind == "npy":  # the values themselves, shaped like the data
        buffer = io.BytesIO()
        np.save(buffer, values, allow_pickle=False)
        atomic_write_bytes(out, buffer.getvalue())
    elif kind == "csv":  # one example a row, values flattened
        flat = values.reshape(len(values), -1)
        header = _csv_header(flat.shape[1], record or {})
        rows = "\n".join(",".join(f"{value:.7g}" for value in row) for row in flat)
        atomic_write_text(out, header + "\n" + rows + "\n")
    else:
        _check_grid_size(len(values), out, out)
        save_image_grid(values, out, title=title, columns=columns)


# Images in one grid: more are too small to see, and matplotlib runs out of memory drawing them.
IMAGE_GRID_LIMIT = 10_000
# Values drawn and written at a time when an array output is written in chunks (64 MiB).
CHUNK_VALUES = 2**24


# Steps of one traversal row: more are too small to see in the grid.
TRAVERSAL_STEPS = 50


def _check_grid_size(count: int, out: str, what: str) -> None:
    if count > IMAGE_GRID_LIMIT:
        raise UsageError(f"{what}: an image grid shows at most {IMAGE_GRID_LIMIT:,} images, "
                         f"not {count:,}; write the values to {Path(out).stem}.npy instead")


def _check_disk_space(out: str, kind: str, values: int) -> None:
    """Refuse an array output the disk cannot hold, before anything is drawn."""
    import shutil

    from .io import nearest_existing

    needed = values * (4 if kind == "npy" else 2)  # float32; a CSV value takes two characters
    folder = nearest_existing(Path(out).absolute().parent)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if needed > free:
        raise UsageError(f"{out} would take at least {needed / 2**30:,.1f} GiB; {folder} has "
                         f"{free / 2**30:,.1f} GiB free")


def _write_drawn(draw, count: int, rows: int, out: str, kind: str,
                 record: dict | None = None) -> None:
    """``count`` examples drawn ``rows`` at a time by ``draw(start, stop)`` into a .npy or .csv
    file (headed as ``_csv_header`` says), chunk by chunk, so memory stays bounded whatever
    the count."""
    import numpy as np

    from .io import atomic_output

    with atomic_output(out) as temporary:
        if kind == "npy":
            array = None
            for start in range(0, count, rows):
                chunk = draw(start, min(count, start + rows))
                if array is None:
                    array = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float32,
                                                      shape=(count, *chunk.shape[1:]))
                array[start:start + len(chunk)] = chunk
            array.flush()
            del array
            return
        with open(temporary, "w", encoding="utf-8") as file:
            for start in range(0, count, rows):
                flat = draw(start, min(count, start + rows))
                flat = flat.reshape(len(flat), -1)
                if start == 0:
                    file.write(_csv_header(flat.shape[1], record or {}) + "\n")
                file.writelines(",".join(f"{value:.7g}" for value in row) + "\n"
                                for row in flat)


def _class_label(given: str, record: dict, classes: int | None,
                 flag: str = "--label") -> tuple[int, str | None]:
    """A class given by number or, where the run recorded them, by name."""
    names = [str(name) for name in record.get("class_names") or []]
    if given in names:
        return names.index(given), given
    try:
        label = int(given)
    except ValueError:
        known = (f"its classes: {', '.join(names)}" if names else
                 "the run records no class names: give the class number")
        raise UsageError(f"{flag} {given!r} is not a class of this run ({known})") from None
    if classes is not None and not 0 <= label < classes:
        raise UsageError(f"{flag} {label} is not a class of this run (0 to {classes - 1})")
    return label, names[label] if label < len(names) else None


def command_sample(arguments) -> int:
    import math

    import numpy as np

    from .models.base import check_sample_request

    if arguments.n < 1:
        raise UsageError(f"-n must be at least 1, got {arguments.n}")
    kind = _check_array_or_image(arguments.out)
    if kind not in ("npy", "csv"):
        _check_grid_size(arguments.n, arguments.out, f"-n {arguments.n}")
    check_sample_request(arguments.n, arguments.seed)
    from .data.preparation import undo_preparation

    model = _load_model(Path(arguments.run), arguments.device, arguments.command,
                        arguments.out)
    # A model trained on standardised values samples in those units: give the data's own.
    data_record = _read_data_record(Path(arguments.run))
    preparation = data_record.get("preparation") or {}
    options = {}
    from .models.cvae import Conditioned

    if arguments.label is None and isinstance(model, Conditioned):
        raise UsageError(f"{model.name} draws samples of a class: pass --label CLASS")
    if arguments.label is not None:
        if "labels" not in model.uses:
            raise UsageError(f"{model.name} is not conditioned on a label; --label needs a "
                             "cvae, conditional_ae or m2 run")
        label, name = _class_label(arguments.label, data_record, model.config.classes)
        options["labels"] = label
        what = f"samples of class {label}" + (f" ({name})" if name else "")
    else:
        what = ("samples from the prior" if model.has_likelihood else
                f"decoded N(0, I) draws ({model.name} trains no prior; see `aevae sample --help`)")
    if kind not in ("npy", "csv"):
        samples = model.sample(arguments.n, seed=arguments.seed, **options)
        samples = undo_preparation(samples, preparation)
        _write_examples(samples, arguments.out, f"{model.name}: {what}", record=data_record)
    else:
        size = math.prod(model.input_shape)
        _check_disk_space(arguments.out, kind, arguments.n * size)
        rows = max(1, CHUNK_VALUES // size)
        # The first chunk draws with --seed itself (so a small -n is one draw, as before);
        # later chunks with seeds derived from it.
        seeds = [arguments.seed]
        if arguments.n > rows:
            seeds += [int(seed) for seed in np.random.SeedSequence(arguments.seed)
                      .generate_state(math.ceil(arguments.n / rows) - 1, np.uint64)]

        def draw(start: int, stop: int):
            drawn = model.sample(stop - start, seed=seeds[start // rows], **options)
            return undo_preparation(drawn, preparation)

        _write_drawn(draw, arguments.n, rows, arguments.out, kind, data_record)
    print(f"wrote {arguments.n} {what} to {arguments.out}")
    return 0


def _input_examples(path: str, model, run: Path) -> tuple:
    """The examples of an input file or folder (--input) as the run's model reads them: at its
    image size, on the scale it was trained on (the run's rescaling), in its shape; that
    rescaling, to undo on what the model gives back; and the run's data record it read."""
    from .data import load_dataset
    from .data.preparation import apply_preparation

    saved = _read_data_record(run)
    image_size = saved.get("image_size") if Path(path).expanduser().is_dir() else None
    dataset = _matched_columns(
        load_dataset(path, validation_fraction=0.0, image_size=image_size,
                     labels=_label_column_in(path, saved.get("labels"),
                                             math.prod(model.input_shape))), saved, path)
    _check_examples(dataset.shape, model, run, f"--input {path}")
    preparation = saved.get("preparation") or {}
    x = apply_preparation(dataset, preparation).train.x
    return x.reshape(-1, *model.input_shape), preparation, saved


def _label_column_in(path: str, label: str | None, features: int | None) -> str | None:
    """The run's label column when the input table has it too (the training table itself,
    say): it is set apart as labels, not read as a feature. ``features``: how many feature
    columns the run was trained on (a "first" or "last" label column is one more)."""
    from .data.readers import table_columns

    source = Path(path).expanduser()
    if not label or source.suffix.lower() not in (".csv", ".tsv", ".txt") or not (
            source.is_file()):
        return None
    header, width = table_columns(source)
    if label in ("first", "last"):
        return label if features is not None and width == features + 1 else None
    return label if header is not None and label in header else None


def _check_limit(arguments) -> None:
    if arguments.limit is not None and arguments.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {arguments.limit}")


def command_vary(arguments) -> int:
    if arguments.n < 1:
        raise UsageError(f"-n must be at least 1, got {arguments.n}")
    _check_array_or_image(arguments.out)
    _check_limit(arguments)
    from .data.preparation import undo_preparation

    run = Path(arguments.run)
    model = _load_model(run, command=arguments.command, out=arguments.out)
    x, preparation, data_record = _input_examples(arguments.input, model, run)
    x = x[: arguments.limit]
    varied = model.vary(x, arguments.n, sample_likelihood=arguments.sample_likelihood,
                        seed=arguments.seed)
    _write_examples(undo_preparation(varied.reshape(-1, *model.input_shape), preparation),
                    arguments.out,
                    f"{model.name}: {arguments.n} variations of each input (rows)",
                    columns=arguments.n, record=data_record)
    print(f"wrote {arguments.n} variations of {len(x)} input(s) to {arguments.out}")
    if not model.has_likelihood and not arguments.sample_likelihood:
        print(f"note: {model.name} is deterministic: one code per input, so every variation "
              "is the same reconstruction; a VAE draws z ~ q(z|x) instead", file=sys.stderr)
    return 0


def command_edit(arguments) -> int:
    import numpy as np

    from .data.readers import read_npy
    from .editing import class_vector, edit

    _check_array_or_image(arguments.out)
    if (arguments.vector is None) == (arguments.source is None or arguments.target is None):
        raise UsageError("give --vector FILE, or --from CLASS and --to CLASS (a class vector "
                         "from the run's training data)")
    _check_limit(arguments)
    if not np.isfinite(arguments.strength):
        raise UsageError(f"--strength {arguments.strength}: must be a finite number")
    from .data.preparation import undo_preparation

    run = Path(arguments.run)
    model = _load_model(run, command=arguments.command, out=arguments.out)
    x, preparation, data_record = _input_examples(arguments.input, model, run)
    x = x[: arguments.limit]
    if arguments.vector is not None:
        vector = np.asarray(read_npy(Path(arguments.vector)), dtype=np.float32).reshape(-1)
        if vector.size != model.latent_dim:  # a move in latent space, one value per code
            raise UsageError(f"--vector {arguments.vector}: {vector.size} values; {run} has "
                             f"{model.latent_dim} latent dimensions")
        if not np.isfinite(vector).all():
            raise UsageError(f"--vector {arguments.vector}: holds values that are not finite")
    else:
        dataset = _load_run_data(run, arguments.data, arguments.data_dir, model=model)
        if dataset.train.labels is None:
            raise UsageError(f"{dataset.name} has no labels to build a class vector from")
        classes = len(data_record.get("class_names") or []) or None
        source, _ = _class_label(arguments.source, data_record, classes, "--from")
        target, _ = _class_label(arguments.target, data_record, classes, "--to")
        present = np.unique(dataset.train.labels)
        for flag, given, label in (("--from", arguments.source, source),
                                   ("--to", arguments.target, target)):
            if label not in present:
                names = [str(name) for name in data_record.get("class_names") or []]
                shown = [f"{value} ({names[value]})" if value < len(names) else str(value)
                         for value in present.astype(int).tolist()]
                raise UsageError(f"{flag} {given}: no example of class {label} in the run's "
                                 f"training data; its classes: {', '.join(shown)}")
        vector = class_vector(model, dataset.train.x, dataset.train.labels, source, target)
    edited = edit(model, x, vector, arguments.strength)
    _write_examples(undo_preparation(np.concatenate([x, edited]), preparation), arguments.out,
                    f"{model.name}: inputs (top) and their edits (bottom)", columns=len(x),
                    record=data_record)
    print(f"wrote {len(x)} edited example(s) to {arguments.out}")
    return 0


def _data_units(values, run: Path):
    """Values the model reads or gives back, in the data's own units (the run's rescaling
    undone), as sample, vary and edit write them."""
    from .data.preparation import undo_preparation

    return undo_preparation(values, _read_data_record(run).get("preparation") or {})


def command_reconstruct(arguments) -> int:
    import numpy as np

    from .report.figures import save_image_grid

    _check_image_output(arguments)
    run = Path(arguments.run)
    model = _load_model(run, command=arguments.command, out=arguments.out)
    dataset = _load_run_data(run, arguments.data, arguments.data_dir, model=model)
    split = dataset.test or dataset.validation or dataset.train
    shown = split.x[: arguments.n]
    pairs = _data_units(np.concatenate([shown, model.reconstruct(shown)]), run)
    save_image_grid(pairs, arguments.out, columns=len(shown),
                    title=f"{model.name}: data (top) and reconstructions (bottom)")
    print(f"wrote {len(shown)} reconstructions to {arguments.out}")
    return 0


def command_traverse(arguments) -> int:
    from .report.figures import image_format, save_image_grid

    image_format(arguments.out)
    if arguments.dimensions < 1 or arguments.steps < 2:
        raise UsageError("--dimensions must be at least 1 and --steps at least 2")
    if not 0 < arguments.span < float("inf"):
        raise UsageError(f"--span must be a positive number of standard deviations, got "
                         f"{arguments.span:g}")
    if arguments.steps > TRAVERSAL_STEPS:
        raise UsageError(f"--steps {arguments.steps}: a traversal row shows at most "
                         f"{TRAVERSAL_STEPS} steps")
    run = Path(arguments.run)
    model = _load_model(run, command=arguments.command, out=arguments.out)
    dataset = _load_run_data(run, arguments.data, arguments.data_dir, model=model)
    split = dataset.test or dataset.validation or dataset.train
    decoded, dimensions = model.traverse(split.x[:2000], dimensions=arguments.dimensions,
                                         steps=arguments.steps, span=arguments.span)
    save_image_grid(_data_units(decoded.reshape(-1, *model.input_shape), run), arguments.out,
                    columns=arguments.steps,
                    title=f"{model.name}: latent dimensions {', '.join(map(str, dimensions))} "
                    f"(rows), each swept over +-{arguments.span:g} std")
    print(f"wrote traversals of dimensions {', '.join(map(str, dimensions))} to {arguments.out}")
    return 0


def command_impute(arguments) -> int:
    import io

    import numpy as np

    from .data.readers import read_npy
    from .io import atomic_write_bytes

    if Path(arguments.out).suffix.lower() != ".npy":
        raise UsageError(f"--out must be a .npy file, got {arguments.out}")
    for name in ("samples", "multiple"):
        value = getattr(arguments, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be at least 1, got {value}")
    from .data.preparation import prepare_values, undo_preparation

    run = Path(arguments.run)
    model = _load_model(run, command=arguments.command, out=arguments.out)
    raw = read_npy(Path(arguments.input))
    if raw.ndim < 2:
        raise UsageError(f"--input {arguments.input}: an array shaped {raw.shape}, without an "
                         "axis of examples; impute reads examples along the first axis "
                         f"(shape (N, {', '.join(map(str, model.input_shape))}))")
    _check_examples(raw.shape[1:], model, run, f"--input {arguments.input}")
    # 8-bit images are read as x / 255, as training read them (and written back as 0-255).
    levels = 255.0 if raw.dtype == np.uint8 else 1.0
    given = np.asarray(raw, dtype=np.float32)
    values = given / levels
    if arguments.mask:
        mask = read_npy(Path(arguments.mask))
        if mask.dtype != bool and not (np.issubdtype(mask.dtype, np.number)
                                       and np.isin(mask, (0, 1)).all()):
            raise UsageError(f"{arguments.mask}: a mask holds true/false (or 1/0) per entry, "
                             f"got {mask.dtype} values")
        if mask.shape != values.shape:
            raise UsageError(f"{arguments.mask}: the mask is shaped {mask.shape}, the input "
                             f"{values.shape}")
        observed = mask.astype(bool)
    else:
        observed = ~np.isnan(values)
    if observed.all():
        raise UsageError(f"{arguments.input}: no entry is missing (NaN, or false in --mask)")
    # On the scale the model was trained on (the run's rescaling), and back.
    preparation = _read_data_record(run).get("preparation") or {}
    values = prepare_values(values, preparation)
    options = {"seed": arguments.seed}
    if "observed" in model.uses:
        options.update(samples=arguments.samples or 1000, multiple=arguments.multiple)
    elif arguments.multiple or arguments.samples:
        flag = "--multiple" if arguments.multiple else "--samples"
        raise UsageError(f"{model.name} imputes one value per entry (iterated reconstruction); "
                         f"{flag} needs a model trained on missing data (miwae)")
    drawn = np.asarray(model.impute(values, observed, **options))  # (N, [multiple,] ...)
    extra = drawn.ndim - values.ndim
    restored = undo_preparation(drawn.reshape(-1, *values.shape[1:]), preparation) * levels
    # Observed entries exactly as given (the rescaling there and back rounds).
    index = (slice(None), *([None] * extra))
    imputed = np.where(observed[index], given[index], restored.reshape(drawn.shape))
    buffer = io.BytesIO()
    np.save(buffer, imputed, allow_pickle=False)
    atomic_write_bytes(arguments.out, buffer.getvalue())
    print(f"imputed {int((~observed).sum())} missing entries of {len(values)} examples "
          f"({'importance sampling' if 'observed' in model.uses else 'iterated reconstruction'}"
          f"); wrote {arguments.out}")
    return 0


def command_compare(arguments) -> int:
    from .study.runner import run_study
    from .study.settings import StudySettings
    _check_cuda_graphs(arguments, "study")
    settings = StudySettings(
        data=arguments.data, data_dir=arguments.data_dir, labels=arguments.labels,
        models=arguments.models, preset=arguments.preset, seeds=arguments.seeds,
        budget=arguments.budget, epochs=arguments.epochs, patience=arguments.patience,
        latent_dim=arguments.latent_dim, network=arguments.network, hidden=arguments.hidden,
        likelihood=arguments.likelihood,
        device=arguments.device, cuda_graphs=arguments.cuda_graphs, store=arguments.store,
        workers=arguments.workers, executor=arguments.executor,
        tasks=arguments.tasks, image_size=arguments.image_size, track=arguments.track,
        limit=arguments.limit, retrain_other_versions=arguments.retrain_other_versions,
    )
    if settings.track is not None:
        from .tracking import require_mlflow

        try:
            require_mlflow()
        except ImportError as error:  # one line and exit 2, before anything is written
            raise UsageError(str(error)) from None
    results = run_study(settings, arguments.out, progress=not arguments.quiet,
                        notify=lambda message: print(message, file=sys.stderr))
    print(_study_summary(results))
    print(f"\nreport: {Path(arguments.out) / 'report.html'}")
    return 0


def _study_summary(results: dict) -> str:
    from .report.text import study_text

    return study_text(results)


def _keep_what_the_study_measured(path: Path, results: dict) -> None:
    """Re-rendering knows nothing of the study calls that ran: their timing, and which runs
    they trained, evaluated or reused, are kept from the results the last one wrote. A run
    that results file does not show finished (a call interrupted before it wrote one) is
    "finished by an earlier call", not "reused" (it read so, even where that call trained it)."""
    from .io import CorruptFileError, read_json

    try:
        before = read_json(path) if path.is_file() else None
    except (CorruptFileError, OSError, ValueError):
        before = None
    if not isinstance(before, dict):
        before = {}
    runs = before.get("runs") if isinstance(before.get("runs"), list) else []
    kept = {run.get("id"): run for run in runs
            if isinstance(run, dict) and run.get("status") == "finished"}
    for run in results["runs"]:
        if run["status"] != "finished":
            continue
        earlier = kept.get(run["id"])
        if earlier is None:
            run["reused"] = None  # not finished when the study last wrote: see _run_status
            continue
        for key in ("reused", "trained_now", "intervals_now"):
            if key in earlier:  # (results written before a key existed lack it)
                run[key] = earlier[key]
    if "timing" in before and "timing" not in results:
        results["timing"] = before["timing"]


def command_report(arguments) -> int:
    from .io import atomic_write_json
    from .report.html import write_report
    from .study.results import aggregate
    from .study.runner import RESULTS_FILE

    out = Path(arguments.study)
    results = aggregate(out)
    _keep_what_the_study_measured(out / RESULTS_FILE, results)
    atomic_write_json(out / RESULTS_FILE, results)
    path = write_report(out, results)
    missing = sum(run["status"] != "finished" for run in results["runs"])
    print(f"report: {path}" + (f" ({missing} planned run(s) not finished)" if missing else ""))
    return 0


def command_runs(arguments) -> int:
    from .study.store import STORE_FILE, STUDY_FILE, RunStore, load_study

    path, study, study_runs = Path(arguments.store), None, None
    if path.is_dir() and (path / STUDY_FILE).is_file():
        # A study folder: its own runs (a store may be shared by several studies), in the store
        # its study.json names (--store elsewhere; its own, if the folder has moved).
        study = load_study(path)
        path, study_runs = Path(study["store"]), {run["id"] for run in study["runs"]}
    elif path.is_dir():
        path = path / STORE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no run store at {path}")
    model = arguments.model
    if model and ":" in model:  # a roster entry, in any spelling (options in another order)
        from .study.roster import parse_roster

        try:
            model = parse_roster(model)[0].key
        except (ValueError, IndexError):
            pass  # no such entry: refused below
    # Read-only: a listing writes nothing (an archived store lists too), and a run whose
    # process is gone is shown interrupted rather than marked failed.
    with RunStore(path, read_only=True) as store:
        rows = store.select(model=model, dataset=arguments.dataset, budget=arguments.budget,
                            seed=arguments.seed)
        if model:  # a name that is no model there is a mistake, not an empty answer
            _check_listed_model(arguments.model, model, study, store, arguments.store)
    if arguments.status is not None:
        rows = [row for row in rows if _run_status(row) == arguments.status]
    others = 0
    if study_runs is not None:
        others = sum(row.id not in study_runs for row in rows)
        rows = [row for row in rows if row.id in study_runs]
    if arguments.metric:
        from .study.tasks import TASKS

        # The rows' headline figures (aevae.study.runner.headline_metrics), and every figure a
        # task defines (so a name stays known while no run has it yet).
        known = {f"{task.name}.{metric.name}" for task in TASKS.values()
                 for metric in task.metrics}
        known.update(name for row in rows for name in row.metrics or {})
        if arguments.metric not in known:
            raise UsageError(f"--metric {arguments.metric}: unknown figure; known: "
                             f"{', '.join(sorted(known))}")
    table = []
    for row in rows:
        seconds = sum(value or 0.0 for value in (row.train_seconds, row.evaluation_seconds))
        figure = ""
        if row.metrics and arguments.metric:
            value = row.metrics.get(arguments.metric)
            figure = "n/a" if value is None else f"{value:.4g}"
        table.append([row.id, row.entry, row.dataset, str(row.seed), row.budget,
                      _run_status(row), f"{seconds:.1f}", *([figure] if arguments.metric else []),
                      _run_reason(row)])
    header = ["run", "model", "dataset", "seed", "budget", "status", "seconds",
              *([arguments.metric] if arguments.metric else []), "reason"]
    if not any(row[-1] for row in table):  # no run failed or was interrupted
        header, table = header[:-1], [row[:-1] for row in table]
    print(_format_table(header, table) if table else "no runs match")
    if others:
        print(f"({others} other run(s) in the store, of other studies or of this folder's "
              f"earlier rosters, not shown: name {path} to list every run)")
    return 0


def _check_listed_model(given: str, model: str, study: dict | None, store, where: str) -> None:
    """Refuse a --model that names no entry (or model) of the study's roster, or, for a bare
    store, of its runs."""
    if study is not None:
        roster = study.get("roster")
        if not isinstance(roster, list):
            return  # an older or partial study.json: nothing to check against
        pairs = [(str(entry.get("key")), str(entry.get("model"))) for entry in roster
                 if isinstance(entry, dict)]
        what = f"in the roster of {where}"
    else:
        pairs = list(dict.fromkeys((row.entry, row.model) for row in store.select()))
        what = f"among the runs of {where}"
    keys = list(dict.fromkeys(key for key, _ in pairs))
    if keys and model not in {name for pair in pairs for name in pair}:
        raise UsageError(f"--model {given}: not {what}; its entries: {', '.join(keys)}")


def _run_status(row) -> str:
    """A row's status as `aevae runs` shows it: "interrupted" for a run whose process is gone."""
    from .study.store import interrupted

    return "interrupted" if interrupted(row) else row.status


def _run_reason(row) -> str:
    """Why a run failed, or that an interrupted one resumes."""
    from .study.store import INTERRUPTED

    if _run_status(row) == "interrupted":
        return f"{INTERRUPTED} (resumable: run its `aevae compare` again)"
    return _short(row.error or "", 100) if row.status == "failed" else ""


# ----- parser -------------------------------------------------------------------------------
class _DefaultsFormatter(argparse.HelpFormatter):
    """Shows an option's default unless it is empty or the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if hasattr(action, "help_names"):  # a registry too slow to import for every command
            text = text.replace("{names}", _one_of(action.help_names()))
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return f"{text} (default: %(default)s)".strip()


def _one_of(names) -> str:
    """Registered names as help text: "a, b or c"."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _metric_group_names() -> list[str]:
    from .metrics.evaluate import METRIC_GROUPS  # imports scikit-learn: only when shown

    return list(METRIC_GROUPS)


IMAGE_SIZE_HELP = ("resize the images of an image folder to HEIGHTxWIDTH as they are read, "
                   "e.g. 64x64 (needed when they differ in size; a run records it)")


# The command line's own wording where it says more than the library's.
TRAINING_FLAG_HELP = {"seed": "seeds the split, initialisation and training (default 0; a "
                              "resumed run keeps its own)"}


def _training_flags(command) -> None:
    """train's training options, one flag per ``TrainingConfig`` field: its default, choices
    and help come from there."""
    from .training import TrainingConfig

    for item in TrainingConfig.flags():
        flag = "--" + item.name.replace("_", "-")
        help = TRAINING_FLAG_HELP.get(item.name, item.metadata["help"])
        if item.name == "seed":  # None: the run decides (a resumed run keeps its own)
            command.add_argument(flag, type=int, help=help)
        elif item.name == "compile":
            command.add_argument(flag, choices=["auto", "on", "off"], default="auto", help=help)
        elif isinstance(item.default, bool):
            command.add_argument(flag, action=argparse.BooleanOptionalAction,
                                 default=item.default, help=help)
        else:
            command.add_argument(flag, type=item.metadata["parse"], default=item.default,
                                 choices=item.metadata["choices"], help=help)


class _Parser(argparse.ArgumentParser):
    """Argument errors in one line, like every other error (argparse prints its usage block
    first): the line names the command and where its options are listed."""

    def error(self, message: str):
        self.exit(2, f"aevae: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    # Choices and names in the help come from the registries themselves: no list to keep in step.
    from . import __version__
    from .likelihoods import LIKELIHOODS
    from .models import MODELS
    from .nets import NETWORKS
    from .nets.layers import ACTIVATIONS, INITS, NORMS
    from .nets.mlp import GATED
    from .priors import PRIORS
    from .study.roster import DEFAULT_ROSTER, PRESETS
    from .study.settings import BUDGETS, EXECUTORS, TRACKERS
    from .study.tasks import TASKS

    parser = _Parser(
        prog="aevae", description="Autoencoders and variational autoencoders: train, "
        "evaluate, sample, compare.")
    parser.add_argument("--version", action="version", version=f"aevae {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.commands = {}

    class commands:  # every command shows its options' defaults
        @staticmethod
        def add_parser(name, **options):
            command = subparsers.add_parser(name, formatter_class=_DefaultsFormatter, **options)
            parser.commands[name] = command
            return command


    def overwrite_option(command):
        command.add_argument("--overwrite", action="store_true",
                             help="replace the --out file if it exists (without this flag an "
                             "existing file is refused)")

    def data_options(command, required=False, image_size=False):
        command.add_argument("--data", required=required,
                             help="dataset name (see `aevae datasets`) or a path")
        command.add_argument("--data-dir", help="data directory (default: $AEVAE_DATA_DIR, "
                             "else ~/.cache/aevae)")
        if image_size:
            command.add_argument("--image-size", metavar="HxW", help=IMAGE_SIZE_HELP)

    train = commands.add_parser("train", help="train a model and save its run directory")
    train.add_argument("model", nargs="?", help=f"model name: {_one_of(sorted(MODELS))} (see "
                       "`aevae models`); or in --config")
    data_options(train, image_size=True)
    train.add_argument("--labels", help="labels for user data: a .npy file or a CSV column")
    train.add_argument("--out", help="run directory to write: a new or empty folder, or a "
                       "run's own to resume it (required; or in --config)")
    train.add_argument("--config", help="a TOML file of these options (names with underscores, "
                       "e.g. latent_dim = 16, option = {beta = 4}); the command line wins")
    train.add_argument("--save-config", help="write the options this run uses to a TOML file, "
                       "to repeat it with --config")
    train.add_argument("--tensorboard", help="write TensorBoard curves, per-dimension KL and "
                       "sample grids to this folder (needs the tensorboard extra)")
    train.add_argument("--latent-dim", type=int, help="size of the code z (default: the "
                       "model's, 16 for most; for a table, half its features from 2 to 8, as "
                       "compare chooses)")
    train.add_argument("--network", help=_one_of(NETWORKS))
    train.add_argument("--hidden", type=_int_list, help="hidden widths, e.g. 512,256")
    train.add_argument("--activation", help=f"{_one_of([*ACTIVATIONS, GATED])} (default: the "
                       "model's)")
    train.add_argument("--norm", choices=[name for name in NORMS if name is not None],
                       help="normalisation after hidden layers (default: none)")
    train.add_argument("--init", choices=INITS,
                       help="weight initialisation (default: torch's)")
    train.add_argument("--likelihood", help=_one_of(LIKELIHOODS))
    train.add_argument("--sigma", type=float, help="fixed sigma of the gaussian likelihood, in "
                       "the units the model sees (standardised ones for real-valued data)")
    train.add_argument("--prior", help=f"prior name: {_one_of(PRIORS)}")
    train.add_argument("--option", type=_option, action="append", metavar="KEY=VALUE",
                       help="any model option, e.g. beta=4 or samples=5 (repeatable)")
    _training_flags(train)
    train.add_argument("--validation-fraction", type=float,
                       help="share of training data held out for validation (default 0.1)")
    train.add_argument("--test-fraction", type=float,
                       help="share of a file's data held out as a test split, first, for "
                       "`aevae evaluate` (default 0: none, and evaluate measures on the "
                       "validation split, which chose the best epoch)")
    train.add_argument("--limit", type=int, help="use only the first N training examples")
    train.add_argument("--stream", action="store_true",
                       help="read a .npy file in shuffled chunks (or an image folder image by "
                       "image) instead of loading it; automatic for a .npy larger than half of "
                       "the available memory")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last checkpoint")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.set_defaults(handler=command_train)

    evaluate = commands.add_parser(
        "evaluate", help="measure a trained model; writes metrics.json")
    evaluate.add_argument("run", help="run directory")
    data_options(evaluate, image_size=True)
    evaluate.add_argument("--metrics", help="comma-separated metric groups, of: {names} "
                          "(default: all)").help_names = _metric_group_names
    evaluate.add_argument("--budget", choices=list(BUDGETS), default="quick",
                          help="quick: k = 500 on 1,000 examples, 2,000 samples, up to 2,000 "
                          "test examples (about a minute for an MNIST VAE on 2 cores); full: "
                          "k = 5000 on 2,000 examples, 10,000 samples, the whole test split "
                          "(about 10 minutes)")
    evaluate.add_argument("--importance-samples", type=int,
                          help="k for the importance-sampled log p(x) (overrides the budget)")
    evaluate.add_argument("--likelihood-examples", type=int,
                          help="evaluate log p(x) on a seeded random subset of N examples")
    evaluate.add_argument("--generated-samples", type=int,
                          help="samples for the sample-quality figures")
    evaluate.add_argument("--max-examples", type=int,
                          help="evaluate on a seeded random subset of N examples")
    evaluate.add_argument("--anomaly-epochs", type=int,
                          help="epochs of the per-class models of the one-class anomaly "
                          "protocol (0: score with the given model instead, not one-class)")
    evaluate.add_argument("--full", action="store_true",
                          help="on large data (32x32 values an example or more, or over "
                          "100,000 examples) run the budget's protocol as is, instead of "
                          "capping examples, samples, feature-classifier steps and one-class "
                          "models to keep it to minutes")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    evaluate.add_argument("--device", default="auto", help="auto, cpu or cuda")
    evaluate.add_argument("--quiet", action="store_true", help="no progress lines")
    evaluate.add_argument("--out", help="where to write the JSON (default RUN/metrics.json; "
                          "RUN/evaluation.json for a study's run)")
    overwrite_option(evaluate)
    evaluate.set_defaults(handler=command_evaluate)

    sample = commands.add_parser("sample", help="decode draws from the prior into an image "
                                 "grid, or .npy / .csv values")
    sample.add_argument("run", help="run directory (the --out of `aevae train`)")
    sample.add_argument("-n", type=int, default=64, help="how many samples to draw (an image "
                        f"shows at most {IMAGE_GRID_LIMIT:,}; .npy and .csv take any number)")
    sample.add_argument("--seed", type=int, default=0,
                        help="seeds the draws: the same seed gives the same samples "
                        "(default: 0)")
    sample.add_argument("--device", default="auto", help="auto, cpu or cuda")
    sample.add_argument("--label", help="generate this class, by number or by the name the "
                        "data gave it (conditional models)")
    sample.add_argument("--out", required=True,
                        help="an image (.png, .jpg, .pdf, .svg) or the sampled values "
                        "themselves (.npy, .csv)")
    overwrite_option(sample)
    sample.set_defaults(handler=command_sample)

    vary = commands.add_parser("vary", help="several variations of each input: decoded draws "
                               "z ~ q(z|x)")
    vary.add_argument("run")
    vary.add_argument("--input", required=True, help="examples: .npy, .npz, .csv or images")
    vary.add_argument("-n", type=int, default=8, help="variations per input")
    vary.add_argument("--limit", type=int, default=8, help="use the first N inputs")
    vary.add_argument("--sample-likelihood", action="store_true",
                      help="draw from p(x|z) instead of taking its mean")
    vary.add_argument("--seed", type=int, default=0, help="seed of the draws")
    vary.add_argument("--out", required=True, help="an image, or .npy / .csv for the values")
    overwrite_option(vary)
    vary.set_defaults(handler=command_vary)

    edit = commands.add_parser("edit", help="move inputs through latent space by an attribute "
                               "or class vector and decode them")
    edit.add_argument("run")
    data_options(edit)
    edit.add_argument("--input", required=True, help="examples: .npy, .npz, .csv or images")
    edit.add_argument("--vector", help=".npy of one latent vector to add")
    edit.add_argument("--from", dest="source", help="class to move away from (number or name)")
    edit.add_argument("--to", dest="target", help="class to move towards (number or name)")
    edit.add_argument("--strength", type=float, default=1.0,
                      help="how far to move each code, in class vectors")
    edit.add_argument("--limit", type=int, default=16, help="use the first N inputs")
    edit.add_argument("--out", required=True, help="an image, or .npy / .csv for the values")
    overwrite_option(edit)
    edit.set_defaults(handler=command_edit)

    reconstruct = commands.add_parser("reconstruct", help="data and reconstructions as an image")
    reconstruct.add_argument("run")
    data_options(reconstruct)
    reconstruct.add_argument("-n", type=int, default=16, help="examples to show")
    reconstruct.add_argument("--out", required=True,
                             help="image to write; .png, .jpg, .pdf or .svg")
    overwrite_option(reconstruct)
    reconstruct.set_defaults(handler=command_reconstruct)

    traverse = commands.add_parser(
        "traverse", help="latent traversals: the most used dimensions, each swept on its own")
    traverse.add_argument("run")
    data_options(traverse)
    traverse.add_argument("--dimensions", type=int, default=6,
                          help="how many dimensions, the most used first (by KL or variance)")
    traverse.add_argument("--steps", type=int, default=7, help="values along each dimension")
    traverse.add_argument("--span", type=float, default=2.0,
                          help="sweep over the codes' mean +- span standard deviations")
    traverse.add_argument("--out", required=True, help="image to write; .png, .jpg, .pdf or .svg")
    overwrite_option(traverse)
    traverse.set_defaults(handler=command_traverse)

    impute = commands.add_parser("impute", help="fill the missing entries (NaN) of an array "
                                 "with a trained model")
    impute.add_argument("run")
    impute.add_argument("--input", required=True, help=".npy array with NaN where missing")
    impute.add_argument("--mask", help=".npy of booleans, true where observed (default: the "
                        "input's non-NaN entries)")
    impute.add_argument("--out", required=True, help=".npy file to write")
    impute.add_argument("--samples", type=int, help="importance samples (miwae; default 1000)")
    impute.add_argument("--multiple", type=int, help="draw this many imputations each "
                        "(miwae): output shaped (N, multiple, ...)")
    impute.add_argument("--seed", type=int, default=0, help="seed of the draws")
    overwrite_option(impute)
    impute.set_defaults(handler=command_impute)

    models = commands.add_parser("models", help="list the models, priors, likelihoods, "
                                 "networks and flows; `models NAME` shows a model's options")
    models.add_argument("name", nargs="?", help="a model name: show its every option")
    models.set_defaults(handler=command_models)
    datasets = commands.add_parser("datasets", help="list the named datasets")
    datasets.add_argument("--data-dir")
    datasets.set_defaults(handler=command_datasets)

    compare = commands.add_parser(
        "compare", help="the study: train matched models over seeds, answer 'AE or VAE?' with "
        "verdicts and an HTML report (default: digits, about a minute on two cores)")
    compare.add_argument("--data", default="digits",
                         help="dataset name (see `aevae datasets`) or a .npy/.npz/.csv/image "
                         "folder path")
    compare.add_argument("--data-dir", help="data directory for named datasets")
    compare.add_argument("--image-size", metavar="HxW", help=IMAGE_SIZE_HELP)
    compare.add_argument("--labels", help="labels for user data: a .npy file or a CSV column")
    compare.add_argument("--out", default="aevae-compare", help="study directory")
    compare.add_argument("--models", help="roster, e.g. vae,beta_vae:beta=2,iwae:"
                         f"importance_samples=5 (default: {DEFAULT_ROSTER})")
    compare.add_argument("--preset", choices=list(PRESETS),
                         help="a roster for one of the sources' questions")
    compare.add_argument("--seeds", type=int, default=3, help="seeds per model")
    compare.add_argument("--tasks", help="only these tasks, comma-separated (default: every "
                         f"task that fits the data): {', '.join(TASKS)}")
    compare.add_argument("--budget", choices=list(BUDGETS), default="quick",
                         help="quick: a first answer in minutes; full: publication settings "
                         "(it states its expected time before starting)")
    compare.add_argument("--epochs", type=int, help="override the budget's epochs")
    compare.add_argument("--patience", type=int,
                         help="early-stopping patience in epochs (overrides the budget's)")
    compare.add_argument("--limit", type=int, help="train on the first N training examples only "
                         "(validation and test splits unchanged): a first look at large data")
    compare.add_argument("--latent-dim", type=int, help="latent size (default: from the data)")
    compare.add_argument("--network", help=f"{_one_of(NETWORKS)} (default: mlp)")
    compare.add_argument("--hidden", type=_int_list, help="hidden widths, e.g. 256,128")
    compare.add_argument("--likelihood", help=f"{_one_of(LIKELIHOODS)} "
                         "(default: from the data's values)")
    compare.add_argument("--device", default="auto", help="auto, cpu or cuda")
    compare.add_argument("--cuda-graphs", action="store_true", help="train each neural run's "
                         "steps replayed from a CUDA graph (see `aevae train --cuda-graphs`; "
                         "a run that cannot be captured steps eagerly)")
    compare.add_argument("--executor", choices=EXECUTORS, default="local",
                         help="local: worker processes on this machine; ray: Ray tasks on the "
                         "cluster ray.init() finds (the output folder must be on a file system "
                         "every node sees; needs the ray extra)")
    compare.add_argument("--workers", type=int, help="runs trained at once, one process and "
                         "one thread each (default: one per CPU core, at most 4; on a GPU, "
                         "one per 10 GiB of its memory, at most 8)")
    compare.add_argument("--store", help="run store to use or share (default: "
                         "OUT/runs.sqlite); finished runs in it are reused")
    compare.add_argument("--retrain-other-versions", action="store_true",
                         help="train again the finished runs that other versions of aevae "
                         "(its code), torch, numpy or scikit-learn trained, instead of reusing "
                         "them (a study names such runs under 'Mixed versions')")
    compare.add_argument("--track", choices=TRACKERS,
                         help="mlflow: log the study to MLflow, one run per model and seed "
                         "nested in a run named after --out (MLFLOW_TRACKING_URI, else "
                         "./mlruns; needs the mlflow extra)")
    compare.add_argument("--quiet", action="store_true", help="no progress bar")
    compare.set_defaults(handler=command_compare)

    report = commands.add_parser("report", help="re-render a study's report.html from its "
                                 "runs, without training")
    report.add_argument("study", help="study directory (the --out of `aevae compare`)")
    report.set_defaults(handler=command_report)

    runs = commands.add_parser("runs", help="list and filter the runs of a run store")
    runs.add_argument("store", nargs="?", default="aevae-compare",
                      help="a study directory or a runs.sqlite file")
    runs.add_argument("--model", help="only this model (e.g. vae), or one roster entry (e.g. "
                      "ae:latent_dim=4)")
    runs.add_argument("--dataset", help="only this dataset")
    runs.add_argument("--status", choices=["running", "finished", "failed", "interrupted"],
                      help="interrupted: its process is gone; the next study that plans it "
                      "trains it again")
    runs.add_argument("--budget", choices=list(BUDGETS))
    runs.add_argument("--seed", type=int)
    runs.add_argument("--metric", help="also show this headline figure, e.g. "
                      "prior_sampling.prior_frechet_distance")
    runs.set_defaults(handler=command_runs)
    return parser


def _bad_input_errors() -> tuple[type[BaseException], ...]:
    from .data import DataError
    from .models import NoLikelihoodError
    from .study.store import StoreError
    from .training import TrainingDivergedError

    # OSError covers a missing or unreadable file, a read-only folder and a full disk.
    return (UsageError, DataError, StoreError, ValueError, TypeError, OSError,
            NoLikelihoodError, TrainingDivergedError)


def _error_message(error: BaseException) -> str:
    """The one line printed after "aevae: error: "."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        # The system's own errors: say which file, and what a full disk means.
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"cannot write {error.filename}: the disk is full ({error.strerror})"
        return f"{error.filename}: {error.strerror}"
    text = str(error)
    return text.splitlines()[0] if text.strip() else type(error).__name__


# Options that must be at least a value, by name (whichever commands take them).
# Ten examples and samples: the fewest every metric group can use (the holes of the codes
# need three, precision and recall more samples than their k neighbours).
AT_LEAST = {"importance_samples": 1, "likelihood_examples": 1, "generated_samples": 10,
            "max_examples": 10, "anomaly_epochs": 0, "seed": 0}


def _check_arguments(arguments) -> None:
    """Checks of single options, each naming the flag and its value, made before a command
    loads, computes or writes anything."""
    from .io import nearest_existing
    from .schedules import make_schedule
    from .study.store import STORE_FILE, STUDY_FILE
    for name, minimum in AT_LEAST.items():
        value = getattr(arguments, name, None)
        if value is not None and value < minimum:
            raise UsageError(f"--{name.replace('_', '-')} {value}: must be at least {minimum}")
    schedule = getattr(arguments, "kl_schedule", None)
    if schedule is not None:
        try:
            make_schedule(schedule)
        except ValueError:
            raise UsageError(f"--kl-schedule {schedule}: expected a number >= 0 (a constant "
                             "weight), "
                             "linear:STEPS or cyclical:PERIOD[:RAMP_FRACTION], with STEPS and "
                             "PERIOD numbers of steps") from None
    if getattr(arguments, "out", None) == "":
        raise UsageError("--out is empty: name the file or folder to write")
    if arguments.command in ("train", "compare") and arguments.out is not None:
        out = Path(arguments.out)
        existing = nearest_existing(out)
        if not existing.is_dir():
            what = "run" if arguments.command == "train" else "study"
            raise UsageError(f"--out {arguments.out}: {existing} is a file, not a folder (the "
                             f"{what} is written in a folder)")
        if arguments.command == "train" and out.is_dir() and (
                (out / STUDY_FILE).is_file() or (out / STORE_FILE).is_file()):
            raise UsageError(f"--out {arguments.out} holds a study: train into a folder of "
                             "its own")
        if arguments.command == "train" and out.is_dir() and not _holds_run(out):
            raise UsageError(f"--out {arguments.out} is not empty and holds no run: train into "
                             "a new folder (or a run's own, to resume it)")
        if (arguments.command == "compare" and out.is_dir() and any(out.iterdir())
                and not (out / STUDY_FILE).is_file() and not (out / STORE_FILE).is_file()):
            raise UsageError(f"--out {arguments.out} is not empty and holds no study: study "
                             "into a new folder (or a study's own, to resume it)")
    _check_write_targets(arguments)
    _check_existing_output(arguments)
    if arguments.command == "train" and arguments.save_config:
        target = Path(arguments.save_config)
        folder = nearest_existing(target.parent)
        if target.is_dir() or target.suffix.lower() != ".toml":
            raise UsageError(f"--save-config {target}: name a .toml file")
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"--save-config {target}: cannot write in {folder}")
    if arguments.command == "evaluate":
        # Checked before the metrics are computed, which can take many minutes.
        if arguments.out is not None and (Path(arguments.out).is_dir()
                                          or arguments.out.endswith(("/", os.sep))):
            raise UsageError(f"--out {arguments.out}: is a folder; evaluate writes a JSON file")
        run = Path(arguments.run)
        folder = nearest_existing(Path(arguments.out).parent if arguments.out else run)
        if (arguments.out is not None or run.is_dir()) and not os.access(folder,
                                                                           os.W_OK | os.X_OK):
            raise UsageError(f"cannot write the evaluation in {folder}: the folder is not "
                             "writable (pass --out FILE in another folder)")
    if arguments.command == "compare":
        # Else SQLite's "unable to open database file" names the store, not the folder.
        places = [("--out", arguments.out, "the study", Path(arguments.out))]
        if arguments.store:
            places.append(("--store", arguments.store, "the run store",
                           Path(arguments.store).parent))
        for flag, value, what, path in places:
            folder = nearest_existing(path)
            if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
                raise UsageError(f"{flag} {value}: cannot write {what} in {folder}: the folder "
                                 f"is not writable (choose another {flag})")


# The files of a run folder that no command's output may replace (evaluate writes its own
# figures, metrics.json or a study run's evaluation.json, by design).
def _run_file_names() -> set[str]:
    from .data.loading import DATA_FILE
    from .ex_post import EX_POST_FILE
    from .io import CONFIG_FILE, WEIGHTS_FILE
    from .study.artifacts import FIGURES_FILE
    from .study.runner import METRICS_FILE
    from .study.store import RUN_FILE
    from .training.checkpoints import CHECKPOINT_FILE, LOCK_FILE, TRAINING_FILE
    from .training.history import HISTORY_FILE

    return {CONFIG_FILE, WEIGHTS_FILE, CHECKPOINT_FILE, TRAINING_FILE, HISTORY_FILE, DATA_FILE,
            RUN_FILE, METRICS_FILE, "evaluation.json", FIGURES_FILE, EX_POST_FILE, LOCK_FILE}


def _holds_run(folder: Path) -> bool:
    """Whether `train --out folder` may write there: it is empty, or holds files training
    writes (resumed, rerun or refused by the run's own checks), or what a killed write left."""
    from .data.loading import DATA_FILE
    from .io import CONFIG_FILE, TEMPORARY_NAME, WEIGHTS_FILE
    from .training.checkpoints import CHECKPOINT_FILE, LOCK_FILE, TRAINING_FILE
    from .training.history import HISTORY_FILE

    names = {path.name for path in folder.iterdir()}
    written = {CONFIG_FILE, WEIGHTS_FILE, CHECKPOINT_FILE, TRAINING_FILE, HISTORY_FILE,
               DATA_FILE, LOCK_FILE}
    return (not names or bool(names & written)
            or all(TEMPORARY_NAME.match(name) for name in names))


WRITING_OPTIONS = ("out", "store", "tensorboard", "save_config")


def _evaluation_file(run: Path) -> str:
    """Where `aevae evaluate` writes a run's figures: a study run's own metrics.json is the
    study's, so it gets evaluation.json."""
    from .study.store import RUN_FILE

    return "evaluation.json" if (run / RUN_FILE).is_file() else "metrics.json"


def _read_places(arguments) -> list[tuple[Path, str]]:
    """Where this command reads data from, resolved: the folders it never writes into and the
    files it never overwrites (its --data or --input, the run's recorded data, and a named
    dataset's data directory, from --data-dir or $AEVAE_DATA_DIR)."""
    from .data.directories import data_directory
    from .data.registry import find_dataset
    from .io import CorruptFileError

    sources = [(getattr(arguments, "data", None), getattr(arguments, "data_dir", None))]
    run = getattr(arguments, "run", None)
    if run is not None:
        try:
            saved = _read_data_record(Path(run))
        except (CorruptFileError, OSError):
            saved = {}  # the command itself reports a damaged run
        sources.append((saved.get("data"), saved.get("data_dir")))
    places = []
    for name, directory in sources:
        if not name:
            continue
        named = find_dataset(str(name))  # a name wins over a path, as in load_dataset
        if named is not None:
            # Its own folder of the data directory; nothing for data made in memory (digits).
            if named.folder:  # (there or not yet: a download would put the files there)
                folder = data_directory(directory) / named.folder
                places.append((folder.resolve(), str(folder)))
        elif Path(name).expanduser().exists():
            places.append((Path(name).expanduser().resolve(), name))
    given = getattr(arguments, "input", None)
    if given and Path(given).expanduser().exists():
        places.append((Path(given).expanduser().resolve(), given))
    return places


def _check_write_targets(arguments) -> None:
    """Every path a command writes (--out, --store, --tensorboard, --save-config) lies outside
    the data it reads and replaces neither an input file nor a file of the run it reads."""
    targets = [(f"--{name.replace('_', '-')}", getattr(arguments, name))
               for name in WRITING_OPTIONS if getattr(arguments, name, None)]
    if not targets:
        return
    places = _read_places(arguments)
    run = getattr(arguments, "run", None)
    run_folder = Path(run).expanduser().resolve() if run is not None else None
    # The run a command reads, and the one `train` writes (its --save-config may not land on
    # the run's files either).
    written = (Path(arguments.out).expanduser().resolve()
               if arguments.command == "train" and getattr(arguments, "out", None) else None)
    run_files = _run_file_names()
    for flag, value in targets:
        target = Path(value).expanduser().resolve()  # "..", symlinks: where it really goes
        for place, named in places:
            if (place.is_dir() or not place.exists()) and target.is_relative_to(place):
                raise UsageError(f"{flag} {value} is inside the data folder {named}: aevae "
                                 "never writes where your data is read from")
            if target == place:
                raise UsageError(f"{flag} {value} is the file the command reads ({named}): "
                                 "write to another file")
        own = target.parent == run_folder or (flag == "--save-config"
                                              and target.parent == written)
        figures = (arguments.command == "evaluate" and flag == "--out"
                   and target.name == _evaluation_file(target.parent))  # evaluate's own file
        if own and target.name in run_files and not figures:
            raise UsageError(f"{flag} {value} would replace the run's own {target.name}: "
                             "write to another file")


# Commands whose --out names one file: what is there may be anything (another dataset's .npy,
# say), and their images and arrays carry no mark of having been written by aevae.
FILE_OUTPUT_COMMANDS = ("evaluate", "sample", "reconstruct", "traverse", "vary", "edit", "impute")


def _check_existing_output(arguments) -> None:
    """An --out file that exists already is replaced only with --overwrite; evaluate's own
    file in the run (its default) is rewritten as ever."""
    if arguments.command not in FILE_OUTPUT_COMMANDS or not arguments.out or arguments.overwrite:
        return
    target = Path(arguments.out)  # as the commands write it
    if not (target.is_symlink() or target.exists()) or target.is_dir():
        return  # a folder is refused by the command's own checks
    run = Path(arguments.run).expanduser().resolve()
    if (arguments.command == "evaluate" and target.resolve().parent == run
            and target.name == _evaluation_file(run)):
        return
    raise UsageError(f"--out {arguments.out} already exists: pass --overwrite to replace it, "
                     "or choose another name")


def _config_defaults(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """Options from `train --config FILE` become the train command's defaults, so anything
    also given on the command line wins. Unknown names are an error naming the file. Returns
    the names the file set."""
    from .io import read_toml

    train = parser.commands["train"]
    known, _ = train.parse_known_args(argv[1:])
    if not known.config:
        return set()
    if not Path(known.config).is_file():
        problem = "is a folder" if Path(known.config).is_dir() else "no such file"
        raise UsageError(f"--config {known.config}: {problem}")
    values = read_toml(known.config)
    names = {action.dest for action in train._actions} - set(NOT_SAVED)
    unknown = sorted(set(values) - names)
    if unknown:
        raise UsageError(f"{known.config}: unknown option(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(names))}")
    if isinstance(values.get("option"), dict):
        values["option"] = [(key.replace("-", "_"), value)
                            for key, value in values["option"].items()]
    if isinstance(values.get("hidden"), list):
        values["hidden"] = tuple(values["hidden"])
    actions = {action.dest: action for action in train._actions}
    option = values.get("option")
    if isinstance(option, str):
        option = [option]
    if isinstance(option, list):  # "key=value" texts, as on the command line
        try:
            values["option"] = [actions["option"].type(item) if isinstance(item, str)
                                else item for item in option]
        except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
            raise UsageError(f"{known.config}: option: {error}") from None
    elif option is not None:
        raise UsageError(f"{known.config}: option = {option!r}: expected a table "
                         "([option] key = value) or \"key=value\" texts")
    for name in set(values) - {"option", "hidden"}:
        values[name] = _config_value(known.config, name, values[name], actions[name])
    train.set_defaults(**values)
    return set(values)


def _config_value(path: str, name: str, value, action: argparse.Action):
    """A --config value as its flag would give it: true or false for a switch (the text
    "false" is no False), a number for a number, one of the choices; else an error naming the
    key and the file."""
    def refused(expected: str) -> UsageError:
        return UsageError(f"{path}: {name} = {value!r}: expected {expected}")

    if action.nargs == 0:  # a switch: store_true, --x/--no-x
        if not isinstance(value, bool):
            raise refused("true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise refused("a number" if action.type in (int, float) else "text")
    if action.type is None and not isinstance(value, str):
        raise refused("text (in quotes)")
    if action.type is not None:
        try:
            kept = isinstance(action.type, type) and isinstance(value, action.type)
            value = value if kept else action.type(str(value))
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            raise refused("a whole number" if action.type is int else
                          "a number" if action.type is float else "a valid value") from None
    if action.choices is not None and value not in action.choices:
        raise refused(f"one of {', '.join(map(str, action.choices))}")
    return value


# Training options a resumed run takes from its training.json unless given again (the KL
# schedule is recorded as built, not as its flag's text: a resume repeats --kl-schedule).
RESUMED_FLAGS = ("batch_size", "learning_rate", "optimizer", "weight_decay", "patience",
                 "gradient_clip", "labelled_per_batch")


def _resume_defaults(parser: argparse.ArgumentParser, argv: list[str],
                     given: set[str] = frozenset()) -> None:
    """`train --resume`: the run's own training options become the defaults (but those a
    --config file ``given``), so that `--resume --epochs 40` continues the run as it was."""
    from .io import read_json
    from .training.checkpoints import TRAINING_FILE

    train = parser.commands["train"]
    known, _ = train.parse_known_args(argv[1:])
    if not known.resume or not known.out:
        return
    path = Path(known.out) / TRAINING_FILE
    record = read_json(path) if path.is_file() else None
    if isinstance(record, dict):
        train.set_defaults(**{name: record[name] for name in RESUMED_FLAGS
                              if name in record and name not in given})


def main(argv: list[str] | None = None) -> int:
    # torch loads inside (building the parser names the registries): a Ctrl-C at any moment,
    # start-up included, ends in one line.
    try:
        return _run(argv)
    except KeyboardInterrupt:
        print("aevae: interrupted; the last completed epoch is saved in the run directory",
              file=sys.stderr)
        return 130


class _WarningLine:
    """aevae's own warnings as one line, like its errors (no source path, no line of code);
    other libraries' warnings as Python shows them, so that they are not taken for aevae's."""

    def __init__(self, show):
        self.show = show

    def __call__(self, message, category, filename, lineno, file=None, line=None) -> None:
        if Path(filename).resolve().is_relative_to(Path(__file__).resolve().parent):
            print(f"aevae: warning: {message}", file=sys.stderr if file is None else file)
        else:
            self.show(message, category, filename, lineno, file, line)


def _interrupted_while_starting(signal_number, frame) -> None:
    # Nothing is written before a command starts, and a KeyboardInterrupt raised inside a
    # library's import can be swallowed by its own `except:`: leave at once.
    print("aevae: interrupted", file=sys.stderr, flush=True)
    os._exit(130)


def _run(argv: list[str] | None) -> int:
    import signal

    starting = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if starting:
        signal.signal(signal.SIGINT, _interrupted_while_starting)
    try:
        parser = build_parser()
    finally:
        if starting:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["train"]:  # precedence: a flag, then --config, then a resumed run's
            _resume_defaults(parser, argv, given=_config_defaults(parser, argv))
        arguments = parser.parse_args(argv)
    except _bad_input_errors() as error:
        print(f"aevae: error: {_error_message(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SystemExit as exit:  # --help and --version leave as argparse has them
        if exit.code == EXIT_BAD_INPUT:
            return EXIT_BAD_INPUT  # its one line is printed (_Parser.error)
        raise
    try:
        _check_arguments(arguments)
        with warnings.catch_warnings():
            warnings.showwarning = _WarningLine(warnings.showwarning)
            return arguments.handler(arguments)
    except _bad_input_errors() as error:
        if os.environ.get("AEVAE_DEBUG"):
            traceback.print_exc()
        print(f"aevae: error: {_error_message(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (MemoryError, RuntimeError) as error:
        if not _out_of_memory(error):
            raise
        if os.environ.get("AEVAE_DEBUG"):
            traceback.print_exc()
        print(f"aevae: error: out of memory ({_error_message(error)}): ask for fewer samples, "
              "examples or draws, or a smaller batch", file=sys.stderr)
        return EXIT_BAD_INPUT


def _out_of_memory(error: BaseException) -> bool:
    """A request too large for the machine (torch's allocators say so in a RuntimeError)."""
    if isinstance(error, MemoryError):
        return True
    text = str(error).lower()
    return any(sign in text for sign in ("can't allocate memory", "out of memory",
                                         "not enough memory"))


if __name__ == "__main__":
    sys.exit(main())
