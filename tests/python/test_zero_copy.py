"""No copies the caller did not ask for: numpy views of a QTensor's bytes and of a
GGUF file's tensors alias the memory that holds them."""

import gc
import sys

import numpy as np
import pytest

import halfbyte


def address(a):
    return a.__array_interface__["data"][0]


def test_numpy_views_of_a_qtensor_share_its_memory():
    qt = halfbyte.quantize(np.random.default_rng(0).standard_normal((8, 256)).astype(np.float32), "q4_1")
    a = np.frombuffer(qt, np.uint8)
    b = np.asarray(memoryview(qt))
    c = np.frombuffer(qt, np.uint8)
    # Every export is the same memory (a copy per export would have its own address).
    assert np.shares_memory(a, b) and np.shares_memory(a, c)
    assert address(a) == address(b) == address(c)
    assert a.size == qt.nbytes and a.tobytes() == qt.to_bytes()
    assert not a.flags.owndata and not a.flags.writeable
    # The view holds the tensor: deleting the Python name does not free the bytes.
    refs = sys.getrefcount(qt)
    d = np.frombuffer(qt, np.uint8)
    assert sys.getrefcount(qt) > refs
    raw = qt.to_bytes()
    del qt, b, c
    gc.collect()
    assert a.tobytes() == raw and d.tobytes() == raw


def test_reshaped_view_is_the_gguf_block_layout():
    qt = halfbyte.quantize(np.ones((3, 64), np.float32), "q8_0")
    blocks = np.frombuffer(qt, np.uint8).reshape(3, 2, 34)  # rows x blocks x (fp16 d + 32 int8)
    assert np.shares_memory(blocks, np.frombuffer(qt, np.uint8))
    d = blocks[..., :2].copy().view(np.float16)
    np.testing.assert_array_equal(d, np.float16(1 / 127))
    np.testing.assert_array_equal(blocks[..., 2:].view(np.int8), 127)


def test_load_gguf_float_tensors_are_views_of_one_mapping(tmp_path):
    path = str(tmp_path / "v.gguf")
    a = np.arange(64, dtype=np.float32).reshape(8, 8)
    halfbyte.save_gguf(path, {}, {"a": a, "b": a.astype(np.float16), "c": a[0].astype(np.int32)})
    t = halfbyte.load_gguf(path).tensors
    base = address(t["a"])
    # Laid out as in the file (32-byte alignment): a at 0, b after 256 bytes, c after 128 more.
    assert address(t["b"]) - base == 256 and address(t["c"]) - base == 256 + 128
    for x in t.values():
        assert not x.flags.owndata and not x.flags.writeable
    np.testing.assert_array_equal(t["a"], a)


@pytest.mark.parametrize("order", ["C", "F"])
def test_matmul_and_quantize_leave_inputs_untouched(order):
    x = np.asarray(np.random.default_rng(1).standard_normal((4, 64)), dtype=np.float32, order=order)
    w = np.asarray(np.random.default_rng(2).standard_normal((8, 64)), dtype=np.float32, order=order)
    x0, w0 = x.copy(), w.copy()
    y = halfbyte.matmul(x, halfbyte.quantize(w))
    assert not np.shares_memory(y, x)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)
