"""Own-label heads: fit a small classifier on MAEST embeddings of your tracks, save it, tag with it.

``fit_head(labels, HEAD)`` -> :class:`HeadReport`; ``load_head(HEAD)`` -> :class:`Head`;
``tag_with_head(pipeline, audio, head)`` -> ``[(label, probability, on)]``.
"""

from maest.heads.errors import HeadError, HeadFormatError
from maest.heads.fit import HeadReport, fit_head
from maest.heads.head import Head, load_head
from maest.heads.labels import HeadDataError, LabelSet, read_labels
from maest.heads.spec import EmbeddingSpec, HeadMismatchError, model_fingerprint
from maest.heads.tag import model_for_head, tag_files_with_head, tag_with_head

__all__ = ["EmbeddingSpec", "Head", "HeadDataError", "HeadError", "HeadFormatError", "HeadMismatchError",
           "HeadReport", "LabelSet", "fit_head", "load_head", "model_fingerprint", "model_for_head", "read_labels",
           "tag_files_with_head", "tag_with_head"]
