"""Offline work: the live engine driven as fast as the CPU allows, into a file.

- ``build``: :func:`~latentd.offline.build.build_engine`, the one config → Engine sequence (also used
  by ``latentd run`` and ``latentd check``).
- ``loop``: :func:`~latentd.offline.loop.render_to_file`, the one render-to-file loop.
- ``render``: ``latentd render``, a length of the piece with a level summary.
- ``replay``: ``latentd replay``, a recorded session re-rendered sample for sample.
"""
