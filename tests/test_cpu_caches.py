"""The running CPU's caches (mnist_native._cpu_caches) and the kernel sizes derived from them."""
import ctypes
import sys

import pytest

import mnist_native as mn
from mnist_native import _cpu_caches, _fused, _train


@pytest.mark.parametrize("text,size", [("32K", 32768), ("1024K\n", 1 << 20), ("2M", 2 << 20),
                                       ("512", 512), ("", 0), ("lots", 0), ("K", 0)])
def test_parse_size(text, size):
    assert _cpu_caches.parse_size(text) == size


def make_cache_dir(root, caches):
    for i, (level, kind, size) in enumerate(caches):
        entry = root / f"index{i}"
        entry.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (entry / name).write_text(f"{value}\n")
    return str(root)


def test_sysfs_takes_the_data_and_unified_caches(tmp_path):
    root = make_cache_dir(tmp_path, [(1, "Instruction", "64K"), (1, "Data", "48K"),
                                     (2, "Unified", "2048K"), (3, "Unified", "105M")])
    assert _cpu_caches._from_sysfs(root) == (48 * 1024, 2 << 20)


def test_sysfs_without_caches_says_nothing(tmp_path):
    assert _cpu_caches._from_sysfs(str(tmp_path / "absent")) == (0, 0)
    (tmp_path / "index0").mkdir()  # an entry with no files
    assert _cpu_caches._from_sysfs(str(tmp_path)) == (0, 0)


def test_windows_reader_layout_and_parsing():
    """The structure as Windows lays it out on 64 bits (Cache at offset 16, Size at 4 within
    it: 32 bytes), and the reader on a stand-in for GetLogicalProcessorInformation that
    behaves as the real one: the first call only says the size it needs."""
    if ctypes.sizeof(ctypes.c_void_p) == 8:
        assert ctypes.sizeof(_cpu_caches._ProcessorInfo) == 32
        assert _cpu_caches._ProcessorInfo.u.offset == 16
    assert _cpu_caches._CacheDescriptor.Size.offset == 4
    entries = [(2, 1, 1, 32768), (2, 1, 2, 49152), (0, 0, 0, 0), (2, 2, 0, 1310720),
               (2, 3, 0, 1 << 25)]  # (relationship, level, type, size)

    def get(buffer, size):
        needed = len(entries) * ctypes.sizeof(_cpu_caches._ProcessorInfo)
        if buffer is None:
            size._obj.value = needed  # size is byref(c_uint32)
            return 0
        for info, (relation, level, kind, bytes_) in zip(buffer, entries):
            info.Relationship = relation
            info.u.Cache.Level, info.u.Cache.Type, info.u.Cache.Size = level, kind, bytes_
        return 1

    assert _cpu_caches._from_windows(get) == (49152, 1310720)  # the data cache, not code


def test_macos_reader_prefers_the_performance_cores():
    """On Apple silicon the perflevel0 names (32-bit values) give the performance cores'
    caches; on Intel Macs only the plain names (64-bit) exist."""
    class Libc:
        def __init__(self, values):
            self.values = values

        def sysctlbyname(self, name, value, size, new, new_size):
            if name.decode() not in self.values:
                return -1
            number, width = self.values[name.decode()]
            value._obj.value = number
            size._obj.value = width
            return 0

    apple = {"hw.perflevel0.l1dcachesize": (131072, 4), "hw.l1dcachesize": (65536, 8),
             "hw.perflevel0.l2cachesize": (16 << 20, 4), "hw.l2cachesize": (4 << 20, 8)}
    assert _cpu_caches._from_sysctl(Libc(apple)) == (131072, 16 << 20)
    intel = {"hw.l1dcachesize": (32768, 8), "hw.l2cachesize": (262144, 8)}
    assert _cpu_caches._from_sysctl(Libc(intel)) == (32768, 262144)


def test_cache_sizes_of_this_machine():
    l1d, l2, source = _cpu_caches.cache_sizes()
    assert 4096 <= l1d <= l2
    expected = {"win32": {"GetLogicalProcessorInformation"}, "darwin": {"sysctlbyname"}}
    assert source in expected.get(sys.platform, {"sysconf", "sysfs"}) | {"default"}
    if sys.platform.startswith("linux"):  # every Linux we build on says
        assert source != "default"


def test_defaults_when_the_system_says_nothing(monkeypatch):
    monkeypatch.setattr(_cpu_caches, "_from_sysconf", lambda: (0, 0))
    monkeypatch.setattr(_cpu_caches, "_from_sysfs", lambda: (-1, 0))
    monkeypatch.setattr(_cpu_caches, "_from_sysctl", lambda: (0, 0))
    monkeypatch.setattr(_cpu_caches, "_from_windows", lambda: (0, 0))
    assert _cpu_caches.cache_sizes() == (32768, 262144, "default")


@pytest.mark.parametrize("l1d,l2,sizes", [
    (48 << 10, 2 << 20, (160 << 10, 56 << 10, 28 << 10, 1 << 20)),  # the Xeon measured
    (32 << 10, 512 << 10, (128 << 10, 38229, 19114, 256 << 10)),     # Zen 3
    (32 << 10, 64 << 10, (24 << 10, 38229, 19114, 32 << 10)),        # a tiny L2: the floor
    (1 << 10, 1 << 10, (24 << 10, 4096, 4096, 512)),                 # nonsense: still a row
])
def test_cache_tuning(l1d, l2, sizes):
    tuning = _fused.cache_tuning(l1d, l2)
    assert tuple(tuning.values()) == sizes
    _train.set_cache_tuning(**tuning)  # accepted
    _train.set_cache_tuning(**_fused.CACHE_TUNING)


def test_build_info_reports_the_caches_and_tuning():
    caches = mn.build_info()["caches"]
    assert (caches["l1d"], caches["l2"], caches["source"]) == _cpu_caches.cache_sizes()
    assert caches["tuning"] == _fused.cache_tuning(caches["l1d"], caches["l2"])
