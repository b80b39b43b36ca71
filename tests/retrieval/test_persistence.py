"""The index on disk: across processes, under a kill -9, with two writers, with another model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import IndexLockedError, ModelMismatchError
from retrieval import persist
from retrieval.embedder import SentenceTransformerEmbedder, resolve_model_path
from retrieval.ingest import add_paths, rebuild
from retrieval.library import Library
from retrieval.search import search
from retrieval.settings import IndexSettings
from tests.conftest import REPO

pytestmark = pytest.mark.slow

CHILD = """
import json, sys
from pathlib import Path
from retrieval.library import Library
from retrieval.settings import IndexSettings
from retrieval.search import search
from retrieval.ingest import add_paths
folder, action = Path(sys.argv[1]), sys.argv[2]
lib = Library.open(IndexSettings(dir=folder, commit_every=int(sys.argv[4]) if len(sys.argv) > 4 else 512))
if action == "search":
    print(json.dumps([h.id for h in search(lib, sys.argv[3], k=3)]))
else:
    add_paths(lib, [Path(sys.argv[3])], progress=False)
    print("done")
"""


def run_child(*args: str, wait: bool = True):
    cmd = [sys.executable, "-c", CHILD, *args]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_another_process_sees_the_same_index(open_library, index_dir, scifact_sample):
    library = open_library()
    add_paths(library, [scifact_sample])
    title = json.loads(scifact_sample.read_text().splitlines()[10])["title"]
    here = [h.id for h in search(library, title, k=3)]
    assert json.loads(run_child(str(index_dir), "search", title)) == here
    manifest = persist.read_manifest(index_dir)
    assert manifest["papers"] == 120 and manifest["model"] == "all-MiniLM-L6-v2" and manifest["dim"] == 384
    assert manifest["index_kind"] == "flat" and manifest["format_version"] == persist.FORMAT_VERSION


def test_kill_9_mid_ingest_keeps_committed_batches(index_dir, scifact_sample, embedder):
    child = run_child(str(index_dir), "add", str(scifact_sample), "10", wait=False)
    db = index_dir / persist.DATABASE
    deadline = time.monotonic() + 240
    generation = 0
    while time.monotonic() < deadline and generation < 3:
        time.sleep(0.2)
        if db.exists():
            import sqlite3

            try:
                row = sqlite3.connect(db).execute("SELECT value FROM meta WHERE key='generation'").fetchone()
                generation = int(row[0]) if row else 0
            except sqlite3.OperationalError:
                pass
    assert child.poll() is None, "the ingest finished before it could be interrupted"
    child.send_signal(signal.SIGKILL)
    child.wait()
    # The killed writer held the lock; flock released it with the process.
    library = Library.open(IndexSettings(dir=index_dir), embedder)
    papers = library.stats()["papers"]
    assert 10 <= papers < 120
    committed = library.store.conn.execute("SELECT id, title FROM papers LIMIT 1").fetchone()
    assert search(library, committed["title"], k=1)[0].id == committed["id"]
    assert persist.read_manifest(index_dir)["generation"] == library.store.generation()  # repaired on open
    report = add_paths(library, [scifact_sample], progress=False)
    assert len(report.unchanged) == papers and len(report.added) == 120 - papers
    library.close()


def test_second_writer_is_refused_while_readers_keep_working(open_library, index_dir, tmp_path):
    library = open_library()
    source = tmp_path / "x.jsonl"
    source.write_text(json.dumps({"id": "p1", "title": "Coral reef bleaching", "abstract": "Heat stress."}) + "\n")
    add_paths(library, [source])
    with persist.write_lock(index_dir):
        with pytest.raises(IndexLockedError, match="being written by labmate pid"):
            add_paths(open_library(), [source])
        assert json.loads(run_child(str(index_dir), "search", "coral bleaching")) == ["p1"]


def test_lagging_files_and_leftovers_are_repaired(open_library, index_dir, tmp_path, embedder):
    library = open_library()
    source = tmp_path / "x.jsonl"
    source.write_text("".join(json.dumps({"id": f"p{i}", "title": f"Topic {w}", "abstract": f"About {w}."}) + "\n"
                              for i, w in enumerate(["volcanoes", "enzymes", "galaxies"])))
    add_paths(library, [source])
    manifest = persist.read_manifest(index_dir)
    # Simulate a writer killed after its database commit but before publishing, plus junk
    # temporaries of a half-written generation.
    with library.store.transaction():
        library.store.bump_generation()
    (index_dir / ".vectors.99.faiss.tmp").write_bytes(b"partial")
    (index_dir / ".bm25.99.tmp").mkdir()
    library.close()
    reopened = Library.open(IndexSettings(dir=index_dir), embedder)
    assert search(reopened, "galaxies", k=1)[0].id == "p2"
    new_manifest = persist.read_manifest(index_dir)
    assert new_manifest["generation"] == manifest["generation"] + 1
    assert not list(index_dir.glob(".*.tmp"))
    reopened.close()


def test_damaged_manifest_gives_clear_error(open_library, index_dir, tmp_path, embedder):
    library = open_library()
    source = tmp_path / "x.jsonl"
    source.write_text(json.dumps({"id": "p1", "title": "Anything"}) + "\n")
    add_paths(library, [source])
    (index_dir / persist.MANIFEST).write_text("{ not json")
    with pytest.raises(Exception, match="labmate index rebuild"):
        Library.open(IndexSettings(dir=index_dir), embedder)


def test_other_model_is_refused_until_rebuild(open_library, index_dir, tmp_path):
    library = open_library()
    source = tmp_path / "x.jsonl"
    source.write_text(json.dumps({"id": "p1", "title": "Deep sea vents", "abstract": "Hydrothermal life."}) + "\n")
    add_paths(library, [source])
    library.close()
    # A second model folder (same weights, another name) stands for a lab switching models.
    other = tmp_path / "other-minilm"
    other.mkdir()
    for item in resolve_model_path("default").iterdir():
        (other / item.name).symlink_to(item)
    other_embedder = SentenceTransformerEmbedder(str(other), device="cpu")
    with pytest.raises(ModelMismatchError, match="all-MiniLM-L6-v2.*other-minilm.*labmate index rebuild"):
        Library.open(IndexSettings(dir=index_dir), other_embedder)
    relib = Library.open(IndexSettings(dir=index_dir), other_embedder, check_model=False)
    assert rebuild(relib, progress=False) == 1
    relib.close()
    reopened = Library.open(IndexSettings(dir=index_dir), other_embedder)
    assert reopened.stats()["model"] == "other-minilm"
    assert search(reopened, "hydrothermal vents", k=1)[0].id == "p1"
    reopened.close()


def test_a_running_reader_sees_what_another_writer_adds(open_library, index_dir, tmp_path, embedder):
    reader = open_library()
    source = tmp_path / "x.jsonl"
    source.write_text(json.dumps({"id": "p1", "title": "Ocean acidification", "abstract": "Lower pH."}) + "\n")
    add_paths(reader, [source])
    writer = Library.open(IndexSettings(dir=index_dir), embedder)
    source.write_text(source.read_text() + json.dumps({"id": "p2", "title": "Tardigrade desiccation",
                                                       "abstract": "Tardigrades survive drying."}) + "\n")
    add_paths(writer, [source])
    writer.close()
    assert search(reader, "tardigrades drying", k=1)[0].id == "p2"
