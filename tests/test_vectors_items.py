"""ItemGroup.update on every expected heap of the interop vectors, from the recorded raw items and
descriptors (the stream layer is not involved: see vectors.py for the stream-level reuse)."""

from __future__ import annotations

import pytest
import vectors
from fakeheap import FakeHeap

import spead2


@pytest.mark.parametrize(("scenario", "form"), vectors.heap_params("heap"))
def test_item_group_updates(scenario: vectors.Scenario, form: str) -> None:
    item_group = spead2.ItemGroup()
    checked = 0
    for expected in scenario.expected_heaps(form):
        if expected["kind"] != "heap":
            continue  # incomplete heaps have no descriptors and are never given to update
        heap = FakeHeap(
            vectors.raw_items_from_json(expected, scenario),
            vectors.raw_descriptors_from_json(expected),
            cnt=expected["cnt"],
            flavour=vectors.flavour_from_json(expected["flavour"]),
            start_of_stream=expected["is_start_of_stream"],
            end_of_stream=expected["is_end_of_stream"],
        )
        outcome = vectors.update(item_group, heap, scenario.new_order)
        vectors.check_heap(expected, heap, item_group, outcome)
        checked += 1
    assert checked > 0


def test_every_scenario_is_loaded() -> None:
    directory = vectors.vectors_dir()
    scenarios = vectors.load_scenarios()
    assert {s.name for s in scenarios} == {p.stem for p in directory.glob("*.json")} - {"index"}
