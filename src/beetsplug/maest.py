"""beets plugin ``maest``: Discogs styles (or an own head's labels) and "sounds like" for a beets library.

Enable with ``plugins: maest`` in the beets config (``pip install 'maest[beets]'``). It adds:

- ``beet maest [QUERY]``: analyses the items (each file once: results are cached beside the
  library, keyed by path, size, mtime and model spec) and stores flexible attributes
  ``maest_style``, ``maest_genre`` (lists), ``maest_top``, ``maest_top_prob``, ``maest_probs`` and,
  with a head, ``maest_labels``; optionally beets' own genre. ``beet write`` writes ``maest_style``
  to the files' STYLE field (ID3 ``TXXX:STYLE``, Vorbis ``STYLE``, MP4 ``----:com.apple.iTunes:STYLE``).
- an import stage (``auto: yes``), so new imports are analysed as they arrive;
- ``beet maestsimilar QUERY``: the items most similar to the first match, from an index beside the
  library that follows added, removed and moved items; ``--m3u FILE`` writes them as a playlist.
"""

from __future__ import annotations

import os
from pathlib import Path

from beets import config as beets_config
from beets import ui
from beets.dbcore import types
from beets.library import Item
from beets.plugins import BeetsPlugin
from mediafile import ListMediaField, ListStorageStyle, MP3ListDescStorageStyle, MP4ListStorageStyle

from maest.library.choice import TagChoice, choose_labels, field_values, head_labels

LIST_FIELDS = ("maest_style", "maest_genre", "maest_labels")


def _list_field(name: str) -> ListMediaField:
    """A multi-valued file field ``name`` in every format beets writes: ID3 TXXX, MP4 freeform, Vorbis."""
    return ListMediaField(MP3ListDescStorageStyle(desc=name), MP4ListStorageStyle(f"----:com.apple.iTunes:{name}"),
                          ListStorageStyle(name))


def _merged_genres(item: Item, ours: list[str]) -> dict[str, object]:
    """beets' genre field(s) with the item's own genres kept and maest's after them; maest's earlier
    genres (its previous ``maest_genre``) are dropped first, so new settings replace only maest's."""
    before = set(item.get("maest_genre") or [])
    if "genres" in Item._fields:  # beets >= 2.4: a list field
        current = list(item.get("genres") or [])
    else:
        current = [g.strip() for g in (item.get("genre") or "").split(",") if g.strip()]
    kept = [g for g in current if g not in before]
    merged = kept + [g for g in ours if g.casefold() not in {k.casefold() for k in kept}]
    return {"genres": merged} if "genres" in Item._fields else {"genre": ", ".join(merged)}


class MaestPlugin(BeetsPlugin):
    """Styles, own labels and similarity from MAEST for beets items."""

    item_types = {name: types.MULTI_VALUE_DSV for name in LIST_FIELDS} | {
        "maest_top": types.STRING, "maest_top_prob": types.FLOAT, "maest_probs": types.STRING}

    def __init__(self) -> None:
        super().__init__()
        self.config.add({
            "auto": True, "model": "discogs-maest-30s-pw-129e", "head": "", "threshold": 0.1, "top_k": 3,
            "min_labels": 1, "layout": "split", "genre": False, "style_field": "STYLE", "labels_field": "MAEST_LABELS",
            "blocks": 7, "tokens": "cls,dist,avg", "overlap": 0.5, "device": "", "batch_size": 8, "folder": "",
            "count": 10,
        })
        self.add_media_field("maest_style", _list_field(self.config["style_field"].as_str().upper()))
        self.add_media_field("maest_labels", _list_field(self.config["labels_field"].as_str().upper()))
        # `beet write` looks for changes in these fields only (fixed ones by default): without this it
        # would call files whose maest values changed "unchanged" and leave them unwritten.
        Item._media_tag_fields.update({"maest_style", "maest_labels"})
        if self.config["auto"].get(bool):
            self.import_stages = [self.imported]
        self._analyzer = None
        self._before: dict[str, object] = {}
        for event, handler in (("write", self._on_write), ("after_write", self._on_after_write),
                               ("before_item_moved", self._on_before_move), ("item_moved", self._on_moved),
                               ("item_copied", self._on_copied)):
            self.register_listener(event, handler)

    # -- settings --------------------------------------------------------------------------------
    def folder(self) -> Path:
        """Where the cache and the index live: ``folder``, else ``maest/`` beside the library database."""
        given = self.config["folder"].as_str()
        if given:
            return Path(os.path.expanduser(given))
        return Path(beets_config["library"].as_filename()).parent / "maest"

    def analyzer(self):
        """The :class:`maest.library.analysis.TrackAnalyzer` (created on first use, loads no model)."""
        if self._analyzer is None:
            from maest.library.analysis import AnalysisSettings, TrackAnalyzer

            c = self.config
            settings = AnalysisSettings(
                model=os.path.expanduser(c["model"].as_str()), head=os.path.expanduser(c["head"].as_str()) or None,
                blocks=c["blocks"].get(int), tokens=tuple(t.strip() for t in c["tokens"].as_str().split(",")),
                overlap=float(c["overlap"].get()), device=c["device"].as_str() or None,
                batch_size=c["batch_size"].get(int))
            self._analyzer = TrackAnalyzer(settings, self.folder() / "cache")
        return self._analyzer

    def choice(self) -> TagChoice:
        c = self.config
        return TagChoice(threshold=float(c["threshold"].get()), top_k=c["top_k"].get(int),
                         min_labels=c["min_labels"].get(int), layout=c["layout"].as_str())

    # -- tagging ---------------------------------------------------------------------------------
    def analyse(self, items, force: bool = False, write: bool = False) -> tuple[int, int, int]:
        """Analyse ``items`` (cached unless ``force``) and store their attributes; ``(computed, cached, failed)``."""
        analyzer = self.analyzer()
        items = list(items)
        paths = {os.fsdecode(item.path): item for item in items}
        cached = sum(analyzer.cache.get(p) is not None for p in paths) if not force else 0
        failed: list[str] = []

        def report(path: str, reason: str) -> None:
            failed.append(path)
            self._log.warning("{0}: {1}", path, reason)

        results = analyzer.analyze(paths, force=force, on_failure=report)
        for path, track in results.items():
            item = paths[path]
            if self._apply(item, track):
                item.store()
                if write:
                    item.try_write()
        self._log.info("{0} items analysed, {1} from the cache, {2} failed",
                       len(results) - cached, cached, len(failed))
        return len(results) - cached, cached, len(failed)

    def _apply(self, item: Item, track) -> bool:
        """Set ``item``'s maest attributes from its results; True when anything changed."""
        analyzer, choice = self._analyzer, self.choice()
        values: dict[str, object] = {}
        if track.probabilities is not None:
            labels = analyzer.labels
            chosen = choose_labels(track.probabilities, labels, choice)
            fields = field_values(chosen, choice)
            values["maest_genre"], values["maest_style"] = fields["GENRE"], fields["STYLE"]
            top = choose_labels(track.probabilities, labels, TagChoice(threshold=0.0, top_k=1))[0]
            values["maest_top"], values["maest_top_prob"] = top[0], round(top[1], 4)
            values["maest_probs"] = "; ".join(f"{label}={p:.3f}" for label, p in chosen)
            if self.config["genre"].get(bool):
                values.update(_merged_genres(item, fields["GENRE"]))
        if analyzer.head is not None:
            from maest.heads.tag import head_tags

            values["maest_labels"] = [label for label, _ in head_labels(head_tags(analyzer.head, track.embedding),
                                                                       TagChoice(top_k=len(analyzer.head.labels)))]
        changed = False
        for key, value in values.items():
            if item.get(key) != value:
                item[key] = value
                changed = True
        return changed

    def imported(self, session, task) -> None:
        """Import stage: analyse the newly imported items (beets writes their files if import.write is on)."""
        self.analyse(task.imported_items())

    # -- keeping the cache in step with beets' own file operations -------------------------------
    def _on_write(self, item, path, tags) -> None:
        if self._analyzer is not None or self.folder().exists():
            self._before[os.fsdecode(path)] = self.analyzer().cache.get(os.fsdecode(path))

    def _on_after_write(self, item, path) -> None:
        track = self._before.pop(os.fsdecode(path), None)
        if track is not None:  # tags changed, the audio did not: the results stay valid
            self.analyzer().cache.put(os.fsdecode(path), track.embedding, track.probabilities)

    def _on_before_move(self, item, source, destination) -> None:
        if self.folder().exists():
            self._before[os.fsdecode(source)] = self.analyzer().cache.get(os.fsdecode(source))

    def _on_moved(self, item, source, destination) -> None:
        track = self._before.pop(os.fsdecode(source), None)
        if track is not None:
            self.analyzer().cache.put(os.fsdecode(destination), track.embedding, track.probabilities)
            self.analyzer().cache.forget(os.fsdecode(source))

    def _on_copied(self, item, source, destination) -> None:
        if self.folder().exists():
            track = self.analyzer().cache.get(os.fsdecode(source))
            if track is not None:
                self.analyzer().cache.put(os.fsdecode(destination), track.embedding, track.probabilities)

    # -- commands --------------------------------------------------------------------------------
    def commands(self) -> list[ui.Subcommand]:
        tag = ui.Subcommand("maest", help="analyse items with MAEST: styles (and own labels) as attributes")
        tag.parser.add_option("-f", "--force", action="store_true", help="analyse again, ignoring the cache")
        tag.parser.add_option("-w", "--write", action="store_true", default=None, help="write the tags to the files")
        tag.parser.add_option("-W", "--nowrite", action="store_false", dest="write", help="do not write the files")
        tag.func = lambda lib, opts, args: self.analyse(lib.items(args), force=opts.force,
                                                        write=ui.should_write(opts.write))
        similar = ui.Subcommand("maestsimilar", help="list the items that sound most like the first match of QUERY")
        similar.parser.add_option("-n", "--count", type="int", help="how many items (default: config count)")
        similar.parser.add_option("--m3u", help="also write them (the query item first) as an M3U playlist here")
        similar.func = self._similar
        return [tag, similar]

    def _similar(self, lib, opts, args) -> None:
        from maest.atomic import atomic_write_text
        from maest.library.neighbours import LibraryIndexError, nearest, sync_index

        seeds = list(lib.items(args))
        if not seeds:
            raise ui.UserError(f"no item matches {' '.join(args)!r}")
        seed = seeds[0]
        analyzer = self.analyzer()
        everything = {os.fsdecode(item.path): item for item in lib.items()}
        self.analyse([seed])
        tracks = {p: t for p in everything if (t := analyzer.cache.get(p)) is not None}
        try:
            if sync_index(self.folder() / "index", tracks, analyzer.spec):
                self._log.debug("index rebuilt for {0} items", len(tracks))
            found = nearest(self.folder() / "index", os.fsdecode(seed.path), opts.count or self.config["count"].get(int))
        except LibraryIndexError as error:
            raise ui.UserError(str(error)) from None
        ui.print_(f"like {seed} ({os.fsdecode(seed.path)}):")
        for path, similarity in found:
            ui.print_(f"{similarity:7.4f}  {everything[path]} ({path})")
        if opts.m3u:
            lines = ["#EXTM3U"] + [os.fsdecode(seed.path)] + [path for path, _ in found]
            atomic_write_text(opts.m3u, "\n".join(lines) + "\n")
            ui.print_(f"wrote {len(found) + 1} items to {opts.m3u}")
