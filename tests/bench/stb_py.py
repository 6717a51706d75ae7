"""A minimal, independent reader of the .stb container (docs/format.md):
header, metadata and tensor directory, plus tensor data as numpy arrays.
The bench tests compare bllm-bench's byte counts and bllm-random's output
against what this reads, so it shares no code with the C reader."""
import mmap
import struct

import numpy as np

META_FMT = {0: "<B", 1: "<B", 2: "<i", 3: "<I", 4: "<f", 5: "<Q", 6: "<d", 9: "<H"}
TYPES = {0: ("f32", 4, np.float32), 1: ("f16", 2, np.float16), 2: ("bf16", 2, None)}


class Stb:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.raw = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        b = self.raw
        if b[:8] != b"BLLMSTB\0":
            raise ValueError(f"{path}: bad magic")
        (self.version, hdr, self.file_bytes, meta_off, meta_bytes, dir_off, dir_bytes,
         n_meta, n_tensors, self.data_offset) = struct.unpack_from("<IIQQQQQIIQ", b, 8)
        if self.file_bytes != len(b):
            raise ValueError(f"{path}: header says {self.file_bytes} bytes, file has {len(b)}")
        self.meta = {}
        p = meta_off
        for _ in range(n_meta):
            (klen,) = struct.unpack_from("<H", b, p)
            key = b[p + 2:p + 2 + klen].decode()
            p += 2 + klen
            t = b[p]
            p += 1
            self.meta[key], p = self._value(t, p)
        self.tensors = {}
        self.order = []
        p = dir_off
        for _ in range(n_tensors):
            (nlen,) = struct.unpack_from("<H", b, p)
            name = b[p + 2:p + 2 + nlen].decode()
            p += 2 + nlen
            ttype, ndim = struct.unpack_from("<II", b, p)
            p += 8
            dims = list(struct.unpack_from(f"<{ndim}Q", b, p))
            p += 8 * ndim
            off, nbytes, _checksum = struct.unpack_from("<QQQ", b, p)
            p += 24
            self.tensors[name] = {"type": ttype, "dims": dims, "offset": off, "nbytes": nbytes}
            self.order.append(name)

    def _value(self, t, p):
        b = self.raw
        if t in META_FMT:
            (v,) = struct.unpack_from(META_FMT[t], b, p)
            return v, p + struct.calcsize(META_FMT[t])
        if t == 7:
            (n,) = struct.unpack_from("<I", b, p)
            return b[p + 4:p + 4 + n].decode("utf-8", "replace"), p + 4 + n
        if t == 8:
            et = b[p]
            (count,) = struct.unpack_from("<Q", b, p + 1)
            p += 9
            out = []
            for _ in range(count):
                v, p = self._value(et, p)
                out.append(v)
            return out, p
        raise ValueError(f"unknown metadata type {t}")

    def numel(self, name):
        n = 1
        for d in self.tensors[name]["dims"]:
            n *= d
        return n

    def array(self, name):
        t = self.tensors[name]
        start = self.data_offset + t["offset"]
        buf = self.raw[start:start + t["nbytes"]]
        kind = TYPES[t["type"]]
        if kind[2] is not None:
            a = np.frombuffer(buf, dtype=kind[2]).astype(np.float32)
        else:  # bf16: upper half of a binary32
            a = (np.frombuffer(buf, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        return a.reshape(t["dims"])
