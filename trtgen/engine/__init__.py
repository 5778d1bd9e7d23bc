"""The engine: text and style front ends, the model card, backends, the decode loop, the vocoder and
the :class:`~trtgen.engine.voice.Voice` API that strings them together."""
