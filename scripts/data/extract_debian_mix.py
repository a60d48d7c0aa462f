#!/usr/bin/env python3
"""Collects the English text of the Debian packages listed in docs/data.md into one file per
source, documents separated by a line holding only SEP (the tokenize tool's --doc-sep).

usage: extract_debian_mix.py ROOT OUTDIR
  ROOT    a folder into which all the packages were unpacked (dpkg-deb -x PKG.deb ROOT)
  OUTDIR  receives <source>.txt for each source; prints documents and bytes per source

Documents: one per file (kernel .rst, Python doc sources, perl pods, jargon file, novels), one
per dictionary entry (dictd .index/.dict.dz: gcide, foldoc, devil), one per fortune, one per Bible
chapter (verse references stripped), one per 100 WordNet synsets ("words: gloss" lines).
Bytes are kept as they are (gcide has a few invalid UTF-8 bytes; byte-level BPE takes them).
"""
import glob
import gzip
import os
import subprocess
import sys

SEP = b"<|gfwa-document-break|>"
DICTD_DIGITS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    return gzip.decompress(data) if path.endswith(".gz") or path.endswith(".dz") else data


def files(root, pattern):
    found = sorted(p for p in glob.glob(os.path.join(root, pattern), recursive=True) if os.path.isfile(p))
    if not found:
        sys.exit("extract_debian_mix: nothing matches %s under %s" % (pattern, root))
    return found


def one_per_file(root, pattern):
    return [read(p) for p in files(root, pattern)]


def dictd(root, name):
    """Entries of a dictd dictionary, located by its .index (word, offset, length in base64)."""
    base = os.path.join(root, "usr/share/dictd", name)
    text = read(base + ".dict.dz")
    seen, docs = set(), []
    for line in read(base + ".index").splitlines():
        word, off, length = line.split(b"\t")[:3]
        if word.startswith(b"00-database") or word.startswith(b"00database"):
            continue
        span = tuple(sum(DICTD_DIGITS.index(c) * 64 ** i for i, c in enumerate(reversed(v))) for v in (off, length))
        if span not in seen:
            seen.add(span)
            docs.append(text[span[0]:span[0] + span[1]])
    return docs


def fortunes(root):
    docs = []
    for p in files(root, "usr/share/games/fortunes/*"):
        if p.endswith(".dat") or os.path.islink(p):
            continue
        docs += [d for d in read(p).split(b"\n%\n") if d.strip(b"%\n")]
    return docs


def wordnet(root):
    lines = []
    for part in ("noun", "verb", "adj", "adv"):
        for line in read(os.path.join(root, "usr/share/wordnet/data." + part)).splitlines():
            if line.startswith(b"  ") or b" | " not in line:
                continue  # license header
            fields, gloss = line.split(b" | ", 1)
            f = fields.split()
            words = [f[4 + 2 * i].replace(b"_", b" ") for i in range(int(f[3], 16))]
            lines.append(b", ".join(words) + b": " + gloss.strip())
    return [b"\n".join(lines[i:i + 100]) + b"\n" for i in range(0, len(lines), 100)]


def bible(root):
    env = dict(os.environ)
    libs = [os.path.join(root, d) for d in ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib")]
    env["LD_LIBRARY_PATH"] = ":".join(libs + [env.get("LD_LIBRARY_PATH", "")])
    out = subprocess.run([os.path.join(root, "usr/bin/bible"), "-f", "-p", os.path.join(root, "usr/lib"),
                          "gen1:1-rev22:21"], check=True, capture_output=True, env=env).stdout
    chapters, current, key = [], [], None
    for line in out.splitlines():
        ref, _, verse = line.partition(b" ")
        chapter = ref.split(b":")[0]
        if chapter != key and current:
            chapters.append(b"\n".join(current) + b"\n")
            current = []
        key = chapter
        current.append(verse)
    if current:
        chapters.append(b"\n".join(current) + b"\n")
    if len(chapters) != 1189:
        sys.exit("extract_debian_mix: bible printed %d chapters, expected 1189" % len(chapters))
    return chapters


def austen(root):
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(root, "_austen")
    subprocess.run([sys.executable, os.path.join(here, "extract_austen.py"),
                    os.path.join(root, "usr/lib/R/site-library/janeaustenr/data/Rdata"), out],
                   check=True, stdout=subprocess.DEVNULL)
    return one_per_file(out, "*.txt")


SOURCES = {
    "linux-doc": lambda r: one_per_file(r, "usr/share/doc/linux-doc-*/Documentation/**/*.rst.gz"),
    "gcide": lambda r: dictd(r, "gcide"),
    "python-doc": lambda r: one_per_file(r, "usr/share/doc/python3.11/html/_sources/**/*.txt"),
    "perl-doc": lambda r: one_per_file(r, "usr/share/perl/*/pod/*.pod*"),
    "wordnet": wordnet,
    "foldoc": lambda r: dictd(r, "foldoc"),
    "fortunes": fortunes,
    "jargon": lambda r: one_per_file(r, "usr/share/doc/jargon-text/jargon.txt.gz"),
    "devil": lambda r: dictd(r, "devil"),
    "austen": austen,
    "bible-kjv": bible,
}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    root, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    total = 0
    for name, get in SOURCES.items():
        docs = [d if d.endswith(b"\n") else d + b"\n" for d in get(root) if d.strip()]
        if any(SEP in d for d in docs):
            sys.exit("extract_debian_mix: %s contains the separator line" % name)
        data = (b"\n" + SEP + b"\n").join(docs)
        # Write via a temp name so a half-written file never looks complete.
        path = os.path.join(outdir, name + ".txt")
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
        total += len(data)
        print("extract_debian_mix: %-10s %7d documents %10d bytes" % (name, len(docs), len(data)))
    print("extract_debian_mix: %d bytes in %d sources -> %s" % (total, len(SOURCES), outdir))


if __name__ == "__main__":
    main()
