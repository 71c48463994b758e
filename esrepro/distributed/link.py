"""The master's calls to a host's coordinator, over one connection held for the run.

A Dask actor call opens (or takes from a pool) a connection, sends a request, waits for its reply
and meters both: about 0.3 ms of the master's CPU per call (benchmarks/README.md,
coordination_cost.py), and a round at 1,440 workers makes ~435 of them. Here the master opens one
connection per host when the host's coordinator is made (Dask's own comm layer: its addresses, TLS
and serialization) and sends each call as one message; the coordinator answers each as it
completes, so calls to a host may overlap (a first-come round's ``abandon`` while an ``add`` waits).
Requests and replies are bytes pickled once: ``(method, args)`` and ``(result, exception)``.

A connection that closes (the coordinator's worker died) fails every call waiting on it with an
``OSError``, as a lost actor's calls did: the master takes the host for lost.
"""

import asyncio
import contextlib
import pickle

from distributed.comm import connect
from distributed.core import Status


def handler_name(run_key: str) -> str:
    """The name of run ``run_key``'s handler on its coordinators' Dask workers."""
    return f"esrepro-{run_key}"


async def serve(comm, target) -> Status:
    """The coordinator's side, a Dask worker's handler (``Server`` hands it the connection, as the
    first argument named ``comm``): run ``target``'s method for each request, concurrently, and
    answer each as it completes, until the master closes the connection."""
    lock, calls = asyncio.Lock(), set()

    async def call(call_id: int, data: bytes):
        method, args = pickle.loads(data)
        try:
            reply = (await getattr(target, method)(*args), None)
        except Exception as e:  # noqa: BLE001 (it is the master's to raise)
            reply = (None, e)
        with contextlib.suppress(OSError):  # the master is gone
            async with lock:
                await comm.write({"id": call_id, "data": pickle.dumps(reply, protocol=5)})

    with contextlib.suppress(OSError):  # CommClosedError: the master closed it, or died
        while True:
            message = await comm.read()
            task = asyncio.ensure_future(call(message["id"], message["data"]))
            calls.add(task)
            task.add_done_callback(calls.discard)
    return Status.dont_reply


class Link:
    """The master's side: calls to the coordinator that ``serve`` serves on ``address``."""

    @classmethod
    async def open(cls, address: str, run_key: str, connection_args: dict) -> "Link":
        """Connect to the Dask worker at ``address`` and start its run ``run_key`` handler.
        Raises OSError if the worker cannot be reached."""
        comm = await connect(address, **connection_args)
        await comm.write({"op": handler_name(run_key), "reply": False})
        return cls(comm)

    def __init__(self, comm):
        self.comm = comm
        self._waiting: dict[int, asyncio.Future] = {}
        self._next_id = 0
        self._lock = asyncio.Lock()
        self._reader = asyncio.ensure_future(self._read())

    async def call(self, method: str, *args):
        """``method(*args)`` of the coordinator: its result, or its exception raised here; OSError
        if the connection is closed."""
        if self.comm.closed():
            raise OSError(f"the connection to {self.comm.peer_address} is closed")
        call_id, self._next_id = self._next_id, self._next_id + 1
        reply = self._waiting[call_id] = asyncio.get_running_loop().create_future()
        try:
            async with self._lock:
                await self.comm.write({"id": call_id, "data": pickle.dumps((method, args), protocol=5)})
        except BaseException:  # not sent (closed meanwhile, or cancelled): no reply to wait for
            self._waiting.pop(call_id, None)
            raise
        return await reply

    async def _read(self):
        try:
            while True:
                message = await self.comm.read()
                result, error = pickle.loads(message["data"])
                reply = self._waiting.pop(message["id"], None)
                if reply is None or reply.done():  # cancelled meanwhile
                    continue
                if error is None:
                    reply.set_result(result)
                else:
                    reply.set_exception(error)
        except Exception as e:  # noqa: BLE001 (closed: the coordinator's worker died, or ``close``)
            for reply in self._waiting.values():
                if not reply.done():
                    reply.set_exception(OSError(f"the connection to the host's coordinator was lost ({e})"))
            self._waiting.clear()

    async def close(self) -> None:
        await self.comm.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
