"""Batch extraction over files and folders: resumable, atomic outputs, bad files reported, not fatal.

Rooms: :mod:`.files` (finding inputs, output names, collisions, shards), :mod:`.sinks` (npy / npz /
parquet writers), :mod:`.resume` (settings of an output folder, what is left to do), :mod:`.tracks`
(decode workers feeding the batching core) and :mod:`.run` (the local driver: :func:`extract`,
:func:`tag_files`). Decoding is :mod:`maest.decode`, batching :mod:`maest.batching`.
"""

from maest.extraction.errors import (ExtractError, MissingDependencyError, NonFiniteOutputError, OutputCollisionError,
                                     OutputNotWritableError, SettingsMismatchError)
from maest.extraction.files import (AudioItem, as_input_list, audio_for_key, check_collisions, find_audio,
                                    normalize_extensions, output_path)
from maest.extraction.resume import SETTINGS_FILE, check_settings, pending_items, run_settings
from maest.extraction.run import (ExtractSummary, check_run_options, check_writable, extract, failures_path, run_files,
                                  tag_files)
from maest.extraction.sinks import FORMATS, PARTS_DIR, TABLE_FILE, FileSink, Format, ParquetSink, open_sink, read_table
from maest.extraction.tracks import ensure_finite, nonfinite_reason, process
from maest.failures import FAILURES_FILE

__all__ = [
    "FAILURES_FILE", "FORMATS", "PARTS_DIR", "SETTINGS_FILE", "TABLE_FILE", "AudioItem", "ExtractError", "audio_for_key",
    "ExtractSummary", "FileSink", "Format", "MissingDependencyError", "NonFiniteOutputError", "OutputCollisionError",
    "OutputNotWritableError", "ParquetSink", "SettingsMismatchError", "as_input_list", "check_collisions",
    "check_run_options", "check_settings", "check_writable", "ensure_finite", "extract", "failures_path",
    "find_audio", "nonfinite_reason", "normalize_extensions", "open_sink", "output_path", "pending_items", "process",
    "read_table", "run_files", "run_settings", "tag_files",
]
