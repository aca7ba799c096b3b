"""Running a mosaik World so that a failed or dead simulator ends the run, loudly and soon.

mosaik 3.6 does not do that by itself: a simulator in another process that raises is only
logged (``world.run()`` returns normally), and one whose process dies (SIGKILL, SIGTERM, a
segfault, a closed connection) leaves mosaik waiting for an answer that never comes, for
ever. :func:`run_world` runs the World beside a watchdog that polls every simulator's process
and connection; on a death it stops the run, terminates the other simulators' processes and
raises :class:`SimulationError` naming the simulator, how it ended and the last error mosaik
saw. A failed run never flushes the recorder's unfinished period: what is on disk is every
finished one.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

from mosaik_bilevel.errors import MosaikBilevelError, RunAbortedError

#: Seconds between two looks at the simulators' processes.
POLL_S = 0.5
#: Seconds a failed run's other simulators get to stop before they are killed.
STOP_S = 5.0
#: The recorder's sim id: never finalised after a failure (it would write a partial period).
RECORDER_SID = "record"


class SimulationError(RunAbortedError):
    """A simulator failed or died during a run (in any process)."""


def run_world(world, until: int, *, step: int | None = None, progress: bool = False) -> None:
    """Run ``world`` until ``until`` and shut it down; raise :class:`SimulationError` if a
    simulator failed or died.

    Given the simulators' ``step``, it also checks that every simulator reached the last
    step before ``until``.
    """
    from loguru import logger

    errors: list[str] = []
    sink = logger.add(lambda m: errors.append(str(m.record["message"])), level="ERROR",
                      filter="mosaik", format="{message}")
    logger.enable("mosaik")
    failure: str | None = None
    try:
        failure = _run(world, until, progress)
    except KeyboardInterrupt:
        _abandon(world)
        raise
    except MosaikBilevelError as err:  # raised by one of our simulators in this process
        _abandon(world)
        raise SimulationError(f"a simulator failed: {err}") from err
    except Exception as err:  # any failure ends the run loudly
        gone = _gone_within(world, 2.0)  # a broken connection: whose process died, and how
        _abandon(world)
        what = f"{type(err).__name__}: {err}"
        raise SimulationError(f"{gone} ({what})" if gone else f"a simulator failed: {what}"
                              ) from err
    finally:
        logger.remove(sink)
        logger.disable("mosaik")
    if failure is None and not errors:
        stopped = [] if step is None else _stopped_early(world, until - step)
        if stopped:
            errors.append(f"simulators that stopped before time {until - step}: "
                          f"{', '.join(stopped)}")
    if failure is not None or errors:
        _abandon(world)
        raise SimulationError("; ".join([*([failure] if failure else []), *errors]))
    world.shutdown()


def _run(world, until: int, progress: bool) -> str | None:
    """Run the World beside the watchdog; the watchdog's finding, or None.

    SIGINT and SIGTERM to this process stop the run the same way (and raise
    ``KeyboardInterrupt``).
    """
    async_world = world._async_world
    if world.loop.is_closed():
        raise RuntimeError("a World runs once")

    async def supervised() -> str | None:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        handled = _on_signals(loop, stop)
        run = asyncio.ensure_future(async_world.run(until, print_progress=progress))
        watch = asyncio.ensure_future(_watch(async_world))
        try:
            done, _ = await asyncio.wait({run, watch, stop},
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
        if run in done:
            watch.cancel()
            run.result()
            return None
        if watch in done:  # give mosaik a moment to report the simulator's own error
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(run), 1.0)
        watch.cancel()
        if not run.done():
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run
        if stop in done:
            raise KeyboardInterrupt(stop.result())
        return watch.result()

    return world.loop.run_until_complete(supervised())


def _on_signals(loop, stop) -> list[int]:
    """Let SIGINT and SIGTERM resolve ``stop`` (where the loop can take signals)."""
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, lambda s=sig: stop.done() or stop.set_result(
                signal.Signals(s).name))
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not the main thread, or not on this platform
        handled.append(sig)
    return handled


async def _watch(async_world) -> str:
    """Wait until a simulator in another process is gone; say which and how."""
    while True:
        for sid, proxy in list(async_world._proxies.items()):
            gone = _gone(sid, proxy)
            if gone is not None:
                return gone
        await asyncio.sleep(POLL_S)


def _gone_within(world, seconds: float) -> str | None:
    """The first simulator process found dead within ``seconds`` (None if none is)."""
    proxies = getattr(getattr(world, "_async_world", None), "_proxies", {})
    processes = {sid: (getattr(proxy, "_process", None) or (None,))[0]
                 for sid, proxy in proxies.items()}
    processes = {sid: p for sid, p in processes.items() if p is not None}
    deadline = time.monotonic() + seconds
    while processes:
        for sid, process in processes.items():
            if process.poll() is not None:
                return _gone(sid, proxies[sid])
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)
    return None


def _gone(sid: str, proxy) -> str | None:
    """How the simulator behind ``proxy`` ended, or None while it runs."""
    process = (getattr(proxy, "_process", None) or (None,))[0]
    if process is not None and process.poll() is not None:
        return f"simulator {sid!r} (pid {process.pid}) died: {_how(process.returncode)}"
    channel = getattr(proxy, "_channel", None)
    receiver = getattr(channel, "_receiver_task", None)
    if receiver is not None and receiver.done():
        return f"simulator {sid!r} closed its connection (its process ended or the network " \
               f"failed)"
    return None


def _how(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def _abandon(world) -> None:
    """Stop a failed run: terminate the simulators' processes, finalise the in-process ones
    but the recorder, and close the World (bounded in time)."""
    async_world = getattr(world, "_async_world", None)
    if async_world is None or async_world._shutdown_performed:
        return
    for proxy in async_world._proxies.values():
        process = (getattr(proxy, "_process", None) or (None,))[0]
        if process is not None and process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_S
    for proxy in async_world._proxies.values():
        process = (getattr(proxy, "_process", None) or (None,))[0]
        if process is None:
            continue
        with contextlib.suppress(Exception):
            process.wait(max(deadline - time.monotonic(), 0.1))
        if process.poll() is None:
            process.kill()
            process.wait()
    loop = world.loop
    if not loop.is_closed():
        for sid, proxy in async_world._proxies.items():
            channel = getattr(proxy, "_channel", None)
            if channel is not None:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(asyncio.wait_for(channel.close(), 1.0))
                _retrieve(getattr(channel, "_receiver_task", None))
            elif sid != RECORDER_SID:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(asyncio.wait_for(proxy.stop(), STOP_S))
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):  # and retrieve their errors: no stray log lines
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()
    async_world._shutdown_performed = True


def _retrieve(task) -> None:
    """Take a finished task's error (a reset connection), so asyncio does not log it."""
    if task is not None and task.done() and not task.cancelled():
        task.exception()


def _stopped_early(world, last_step: int) -> list[str]:
    """Simulators that did not step at ``last_step`` (mosaik's runners; [] if unknown)."""
    runners = getattr(getattr(world, "_async_world", None), "_get_sim_runners", None)
    if runners is None:
        return []
    return [sid for sid, r in runners().items() if r.last_step.time < last_step]
