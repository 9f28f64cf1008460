from __future__ import annotations

from stores.text_analysis import analyze, is_chinese


def test_identifiers_stay_whole() -> None:
    terms = analyze(
        "Is CVE-2021-44228 seen from 10.0.0.7:8080 in /var/log/auth.log? sha d41d8cd98f00b204e9800998ecf8427e"
    )
    for whole in [
        "cve-2021-44228",
        "10.0.0.7",
        "10.0.0.7:8080",
        "/var/log/auth.log",
        "d41d8cd98f00b204e9800998ecf8427e",
    ]:
        assert whole in terms
    assert "2021" not in terms and "44228" not in terms


def test_package_names_also_give_their_parts() -> None:
    terms = analyze("upgrade log4j-core now")
    assert "log4j-core" in terms and "log4j" in terms


def test_chinese_is_segmented_and_question_words_dropped() -> None:
    terms = analyze("员工密码的长度是什么？")
    assert "密码" in terms and "长度" in terms
    assert "什么" not in terms and "的" not in terms


def test_english_lowercased_without_stopwords() -> None:
    assert analyze("What carries The Meridian Bridges?") == ["carri", "meridian", "bridg"]
    assert analyze("The bridge carry") == ["bridg", "carri"]


def test_language_detection() -> None:
    assert is_chinese("漏洞 CVE-2017-12615 的利用条件是什么？")
    assert not is_chinese("What did the president say?")
