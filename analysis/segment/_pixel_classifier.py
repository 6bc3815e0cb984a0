"""Random-forest pixel classifier trained from sparse scribbles (ilastik-style)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from skimage import feature
from sklearn.ensemble import RandomForestClassifier

from analysis.errors import ParameterError
from analysis.segment._blockwise import WritableArray, apply_blockwise
from analysis.segment._forest import forest_from_bytes, forest_to_bytes
from analysis.volume import VolumeSource

__all__ = ["PixelClassifier"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _FeatureSettings:
    sigma_min: float = 0.5
    sigma_max: float = 8.0
    intensity: bool = True
    edges: bool = True
    texture: bool = True

    @property
    def halo(self) -> int:
        # Gaussian support (skimage uses truncate=4) + 2 for the Hessian's two np.gradient
        # passes (+1 for Sobel is covered): beyond this, a block's features are exact.
        return int(4.0 * self.sigma_max + 0.5) + 3


class PixelClassifier:
    """Classify every voxel from a few painted strokes.

    Features are ``skimage.feature.multiscale_basic_features`` (Gaussian-smoothed
    intensity, edges and Hessian texture at scales ``sigma_min .. sigma_max``); the model
    is a ``sklearn.ensemble.RandomForestClassifier``.

    Parameters
    ----------
    sigma_min, sigma_max : float, default: 0.5, 8.0
        Smallest and largest Gaussian scale in voxels.
    intensity, edges, texture : bool, default: True
        Which feature families to use.
    n_estimators : int, default: 50
    max_depth : int, optional, default: 10
    random_state : int, default: 0
    """

    def __init__(
        self,
        sigma_min: float = 0.5,
        sigma_max: float = 8.0,
        *,
        intensity: bool = True,
        edges: bool = True,
        texture: bool = True,
        n_estimators: int = 50,
        max_depth: int | None = 10,
        random_state: int = 0,
    ) -> None:
        if not 0 < sigma_min <= sigma_max:
            raise ParameterError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
        if not (intensity or edges or texture):
            raise ParameterError("enable at least one feature family")
        self.settings = _FeatureSettings(sigma_min, sigma_max, intensity, edges, texture)
        self.forest = RandomForestClassifier(
            n_estimators=n_estimators,
            max_depth=max_depth,
            random_state=random_state,
            n_jobs=1,
        )
        self._fitted = False

    @property
    def classes(self) -> npt.NDArray[np.int64]:
        """The scribble classes the model predicts (non-zero labels seen in training)."""
        self._check_fitted()
        return np.asarray(self.forest.classes_, dtype=np.int64)

    def features(self, image: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """``(*image.shape, n_features)`` feature stack of a 2D or 3D image."""
        img = np.asarray(image)
        if img.ndim not in (2, 3):
            raise ParameterError(f"image must be 2D or 3D, got {img.ndim} dimensions")
        s = self.settings
        feats = feature.multiscale_basic_features(  # type: ignore[no-untyped-call]
            img,
            intensity=s.intensity,
            edges=s.edges,
            texture=s.texture,
            sigma_min=s.sigma_min,
            sigma_max=s.sigma_max,
            channel_axis=None,
        )
        return np.asarray(feats, dtype=np.float32)

    def fit(self, image: npt.ArrayLike, scribbles: npt.ArrayLike) -> PixelClassifier:
        """Train on the voxels where ``scribbles`` is non-zero (values are the classes).

        Raises :class:`ParameterError` with fewer than two classes painted.
        """
        img = np.asarray(image)
        scr = np.asarray(scribbles)
        if scr.shape != img.shape:
            raise ParameterError(
                f"scribbles shape {scr.shape} differs from image shape {img.shape}"
            )
        painted = scr != 0
        classes = np.unique(scr[painted])
        if classes.size < 2:
            raise ParameterError(f"scribbles must paint at least two classes, got {classes.size}")
        feats = self.features(img)
        self.forest.fit(feats[painted], scr[painted].astype(np.int64))
        self._fitted = True
        log.info("pixel classifier trained on %d voxels, %d classes", painted.sum(), classes.size)
        return self

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise ParameterError("the pixel classifier is not trained yet (call fit first)")

    def predict_proba(self, image: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """``(*image.shape, n_classes)`` class probabilities, classes as :attr:`classes`."""
        self._check_fitted()
        img = np.asarray(image)
        feats = self.features(img)
        proba = self.forest.predict_proba(feats.reshape(-1, feats.shape[-1]))
        return np.asarray(proba.reshape(*img.shape, -1), dtype=np.float32)

    def predict(self, image: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Label image of the most probable class per voxel."""
        self._check_fitted()
        img = np.asarray(image)
        feats = self.features(img)
        pred = self.forest.predict(feats.reshape(-1, feats.shape[-1]))
        return np.asarray(pred.reshape(img.shape), dtype=np.int64)

    def predict_blockwise(
        self,
        source: VolumeSource,
        out: WritableArray | None = None,
        *,
        level: int = 0,
        block_shape: tuple[int, int, int] | None = None,
        progress: bool = False,
    ) -> WritableArray:
        """Predict a volume larger than memory block by block (same result as :meth:`predict`).

        Blocks are read with a halo covering the features' filter support.
        """
        self._check_fitted()
        h = self.settings.halo
        return apply_blockwise(
            source,
            partial(_predict_block, self),
            halo=(h, h, h),
            block_shape=block_shape,
            level=level,
            out=out,
            dtype=np.int64,
            progress=progress,
        )

    # -- persistence (safe: no pickle, see analysis.segment._forest) -------------------
    def to_bytes(self) -> bytes:
        """The trained classifier as ``.npz`` bytes (plain arrays + JSON, no pickle)."""
        self._check_fitted()
        s = self.settings
        meta: dict[str, Any] = {
            "kind": "pixel",
            "sigma_min": s.sigma_min,
            "sigma_max": s.sigma_max,
            "intensity": s.intensity,
            "edges": s.edges,
            "texture": s.texture,
        }
        return forest_to_bytes(self.forest, meta)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "classifier") -> PixelClassifier:
        """Rebuild a classifier from :meth:`to_bytes` output."""
        forest, meta = forest_from_bytes(data, source)
        if meta.get("kind") != "pixel":
            raise ParameterError(
                f"{source} holds a {meta.get('kind')!r} classifier, not a pixel one"
            )
        clf = cls(
            float(meta["sigma_min"]),
            float(meta["sigma_max"]),
            intensity=bool(meta["intensity"]),
            edges=bool(meta["edges"]),
            texture=bool(meta["texture"]),
        )
        clf.forest = forest
        clf._fitted = True
        return clf

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_bytes` to ``path`` (conventionally ``*.npz``) via
        :func:`analysis.io.save_classifier`."""
        from analysis.io import save_classifier  # the file side lives in analysis.io

        save_classifier(self, path)

    @classmethod
    def load(cls, path: str | Path) -> PixelClassifier:
        """Read a classifier written by :meth:`save` (:func:`analysis.io.load_classifier`);
        never unpickles anything."""
        from analysis.io import load_classifier

        return load_classifier(cls, path)


def _predict_block(clf: PixelClassifier, block: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    return clf.predict(block)
