"""The interop vectors (made by the reference) re-encoded by our send side decode to the same
items: every complete heap our receiver takes from a ``.bin`` is sent again (its raw items and
descriptors, with its cnt and flavour) through a BytesStream, received again, and each heap's
``ItemGroup.update`` outcome must match the original's."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import vectors

import spead2
import spead2.recv
import spead2.send


def scenario_params() -> list[Any]:
    return [p for p in vectors.heap_params(kind="heap") if p.values[1] == "bin"]


def receive(data: bytes, scenario: vectors.Scenario) -> list[Any]:
    stream = spead2.recv.Stream(
        spead2.ThreadPool(),
        spead2.recv.StreamConfig(**scenario.stream_config),
        spead2.recv.RingStreamConfig(**scenario.ring_config),
    )
    stream.add_buffer_reader(data)
    return [heap for heap in stream if isinstance(heap, spead2.recv.Heap)]


class _AsSent:
    """A received RawDescriptor where add_descriptor wants a Descriptor (it needs id and to_raw)."""

    def __init__(self, raw: spead2.RawDescriptor) -> None:
        self.id = raw.id
        self._raw = raw

    def to_raw(self, flavour: spead2.Flavour) -> spead2.RawDescriptor:
        return self._raw


def resend(heap: Any) -> spead2.send.Heap:
    """A send heap carrying what the received heap carried."""
    flavour = heap.flavour
    out = spead2.send.Heap(flavour)
    for raw in heap.get_descriptors():
        out.add_descriptor(_AsSent(raw))  # as it came: some are deliberately broken
    for item in heap.get_items():
        data = bytes(item)
        if item.is_immediate:
            value: Any = int.from_bytes(data, "big")
            out.add_item(spead2.Item(item.id, "", "", (), format=[("u", 8 * len(data))], value=value))
        elif len(data) <= 8:  # a variable shape keeps a short value addressed, as it came
            out.add_item(spead2.Item(item.id, "", "", (None,), format=[("u", 8)], value=list(data)))
        else:
            value = np.frombuffer(data, np.uint8)
            out.add_item(spead2.Item(item.id, "", "", (len(data),), np.uint8, value=value))
    if heap.is_start_of_stream():
        out.add_start()
    return out


def outcomes(heaps: list[Any], new_order: str) -> list[Any]:
    group = spead2.ItemGroup()
    result = []
    for heap in heaps:
        outcome = vectors.update(group, heap, new_order)
        if isinstance(outcome, Exception):
            result.append(vectors.encode_error(outcome))
        else:
            result.append(vectors.encode_updated(outcome))
    return result


@pytest.mark.parametrize(("scenario", "form"), scenario_params())
def test_reencoded_vectors_decode_the_same(scenario: vectors.Scenario, form: str) -> None:
    original = receive(scenario.file("bin").read_bytes(), scenario)
    stream = spead2.send.BytesStream(spead2.ThreadPool(), spead2.send.StreamConfig(max_packet_size=9000))
    for heap in original:
        stream.send_heap(resend(heap), cnt=heap.cnt)
    again = receive(stream.getvalue(), scenario)
    assert [h.cnt for h in again] == [h.cnt for h in original]
    assert outcomes(again, scenario.new_order) == outcomes(original, scenario.new_order)
