"""Command-line programs (``spead2_recv``, ``spead2_capture``, ``spead2_bench``) and their helpers."""
