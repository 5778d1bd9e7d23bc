"""``trtgen eval``: does a voice work? Held-out sentences spoken and measured against espeak-ng.

``metrics`` (MCD-DTW, F0, the style space), ``report`` (the result's shape and scoring), ``run`` (the
job), ``plots``; the attention check is :mod:`trtgen.engine.alignment`, the tables are drawn by
``trtgen.console``.
"""
