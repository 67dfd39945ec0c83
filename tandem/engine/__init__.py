"""The pure decision core of Tandem.

Nothing in this package performs I/O or imports Kafka, Faust, gRPC, OpenFlow or pyvmomi: the
stream processors, the what-if API, the CLI and the benchmarks all call the same functions,
and a replay of the event log reproduces every decision exactly.
"""
