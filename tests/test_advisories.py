"""Advisory formats recognized by content, on real records (tests/fixtures/security and tests/kev_catalog.py,
see NOTICE.md in the fixtures)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ingest.document import LoadedDocument, LoadError
from ingest.loaders import load, load_all
from ingest.loaders.advisories.cvss import base_score, severity_of_score
from ingest.loaders.advisories.model import normalize_id
from ingest.splitter import ChineseRecursiveSplitter
from tests.kev_catalog import kev_catalog, write_kev_catalog

FIXTURES = Path(__file__).parent / "fixtures" / "security"


def text_of(document: LoadedDocument) -> str:
    return document.text


def by_part(documents: list[LoadedDocument]) -> dict[str, LoadedDocument]:
    return {d.part: d for d in documents}


def test_kev_catalog_gives_one_document_per_vulnerability(tmp_path: Path) -> None:
    documents = by_part(load_all(write_kev_catalog(tmp_path / "cisa_kev.json")))
    assert set(documents) == {"CVE-2021-44228", "CVE-2021-45046", "CVE-2017-12615", "CVE-2017-12617", "CVE-2025-48384"}
    log4shell = documents["CVE-2021-44228"]
    assert log4shell.title == "CVE-2021-44228: Apache Log4j2 Remote Code Execution Vulnerability"
    meta = log4shell.metadata
    assert meta["format"] == "cisa-kev" and meta["advisory_id"] == "CVE-2021-44228"
    assert (meta["vendor"], meta["product"], meta["products"]) == ("apache", "log4j2", "Apache Log4j2")
    assert (meta["published"], meta["published_ts"]) == ("2021-12-10", 20211210)
    assert (meta["due_date"], meta["due_date_ts"]) == ("2021-12-24", 20211224)
    assert meta["known_exploited"] is True and meta["ransomware"] == "known"
    assert meta["cwes"] == "CWE-20; CWE-400; CWE-502"
    assert meta["required_action"].startswith("For all affected software assets")
    assert meta["reference"] == "https://nvd.nist.gov/vuln/detail/CVE-2021-44228"
    sections = {s.metadata["section"]: s.text for s in log4shell.sections}
    assert "Known to be exploited in the wild" in sections["Overview"]
    assert "required action is due by 2021-12-24" in sections["Overview"]
    assert "JNDI features do not protect" in sections["Overview"]
    assert sections["Remediation"].startswith("Required action for CVE-2021-44228, due 2021-12-24: For all affected")
    git = documents["CVE-2025-48384"].metadata
    assert git["references"] == 6 and "GHSA-vwqx-4fm8-6qc9" in git["reference"] + text_of(documents["CVE-2025-48384"])


def test_kev_repeated_id_is_one_document(tmp_path: Path) -> None:
    catalog = kev_catalog()
    catalog["vulnerabilities"].append(dict(catalog["vulnerabilities"][0], shortDescription="a later copy"))
    path = tmp_path / "kev.json"
    path.write_text(json.dumps(catalog))
    documents = load_all(path)
    assert len(documents) == 5 and len({d.part for d in documents}) == 5
    with pytest.raises(LoadError, match="5 documents"):
        load(path)  # load() is for files holding one document


def test_csaf_advisory() -> None:
    document = load(FIXTURES / "csaf" / "bsi-2022-0001.json")
    meta = document.metadata
    assert meta["format"] == "csaf" and meta["advisory_id"] == "BSI-2022-0001"
    assert (meta["severity"], meta["severity_rank"], meta["cvss"]) == ("medium", 2, 6.1)
    assert meta["cves"] == "CVE-2022-27193" and meta["cwes"] == "CWE-611"
    assert meta["vendor"] == "csaf tools" and meta["product"] == "cvrf-csaf-converter"
    assert (meta["published"], meta["published_ts"]) == ("2022-03-17", 20220317)
    text = document.text
    assert "CSAF Tools CVRF-CSAF-Converter 1.0.0-alpha" in text  # product ids became product names
    assert "CSAFPID-0001" not in text
    assert "Vulnerability CVE-2022-27193" in [s.metadata["section"] for s in document.sections]


def test_csaf_vex_statuses_are_readable() -> None:
    document = load(FIXTURES / "csaf" / "2022-evd-uc-01-a-001.json")
    assert document.metadata["cves"] == "CVE-2021-44228"
    section = next(s.text for s in document.sections if s.metadata["section"] == "Vulnerability CVE-2021-44228")
    assert "Known affected: Example Company DEF 1.0." in section


def test_osv_record() -> None:
    document = load(FIXTURES / "osv" / "GHSA-jfh8-c2jp-5v3q.json")
    meta = document.metadata
    assert meta["format"] == "osv" and meta["advisory_id"] == "GHSA-jfh8-c2jp-5v3q"
    assert meta["aliases"] == "CVE-2021-44228" and meta["cves"] == "CVE-2021-44228"
    assert (meta["severity"], meta["cvss"]) == ("critical", 10.0)  # the score computed from the vector
    assert meta["product"] == "org.apache.logging.log4j:log4j-core" and meta["ecosystem"] == "Maven"
    assert meta["affected_versions"] == ">= 2.0-beta9, < 2.15.0" and meta["fixed_versions"] == "2.15.0"
    assert meta["cwes"] == "CWE-502; CWE-917"
    assert (meta["published_ts"], meta["modified_ts"]) == (20211210, 20240315)
    assert "upgrade org.apache.logging.log4j:log4j-core to 2.15.0 or later" in document.text


def test_osv_list_gives_a_document_per_record(tmp_path: Path) -> None:
    record = json.loads((FIXTURES / "osv" / "GHSA-jfh8-c2jp-5v3q.json").read_text())
    other = dict(record, id="PYSEC-2021-0001", aliases=[], summary="Another record")
    path = tmp_path / "batch.json"
    path.write_text(json.dumps([record, other]))
    assert [d.part for d in load_all(path)] == ["GHSA-jfh8-c2jp-5v3q", "PYSEC-2021-0001"]


def test_cve_json5_record() -> None:
    document = load(FIXTURES / "cve5" / "CVE-2017-7529.json")
    meta = document.metadata
    assert meta["format"] == "cve-json5" and meta["advisory_id"] == "CVE-2017-7529"
    assert (meta["vendor"], meta["product"]) == ("f5", "nginx")
    assert (meta["severity"], meta["severity_rank"], meta["cvss"]) == ("high", 3, 7.5)
    assert meta["cvss_vector"] == "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"
    assert meta["affected_versions"] == ">= 0.5.6, < 1.13.3" and meta["cwes"] == "CWE-190"
    assert (meta["published"], meta["modified"]) == ("2017-07-13", "2024-08-05")
    assert "Remediation for CVE-2017-7529: Upgrade to nginx 1.13.3" in document.text


def test_rustsec_markdown_with_toml_front_matter() -> None:
    document = load(FIXTURES / "rustsec" / "RUSTSEC-2020-0105.md")
    meta = document.metadata
    assert meta["format"] == "rustsec" and meta["advisory_id"] == "RUSTSEC-2020-0105"
    assert document.title == "RUSTSEC-2020-0105: Update unsound DrainFilter and RString::retain"
    assert meta["aliases"] == "CVE-2020-36212; CVE-2020-36213; GHSA-vq23-5h4f-vwpv; GHSA-wqxc-qrq4-w5v4"
    assert meta["cves"] == "CVE-2020-36212; CVE-2020-36213"
    assert (meta["cvss"], meta["severity"]) == (7.5, "high")  # RustSec gives only the vector
    assert (meta["product"], meta["ecosystem"], meta["fixed_versions"]) == ("abi_stable", "crates.io", ">= 0.9.1")
    assert "```toml" not in document.text and "double drop" in document.text
    withdrawn = load(FIXTURES / "rustsec" / "RUSTSEC-2020-0055.md").metadata
    assert withdrawn["withdrawn"] is True and "severity" not in withdrawn


def test_rubysec_yaml() -> None:
    nokogiri = load(FIXTURES / "rubysec" / "CVE-2015-8806.yml").metadata
    assert nokogiri["format"] == "rubysec" and nokogiri["advisory_id"] == "CVE-2015-8806"
    assert nokogiri["aliases"].startswith("GHSA-7hp2-xwpj-95jq; CVE-2016-1762")
    assert "CVE-2016-4483" in nokogiri["cves"].split("; ")
    assert (nokogiri["cvss"], nokogiri["severity"], nokogiri["product"]) == (7.5, "high", "nokogiri")
    assert nokogiri["published"] == "2016-06-07"  # YAML reads it as a date
    ghsa_only = load(FIXTURES / "rubysec" / "GHSA-7m8w-vg9p-qjr6.yml").metadata
    assert ghsa_only["advisory_id"] == "GHSA-7m8w-vg9p-qjr6" and ghsa_only["severity"] == "medium"
    assert ghsa_only["fixed_versions"] == "~> 8.0.16; ~> 8.1.15; ~> 8.2.9; >= 8.3.5"


def test_vulnerability_writeups_in_english_and_chinese() -> None:
    folder = FIXTURES / "vulhub" / "nginx" / "CVE-2017-7529"
    english, chinese = load(folder / "README.md"), load(folder / "README.zh-cn.md")
    for document, lang in ((english, "en"), (chinese, "zh")):
        meta = document.metadata
        assert meta["format"] == "vuln-writeup" and meta["advisory_id"] == "CVE-2017-7529"
        assert (meta["product"], meta["lang"]) == ("nginx", lang)
        assert "README.zh-cn.md)" not in document.text and "(README.md)" not in document.text  # language links
    assert chinese.title == "Nginx 越界读取缓存漏洞（CVE-2017-7529）"
    assert any(s.metadata.get("section", "").endswith("漏洞复现") for s in chinese.sections)


def test_other_files_keep_their_generic_loaders(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"id": "x", "backup": "nightly"}))
    (tmp_path / "guide.md").write_text("# Install guide\n\nRun make.\n")
    (tmp_path / "settings.yml").write_text("server:\n  port: 8080\n  hosts: [a, b]\n")
    assert load(tmp_path / "config.json").metadata == {"format": "json"}
    assert load(tmp_path / "guide.md").metadata == {"format": "md"}
    settings = load(tmp_path / "settings.yml")
    assert settings.metadata == {"format": "yaml"} and settings.text == "server.port: 8080\nserver.hosts: a, b"


def test_bad_yaml_says_where(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text("gem: x\ntitle: [unclosed\n")
    with pytest.raises(LoadError, match=r"invalid YAML at line \d+"):
        load(path)


def test_every_chunk_carries_scalar_metadata(tmp_path: Path) -> None:
    splitter = ChineseRecursiveSplitter(chunk_size=300, chunk_overlap=40)
    files = [p for p in FIXTURES.rglob("*") if p.is_file() and p.name != "NOTICE.md"]
    files.append(write_kev_catalog(tmp_path / "cisa_kev.json"))
    assert len(files) == 11
    for path in files:
        for document in load_all(path):
            chunks = splitter.split_document(document, "d")
            assert chunks, path
            for chunk in chunks:
                assert all(isinstance(v, str | int | float | bool) for v in chunk.metadata.values()), path
                assert chunk.metadata["advisory_id"] == document.metadata["advisory_id"]


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N", 5.4),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5),
        ("AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5),
        ("AV:N/AC:M/Au:N/C:N/I:P/A:N", 4.3),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", None),
        ("not a vector", None),
    ],
)
def test_cvss_base_scores(vector: str, score: float | None) -> None:
    assert base_score(vector) == score


def test_severity_words_and_ids() -> None:
    assert [severity_of_score(s) for s in (0, 3.9, 4.0, 8.9, 9.0)] == ["none", "low", "medium", "high", "critical"]
    assert severity_of_score(9.5, "2") == "high"
    assert normalize_id("cve-2021-44228") == "CVE-2021-44228"
    assert normalize_id("ghsa-JFH8-c2jp-5v3q") == "GHSA-jfh8-c2jp-5v3q"


def test_detection_is_by_content_not_name(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "rustsec" / "RUSTSEC-2020-0105.md", tmp_path / "notes.md")
    shutil.copy(FIXTURES / "cve5" / "CVE-2017-7529.json", tmp_path / "record.json")
    assert load(tmp_path / "notes.md").metadata["format"] == "rustsec"
    assert load(tmp_path / "record.json").metadata["format"] == "cve-json5"
