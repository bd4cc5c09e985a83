#!/usr/bin/env python3
"""Rewrite R_X86_64_PLT32 relocations to R_X86_64_PC32 in an ELF64 object.

LLVM emits PLT32 for every call. A kernel module has no PLT, so the two are
equivalent, but older NetBSD kernel loaders (kobj_machdep.c) accept only
PC32. Rewriting makes the object loadable whichever loader it meets.
Usage: plt32-to-pc32.py OBJECT (edited in place).
"""
import struct
import sys

SHT_RELA = 4
R_X86_64_PC32 = 2
R_X86_64_PLT32 = 4


def main(path):
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            sys.exit(f"{path}: not a little-endian ELF64 object")
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        changed = 0
        for i in range(shnum):
            base = shoff + i * shentsize
            sh_type, = struct.unpack_from("<I", data, base + 4)
            if sh_type != SHT_RELA:
                continue
            off, size = struct.unpack_from("<QQ", data, base + 0x18)
            entsize, = struct.unpack_from("<Q", data, base + 0x38)
            for r in range(off, off + size, entsize):
                info, = struct.unpack_from("<Q", data, r + 8)
                if info & 0xFFFFFFFF == R_X86_64_PLT32:
                    struct.pack_into("<Q", data, r + 8, (info & ~0xFFFFFFFF) | R_X86_64_PC32)
                    changed += 1
        f.seek(0)
        f.write(data)
    print(f"{path}: {changed} PLT32 relocations rewritten to PC32")


if __name__ == "__main__":
    main(sys.argv[1])
