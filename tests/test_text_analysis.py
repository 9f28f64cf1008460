from __future__ import annotations

from stores.text_analysis import SENTENCE_END, SENTENCE_PUNCTUATION, analyze, identifiers, is_chinese, to_simplified


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


def test_ipv6_addresses_match_in_any_spelling() -> None:
    full = analyze("login from 2001:0DB8:0000:0000:0000:0000:0000:0001 failed")
    assert "2001:db8::1" in full and analyze("who is 2001:db8::1?") == ["2001:db8::1"]
    assert "::1" in analyze("bound to ::1 and [fe80::1ff:fe23:4567:890a]:8443")
    assert "fe80::1ff:fe23:4567:890a" in analyze("[fe80::1ff:fe23:4567:890a]:8443")
    assert {"::ffff:a00:1", "10.0.0.1"} <= set(analyze("mapped ::ffff:10.0.0.1"))


def test_times_are_not_addresses() -> None:
    # "10:42:07" looks like IPv6 to a pattern; it is a time, and "10:42" in a question must find it.
    assert analyze("2026-11-20 10:42:07 ERROR") == ["2026", "11", "20", "10", "42", "07", "error"]
    assert set(analyze("around 10:42")) & set(analyze("10:42:07 disk full")) >= {"10", "42"}


def test_specific_and_loose_identifiers() -> None:
    found = {i.term: i.strong for i in identifiers(
        "CVE-2021-44228 on proxy.example.com from 10.0.0.7 in /etc/passwd: log4j-core, abi_stable, "
        "rails-html-sanitizer, U.S. e.g. 2.15.0"
    )}  # fmt: skip
    assert found == {
        "cve-2021-44228": True,
        "proxy.example.com": True,
        "10.0.0.7": True,
        "/etc/passwd": True,
        "log4j-core": True,
        "abi_stable": True,
        "rails-html-sanitizer": False,
        "u.s": False,
        "e.g": False,
        "2.15.0": False,
    }


def test_advisory_ids_are_one_grammar_vendor_ids_included() -> None:
    assert [i.term for i in identifiers("fixed by RHSA-2021:5186 and USN-5000-1")] == ["rhsa-2021:5186", "usn-5000-1"]
    assert "rhsa-2021:5186" in analyze("RHSA-2021:5186 fixes it") and "rhsa-2021" not in analyze("RHSA-2021:5186")


def test_traditional_and_simplified_chinese_give_the_same_terms() -> None:
    assert to_simplified("吳淞路閘橋") == "吴淞路闸桥"
    assert analyze("吳淞路閘橋是哪一年拆除的？") == analyze("吴淞路闸桥是哪一年拆除的？")
    assert to_simplified("CVE-2021-44228 in English") == "CVE-2021-44228 in English"


def test_sentence_ends_are_defined_once() -> None:
    from ingest.splitter import sentence_spans

    text = "第一句。第二句！Third one. Fourth?"
    pieces = [text[a:b] for a, b in sentence_spans(text)]
    assert pieces == ["第一句。", "第二句！", "Third one.", "Fourth?"]
    assert SENTENCE_END.pattern.startswith(f"[{SENTENCE_PUNCTUATION}]")


def test_html_tags_pasted_in_a_question_are_not_paths() -> None:
    assert [i.term for i in identifiers("Why does </a> close the <h2>title</h2> link?")] == []
    assert [(i.term, i.kind) for i in identifiers("cat /etc/passwd")] == [("/etc/passwd", "path")]
