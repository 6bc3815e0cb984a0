"""``VtkBrushStamps``: label brush stamps drawn from memory while their edit is written.

A headset stamp (``labels.paint`` / ``labels.erase`` with a 3D ball) is written on a
thread of its own (atom, intent, chunks, journal: tens of ms), and the label surfaces
show it only once the bricks it touched are meshed again. Until then the front end hands
the stamps here and they are drawn as balls in world space: a paint stamp in its object's
colour (lit like the label surfaces), an erase stamp as *cleared*: unlit, in the
background colour, so the brush volume shows as a hole punched into what it covers.
Stamps not yet journaled are drawn at :data:`PENDING_OPACITY`; journaled ones opaque.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from viewer.scene import Labels

from . import _vtk as v
from ._base import polydata
from ._labels import label_colors

__all__ = ["PENDING_OPACITY", "VtkBrushStamps"]

#: Opacity of a stamp whose edit is not journaled yet (not acknowledged).
PENDING_OPACITY = 0.8


class VtkBrushStamps:
    """Balls at label brush stamps, in world coordinates (µm), one glyph actor per kind
    (paint / erase, journaled or not).

    Attributes
    ----------
    props : list of vtkActor
        Add them to the scene's renderer (opaque geometry, before the volumes).
    """

    def __init__(self) -> None:
        ball = v.vtkSphereSource()
        ball.SetRadius(1.0)
        ball.SetThetaResolution(24)
        ball.SetPhiResolution(16)
        self._actors: dict[tuple[bool, bool], tuple[Any, Any]] = {}
        for erase in (False, True):
            for confirmed in (False, True):
                gm = v.vtkGlyph3DMapper()
                gm.SetSourceConnection(ball.GetOutputPort())
                gm.SetColorModeToDirectScalars()
                gm.ScalingOn()
                gm.SetScaleArray("scale")
                gm.SetScaleModeToScaleByVectorComponents()
                actor = v.vtkActor()
                actor.SetMapper(gm)
                prop = actor.GetProperty()
                if erase:
                    prop.LightingOff()  # the background's flat colour: cleared
                else:
                    prop.SetSpecular(0.2)  # as the label surfaces
                prop.SetOpacity(1.0 if confirmed else PENDING_OPACITY)
                actor.PickableOff()
                actor.SetVisibility(False)
                self._actors[(erase, confirmed)] = (gm, actor)
        self.props = [a for _, a in self._actors.values()]
        self._background = (0.0, 0.0, 0.0)
        self._key: Any = None

    def set_background(self, rgb: tuple[float, float, float]) -> None:
        """The colour erase stamps are drawn in (the renderer's background)."""
        rgb = (float(rgb[0]), float(rgb[1]), float(rgb[2]))
        if rgb != self._background:
            self._background = rgb
            self._key = None

    def set(
        self,
        layer: Labels | None,
        centres_um: npt.ArrayLike,
        radii_um: npt.ArrayLike,
        ids: npt.ArrayLike,
        confirmed: npt.ArrayLike,
    ) -> None:
        """Draw these stamps (replacing the previous ones).

        Parameters
        ----------
        layer : Labels or None
            The labels layer painted (its colour mode colours the paint stamps).
        centres_um : (S, 3) float
            World z, y, x of each stamp's centre.
        radii_um : (S,) float
        ids : (S,) int
            The id painted; 0 erases.
        confirmed : (S,) bool
            Whether the stamp's edit is journaled.
        """
        c = np.asarray(centres_um, dtype=np.float64).reshape(-1, 3)
        r = np.asarray(radii_um, dtype=np.float64).reshape(-1)
        i = np.asarray(ids, dtype=np.int64).reshape(-1)
        ok = np.asarray(confirmed, dtype=bool).reshape(-1)
        visible = layer is not None and bool(layer.visible)
        key = (c.tobytes(), r.tobytes(), i.tobytes(), ok.tobytes(), visible, id(layer))
        if key == self._key:
            return
        self._key = key
        for (erase, confirmed_), (gm, actor) in self._actors.items():
            sel = ((i == 0) == erase) & (ok == confirmed_)
            if not visible or not sel.any():
                actor.SetVisibility(False)
                continue
            if erase:
                rgb = np.tile(np.asarray(self._background), (int(sel.sum()), 1))
            else:
                assert layer is not None
                rgb = label_colors(layer, [int(x) for x in i[sel]])
            radii = np.repeat(r[sel].reshape(-1, 1), 3, axis=1)
            gm.SetInputData(polydata(c[sel][:, ::-1], colors=rgb, point_arrays={"scale": radii}))
            actor.SetVisibility(True)
