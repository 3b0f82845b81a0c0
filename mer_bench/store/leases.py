"""Run leases: one process computes a run at a time (see :meth:`LeaseMixin.acquire`)."""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import time

from mer_bench.store.errors import StoreBusyError, StoreError

__all__ = ["LeaseMixin", "LEASE_S", "LEASE_RENEW_S"]

#: a run's lease is renewed this often while a process computes it, and lapses after ``LEASE_S``
LEASE_RENEW_S = 20.0
LEASE_S = 90.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _lease_live(owner: str, until: float | None) -> bool:
    """Whether a lease still holds: not lapsed, and (on this host) its process alive."""
    if until is None or until < time.time():
        return False
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host == socket.gethostname() and pid.isdigit():
        return _pid_alive(int(pid))
    return True


class LeaseMixin:
    """Leases of :class:`mer_bench.store.Store` (it provides ``_db``, ``path``, ``_transaction``
    and ``_lease_threads``)."""

    # -- leases: one process computes a run at a time ---------------------------------------------
    def acquire(self, run_id: str) -> None:
        """Take the lease on run ``run_id`` (its row must exist) and keep renewing it until
        :meth:`release` or :meth:`close`.

        Raises:
            StoreBusyError: another live process holds the lease; nothing was changed.
        """
        if run_id in self._lease_threads:
            return
        me = self._owner_id()
        with self._transaction():
            row = self._db.execute("SELECT lease_owner, lease_until FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"run {run_id} is not in the results store {self.path}")
            owner, until = row
            if owner and owner != me and _lease_live(owner, until):
                host, pid = owner.split(":")[:2]
                raise StoreBusyError(
                    f"run {run_id} is being computed by another process (pid {pid} on {host}) using the results "
                    f"store {self.path}; nothing was started. Wait for it to finish, then re-run this command to "
                    f"reuse its result (if that process is gone, its claim lapses within {LEASE_S:.0f} s).")
            self._db.execute("UPDATE runs SET lease_owner = ?, lease_until = ? WHERE run_id = ?",
                             (me, time.time() + LEASE_S, run_id))
        stop = threading.Event()
        thread = threading.Thread(target=self._renew, args=(run_id, me, stop), daemon=True,
                                  name=f"mer-bench lease {run_id}")
        thread.start()
        self._lease_threads[run_id] = (stop, thread)

    def release(self, run_id: str) -> None:
        """Give up the lease on ``run_id`` (a no-op when this store does not hold it)."""
        held = self._lease_threads.pop(run_id, None)
        if held is None:
            return
        stop, thread = held
        stop.set()
        thread.join(timeout=5)
        with contextlib.suppress(sqlite3.Error, StoreError):
            with self._transaction(wait=5.0):
                self._db.execute("UPDATE runs SET lease_owner = NULL, lease_until = NULL WHERE run_id = ? AND "
                                 "lease_owner = ?", (run_id, self._owner_id()))

    def _owner_id(self) -> str:
        if not hasattr(self, "_owner"):
            self._owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        return self._owner

    def _renew(self, run_id: str, me: str, stop: threading.Event) -> None:
        db = None
        try:
            db = sqlite3.connect(str(self.path), timeout=LEASE_RENEW_S, isolation_level=None)
            while not stop.wait(LEASE_RENEW_S):
                with contextlib.suppress(sqlite3.Error):  # a busy store: the next renewal tries again
                    db.execute("UPDATE runs SET lease_until = ? WHERE run_id = ? AND lease_owner = ?",
                               (time.time() + LEASE_S, run_id, me))
        except sqlite3.Error:
            pass
        finally:
            if db is not None:
                db.close()
