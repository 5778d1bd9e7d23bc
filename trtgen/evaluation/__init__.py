"""``trtgen eval``: does a voice work? Held-out sentences spoken and measured against espeak-ng.

``alignment`` (the attention check), ``metrics`` (MCD-DTW, F0, the style space), ``report`` (the
result's shape and scoring), ``run`` (the job), ``plots``, the tables are drawn by ``trtgen.console``.
"""
