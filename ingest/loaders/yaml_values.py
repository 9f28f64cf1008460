"""YAML parsed safely and within budget: aliases are counted as what they expand to.

``yaml.safe_load`` keeps an alias as a reference to its anchor's value, so nine levels of nine
aliases ("billion laughs") parse into a few hundred bytes of objects, and whatever walks them
afterwards visits 9**9 values. The composed node graph is measured first, each shared node once,
and a file whose values would expand past ``max_yaml_nodes`` is refused before anything walks it.
"""

from __future__ import annotations

from typing import Any

import yaml

from ingest.budget import BudgetExceeded, current


def load_yaml_documents(text: str) -> list[Any]:
    """The documents of a YAML stream (``None`` documents dropped); raises :class:`yaml.YAMLError`
    when it is not YAML and :class:`BudgetExceeded` when its aliases expand past the budget."""
    limit = current().max_yaml_nodes
    loader = yaml.SafeLoader(text)
    try:
        documents = []
        sizes: dict[int, int] = {}
        total = 0
        while loader.check_node():
            node = loader.get_node()
            total += expanded_size(node, sizes, set())
            if total > limit:
                raise BudgetExceeded(
                    "parse_max_yaml_nodes", f"the YAML aliases expand to over {limit:,} values"
                )
            data = loader.construct_document(node)
            if data is not None:
                documents.append(data)
        return documents
    finally:
        loader.dispose()


def expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many values ``node`` stands for once every alias in it is copied out (memoised by node)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise BudgetExceeded("parse_max_yaml_nodes", "a YAML alias refers to a value that contains it")
    open_nodes.add(key)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(expanded_size(child, sizes, open_nodes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        for name, value in node.value:
            size += expanded_size(name, sizes, open_nodes) + expanded_size(value, sizes, open_nodes)
    open_nodes.discard(key)
    sizes[key] = size
    return size
