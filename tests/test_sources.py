"""collect_sources: files, folders and globs on disk -> SourceFile bytes, in a deterministic order."""

from __future__ import annotations

import gzip
import hashlib
import os

import pytest

from pipeline.config import InputSpec
from pipeline.errors import InputError
from pipeline.sources import SourceFile, collect_sources


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
