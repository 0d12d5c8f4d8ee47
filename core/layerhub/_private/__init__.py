"""Implementation modules of layerhub; import from ``layerhub`` instead."""
