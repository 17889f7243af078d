"""Test hosts in network namespaces, made by the test itself: a bridge in the root namespace and one namespace per
host joined to it by a veth pair, plus TCP forwarders so the hosts reach PostgreSQL and Redis (which listen on
127.0.0.1 of the root namespace) at one address of the bridge, and each host reaches a local provider on its own
127.0.0.1 (the egress guard admits loopback providers in tests, never private addresses).

Every address is on the bridge made here; nothing is routed off the machine. ``Hosts.cut(name)`` takes a host's
link down, as a pulled cable would: its connections hang rather than reset.

``python -m support.netns LISTEN_HOST:PORT=TARGET_HOST:PORT ...`` runs a forwarder (in whatever namespace it is
started in) and prints ``ready`` once it listens.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
log = logging.getLogger("tests.netns")


class NamespacesRefused(RuntimeError):
    """The kernel or the sandbox refuses network namespaces here (the test skips, saying why)."""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@dataclass
class Hosts:
    names: Sequence[str]
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    subnet: str = field(default_factory=lambda: f"10.231.{random.randint(100, 250)}")
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"tb{self.tag}"

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge: where the forwarders to PostgreSQL and Redis listen."""
        return f"{self.subnet}.1"

    def namespace(self, name: str) -> str:
        return f"t{self.tag}{self.names.index(name)}"

    def address(self, name: str) -> str:
        return f"{self.subnet}.{10 + self.names.index(name)}"

    def _veth(self, name: str) -> str:
        return f"v{self.tag}{self.names.index(name)}"

    def up(self) -> None:
        try:
            _ip("netns", "add", f"t{self.tag}probe")
            _ip("netns", "del", f"t{self.tag}probe")
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            raise NamespacesRefused(f"ip netns is refused here: {getattr(exc, 'stderr', exc)}") from None
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for name in self.names:
            ns, veth, peer = self.namespace(name), self._veth(name), f"p{self.tag}{self.names.index(name)}"
            _ip("netns", "add", ns)
            _ip("link", "add", veth, "type", "veth", "peer", "name", peer)
            _ip("link", "set", peer, "netns", ns)
            _ip("link", "set", veth, "master", self.bridge)
            _ip("link", "set", veth, "up")
            _ip("-n", ns, "addr", "add", f"{self.address(name)}/24", "dev", peer)
            _ip("-n", ns, "link", "set", peer, "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def down(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
        for name in self.names:
            subprocess.run(["ip", "netns", "del", self.namespace(name)], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)

    def start(
        self, name: str | None, argv: Sequence[str], env: dict[str, str], **popen: object
    ) -> subprocess.Popen[str]:
        """Start ``argv`` on host ``name`` (``None``: the root namespace), killed by ``down``."""
        prefix = ["ip", "netns", "exec", self.namespace(name)] if name is not None else []
        proc = subprocess.Popen([*prefix, *argv], env=env, text=True, **popen)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def forward(self, name: str | None, pairs: dict[str, str]) -> subprocess.Popen[str]:
        """A forwarder on host ``name`` for each ``listen → target`` pair (``host:port`` strings)."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
        argv = [sys.executable, "-m", "support.netns", *(f"{k}={v}" for k, v in pairs.items())]
        proc = self.start(name, argv, env, stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", "the forwarder did not start"
        return proc

    def cut(self, name: str) -> None:
        """Take host ``name``'s link down: it can reach nothing, and nothing learns it is gone."""
        _ip("link", "set", self._veth(name), "down")


@contextmanager
def hosts(*names: str) -> Iterator[Hosts]:
    made = Hosts(names)
    try:
        made.up()
        yield made
    finally:
        made.down()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError) as exc:  # either side went away: the pair is closed below
        log.debug("forwarded connection ended: %s", type(exc).__name__)
    finally:
        writer.close()


async def _forward(pairs: list[tuple[str, int, str, int]]) -> None:
    async def serve(target_host: str, target_port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    servers = []
    for host, port, target_host, target_port in pairs:

        def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, th: str = target_host, tp: int = target_port):
            return serve(th, tp, r, w)

        servers.append(await asyncio.start_server(handler, host, port))
    print("ready", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main(argv: list[str]) -> None:
    pairs = []
    for item in argv:
        listen, target = item.split("=")
        host, port = listen.rsplit(":", 1)
        target_host, target_port = target.rsplit(":", 1)
        pairs.append((host, int(port), target_host, int(target_port)))
    asyncio.run(_forward(pairs))


if __name__ == "__main__":
    main(sys.argv[1:])
