"""Print pyproject.toml's [project] dependencies, one per line, for `pip install -r`.

The Dockerfile installs the dependencies from this list before it copies the source, so a code
change does not reinstall them (layer cache). pyproject.toml stays the only list of versions.

    python docker/requirements.py [--variant cpu|cuda] [PYPROJECT]

--variant cuda swaps faiss-cpu for the CUDA 12 build of FAISS (same `faiss` module; the two
wheels must not be installed together).
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

# faiss-gpu-cu12 wheels: cp310-cp313, manylinux x86_64, CUDA 12 runtime from pip's nvidia-* wheels.
FAISS_GPU = "faiss-gpu-cu12==1.14.1.post1"


def dependencies(pyproject: Path, variant: str = "cpu") -> list[str]:
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    if variant == "cuda":
        deps = [FAISS_GPU if _name(d) == "faiss-cpu" else d for d in deps]
    return deps


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", nargs="?", type=Path, default=Path(__file__).resolve().parents[1] / "pyproject.toml")
    parser.add_argument("--variant", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    print("\n".join(dependencies(args.pyproject, args.variant)))


if __name__ == "__main__":
    main()
