"""Your music library: chosen labels written into the files' own tags, safely (``maest tag --write-tags``).

Rooms: :mod:`.choice` (which labels, which fields), :mod:`.formats` (where each format keeps a field,
via mutagen), :mod:`.update` (one file: merge, copy, tag, fsync, rename; undo) and :mod:`.collection`
(a folder: the model on what is left to do, failures reported). The beets plugin (``beetsplug.maest``)
uses the same choice and formats.
"""

from maest.library.choice import (ADDED_FIELD, LAYOUTS, SETTINGS_FIELD, TagChoice, TagChoiceError, choose_labels,
                                  field_values, head_labels)
from maest.library.collection import WriteTagsSummary, tag_settings, write_collection_tags
from maest.library.formats import TagWriteError, UnsupportedFormatError, open_tags, read_field
from maest.library.update import FileChange, remove_maest_tags, stored_settings, update_file_tags

__all__ = [
    "ADDED_FIELD", "LAYOUTS", "SETTINGS_FIELD", "FileChange", "TagChoice", "TagChoiceError", "TagWriteError",
    "UnsupportedFormatError", "WriteTagsSummary", "choose_labels", "field_values", "head_labels", "open_tags",
    "read_field", "remove_maest_tags", "stored_settings", "tag_settings", "update_file_tags", "write_collection_tags",
]
