"""Versioned model files: ``<root>/<COMPACT_SYMBOL>/ml_classifier/vNNNN.{joblib,json}``.

* ``vNNNN.joblib``: the fitted scikit-learn pipeline (``joblib.dump``);
* ``vNNNN.json``: its :class:`~backend.ml.model.ModelMeta`, including the SHA-256 of the
  ``.joblib`` file, checked on every load.

Versions start at 1 and only grow.  A save is atomic: the model is written to a temp
file and *linked* to ``vNNNN.joblib`` (a link fails if the name exists, so two writers
never get the same version), then the metadata goes to a temp file renamed to
``vNNNN.json``.  A version exists once its ``.json`` does; a crash in between leaves an
orphan ``.joblib`` that is skipped.  Every problem (missing or corrupt file, hash
mismatch, incompatible features) raises :class:`ModelStoreError` with the path and the
reason.

``joblib`` files are pickles: load only models this mesh wrote (the hash detects
corruption and tampering of a file, not a forged pair of files).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from types import ModuleType

from pydantic import ValidationError

from backend.channels import compact_symbol
from backend.ml.features import FEATURE_NAMES, FEATURE_SET
from backend.ml.model import MODEL_NAME, ModelMeta, TrainedModel

__all__ = ["ModelStore", "ModelStoreError", "list_models", "model_root"]

_VERSION_RE = re.compile(r"^v(\d{4,})\.json$")


def _joblib() -> ModuleType:
    """joblib, imported when a model is read or written (agents start without it)."""
    import joblib

    return joblib


class ModelStoreError(Exception):
    """A model version is missing, unreadable, tampered with or incompatible."""


def model_root(settings) -> Path:  # noqa: ANN001 - backend.settings.Settings
    """The models directory of a mesh: ``settings.ml.model_dir`` or ``<var_dir>/models``."""
    ml = getattr(settings, "ml", None)
    configured = getattr(ml, "model_dir", None)
    return Path(configured) if configured else Path(settings.var_dir) / "models"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ModelStore:
    """The versions of one symbol's model.

    Parameters
    ----------
    root : path
        Models directory (:func:`model_root`).
    symbol : str
        ``BASE/QUOTE`` (any form :func:`backend.channels.compact_symbol` accepts).
    model : str
        Model family (directory name).
    """

    def __init__(self, root: Path | str, symbol: str, model: str = MODEL_NAME) -> None:
        self.symbol = symbol
        self.model = model
        self.dir = Path(root) / compact_symbol(symbol) / model

    def path(self, version: int, suffix: str = ".joblib") -> Path:
        """File of ``version`` (``.joblib`` or ``.json``)."""
        return self.dir / f"v{int(version):04d}{suffix}"

    def versions(self) -> list[int]:
        """Saved versions (those with a metadata file), ascending."""
        if not self.dir.is_dir():
            return []
        out = []
        for p in self.dir.iterdir():
            m = _VERSION_RE.match(p.name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def latest(self) -> int | None:
        """The newest version, or ``None`` when there is none."""
        v = self.versions()
        return v[-1] if v else None

    def meta(self, version: int) -> ModelMeta:
        """The metadata of ``version``.

        Raises
        ------
        ModelStoreError
            No such version, unreadable or invalid JSON.
        """
        path = self.path(version, ".json")
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            known = ", ".join(str(v) for v in self.versions()) or "none"
            raise ModelStoreError(f"model {self.model} {self.symbol} version {version}: "
                                  f"{path} not found (versions: {known})") from None
        except OSError as exc:
            raise ModelStoreError(f"{path}: cannot read: {exc.strerror or exc}") from None
        try:
            return ModelMeta.model_validate_json(raw)
        except ValidationError as exc:
            raise ModelStoreError(f"{path}: invalid model metadata: "
                                  f"{exc.errors()[0]['msg']}") from None

    def load(self, version: int | None = None) -> TrainedModel:
        """Load ``version`` (default: the latest), checking hash and feature set.

        Raises
        ------
        ModelStoreError
            No version, missing or unreadable files, SHA-256 mismatch, a model trained
            on other features, or a file that does not hold a fitted pipeline.
        """
        if version is None:
            version = self.latest()
            if version is None:
                raise ModelStoreError(f"no saved {self.model} model for {self.symbol} "
                                      f"in {self.dir}")
        meta = self.meta(version)
        path = self.path(version)
        try:
            digest = _sha256(path)
        except FileNotFoundError:
            raise ModelStoreError(f"{path} not found (metadata exists)") from None
        except OSError as exc:
            raise ModelStoreError(f"{path}: cannot read: {exc.strerror or exc}") from None
        if digest != meta.sha256:
            raise ModelStoreError(f"{path}: SHA-256 {digest[:16]}... does not match the "
                                  f"metadata's {meta.sha256[:16]}...: the file was changed "
                                  "or is corrupt; not loading it")
        if meta.feature_set != FEATURE_SET or list(meta.features) != list(FEATURE_NAMES):
            raise ModelStoreError(f"{path}: trained on feature set {meta.feature_set!r}, "
                                  f"this code computes {FEATURE_SET!r}: retrain the model")
        try:
            pipeline = _joblib().load(path)
            return TrainedModel(pipeline, meta)
        except Exception as exc:  # noqa: BLE001 - any unpickling problem is a bad file
            raise ModelStoreError(f"{path}: not a usable model: "
                                  f"{type(exc).__name__}: {exc}") from None

    def find_same(self, meta: ModelMeta) -> int | None:
        """The newest saved version trained on the same data for the same bar as ``meta``
        (``trigger_seq``, data range, bars, horizon, hyper-parameters), or ``None``.

        A live retrain retried after a crash finds the version it saved the first time
        (training is deterministic, so it is the model it would train again).  Only live
        retrains (``trigger_seq > 0``) are matched.
        """
        if meta.trigger_seq <= 0:
            return None
        key = _same_key(meta)
        for v in reversed(self.versions()):
            with contextlib.suppress(ModelStoreError):
                if _same_key(self.meta(v)) == key:
                    return v
        return None

    def save(self, model: TrainedModel) -> TrainedModel:
        """Save ``model`` as the next version.

        Returns
        -------
        TrainedModel
            The model with ``version`` and ``sha256`` set in its metadata.

        Raises
        ------
        ModelStoreError
            The directory cannot be written.
        """
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".joblib", dir=self.dir)
            os.close(fd)
            tmp_path = Path(tmp)
            try:
                _joblib().dump(model.pipeline, tmp_path)
                digest = _sha256(tmp_path)
                version = self._reserve(tmp_path)
            finally:
                tmp_path.unlink(missing_ok=True)
            saved = model.with_meta(version=version, sha256=digest, model=self.model)
            self._write_json(self.path(version, ".json"),
                             saved.meta.model_dump_json(indent=2).encode())
            return saved
        except OSError as exc:
            raise ModelStoreError(f"cannot save a model in {self.dir}: "
                                  f"{exc.strerror or exc}") from None

    def _reserve(self, tmp: Path) -> int:
        """Link ``tmp`` to the first free ``vNNNN.joblib``; return that version."""
        taken = {int(m.group(1)) for p in self.dir.iterdir()
                 if (m := re.match(r"^v(\d{4,})\.(?:json|joblib)$", p.name))}
        version = max(taken, default=0) + 1
        while True:
            try:
                os.link(tmp, self.path(version))
                return version
            except FileExistsError:
                version += 1

    def _write_json(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _same_key(m: ModelMeta) -> tuple:
    return (m.trigger_seq, m.data_start, m.data_end, m.bars, m.horizon,
            sorted(m.params.items()), m.feature_set)


def list_models(root: Path | str, symbol: str | None = None,
                model: str = MODEL_NAME) -> list[ModelMeta]:
    """Metadata of every saved version under ``root`` (of one symbol if given).

    Sorted by symbol then version; unreadable metadata files are skipped.
    """
    root = Path(root)
    if symbol is not None:
        dirs = [compact_symbol(symbol)]
    elif root.is_dir():
        dirs = sorted(p.name for p in root.iterdir() if (p / model).is_dir())
    else:
        dirs = []
    out: list[ModelMeta] = []
    for d in dirs:
        store = ModelStore(root, d, model)
        for v in store.versions():
            with contextlib.suppress(ModelStoreError):
                out.append(store.meta(v))
    return out
