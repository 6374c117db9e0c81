"""Atomic outputs: complete or absent, never half-written, no debris."""

from __future__ import annotations

import pytest

from serialoct.io.atomic import atomic_output, write_bytes_atomic, write_text_atomic


class Boom(RuntimeError):
    pass


def test_temporary_is_a_hidden_sibling_that_does_not_exist_yet(tmp_path):
    final = tmp_path / "out.csv"
    with atomic_output(final) as tmp:
        assert tmp.parent == final.parent
        assert tmp.name.startswith(".out.csv.tmp-")
        assert not tmp.exists()
        tmp.write_text("x")
    assert final.read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_failure_leaves_no_final_path_and_no_temporary(tmp_path, kind):
    final = tmp_path / "result"
    with pytest.raises(Boom, match="mid-write"):
        with atomic_output(final) as tmp:
            if kind == "dir":
                (tmp / "sub").mkdir(parents=True)
                (tmp / "sub" / "chunk").write_bytes(b"123")
            else:
                tmp.write_bytes(b"partial")
            raise Boom("mid-write")
    assert list(tmp_path.iterdir()) == []


def test_interrupt_also_cleans_up_and_propagates(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(tmp_path / "out") as tmp:
            tmp.mkdir()
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_the_previous_output_untouched(tmp_path):
    final = tmp_path / "table.csv"
    final.write_text("old")
    with pytest.raises(Boom):
        with atomic_output(final) as tmp:
            tmp.write_text("new but incomplete")
            raise Boom
    assert final.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


@pytest.mark.parametrize(
    ("old_kind", "new_kind"), [("file", "file"), ("dir", "dir"), ("dir", "file"), ("file", "dir")]
)
def test_success_replaces_an_existing_output_of_either_kind(tmp_path, old_kind, new_kind):
    final = tmp_path / "out.ome.zarr"
    if old_kind == "dir":
        (final / "0").mkdir(parents=True)
        (final / "0" / "stale").write_text("stale")
    else:
        final.write_text("stale")
    with atomic_output(final) as tmp:
        if new_kind == "dir":
            tmp.mkdir()
            (tmp / "zarr.json").write_text("{}")
        else:
            tmp.write_text("fresh")
    if new_kind == "dir":
        assert sorted(p.name for p in final.iterdir()) == ["zarr.json"]
    else:
        assert final.read_text() == "fresh"
    assert [p.name for p in tmp_path.iterdir()] == ["out.ome.zarr"]


def test_body_that_writes_nothing_raises_and_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic_output(tmp_path / "out.txt"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_write_text_and_bytes_create_parent_folders(tmp_path):
    text_path = write_text_atomic(tmp_path / "a" / "b" / "note.txt", "héllo\n")
    bytes_path = write_bytes_atomic(tmp_path / "a" / "data.bin", b"\x00\x01")
    assert text_path.read_text(encoding="utf-8") == "héllo\n"
    assert bytes_path.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b", "data.bin"]
