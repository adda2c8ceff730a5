"""collect_sources: files, folders and globs on disk -> SourceFile bytes, in a deterministic order."""

from __future__ import annotations

import gzip
import hashlib
import os
import signal

import pytest

from pipeline.config import InputSpec, load_config
from pipeline.errors import ConfigError, InputError
from pipeline.preflight import preflight
from pipeline.sources import LINK_NOT_FOLLOWED, SourceFile, collect_sources


def _tree(root, files: dict[str, bytes]):
    for relpath, data in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_single_file_bytes_and_hash(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"title\nx\n")
    (source,) = collect_sources([InputSpec(path=str(path))])
    assert isinstance(source, SourceFile)
    assert (source.path, source.data, source.relpath, source.folder, source.format) == (
        str(path),
        b"title\nx\n",
        None,
        None,
        None,
    )
    assert source.sha256 == hashlib.sha256(b"title\nx\n").hexdigest()
    with pytest.raises(AttributeError):
        source.data = b""  # frozen


def test_gz_is_unpacked_but_hashed_as_stored(tmp_path):
    packed = gzip.compress(b'{"title": "x"}\n')
    (tmp_path / "a.jsonl.gz").write_bytes(packed)
    (source,) = collect_sources([InputSpec(path=str(tmp_path / "a.jsonl.gz"))])
    assert source.data == b'{"title": "x"}\n'
    assert source.sha256 == hashlib.sha256(packed).hexdigest()


def test_bad_gzip_is_an_input_error(tmp_path):
    (tmp_path / "a.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(InputError, match=r"a\.csv\.gz: not a valid gzip file"):
        collect_sources([InputSpec(path=str(tmp_path / "a.csv.gz"))])


def test_glob_is_sorted_recursive_and_skips_hidden(tmp_path):
    _tree(tmp_path, {"b.jsonl": b"1", "a.jsonl": b"2", "sub/c.jsonl": b"3", ".hidden.jsonl": b"4", "d.csv": b"5"})
    sources = collect_sources([InputSpec(path=str(tmp_path / "**" / "*.jsonl"))])
    assert [os.path.relpath(s.path, tmp_path) for s in sources] == ["a.jsonl", "b.jsonl", "sub/c.jsonl"]
    assert all(s.relpath is None for s in sources)


def test_specs_keep_their_order(tmp_path):
    _tree(tmp_path, {"a.csv": b"1", "z.csv": b"2"})
    specs = [InputSpec(path=str(tmp_path / "z.csv")), InputSpec(path=str(tmp_path / "a.csv"))]
    sources = collect_sources(specs)
    assert [s.data for s in sources] == [b"2", b"1"]
    assert [s.spec for s in sources] == specs


def test_folder_of_data_files_is_not_a_text_folder(tmp_path):
    _tree(
        tmp_path / "daily",
        {"2025-03-19.jsonl": b"1", "2025-03-18.jsonl": b"2", "old/2025-01-01.jsonl.gz": gzip.compress(b"3")},
    )
    sources = collect_sources([InputSpec(path=str(tmp_path / "daily"))])
    assert [s.relpath for s in sources] == ["2025-03-18.jsonl", "2025-03-19.jsonl", "old/2025-01-01.jsonl.gz"]
    assert [s.data for s in sources] == [b"2", b"1", b"3"]
    assert {s.format for s in sources} == {None}
    assert {s.folder for s in sources} == {str(tmp_path / "daily")}


def test_labelled_folder_is_sniffed_as_text_folder(tmp_path):
    root = _tree(
        tmp_path / "news",
        {"README.TXT": b"r", "sport/001.txt": b"s", "tech/002.txt": b"t", "sci.space/61000": b"u", ".DS_Store": b"x"},
    )
    sources = collect_sources([InputSpec(path=str(root))])
    assert [s.relpath for s in sources] == ["README.TXT", "sci.space/61000", "sport/001.txt", "tech/002.txt"]
    assert {s.format for s in sources} == {"text-folder"}


def test_flat_folder_is_a_text_folder_only_when_configured(tmp_path):
    root = _tree(tmp_path / "pages", {"a.txt": b"1", "b.txt": b"2"})
    assert {s.format for s in collect_sources([InputSpec(path=str(root))])} == {None}
    assert {s.format for s in collect_sources([InputSpec(path=str(root), format="text-folder")])} == {"text-folder"}


@pytest.mark.parametrize(
    ("spec_path", "message"),
    [
        ("missing.csv", r"missing\.csv: no such file or folder"),
        ("*.nothing", r"\*\.nothing: the pattern matches no file or folder"),
        ("empty", r"empty: the folder holds no files"),
    ],
)
def test_missing_inputs_are_one_line_errors(tmp_path, spec_path, message):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=message) as error:
        collect_sources([InputSpec(path=str(tmp_path / spec_path))])
    assert "\n" not in str(error.value)
    assert str(tmp_path) in str(error.value)


def test_text_folder_given_a_file_is_an_error(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"x")
    with pytest.raises(InputError, match=r"a\.txt: format 'text-folder' needs a folder"):
        collect_sources([InputSpec(path=str(tmp_path / "a.txt"), format="text-folder")])


def test_unreadable_file_is_an_input_error(tmp_path, monkeypatch):
    path = tmp_path / "secret.csv"
    path.write_bytes(b"x")

    def denied(self):
        raise PermissionError(13, "Permission denied")

    # chmod cannot stop root (the CI user here) from reading, so simulate the OS refusing.
    monkeypatch.setattr(type(path), "read_bytes", denied)
    with pytest.raises(InputError, match=r"secret\.csv: cannot read the file \(Permission denied\)"):
        collect_sources([InputSpec(path=str(path))])


def test_glob_does_not_enter_links_to_folders_and_lists_them(tmp_path, endless_walk_fails):
    # `loop -> .` made glob.glob read every file 40 times (once per level until ELOOP); two
    # such links double the walk per level, which never ends.
    _tree(tmp_path, {"days/a.jsonl": b"1", "days/sub/b.jsonl": b"2", "other/c.jsonl": b"3"})
    (tmp_path / "days" / "loop").symlink_to(".")
    (tmp_path / "days" / "sub" / "up").symlink_to("..")
    (tmp_path / "days" / "elsewhere").symlink_to(tmp_path / "other")
    (tmp_path / "days" / "file-link.jsonl").symlink_to(tmp_path / "other" / "c.jsonl")
    sources = collect_sources([InputSpec(path=str(tmp_path / "days" / "**" / "*.jsonl"))])
    read = [os.path.relpath(s.path, tmp_path / "days") for s in sources if s.skipped is None]
    assert read == ["a.jsonl", "file-link.jsonl", "sub/b.jsonl"]
    assert [s.data for s in sources if s.skipped is None] == [b"1", b"3", b"2"]
    skipped = {os.path.relpath(s.path, tmp_path / "days"): s for s in sources if s.skipped is not None}
    # `**/*.jsonl` matches no folder name, so only links met by the `**` walk are listed.
    assert set(skipped) == {"elsewhere", "loop", "sub/up"}
    assert {s.skipped for s in skipped.values()} == {LINK_NOT_FOLLOWED}
    assert all(s.data == b"" for s in skipped.values())


def test_folder_input_lists_its_links_to_folders_after_its_files(tmp_path):
    _tree(tmp_path, {"docs/sport/a.txt": b"a", "docs/tech/b.txt": b"b"})
    (tmp_path / "docs" / "tech" / "again").symlink_to("..")
    sources = collect_sources([InputSpec(path=str(tmp_path / "docs"))])
    assert [(s.relpath, s.format, s.skipped) for s in sources] == [
        ("sport/a.txt", "text-folder", None),
        ("tech/b.txt", "text-folder", None),
        (None, None, LINK_NOT_FOLLOWED),
    ]


class StillWalking(Exception):  # not an OSError: glob.glob swallows those
    """The glob still walks after 60 s: it follows the link loops."""


def _hang_guard(signum, frame):
    raise StillWalking


@pytest.fixture
def endless_walk_fails():
    """Not a speed check: a guard so that a walk that follows link loops fails instead of hanging."""
    previous = signal.signal(signal.SIGALRM, _hang_guard)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_config_check_of_a_glob_through_link_loops_ends(tmp_path, endless_walk_fails):
    _tree(tmp_path, {"d/x/y.jsonl": b"1"})
    for name in ("a", "b", "c"):  # three loops: glob.glob walks 3**40 paths, which never ends
        (tmp_path / "d" / name).symlink_to(".")
    config = tmp_path / "c.yaml"
    config.write_text(f"name: t\ninputs: ['{tmp_path}/d/**/*.csv']\n")
    with pytest.raises(ConfigError, match=r"'inputs\.0\.path': .* matches no file or folder"):
        preflight(load_config(config), source=str(config))
    # The loops are listed, not entered, by the parse stage's walk too.
    config.write_text(f"name: t\ninputs: ['{tmp_path}/d/**/*.jsonl']\n")
    (spec,) = load_config(config).inputs
    sources = collect_sources([spec])
    assert [s.data for s in sources if s.skipped is None] == [b"1"]
    assert sorted(os.path.basename(s.path) for s in sources if s.skipped) == ["a", "b", "c"]


def test_input_report_lists_the_links_not_followed(tmp_path, endless_walk_fails):
    from pipeline.config import ParseConfig
    from pipeline.parse import parse

    row = b'{"title": "Sparse attention for long documents", "abstract": "We study sparse attention."}\n'
    _tree(tmp_path, {"days/2024-01-01.jsonl": row})
    (tmp_path / "days" / "loop").symlink_to(".")
    result = parse(collect_sources([InputSpec(path=str(tmp_path / "days" / "**" / "*.jsonl"))]), ParseConfig())
    assert len(result.papers) == 1
    assert [(os.path.basename(r.path), r.reader, r.read) for r in result.file_reports] == [
        ("2024-01-01.jsonl", "table", 1),
        ("loop", LINK_NOT_FOLLOWED, 0),
    ]
    # A glob that finds nothing but links is an input that holds no paper.
    only_links = InputSpec(path=str(tmp_path / "days" / "l*"))
    with pytest.raises(InputError, match=r"l\*: matches only links to folders, which are not followed"):
        parse(collect_sources([only_links]), ParseConfig())


def test_sources_without_their_bytes_are_hashed_alike_and_read_again_by_path(tmp_path):
    """With Dask workers: hash, size and blankness taken here, bytes dropped, read again where parsed."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_text("title,abstract\nT,An abstract about graphs.\n")
    (folder / "b.csv.gz").write_bytes(gzip.compress(b"title,abstract\nU,Another abstract.\n"))
    (folder / "c.csv").write_text(" \n\t\n")  # only white space: an empty day
    specs = [InputSpec(path=str(folder / "*"))]
    kept, dropped = collect_sources(specs), collect_sources(specs, keep_bytes=False)
    assert [source.data for source in dropped] == [None, None, None]
    for eager, lazy in zip(kept, dropped, strict=True):
        assert (lazy.path, lazy.sha256, lazy.size, lazy.blank) == (eager.path, eager.sha256, eager.size, eager.blank)
        assert lazy.loaded() == eager and lazy.loaded().content == eager.content
    assert [source.blank for source in kept] == [False, False, True]
    assert kept[1].size == len(b"title,abstract\nU,Another abstract.\n")  # the gunzipped bytes
    with pytest.raises(RuntimeError, match="bytes were not kept"):
        _ = dropped[0].content
