"""Joining or starting the Ray cluster a run uses, safely: loopback only, bounded, shut down after.

* A cluster maest starts itself (no ``--ray-address``) binds 127.0.0.1 only: every Ray server
  (GCS, raylet, workers) listens on loopback, none on the machine's network address. Ray >= 2.59
  (the minimum maest takes) turns token authentication on for such a cluster.
* ``--ray-address 127.0.0.1:PORT`` (or ``localhost``) connects to that address as given. Ray itself
  rewrites a loopback address to the machine's network address, where a loopback cluster does not
  listen, and then retries for ever; a cluster that cannot be reached fails within
  :data:`CONNECT_TIMEOUT_S` with one line saying so.
* ``ray.init`` replaces the process's SIGTERM/SIGINT handlers (its SIGTERM handler exits 15, with
  a traceback): the handlers in place before are put back, so a run stops as it does on the local
  engine (exit 143 / 130, partial outputs cleaned up), and :meth:`Cluster.close` shuts down what
  this process started.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import socket
import threading
from collections.abc import Iterator

from maest.extraction.errors import ExtractError, MissingDependencyError

CONNECT_TIMEOUT_S = 10.0
"""How long a named cluster's address may take to accept a connection before the run gives up."""


class RayEngineError(ExtractError):
    """The Ray engine cannot run (Ray missing, no GPU where one was asked for, a cluster unreachable, a track lost)."""


def import_ray():
    """``ray`` with Ray Data, or a :class:`MissingDependencyError` saying what to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingDependencyError("--engine ray needs Ray Data: pip install 'maest[ray]'") from None
    return ray


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.x.y.z and ``::1``."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` -> ``(host, port)``; a clear error for anything else."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RayEngineError(f"--ray-address must be 'auto' or HOST:PORT (e.g. 127.0.0.1:6379), got {address!r}")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout`` seconds when nothing accepts connections at ``address``."""
    host, port = split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as error:
        reason = "timed out" if isinstance(error, socket.timeout) else (error.strerror or str(error))
        raise RayEngineError(f"cannot reach the Ray cluster at {address} ({reason}); start it (ray start --head) "
                             "or check --ray-address") from None


@contextlib.contextmanager
def _kept_signal_handlers() -> Iterator[None]:
    """Put back the SIGTERM/SIGINT handlers that ``ray.init`` replaces (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)


@contextlib.contextmanager
def _loopback_addresses(ray) -> Iterator[None]:
    """While Ray starts or joins a node: this node's address is 127.0.0.1, not the network address Ray
    would put in its place (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` has the same effect at import)."""
    constants = ray._private.ray_constants
    saved = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved


class Cluster:
    """This process's connection to a Ray cluster; :meth:`close` ends what :meth:`open` began."""

    def __init__(self, address: str | None = None):
        self.address = address
        self.owned = False  # this process connected (or started a cluster) and disconnects in close()
        self.started = False  # the cluster itself was started here (and stops in close())

    def open(self) -> None:
        """Join the cluster at ``address`` ("auto": the one ``ray start`` made here; None: a new local
        cluster of this machine on 127.0.0.1), unless this process is already connected."""
        ray = import_ray()
        if ray.is_initialized():
            return
        loopback = self.address is None
        if self.address not in (None, "auto"):
            check_reachable(self.address)
            loopback = is_loopback(split_address(self.address)[0])
        options = dict(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
        if self.address is None:
            options.update(include_dashboard=False, _node_ip_address="127.0.0.1")
        with _kept_signal_handlers(), (_loopback_addresses(ray) if loopback else contextlib.nullcontext()):
            ray.init(**options)
        self.owned, self.started = True, self.address is None
        if self.started:
            gcs = ray.get_runtime_context().gcs_address
            if not is_loopback(split_address(gcs)[0]):
                self.close()
                raise RayEngineError(f"the local Ray cluster listens on {gcs}, not on 127.0.0.1; stopped it. Start "
                                     "one yourself (ray start --head --node-ip-address 127.0.0.1) and pass --ray-address")

    def close(self) -> None:
        """Disconnect (and stop the cluster when this process started it); idempotent."""
        if self.owned:
            self.owned = False
            ray = import_ray()
            with _kept_signal_handlers():
                ray.shutdown()
            # A Ray Data thread still winding down must not start a new (non-loopback) cluster by itself.
            hook = getattr(getattr(ray, "_private", None), "auto_init_hook", None)
            if hook is not None and hasattr(hook, "enable_auto_connect"):
                hook.enable_auto_connect = False
