"""The one boundary for untrusted input: files opened and read only as regular files and
within limits (``untrusted``), configs checked before anything walks them (``checks``)
and walked without recursion (``config_tree``), every string escaped before a person
sees it (``untrusted.shown``), and child interpreters isolated (``isolated``)."""
