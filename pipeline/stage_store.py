"""The artifact store as one stage sees it: it reads only what the stage declares.

The runner hands each stage (its run function, extra key and intact check) a
:class:`StageStore` instead of the whole ``ArtifactStore``. Reading an artifact of another
stage that the stage does not list in ``Stage.inputs`` raises :class:`UndeclaredReadError`:
such an artifact would not key the stage's cache, so a change to it would leave the stage's
old result in use. A stage may read its own declared outputs (what it wrote last time, the
feed's previous run) and its own folder; the memo cache (``cache``) and the report's
publishing pass through.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.files import JoinedBytes
from pipeline.memo import MemoStore
from pipeline.store import ArtifactStore


class UndeclaredReadError(RuntimeError):
    """A stage read an artifact it does not declare (a defect in the stage, not in the input)."""


class StageStore:
    """The reads one stage may make: its declared (stage, artifact) inputs and its own outputs."""

    def __init__(self, store: ArtifactStore, stage: str, inputs: Iterable[tuple[str, str]], outputs: Iterable[str]):
        self._store = store
        self._stage = stage
        self._readable = frozenset(inputs) | {(stage, name) for name in outputs}

    @property
    def cache(self) -> MemoStore:
        return self._store.cache

    @property
    def run_dir(self) -> Path:
        return self._store.run_dir

    def _check(self, stage: str, name: str) -> None:
        if (stage, name) not in self._readable:
            raise UndeclaredReadError(
                f"stage {self._stage} reads {stage}/{name}, which it does not declare in its inputs"
            )

    def stage_dir(self, stage: str) -> Path:
        """The stage's own folder (no other: another stage's artifacts are read one by one, declared)."""
        if stage != self._stage:
            raise UndeclaredReadError(f"stage {self._stage} asks for the folder of stage {stage}")
        return self._store.stage_dir(stage)

    def read_table(self, stage: str, name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        self._check(stage, name)
        return self._store.read_table(stage, name, columns)

    def table_rows(self, stage: str, name: str) -> int:
        self._check(stage, name)
        return self._store.table_rows(stage, name)

    def table_batches(self, stage: str, name: str, columns: Sequence[str], rows: int) -> Iterator[pd.DataFrame]:
        """The ``columns`` of a declared table, ``rows`` rows at a time (``ArtifactStore.table_batches``)."""
        self._check(stage, name)
        return self._store.table_batches(stage, name, columns, rows)

    def read_array(self, stage: str, name: str, mapped: bool = False) -> np.ndarray:
        self._check(stage, name)
        return self._store.read_array(stage, name, mapped)

    def read_json(self, stage: str, name: str) -> Any:
        self._check(stage, name)
        return self._store.read_json(stage, name)

    def input_hash(self, stage: str, name: str) -> str:
        """The sha256 recorded for a declared input ("" when its stage has not finished)."""
        self._check(stage, name)
        record = self._store.finished(stage)
        return "" if record is None else record.output_hashes.get(name, "")

    def read_evaluation(self, name: str) -> Any | None:
        """A run-level evaluation (``evaluate --stability``), written after a run, not by a stage."""
        return self._store.read_evaluation(name)

    def publish_report(self, files: Mapping[str, bytes | JoinedBytes]) -> None:
        self._store.publish_report(files)
