"""What kind of answer a question asks for: a year, a number, a length of time, a name, a place, a list.

The extractive generator quotes the sentence that holds an answer of that kind, led by the short
answer (:func:`short_answers`); the answerer looks deeper for list questions.

>>> question_kind("吴淞路闸桥是哪一年拆除的？"), question_kind("合约最长可以签几年？")
('year', 'duration')
>>> question_kind("Which Apache Struts vulnerabilities are known to be exploited?")
'list'
"""

from __future__ import annotations

import re

_NOT_VERB = r"(?!(?:was|is|has|does|this|its|us)\b)"
_PLURAL = r"\w+(?:ies|[^s's]s)\b"
_PLURAL_AFTER_WHICH = (
    rf"\bwhich\s+{_NOT_VERB}{_PLURAL}"  # "which advisories …"
    rf"|\bwhich\s+(?:[\w.-]+\s+){{0,7}}{_PLURAL}\s+(?:are|were|have|had|do|did|exist|affect)\b"  # "which X CVEs are"
)


def _either(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), re.IGNORECASE)


# Checked in order: the first that matches names the kind.
KIND_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("list", _either(r"^\s*(?:list|name all|enumerate)\b", _PLURAL_AFTER_WHICH, "哪些|有哪|列出|列举")),
    (
        "duration",
        _either(
            r"\bhow long\b", r"\bhow many (?:years|months|weeks|days|hours|minutes)\b",
            "多久|多长时间|几年|几个月|几天|多少年|多少天",
        ),
    ),
    ("year", _either(r"\b(?:what|which|in which) year\b", "哪一?年|何年")),
    ("date", _either(r"\bwhen\b", r"\b(?:what|which) (?:date|day)\b", "什么时候|何时|哪天|哪一天|几月|日期")),
    (
        "number",
        _either(
            r"\bhow (?:many|much|far|big|large|tall|high|old|fast)\b", r"\bwhat (?:percentage|number|amount)\b",
            "多少|几|多大|多高|多远|多重|多快|百分之",
        ),
    ),
    ("who", _either(r"\bwho(?:m|se)?\b", "谁|什么人|哪位|叫什么名字|原名|名叫")),
    ("where", _either(r"\bwhere\b", "哪里|哪儿|在哪|何处|什么地方|哪个(?:国家|城市|省)")),
)

YEAR = re.compile(r"(?<!\d)(?:1[5-9]\d\d|20\d\d)(?!\d)(?:年)?")
MONTH = (
    r"January|February|March|April|May|June|July|August|September|October|November|December|"
    r"Jan\.?|Feb\.?|Mar\.?|Apr\.?|Jun\.?|Jul\.?|Aug\.?|Sept?\.?|Oct\.?|Nov\.?|Dec\.?"
)
DATE = _either(
    rf"(?:\d{{1,2}} )?(?:{MONTH}) \d{{1,2}}(?:, \d{{4}})?",
    r"\d{4}年\d{1,2}月(?:\d{1,2}[日号])?",
    r"\d{1,2}月\d{1,2}[日号]",
)
CHINESE_NUMERAL = "零一二三四五六七八九十百千万亿两半"
TIME_UNIT = r"(?:years?|months?|weeks?|days?|hours?|minutes?|seconds?|年|个月|月|周|星期|天|日|小时|分钟|秒)"
UNIT = (
    rf"(?:million|billion|thousand|trillion)\b|%|percent|per cent|万|亿|(?:km|kg|mph|ms|GB|MB|m|g)\b|{TIME_UNIT}"
    r"|公里|千米|公斤|[个名人座条项次倍米元岁吨]"
)
NUMBER = re.compile(rf"[$€£¥]?(?:\d[\d,.]*\d|\d|[{CHINESE_NUMERAL}]+)\s?(?:{UNIT})?", re.IGNORECASE)
SPELLED = r"one|two|three|four|five|six|seven|eight|nine|ten|a few"
DURATION = re.compile(rf"(?:\d[\d,.]*|[{CHINESE_NUMERAL}]+|(?:{SPELLED}))\s?{TIME_UNIT}", re.IGNORECASE)
NAME = re.compile(r"\b[A-Z][a-z]+(?:\s+(?:[A-Z]\.|[A-Z][a-z]+))+")
# Titles before a name ("Appeals Judge Ketanji Brown Jackson"): the name is what follows the last one.
TITLE = re.compile(r".*\b(?:Judge|Justice|President|Officer|Senator|Governor|Secretary|Minister|Dr|Mr|Mrs|Ms)\s+")
PLACE = re.compile(r"\b(?:in|at|near|from)\s+((?:the\s+)?[A-Z][\w-]+(?:\s+[A-Z][\w-]+)*)")

def question_kind(question: str) -> str:
    """One of ``list``, ``duration``, ``year``, ``date``, ``number``, ``who``, ``where``, or ``other``."""
    for kind, pattern in KIND_PATTERNS:
        if pattern.search(question):
            return kind
    return "other"


def is_list_question(question: str) -> bool:
    return question_kind(question) == "list"


def short_answers(kind: str, sentence: str) -> list[tuple[int, str]]:
    """The answers of ``kind`` that ``sentence`` holds, as (position, text); none for kinds without a short form."""
    if kind == "year":
        found = [(m.start(), m.group()) for m in YEAR.finditer(sentence)]
    elif kind == "date":  # a date, else a year
        found = [(m.start(), m.group()) for m in DATE.finditer(sentence)]
        found += [(m.start(), m.group()) for m in YEAR.finditer(sentence) if not _inside(m.start(), found)]
        found += [(m.start(), m.group()) for m in YEAR.finditer(sentence) if not _inside(m.start(), found)]
    elif kind == "duration":
        found = [(m.start(), m.group()) for m in DURATION.finditer(sentence)]
    elif kind == "number":
        found = [(m.start(), m.group().strip()) for m in NUMBER.finditer(sentence) if _is_number(m.group())]
    elif kind == "who":
        found = [(m.start(), TITLE.sub("", m.group())) for m in NAME.finditer(sentence)]
    elif kind == "where":
        found = [(m.start(1), m.group(1)) for m in PLACE.finditer(sentence)]
    else:
        found = []
    return sorted(found)


def _inside(position: int, spans: list[tuple[int, str]]) -> bool:
    return any(start <= position < start + len(text) for start, text in spans)


def _is_number(text: str) -> bool:
    # A lone Chinese numeral inside a word (一般, 统一) is no number; one with a unit (六年, 三座) is.
    digits = any(c.isdigit() for c in text)
    return digits or (len(text.strip()) >= 2 and text.strip()[-1] not in CHINESE_NUMERAL)
