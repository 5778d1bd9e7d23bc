"""Corpus readers: M-AILABS style clips, LibriSpeech transcripts and audio, infer lists, synthetic copies.

Every reader returns the good rows plus :class:`~trtgen.corpora.base.Reject` records for the bad
ones; only a source that is unusable as a whole (wrong root, wrong header) raises.
"""

from trtgen.corpora.base import Reject, log_rejects, write_rejects
from trtgen.corpora.infer_list import InferEntry, InferRow, iter_infer_list, read_infer_list
from trtgen.corpora.librispeech import LibriSpeechCorpus, LibriUtterance, read_librispeech
from trtgen.corpora.mailabs import MailabsClip, MailabsCorpus, read_mailabs
from trtgen.corpora.synthetic import SyntheticCopy, SyntheticRecord, read_synthetic

__all__ = [
    "Reject",
    "log_rejects",
    "write_rejects",
    "InferEntry",
    "InferRow",
    "iter_infer_list",
    "read_infer_list",
    "LibriSpeechCorpus",
    "LibriUtterance",
    "read_librispeech",
    "MailabsClip",
    "MailabsCorpus",
    "read_mailabs",
    "SyntheticCopy",
    "SyntheticRecord",
    "read_synthetic",
]
