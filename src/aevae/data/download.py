"""Fetching dataset files from their canonical sources, verified by md5."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..io import folders_to_make, nearest_existing, new_file_mode
from .directories import ENVIRONMENT_VARIABLE, is_writable_directory, user_cache_directory
from .errors import DataError

logger = logging.getLogger(__name__)

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
BINARIZED_MNIST_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"

CHUNK_SIZE = 1 << 20
TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    md5: str


def _files(base_url: str, md5_by_name: dict[str, str]) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(name, base_url + name, md5) for name, md5 in md5_by_name.items())


# Folder under the data directory -> its files. The md5 values are those of the public
# distributions (the same as MD5SUMS in the project's shared dataset folder).
REMOTE_FILES: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": _files(
        MNIST_URL,
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion-mnist": _files(
        FASHION_MNIST_URL,
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
    "binarized-mnist": _files(
        BINARIZED_MNIST_URL,
        {
            "binarized_mnist_train.amat": "db28b1a6ae0fe70cbd3da91acf46e477",
            "binarized_mnist_valid.amat": "bf37822a04e94123630de6a7dfd9c9ef",
            "binarized_mnist_test.amat": "14e41ae11040adba6ab8cb291eda0dd8",
        },
    ),
}


def file_md5(path: str | os.PathLike) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(folder: str, directory: str | os.PathLike) -> None:
    """Check the md5 of every file of ``folder`` (e.g. "mnist") inside ``directory``.

    Loading does not do this for files already present, since repackaged copies (for
    example Debian's, with different gzip headers) hold the same data under another md5.
    """
    directory = Path(directory)
    for remote in REMOTE_FILES[folder]:
        path = directory / remote.name
        if not path.is_file():
            raise DataError(f"missing file {remote.name} in {directory}")
        actual = file_md5(path)
        if actual != remote.md5:
            raise DataError(f"md5 mismatch for {path}: expected {remote.md5}, got {actual}")


def download_file(remote: RemoteFile, directory: str | os.PathLike,
                  staging: str | os.PathLike | None = None) -> Path:
    """Download ``remote`` into ``directory``: temporary file, md5 check, then os.replace.
    With ``staging`` (an existing folder), the file goes there instead; messages still name
    ``directory``, where it is meant to end up."""
    directory = Path(directory)
    into = directory if staging is None else Path(staging)
    target = into / remote.name
    _refuse_read_only(into, directory)
    try:
        into.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create data directory {directory}: {error.strerror}") from None
    logger.info("downloading %s to %s", remote.url, directory / remote.name)
    digest = hashlib.md5()
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(dir=into, prefix=remote.name, suffix=".partial")
        os.fchmod(handle, new_file_mode(target))  # not mkstemp's 0600
        with os.fdopen(handle, "wb") as output:
            with urllib.request.urlopen(remote.url, timeout=TIMEOUT_SECONDS) as response:
                for chunk in iter(lambda: response.read(CHUNK_SIZE), b""):
                    digest.update(chunk)
                    output.write(chunk)
        actual = digest.hexdigest()
        if actual != remote.md5:
            raise DataError(
                f"md5 mismatch for {remote.name} downloaded from {remote.url}: "
                f"expected {remote.md5}, got {actual}; the download is corrupt or the "
                "source changed"
            )
        os.replace(temporary, target)
        temporary = None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
        raise DataError(
            f"could not download {remote.url}: {reason}; put the file in {directory} "
            f"yourself or set {ENVIRONMENT_VARIABLE} to a folder that has it"
        ) from None
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
    return target


def ensure_files(
    folder: str,
    directory: str | os.PathLike,
    *,
    download: bool,
    dataset: str,
    searched: str = "",
) -> Path:
    """Make sure all files of ``folder`` exist in ``directory``, downloading if allowed, and
    return the folder that has them: ``directory``, or the user cache's ``folder`` when
    ``directory`` is read-only (aevae never writes into it)."""
    directory = Path(directory)
    missing = _missing_files(folder, directory)
    if not missing:
        return directory
    cache = user_cache_directory() / folder
    read_only = _read_only(directory)
    if read_only and cache.absolute() != directory.absolute():
        if not _missing_files(folder, cache):
            return cache  # downloaded there before, since this directory is read-only
    if not download:
        names = ", ".join(remote.name for remote in missing)
        where = f" ({searched})" if searched else ""
        raise DataError(
            f"dataset {dataset!r} is missing {names} in {directory}{where}; "
            f"set {ENVIRONMENT_VARIABLE} to a folder containing {folder}/, pass data_dir, "
            "or allow downloading"
        )
    if read_only:
        if cache.absolute() == directory.absolute() or _read_only(cache):
            also = ("" if cache.absolute() == directory.absolute() else
                    f", and so is the user cache that would take it instead "
                    f"({nearest_existing(cache)})")
            raise DataError(
                f"cannot download dataset {dataset!r} into {directory}: "
                f"{nearest_existing(directory)} is read-only{also}; download {folder}/ into "
                f"a writable folder and set {ENVIRONMENT_VARIABLE} to it, or pass data_dir"
            )
        logger.info("%s is read-only: downloading %s into the user cache %s instead",
                    directory, dataset, cache)
        directory = cache
        missing = _missing_files(folder, directory)
    _download_all(missing, directory)
    return directory


def _missing_files(folder: str, directory: Path) -> list[RemoteFile]:
    return [remote for remote in REMOTE_FILES[folder] if not (directory / remote.name).is_file()]


def _read_only(directory: Path) -> bool:
    """True when ``directory`` (or, not there yet, the folder it would be made in) is a folder
    aevae may not write into; a file in the way is reported where the download is tried."""
    existing = nearest_existing(directory)
    return existing.is_dir() and not is_writable_directory(existing)


def _refuse_read_only(into: Path, directory: Path) -> None:
    # Root could write there anyway: the missing write bits are what says "read-only".
    if _read_only(into):
        raise DataError(f"cannot download into {directory}: {nearest_existing(into)} is "
                        f"read-only; set {ENVIRONMENT_VARIABLE} to a writable folder")


def _download_all(missing: list[RemoteFile], directory: Path) -> None:
    """Download ``missing`` into ``directory``. The files arrive in a staging folder beside it
    (same file system); ``directory`` and its parents are created only once every file has
    arrived and been checked. A failure leaves the disk as it was: no folder, no file."""
    existing = nearest_existing(directory)
    if not existing.is_dir():
        raise DataError(f"cannot create data directory {directory}: {existing} is not a folder")
    _refuse_read_only(existing, directory)
    try:
        staging = Path(tempfile.mkdtemp(prefix=".aevae-download-", dir=existing))
    except OSError as error:
        raise DataError(f"cannot create data directory {directory}: {error.strerror}") from None
    created = folders_to_make(directory)
    placed = []
    try:
        for remote in missing:
            download_file(remote, directory, staging=staging)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for remote in missing:
                os.replace(staging / remote.name, directory / remote.name)
                placed.append(directory / remote.name)
        except OSError as error:
            raise DataError(f"cannot write data directory {directory}: {error.strerror}"
                            ) from None
    except BaseException:
        for path in placed:
            path.unlink(missing_ok=True)
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: another process may have put files there
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass(frozen=True)
class DataSource:
    """The data directory a named dataset is read from, and whether it may download."""

    root: Path
    download: bool = True
    origin: str = ""  # how root was chosen, for error messages

    def folder(self, folder: str, dataset: str) -> Path:
        """``root/folder`` with all its files present (downloaded if allowed); the user
        cache's ``folder`` instead when ``root/folder`` is read-only and lacks them."""
        return ensure_files(
            folder,
            self.root / folder,
            download=self.download,
            dataset=dataset,
            searched=self.origin,
        )
