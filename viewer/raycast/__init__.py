"""Single-pass GPU ray casting over a brick atlas and a page tree (no VTK, no Qt).

One draw call per volume layer and eye, whatever the number of bricks: every pixel's
ray walks a multi-resolution tree of the pyramid's bricks and samples the bricks it
crosses from one 3D texture. This package is the GL core alone: it needs NumPy,
moderngl and ``viewer.streaming`` (import-linter forbids VTK, Qt, ``viewer.render`` and
OpenXR here), so the same code is tested on llvmpipe and benchmarked on a bare GPU
machine; a host (VTK's render window, the XR swapchain) hands it a context and a
framebuffer.

Pieces, in the order a frame uses them:

- :class:`BrickAtlas` (``_atlas.py``): one 3D texture of fixed ``(B + 2)³`` slots, each
  a brick with its one-voxel border (edges repeated where no neighbour is known, so
  hardware trilinear filtering never reads another slot and bricks meet without
  seams). R8 / R16 (normalised) / R16F / R32F by the volume's dtype. Slots are
  recycled least recently used within a byte budget; at most ``max_uploads`` slot
  writes (``glTexSubImage3D``) per frame, never waiting on anything. The
  bookkeeping is :class:`SlotTable` (NumPy, testable without GL).
- :class:`PageTree` (``_tree.py``): nodes are bricks (level, ijk), children the next
  finer level's bricks inside them (per axis 2 or 1: 8 child words per inner node,
  unused ones empty); leaves say "sample atlas slot s, which holds a brick of level
  Ls" (a coarser stand-in allowed) or "empty: skip". One ``uint32`` per node in an
  ``R32UI`` texture, rows rewritten only where they changed. Built from a frame's
  :class:`~viewer.streaming.Selection` with a fixed number of NumPy operations
  (:meth:`PageTree.build_from_selection`, no sort), or from any leaf set
  (:meth:`PageTree.build`, one ``np.unique`` per level).
- :func:`stand_in_words` (and its plain form :func:`nearest_resident`): each leaf is
  drawn by its own brick if the *atlas* holds it, else by its nearest ancestor the
  atlas holds: the streamer's stand-in rule, applied to GPU residency, so a brick in
  RAM but not uploaded yet never blocks. Empty-space skipping happens here too: the
  atlas keeps each slot's value range, and for a composite draw a leaf whose brick is
  wholly transparent under the transfer function
  (:meth:`BrickAtlas.transparent_slots`) becomes an empty leaf, stepped over without
  sampling. MIP, MinIP and iso-surfaces skip per ray in the shader, from each slot's
  value range (a small texture): a brick whose maximum cannot raise the ray's running
  maximum (MinIP: minimum), or whose range leaves out the iso value while the previous
  sample lies on the brick's side, is stepped over on the same sample lattice.
- :class:`VolumeRaycaster` (``_raycaster.py``, GLSL in ``_shader.py``): a full-viewport
  triangle; per pixel the ray is clipped to the volume's extent, up to 6 clipping
  planes and the depth of opaque geometry already drawn; then, front to back: look the
  current point up in the tree, march the leaf's box with the step of the sampled
  level (opacity corrected ``1 - (1 - a) ** (step / ref_step)``), continue from the
  box's exit. Composite (float "over", early termination at alpha 0.99), maximum and
  minimum intensity projection and iso-surfaces (the first crossings of a value,
  headlight-shaded from central-difference normals), all across bricks. Output is
  premultiplied RGBA, blended over the target.
- Label volumes: the same tree and march over an ``R32UI`` atlas (``labels=True``) with
  a second program (``LABELS`` defined): ids read from the nearest voxel
  (``texelFetch``); colours, hidden and selected ids in one sorted ``(id, flags, rgb)``
  texture searched once per run of one id along the ray (:class:`LabelStyle`: a host
  lists its legend colours; ids it does not list get a hash, :func:`label_colours`);
  bricks of background only are skipped. Composite only. ``LabelStyle(outline=True)``
  draws each object's outline opaque and its interior faint: a voxel with another id
  beside it along the two voxel axes closest to the image plane (a slice outline, seen
  through the volume).
- :class:`StreamedVolume` (``_streamed.py``): a :class:`~viewer.streaming.VolumeStreamer`'s
  frames into the atlas and the tree; the tree is built on a worker thread from a
  snapshot of the selection and the slot table, the previous tree drawn until it is
  ready (slots it uses pinned; a new tree swapped in only if its slots kept their
  bricks), so the frame thread's work does not grow with the bricks drawn.
  :class:`Harness` and :class:`ResidentVolume`
  (``_harness.py``): a standalone EGL context, an offscreen float target and whole
  levels in memory, for the tests and benchmarks.

Design decisions (and where they differ from the plan in issue 15):

- The tree's leaves are the frame's *selection* leaves, not its draw items. A draw
  item can be a union of several leaves drawn by one stand-in (the streamer merges
  them), which is not always one node of the tree; the selection already holds the
  tree (``node_parent``), so packing it needs no search, and stand-ins are chosen by
  what the atlas holds (above) rather than what RAM holds.
- Samples lie on one lattice per ray (``t0 + k * step``, k >= 1) that the march carries
  across leaf boxes; inside one level the samples are exactly those of a single brick,
  so splitting a level into bricks changes nothing (the tests find PSNR > 100 dB). An
  empty node is skipped in whole steps for the same reason.
- The lattice is VTK's (``vtkOpenGLGPUVolumeRayCastMapper``, VTK 9.7, whose pictures
  ``vrscope render --no-stream`` draws): the volume's box runs from the first voxel
  centre to the last (point data: texels are sampled at their centres, the proxy box
  is the point bounds); the ray's first sample is one step *past* its entry (box face
  or clipping plane: ``g_rayOrigin += g_rayJitter`` with ``g_rayJitter = g_dirStep``
  when jittering is off); it samples while inside the box and up to one step past the
  end set by clipping planes and opaque depth (``g_terminatePointMax`` is tested after
  the advance). Sampling the entry face as well cost 15 dB at silhouettes where the
  opaque end of the transfer function meets the box faces.
- The levels must nest: each level's bricks 1x or 2x the next finer level's along each
  axis (``viewer.streaming.BrickedSource`` gives every level the same brick edge, so
  factor-2 pyramids do), starting within half of the level's voxel from level 0's
  corner. The tree's bricks all start at level 0's corner; a level placed off it
  (stores whose levels all sit at translation 0) is sampled where its voxels are, the
  slot's border holding the neighbours such a shift reaches. Other pyramids (factor 3
  or 4 levels) are refused by :class:`PageTree`; the renderer then streams the finest
  levels that nest (``viewer.render._streaming._nesting_source``).
- Slots are sized for the largest chunk; a pyramid with several chunk sizes wastes
  the difference.

Hosted in VTK's frame by ``viewer/render/_gl_volumes.py`` for ``render``, ``movie``,
the desktop 3D view and both XR eyes (the atlas is filled once per streaming frame,
not per eye).

Also here: ``render_scale`` (rays cast into a smaller float image, upsampled over the
target: a host's interactive quality, a headset's adaptive quality), uploads through a
ring of pixel-unpack buffers, and shader statistics (``draw(statistics=True)``: each
ray's samples, leaves sampled, leaves skipped and empty leaves, instead of colour).

A frame budget per eye: :class:`FrameBudget` (``_budget.py``, no GL) lowers the ray
step count (a longer sample distance, opacity corrected) together with the render
scale while a view moves over budget, and refines both back while it is still; each
eye is compared with its own previous view, so the two eyes of a stereo frame are not a
move. The host times each eye with GPU timer queries
(``GLVolumeHost(frame_budget_ms=...)``, the desktop's view); the headset hands its
controller to the host (streamed volumes) or feeds it itself (whole-level volumes).

Not here yet (issue 15 continues): the streamer's own selection off the frame thread.

Extending: a new rendering mode is a branch on ``u_mode`` in ``_shader.py`` (the
per-sample value ``v`` and the leaf walk are shared) plus an entry in :data:`MODES`;
a new host calls :meth:`VolumeRaycaster.set_nodes` with the pool and
:meth:`VolumeRaycaster.draw` with its own framebuffer, matrices and depth texture,
then resets its GL state cache; a new source of bricks only needs to give
``(B + 2)³`` slot images to :meth:`BrickAtlas.upload`.
"""

from ._atlas import BrickAtlas, SlotTable, atlas_layout, pad_to_slot, slot_from_level
from ._budget import FrameBudget
from ._harness import (
    Harness,
    ResidentVolume,
    camera_matrices,
    release_standalone_context,
    standalone_context,
)
from ._raycaster import MODES, DrawStats, VolumeRaycaster
from ._shader import VERTEX as FULL_VIEWPORT_VERTEX
from ._shader import label_hash as label_colours
from ._streamed import StreamedVolume, UpdateStats
from ._transfer import LabelStyle, TransferFunction
from ._tree import EMPTY, PageTree, TreeLevels, leaf_words, nearest_resident, stand_in_words

__all__ = [
    "EMPTY",
    "FULL_VIEWPORT_VERTEX",
    "MODES",
    "BrickAtlas",
    "DrawStats",
    "FrameBudget",
    "Harness",
    "LabelStyle",
    "PageTree",
    "ResidentVolume",
    "SlotTable",
    "StreamedVolume",
    "TransferFunction",
    "TreeLevels",
    "UpdateStats",
    "VolumeRaycaster",
    "atlas_layout",
    "camera_matrices",
    "label_colours",
    "leaf_words",
    "nearest_resident",
    "pad_to_slot",
    "slot_from_level",
    "stand_in_words",
    "release_standalone_context",
    "standalone_context",
]
