"""Files written or read around the page cache hold exactly their bytes, and the usual write or read takes over where
O_DIRECT is refused."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from serialoct.io import direct
from serialoct.io.direct import MIN_DIRECT_BYTES, BufferPool, aligned_empty, read_into, read_range, write_file


def _spy_on(monkeypatch, name):
    """The paths given to ``direct.<name>``, recorded; no file system remembered as refusing O_DIRECT."""
    monkeypatch.setattr(direct, "_refused_devices", set())
    monkeypatch.delenv(direct.ENV, raising=False)
    paths = []
    real = getattr(direct, name)

    def spy(path, *args):
        done = real(path, *args)
        if done is not False:  # False: not done that way (a direct read not allowed or refused)
            paths.append(path)
        return done

    monkeypatch.setattr(direct, name, spy)
    return paths


@pytest.fixture
def opened(monkeypatch):
    """The files write_file opened with O_DIRECT."""
    return _spy_on(monkeypatch, "_open_direct")


def _parts(rng, total):
    data = rng.integers(0, 256, total, dtype=np.uint8).tobytes()
    cut = total // 3
    return [data[:cut], bytearray(data[cut:])]


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this OS")
@pytest.mark.parametrize("extra", [0, 1, 4095, 4096, 4097, 100_003, 2 * direct._STAGING, 2 * direct._STAGING + 12_345])
def test_a_direct_write_holds_exactly_the_parts_whatever_the_length(tmp_path, opened, extra):
    parts = _parts(np.random.default_rng(extra), MIN_DIRECT_BYTES + extra)
    write_file(tmp_path / "f.bin", parts)
    assert (tmp_path / "f.bin").read_bytes() == b"".join(parts)
    # direct where this file system allows it, else remembered as refusing it
    assert opened or os.stat(tmp_path).st_dev in direct._refused_devices


def test_replacing_a_longer_file_leaves_only_the_new_bytes(tmp_path, opened):
    rng = np.random.default_rng(1)
    write_file(tmp_path / "f.bin", _parts(rng, 3 * MIN_DIRECT_BYTES))
    parts = _parts(rng, MIN_DIRECT_BYTES + 17)
    write_file(tmp_path / "f.bin", parts)
    assert (tmp_path / "f.bin").read_bytes() == b"".join(parts)


@pytest.mark.parametrize("setting", ["on", "off"])
def test_an_array_part_is_written_in_memory_order(tmp_path, opened, monkeypatch, setting):
    monkeypatch.setenv(direct.ENV, setting)
    frames = np.random.default_rng(2).random((8, 90, 100), dtype=np.float32)  # 288 kB
    write_file(tmp_path / "f.bin", [np.asfortranarray(frames).T])
    assert (tmp_path / "f.bin").read_bytes() == frames.tobytes(order="F")


def test_small_files_are_written_the_usual_way(tmp_path, opened):
    write_file(tmp_path / "f.bin", [b"x" * (MIN_DIRECT_BYTES - 1)])
    assert (tmp_path / "f.bin").stat().st_size == MIN_DIRECT_BYTES - 1
    assert not opened


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this OS")
def test_a_file_system_that_refuses_o_direct_gets_the_usual_write_and_is_not_asked_again(tmp_path, opened, monkeypatch):
    def refuse(path):
        opened.append(path)
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(direct, "_open_direct", refuse)
    parts = _parts(np.random.default_rng(3), 2 * MIN_DIRECT_BYTES)
    write_file(tmp_path / "a.bin", parts)
    write_file(tmp_path / "b.bin", parts)
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes() == b"".join(parts)
    assert opened == [tmp_path / "a.bin"]


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this OS")
def test_a_file_system_that_refuses_the_first_direct_write_gets_the_usual_write_of_every_part(tmp_path, opened, monkeypatch):
    def refuse(fd, view):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(direct, "_write_all", refuse)
    parts = _parts(np.random.default_rng(7), 3 * direct._STAGING)
    write_file(tmp_path / "f.bin", iter(parts))
    assert (tmp_path / "f.bin").read_bytes() == b"".join(parts)
    assert os.stat(tmp_path).st_dev in direct._refused_devices


@pytest.mark.parametrize("setting", ["on", "off"])
def test_parts_from_a_generator_are_written_in_order_each_released_before_the_next_but_one_is_made(tmp_path, opened, monkeypatch, setting):
    import gc
    import weakref

    monkeypatch.setenv(direct.ENV, setting)
    rng = np.random.default_rng(8)
    arrays = [rng.integers(0, 256, n, dtype=np.uint8) for n in (300_000, 5_000_000, 123, 4_200_000, 77_777)]
    alive = []

    def parts():
        made = []
        for array in arrays:
            gc.collect()
            alive.append(sum(ref() is not None for ref in made))
            part = array.copy()
            made.append(weakref.ref(part))
            yield part
            del part

    write_file(tmp_path / "f.bin", parts())
    assert (tmp_path / "f.bin").read_bytes() == b"".join(a.tobytes() for a in arrays)
    assert max(alive) <= 1  # the part being written; not the file's


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this OS")
def test_other_write_errors_are_raised(tmp_path, opened, monkeypatch):
    def full(fd, view):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(direct, "_open_direct", lambda path: os.open(path, os.O_WRONLY | os.O_CREAT))  # whatever the file system
    monkeypatch.setattr(direct, "_write_all", full)
    with pytest.raises(OSError, match="No space left"):
        write_file(tmp_path / "f.bin", _parts(np.random.default_rng(4), MIN_DIRECT_BYTES))


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this OS")
def test_an_error_of_a_background_write_is_raised_by_write_file(tmp_path, opened, monkeypatch):
    calls = []
    usual = direct._write_all

    def full_later(fd, view):  # the first write (in the caller's thread) passes, the writer thread's fail
        calls.append(len(view))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        usual(fd, view)

    monkeypatch.setattr(direct, "_open_direct", lambda path: os.open(path, os.O_WRONLY | os.O_CREAT))  # whatever the file system
    monkeypatch.setattr(direct, "_write_all", full_later)
    with pytest.raises(OSError, match="No space left"):
        write_file(tmp_path / "f.bin", _parts(np.random.default_rng(9), 4 * direct._STAGING))
    assert len(calls) >= 2


def test_direct_writes_can_be_turned_off(tmp_path, opened, monkeypatch):
    monkeypatch.setenv(direct.ENV, "off")
    parts = _parts(np.random.default_rng(5), 2 * MIN_DIRECT_BYTES)
    write_file(tmp_path / "f.bin", parts)
    assert (tmp_path / "f.bin").read_bytes() == b"".join(parts)
    assert not opened


def test_a_stitched_slice_written_around_the_page_cache_reads_back_through_zarr(tmp_path, opened):
    from serialoct.io.slices import read_slice, write_slice

    volume = np.random.default_rng(6).gamma(2.0, size=(20, 150, 140)).astype(np.float32)  # 1.7 MB: direct shards
    write_slice(tmp_path / "s.ome.zarr", volume, (10.0, 10.0, 10.0))
    np.testing.assert_array_equal(read_slice(tmp_path / "s.ome.zarr").volume, volume)
    assert opened or os.stat(tmp_path).st_dev in direct._refused_devices


# --------------------------------------------------------------------------- reading


@pytest.fixture
def read_directly(monkeypatch):
    """The files read_into read with O_DIRECT."""
    return _spy_on(monkeypatch, "_read_direct")


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this OS")
@pytest.mark.parametrize("extra", [0, 1, 4095, 4096, 4097, 100_003])
def test_a_direct_read_fills_an_aligned_buffer_with_exactly_the_files_first_bytes(tmp_path, read_directly, extra):
    data = np.random.default_rng(extra).integers(0, 256, MIN_DIRECT_BYTES + extra + 5000, dtype=np.uint8).tobytes()
    (tmp_path / "f.bin").write_bytes(data)
    for n in (MIN_DIRECT_BYTES + extra, len(data)):  # part of the file, all of it
        out = aligned_empty(n + 4096, np.uint8)
        out[n:] = 7
        read_into(tmp_path / "f.bin", out[:n])
        assert out[:n].tobytes() == data[:n]
        assert (out[n:] == 7).all()  # nothing written past the buffer, though whole blocks are read
    assert read_directly or os.stat(tmp_path).st_dev in direct._refused_devices


def test_a_buffer_off_the_block_boundary_or_small_is_read_the_usual_way(tmp_path, read_directly):
    data = np.random.default_rng(1).integers(0, 256, 2 * MIN_DIRECT_BYTES, dtype=np.uint8).tobytes()
    (tmp_path / "f.bin").write_bytes(data)
    out = aligned_empty(len(data) + 1, np.uint8)[1:]
    read_into(tmp_path / "f.bin", out)
    small = aligned_empty(MIN_DIRECT_BYTES - 1, np.uint8)
    read_into(tmp_path / "f.bin", small)
    assert out.tobytes() == data and small.tobytes() == data[: small.size]
    assert not read_directly


@pytest.mark.parametrize("setting", ["on", "off"])
def test_a_file_shorter_than_the_buffer_is_an_end_of_file_error(tmp_path, read_directly, monkeypatch, setting):
    monkeypatch.setenv(direct.ENV, setting)
    (tmp_path / "f.bin").write_bytes(b"x" * (MIN_DIRECT_BYTES + 100))
    with pytest.raises(EOFError, match="ends before byte"):
        read_into(tmp_path / "f.bin", aligned_empty(MIN_DIRECT_BYTES + 4096, np.uint8))


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this OS")
def test_a_file_system_that_refuses_direct_reads_gets_the_usual_read_and_is_not_asked_again(tmp_path, read_directly, monkeypatch):
    real_open = os.open

    def refusing_open(path, flags, *args):
        if flags & os.O_DIRECT:
            read_directly.append("refused")
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(direct.os, "open", refusing_open)
    data = np.random.default_rng(2).integers(0, 256, 2 * MIN_DIRECT_BYTES, dtype=np.uint8).tobytes()
    (tmp_path / "f.bin").write_bytes(data)
    for _ in range(2):
        out = aligned_empty(len(data), np.uint8)
        read_into(tmp_path / "f.bin", out)
        assert out.tobytes() == data
    assert read_directly.count("refused") == 1
    assert os.stat(tmp_path).st_dev in direct._refused_devices


def test_direct_reads_can_be_turned_off(tmp_path, read_directly, monkeypatch):
    monkeypatch.setenv(direct.ENV, "off")
    data = b"y" * (2 * MIN_DIRECT_BYTES)
    (tmp_path / "f.bin").write_bytes(data)
    out = aligned_empty(len(data), np.uint8)
    read_into(tmp_path / "f.bin", out)
    assert out.tobytes() == data and not read_directly


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this OS")
def test_a_range_read_around_the_page_cache_is_exactly_the_files_bytes_wherever_it_starts_and_ends(tmp_path, monkeypatch):
    paths = _spy_on(monkeypatch, "_read_some")
    data = np.random.default_rng(9).integers(0, 256, 3 * MIN_DIRECT_BYTES + 1234, dtype=np.uint8).tobytes()
    (tmp_path / "f.bin").write_bytes(data)
    for offset, length in [(0, len(data)), (1, MIN_DIRECT_BYTES), (4095, 2 * MIN_DIRECT_BYTES + 7), (5000, len(data) - 5000),
                           (len(data) - 10, 10), (17, 100)]:
        assert read_range(tmp_path / "f.bin", offset, length).tobytes() == data[offset : offset + length]
    assert paths or os.stat(tmp_path).st_dev in direct._refused_devices  # the large ranges went direct
    with pytest.raises(EOFError, match="ends before byte"):
        read_range(tmp_path / "f.bin", 10, len(data))


def test_a_buffer_pool_lends_aligned_arrays_and_takes_back_only_what_it_lent():
    pool = BufferPool((2, 3, 4))
    first = pool.take()
    assert first.shape == (2, 3, 4) and first.dtype == np.float32 and first.flags.c_contiguous
    assert first.ctypes.data % 4096 == 0
    foreign = np.zeros((2, 3, 4), np.float32)
    pool.give([foreign, None, first])
    assert pool.take() is first
    assert pool.take() is not foreign
