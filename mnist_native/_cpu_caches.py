"""The running CPU's data caches, read from the operating system when mnist_native is
imported: the sizes the kernels' tiles of weight rows and prefetching follow
(``_fused.cache_tuning``).

``cache_sizes()`` returns ``(l1d, l2, source)``: bytes of one core's level-1 data cache and
level-2 cache, and where they were read.  Linux: ``sysconf`` (glibc), else sysfs (glibc on
ARM has no sysconf for them); macOS: ``sysctlbyname`` (the performance cores' caches on
Apple silicon); Windows: ``GetLogicalProcessorInformation``.  Where the OS says nothing,
the sizes of the smallest common desktop CPUs (32 kB, 256 kB) and ``source = "default"``.
"""
import ctypes
import ctypes.util
import os
import sys

DEFAULT_L1D, DEFAULT_L2 = 32 * 1024, 256 * 1024


def _from_sysconf():
    try:
        return os.sysconf("SC_LEVEL1_DCACHE_SIZE"), os.sysconf("SC_LEVEL2_CACHE_SIZE")
    except (ValueError, OSError):  # not a name this libc knows
        return 0, 0


def parse_size(text):
    """Bytes of a sysfs cache size: ``"32K"``, ``"1024K"``, ``"2M"`` or plain bytes."""
    text = text.strip().upper()
    scale = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(text[-1:], 1)
    digits = text[:-1] if scale > 1 else text
    return int(digits) * scale if digits.isdigit() else 0


def _read_text(path):
    with open(path) as f:
        return f.read().strip()


def _from_sysfs(root="/sys/devices/system/cpu/cpu0/cache"):
    found = {}
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return 0, 0
    for entry in entries:
        try:
            fields = {name: _read_text(os.path.join(root, entry, name))
                      for name in ("level", "type", "size")}
        except OSError:
            continue
        if fields["type"] in ("Data", "Unified") and fields["level"] in ("1", "2"):
            found.setdefault(int(fields["level"]), parse_size(fields["size"]))
    return found.get(1, 0), found.get(2, 0)


def _from_sysctl(libc=None):
    """``libc``: the C library (the system's, unless a test passes one)."""
    libc = libc or ctypes.CDLL(ctypes.util.find_library("c"))

    def read(name):
        value, size = ctypes.c_int64(0), ctypes.c_size_t(8)
        if libc.sysctlbyname(name.encode(), ctypes.byref(value), ctypes.byref(size), None, 0):
            return 0
        # A 4-byte value (the perflevel ones) fills the low half (macOS is little-endian).
        return value.value & 0xFFFFFFFF if size.value == 4 else value.value

    return (read("hw.perflevel0.l1dcachesize") or read("hw.l1dcachesize"),
            read("hw.perflevel0.l2cachesize") or read("hw.l2cachesize"))


class _CacheDescriptor(ctypes.Structure):  # Windows' CACHE_DESCRIPTOR
    _fields_ = [("Level", ctypes.c_uint8), ("Associativity", ctypes.c_uint8),
                ("LineSize", ctypes.c_uint16), ("Size", ctypes.c_uint32),
                ("Type", ctypes.c_int)]


class _ProcessorInfoUnion(ctypes.Union):
    _fields_ = [("Cache", _CacheDescriptor), ("Reserved", ctypes.c_uint64 * 2)]


class _ProcessorInfo(ctypes.Structure):  # SYSTEM_LOGICAL_PROCESSOR_INFORMATION
    _fields_ = [("ProcessorMask", ctypes.c_size_t), ("Relationship", ctypes.c_int),
                ("u", _ProcessorInfoUnion)]


_RELATION_CACHE, _CACHE_UNIFIED, _CACHE_DATA = 2, 0, 2


def _from_windows(get=None):
    """``get``: GetLogicalProcessorInformation (kernel32's, unless a test passes one)."""
    get = get or ctypes.windll.kernel32.GetLogicalProcessorInformation
    size = ctypes.c_uint32(0)
    get(None, ctypes.byref(size))  # fails, saying the size it needs
    buffer = (_ProcessorInfo * (size.value // ctypes.sizeof(_ProcessorInfo)))()
    if not buffer or not get(buffer, ctypes.byref(size)):
        return 0, 0
    found = {}
    for info in buffer:
        cache = info.u.Cache
        if info.Relationship == _RELATION_CACHE and cache.Type in (_CACHE_DATA, _CACHE_UNIFIED):
            found.setdefault(cache.Level, cache.Size)
    return found.get(1, 0), found.get(2, 0)


def cache_sizes():
    """``(l1d, l2, source)`` of the running CPU (see the module's docstring)."""
    if sys.platform == "win32":
        readers = [("GetLogicalProcessorInformation", _from_windows)]
    elif sys.platform == "darwin":
        readers = [("sysctlbyname", _from_sysctl)]
    else:
        readers = [("sysconf", _from_sysconf), ("sysfs", _from_sysfs)]
    for source, reader in readers:
        try:
            l1d, l2 = reader()
        except (OSError, AttributeError, TypeError):  # no such call on this system
            continue
        if l1d > 0 and l2 > 0:
            return int(l1d), int(l2), source
    return DEFAULT_L1D, DEFAULT_L2, "default"
