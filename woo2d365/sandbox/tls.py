"""A throwaway certificate authority for the sandbox servers (tests and ``demo``).

Uses trustme, so the emulators serve real HTTPS on 127.0.0.1 and clients verify it with a CA
bundle written to disk, exactly as they would verify a real server.
"""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path

import trustme


class SandboxCA:
    """A CA that issues one server certificate for ``127.0.0.1`` and ``localhost``."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self._ca = trustme.CA()
        self._server_cert = self._ca.issue_cert("127.0.0.1", "localhost")
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="woo2d365-ca-")
            directory = self._tmp.name
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_path = self.directory / "sandbox-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_path))

    def server_context(self) -> ssl.SSLContext:
        """An SSL context for a server socket, with the issued certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this CA (for raw clients in tests)."""
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context

    def cleanup(self) -> None:
        """Remove the CA file when the CA made its own temporary directory."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
