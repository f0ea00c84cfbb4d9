"""Float64 NumPy oracles: the notes' algorithms, ported and corrected.

One module per jaxdl topic (``tests/reference/boxes.py`` for ``jaxdl.boxes``
and so on). Where the notes are wrong, the module keeps a ``notes_*`` copy of
the original snippet so tests can show the error as a regression case.
"""
