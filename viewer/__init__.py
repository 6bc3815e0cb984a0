"""vrscope desktop: scene model, renderer, streaming, Qt app and collaboration.

Imports point down: ``viewer.qt -> viewer.render -> viewer.scene -> analysis``.
Only ``viewer.render`` imports VTK/PyVista.
"""
