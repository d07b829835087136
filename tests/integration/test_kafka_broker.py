"""The bundled broker (deploy/kafka) as the fixture started it: its logs are
free of errors (a missing or wrong logging configuration prints one), and
dynamic log levels reach the loggers that write to server.log.

Environment: CTKN_KAFKA_STATE (the fixture's state dir), CTKN_KAFKA_VERSION
(empty: deploy/kafka's default), CTKN_TEST_BROKERS."""
import os
import re
import subprocess
import time

from harness import check, kafka_tool, main

STATE = os.environ["CTKN_KAFKA_STATE"]
LOGS = os.path.join(STATE, "logs")
BROKER_LOGGERS = ("--entity-type", "broker-loggers", "--entity-name", "1")
# kafka.request.logger logs every request at DEBUG; the config keeps it at
# WARN.
LOGGER = "kafka.request.logger"


def read(name):
    with open(os.path.join(LOGS, name), errors="replace") as f:
        return f.read()


def config(*args):
    return kafka_tool("kafka.admin.ConfigCommand", *BROKER_LOGGERS, *args)


def test_logs_free_of_errors():
    out = read("kafka.out")
    # "Formatting ..." from the storage tool is all kafka.out may hold: the
    # broker logs to server.log only.
    for line in out.splitlines():
        check(line.startswith("Formatting "), f"kafka.out: {line!r}")
    # Kafka's ReplicaManager logs this at ERROR for each partition added to
    # a topic it already has (kafka-topics --alter --partitions, as
    # test_concurrency does): the partition is then created, as it should.
    grown = re.compile(r"Expected partition \S+ with topic id \S+ to exist, "
                       r"but it was missing\. Creating\.\.\.")
    bad = [l for l in read("server.log").splitlines()
           if re.match(r"^\[[^]]*\] (ERROR|FATAL) ", l)
           and not grown.search(l)]
    check(not bad, f"server.log errors: {bad[:5]}")
    check("No configuration found" not in out, out)


def test_dynamic_log_level():
    before = read("server.log").count("Completed request")
    check(before == 0, f"{LOGGER} logs at INFO before the change: {before}")
    config("--alter", "--add-config", f"{LOGGER}=DEBUG")
    try:
        check(f"{LOGGER}=DEBUG" in config("--describe"), "level not set")
        kafka_tool("org.apache.kafka.tools.TopicCommand", "--list")
        deadline = time.monotonic() + 10
        while "Completed request" not in read("server.log"):
            check(time.monotonic() < deadline,
                  "DEBUG request log never reached server.log")
            time.sleep(0.1)
    finally:
        config("--alter", "--delete-config", LOGGER)
    # Back at the configured WARN: new requests are not logged.
    n = read("server.log").count("Completed request")
    kafka_tool("org.apache.kafka.tools.TopicCommand", "--list")
    time.sleep(0.5)  # a logged request would be written by now
    check(read("server.log").count("Completed request") == n,
          "level reset did not reach the logger")


if __name__ == "__main__":
    main([test_logs_free_of_errors, test_dynamic_log_level])
