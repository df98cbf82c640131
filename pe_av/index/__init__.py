"""A searchable index of a media collection (``pe-av index`` / ``pe-av search``).

- :class:`MediaIndex` (:mod:`.media_index`): build, update, load, search (text → media, media → media).
- :mod:`.manifest`: ``manifest.jsonl`` (header + one record per file); :mod:`.store`: the shards;
  :mod:`.writer`: crash-safe writing of both (shared with :mod:`pe_av.distributed`).
- :mod:`.prepare` (decoding, in worker processes) and :mod:`.embed` (the model, batched per modality):
  the two halves of embedding a file; :mod:`.build`: the local build loop; :mod:`.search`: exact and
  FAISS search.
"""

from .build import BuildReport, build_index
from .manifest import FileRecord, Header
from .media_index import MediaIndex
from .search import Hit

__all__ = ["BuildReport", "FileRecord", "Header", "Hit", "MediaIndex", "build_index"]
