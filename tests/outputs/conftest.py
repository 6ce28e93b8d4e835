"""Private-jackd fixtures for the output tests (shared with other test folders via tests.jackfixtures)."""

from tests.jackfixtures import jack_capture_factory, jack_server, jack_server_factory

__all__ = ["jack_capture_factory", "jack_server", "jack_server_factory"]
