"""Data: a names file or a text, read once and checked, to its vocabulary and splits.

=============  ==============================================================================
``files``      where a data file is found (``--data``, ``$BPJAX_DATA``, ``data/``, the cache, a
               download checked by SHA-256), read once and hashed as read
``names``      the notebook's "Dataset Creation": words, ``Vocab``, its windows and makemore's
               padded sequences, the 80/10/10 split of ``random.seed(42)``
``text``       any UTF-8 text as one character stream: nanoGPT's 90/10 split, evaluation windows
``dataset``    a run's data in its model's layout (:data:`LAYOUTS`)
=============  ==============================================================================

Every way a file can be wrong raises :class:`bpjax.errors.DataError` with a one-line message.
"""

from ..errors import DataError
from .dataset import LAYOUTS, describe, load_dataset, make_dataset, split_names, training_arrays
from .files import (
    DATASETS,
    MAX_DATA_BYTES,
    NAMES_SHA256,
    NAMES_URL,
    SHAKESPEARE_SHA256,
    SHAKESPEARE_URL,
    cache_dir,
    download_file,
    read_data,
    resolve_data_path,
    sha256_of,
)
from .names import (
    BOUNDARY,
    Vocab,
    build_dataset,
    build_sequences,
    load_words,
    make_sequences,
    make_splits,
    parse_words,
)
from .text import encode_text, load_text, make_text_splits, parse_text, text_rows

__all__ = ["DataError", "LAYOUTS", "describe", "load_dataset", "make_dataset", "split_names", "training_arrays",
           "DATASETS", "MAX_DATA_BYTES", "NAMES_SHA256", "NAMES_URL", "SHAKESPEARE_SHA256", "SHAKESPEARE_URL",
           "cache_dir", "download_file", "read_data", "resolve_data_path", "sha256_of", "BOUNDARY", "Vocab",
           "build_dataset", "build_sequences", "load_words", "make_sequences", "make_splits", "parse_words",
           "encode_text", "load_text", "make_text_splits", "parse_text", "text_rows"]
