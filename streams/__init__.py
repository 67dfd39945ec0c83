"""Tandem's stream processing (Faust app, agents, topics).

Importing it makes aiokafka clients keep every topic they produce to in their metadata: see
`tandem.streams.kafka_metadata`.
"""

from tandem.streams import kafka_metadata as _kafka_metadata

_kafka_metadata.apply()
