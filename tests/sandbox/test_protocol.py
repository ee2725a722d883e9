"""Both sandboxes are the one Sandbox protocol the evaluator is written against."""

from kernelsmith.sandbox.base import Sandbox, Server, SocketServer
from kernelsmith.sandbox.docker import DockerSandbox, DockerServer
from kernelsmith.sandbox.local import LocalSandbox


def test_both_sandboxes_and_their_servers_satisfy_the_protocols():
    assert isinstance(LocalSandbox(), Sandbox)
    # built without __init__: no Docker engine is needed to check the shape
    assert isinstance(DockerSandbox.__new__(DockerSandbox), Sandbox)
    for server in (SocketServer, DockerServer):
        assert isinstance(server.__new__(server), Server)


def test_something_without_the_methods_is_not_a_sandbox():
    class Half:
        name = "half"

        def start(self, spec):
            return None

    assert not isinstance(Half(), Sandbox)
    assert not isinstance(object(), Server)
