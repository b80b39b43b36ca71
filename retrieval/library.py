"""The lab's library on disk: open it, keep its derived indexes in step, commit, report.

`Library.open()` is safe for readers at any time. Writers go through `library.writing()`,
which takes the folder's write lock, and `checkpoint()`, which publishes a new generation.
"""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from core.errors import IndexStateError, ModelMismatchError
from retrieval import persist
from retrieval.embedder import Embedder, SentenceTransformerEmbedder
from retrieval.lexical import Bm25Index
from retrieval.settings import EmbeddingSettings, IndexSettings, SearchSettings
from retrieval.store import Store, connect
from retrieval.vector_index import FaissIndex


@dataclass
class Derived:
    """The indexes built from the database, and the generation they reflect."""

    vectors: FaissIndex
    bm25: Bm25Index
    generation: int


class Library:
    """A folder holding the database, the FAISS and BM25 indexes and the manifest."""

    def __init__(self, folder: Path, store: Store, embedder: Embedder, index: IndexSettings,
                 search: SearchSettings, derived: Derived):
        self.folder = folder
        self.store = store
        self.embedder = embedder
        self.index_settings = index
        self.search_settings = search
        self.derived = derived
        self._last_checkpoint = time.monotonic()
        self._manifest_stamp = self._stamp()

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, index: IndexSettings | None = None, embedder: Embedder | None = None,
             search: SearchSettings | None = None, *, check_model: bool = True) -> "Library":
        """Open (or create) the library in `index.dir`; fails clearly on a model mismatch."""
        index = index or IndexSettings()
        folder = Path(index.dir)
        folder.mkdir(parents=True, exist_ok=True)
        embedder = embedder or SentenceTransformerEmbedder(**EmbeddingSettings().model_dump())
        store = Store(connect(folder / persist.DATABASE))
        if check_model:
            check_model_matches(store, embedder, folder)
        lib = cls(folder, store, embedder, index, search or SearchSettings(), derived=None)  # type: ignore[arg-type]
        lib.derived = lib._load_derived()
        return lib

    def _load_derived(self) -> Derived:
        manifest = persist.read_manifest(self.folder)
        if manifest and manifest["generation"] == self.store.generation():
            return self._read_files(manifest)
        with persist.lock_if_free(self.folder) as held:
            if not held:
                # A writer is mid-ingest: read its last committed snapshot, or build one in memory.
                return self._read_files(manifest) if manifest else self._build_derived()
            # Nobody is writing, yet the files lag the database: an ingest was interrupted.
            self.derived = self._build_derived()
            self._publish()
            return self.derived

    def _stamp(self) -> int | None:
        try:
            return (self.folder / persist.MANIFEST).stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def refresh(self) -> None:
        """Pick up a generation another process published (e.g. `labmate index add` while the
        bot runs). Costs one stat() when nothing changed."""
        stamp = self._stamp()
        if stamp == self._manifest_stamp:
            return
        for _ in range(3):  # the writer may delete the files of the manifest we just read
            manifest = persist.read_manifest(self.folder)
            if not manifest or manifest["generation"] == self.derived.generation:
                break
            try:
                self.derived = self._read_files(manifest)
                break
            except IndexStateError:
                time.sleep(0.05)
        self._manifest_stamp = stamp

    def _read_files(self, manifest: dict) -> Derived:
        try:
            vectors = FaissIndex.load(self.folder / manifest["vectors_file"], manifest["index_kind"],
                                      manifest.get("nprobe"))
            bm25 = Bm25Index.load(self.folder / manifest["bm25_dir"])
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise IndexStateError(
                f"The index files in {self.folder} are damaged ({exc}); run `labmate index rebuild`."
            ) from exc
        return Derived(vectors, bm25, int(manifest["generation"]))

    def _build_derived(self) -> Derived:
        """FAISS and BM25 from the database alone (no embedding needed: vectors are stored)."""
        generation = self.store.generation()
        ids_parts, vec_parts = [], []
        for ids, vecs in self.store.iter_vectors(self.embedder.dim):
            ids_parts.append(ids)
            vec_parts.append(vecs)
        ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, dtype=np.int64)
        vecs = np.concatenate(vec_parts) if vec_parts else np.zeros((0, self.embedder.dim), np.float32)
        vectors = FaissIndex.build(ids, vecs, self.index_settings.approximate_after,
                                   self.index_settings.target_recall)
        return Derived(vectors, self._build_bm25(), generation)

    def _build_bm25(self) -> Bm25Index:
        ids: list[int] = []
        texts: list[str] = []
        for rows in self.store.iter_texts():
            for pid, title, text in rows:
                ids.append(pid)
                texts.append(f"{title} {text}")
        return Bm25Index.build(ids, texts)

    # -- writing ---------------------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator["Library"]:
        """Hold the write lock; on entry catch up with other writers, on exit publish."""
        with persist.write_lock(self.folder, self.index_settings.lock_timeout):
            self.derived = self._load_derived_locked()
            yield self
            self.checkpoint(force=True)

    def _load_derived_locked(self) -> Derived:
        manifest = persist.read_manifest(self.folder)
        if manifest and manifest["generation"] == self.store.generation():
            if manifest["generation"] == self.derived.generation:
                return self.derived
            return self._read_files(manifest)
        return self._build_derived()

    def checkpoint(self, force: bool = False) -> None:
        """Publish the database's current generation to readers (new FAISS, BM25, manifest)."""
        if not force and time.monotonic() - self._last_checkpoint < self.index_settings.checkpoint_seconds:
            return
        generation = self.store.generation()
        manifest = persist.read_manifest(self.folder)
        if manifest and manifest["generation"] == generation and self.derived.generation == generation:
            return
        want_ivf = len(self.derived.vectors) > self.index_settings.approximate_after
        if want_ivf != (self.derived.vectors.kind == "ivf"):
            self.derived = self._build_derived()  # crossed the size threshold: change index kind
        else:
            self.derived = Derived(self.derived.vectors, self._build_bm25(), generation)
        self._publish()

    def _publish(self) -> None:
        gen = self.derived.generation
        vectors_name, bm25_name = f"vectors.{gen}.faiss", f"bm25.{gen}"
        tmp_vectors = self.folder / f".{vectors_name}.tmp"
        self.derived.vectors.save(tmp_vectors)
        persist.commit_path(tmp_vectors, self.folder / vectors_name)
        tmp_bm25 = self.folder / f".{bm25_name}.tmp"
        shutil.rmtree(tmp_bm25, ignore_errors=True)  # left by a writer killed mid-save
        self.derived.bm25.save(tmp_bm25)
        shutil.rmtree(self.folder / bm25_name, ignore_errors=True)  # same generation, republished
        persist.commit_path(tmp_bm25, self.folder / bm25_name)
        counts = self.store.counts()
        persist.write_manifest(self.folder, {
            "format_version": persist.FORMAT_VERSION,
            "model": self.embedder.name,
            "dim": self.embedder.dim,
            "papers": counts["papers"],
            "passages": counts["passages"],
            "index_kind": self.derived.vectors.kind,
            "nprobe": self.derived.vectors.nprobe,
            "generation": gen,
            "vectors_file": vectors_name,
            "bm25_dir": bm25_name,
            "updated_at": time.time(),
        })
        persist.remove_stale(self.folder, keep={vectors_name, bm25_name})
        self._last_checkpoint = time.monotonic()
        self._manifest_stamp = self._stamp()

    # -- reporting ---------------------------------------------------------------------------------
    def stats(self) -> dict:
        """Papers, passages, model, index type and size on disk."""
        counts = self.store.counts()
        collections = dict(self.store.conn.execute(
            "SELECT name, COUNT(*) FROM collections GROUP BY name ORDER BY name").fetchall())
        return {
            "folder": str(self.folder),
            "papers": counts["papers"],
            "passages": counts["passages"],
            "model": self.store.get_meta("model") or self.embedder.name,
            "dim": int(self.store.get_meta("dim") or self.embedder.dim),
            "index_kind": self.derived.vectors.kind,
            "nprobe": self.derived.vectors.nprobe,
            "generation": self.derived.generation,
            "collections": collections,
            "size_bytes": persist.folder_size(self.folder),
        }

    def close(self) -> None:
        self.store.conn.close()


def check_model_matches(store: Store, embedder: Embedder, folder: Path) -> None:
    """An index built with one model cannot be searched with another's vectors."""
    model, dim = store.get_meta("model"), store.get_meta("dim")
    if model is None or store.counts()["passages"] == 0:
        return
    if model != embedder.name or int(dim or 0) != embedder.dim:
        raise ModelMismatchError(
            f"The index in {folder} was built with the embedding model '{model}' ({dim} dimensions), "
            f"but the configuration uses '{embedder.name}' ({embedder.dim} dimensions). Run "
            "`labmate index rebuild` to re-embed the library with the configured model, or set "
            f"[embedding] model back to the one the index was built with."
        )
