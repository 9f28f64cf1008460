"""The one text analyzer: scripts, punctuation, identifiers, and keyword-search terms.

Every layer reads text through this module: what a CJK character is, which punctuation ends a
sentence, what an advisory id looks like, and the search terms of a text (jieba for Chinese,
identifiers kept whole). Traditional Chinese is read as simplified (OpenCC ``t2s``), for chunks and
questions alike, so a question in either script finds a passage in the other.

Security questions name things that must match exactly (``CVE-2021-44228``, ``10.0.0.7``,
``2001:db8::1``, a SHA-256, ``/etc/passwd``, ``log4j-core``); a generic tokenizer would shred them,
so they are cut out first and kept as single lowercased terms (IPv6 addresses in canonical form,
so ``2001:0db8:0:0:0:0:0:1`` and ``2001:db8::1`` are one term).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from dataclasses import dataclass
from functools import lru_cache

import jieba
import opencc
import Stemmer

jieba.setLogLevel(logging.WARNING)

# CJK ideographs: the unified block, extension A and the compatibility block.
CJK_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# CJK punctuation and full-width forms: neither a letter nor a space, but Chinese all the same.
CJK_PUNCTUATION = "\u3000-\u303f\uff00-\uffef"
CJK_RUN = re.compile(f"[{CJK_CHARS}]+")

# Punctuation that ends a sentence (the ASCII full stop only before a space, see SENTENCE_END), and the
# closing quotes and brackets that stay with the sentence they close.
SENTENCE_PUNCTUATION = "。！？；!?;…"
CLOSING_QUOTES = "”’\"'）)」』】"
CJK_CLOSING = "。！？；，、：」』》）】"
SENTENCE_END = re.compile(
    rf"[{SENTENCE_PUNCTUATION}]+[{CLOSING_QUOTES}]*|\.(?=\s|$)|\n[ \t\u3000]*\n\s*|\n(?=[ \t]*(?:[#>|*•·-]|\d+[.)、]))"
    r"|(?:^|(?<=\n))[ \t]*#{1,6}[ \t][^\n]*\n"  # a Markdown heading is a line of its own
)

# Advisory ids, the one grammar: the prefixes, and each id matched whole (a vendor's ``RHSA-2021:5186``
# with its colon, a GitHub id with its lower-case tail).
ADVISORY_PREFIXES = (
    "CVE", "CAN", "GHSA", "RUSTSEC", "PYSEC", "GO", "OSV", "CNVD", "CNNVD", "RHSA", "RHBA", "RHEA", "DSA", "DLA",
    "USN", "BSI", "CWE",
)
ADVISORY_ID = re.compile(
    r"""
        (?:CVE|CAN)-\d{4}-\d{4,}                   # CVE ids
      | GHSA(?:-[23456789cfghjmpqrvwx]{4}){3}       # GitHub advisories
      | RUSTSEC-\d{4}-\d{4}                        # RustSec
      | (?:RHSA|RHBA|RHEA)-\d{4}:\d+               # Red Hat errata
      | (?:DSA|DLA|USN)-\d+(?:-\d+)?               # Debian and Ubuntu notices
      | (?:CWE|CNVD|CNNVD|OSV|PYSEC|GO|BSI)-[\w-]*\d[\w-]*  # other advisory ids
    """,
    re.VERBOSE | re.IGNORECASE,
)

IDENTIFIER_PATTERN = re.compile(
    rf"""
    (?P<advisory>{ADVISORY_ID.pattern})            # advisory ids, matched whole
  | (?P<hash>\b[0-9a-f]{{32,128}}\b)                # MD5 … SHA-512
  | (?P<ipv6>(?<![\w:.])(?=[0-9a-f:]*:[0-9a-f:]*:)[0-9a-f:]{{2,45}}(?:(?<=:)(?:\d{{1,3}}\.){{3}}\d{{1,3}})?(?![\w:.]))
                                                  # IPv6, full or compressed ("::1"); checked in code
  | (?P<ip>\b(?:\d{{1,3}}\.){{3}}\d{{1,3}})(?::\d+)?\b    # IPv4, optional port
  | (?P<path>(?<!<)(?:[A-Za-z]:\\|~?/)[\w.\-/\\]*[A-Za-z][\w.\-/\\]*)  # file paths (with a letter: not "/0"; not </a>)
  | (?P<host>\b[\w-]+(?:\.[\w-]+)+@?[\w.-]*\b)     # host names, dotted names, versions, e-mails
  | (?P<name>\b[A-Za-z][\w]*(?:[-_][\w]+)+\b)      # package and identifier names: log4j-core, blk_123
    """,
    re.VERBOSE | re.IGNORECASE,
)
# Identifiers specific enough that a passage holding one is about it (see Identifier.strong).
STRONG_KINDS = frozenset({"advisory", "hash", "ipv6", "ip", "path", "host"})
_HOST_LABEL = re.compile(r"[a-z][a-z0-9-]*[a-z0-9]")


@dataclass(frozen=True, slots=True)
class Identifier:
    """An identifier found in text: ``term`` is the keyword-index term (lower case, IPv6 canonical).

    ``terms`` are all the index terms it gives (an address with a port also gives the bare address;
    a package name also its parts). ``strong`` identifiers (advisory ids, hashes, IP addresses,
    paths, host names, names with a digit or underscore like ``log4j-core``) name one thing; weak
    ones (``rails-html-sanitizer``, ``2.15.0``) may be ordinary words or numbers.
    """

    term: str
    kind: str
    terms: tuple[str, ...]

    @property
    def strong(self) -> bool:
        if self.kind == "host":
            return _looks_like_host(self.term)
        return self.kind in STRONG_KINDS or (self.kind == "name" and any(c.isdigit() or c == "_" for c in self.term))


def identifiers(text: str) -> list[Identifier]:
    """The identifiers of ``text`` in order (see :class:`Identifier`)."""
    found = (_identifier(match) for match in IDENTIFIER_PATTERN.finditer(text))
    return [identifier for identifier in found if identifier is not None]


def _identifier(match: re.Match[str]) -> Identifier | None:
    kind = match.lastgroup or "host"
    term = match.group().lower().rstrip(".")
    if kind == "ipv6":
        return _ipv6(term)
    if kind == "ip":
        bare = match.group("ip")
        return Identifier(term, kind, (term, bare) if bare != term else (term,))
    if kind in ("advisory", "hash"):
        return Identifier(term, kind, (term,))
    # Parts let "log4j" find "log4j-core"; numeric parts ("2021") would only add noise.
    parts = (p for p in WORD.findall(term) if not p.isdigit() and p != term)
    return Identifier(term, kind, (term, *(p for p in parts if len(p) > 1 and p not in STOPWORDS)))


def _ipv6(text: str) -> Identifier | None:
    """An IPv6 address in its canonical compressed form, so every spelling matches; ``None`` if it is none.

    ``0:0:0:0:0:0:0:0:2181`` (address and port, as Java logs write it) gives the address; a time such
    as ``16:49:06`` is no address at all.
    """
    for candidate in (text, text.rpartition(":")[0]):
        try:
            address = ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        canonical = address.compressed
        mapped = (str(address.ipv4_mapped),) if address.ipv4_mapped else ()
        return Identifier(canonical, "ipv6", (canonical, *mapped))
    return None


def _looks_like_host(term: str) -> bool:
    """``proxy.cse.cuhk.edu.hk`` or ``node.js`` but not ``u.s``, ``e.g`` or a version like ``2.15.0``."""
    labels = term.split("@")[-1].split(".")
    return len(labels) >= 2 and bool(_HOST_LABEL.fullmatch(labels[-1])) and any(len(label) > 1 for label in labels[:-1])


WORD = re.compile(r"[^\W_]+", re.UNICODE)
CJK_CHAR = re.compile(f"[{CJK_CHARS}]")

# Words that carry no topic. Chinese question words matter: without them "是什么" would make every
# passage look relevant.
STOPWORDS = frozenset(
    """
    a an and are as at be been but by can could did do does for from had has have how i if in into is it
    its me my no not of on or our s so such than that the their them then there these they this those to
    was we were what when where which who whom why will with would you your about tell say said
    的 了 是 在 和 与 及 或 也 都 就 而 并 被 把 对 于 从 为 以 之 其 这 那 这个 那个 这些 那些 有 没有
    什么 哪 哪个 哪些 哪里 哪儿 谁 吗 呢 吧 啊 么 怎么 怎样 如何 为什么 多少 几 是否 请问 请 一个
    需要 要 做 应该 应当 可以 能 能够 会 得 该
    """.split()  # noqa: SIM905 - a word list reads better as text
)


# The words that ask rather than say ("哪一年", "叫什么名字"): no passage holds them, so a question's keyword
# search and its coverage leave them out (jieba keeps them as words of their own: "几年", "名字").
QUESTION_PHRASES = re.compile(
    r"哪一年|哪年|哪一天|哪天|几年|多少年|多长时间|多久|什么时候|何时|叫什么名字|什么名字|多少|几"
)


def without_question_phrases(question: str) -> str:
    """``question`` without its asking phrases, for keyword search; the question itself if nothing else is left."""
    stripped = QUESTION_PHRASES.sub(" ", to_simplified(question))
    return stripped if stripped.strip(" ？?。") else question


def is_chinese(text: str, threshold: float = 0.2) -> bool:
    """True when at least ``threshold`` of the letters are CJK ideographs."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    cjk = sum(1 for c in letters if CJK_CHAR.match(c))
    return cjk / len(letters) >= threshold


def language_of(text: str) -> str:
    """The language rag-kb prompts and retrieves in for ``text``: "zh" for Chinese, else "en"."""
    return "zh" if is_chinese(text) else "en"


# Runs of digits and hex words with a digit: the values a log template or a boilerplate paragraph is
# filled with (times, ids, addresses, CVE numbers), as opposed to the words that say what happened.
VARIABLE_PATTERN = re.compile(r"-?(?:0x[0-9a-f]+|\b[0-9a-f]*\d[0-9a-f]*\b|\d+)", re.IGNORECASE)


def template_key(text: str) -> str:
    """A short key shared by texts that differ only in numbers and hex ids.

    ``PacketResponder 1 for block blk_388 terminating`` and ``PacketResponder 0 for block blk_-695
    terminating`` get one key, so do two advisories' "Required action for CVE-…, due …" paragraphs;
    texts that differ in any word do not.

    >>> template_key("took 12 ms") == template_key("took 7 ms") != template_key("took 7 s")
    True
    """
    masked = VARIABLE_PATTERN.sub("#", text)
    return hashlib.blake2b(masked.encode("utf-8"), digest_size=12).hexdigest()


def analyze(text: str) -> list[str]:
    """Search terms of ``text``: identifiers whole (plus their word parts), jieba words, lowercased words."""
    terms: list[str] = []
    position = 0
    for match in IDENTIFIER_PATTERN.finditer(text):
        identifier = _identifier(match)
        if identifier is None:  # looked like an IPv6 address but is not one ("16:49:06"): plain text
            continue
        terms.extend(_plain_terms(text[position : match.start()]))
        terms.extend(identifier.terms)
        position = match.end()
    terms.extend(_plain_terms(text[position:]))
    return terms


def _plain_terms(text: str) -> list[str]:
    terms: list[str] = []
    position = 0
    for run in CJK_RUN.finditer(text):
        terms.extend(_latin_terms(text[position : run.start()]))
        terms.extend(_chinese_terms(run.group()))
        position = run.end()
    terms.extend(_latin_terms(text[position:]))
    return terms


def _latin_terms(text: str) -> list[str]:
    # Stemmed, so "carries" finds "carry"; identifiers were cut out before and stay exact.
    words = [w for w in (m.lower() for m in WORD.findall(text)) if w not in STOPWORDS]
    return _STEMMER.stemWords(words) if words else words


_STEMMER = Stemmer.Stemmer("english")


def _chinese_terms(run: str) -> list[str]:
    return [w for w in _cut_for_search(to_simplified(run)) if w not in STOPWORDS]


_T2S = opencc.OpenCC("t2s")


@lru_cache(maxsize=65536)
def to_simplified(text: str) -> str:
    """``text`` with traditional Chinese characters as simplified ones (OpenCC ``t2s``); other text unchanged.

    >>> to_simplified("吳淞路閘橋")
    '吴淞路闸桥'
    """
    return _T2S.convert(text) if CJK_RUN.search(text) else text


@lru_cache(maxsize=65536)
def _cut_for_search(run: str) -> tuple[str, ...]:
    # Search mode also emits the sub-words of long words (中华人民共和国 → 中华, 人民, 共和国, ...),
    # so a question need not use the document's exact compound.
    return tuple(jieba.cut_for_search(run))
