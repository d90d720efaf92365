"""Batch extraction over files and folders: resumable, atomic outputs, bad files reported, not fatal.

Rooms: :mod:`.files` (finding inputs, output names, collisions, shards), :mod:`.sinks` (npy / npz /
parquet writers), :mod:`.resume` (settings of an output folder, what is left to do), :mod:`.tracks`
(decode workers feeding the batching core) and :mod:`.run` (the local driver: :func:`extract`,
:func:`tag_files`). Decoding is :mod:`maest.decode`, batching :mod:`maest.batching`.
"""

from maest.extraction.errors import ExtractError, MissingDependencyError, OutputCollisionError, SettingsMismatchError
from maest.extraction.files import AudioItem, check_collisions, find_audio, normalize_extensions, output_path
from maest.extraction.resume import SETTINGS_FILE, check_settings, pending_items, run_settings
from maest.extraction.run import ExtractSummary, extract, failures_path, tag_files
from maest.extraction.sinks import FORMATS, PARTS_DIR, TABLE_FILE, FileSink, Format, ParquetSink, open_sink, read_table
from maest.extraction.tracks import process
from maest.failures import FAILURES_FILE

__all__ = [
    "FAILURES_FILE", "FORMATS", "PARTS_DIR", "SETTINGS_FILE", "TABLE_FILE", "AudioItem", "ExtractError",
    "ExtractSummary", "FileSink", "Format", "MissingDependencyError", "OutputCollisionError", "ParquetSink",
    "SettingsMismatchError", "check_collisions", "check_settings", "extract", "failures_path", "find_audio",
    "normalize_extensions", "open_sink", "output_path", "pending_items", "process", "read_table", "run_settings",
    "tag_files",
]
