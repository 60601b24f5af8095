"""The real confluent-kafka client, driven by eddy's interop tests.

Commands (each prints JSON on stdout):
  produce  --brokers B --registry URL --topic T --count N
           AvroSerializer + SchemaRegistryClient (auto-registering the schema
           in event.avsc under T-value); prints each value it sent.
  consume  --brokers B --registry URL --topic T --count N
           AvroDeserializer; prints each value it read.
  evolve   --registry URL --subject S
           Registers a compatible change (added field with a default) and an
           incompatible one (added field without a default); prints what the
           registry answered.
"""

import argparse
import json
import pathlib
import sys

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

SCHEMA = (pathlib.Path(__file__).parent / "event.avsc").read_text()


def produce(args):
    registry = SchemaRegistryClient({"url": args.registry})
    serialize = AvroSerializer(registry, SCHEMA, conf={"auto.register.schemas": True})
    producer = Producer({"bootstrap.servers": args.brokers})
    ctx = SerializationContext(args.topic, MessageField.VALUE)
    for i in range(args.count):
        value = {
            "id": i,
            "name": f"event-{i}",
            "score": i * 0.25,
            "tags": [f"t{j}" for j in range(i % 3)],
            "note": None if i % 2 else f"note {i}",
        }
        producer.produce(args.topic, key=str(i).encode(), value=serialize(value, ctx))
        print(json.dumps(value))
    if producer.flush(30) != 0:
        sys.exit("not every record was delivered")


def consume(args):
    registry = SchemaRegistryClient({"url": args.registry})
    deserialize = AvroDeserializer(registry)
    consumer = Consumer({"bootstrap.servers": args.brokers, "group.id": "eddy-interop", "enable.auto.commit": False})
    consumer.assign([TopicPartition(args.topic, 0, OFFSET_BEGINNING)])
    ctx = SerializationContext(args.topic, MessageField.VALUE)
    got = 0
    idle = 0
    while got < args.count and idle < 30:
        msg = consumer.poll(1.0)
        if msg is None:
            idle += 1
            continue
        if msg.error():
            sys.exit(f"consume error: {msg.error()}")
        print(json.dumps(deserialize(msg.value(), ctx)))
        got += 1
    consumer.close()
    if got < args.count:
        sys.exit(f"only {got} of {args.count} records arrived")


def evolve(args):
    registry = SchemaRegistryClient({"url": args.registry})
    base = json.loads(SCHEMA)
    compatible = dict(base, fields=base["fields"] + [{"name": "country", "type": "string", "default": "unknown"}])
    incompatible = dict(base, fields=base["fields"] + [{"name": "required_now", "type": "long"}])
    out = {"compatible_id": registry.register_schema(args.subject, Schema(json.dumps(compatible), "AVRO"))}
    try:
        registry.register_schema(args.subject, Schema(json.dumps(incompatible), "AVRO"))
        out["incompatible"] = "accepted"
    except SchemaRegistryError as e:
        out["incompatible"] = {"http_status": e.http_status_code, "error_code": e.error_code, "message": e.error_message}
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["produce", "consume", "evolve"])
    parser.add_argument("--brokers")
    parser.add_argument("--registry", required=True)
    parser.add_argument("--topic")
    parser.add_argument("--subject")
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args()
    {"produce": produce, "consume": consume, "evolve": evolve}[args.command](args)


if __name__ == "__main__":
    main()
