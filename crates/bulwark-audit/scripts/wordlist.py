#!/usr/bin/env python3
"""Rebuilds crates/bulwark-audit/data/jwt-secrets.txt.gz, the weak-secret wordlist of the
`jwt-weak-secret` check, from its sources (see data/README.md):

1. data/curated-secrets.txt (known JWT secrets: the guide's, FastAPI's, jwt.io's, ...);
2. the frequency lists of the `zxcvbn` crate (MIT): passwords, US TV and film words, English
   Wikipedia words, female names, male names, surnames, each in rank order;
3. Debian's `wamerican` and `wbritish` word lists (SCOWL, permissive licence).

Deduplicated keeping the first occurrence, so the most likely secrets come first. The gzip is
written without a name or timestamp, so the same sources give the same bytes.

Usage: python3 crates/bulwark-audit/scripts/wordlist.py [--check]
  (needs `apt-get install wamerican wbritish` and the zxcvbn crate in ~/.cargo/registry, e.g.
  after `cargo fetch`; --check compares with the committed file instead of writing it)
"""

import glob
import gzip
import io
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
OUT = os.path.join(DATA, "jwt-secrets.txt.gz")
ZXCVBN_LISTS = ["PASSWORDS", "US_TV_AND_FILM", "ENGLISH_WIKI", "FEMALE_NAMES", "MALE_NAMES", "SURNAMES"]
DICTS = ["/usr/share/dict/american-english", "/usr/share/dict/british-english"]


def curated():
    with open(os.path.join(DATA, "curated-secrets.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                yield line


def zxcvbn():
    cargo_home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    found = sorted(glob.glob(os.path.join(cargo_home, "registry/src/*/zxcvbn-3.1.1/src/frequency_lists.rs")))
    if not found:
        sys.exit("zxcvbn 3.1.1 not in the cargo registry: run `cargo fetch` first")
    source = open(found[0], encoding="utf-8").read()
    for name in ZXCVBN_LISTS:
        m = re.search(r'const %s: &str = "(.*?)";' % name, source, re.S)
        if not m:
            sys.exit("zxcvbn list %s not found" % name)
        yield from m.group(1).split(",")


def dicts():
    for path in DICTS:
        if not os.path.exists(path):
            sys.exit("%s missing: apt-get install wamerican wbritish" % path)
        with open(path, encoding="utf-8") as f:
            for line in f:
                yield line.rstrip("\n")


def build():
    seen = set()
    out = []
    for source in (curated(), zxcvbn(), dicts()):
        for word in source:
            word = word.strip()
            if word and "\n" not in word and word not in seen:
                seen.add(word)
                out.append(word)
    text = ("\n".join(out) + "\n").encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(text)
    return len(out), buf.getvalue()


def main():
    count, data = build()
    if "--check" in sys.argv:
        same = open(OUT, "rb").read() == data
        print("%s: %d entries, %s" % (os.path.relpath(OUT), count, "up to date" if same else "OUT OF DATE"))
        sys.exit(0 if same else 1)
    with open(OUT, "wb") as f:
        f.write(data)
    print("%s: %d entries, %d bytes" % (os.path.relpath(OUT), count, len(data)))


if __name__ == "__main__":
    main()
