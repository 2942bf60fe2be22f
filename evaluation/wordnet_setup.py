"""WordNet for METEOR without nltk's downloader: reuse Debian's `wordnet-base` files.

`python -m evaluation.wordnet_setup [TARGET]` copies /usr/share/wordnet into
`TARGET/corpora/wordnet` (default TARGET: `<repo>/.nltk_data`) and writes the `lexnames` file that
nltk reads but Debian does not ship. Files are copied, not linked: nltk resolves symlinks and
refuses data outside the NLTK_DATA roots. Then `export NLTK_DATA=<TARGET>`; METEOR finds WordNet
there through `load_wordnet()`.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from functools import lru_cache
from pathlib import Path

DEBIAN_WORDNET = Path("/usr/share/wordnet")
DEFAULT_TARGET = Path(__file__).resolve().parent.parent / ".nltk_data"
SETUP_HINT = (
    "install Debian's WordNet (`apt-get install -y wordnet-base`), run "
    "`python -m evaluation.wordnet_setup` and `export NLTK_DATA=<repo>/.nltk_data`"
)

_POS = ("noun", "verb", "adj", "adv")
# What nltk's WordNetCorpusReader opens to build the lemma and synset maps METEOR uses.
REQUIRED_FILES = (
    ["lexnames"] + [f"index.{p}" for p in _POS] + [f"data.{p}" for p in _POS] + [f"{p}.exc" for p in _POS]
)
# Copied when present: lemma counts, and sense keys for nltk's stock `nltk.corpus.wordnet`
# (Debian ships index.sense in the separate `wordnet-sense-index` package).
OPTIONAL_FILES = ("cntlist.rev", "index.sense")

# WordNet 3.0's lexicographer files, numbered as in lexnames(5WN): name, syntactic category
# (1 noun, 2 verb, 3 adjective, 4 adverb).
LEXNAMES = (
    [("adj.all", 3), ("adj.pert", 3), ("adv.all", 4)]
    + [
        (f"noun.{name}", 1)
        for name in (
            "Tops act animal artifact attribute body cognition communication event feeling food "
            "group location motive object person phenomenon plant possession process quantity "
            "relation shape state substance time"
        ).split()
    ]
    + [
        (f"verb.{name}", 2)
        for name in (
            "body change cognition communication competition consumption contact creation emotion "
            "motion perception possession social stative weather"
        ).split()
    ]
    + [("adj.ppl", 3)]
)


def install(target: Path = DEFAULT_TARGET, source: Path = DEBIAN_WORDNET) -> Path:
    """Copy WordNet into `target/corpora/wordnet`; returns that directory."""
    missing = [f for f in REQUIRED_FILES if f != "lexnames" and not (source / f).is_file()]
    if missing:
        raise FileNotFoundError(f"WordNet files {missing} not found in {source}: {SETUP_HINT}")
    wordnet_dir = Path(target) / "corpora" / "wordnet"
    wordnet_dir.mkdir(parents=True, exist_ok=True)
    for name in REQUIRED_FILES + list(OPTIONAL_FILES):
        if (source / name).is_file():
            shutil.copyfile(source / name, wordnet_dir / name)
    if not (source / "lexnames").is_file():
        lines = (f"{i:02d}\t{name}\t{category}\n" for i, (name, category) in enumerate(LEXNAMES))
        (wordnet_dir / "lexnames").write_text("".join(lines))
    return wordnet_dir


def find_wordnet_dir() -> Path:
    """The first `corpora/wordnet` with all required files under NLTK_DATA (or nltk.data.path)."""
    import nltk

    # NLTK_DATA first, then where setup.sh installs it (<repo>/.nltk_data), then nltk's own paths.
    roots = [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p] + [str(DEFAULT_TARGET)]
    roots += list(nltk.data.path)
    for root in roots:
        candidate = Path(root) / "corpora" / "wordnet"
        if all((candidate / f).is_file() for f in REQUIRED_FILES):
            if root not in nltk.data.path:
                nltk.data.path.append(root)  # nltk reads corpora only under its data roots
            return candidate
    raise RuntimeError(
        f"WordNet for METEOR not found under NLTK_DATA={os.environ.get('NLTK_DATA')!r}: {SETUP_HINT}"
    )


@lru_cache(maxsize=4)
def _load(wordnet_dir: str):
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class LocalWordNet(WordNetCorpusReader):
        # nltk maps synsets to the "wordnet" corpus on its data path for the multilingual (OMW)
        # functions, which needs index.sense; METEOR never uses that mapping.
        def map_wn(self, version="wordnet"):
            return None

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The multilingual functions are not available")
        return LocalWordNet(wordnet_dir, None)


def load_wordnet():
    """WordNet reader for nltk's METEOR, loaded once per process (about 3 s)."""
    return _load(str(find_wordnet_dir()))


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else DEFAULT_TARGET
    try:
        wordnet_dir = install(target)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"WordNet copied to {wordnet_dir}; export NLTK_DATA={Path(target).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
