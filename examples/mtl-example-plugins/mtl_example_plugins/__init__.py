"""Plug-ins for mtl from outside its package, one module each: ``semseg_edges`` (a task derived from the semseg labels),
``folders`` (a dataset layout), ``gls`` and ``dirichlet_rlw`` (loss weightings).

Nothing is imported here: mtl imports each module named by this distribution's ``mtl.plugins`` entry points,
and a module's import is what registers its plug-in.
"""
