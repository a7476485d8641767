"""What the server holds between requests: loaded models (`ModelPool`) and the generation
slots that cap how many run at once (`GenerationSlots`, each taken as a `Lease`)."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from parrot_lm.runs.loading import LoadedModel, load_model
from parrot_lm.serve.checkpoints import CheckpointInfo

log = logging.getLogger(__name__)


class Lease:
    """One of the max_concurrent generation slots; release() is idempotent."""

    def __init__(self, slots: GenerationSlots) -> None:
        self._slots = slots
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        """Give the slot back (once; later calls do nothing)."""
        with self._lock:
            if self._released:
                return
            self._released = True
        self._slots._release()

    def __del__(self) -> None:  # a response that was never sent still frees its slot
        self.release()


class GenerationSlots:
    """A non-blocking counter: a request either gets a slot now or is told the server is
    busy (429); nothing ever waits on it, so the event loop never blocks."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> Lease | None:
        """A Lease on a free slot, or None when all `limit` are taken."""
        with self._lock:
            if self.active >= self.limit:
                return None
            self.active += 1
        return Lease(self)

    def _release(self) -> None:
        with self._lock:
            self.active -= 1


class ModelPool:
    """Loaded models, least recently used dropped beyond `capacity`; a checkpoint rewritten
    since it was loaded (a training run refreshing last.ckpt) is loaded again."""

    def __init__(self, device: str, capacity: int) -> None:
        self.device = device
        self.capacity = capacity
        self._loaded: OrderedDict[str, tuple[tuple[float, int], LoadedModel]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, info: CheckpointInfo) -> LoadedModel:
        """The model of `info`, loading it if needed (blocking: call from a worker thread)."""
        key = (info.modified, info.size)
        with self._lock:
            load_lock = self._loading.setdefault(info.id, threading.Lock())
        with load_lock:  # two requests for one checkpoint load it once
            with self._lock:
                hit = self._loaded.get(info.id)
                if hit is not None and hit[0] == key:
                    self._loaded.move_to_end(info.id)
                    return hit[1]
            from parrot_lm.core.hardware import pick_device

            started = time.perf_counter()
            loaded = load_model(info.path, pick_device(self.device))
            log.info(
                "Loaded %s (step %d) in %.1f s", info.id, loaded.step, time.perf_counter() - started
            )
            with self._lock:
                self._loaded[info.id] = (key, loaded)
                self._loaded.move_to_end(info.id)
                while len(self._loaded) > self.capacity:
                    dropped, _ = self._loaded.popitem(last=False)
                    log.info("Unloaded %s (max_loaded_models=%d)", dropped, self.capacity)
            return loaded

    def loaded_ids(self) -> list[str]:
        """Ids of the models in memory, least recently used first."""
        with self._lock:
            return list(self._loaded)
