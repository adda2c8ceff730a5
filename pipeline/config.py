"""Typed run configuration, validated once when the YAML file is loaded.

Every default lives in the models below and nowhere else; ``configs/default.yaml``
repeats them with a comment saying why, and a test checks that the two agree.
A mistake (unknown key, wrong type, bad value) raises ``ConfigError`` with one line naming
the file, the key and what is allowed. What the config is checked against the machine for
(inputs that match no file, folders that cannot be written) is ``pipeline.preflight``'s.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigError, shorten
from pipeline.yaml_read import read_yaml

InputFormat = Literal["auto", "hf-daily-papers", "arxiv-snapshot", "arxiv-daily", "table", "text-folder"]
OnError = Literal["skip", "fail"]
Representation = Literal["mmr", "keybert", "none"]

# A count of papers (cluster and topic sizes): an upper bound keeps numpy and numba from
# overflowing on a typo like 1e30; no corpus comes near a billion papers.
MAX_PAPERS = 1_000_000_000
PaperCount = Annotated[int, Field(ge=1, le=MAX_PAPERS)]
# numpy's RandomState (UMAP's random_state, through sklearn's check_random_state) takes seeds
# 0 .. 2**32 - 1, both ends included ("Seed must be between 0 and 2**32 - 1"); anything else
# failed after embedding. A test checks this bound against numpy itself.
SEED_MAX = 2**32 - 1
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]


class _Strict(BaseModel):
    """Base for every config section: unknown keys are errors, values are not coerced silently.

    Strict: ``seed: '42'``, ``n_components: 5.0``, ``n_components: true`` or ``dedupe: 1`` are
    errors, not 42, 5, 1 and True; an int is still a float ("timeout_s: 60").
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ColumnMapping(_Strict):
    """Which column of a CSV/TSV/JSON/Parquet table holds which paper field."""

    title: str | None = None
    abstract: str | None = None
    id: str | None = None
    date: str | None = None
    label: str | None = None
    url: str | None = None
    authors: str | None = None

    @model_validator(mode="after")
    def _needs_text(self) -> ColumnMapping:
        if self.title is None and self.abstract is None:
            raise ValueError("map at least one of 'title' or 'abstract' to a column")
        return self


class InputSpec(_Strict):
    """One input: a file, a folder or a glob, and how to read it."""

    path: str
    format: InputFormat = "auto"
    columns: ColumnMapping | None = None
    # The year of listing dates written without one ("Aug 12" on a Hugging Face page). Without it:
    # a date in the file name, else the file's modification day, else the latest past such date.
    year: Annotated[int, Field(ge=1990, le=2100)] | None = None

    @model_validator(mode="after")
    def _columns_only_for_tables(self) -> InputSpec:
        if self.columns is not None and self.format not in ("table", "auto"):
            raise ValueError(f"'columns' applies to format 'table', not '{self.format}'")
        return self


class ParseConfig(_Strict):
    dedupe: bool = True
    on_error: OnError = "skip"
    min_text_chars: Annotated[int, Field(ge=1, le=10_000)] = 20


EmbedBackend = Literal["onnx-int8", "onnx", "sentence-transformers", "model2vec"]
# Word pieces read per text when embed.max_tokens is "auto". int8 MiniLM, the default, reads
# a title and about the first 110 word pieces of its abstract: 2.2x faster than 256 and
# within 0.01 NMI of fp32 MiniLM at 256 against the arXiv category (docs/benchmarks.md, "Embedding
# backends"), which is what brings 75,000 papers under 15 minutes on 2 cores. The fp32
# references and the static preview model read 256, MiniLM's own limit.
AUTO_MAX_TOKENS: dict[str, int] = {"onnx-int8": 128, "onnx": 256, "sentence-transformers": 256, "model2vec": 256}


class EmbedConfig(_Strict):
    # onnx-int8 = quality mode (MiniLM, int8 ONNX), model2vec = preview mode (static, coarser);
    # the names are the keys of pipeline.embed.BACKENDS, and a test checks that they agree.
    backend: EmbedBackend = "onnx-int8"
    model: str = "all-MiniLM-L6-v2"
    max_tokens: Annotated[int, Field(ge=16, le=512)] | Literal["auto"] = "auto"
    # Where built models (ONNX, int8, model2vec) are kept; None = the user's cache folder
    # ($PAPERTOPICS_CACHE, else $XDG_CACHE_HOME/papertopics, else ~/.cache/papertopics).
    model_cache: str | None = None

    @property
    def tokens(self) -> int:
        """Word pieces read per text: ``max_tokens``, or the backend's own default when it is "auto"."""
        return AUTO_MAX_TOKENS[self.backend] if self.max_tokens == "auto" else self.max_tokens


# UMAP's neighbourhood size, its own default and BERTopic's; "auto" means this too.
DEFAULT_N_NEIGHBORS = 15


class ClusterConfig(_Strict):
    # UMAP needs a paper and at least one neighbour; above 1,000 the k-NN graph of 75,000
    # papers no longer fits in memory (it is lowered to the number of papers - 1 anyway).
    n_neighbors: Annotated[int, Field(ge=2, le=1000)] | Literal["auto"] = DEFAULT_N_NEIGHBORS
    n_components: Annotated[int, Field(ge=2, le=50)] = 5
    min_cluster_size: Annotated[int, Field(ge=2, le=MAX_PAPERS)] | Literal["auto"] = "auto"
    min_samples: PaperCount | Literal["auto"] = "auto"
    map_min_dist: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    max_topic_share: Annotated[float, Field(gt=0.0, le=1.0)] = 0.2
    incremental: bool = True
    # Papers added since the last full clustering, as a share of it, beyond which all is reclustered
    # (guided by the topics, so ids hold): how new subjects that joined a broad topic get their own.
    incremental_max_share: Annotated[float, Field(gt=0.0, le=10.0)] = 0.25
    # ...and at least this many of them (a small feed is not reclustered every few days: ids hold).
    incremental_min_growth: PaperCount = 1000
    # Reclustered when the share of added papers that fit no topic exceeds the clustered papers' own by this
    # and the pool holds a dense group that clustered papers share (pipeline.feed.update).
    update_drift: Annotated[float, Field(gt=0.0, le=1.0)] = 0.15
    # Papers UMAP and HDBSCAN are fitted on: "auto" = all up to 100,000 (pipeline.cluster.sample_fit),
    # a seeded sample of that many above; "all"; or a number. The rest join by nearest neighbours.
    # With method "leiden", "auto" stops at LEIDEN_FIT_SAMPLE there, and the sample is drawn by the
    # papers' ids, not the seed.
    fit_sample: Annotated[int, Field(ge=2, le=MAX_PAPERS)] | Literal["auto", "all"] = "auto"
    # A recluster of a run clustered before (the drift bar, --force cluster) semi-supervises UMAP
    # with the topics before, at this weight (0 = a recluster that ignores them).
    recluster_guide: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3
    # How the topics are found: "umap-hdbscan" = HDBSCAN on one seeded UMAP layout of the papers;
    # "leiden" = the communities that leiden_members seeded Leiden partitions of the exact k-NN graph
    # agree on (pipeline.cluster.consensus): topics that hardly hinge on the seed or the CPU.
    method: Literal["umap-hdbscan", "leiden"] = "umap-hdbscan"
    # Seeded Leiden partitions per consensus: more = steadier topics, more time; "auto" = 50 up to
    # 2,000 papers, 100 from 7,700 (pipeline.cluster.consensus.AUTO_SETTINGS).
    leiden_members: Annotated[int, Field(ge=1, le=200)] | Literal["auto"] = "auto"
    # Leiden's modularity resolution: higher = more, smaller topics; "auto" falls as the corpus grows.
    leiden_resolution: Annotated[float, Field(gt=0.0, le=100.0)] | Literal["auto"] = "auto"


class LLMConfig(_Strict):
    """An optional local OpenAI-compatible server (e.g. Ollama) that names topics."""

    enabled: bool = False
    base_url: str = "http://localhost:11434/v1"
    model: str = "llama3.2"
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 60.0  # a socket refuses 1e308 (and inf)
    on_failure: Literal["error", "keep"] = "error"
    allow_remote: bool = False


class LabelConfig(_Strict):
    n_keywords: Annotated[int, Field(ge=3, le=30)] = 10
    ngram_max: Annotated[int, Field(ge=1, le=3)] = 2
    extra_stop_words: list[str] = Field(default_factory=list)
    keyword_min_papers: PaperCount | Literal["auto"] = "auto"
    keyword_min_share: Annotated[float, Field(ge=0.0, lt=1.0)] | Literal["auto"] = "auto"
    reduce_frequent_words: bool = True
    representation: Representation = "none"
    mmr_diversity: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3
    name_phrases: Annotated[int, Field(ge=1, le=4)] = 2
    n_topics: PaperCount | Literal["auto"] = "auto"
    coarse_topics: PaperCount | Literal["auto"] = "auto"
    reduce_outliers: bool = True
    outlier_percentile: Annotated[float, Field(ge=0.0, le=50.0)] = 5.0
    # Papers read to describe the topics (pipeline.label.sample): "auto" = all up to its
    # AUTO_LABEL_SAMPLE, a seeded sample of each topic above; "all"; or a number.
    fit_sample: Annotated[int, Field(ge=2, le=MAX_PAPERS)] | Literal["auto", "all"] = "auto"
    llm: LLMConfig = LLMConfig()

    @model_validator(mode="after")
    def _min_share_needs_ctfidf_keywords(self) -> LabelConfig:
        # BERTopic's representation models rank words over one joined document per topic:
        # how many of a topic's papers hold a word is not known on that route.
        if self.representation != "none" and self.keyword_min_share not in ("auto", 0.0):
            raise ValueError(
                f"keyword_min_share applies to representation 'none' only, not '{self.representation}': "
                "leave it 'auto' (off there) or set it to 0"
            )
        return self


class ReportConfig(_Strict):
    title: str | None = None
    hover_abstract_chars: Annotated[int, Field(ge=0, le=2000)] = 240
    representative_titles: Annotated[int, Field(ge=1, le=10)] = 3
    topic_page_papers: Annotated[int, Field(ge=1, le=100_000)] = 500


class HistoryConfig(_Strict):
    """How a run folder keeps what runs carry to the next one (``pipeline.state``)."""

    # Generations of the run's history kept, newest first: a user can go back this many runs.
    keep: Annotated[int, Field(ge=1, le=1000)] = 5
    # A damaged generation: stop (naming the file and the last intact generation), or go on
    # from the last intact one with a warning in the log and the report.
    on_damage: Literal["stop", "previous"] = "stop"


EngineKind = Literal["local", "dask"]
_ADDRESS = re.compile(r"^[a-z][a-z0-9+]*://\S+:\d{1,5}$")


class EngineConfig(_Strict):
    """Where the parallel parts of a run go (``pipeline.engine``): this process, or Dask workers."""

    # local = in this process (the default code path); dask = on dask.distributed workers.
    kind: EngineKind = "local"
    # null = a LocalCluster on this machine; else a running scheduler, e.g. "tcp://host:8786".
    address: str | None = None
    # Worker processes of the LocalCluster (auto = one per CPU core); with an address, the
    # number of workers to wait for before starting (auto = those connected, at least one).
    workers: Annotated[int, Field(ge=1, le=100_000)] | Literal["auto"] = "auto"
    # Seconds to reach the scheduler at ``address`` and hear its greeting: a wrong address is
    # reported this soon (Dask's own connect timeout kept retrying for 120 s).
    connect_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 10.0

    @field_validator("address")
    @classmethod
    def _address_shape(cls, address: str | None) -> str | None:
        if address is None:
            return None
        if address.startswith("tls://"):
            # Dask's TLS needs a CA, a certificate and a key, which no setting here configures: a
            # tls:// address failed with a TypeError. Refused until it can be made to work.
            raise ValueError(
                f"'{address}': TLS needs certificates, which papertopics does not configure; reach the "
                "scheduler over tcp:// (on a trusted network, or through an SSH tunnel)"
            )
        if not _ADDRESS.match(address) or not address.startswith("tcp://"):
            raise ValueError(f"'{address}' is no scheduler address: write it as 'tcp://host:8786'")
        return address

    @model_validator(mode="after")
    def _address_needs_dask(self) -> EngineConfig:
        if self.kind == "local" and self.address is not None:
            raise ValueError("'address' applies to kind 'dask', not 'local'")
        return self


class RunConfig(_Strict):
    name: str
    inputs: list[InputSpec] = Field(min_length=1)
    output_dir: str = "outputs"
    seed: Seed = 42
    parse: ParseConfig = ParseConfig()
    embed: EmbedConfig = EmbedConfig()
    cluster: ClusterConfig = ClusterConfig()
    label: LabelConfig = LabelConfig()
    report: ReportConfig = ReportConfig()
    engine: EngineConfig = EngineConfig()
    history: HistoryConfig = HistoryConfig()

    @field_validator("name")
    @classmethod
    def _name_is_folder_safe(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
            raise ValueError("use letters, digits, '.', '_' or '-' (it names the output folder)")
        return value

    @field_validator("inputs", mode="before")
    @classmethod
    def _bare_paths_are_inputs(cls, value: Any) -> Any:
        # `inputs: [a.txt, b/*.jsonl]` is the common case; expand it to {path: ...}.
        if isinstance(value, list):
            return [{"path": item} if isinstance(item, str) else item for item in value]
        return value

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    @property
    def cache_dir(self) -> Path:
        return Path(self.output_dir) / ".cache"


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the key at `loc`, to list its allowed keys."""
    model: type[BaseModel] = RunConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        candidates = [field.annotation, *get_args(field.annotation)]
        for inner in list(candidates):
            candidates.extend(get_args(inner))
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


_UNION_TAGS = {"int", "str", "float", "bool", "list", "dict", "none"}


def _field_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The error location without pydantic's union-member tags ('constrained-int', "literal['auto']")."""
    return tuple(part for part in loc if isinstance(part, int) or (part.isidentifier() and part not in _UNION_TAGS))


def _error_loc(error: Mapping[str, Any]) -> tuple[Any, ...]:
    r"""Where an error is: for an unknown key, the key itself, whatever it looks like ("a\nb", "int")."""
    loc = error["loc"]
    if error["type"] == "extra_forbidden":
        return (*_field_loc(loc[:-1]), loc[-1])
    return _field_loc(loc)


def _echo(value: Any) -> str:
    """``repr(value)`` cut for a message: control characters escaped, an over-long integer described."""
    try:
        return shorten(repr(value))
    except ValueError:  # an integer past Python's limit for turning it into digits
        return f"an integer of more than {sys.get_int_max_str_digits():,} digits"


def _key_text(loc: tuple[Any, ...]) -> str:
    """The dotted key of ``loc``, quoted, with anything unprintable escaped (a newline, ESC)."""
    try:
        text = ".".join(str(part) for part in loc)
    except ValueError:  # a key that is an integer past that limit
        text = ".".join(str(part) if not isinstance(part, int) else "(an over-long integer)" for part in loc)
    return _echo(text)


def _describe(error: dict[str, Any], alternatives: list[str]) -> str:
    loc = _error_loc(error)
    if error["type"] == "extra_forbidden":
        owner = _section_model(loc)
        allowed = ", ".join(owner.model_fields) if owner else "see docs/configuration.md"
        return f"unknown key {_key_text(loc)} (allowed here: {allowed})"
    if error["type"] == "missing":
        return f"missing required key {_key_text(loc)}"
    allowed = " or ".join(dict.fromkeys(message.removeprefix("Input should be ") for message in alternatives))
    where = _key_text(loc) if loc else "'(top level)'"
    return f"key {where}: should be {allowed} (got {_echo(error.get('input'))})"


def parse_config(raw: Any, source: str = "<config>") -> RunConfig:
    """Validate a mapping already read from YAML; ``source`` names it in error messages."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the config must be a YAML mapping of keys to values")
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        # A value that fits no member of a union gives one error per member: merge them per key.
        by_key: dict[tuple[Any, ...], list[Any]] = {}
        for error in exc.errors():
            by_key.setdefault(_error_loc(error), []).append(error)
        first_errors = next(iter(by_key.values()))
        message = _describe(first_errors[0], [error["msg"] for error in first_errors])
        more = f" (and {len(by_key) - 1} more problem(s))" if len(by_key) > 1 else ""
        raise ConfigError(f"{source}: {message}{more}") from None


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML config (``pipeline.preflight`` checks that its inputs exist)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    raw = read_yaml(path)
    return parse_config(raw, source=str(path))
