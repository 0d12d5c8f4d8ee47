"""The ``layerhub`` command (``command``) and the code that writes plugins for authors:
``layerhub new`` (``scaffold`` and its ``template``) and ``layerhub port`` (``port``)."""
