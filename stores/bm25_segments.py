"""BM25 postings in memory, kept in Lucene-style segments so that writes never rescore the corpus.

Documents get global positions in the order they arrive. Each :class:`Segment` holds the postings
(term id → positions and term frequencies, CSC layout) of one run of positions; deleting or
replacing a chunk only clears its bit in the ``live`` mask. Scores are computed at query time from
the query terms' live postings, so document frequencies, the corpus size and the average length
always describe the live chunks, exactly as a freshly built index would (bm25s "lucene" scoring).
Segments are merged, and dead positions dropped, once enough of them pile up: amortized cost.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import compress

import numpy as np

Row = tuple[str, str, Sequence[str], str]  # chunk id, doc id, terms, metadata as JSON
BATCH = 65_536  # chunks per segment while appending: bounds the sort buffers of a full load
SLICE = 1 << 22  # postings per step while merging: bounds the temporary arrays
TF_MAX = np.iinfo(np.uint16).max  # tf is stored saturated: tf / (tf + norm) barely moves past it


class _Vocab(dict[str, int]):
    """Term → id; ``vocab[term]`` gives a new term the next id (at C speed for the known ones), so
    lookups that must not add one use ``get``."""

    def __missing__(self, term: str) -> int:
        self[term] = term_id = len(self)
        return term_id


@dataclass(slots=True)
class Segment:
    """The postings of the chunks at positions ``start`` to ``stop``.

    The postings of term ``t`` are ``indices[indptr[t]:indptr[t + 1]]`` (ascending global positions)
    with their counts in ``tf``; terms added to the vocabulary after the segment was built have none.
    ``id_hashes`` (sorted) and ``id_order`` find a chunk id's position without a dict entry per chunk.
    """

    start: int
    stop: int
    indptr: np.ndarray  # int64
    indices: np.ndarray  # int32
    tf: np.ndarray  # uint16
    id_hashes: np.ndarray  # int64
    id_order: np.ndarray  # int32

    def postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        if term + 1 >= self.indptr.size:
            return self.indices[:0], self.tf[:0]
        begin, end = self.indptr[term], self.indptr[term + 1]
        return self.indices[begin:end], self.tf[begin:end]


SALIENT_TERMS = 2  # the rarest terms of a query, which say what it is about


class SegmentedBM25:
    """BM25 over chunks that come and go, scored as bm25s "lucene" scores the live ones.

    Chunk ids are unique within one :meth:`add` call; adding an id that is already live replaces it.

    Usage::

        index = SegmentedBM25(k1=1.2, b=0.75)
        index.add([("a:0", "a", ["log4j", "cve-2021-44228"], '{"doc_id": "a"}')])
        index.search(["log4j"], k=10)  # [(position, score, coverage, salient)]
        index.delete(["a:0"])
    """

    merge_share = 0.25  # merge everything once this share of positions is dead or outside the base
    max_segments = 16

    def __init__(self, k1: float, b: float) -> None:
        if k1 <= 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 needs k1 > 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.k1, self.b = k1, b
        self.vocab = _Vocab()
        self.segments: list[Segment] = []
        self.chunk_ids: list[str] = []  # per position, as are doc_ids, meta_ids, lengths and live
        self.doc_ids: list[str] = []
        self.meta_ids = np.zeros(0, np.int32)  # index into metadata
        self.metadata: list[dict] = []  # distinct metadata: the chunks of a document mostly share theirs
        self._meta_keys: dict[str, int] = {}  # metadata JSON → index
        self.lengths = np.zeros(0, np.int32)
        self.live = np.zeros(0, bool)
        self.n_live = 0
        self.total_length = 0  # of the live chunks
        self._norms: np.ndarray | None = None

    def add(self, rows: Iterable[Row]) -> None:
        earlier = list(self.segments)  # ids are unique within the call: only older segments can hold them
        names: dict[str, str] = {}
        batch: list[tuple[str, str, int]] = []
        tokens, lengths = array("i"), array("i")
        term_id = self.vocab.__getitem__  # a new term gets the next id
        for chunk_id, doc_id, terms, metadata in rows:
            tokens.extend(map(term_id, terms))
            lengths.append(len(terms))
            batch.append((chunk_id, names.setdefault(doc_id, doc_id), self._meta_id(metadata)))
            if len(batch) == BATCH:
                self._append(batch, tokens, lengths, earlier)
                batch, tokens, lengths = [], array("i"), array("i")
        if batch:
            self._append(batch, tokens, lengths, earlier)
        self._maintain()

    def delete(self, chunk_ids: Sequence[str]) -> None:
        self._kill(self._find(chunk_ids, self.segments))
        self._maintain()

    def search(
        self,
        terms: Sequence[str],
        k: int,
        accept: Callable[[dict], bool] | None = None,
        containing: Sequence[str] = (),
    ) -> list[tuple[int, float, float, float]]:
        """The ``k`` best live positions holding a term, as (position, score, coverage, salient), best first.

        ``terms`` are distinct. ``accept`` tests a chunk's metadata; ``containing`` keeps the chunks
        holding one of those terms. Coverage is the IDF-weighted share of ``terms`` in the chunk,
        terms absent from the index included; salient is that share over the :data:`SALIENT_TERMS`
        rarest terms only (what the question is about: a name, not "year" or "built"). Ties go to
        the smaller chunk id, as in every process.
        """
        if not self.n_live or not terms or k < 1:
            return []
        norm = self._norm()
        scores = np.zeros(self.live.size)
        postings, total = [], 0.0
        for term in terms:
            positions, tf = self._postings(term)
            idf = math.log(1 + (self.n_live - positions.size + 0.5) / (positions.size + 0.5))
            postings.append((positions, idf))
            total += idf
            if positions.size:
                tf = tf.astype(np.float64)
                scores[positions] += idf * tf / (tf + norm[positions])
        candidates = np.flatnonzero(scores)
        if containing and candidates.size:
            holding = np.zeros(self.live.size, bool)
            for term in containing:
                holding[self._postings(term)[0]] = True
            candidates = candidates[holding[candidates]]
        if accept is not None and candidates.size:
            distinct, inverse = np.unique(self.meta_ids[candidates], return_inverse=True)
            accepted = np.fromiter((accept(self.metadata[i]) for i in distinct.tolist()), bool, distinct.size)
            candidates = candidates[accepted[inverse]]
        if candidates.size > k:  # keep the k best and whatever ties the k-th, then sort those
            kth = np.partition(scores[candidates], candidates.size - k)[candidates.size - k]
            candidates = candidates[scores[candidates] >= kth]
        best = sorted(zip((-scores[candidates]).tolist(), candidates.tolist(), strict=True), key=self._rank)[:k]
        chosen = np.array([p for _, p in best], np.int64)
        found, salient = np.zeros(chosen.size), np.zeros(chosen.size)
        rarest = sorted((idf for _, idf in postings), reverse=True)[:SALIENT_TERMS]
        salient_total = sum(rarest)
        for positions, idf in postings:  # positions ascend across segments: a binary search tells presence
            if positions.size:
                at = np.minimum(np.searchsorted(positions, chosen), positions.size - 1)
                present = positions[at] == chosen
                found += idf * present
                if idf >= rarest[-1]:
                    salient += idf * present
        salient = np.minimum(salient / salient_total, 1.0)  # idf ties with the last of the rarest may overshoot
        return [
            (p, -s, c, a)
            for (s, p), c, a in zip(best, (found / total).tolist(), salient.tolist(), strict=True)
        ]

    def compact(self) -> None:
        """Merge every segment into one holding only live chunks; forget unused terms and metadata."""
        if not self.segments:
            return
        kept = np.flatnonzero(self.live)
        new_position = np.cumsum(self.live, dtype=np.int64) - 1
        counts = self._live_counts(self.segments)
        used = counts > 0
        new_term = np.cumsum(used) - 1
        indptr, indices, tf = self._merge(self.segments, counts[used], new_term, new_position)
        if not used.all():
            keep, renumber = used.tolist(), new_term.tolist()
            self.vocab = _Vocab((term, renumber[i]) for term, i in self.vocab.items() if keep[i])
        alive = self.live.tolist()
        self.chunk_ids = list(compress(self.chunk_ids, alive))
        self.doc_ids = list(compress(self.doc_ids, alive))
        distinct, meta_ids = np.unique(self.meta_ids[kept], return_inverse=True)
        keys = list(self._meta_keys)
        self.metadata = [self.metadata[i] for i in distinct.tolist()]
        self._meta_keys = {keys[i]: j for j, i in enumerate(distinct.tolist())}
        self.meta_ids = meta_ids.astype(np.int32)
        self.lengths = self.lengths[kept]
        self.live = np.ones(kept.size, bool)
        self._norms = None
        self.segments = [self._segment(0, kept.size, indptr, indices, tf)]
        _release_free_heap()

    # Building and merging segments

    def _meta_id(self, metadata: str) -> int:
        found = self._meta_keys.get(metadata)
        if found is None:
            found = self._meta_keys[metadata] = len(self.metadata)
            self.metadata.append(json.loads(metadata))
        return found

    def _append(self, batch: list[tuple[str, str, int]], tokens: array, lengths: array, earlier: list[Segment]) -> None:
        chunk_ids = [row[0] for row in batch]
        self._kill(self._find(chunk_ids, earlier))  # replaced chunks
        start, sizes = self.live.size, np.frombuffer(lengths, np.int32)
        positions = np.repeat(np.arange(start, start + len(batch), dtype=np.int64), sizes)
        # term-major keys: one sort groups postings by term, positions ascending, repeats adjacent
        keys = np.frombuffer(tokens, np.int32).astype(np.int64) << 32 | positions
        keys.sort()
        first = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1]))) if keys.size else keys[:0]
        tf = np.minimum(np.diff(np.append(first, keys.size)), TF_MAX).astype(np.uint16)
        keys = keys[first]
        indptr = np.zeros(len(self.vocab) + 1, np.int64)
        np.cumsum(np.bincount(keys >> 32, minlength=len(self.vocab)), out=indptr[1:])
        self.chunk_ids.extend(chunk_ids)
        self.doc_ids.extend(row[1] for row in batch)
        self.meta_ids = np.concatenate((self.meta_ids, np.array([row[2] for row in batch], np.int32)))
        self.lengths = np.concatenate((self.lengths, sizes))
        self.live = np.concatenate((self.live, np.ones(len(batch), bool)))
        self.n_live += len(batch)
        self.total_length += int(sizes.sum())
        self._norms = None
        self.segments.append(self._segment(start, self.live.size, indptr, (keys & 0xFFFFFFFF).astype(np.int32), tf))

    def _segment(self, start: int, stop: int, indptr: np.ndarray, indices: np.ndarray, tf: np.ndarray) -> Segment:
        positions = np.flatnonzero(self.live[start:stop]) + start
        ids = self.chunk_ids
        hashes = np.fromiter((hash(ids[p]) for p in positions.tolist()), np.int64, positions.size)
        order = np.argsort(hashes, kind="stable")
        return Segment(start, stop, indptr, indices, tf, hashes[order], positions[order].astype(np.int32))

    def _maintain(self) -> None:
        """Merge everything when dead or recent chunks pass their share, else merge the newest
        segments while the older of the last two is no bigger (a binary counter: log-many segments)."""
        size = self.live.size
        recent = size - (self.segments[0].stop if self.segments else 0)
        limit = self.merge_share * size
        if size - self.n_live > limit or recent > limit or len(self.segments) > self.max_segments:
            self.compact()
            return
        while len(self.segments) > 2:
            older, newer = self.segments[-2:]
            if older.stop - older.start > newer.stop - newer.start:
                break
            merged = self._merge([older, newer], self._live_counts([older, newer]))
            self.segments[-2:] = [self._segment(older.start, newer.stop, *merged)]

    def _merge(
        self,
        segments: list[Segment],
        counts: np.ndarray,
        new_term: np.ndarray | None = None,
        new_position: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The live postings of consecutive segments in one CSC, term by term, without sorting:
        each segment's share of a term goes after the earlier segments' share."""
        indptr = np.zeros(counts.size + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        indices, tf = np.empty(indptr[-1], np.int32), np.empty(indptr[-1], np.uint16)
        cursor = indptr[:-1].copy()
        for segment in segments:
            for terms, positions, freqs in self._live_slices(segment, new_term, new_position):
                in_slice = np.bincount(terms, minlength=counts.size)
                slot = cursor[terms] + np.arange(terms.size) - (np.cumsum(in_slice) - in_slice)[terms]
                indices[slot], tf[slot] = positions, freqs
                cursor += in_slice
        return indptr, indices, tf

    def _live_counts(self, segments: list[Segment]) -> np.ndarray:
        """How many live postings each term has in ``segments``."""
        counts = np.zeros(len(self.vocab), np.int64)
        for segment in segments:
            for terms, _, _ in self._live_slices(segment):
                counts += np.bincount(terms, minlength=counts.size)
        return counts

    def _live_slices(
        self, segment: Segment, new_term: np.ndarray | None = None, new_position: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(term ids, positions, tf) of the segment's live postings, a slice at a time, term-major."""
        for begin in range(0, segment.indices.size, SLICE):
            end = min(begin + SLICE, segment.indices.size)
            positions = segment.indices[begin:end]
            keep = self.live[positions]
            first, last = np.searchsorted(segment.indptr, [begin, end - 1], side="right") - 1
            runs = np.diff(np.clip(segment.indptr[first : last + 2], begin, end))
            terms = np.repeat(np.arange(first, last + 1, dtype=np.int32), runs)[keep]
            if new_term is not None:
                terms = new_term[terms]
            positions = positions[keep] if new_position is None else new_position[positions[keep]]
            yield terms, positions.astype(np.int32), segment.tf[begin:end][keep]

    # Looking up

    def _postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Live positions holding ``term`` (ascending), with its counts there."""
        term_id = self.vocab.get(term)
        if term_id is None or not self.segments:
            return self.lengths[:0], self.lengths[:0]
        parts = [segment.postings(term_id) for segment in self.segments]
        positions, tf = parts[0] if len(parts) == 1 else (np.concatenate(p) for p in zip(*parts, strict=True))
        if self.n_live < self.live.size:
            keep = self.live[positions]
            positions, tf = positions[keep], tf[keep]
        return positions, tf

    def _norm(self) -> np.ndarray:
        """``k1 * (1 - b + b * length / average length)`` per position, kept until the chunks change."""
        if self._norms is None:
            average = self.total_length / self.n_live if self.n_live else 1.0
            self._norms = self.k1 * (1 - self.b + self.b * self.lengths / average)
        return self._norms

    def _find(self, chunk_ids: Sequence[str], segments: list[Segment]) -> list[int]:
        """The live positions of ``chunk_ids`` in ``segments``."""
        hashes = np.fromiter(map(hash, chunk_ids), np.int64, len(chunk_ids))
        found = []
        for segment in segments:
            low = np.searchsorted(segment.id_hashes, hashes, side="left")
            high = np.searchsorted(segment.id_hashes, hashes, side="right")
            for i in np.flatnonzero(high > low).tolist():  # equal hashes: compare the ids themselves
                for position in segment.id_order[low[i] : high[i]].tolist():
                    if self.live[position] and self.chunk_ids[position] == chunk_ids[i]:
                        found.append(position)
        return found

    def _kill(self, positions: list[int]) -> None:
        dead = np.unique(np.asarray(positions, np.int64))
        dead = dead[self.live[dead]]
        self.live[dead] = False
        self.n_live -= dead.size
        self.total_length -= int(self.lengths[dead].sum())
        self._norms = None

    def _rank(self, entry: tuple[float, int]) -> tuple[float, str]:
        return entry[0], self.chunk_ids[entry[1]]


def _release_free_heap() -> None:
    """Hand the heap's free pages back to the system (glibc; elsewhere nothing). A merge frees many
    arrays below glibc's mmap threshold, and their holes would otherwise stay in the process's RSS:
    about 40% of it after a full load."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
