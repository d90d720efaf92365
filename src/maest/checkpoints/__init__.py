"""Reading and writing MAEST weights in every published format.

One module per foreign format, each a pure ``state_dict -> state_dict`` converter; ``native``
is maest's own safetensors + JSON format.
"""

from maest.checkpoints.native import CheckpointError, load_native, save_native

__all__ = ["CheckpointError", "load_native", "save_native"]
