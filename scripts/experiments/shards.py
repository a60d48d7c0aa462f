"""llm.c token shards from Python (the format of src/data/shard.h and docs/data.md): a header of
256 little-endian int32 (magic 20240520, version 1, token count, UTF-8 byte count low/high words;
0 = unknown), then uint16 tokens. Written to a temporary file, fsync'ed and renamed."""
import array
import glob
import os
import struct
import sys

MAGIC, VERSION, HEADER_INTS = 20240520, 1, 256


def write_shard(path, tokens, utf8_bytes=0):
    data = array.array("H", tokens)  # raises OverflowError on ids outside [0, 65536)
    if sys.byteorder != "little":
        data.byteswap()
    header = [0] * HEADER_INTS
    header[0], header[1], header[2] = MAGIC, VERSION, len(data)
    header[3], header[4] = utf8_bytes & 0xFFFFFFFF, utf8_bytes >> 32
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack(f"<{HEADER_INTS}i", *header))
        f.write(data.tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_header(path):
    """(token count, bytes per token) of a shard, checked like the C++ reader does."""
    with open(path, "rb") as f:
        raw = f.read(HEADER_INTS * 4)
    if len(raw) < HEADER_INTS * 4:
        raise ValueError(f"{path}: shorter than a shard header")
    magic, version, count = struct.unpack("<3i", raw[:12])
    if (magic, version) == (20240520, 1):
        size = 2
    elif (magic, version) == (20240801, 7):
        size = 4
    else:
        raise ValueError(f"{path}: not a token shard (magic {magic}, version {version})")
    return count, size


def split_tokens(pattern):
    """Total tokens of the shards a glob names (0 when none)."""
    return sum(read_header(p)[0] for p in sorted(glob.glob(pattern)))


def max_token_id(pattern):
    """The largest token id in the shards a glob names."""
    best = 0
    for path in sorted(glob.glob(pattern)):
        count, size = read_header(path)
        with open(path, "rb") as f:
            f.seek(HEADER_INTS * 4)
            data = array.array("H" if size == 2 else "I")
            data.frombytes(f.read(count * size))
        if sys.byteorder != "little":
            data.byteswap()
        if data:
            best = max(best, max(data))
    return best
