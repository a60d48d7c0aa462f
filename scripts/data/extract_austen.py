#!/usr/bin/env python3
"""Writes Jane Austen's six novels as UTF-8 text files, read from Debian's r-cran-janeaustenr
without R.

usage: extract_austen.py DB_PREFIX OUTDIR
  DB_PREFIX  <package root>/usr/lib/R/site-library/janeaustenr/data/Rdata  (.rdx and .rdb)
  OUTDIR     receives emma.txt, mansfieldpark.txt, ... (one line per element of the R vector)

The package keeps its data in an R lazy-load database. Rdata.rdx is a gzip-compressed R
serialization of list(variables = list(<name> = c(offset, length), ...), references, compressed);
each (offset, length) locates a blob in Rdata.rdb: a 4-byte big-endian uncompressed size, then
(for compressed = TRUE) a zlib stream, or a type byte ('Z' zlib, '2' bzip2, 'X' xz) and the
stream; it holds the R serialization of the object, here a character vector of lines. This script
implements the subset of R's XDR serialization format needed to read those objects.
"""
import bz2
import gzip
import lzma
import os
import struct
import sys
import zlib

NOVELS = ("emma", "mansfieldpark", "northangerabbey", "persuasion", "prideprejudice", "sensesensibility")

# SEXP type codes of R's serialize.c
SYMSXP, LISTSXP, CHARSXP, LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP = 1, 2, 9, 10, 13, 14, 16, 19
REFSXP, NILVALUE = 255, 254
NO_PAYLOAD = {254, 253, 252, 251, 250, 248, 247, 242, 241}  # NILVALUE, GLOBALENV, ... BASEENV


class RReader:
    """Reads one XDR ('X\\n') R serialization into Python values: character vectors become lists
    of bytes (None for NA), integer / logical / real vectors lists of numbers, lists Python lists,
    and a 'names' attribute turns a list into a dict."""

    def __init__(self, data):
        self.data, self.pos, self.refs = data, 0, []
        if data[:2] != b"X\n":
            raise ValueError("not an XDR R serialization (starts with %r)" % data[:2])
        self.pos = 2
        version = self.int()
        self.int(), self.int()  # R version that wrote it, oldest R that reads it
        if version == 3:
            self.take(self.int())  # native encoding name
        elif version != 2:
            raise ValueError("unsupported serialization version %d" % version)

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("serialization ends early at byte %d" % self.pos)
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def int(self):
        return struct.unpack(">i", self.take(4))[0]

    def length(self):
        n = self.int()
        if n == -1:  # long vector: two 32-bit halves
            hi, lo = self.int(), self.int()
            n = (hi << 32) | (lo & 0xFFFFFFFF)
        return n

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind in NO_PAYLOAD:
            return None
        if kind == REFSXP:
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == SYMSXP:
            name = self.item()
            self.refs.append(name)
            return name
        if kind == CHARSXP:
            n = self.int()
            return None if n == -1 else self.take(n)
        if kind == LISTSXP:  # pairlist: [attributes] [tag] car cdr, as [(tag, car), ...]
            if has_attr:
                self.item()  # attributes of a pairlist cell: not needed
            tag = self.item() if has_tag else None
            car = self.item()
            return [(tag, car)] + (self.item() or [])
        if kind in (LGLSXP, INTSXP):
            n = self.length()
            value = list(struct.unpack(">%di" % n, self.take(4 * n)))
        elif kind == REALSXP:
            n = self.length()
            value = list(struct.unpack(">%dd" % n, self.take(8 * n)))
        elif kind in (STRSXP, VECSXP):
            value = [self.item() for _ in range(self.length())]
        else:
            raise ValueError("unsupported SEXP type %d at byte %d" % (kind, self.pos - 4))
        if has_attr:
            attrs = {tag: v for tag, v in self.item()}
            names = attrs.get(b"names")
            if names is not None and kind == VECSXP:
                value = {n.decode(): v for n, v in zip(names, value)}
        return value


def blob(rdb, offset, length, compressed):
    raw = rdb[offset:offset + length]
    if len(raw) != length:
        raise ValueError("Rdata.rdb is shorter than the index says")
    size = struct.unpack(">I", raw[:4])[0]
    if compressed in (True, 1):
        data = zlib.decompress(raw[4:])
    else:
        kind, body = raw[4:5], raw[5:]
        data = {b"Z": zlib.decompress, b"2": bz2.decompress, b"X": lzma.decompress, b"0": bytes}[kind](body)
    if len(data) != size:
        raise ValueError("blob at %d: %d bytes, expected %d" % (offset, len(data), size))
    return data


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    prefix, outdir = sys.argv[1], sys.argv[2]
    with open(prefix + ".rdx", "rb") as f:
        index = RReader(gzip.decompress(f.read())).item()
    with open(prefix + ".rdb", "rb") as f:
        rdb = f.read()
    compressed = index["compressed"][0]
    missing = [n for n in NOVELS if n not in index["variables"]]
    if missing:
        sys.exit("extract_austen: %s.rdx has no %s (has %s)" % (prefix, missing, sorted(index["variables"])))
    os.makedirs(outdir, exist_ok=True)
    for name in NOVELS:
        offset, length = index["variables"][name]
        lines = RReader(blob(rdb, offset, length, compressed)).item()
        if not isinstance(lines, list) or not all(isinstance(l, bytes) for l in lines):
            sys.exit("extract_austen: %s is not a character vector without NA" % name)
        text = b"\n".join(lines) + b"\n"
        text.decode("utf-8")  # must be valid UTF-8
        path = os.path.join(outdir, name + ".txt")
        with open(path + ".tmp", "wb") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        print("extract_austen: %-17s %6d lines %8d bytes" % (name, len(lines), len(text)))


if __name__ == "__main__":
    main()
