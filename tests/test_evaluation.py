"""`rag eval`: the metric functions on hand-computed cases, the runner, and the command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rag.cli
from rag.engine import Engine
from rag.evaluation import DatasetError, Evaluator, corpus_label, read_corpus, read_queries
from rag.evaluation.metrics import (
    CitationCounts,
    answer_scores,
    citation_scores,
    cmrc_exact_match,
    cmrc_f1,
    cmrc_segments,
    contains_answer,
    count_citations,
    passage_ranking,
    percentiles,
    reciprocal_rank,
    refusal_curve,
    refusal_shares,
    retrieval_scores,
    squad_exact_match,
    squad_f1,
    squad_normalize,
    without_markers,
)
from rag.settings import Settings
from stores import Embedder
from tests.test_conversation import write_bridge_and_struts

# Retrieval


def test_a_chunk_counts_for_its_passage() -> None:
    assert passage_ranking(["x", "x", "g", "y", "g"]) == ["x", "g", "y"]


def test_hit_at_k_and_mrr_over_passages_of_multi_chunk_rankings() -> None:
    chunks = [
        ["x", "x", "g1", "y"],  # g1 is the third chunk but the second passage: rank 2
        ["g2"],  # rank 1
        [f"p{i}" for i in range(10)] + ["g3"],  # rank 11: past every cut-off
        ["a", "b", "c", "d", "e", "g4"],  # rank 6
    ]
    rankings = [passage_ranking(c) for c in chunks]
    scores = retrieval_scores(rankings, ["g1", "g2", "g3", "g4"])
    assert scores == pytest.approx(
        {"hit@1": 0.25, "hit@3": 0.5, "hit@5": 0.5, "hit@10": 0.75, "mrr@10": (1 / 2 + 1 + 0 + 1 / 6) / 4}
    )
    assert reciprocal_rank(rankings[0], "g1") == 0.5
    assert reciprocal_rank(rankings[2], "g3") == 0.0


def test_retrieval_scores_without_questions_have_no_value() -> None:
    assert set(retrieval_scores([], []).values()) == {None}
    with pytest.raises(ValueError):
        retrieval_scores([["a"]], [])


def test_contains_answer_ignores_case_width_and_spacing() -> None:
    assert contains_answer(["Economy  class is REQUIRED."], ["business", "economy class"])
    assert contains_answer(["隶属于ＪＲ东日本。"], ["JR东日本"])  # full-width letters fold to ASCII
    assert not contains_answer(["Hotels are reimbursed."], ["economy"])
    assert not contains_answer(["anything"], [""])  # an empty reference answer is not found everywhere


# Refusal


def test_refusal_shares() -> None:
    refused = [True, False, True, False, True]
    answerable = [False, True, True, False, False]
    not_in_kb = [True, False, False, False, True]
    assert refusal_shares(refused, answerable, not_in_kb) == pytest.approx(
        {"refused_unanswerable": 2 / 3, "refused_not_in_kb": 1.0, "answered_answerable": 0.5}
    )
    assert refusal_shares([True], [False], [False])["refused_not_in_kb"] is None


def test_refusal_curve_moves_the_threshold_over_recorded_relevance() -> None:
    scores = [0.9, 0.4, None, 0.6]  # None: nothing retrieved, refused at every threshold
    answerable = [True, True, False, False]
    not_in_kb = [False, False, True, False]
    curve = refusal_curve(scores, answerable, not_in_kb, thresholds=(0.0, 0.5, 0.7))
    assert curve == [
        {"threshold": 0.0, "refused_unanswerable": 0.5, "refused_not_in_kb": 1.0, "answered_answerable": 1.0},
        {"threshold": 0.5, "refused_unanswerable": 0.5, "refused_not_in_kb": 1.0, "answered_answerable": 0.5},
        {"threshold": 0.7, "refused_unanswerable": 1.0, "refused_not_in_kb": 1.0, "answered_answerable": 0.5},
    ]


# Citations


def test_citation_validity_and_support() -> None:
    sources = ["Economy class is required for flights.", "Hotels are reimbursed up to 180 euros per night."]
    text = "Economy class is required [1]. Hotels cost 180 euros [3]. Bananas are yellow [2]."
    counts = count_citations(text, sources, threshold=0.5)
    # [3] points at nothing; the hotel sentence cites only it, the banana one cites a source without bananas.
    assert counts == CitationCounts(markers=3, valid=2, sentences=3, supported=1)
    assert citation_scores(counts) == pytest.approx({"valid": 2 / 3, "supported": 1 / 3})
    assert citation_scores(CitationCounts()) == {"valid": None, "supported": None}
    assert counts + counts == CitationCounts(6, 4, 6, 2)
    assert without_markers("Economy class [1][2].") == "Economy class."


# Answer text


def test_squad_exact_match_and_f1() -> None:
    assert squad_normalize("The  Normans, of France!") == "normans of france"
    assert squad_exact_match("The France.", ["france"]) == 1.0
    assert squad_exact_match("in France", ["France"]) == 0.0
    # "paris france" against "france": P 1/2, R 1 -> 2/3; against "in paris": P 1/2, R 1/2 -> 1/2; best 2/3.
    assert squad_f1("Paris, France", ["France", "in Paris"]) == pytest.approx(2 / 3)
    assert squad_f1("", ["France"]) == 0.0
    assert squad_f1("the", ["a"]) == 1.0  # both normalize to nothing: SQuAD counts that as a match


def test_cmrc_segmentation_is_per_chinese_character_with_words_for_the_rest() -> None:
    assert cmrc_segments("锣鼓点，JR东日本 2019年") == ["锣", "鼓", "点", "jr", "东", "日", "本", "2019", "年"]


def test_cmrc_f1_is_character_level_over_the_longest_common_run() -> None:
    # 大陆传统器乐 vs 传统器乐及戏曲: common run 传统器乐 (4): P 4/6, R 4/7 -> 8/13; vs 大陆: P 2/6, R 1 -> 1/2.
    assert cmrc_f1("大陆传统器乐", ["传统器乐及戏曲", "大陆"]) == pytest.approx(8 / 13)
    # A run, not a subsequence: 甲乙丙丁 vs 甲丙丁 share 丙丁 (2): P 2/4, R 2/3 -> 4/7.
    assert cmrc_f1("甲乙丙丁", ["甲丙丁"]) == pytest.approx(4 / 7)
    assert cmrc_f1("，。", ["锣鼓点"]) == 0.0


def test_cmrc_exact_match_ignores_punctuation() -> None:
    assert cmrc_exact_match("《锣鼓点》。", ["锣鼓点"]) == 1.0
    assert cmrc_exact_match("锣鼓", ["锣鼓点", "打击乐"]) == 0.0


def test_answer_scores_follow_the_language() -> None:
    assert answer_scores("France", ["france"], "en") == (1.0, 1.0)
    em, f1 = answer_scores("大陆传统器乐", ["传统器乐及戏曲"], "zh")
    assert em == 0.0 and f1 == pytest.approx(8 / 13)


# Latency


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentiles([40, 10, 30, 20]) == {"p50": 25.0, "p95": 38.5}
    assert percentiles([]) is None


# Data files


def test_bad_data_files_are_reported_with_their_line(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"pid": "a", "text": "x"}\n{"pid": "a", "text": "y"}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"corpus\.jsonl:2: pid 'a' appears twice"):
        read_corpus(corpus)
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"question": "Why?", "answers": [], "answerable": true}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match="needs answers or items"):
        read_queries(queries)
    queries.write_text("not json\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"queries\.jsonl:1: not JSON"):
        read_queries(queries)


# The runner and the command, on a corpus of our own

LONG_BRIDGE = (
    "The Meridian Bridge was completed in 1932 after four years of construction. " * 3
    + "It spans the Calder River and was designed by the engineer Agnes Holloway. " * 3
    + "The bridge carries two railway tracks and a footpath over the river valley. " * 3
)
PASSAGES = [
    {"pid": "bridge", "title": "Meridian Bridge", "text": LONG_BRIDGE, "lang": "en"},
    {
        "pid": "travel",
        "title": "Travel policy",
        "text": "Economy class is required for flights under six hours. Hotels are reimbursed up to 180 euros.",
        "lang": "en",
    },
    {
        "pid": "password",
        "title": "信息安全制度",
        "text": "员工密码长度不得少于十二位，且必须每九十天更换一次。离开工位时必须锁定电脑屏幕。",
        "lang": "zh",
    },
]
QUERIES = [
    {"qid": "1", "question": "Who designed the Meridian Bridge?", "answers": ["Agnes Holloway"], "gold_pid": "bridge",
     "answerable": True},
    {"qid": "2", "question": "Which class is required for flights under six hours?", "answers": ["Economy class"],
     "gold_pid": "travel", "answerable": True},
    {"qid": "3", "question": "员工密码多久必须更换一次？", "answers": ["每九十天"], "gold_pid": "password",
     "answerable": True},
    {"qid": "4", "question": "Who won the 1998 football world cup?", "answers": ["France"], "gold_pid": "football",
     "answerable": False, "not_in_kb": True},
    {"qid": "5", "question": "河北省的省会是哪里？", "answers": ["石家庄"], "gold_pid": "hebei", "answerable": False,
     "not_in_kb": True},
]  # fmt: skip


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "tiny"
    folder.mkdir()
    return write_jsonl(folder / "corpus.jsonl", PASSAGES), write_jsonl(folder / "queries.jsonl", QUERIES)


def test_ingest_is_one_document_per_passage_and_skips_what_the_kb_holds(
    engine: Engine, dataset: tuple[Path, Path]
) -> None:
    corpus, _ = dataset
    evaluator = Evaluator(engine.knowledge_bases, engine.answerer)
    first = evaluator.ingest("ev", corpus, read_corpus(corpus))
    assert len(first.report.added) == 3 and first.report.chunks > 3  # the long passage is cut in several chunks
    records = engine.knowledge_bases.documents("ev")
    assert sorted(r.source for r in records) == [f"tiny/corpus.jsonl#{p}" for p in ("bridge", "password", "travel")]
    assert {r.title for r in records} == {"Meridian Bridge", "Travel policy", "信息安全制度"}

    second = evaluator.ingest("ev", corpus, read_corpus(corpus))
    assert len(second.report.unchanged) == 3 and not second.report.added and second.report.chunks == 0

    # A passage that changed is indexed again; one gone from the corpus leaves the KB.
    changed = [{**PASSAGES[1], "text": PASSAGES[1]["text"] + " Trains are first class."}, PASSAGES[2]]
    third = evaluator.ingest("ev", write_jsonl(corpus, changed), read_corpus(corpus))
    assert third.report.updated == ["tiny/corpus.jsonl#travel"] and third.removed == 1
    assert len(engine.knowledge_bases.documents("ev")) == 2


def test_runner_ranks_passages_from_chunk_metadata(engine: Engine, dataset: tuple[Path, Path]) -> None:
    corpus, queries = dataset
    evaluator = Evaluator(engine.knowledge_bases, engine.answerer)
    evaluator.ingest("ev", corpus, read_corpus(corpus))
    hits = engine.retriever.run("ev", "Meridian Bridge Calder River railway", 10).hits
    assert [h.chunk.metadata["pid"] for h in hits[:2]] == ["bridge", "bridge"]  # two chunks of one passage

    results = evaluator.run("ev", corpus_label(corpus), read_queries(queries), generate=False)
    label = corpus_label(corpus)
    bridge = results[0]
    assert bridge.ranking[0] == f"{label}#bridge" and len(set(bridge.ranking)) == len(bridge.ranking)
    assert [r.ranking[0] for r in results[:3]] == [f"{label}#{p}" for p in ("bridge", "travel", "password")]
    assert [r.refused for r in results] == [False, False, False, True, True]
    assert [r.evidence for r in results] == [True, True, True, None, None]
    assert set(results[0].timings) == {"retrieve"}


@pytest.fixture
def cli(tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch):
    """``rag`` through CliRunner, a fresh Engine per command over one data directory."""
    monkeypatch.chdir(tmp_path)

    def fresh_engine() -> Engine:
        engine = Engine(Settings(data_dir=tmp_path / "data"))
        engine.embedder = embedder
        return engine

    monkeypatch.setattr(rag.cli, "engine", fresh_engine)
    runner = CliRunner()
    return lambda *args: runner.invoke(rag.cli.app, [str(a) for a in args])


RETRIEVAL_KEYS = {"hit@1", "hit@3", "hit@5", "hit@10", "mrr@10"}


def test_rag_eval_no_llm_writes_the_report(cli, dataset: tuple[Path, Path], tmp_path: Path) -> None:
    corpus, queries = dataset
    out = tmp_path / "report.json"
    result = cli("eval", "--corpus", corpus, "--queries", queries, "--no-llm", "--baseline", "--json", out)
    assert result.exit_code == 0, result.output
    assert "rag-kb" in result.stdout and "langchain" in result.stdout

    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["n"] == {"queries": 5, "answerable": 3, "unanswerable": 2, "not_in_kb": 2}
    assert set(report["retrieval"]) == RETRIEVAL_KEYS
    assert report["retrieval"]["hit@1"] == 1.0 and report["retrieval"]["mrr@10"] == 1.0
    assert report["evidence"] == {"contains_answer": 1.0}
    refusal = report["refusal"]
    assert {"refused_unanswerable", "refused_not_in_kb", "answered_answerable"} <= set(refusal)
    assert refusal["refused_not_in_kb"] == 1.0 and refusal["answered_answerable"] == 1.0
    assert [p["threshold"] for p in refusal["curve"]][:3] == [0.0, 0.05, 0.1] and len(refusal["curve"]) == 21
    assert report["citations"] is None and report["answer"] is None
    assert set(report["latency_ms"]) == {"retrieve"} and set(report["latency_ms"]["retrieve"]) == {"p50", "p95"}
    baseline = report["baseline"]
    assert set(baseline) >= RETRIEVAL_KEYS and all(0 <= baseline[k] <= 1 for k in RETRIEVAL_KEYS)
    assert baseline["chunks"] == 3  # every passage fits in one 1000-character chunk
    assert report["ingest"]["added"] == 3

    again = cli("eval", "--corpus", corpus, "--queries", queries, "--no-llm", "--json", out, "--limit", "2")
    assert again.exit_code == 0, again.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["ingest"]["unchanged"] == 3 and report["ingest"]["added"] == 0
    assert report["n"]["queries"] == 2 and report["baseline"] is None


def test_rag_eval_with_the_generator_scores_answers_and_citations(
    cli, dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    corpus, queries = dataset
    out = tmp_path / "report.json"
    result = cli("eval", "--corpus", corpus, "--queries", queries, "--json", out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["generator"] == "extractive"
    assert report["citations"]["valid"] == 1.0 and report["citations"]["supported"] == 1.0
    assert 0 <= report["answer"]["em"] <= report["answer"]["f1"] <= 1 and report["answer"]["f1"] > 0
    assert {"retrieve", "generate", "verify", "total"} <= set(report["latency_ms"])


def test_rag_eval_reports_bad_data(cli, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"pid": "a"}])
    result = cli("eval", "--corpus", corpus, "--queries", corpus, "--no-llm")
    assert result.exit_code == 1 and "'text' must be a non-empty string" in result.output


def test_rag_eval_asks_a_kb_as_ingested_with_follow_up_and_list_cases(cli, tmp_path: Path) -> None:
    assert cli("ingest", write_bridge_and_struts(tmp_path / "docs"), "--kb", "conv").exit_code == 0
    queries = write_jsonl(
        tmp_path / "cases.jsonl",
        [
            {"qid": "f", "kind": "follow-up", "question": "When was it completed?", "answers": ["1932"],
             "answerable": True, "history": [["Who designed the Meridian Bridge?", "Agnes Holloway [1]."]]},
            {"qid": "l", "kind": "list", "question": "Which Apache Struts vulnerabilities are known to be exploited?",
             "items": ["CVE-2017-5638", "CVE-2018-11776"], "answerable": True},
            {"qid": "n", "kind": "not-in-kb", "question": "河北省的省会是哪里？", "answerable": False,
             "not_in_kb": True},
        ],
    )  # fmt: skip
    out = tmp_path / "report.json"
    result = cli("eval", "--kb", "conv", "--queries", queries, "--json", out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["ingest"] is None and report["retrieval"]["hit@1"] is None
    assert report["by_kind"]["follow-up"] == {"n": 1, "right": 1, "items_found": None}
    assert report["by_kind"]["list"] == {"n": 1, "right": 1, "items_found": 1.0}
    assert report["by_kind"]["not-in-kb"]["right"] == 1
    assert cli("eval", "--queries", queries).exit_code == 1  # neither a corpus nor a KB
