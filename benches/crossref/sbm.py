#!/usr/bin/env python3
"""Crossref's search-based reference matching (SBM and SBMV), re-implemented over EPMC records.

Reads EPMC publication files (JSONL, gzip or not) and labelled references (JSONL lines
``{"ref_id", "citation", "expected_pmid", optional "style"}``), indexes every record's
bibliographic text in tantivy (BM25), matches every reference with each strategy below and
prints precision, recall and F1 per strategy, overall, per gold file and per style.

Strategies
----------
``sbm``
    Search-based matching as evaluated in CrossRef/reference-matching-evaluation
    (``matching/cr_search_simple_matcher.py``, analysis ``analyses/relevance_threshold``):
    the whole reference string is the query; the top hit is accepted when its relevance score
    divided by the length of the reference string (characters) is at least 0.40, the best
    normalised threshold on Crossref's real reference strings (0.47 was best on their
    artificial set; ``--sbm-threshold`` changes it).
``sbmv``
    Crossref's production reference strategy, ``reference-sbmv`` of the ``crossref-matcher``
    package (1.3.3, ``strategies/reference/sbmv`` + ``sbmv_unstructured``): a DOI written in
    the string that exists in the index is the match; otherwise the string, with DOIs,
    ``arXiv:`` ids, ``[...]`` parts and a trailing ``Retrieved ... http`` removed, is the query;
    the candidates are the top hit plus the following hits (of the first 20 rows, the REST API
    default) while score / length >= 0.40; each candidate is validated against the string and
    the candidate with the highest similarity wins if that similarity is at least 0.34.
``sbmv-orig``
    The package's ``reference-sbmv-orig`` (the earlier SBMV): no DOI step, the raw string as
    the query, the same candidate rule and 0.34, and the older, laxer validation below.

Validation similarity (SBMV): a generalised Jaccard similarity, sum(min) / sum(max) over
weighted features of the candidate and of the string:

* the relevance score: candidate score/100 against max(1, score/100), and score / length
  against max(1, score / length);
* abbreviated page ranges in the string are completed first ("1425-37" -> "1425-1437"); every
  number of the string after its first five characters is a pool (leading zeros dropped in
  production); each number of the candidate's volume, year, issue, pages, article number,
  title and journal title, in that order, weighs 1 on the candidate side and 1 on the string
  side when the pool holds it (and takes it from the pool), else 0; a volume equal to the
  year is counted twice when the string holds it once; a year missing but year +- 1 present
  weighs 0.5;
* the first author's surname (production: or a collective name), ASCII-folded and lower
  case, against the start of the string (the first 5 x its length characters; orig: 3 x):
  fuzzy partial ratio / 100 on the string side, 1 on the candidate side;
* every number left in the pool weighs 0 on the candidate side and 1 on the string side;
* a candidate needs support from enough of: title partial ratio > 0.75 (orig: 0.70), year
  found, first volume number found, surname ratio > 0.7, first page found; production asks
  for 4 of them for a journal article and 3 otherwise; orig for 3. Without enough support
  the similarity is 0.

Thresholds, and where they come from: 0.40 (SBM acceptance and SBMV candidate selection,
score / characters of the string): ``relevance_threshold.md`` of
CrossRef/reference-matching-evaluation ("0.47 for the artificial dataset and 0.40 for the
real dataset") and ``match_config.py`` there (``Matcher(0.4, ...)``), and
``select_candidates`` of crossref-matcher; 0.34 (minimum similarity) and the support counts:
crossref-matcher 1.3.3 (``choose_best(candidates, ref_string, 0.34)``). The Crossref blog
posts by Dominika Tkaczyk ("Matchmaker, matchmaker, make me a match", "Reference matching:
for real this time") describe SBM with a normalised threshold and SBMV.

What is faithful
----------------
* The algorithms: query, normalisation by the string's length in characters, the thresholds,
  candidate selection over the first 20 rows, the validation features and support rules, the
  DOI step of production SBMV.
* What is indexed: Crossref's ``bibliographic`` field (cayenne's
  ``item-bibliographic-content``) is the year, issue, volume, first and last page, ISSNs,
  title, container titles and each contributor as given-name initials plus family name; here
  the same from each EPMC record (pubYear, issue, journalVolume, pageInfo split into first
  and last page with an abbreviated last page completed, journalISSN, title, journalTitle and
  journalISOAbbreviation, authors as initials + LastName, or CollectiveName).
* The query: the REST API removes query syntax characters and the words and/or/not between
  spaces, the analyser splits on non-alphanumerics and lower-cases, and a ``match`` query
  sums one BM25 clause per query token (a repeated word counts again, as Crossref's doubled
  query doubling the score shows in their analysis).

What differs from Crossref's production
---------------------------------------
* The index: Crossref queries Elasticsearch over ~150 M Crossref records (24 shards); here
  tantivy BM25 (k1 1.2, b 0.75) over the EPMC records given. BM25 scores depend on the
  collection (inverse document frequencies over 50 k records are roughly half those over
  150 M) and on the engine (tantivy multiplies by k1 + 1 as Lucene before 8 did; Lucene 8+
  does not), so a normalised score of 0.40 does not mean exactly the same thing here;
  ``--score-scale`` multiplies every score before the thresholds, and the text report prints
  the SBM threshold that would have been best on the set, to show how much that matters.
* Tokenisation: tantivy's simple tokenizer (split on non-alphanumeric characters) and lower
  case, not Lucene's standard (UAX #29) tokenizer: "3.5" or "o'brien" split here.
* Records: EPMC has one publication year (Crossref indexes the issued and the print year), no
  article numbers and no publication type beyond PubMed's; every record with a journal title
  is taken as a journal article. No ISBN step (no books here). The DOI step looks DOIs up in
  the index given, not in all of Crossref.
* ASCII folding by anyascii instead of unidecode, partial ratio by rapidfuzz (which
  crossref-matcher also uses; the 2018 code used fuzzywuzzy).

Counting (the same as ``citeflow eval``, jobs/src/eval.rs): for each reference with expected
publication E (or none) and predicted publication P (or none): TP when P == E; FP when P is
set and P != E (a match for a negative, or a wrong publication for a positive); FN when E is
set and P != E (a positive unmatched or mismatched: a wrong match is both an FP and an FN).
Precision TP / (TP + FP), recall TP / (TP + FN), either 1 when its denominator is 0; F1 their
harmonic mean, 0 when both are 0.

Publication ids follow citeflow: the normalised pmid, else the pmcid (``PMC`` + digits), else
the lower-case DOI; a later record with the same id replaces an earlier one.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

try:
    import tantivy
    from anyascii import anyascii
    from rapidfuzz import fuzz
except ImportError as error:  # pragma: no cover
    sys.exit(f"sbm.py: {error}; install benches/crossref/requirements.txt (run.sh does)")

# Thresholds (see the module docstring for their sources).
SBM_MIN_NORMALISED_SCORE = 0.40
SBMV_MIN_CANDIDATE_NORMALISED_SCORE = 0.40
SBMV_MIN_SIMILARITY = 0.34
ROWS = 20  # the REST API's default page size: the hits SBMV can consider

SYSTEMS = ("sbm", "sbmv", "sbmv-orig")

# ---------------------------------------------------------------------------------------------
# Identifiers, as citeflow normalises them (jobs/src/matching/identifiers.rs).


def normalise_pmid(value: str) -> str | None:
    digits = value.strip().lstrip("0")
    if digits and len(digits) <= 9 and digits.isascii() and digits.isdigit():
        return digits
    return None


def normalise_pmcid(value: str) -> str | None:
    text = value.strip()
    head, dot, version = text.partition(".")
    if dot and version.isascii() and version.isdigit():
        text = head
    for prefix in ("PMC", "pmc"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    digits = normalise_pmid(text)
    return f"PMC{digits}" if digits else None


def normalise_doi(value: str) -> str | None:
    lower = value.strip().lower()
    start = lower.find("10.")
    if start < 0:
        return None
    doi = lower[start:].rstrip(".,;]>\"'")
    while doi.endswith(")") and doi.count(")") > doi.count("("):
        doi = doi[:-1].rstrip(".,;")
    prefix, slash, suffix = doi.partition("/")
    if not slash or not suffix:
        return None
    if len(prefix) < 7 or not all(c.isdigit() or c == "." for c in prefix[3:]):
        return None
    return doi


def _field(record: dict, name: str) -> str | None:
    value = record.get(name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def publication_id(record: dict) -> str | None:
    """None for a record citeflow would reject or cannot key."""
    pmid = _field(record, "pmid")
    pmcid = _field(record, "pmcid")
    if pmid is not None:
        pmid = normalise_pmid(pmid)
        if pmid is None:
            return None
    if pmcid is not None:
        pmcid = normalise_pmcid(pmcid)
        if pmcid is None:
            return None
    doi = _field(record, "doi")
    doi = normalise_doi(doi) if doi else None
    return pmid or pmcid or doi


# ---------------------------------------------------------------------------------------------
# Input.


def open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_records(paths: list[Path]) -> list[tuple[str, dict]]:
    by_id: dict[str, dict] = {}
    for path in paths:
        with open_text(path) as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    sys.exit(f"sbm.py: {path}: line {number}: {error}")
                key = publication_id(record) if isinstance(record, dict) else None
                if key is None:
                    continue
                by_id.pop(key, None)
                by_id[key] = record
    return list(by_id.items())


@dataclass
class Reference:
    ref_id: str
    citation: str
    expected: str | None
    style: str | None
    source: str


# citeflow synth writes no style; its ref ids are synthetic-{positive,negative}-N and
# reference N is rendered in STYLES[N % 6] (jobs/src/synthetic.rs).
SYNTH_STYLES = ("vancouver", "apa", "harvard", "chicago", "policy-report", "nlm-short")
SYNTH_ID = re.compile(r"^synthetic-(?:positive|negative)-(\d+)$")


def read_gold(paths: list[Path]) -> list[Reference]:
    references = []
    for path in paths:
        with open_text(path) as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    expected = row.get("expected_pmid")
                    style = row.get("style")
                    if style is None:
                        synthetic = SYNTH_ID.match(str(row["ref_id"]))
                        if synthetic:
                            style = SYNTH_STYLES[int(synthetic.group(1)) % len(SYNTH_STYLES)]
                    references.append(
                        Reference(str(row["ref_id"]), str(row["citation"]), None if expected is None else str(expected), style, path.name)
                    )
                except (json.JSONDecodeError, KeyError, TypeError) as error:
                    sys.exit(f"sbm.py: {path}: line {number}: not a gold line ({error})")
    return references


# ---------------------------------------------------------------------------------------------
# Records as Crossref would hold them.

NUMBER = re.compile(r"(?<!\d)\d+(?!\d)")
DASHES = "\u002d\u00ad\u2010\u2011\u2012\u2013\u2014\u2015\u207b\u208b\u2212"
NUMBER_RANGE = re.compile(rf"\d+[{DASHES}]\d+")


def complete_last(first: str, last: str) -> str:
    """The last number of a range written abbreviated, in full ("1425", "37" -> "1437")."""
    if len(first) > len(last) and int(first[-len(last):]) <= int(last):
        return first[: len(first) - len(last)] + last
    return last


def split_pages(page_info: str | None) -> tuple[str | None, str | None]:
    if not page_info:
        return None, None
    head = re.split(r"[,;]", page_info, maxsplit=1)[0].strip()
    parts = re.split(rf"\s*[{DASHES}]\s*", head, maxsplit=1)
    first = parts[0].strip() or None
    last = parts[1].strip() if len(parts) > 1 and parts[1].strip() else None
    if first and last and first.isdigit() and last.isdigit():
        last = complete_last(first, last)
    return first, last


def initials(author: dict) -> str:
    forename = _field(author, "ForeName")
    if forename:
        return " ".join(part[0] for part in re.split(r"[\s\-]+", forename) if part)
    given = _field(author, "Initials") or ""
    return " ".join(given)


@dataclass
class Candidate:
    """The fields SBMV reads, under the names of Crossref's work JSON."""

    id: str
    doi: str | None
    title: str | None
    container_title: str | None
    volume: str | None
    issue: str | None
    page: str | None
    year: int | None
    family: str | None  # first author's family name
    collective: str | None  # first author's organisation name
    journal_article: bool


def year_of(record: dict) -> int | None:
    value = record.get("pubYear")
    try:
        return int(str(value).strip()[:4]) if value is not None else None
    except ValueError:
        return None


def candidate_of(key: str, record: dict) -> Candidate:
    first, last = split_pages(_field(record, "pageInfo"))
    page = f"{first}-{last}" if first and last else first
    authors = record.get("authors") or []
    head = authors[0] if authors and isinstance(authors[0], dict) else {}
    journal = _field(record, "journalTitle")
    return Candidate(
        id=key,
        doi=normalise_doi(_field(record, "doi") or "") if _field(record, "doi") else None,
        title=_field(record, "title"),
        container_title=journal,
        volume=_field(record, "journalVolume"),
        issue=_field(record, "issue"),
        page=page,
        year=year_of(record),
        family=_field(head, "LastName"),
        collective=_field(head, "CollectiveName"),
        journal_article=journal is not None or _field(record, "journalISOAbbreviation") is not None,
    )


def bibliographic_content(record: dict) -> str:
    """Crossref's bibliographic field: year, issue, volume, pages, ISSNs, titles, container
    titles, then each contributor as initials and family name."""
    first, last = split_pages(_field(record, "pageInfo"))
    year = year_of(record)
    parts = [
        str(year) if year is not None else None,
        _field(record, "issue"),
        _field(record, "journalVolume"),
        first,
        last,
        _field(record, "journalISSN"),
        _field(record, "title"),
        _field(record, "journalTitle"),
        _field(record, "journalISOAbbreviation"),
    ]
    for author in record.get("authors") or []:
        if not isinstance(author, dict):
            continue
        if _field(author, "LastName"):
            parts.append(f"{initials(author)} {_field(author, 'LastName')}")
        elif _field(author, "CollectiveName"):
            parts.append(_field(author, "CollectiveName"))
    return " ".join(p for p in parts if p)


# ---------------------------------------------------------------------------------------------
# The search index.

QUERY_SYNTAX = re.compile(r"[\\+!{}*\"'.\[\]()\-:;/%^&?=_,]+")
QUERY_OPERATOR = re.compile(r"\s(?:not|or|and)\s", re.IGNORECASE)


def clean_terms(text: str) -> str:
    """The REST API's clean-up of a field query: syntax characters and operator words out."""
    text = QUERY_SYNTAX.sub(" ", text)
    text = text.replace("||", " ").replace("&&", " ")
    return QUERY_OPERATOR.sub(" ", text)


class SearchIndex:
    def __init__(self, records: list[tuple[str, dict]]):
        self.analyzer = (
            tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.remove_long(255))
            .filter(tantivy.Filter.lowercase())
            .build()
        )
        builder = tantivy.SchemaBuilder()
        builder.add_text_field("bibliographic", tokenizer_name="crossref", index_option="freq")
        builder.add_integer_field("row", fast=True)
        self.schema = builder.build()
        self.index = tantivy.Index(self.schema)
        self.index.register_tokenizer("crossref", self.analyzer)
        writer = self.index.writer(256_000_000, 1)
        for row, (_, record) in enumerate(records):
            writer.add_document(tantivy.Document(bibliographic=bibliographic_content(record), row=row))
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()
        self.searcher = self.index.searcher()

    def search(self, text: str, rows: int = ROWS) -> list[tuple[float, int]]:
        tokens = self.analyzer.analyze(clean_terms(text))
        if not tokens:
            return []
        clauses = [(tantivy.Occur.Should, tantivy.Query.term_query(self.schema, "bibliographic", t)) for t in tokens]
        hits = self.searcher.search(tantivy.Query.boolean_query(clauses), rows, count=False).hits
        if not hits:
            return []
        rows_of = self.searcher.fast_field_values("row", [address for _, address in hits])
        return [(float(score), row) for (score, _), row in zip(hits, rows_of)]


# ---------------------------------------------------------------------------------------------
# The strategies.


@dataclass(frozen=True)
class Variant:
    name: str
    clean_query: bool  # strip DOIs etc. before searching (production) or only for validation
    strip_zeros: bool
    author_window: int  # surname compared with the first author_window x len(surname) chars
    collective_author: bool
    title_ratio: float
    support_journal: int
    support_other: int
    doi_step: bool


PRODUCTION = Variant("sbmv", True, True, 5, True, 0.75, 4, 3, True)
ORIGINAL = Variant("sbmv-orig", False, False, 3, False, 0.70, 3, 3, False)

DOI_IN_TEXT = re.compile(r"(?<!\d)10\.\d{4,9}/[-._;()/:a-zA-Z0-9]+")
ARXIV_ID = re.compile(r"(?<![a-zA-Z0-9])arXiv:[\d.]+")
BRACKETED = re.compile(r"\[[^\[\]]*\]")
RETRIEVED = re.compile(r"Retrieved.*http.*")


def strip_identifiers(text: str, retrieved: bool) -> str:
    text = DOI_IN_TEXT.sub("", text)
    text = ARXIV_ID.sub("", text)
    text = BRACKETED.sub("", text)
    if retrieved:
        text = RETRIEVED.sub("", text)
    return text.strip()


def complete_ranges(text: str) -> str:
    def complete(match: re.Match) -> str:
        first, last = NUMBER.findall(match.group(0))
        full = complete_last(first, last)
        return match.group(0) if full == last else f"{first}-{full}"

    return NUMBER_RANGE.sub(complete, text)


def fold(text: str) -> str:
    return anyascii(text).lower()


class Weights:
    """Feature weights of the candidate and of the string, for a generalised Jaccard."""

    def __init__(self):
        self.candidate: dict[str, float] = {}
        self.string: dict[str, float] = {}

    def put(self, key: str, candidate: float, string: float):
        self.candidate[key] = candidate
        self.string[key] = string

    def jaccard(self) -> float:
        low = sum(min(self.candidate[k], self.string[k]) for k in self.candidate)
        high = sum(max(self.candidate[k], self.string[k]) for k in self.candidate)
        return 1.0 if high == 0 else low / high


def similarity(candidate: Candidate, score: float, reference: str, length: int, variant: Variant) -> float:
    """How well `candidate` explains `reference` (see the module docstring); 0 when too few
    of its fields are supported by the string."""
    weights = Weights()
    weights.put("score", score / 100, max(1.0, score / 100))
    weights.put("score_norm", score / length, max(1.0, score / length))
    text = reference if variant.clean_query else strip_identifiers(reference, retrieved=False)
    text = complete_ranges(text)

    def number(value: str) -> str:
        return (value.lstrip("0") or "0") if variant.strip_zeros and len(value) > 1 else value

    pool = [number(n) for n in NUMBER.findall(text[5:])]
    if not pool:
        return 0.0
    year = str(candidate.year) if candidate.year is not None else None
    if candidate.volume is not None and candidate.volume == year and pool.count(candidate.volume) == 1:
        pool.append(candidate.volume)

    def numbers_of(name: str, value: str | None):
        if value is None:
            return
        for i, found in enumerate(NUMBER.findall(value)):
            found = number(found)
            present = found in pool
            if present:
                pool.remove(found)
            weights.put(f"{name}_{i}", 1.0, 1.0 if present else 0.0)

    numbers_of("volume", candidate.volume)
    numbers_of("year", year)
    numbers_of("issue", candidate.issue)
    numbers_of("page", candidate.page)
    numbers_of("title", candidate.title)
    numbers_of("ctitle", candidate.container_title)

    surname = candidate.family or (candidate.collective if variant.collective_author else None)
    if surname:
        folded = fold(surname)
        weights.put("author", 1.0, fuzz.partial_ratio(folded, fold(text)[: variant.author_window * len(folded)]) / 100)

    if year is not None and weights.string.get("year_0") == 0:
        for near in (str(candidate.year - 1), str(candidate.year + 1)):
            if near in pool:
                weights.string["year_0"] = 0.5
                pool.remove(near)
                break

    support = 0
    if candidate.title and fuzz.partial_ratio(fold(candidate.title), fold(text)) / 100 > variant.title_ratio:
        support += 1
    support += weights.string.get("year_0", 0) > 0
    support += weights.string.get("volume_0", 0) == 1
    support += weights.string.get("author", 0) > 0.7
    support += weights.string.get("page_0", 0) == 1
    needed = variant.support_journal if candidate.journal_article else variant.support_other
    if support < needed:
        return 0.0

    for i, _ in enumerate(pool):
        weights.put(f"rest_{i}", 0.0, 1.0)
    return weights.jaccard()


DOI_START = re.compile(r"(?=(10\.\d+/[^ ]+))")


def doi_step(reference: str, by_doi: dict[str, int]) -> int | None:
    """Production's first step: a DOI in the string (or it shorn of trailing punctuation,
    longest first) that the index holds."""
    forms = set()
    for match in DOI_START.finditer(reference):
        text = match.group(1)
        forms.add(text)
        while True:
            shorter = re.sub(r"[^\w]$", "", text)
            if shorter == text:
                break
            forms.add(shorter)
            text = shorter
    for form in sorted(forms, key=len, reverse=True):
        row = by_doi.get(form.lower())
        if row is not None:
            return row
    return None


@dataclass
class Decision:
    row: int | None
    value: float | None  # SBM: normalised score; SBMV: similarity (1 for the DOI step)
    how: str
    top: int | None = None  # SBM: the top hit, accepted or not


class Matcher:
    def __init__(self, records: list[tuple[str, dict]], sbm_threshold: float, score_scale: float):
        self.records = records
        self.candidates = [candidate_of(key, record) for key, record in records]
        self.by_doi = {c.doi: row for row, c in enumerate(self.candidates) if c.doi}
        started = time.monotonic()
        self.index = SearchIndex(records)
        self.index_seconds = time.monotonic() - started
        self.sbm_threshold = sbm_threshold
        self.score_scale = score_scale

    def search(self, text: str) -> list[tuple[float, int]]:
        return [(score * self.score_scale, row) for score, row in self.index.search(text)]

    def match(self, citation: str) -> dict[str, Decision]:
        raw_hits = self.search(citation)
        decisions = {"sbm": self.sbm(citation, raw_hits)}
        decisions["sbmv-orig"] = self.sbmv(citation, raw_hits, ORIGINAL)
        decisions["sbmv"] = self.sbmv(citation, raw_hits, PRODUCTION)
        return decisions

    def sbm(self, citation: str, hits: list[tuple[float, int]]) -> Decision:
        if not hits:
            return Decision(None, None, "no hits")
        score, row = hits[0]
        normalised = score / max(1, len(citation))
        if normalised < self.sbm_threshold:
            return Decision(None, normalised, "below threshold", row)
        return Decision(row, normalised, "search", row)

    def sbmv(self, citation: str, hits: list[tuple[float, int]], variant: Variant) -> Decision:
        if variant.doi_step:
            row = doi_step(citation, self.by_doi)
            if row is not None:
                return Decision(row, 1.0, "doi")
        query = strip_identifiers(citation, retrieved=True) if variant.clean_query else citation
        if query != citation:
            hits = self.search(query)
        if not hits or not query:
            return Decision(None, None, "no hits")
        length = len(query)
        chosen = [hits[0]]
        for score, row in hits[1:]:
            if score / length < SBMV_MIN_CANDIDATE_NORMALISED_SCORE:
                break
            chosen.append((score, row))
        best_row, best = None, -1.0
        for score, row in chosen:
            value = similarity(self.candidates[row], score, query, length, variant)
            if value > best:
                best_row, best = row, value
        if best < SBMV_MIN_SIMILARITY:
            return Decision(None, best, "not validated")
        return Decision(best_row, best, "validated")


# ---------------------------------------------------------------------------------------------
# Scoring, as citeflow eval does.


def ratio(numerator: int, denominator: int) -> float:
    return 1.0 if denominator == 0 else numerator / denominator


class Counts:
    def __init__(self):
        self.tp = self.fp = self.fn = self.references = self.positives = 0

    def add(self, expected: str | None, predicted: str | None):
        self.references += 1
        self.positives += expected is not None
        if predicted is not None and predicted == expected:
            self.tp += 1
            return
        if predicted is not None:
            self.fp += 1
        if expected is not None:
            self.fn += 1

    def summary(self) -> dict:
        precision = ratio(self.tp, self.tp + self.fp)
        recall = ratio(self.tp, self.tp + self.fn)
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        return {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "true_positives": self.tp,
            "false_positives": self.fp,
            "false_negatives": self.fn,
            "references": self.references,
            "positives": self.positives,
        }


def evaluate(references: list[Reference], predictions: list[dict[str, str | None]]) -> dict:
    result = {}
    for system in SYSTEMS:
        overall, by_file, by_style = Counts(), OrderedDict(), OrderedDict()
        for reference, predicted in zip(references, predictions):
            overall.add(reference.expected, predicted[system])
            by_file.setdefault(reference.source, Counts()).add(reference.expected, predicted[system])
            if reference.style is not None:
                by_style.setdefault(reference.style, Counts()).add(reference.expected, predicted[system])
        summary = overall.summary()
        summary["by_file"] = {k: v.summary() for k, v in by_file.items()}
        summary["by_style"] = {k: v.summary() for k, v in by_style.items()}
        result[system] = summary
    return result


def sbm_sweep(references: list[Reference], top: list[tuple[str | None, float | None]]) -> dict:
    """F1 of SBM at each normalised threshold 0.00..2.00: which would have been best here."""
    best = None
    for step in range(0, 201):
        threshold = step / 100
        counts = Counts()
        for reference, (row_id, normalised) in zip(references, top):
            accepted = row_id if normalised is not None and normalised >= threshold else None
            counts.add(reference.expected, accepted)
        summary = counts.summary()
        if best is None or summary["f1"] > best["f1"]:
            best = {"threshold": threshold, **summary}
    return best or {}


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epmc", nargs="+", required=True, type=Path, help="EPMC publication files (JSONL, .gz or not)")
    parser.add_argument("--gold", nargs="+", required=True, type=Path, help="labelled references (JSONL)")
    parser.add_argument("--name", default="set", help="the set's name in the report")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a report")
    parser.add_argument("--predictions", type=Path, help="write each reference's decisions here (JSONL)")
    parser.add_argument("--sbm-threshold", type=float, default=SBM_MIN_NORMALISED_SCORE, help="SBM's minimum score / length (default 0.40)")
    parser.add_argument("--score-scale", type=float, default=1.0, help="multiply every BM25 score by this before the thresholds (default 1)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    records = read_records(args.epmc)
    references = read_gold(args.gold)
    read_seconds = time.monotonic() - started
    matcher = Matcher(records, args.sbm_threshold, args.score_scale)

    started = time.monotonic()
    predictions, top, rows = [], [], []
    for reference in references:
        decisions = matcher.match(reference.citation)
        ids = {s: (None if d.row is None else records[d.row][0]) for s, d in decisions.items()}
        predictions.append(ids)
        sbm = decisions["sbm"]
        top.append((None if sbm.top is None else records[sbm.top][0], sbm.value))
        if args.predictions:
            rows.append(
                {
                    "ref_id": reference.ref_id,
                    "expected_pmid": reference.expected,
                    **{s: {"predicted": ids[s], "value": d.value, "how": d.how} for s, d in decisions.items()},
                }
            )
    match_seconds = time.monotonic() - started

    if args.predictions:
        with open(args.predictions, "w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row) + "\n")

    systems = evaluate(references, predictions)
    report = {
        "set": args.name,
        "publications": len(records),
        "references": len(references),
        "positives": sum(r.expected is not None for r in references),
        "systems": systems,
        "thresholds": {
            "sbm_min_normalised_score": args.sbm_threshold,
            "sbmv_min_candidate_normalised_score": SBMV_MIN_CANDIDATE_NORMALISED_SCORE,
            "sbmv_min_similarity": SBMV_MIN_SIMILARITY,
            "rows": ROWS,
            "score_scale": args.score_scale,
        },
        "sbm_best_threshold_here": sbm_sweep(references, top),
        "seconds": {"read": round(read_seconds, 2), "index": round(matcher.index_seconds, 2), "match": round(match_seconds, 2)},
    }
    if args.json:
        print(json.dumps(report))
        return 0

    print(f"set {args.name}: {report['references']} references ({report['positives']} positives) against {report['publications']} publications")
    print(f"  read {read_seconds:.1f}s, index {matcher.index_seconds:.1f}s, match {match_seconds:.1f}s")
    print(f"  {'system':<10} {'slice':<28} {'P':>7} {'R':>7} {'F1':>7} {'TP':>6} {'FP':>6} {'FN':>6}")

    def line(system: str, label: str, s: dict):
        print(
            f"  {system:<10} {label:<28} {s['precision']:>7.4f} {s['recall']:>7.4f} {s['f1']:>7.4f}"
            f" {s['true_positives']:>6} {s['false_positives']:>6} {s['false_negatives']:>6}"
        )

    for system in SYSTEMS:
        line(system, "all", systems[system])
        for label, s in systems[system]["by_file"].items():
            if len(systems[system]["by_file"]) > 1:
                line(system, f"file {label}", s)
        for label, s in systems[system]["by_style"].items():
            line(system, f"style {label}", s)
    best = report["sbm_best_threshold_here"]
    print(
        f"  SBM at Crossref's threshold {args.sbm_threshold:.2f}: F1 {systems['sbm']['f1']:.4f}; the best threshold on this set"
        f" would be {best['threshold']:.2f} (F1 {best['f1']:.4f}, P {best['precision']:.4f}, R {best['recall']:.4f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
