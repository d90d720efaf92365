"""Which block an embedding is read after when nobody says: one rule for embed, head fit, serve and index.

``blocks="auto"`` (every default) is the paper's block 7, or the last block of a model with fewer
(the tiny 2-block model of the README's training run: block 2), so a fresh user's first model
embeds without a flag. An explicit block the model does not have is an error that says what to
pass. EffNet has no blocks: "auto" keeps the 7 older output folders and heads recorded for it.
"""

from __future__ import annotations

AUTO = "auto"
PAPER_BLOCK = 7
Blocks = int | str | None  # "auto", a block count (1-based), or None: every block


class BlocksError(ValueError):
    """A ``blocks`` value the model cannot run (out of range, or not a block count)."""


def auto_blocks(depth: int) -> int:
    """The block "auto" means for a ``depth``-block model: 7, or the last one of a shallower model."""
    return min(PAPER_BLOCK, depth)


def resolve_blocks(blocks: Blocks, depth: int | None) -> int | None:
    """The concrete block count of ``blocks`` for a model of ``depth`` blocks (``depth`` None: EffNet)."""
    if blocks == AUTO:
        return PAPER_BLOCK if depth is None else auto_blocks(depth)
    if blocks is None:
        return None
    if isinstance(blocks, bool) or not isinstance(blocks, int):
        raise BlocksError(f"blocks must be 'auto', a block number or None (every block), got {blocks!r}")
    if depth is not None and not 1 <= blocks <= depth:
        raise BlocksError(f"blocks {blocks} is out of range for this {depth}-block model: pass --blocks 1..{depth} "
                          f"(blocks={depth} for its last block), or leave --blocks out for auto (block {PAPER_BLOCK}, "
                          "or the last block of a shallower model)")
    return blocks


def parse_blocks(text: str) -> int | str:
    """``"auto"`` or a block number, from the command line."""
    value = text.strip().lower()
    if value == AUTO:
        return AUTO
    try:
        return int(value)
    except ValueError:
        raise BlocksError(f"--blocks takes 'auto' or a block number, got {text!r}") from None
