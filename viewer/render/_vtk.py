"""All VTK imports of vrscope, in one place (like pyvista's ``core/_vtk_core.py``).

Importing this module chooses EGL for offscreen rendering when no display is
set and ``VTK_DEFAULT_OPENGL_WINDOW`` is unset (see ``/work/shared/RENDERING.md``:
EGL, OSMesa and Xvfb give identical images; EGL needs no server).
"""

from __future__ import annotations

import os
from typing import Any

if (
    "VTK_DEFAULT_OPENGL_WINDOW" not in os.environ
    and not os.environ.get("DISPLAY")
    and not os.environ.get("WAYLAND_DISPLAY")
):
    os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = "vtkEGLRenderWindow"

# Registers the OpenGL factories (render window, mappers) and FreeType text.
import vtkmodules.vtkRenderingFreeType
import vtkmodules.vtkRenderingOpenGL2
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401
from vtkmodules.util import numpy_support as _ns
from vtkmodules.vtkCommonCore import vtkCommand, vtkIdTypeArray, vtkPoints
from vtkmodules.vtkCommonDataModel import (
    vtkCellArray,
    vtkImageData,
    vtkPiecewiseFunction,
    vtkPlane,
    vtkPlaneCollection,
    vtkPolyData,
)
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkFiltersCore import vtkTubeFilter
from vtkmodules.vtkFiltersHybrid import vtkPolyDataSilhouette
from vtkmodules.vtkFiltersSources import (
    vtkConeSource,
    vtkCubeSource,
    vtkPlaneSource,
    vtkSphereSource,
)
from vtkmodules.vtkRenderingAnnotation import vtkAxesActor
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkActor2D,
    vtkBillboardTextActor3D,
    vtkColorTransferFunction,
    vtkGlyph3DMapper,
    vtkPolyDataMapper,
    vtkPolyDataMapper2D,
    vtkRenderer,
    vtkRenderWindow,
    vtkTextActor,
    vtkTextRenderer,
    vtkTexture,
    vtkVolume,
    vtkVolumeProperty,
    vtkWindowToImageFilter,
)
from vtkmodules.vtkRenderingOpenGL2 import vtkGenericOpenGLRenderWindow
from vtkmodules.vtkRenderingVolume import vtkVolumePicker
from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkOpenGLGPUVolumeRayCastMapper

# The numpy bridge is untyped; typed as Any so strict callers stay clean.
numpy_to_vtk: Any = _ns.numpy_to_vtk
numpy_to_vtkIdTypeArray: Any = _ns.numpy_to_vtkIdTypeArray
vtk_to_numpy: Any = _ns.vtk_to_numpy

__all__ = [
    "numpy_to_vtk",
    "numpy_to_vtkIdTypeArray",
    "vtkActor",
    "vtkActor2D",
    "vtkAxesActor",
    "vtkBillboardTextActor3D",
    "vtkCellArray",
    "vtkColorTransferFunction",
    "vtkCommand",
    "vtkConeSource",
    "vtkCubeSource",
    "vtkGenericOpenGLRenderWindow",
    "vtkGlyph3DMapper",
    "vtkIdTypeArray",
    "vtkImageData",
    "vtkMatrix4x4",
    "vtkOpenGLGPUVolumeRayCastMapper",
    "vtkPiecewiseFunction",
    "vtkPlane",
    "vtkPlaneCollection",
    "vtkPlaneSource",
    "vtkPoints",
    "vtkPolyData",
    "vtkPolyDataMapper",
    "vtkPolyDataMapper2D",
    "vtkPolyDataSilhouette",
    "vtkRenderWindow",
    "vtkRenderer",
    "vtkSphereSource",
    "vtkTextActor",
    "vtkTextRenderer",
    "vtkTexture",
    "vtkTubeFilter",
    "vtkVolume",
    "vtkVolumePicker",
    "vtkVolumeProperty",
    "vtkWindowToImageFilter",
    "vtk_to_numpy",
]
