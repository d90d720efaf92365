"""The app's seams (an own-label head, a similarity index): defined in :mod:`maest.protocols`, below
the plots that use them too; re-exported here, where the app's users look for them."""

from maest.protocols import LabelHead, TrackIndex, head_decisions, head_embed_options

__all__ = ["LabelHead", "TrackIndex", "head_decisions", "head_embed_options"]
