"""`ras rebuild`: fold the topics from their beginning into a new read model and swap it in, with a
progress bar (records done / total, rate, ETA). The steps: entrypoints/rebuild.py; the runbook says when
to run it and what it costs."""

from __future__ import annotations

import tempfile
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from result_aggregator_service.cli.output import JsonFlag, emit_json, fail, run, stderr, stdout

if TYPE_CHECKING:  # imported when the command runs: the database and Kafka stack take a while to load
    from result_aggregator_service.config import Settings
    from result_aggregator_service.entrypoints.rebuild import Progress as Done
    from result_aggregator_service.entrypoints.rebuild import RebuildReport


def rebuild(
    workers: Annotated[int, typer.Option(min=1, max=16, help="shadow worker processes")] = 1,
    grace: Annotated[
        float | None, typer.Option(min=0, help="seconds to keep the old read model (default: the setting)")
    ] = None,
    log_dir: Annotated[Path | None, typer.Option(help="the shadow workers' logs (default: a new temp folder)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Build a new read model from the beginning of the topics while the live one serves, then swap it in."""
    from result_aggregator_service.config import Settings

    settings = Settings()
    if grace is not None:
        settings = settings.model_copy(update={"rebuild_grace_seconds": grace})
    folder = log_dir or Path(tempfile.mkdtemp(prefix="ras-rebuild-"))
    folder.mkdir(parents=True, exist_ok=True)
    if not as_json:
        stderr.print(f"shadow workers' logs: {folder}", markup=False)
    report = run(_rebuild(settings, workers, folder, show_progress=not as_json))
    figures = {
        "epoch": report.epoch,
        "records": report.records,
        "build_seconds": round(report.build_seconds, 2),
        "folding_seconds": round(report.folding_seconds, 2),
        "events_per_second": round(report.events_per_second, 1),
        "writes_paused_ms": round(report.writes_paused_seconds * 1000, 1),
        "reads_paused_ms": round(report.reads_paused_seconds * 1000, 1),
        "swap_attempts": report.swap_attempts,
        "retired_schema": report.retired_schema,
        "retired_dropped": True,
    }
    if as_json:
        emit_json(figures)
    else:
        stdout.print(
            f"read model rebuilt: epoch {report.epoch}, {report.records} records in {report.build_seconds:.1f} s"
            f" ({report.events_per_second:.0f}/s once folding); live writes paused {figures['writes_paused_ms']} ms,"
            f" reads {figures['reads_paused_ms']} ms; {report.retired_schema} dropped after the grace period",
            markup=False,
        )


async def _rebuild(settings: Settings, workers: int, folder: Path, *, show_progress: bool) -> RebuildReport:
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncEngine

    from result_aggregator_service.adapters.read_model_swap import RebuildRefused
    from result_aggregator_service.entrypoints import rebuild as steps
    from result_aggregator_service.providers import make_container

    container = make_container(settings)
    bar = _Bar() if show_progress else None
    try:
        engine, redis = await container.get(AsyncEngine), await container.get(Redis)
        try:
            report = await steps.rebuild(settings, engine, redis, workers, folder, bar.update if bar else _quiet)
        except (steps.RebuildFailed, RebuildRefused) as error:
            fail(f"{error}; the live read model is untouched")
        finally:
            if bar:
                bar.close()
        if show_progress:
            stderr.print(f"swapped in; keeping {report.retired_schema} for {settings.rebuild_grace_seconds:.0f} s")
        await steps.drop_retired_after_grace(engine, report.retired_schema, settings.rebuild_grace_seconds)
        return report
    finally:
        await container.close()


def _quiet(_: Done) -> None:
    return None


class _Bar:
    """rich's bar with the rate over the last ten seconds and the ETA it gives."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("rebuild"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA {task.fields[eta]}"),
            console=stderr,
        )
        self._task = self._progress.add_task("rebuild", total=None, rate="-", eta="-")
        self._samples: deque[tuple[float, int]] = deque(maxlen=40)
        self._progress.start()

    def update(self, progress: Done) -> None:
        now = time.monotonic()
        self._samples.append((now, progress.done))
        while len(self._samples) > 2 and now - self._samples[0][0] > 10:
            self._samples.popleft()
        (then, before) = self._samples[0]
        rate = (progress.done - before) / (now - then) if now > then else 0.0
        left = max(progress.total - progress.done, 0)
        eta = "caught up" if progress.caught_up else (f"{left / rate:.0f} s" if rate > 0 else "-")
        self._progress.update(
            self._task, completed=progress.done, total=progress.total, rate=f"{rate:,.0f} records/s", eta=eta
        )

    def close(self) -> None:
        self._progress.stop()
