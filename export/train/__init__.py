"""Training the small default voice on this CPU: a corpus that espeak-ng speaks (no downloads).

``sentences`` writes the text (a seeded grammar), ``corpus`` renders it in several espeak-ng voices
and caches the training features. Submodules are not imported here, so ``import export.train``
stays cheap and does not need espeak-ng.
"""
