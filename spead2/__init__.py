"""asyncio-native SPEAD receiver with the receive API of spead2.

``import spead2`` gives the common layer (flavours, item groups, thread pools, allocators,
in-process queues, protocol constants); ``spead2.recv`` and ``spead2.recv.asyncio`` hold the
streams.
"""

from __future__ import annotations

import logging as _logging

from spead2 import _kernel  # noqa: F401  (fails early, with a rebuild hint, if the kernel is missing)
from spead2._constants import (
    _UNRESERVED_ID,
    BUG_COMPAT_DESCRIPTOR_WIDTHS,
    BUG_COMPAT_PYSPEAD_0_5_2,
    BUG_COMPAT_SHAPE_BIT_1,
    BUG_COMPAT_SWAP_ENDIAN,
    CTRL_DESCRIPTOR_REISSUE,
    CTRL_DESCRIPTOR_UPDATE,
    CTRL_STREAM_START,
    CTRL_STREAM_STOP,
    DESCRIPTOR_DESCRIPTION_ID,
    DESCRIPTOR_DTYPE_ID,
    DESCRIPTOR_FORMAT_ID,
    DESCRIPTOR_ID,
    DESCRIPTOR_ID_ID,
    DESCRIPTOR_NAME_ID,
    DESCRIPTOR_SHAPE_ID,
    DESCTIPTOR_DTYPE_ID,
    HEAP_CNT_ID,
    HEAP_LENGTH_ID,
    MEMCPY_NONTEMPORAL,
    MEMCPY_STD,
    NULL_ID,
    PAYLOAD_LENGTH_ID,
    PAYLOAD_OFFSET_ID,
    STREAM_CTRL_ID,
)
from spead2._errors import Empty, Full, Stopped
from spead2._flavour import Flavour
from spead2._inproc import InprocQueue
from spead2._items import Descriptor, Item, ItemGroup, RawDescriptor, parse_range_list
from spead2._memory import MemoryAllocator, MemoryPool, MmapAllocator
from spead2._threadpool import ThreadPool
from spead2._version import __version__

_logger = _logging.getLogger(__name__)

__all__ = [
    "BUG_COMPAT_DESCRIPTOR_WIDTHS",
    "BUG_COMPAT_PYSPEAD_0_5_2",
    "BUG_COMPAT_SHAPE_BIT_1",
    "BUG_COMPAT_SWAP_ENDIAN",
    "CTRL_DESCRIPTOR_REISSUE",
    "CTRL_DESCRIPTOR_UPDATE",
    "CTRL_STREAM_START",
    "CTRL_STREAM_STOP",
    "DESCRIPTOR_DESCRIPTION_ID",
    "DESCRIPTOR_DTYPE_ID",
    "DESCRIPTOR_FORMAT_ID",
    "DESCRIPTOR_ID",
    "DESCRIPTOR_ID_ID",
    "DESCRIPTOR_NAME_ID",
    "DESCRIPTOR_SHAPE_ID",
    "DESCTIPTOR_DTYPE_ID",
    "HEAP_CNT_ID",
    "HEAP_LENGTH_ID",
    "MEMCPY_NONTEMPORAL",
    "MEMCPY_STD",
    "NULL_ID",
    "PAYLOAD_LENGTH_ID",
    "PAYLOAD_OFFSET_ID",
    "STREAM_CTRL_ID",
    "_UNRESERVED_ID",
    "Descriptor",
    "Empty",
    "Flavour",
    "Full",
    "InprocQueue",
    "Item",
    "ItemGroup",
    "MemoryAllocator",
    "MemoryPool",
    "MmapAllocator",
    "RawDescriptor",
    "Stopped",
    "ThreadPool",
    "__version__",
    "parse_range_list",
]
