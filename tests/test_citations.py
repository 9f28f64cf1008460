from __future__ import annotations

from ingest.chunk import Chunk
from rag.citations import check_citations, join_cited, split_cited_sentences, support
from stores.hit import Hit

SOURCES = [
    Hit(Chunk("a:0", "a", 0, "The Meridian Bridge was completed in 1932 and designed by Agnes Holloway.", 0, 70), 1.0),
    Hit(Chunk("b:0", "b", 0, "员工密码长度不得少于十二位，且必须每九十天更换一次。", 0, 26), 1.0),
]


def test_markers_after_the_full_stop_belong_to_the_sentence() -> None:
    assert split_cited_sentences("It was built in 1932. [1] 密码须每九十天更换。[2]") == [
        ("It was built in 1932.", [1]),
        ("密码须每九十天更换。", [2]),
    ]


def test_markers_beyond_the_sources_are_dropped() -> None:
    check = check_citations("The bridge was completed in 1932 [1][7].", SOURCES, 0.5)
    assert check.dropped_markers == [7]
    assert check.text == "The bridge was completed in 1932 [1]."


def test_unsupported_sentences_are_removed() -> None:
    check = check_citations("Agnes Holloway designed the bridge [1]. It is painted bright purple [1].", SOURCES, 0.5)
    assert check.removed == ["It is painted bright purple."]
    assert check.text == "Agnes Holloway designed the bridge [1]."


def test_unmarked_or_misattributed_sentence_gets_its_real_source() -> None:
    check = check_citations("密码必须每九十天更换一次。The bridge was completed in 1932 [2].", SOURCES, 0.5)
    assert check.text == "密码必须每九十天更换一次[2]。The bridge was completed in 1932 [1]."


def test_support_measures_shared_terms() -> None:
    assert support("Meridian Bridge completed 1932", SOURCES[0].chunk.text) == 1.0
    assert support("The Golden Gate opened in 1937", SOURCES[0].chunk.text) < 0.5
    assert support("密码不得少于十二位", SOURCES[1].chunk.text) > 0.8
    assert support("密码可以永远不换", SOURCES[1].chunk.text) < 0.5


def test_invented_names_and_numbers_are_not_supported() -> None:
    source = SOURCES[0].chunk.text
    assert support("The Meridian Bridge was designed by Agnes Holloway, a British engineer.", source) == 0.0
    assert support("The Meridian Bridge was completed on January 5th, 1932.", source) == 0.0
    assert support("The Meridian Bridge was completed in 1933.", source) == 0.0
    assert support("The Meridian Bridge was completed in 1932.", source) == 1.0
    check = check_citations("Agnes Holloway designed it [1]. It opened in 1940 [1].", SOURCES, 0.5)
    assert check.removed == ["It opened in 1940."]


def test_numbers_inside_chinese_text_are_found() -> None:
    source = "广茂铁路是中国广东省的一条铁路，全长364.6公里，由三茂铁路股份有限公司管理运营。"
    assert support("广茂铁路全长364.6公里。", source) > 0.8
    assert support("广茂铁路全长364公里。", source) == 0.0


def test_questions_are_not_answers() -> None:
    check = check_citations("Who designed the Meridian Bridge [1]? 密码多久更换一次？[2]", SOURCES, 0.5)
    assert check.sentences == [] and len(check.removed) == 2


def test_markers_survive_an_ellipsis_at_the_end() -> None:
    text = join_cited([("巫姑是巫师……", [1]), ("It trails off...", [2])])
    assert text == "巫姑是巫师[1]…… It trails off [2]..."
    assert split_cited_sentences(text) == [("巫姑是巫师……", [1]), ("It trails off...", [2])]
