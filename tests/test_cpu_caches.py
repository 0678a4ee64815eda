"""The running CPU's caches (mnist_native._cpu_caches) and the kernel sizes derived from them."""
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
