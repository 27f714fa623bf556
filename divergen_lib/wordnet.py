"""WordNet 3.0 through NLTK, offline: an NLTK data folder built from Debian's ``wordnet-base`` files.

Debian ships the WordNet 3.0 database in ``/usr/share/wordnet`` (``wordnet-base`` + ``wordnet-sense-index``) but
without the ``lexnames`` file NLTK's reader needs. :func:`load_wordnet` copies the database files (~37 MB; NLTK
refuses symlinks that leave its data folder) into ``<data_dir>/corpora/wordnet/``, writes ``lexnames`` from the 45
standard lexicographer file names, puts ``<data_dir>`` on ``nltk.data.path`` and returns the corpus reader.
ImageNet and LVIS synsets are WordNet 3.0.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import nltk
from nltk.corpus.reader import CorpusReader, WordNetCorpusReader
from nltk.corpus.util import LazyCorpusLoader

from .errors import InputError
from .formats import atomic_open, atomic_write_text

DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_VERSION = "3.0"
APT_HINT = "apt-get install wordnet-base wordnet-sense-index"

LEXNAMES = (
    ("adj.all", 3),
    ("adj.pert", 3),
    ("adv.all", 4),
    ("noun.Tops", 1),
    ("noun.act", 1),
    ("noun.animal", 1),
    ("noun.artifact", 1),
    ("noun.attribute", 1),
    ("noun.body", 1),
    ("noun.cognition", 1),
    ("noun.communication", 1),
    ("noun.event", 1),
    ("noun.feeling", 1),
    ("noun.food", 1),
    ("noun.group", 1),
    ("noun.location", 1),
    ("noun.motive", 1),
    ("noun.object", 1),
    ("noun.person", 1),
    ("noun.phenomenon", 1),
    ("noun.plant", 1),
    ("noun.possession", 1),
    ("noun.process", 1),
    ("noun.quantity", 1),
    ("noun.relation", 1),
    ("noun.shape", 1),
    ("noun.state", 1),
    ("noun.substance", 1),
    ("noun.time", 1),
    ("verb.body", 2),
    ("verb.change", 2),
    ("verb.cognition", 2),
    ("verb.communication", 2),
    ("verb.competition", 2),
    ("verb.consumption", 2),
    ("verb.contact", 2),
    ("verb.creation", 2),
    ("verb.emotion", 2),
    ("verb.motion", 2),
    ("verb.perception", 2),
    ("verb.possession", 2),
    ("verb.social", 2),
    ("verb.stative", 2),
    ("verb.weather", 2),
    ("adj.ppl", 3),
)
"""WordNet's lexicographer files in file-number order, with their syntactic category (1 noun … 4 adverb)."""


class WordNetUnavailable(InputError):
    """The WordNet database can be neither found locally nor downloaded."""


def default_data_dir() -> Path:
    """``$XDG_CACHE_HOME/divergen_repro/nltk_data`` (``~/.cache/...`` when the variable is unset)."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "divergen_repro" / "nltk_data"


def lexnames_text() -> str:
    """The ``lexnames`` file: ``NN<TAB>name<TAB>category`` per line, numbered from 00."""
    return "".join(f"{i:02d}\t{name}\t{category}\n" for i, (name, category) in enumerate(LEXNAMES))


def missing_wordnet_files(source_dir: str | os.PathLike = DEBIAN_WORDNET_DIR) -> list[str]:
    """Names of the files NLTK's reader opens that ``source_dir`` lacks (``lexnames`` is written, not needed)."""
    return [n for n in WordNetCorpusReader._FILES if n != "lexnames" and not (Path(source_dir) / n).is_file()]


def prepare_wordnet_dir(
    data_dir: str | os.PathLike | None = None, source_dir: str | os.PathLike = DEBIAN_WORDNET_DIR
) -> Path:
    """Build ``<data_dir>/corpora/wordnet/`` from the Debian files in ``source_dir``; return the corpus folder.

    Each database file is copied (atomically, only when missing or different in size or mtime); ``lexnames`` is written.
    Raises :class:`WordNetUnavailable` naming the missing files when ``source_dir`` is incomplete.
    """
    source_dir = Path(source_dir)
    missing = missing_wordnet_files(source_dir)
    if missing:
        raise WordNetUnavailable(f"{source_dir}: WordNet files missing ({', '.join(missing)}); run `{APT_HINT}`")
    corpus = Path(data_dir or default_data_dir()) / "corpora" / "wordnet"
    corpus.mkdir(parents=True, exist_ok=True)
    for name in WordNetCorpusReader._FILES:
        if name == "lexnames":
            continue
        src, dst = source_dir / name, corpus / name
        if not _same_file_stat(src, dst):
            with atomic_open(dst, "wb") as fh, open(src, "rb") as fin:
                shutil.copyfileobj(fin, fh)
            shutil.copystat(src, dst)
    lexnames = corpus / "lexnames"
    if not lexnames.is_file() or lexnames.read_text(encoding="utf-8") != lexnames_text():
        atomic_write_text(lexnames, lexnames_text())
    return corpus


def _same_file_stat(src: Path, dst: Path) -> bool:
    if not dst.is_file() or dst.is_symlink():
        return False
    a, b = src.stat(), dst.stat()
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns


def load_wordnet(
    data_dir: str | os.PathLike | None = None,
    source_dir: str | os.PathLike = DEBIAN_WORDNET_DIR,
    allow_download: bool = False,
) -> WordNetCorpusReader:
    """The WordNet 3.0 corpus reader, from the Debian files or (if ``allow_download``) ``nltk.download``.

    ``data_dir`` (default :func:`default_data_dir`) is put first on ``nltk.data.path``. Readers are cached per
    folder, so repeated calls are free. Raises :class:`WordNetUnavailable` with the apt command to run when the
    Debian files are missing and downloads are not allowed, or when the database found is not WordNet 3.0.
    """
    data_dir = Path(data_dir or default_data_dir()).resolve()
    return _load_wordnet(data_dir, Path(source_dir).resolve(), allow_download)


@functools.cache
def _load_wordnet(data_dir: Path, source_dir: Path, allow_download: bool) -> WordNetCorpusReader:
    from_debian = not missing_wordnet_files(source_dir)
    if not (from_debian or allow_download):
        raise WordNetUnavailable(
            f"{source_dir}: WordNet 3.0 not installed; run `{APT_HINT}` or pass allow_download=True"
        )
    if str(data_dir) in nltk.data.path:
        nltk.data.path.remove(str(data_dir))
    nltk.data.path.insert(0, str(data_dir))
    if from_debian:
        root = nltk.data.FileSystemPathPointer(prepare_wordnet_dir(data_dir, source_dir))
    else:
        if not nltk.download("wordnet", download_dir=str(data_dir), quiet=True):
            raise WordNetUnavailable(f"{data_dir}: nltk.download('wordnet') failed; run `{APT_HINT}`")
        root = nltk.data.find("corpora/wordnet/", paths=[str(data_dir)])
    omw = LazyCorpusLoader("omw-2.0", CorpusReader, r".*/wn-data-.*\.tab", encoding="utf8")
    reader = WordNetCorpusReader(root, omw)
    if reader.get_version() != WORDNET_VERSION:
        raise WordNetUnavailable(f"{root}: WordNet {reader.get_version()} found, {WORDNET_VERSION} required")
    return reader
