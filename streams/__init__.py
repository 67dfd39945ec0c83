"""Tandem's stream processing (the Faust worker, its exactly-once loops, topics).

Workarounds of aiokafka, Faust and mode behaviour live in `tandem.streams.compat` and are
applied explicitly at a process's start (`tandem.streams.compat.apply_all()`), not on import.
"""
